DROP TABLE report_deliveries;
DROP INDEX report_runs_schedule_idx;
ALTER TABLE report_runs DROP CONSTRAINT report_runs_schedule_fk;
ALTER TABLE report_runs DROP CONSTRAINT report_runs_schedule_fire_check;
-- Runs of deleted schedules (schedule_id null, fire_at kept) would break the old constraint.
UPDATE report_runs SET fire_at = NULL WHERE schedule_id IS NULL AND fire_at IS NOT NULL;
ALTER TABLE report_runs ADD CONSTRAINT report_runs_check1 CHECK ((schedule_id IS NULL) = (fire_at IS NULL));
DROP TABLE report_schedules;
