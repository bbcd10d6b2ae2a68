-- Facts: one row per call, and the append-only agent state log every time-in-state metric
-- is derived from. Durations are whole milliseconds so that sums are exact.

CREATE TABLE interactions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    campaign_id         uuid NULL,
    agent_id            uuid NULL,
    -- The telephony layer's id (Twilio CallSid); the idempotency key of ingest.
    external_id         text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 128),
    direction           text NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    customer_number     text NULL CHECK (length(customer_number) <= 32),
    offered_at          timestamptz NOT NULL,
    answered_at         timestamptz NULL,
    ended_at            timestamptz NULL,
    wrap_ended_at       timestamptz NULL,
    wait_ms             bigint NULL CHECK (wait_ms >= 0),
    talk_ms             bigint NOT NULL DEFAULT 0 CHECK (talk_ms >= 0),
    hold_ms             bigint NOT NULL DEFAULT 0 CHECK (hold_ms >= 0),
    wrap_ms             bigint NOT NULL DEFAULT 0 CHECK (wrap_ms >= 0),
    outcome             text NOT NULL DEFAULT 'IN_PROGRESS'
        CHECK (outcome IN ('IN_PROGRESS', 'ANSWERED', 'ABANDONED', 'NO_ANSWER', 'BUSY', 'FAILED')),
    disposition_id      uuid NULL,
    answered_by         text NULL CHECK (answered_by IN ('HUMAN', 'MACHINE')),
    notes               text NULL CHECK (length(notes) <= 4000),
    last_event_sequence bigint NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, external_id),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, campaign_id) REFERENCES campaigns (organization_id, id),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id),
    FOREIGN KEY (organization_id, disposition_id) REFERENCES dispositions (organization_id, id),
    CHECK (answered_at IS NULL OR answered_at >= offered_at),
    CHECK (ended_at IS NULL OR ended_at >= offered_at),
    CHECK (wrap_ended_at IS NULL OR (ended_at IS NOT NULL AND wrap_ended_at >= ended_at))
);
-- Tenant + time is the access path of every KPI and listing.
CREATE INDEX interactions_org_offered_idx ON interactions (organization_id, offered_at);
CREATE INDEX interactions_org_agent_offered_idx ON interactions (organization_id, agent_id, offered_at);
CREATE INDEX interactions_org_campaign_offered_idx ON interactions (organization_id, campaign_id, offered_at);

CREATE TABLE agent_state_log (
    id              bigserial PRIMARY KEY,
    organization_id uuid NOT NULL,
    agent_id        uuid NOT NULL,
    axis            text NOT NULL CHECK (axis IN ('PRESENCE', 'ROUTING')),
    state           text NOT NULL CHECK (length(state) BETWEEN 1 AND 32),
    reason          text NULL CHECK (length(reason) <= 200),
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz NULL,
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id) ON DELETE CASCADE,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX agent_state_log_org_started_idx ON agent_state_log (organization_id, started_at);
CREATE INDEX agent_state_log_agent_started_idx ON agent_state_log (organization_id, agent_id, started_at);
-- At most one open interval per agent and axis.
CREATE UNIQUE INDEX agent_state_log_open_idx ON agent_state_log (agent_id, axis) WHERE ended_at IS NULL;
