DROP POLICY tenant_isolation ON dashboards;
ALTER TABLE dashboards DISABLE ROW LEVEL SECURITY;
DROP POLICY tenant_isolation ON dashboard_widgets;
ALTER TABLE dashboard_widgets DISABLE ROW LEVEL SECURITY;
DROP POLICY tenant_isolation ON dashboard_defaults;
ALTER TABLE dashboard_defaults DISABLE ROW LEVEL SECURITY;
