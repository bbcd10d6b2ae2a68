ALTER TABLE business_settings DROP COLUMN history_horizon;
