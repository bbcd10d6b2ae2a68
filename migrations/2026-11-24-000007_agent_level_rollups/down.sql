DROP TABLE kpi_agent_time_hourly;
DELETE FROM kpi_hourly_disposition
WHERE campaign_key = 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND agent_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff';
DELETE FROM kpi_hourly
WHERE campaign_key = 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND agent_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff';
