-- Report runs: one row per export asked for (`runReport`, a schedule's fire), executed by a
-- worker in any instance, and the file it produced.
--
-- A run is QUEUED, then RUNNING once an instance claims it (`FOR UPDATE SKIP LOCKED`, so one
-- instance takes it), then SUCCEEDED, FAILED or CANCELLED. The instance running it moves
-- `heartbeat_at` every second or so, with the rows written so far; a RUNNING run whose heartbeat
-- is older than the takeover delay belongs to an instance that died and is claimed again.
-- `attempt` counts claims and fences the end of a run: only the attempt that holds the claim may
-- store the file and the final status, so a run taken over is never finished twice. A run that
-- failed for a reason worth retrying goes back to QUEUED with `not_before` (backoff) until its
-- attempts are spent.
--
-- The range is resolved when the run is asked for, so a run of "yesterday" asked at 23:59 and
-- executed at 00:01 still reports the day it was asked for.
CREATE TABLE report_runs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    report_id        uuid NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    -- The definition's version when the run was asked for (a later edit does not change it).
    report_version   integer NOT NULL,
    -- Who asked: a user (and the API key they used), or a schedule at one fire time.
    requested_by     uuid NULL,
    api_key_id       uuid NULL,
    schedule_id      uuid NULL,
    fire_at          timestamptz NULL,
    format           text NOT NULL CHECK (format IN ('CSV', 'JSON', 'XLSX', 'PDF')),
    range_from       timestamptz NOT NULL,
    range_to         timestamptz NOT NULL CHECK (range_to > range_from),
    bom              boolean NOT NULL DEFAULT false,
    status           text NOT NULL DEFAULT 'QUEUED'
                     CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    not_before       timestamptz NOT NULL DEFAULT now(),
    claimed_by       text NULL,
    heartbeat_at     timestamptz NULL,
    cancel_requested boolean NOT NULL DEFAULT false,
    rows_written     bigint NOT NULL DEFAULT 0,
    bytes            bigint NULL,
    content_type     text NULL,
    filename         text NULL,
    error            text NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz NULL,
    finished_at      timestamptz NULL,
    -- When the file is deleted (retention); null while there is no file.
    expires_at       timestamptz NULL,
    CHECK ((schedule_id IS NULL) = (fire_at IS NULL))
);
-- A schedule's fire is one run, whichever instance claims it.
CREATE UNIQUE INDEX report_runs_schedule_fire_idx ON report_runs (schedule_id, fire_at) WHERE schedule_id IS NOT NULL;
-- The workers' queue: runs to claim or to take over.
CREATE INDEX report_runs_queue_idx ON report_runs (not_before) WHERE status IN ('QUEUED', 'RUNNING');
-- Listings: an organization's runs, newest first; a report's runs.
CREATE INDEX report_runs_org_idx ON report_runs (organization_id, created_at DESC, id);
CREATE INDEX report_runs_report_idx ON report_runs (report_id, created_at DESC);
-- Retention: files to delete.
CREATE INDEX report_runs_expiry_idx ON report_runs (expires_at) WHERE expires_at IS NOT NULL;

-- A run's file, in chunks of up to 1 MiB, stored with the run's final status in one
-- transaction: any instance serves any download, and a file is whole or absent.
CREATE TABLE report_files (
    run_id uuid NOT NULL REFERENCES report_runs (id) ON DELETE CASCADE,
    chunk  integer NOT NULL CHECK (chunk >= 0),
    data   bytea NOT NULL,
    PRIMARY KEY (run_id, chunk)
);
-- Stored out of line uncompressed: XLSX is already a zip, and compressing CSV chunks on write
-- would cost the export more time than the disk it saves.
ALTER TABLE report_files ALTER COLUMN data SET STORAGE EXTERNAL;
