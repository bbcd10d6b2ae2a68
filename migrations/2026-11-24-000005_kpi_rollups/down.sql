DROP TABLE kpi_agent_state_hourly;
DROP TABLE kpi_hourly_disposition;
DROP TABLE kpi_hourly;
