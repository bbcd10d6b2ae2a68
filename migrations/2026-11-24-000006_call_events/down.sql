DROP TABLE telephony_settings;
DROP TABLE call_events;
