-- Back to the previous meaning of machine_answered (every machine answer), then drop what the
-- migration added.
UPDATE kpi_hourly SET machine_answered = machine_answered + machine_detected WHERE machine_detected <> 0;
UPDATE kpi_daily SET machine_answered = machine_answered + machine_detected WHERE machine_detected <> 0;
ALTER TABLE business_settings
    DROP COLUMN exclude_short_abandons_from_service_level,
    DROP COLUMN exclude_short_abandons_from_abandon_rate;
ALTER TABLE kpi_daily DROP COLUMN short_abandoned_within_sl, DROP COLUMN machine_detected;
ALTER TABLE kpi_hourly DROP COLUMN short_abandoned_within_sl, DROP COLUMN machine_detected;
