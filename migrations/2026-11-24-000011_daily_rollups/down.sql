DROP TABLE kpi_agent_time_daily;
DROP TABLE kpi_daily;
