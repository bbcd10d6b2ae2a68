-- Back to kpi_hourly_disposition as it was: calls per disposition of dispositioned calls only.
DROP TABLE kpi_daily_disposition;
DROP INDEX kpi_hourly_disposition_org_agent_hour_idx;
DELETE FROM kpi_hourly_disposition WHERE disposition_id = '00000000-0000-0000-0000-000000000000';
ALTER TABLE kpi_hourly_disposition
    DROP COLUMN short_abandoned,
    DROP COLUMN abandoned,
    DROP COLUMN handled,
    DROP COLUMN answered,
    DROP COLUMN offered;
