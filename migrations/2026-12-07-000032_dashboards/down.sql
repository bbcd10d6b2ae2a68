DROP TABLE dashboard_defaults;
DROP TABLE dashboard_widgets;
DROP TABLE dashboards;
