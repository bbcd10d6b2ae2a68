-- Report schedules (issue #12, part 6) and the deliveries of their runs (part 7).
--
-- A schedule fires a report on a cron pattern evaluated in its own time zone. `next_fire_at` is
-- the next instant it is due; every instance's scheduler claims due schedules with
-- `FOR UPDATE SKIP LOCKED`, enqueues one run for the fire (report_runs' unique key on
-- (schedule_id, fire_at) makes a second run of the same fire impossible) and moves
-- `next_fire_at` on, in one transaction. After downtime only the latest missed fire runs;
-- the earlier ones are counted in `missed_fires`.
--
-- The webhook secret signs every webhook of the schedule (HMAC-SHA256); it is shown once, when
-- the schedule is created (or the secret rotated), and kept here to sign with.
CREATE TABLE report_schedules (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    report_id       uuid NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    owner_id        uuid NOT NULL,
    cron            text NOT NULL CHECK (length(cron) BETWEEN 1 AND 200),
    timezone        text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    format          text NOT NULL CHECK (format IN ('CSV', 'JSON', 'XLSX', 'PDF')),
    recipients      text[] NOT NULL DEFAULT '{}' CHECK (cardinality(recipients) <= 50),
    webhook_url     text NULL CHECK (webhook_url IS NULL OR length(webhook_url) <= 2048),
    webhook_secret  text NOT NULL,
    paused          boolean NOT NULL DEFAULT false,
    -- Null only when the pattern has no future fire.
    next_fire_at    timestamptz NULL,
    last_fire_at    timestamptz NULL,
    last_run_id     uuid NULL,
    -- Fires skipped after downtime (only the latest missed one runs), and why the last fire
    -- could not be enqueued, if it could not.
    missed_fires    bigint NOT NULL DEFAULT 0,
    last_error      text NULL,
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Someone hears about every run.
    CHECK (cardinality(recipients) > 0 OR webhook_url IS NOT NULL),
    FOREIGN KEY (organization_id, owner_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
-- The schedulers' claim: due, unpaused schedules by due time.
CREATE INDEX report_schedules_due_idx ON report_schedules (next_fire_at) WHERE NOT paused;
-- Listings: a report's schedules.
CREATE INDEX report_schedules_report_idx ON report_schedules (report_id, created_at, id);

-- A run keeps its history when its schedule is deleted: schedule_id turns null, fire_at stays
-- (when it fired). The constraint of 000023 ("null together") becomes "a schedule's run has a
-- fire time"; the unique key on (schedule_id, fire_at) is unchanged.
ALTER TABLE report_runs DROP CONSTRAINT report_runs_check1;
ALTER TABLE report_runs ADD CONSTRAINT report_runs_schedule_fire_check
    CHECK (schedule_id IS NULL OR fire_at IS NOT NULL);
ALTER TABLE report_runs ADD CONSTRAINT report_runs_schedule_fk
    FOREIGN KEY (schedule_id) REFERENCES report_schedules (id) ON DELETE SET NULL;
CREATE INDEX report_runs_schedule_idx ON report_runs (schedule_id, fire_at DESC) WHERE schedule_id IS NOT NULL;

-- What a finished scheduled run is sent to: one row per e-mail recipient and one for the
-- webhook, written with the run (targets as they were at the fire) and sent once the run is
-- SUCCEEDED, FAILED or CANCELLED. A sender claims a due delivery by moving `next_attempt_at`
-- past its send timeout (a lease) and counting the attempt; only that attempt may record the
-- outcome. A failure is retried with backoff until `max_attempts`, then FAILED with its error.
CREATE TABLE report_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    run_id           uuid NOT NULL REFERENCES report_runs (id) ON DELETE CASCADE,
    schedule_id      uuid NULL REFERENCES report_schedules (id) ON DELETE SET NULL,
    kind             text NOT NULL CHECK (kind IN ('EMAIL', 'WEBHOOK')),
    target           text NOT NULL CHECK (length(target) BETWEEN 1 AND 2048),
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text NULL,
    -- The HTTP status of the webhook's last answer; for e-mail, whether a link was sent
    -- instead of the file.
    response_status  integer NULL,
    sent_link        boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz NULL,
    UNIQUE (run_id, kind, target)
);
-- The senders' queue.
CREATE INDEX report_deliveries_due_idx ON report_deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX report_deliveries_schedule_idx ON report_deliveries (schedule_id, created_at DESC);
