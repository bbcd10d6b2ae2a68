-- Tenant isolation enforced by PostgreSQL itself, under the application's own checks.
--
-- The application serves requests through the role `omnivox_app`: it owns nothing, is no
-- superuser and does not bypass row-level security, so every row it reads or writes must belong
-- to the organization named by the `omnivox.tenant` setting of its connection. The application
-- sets that setting whenever it checks a connection out of its pool for a tenant, and the pool
-- clears it before the connection serves anyone else (src/db/tenancy.rs). A statement issued
-- without a tenant sees no rows and can write none.
--
-- The owner of the tables (the role that runs these migrations) is not subject to the policies:
-- it runs the migrations and the few cross-tenant paths named in src/db/tenancy.rs (sign-in
-- and key lookups that find the organization, the report scheduler's claims, the audit queue,
-- bulk COPY loads, a SUPER_ADMIN's organization list).
--
-- The role is created here when missing, without a password: a local server with trust
-- authentication lets the application in as is; elsewhere the operator gives it a password
-- (ALTER ROLE omnivox_app PASSWORD '…') or creates it beforehand, and names it in
-- OMNIVOX_APP_DATABASE_URL. Roles belong to the whole server, so down.sql revokes what this
-- migration granted and keeps the role, which other databases of the server may use.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'omnivox_app') THEN
        CREATE ROLE omnivox_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$$;

-- The organization the connection acts for; NULL when none is set (no row matches NULL).
CREATE FUNCTION omnivox_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('omnivox.tenant', true), '')::uuid $$;

GRANT USAGE ON SCHEMA public TO omnivox_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO omnivox_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO omnivox_app;
-- Tables of later migrations are granted the same; tests/row_level_security.rs fails when one
-- of them has no policy.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO omnivox_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO omnivox_app;
-- The migrations' bookkeeping is the owner's alone.
REVOKE ALL ON __diesel_schema_migrations FROM omnivox_app;
-- The audit trail is append-only for the application: it may add records and read them, never
-- change or remove one.
REVOKE UPDATE, DELETE ON audit_log FROM omnivox_app;

-- Tables that carry their organization: a row is visible, and may be written, only for it.
ALTER TABLE agent_routing_transitions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agent_routing_transitions USING (organization_id = omnivox_tenant());
ALTER TABLE agent_skills ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agent_skills USING (organization_id = omnivox_tenant());
ALTER TABLE agent_state_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agent_state_log USING (organization_id = omnivox_tenant());
ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agents USING (organization_id = omnivox_tenant());
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys USING (organization_id = omnivox_tenant());
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log USING (organization_id = omnivox_tenant());
ALTER TABLE business_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON business_settings USING (organization_id = omnivox_tenant());
ALTER TABLE call_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON call_events USING (organization_id = omnivox_tenant());
ALTER TABLE campaigns ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaigns USING (organization_id = omnivox_tenant());
ALTER TABLE coaching_session_interactions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON coaching_session_interactions USING (organization_id = omnivox_tenant());
ALTER TABLE coaching_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON coaching_sessions USING (organization_id = omnivox_tenant());
ALTER TABLE dispositions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dispositions USING (organization_id = omnivox_tenant());
ALTER TABLE interactions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON interactions USING (organization_id = omnivox_tenant());
ALTER TABLE kpi_agent_state_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kpi_agent_state_hourly USING (organization_id = omnivox_tenant());
ALTER TABLE kpi_agent_time_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kpi_agent_time_daily USING (organization_id = omnivox_tenant());
ALTER TABLE kpi_agent_time_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kpi_agent_time_hourly USING (organization_id = omnivox_tenant());
ALTER TABLE kpi_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kpi_daily USING (organization_id = omnivox_tenant());
ALTER TABLE kpi_daily_disposition ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kpi_daily_disposition USING (organization_id = omnivox_tenant());
ALTER TABLE kpi_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kpi_hourly USING (organization_id = omnivox_tenant());
ALTER TABLE kpi_hourly_disposition ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kpi_hourly_disposition USING (organization_id = omnivox_tenant());
ALTER TABLE presence_reason_codes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON presence_reason_codes USING (organization_id = omnivox_tenant());
ALTER TABLE report_deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON report_deliveries USING (organization_id = omnivox_tenant());
ALTER TABLE report_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON report_runs USING (organization_id = omnivox_tenant());
ALTER TABLE report_schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON report_schedules USING (organization_id = omnivox_tenant());
ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON reports USING (organization_id = omnivox_tenant());
ALTER TABLE skills ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON skills USING (organization_id = omnivox_tenant());
ALTER TABLE team_supervisors ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON team_supervisors USING (organization_id = omnivox_tenant());
ALTER TABLE teams ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON teams USING (organization_id = omnivox_tenant());
ALTER TABLE telephony_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON telephony_settings USING (organization_id = omnivox_tenant());
ALTER TABLE user_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_tokens USING (organization_id = omnivox_tenant());
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users USING (organization_id = omnivox_tenant());

-- The organization itself.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations USING (id = omnivox_tenant());

-- Tables that reach their organization through their parent row.
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens USING (
    EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_tokens.user_id AND u.organization_id = omnivox_tenant())
);
ALTER TABLE report_files ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON report_files USING (
    EXISTS (SELECT 1 FROM report_runs r WHERE r.id = report_files.run_id AND r.organization_id = omnivox_tenant())
);
