-- The dashboards' tables under the tenant policy of every other table (000031). Their grants to
-- omnivox_app came with the default privileges that migration set.
ALTER TABLE dashboards ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dashboards USING (organization_id = omnivox_tenant());
ALTER TABLE dashboard_widgets ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dashboard_widgets USING (organization_id = omnivox_tenant());
ALTER TABLE dashboard_defaults ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dashboard_defaults USING (organization_id = omnivox_tenant());
