-- Telephony ingest: every accepted call event, and each organization's Twilio credentials.
--
-- An interaction is recomputed from the set of its call's events (src/ingest/lifecycle.rs), so
-- the same event delivered twice, or events delivered in any order, give the same interaction.

CREATE TABLE call_events (
    id              bigserial PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- The call: Twilio CallSid or the dialler's id; interactions.external_id.
    external_id     text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 128),
    event_type      text NOT NULL CHECK (event_type IN ('OFFERED', 'RINGING', 'ANSWERED', 'HELD', 'RESUMED',
                                                         'TRANSFERRED', 'ENDED', 'WRAP_UP_ENDED', 'DISPOSITION_SET')),
    occurred_at     timestamptz NOT NULL,
    -- The sender's sequence number, -1 when it sent none (part of the dedupe key, so not NULL).
    sequence_number bigint NOT NULL DEFAULT -1 CHECK (sequence_number >= -1),
    -- TWILIO: status callback; API: recordCallEvents; USER: setDisposition.
    source          text NOT NULL CHECK (source IN ('TWILIO', 'API', 'USER')),
    direction       text NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    campaign_id     uuid NULL,
    agent_id        uuid NULL,
    customer_number text NULL CHECK (length(customer_number) <= 32),
    answered_by     text NULL CHECK (answered_by IN ('HUMAN', 'MACHINE')),
    end_reason      text NULL CHECK (end_reason IN ('COMPLETED', 'BUSY', 'FAILED', 'NO_ANSWER', 'CANCELED')),
    -- Twilio CallDuration (answered time of a completed call), in milliseconds.
    duration_ms     bigint NULL CHECK (duration_ms >= 0),
    disposition_id  uuid NULL,
    notes           text NULL CHECK (length(notes) <= 4000),
    -- SHA-256 of the event's canonical content. Two deliveries with the same key but different
    -- content keep the smaller fingerprint, so the stored set never depends on arrival order.
    fingerprint     bytea NOT NULL CHECK (length(fingerprint) = 32),
    received_at     timestamptz NOT NULL DEFAULT now(),
    -- The dedupe key: a repeated delivery of one event changes nothing.
    UNIQUE (organization_id, external_id, event_type, occurred_at, sequence_number),
    FOREIGN KEY (organization_id, campaign_id) REFERENCES campaigns (organization_id, id),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id),
    FOREIGN KEY (organization_id, disposition_id) REFERENCES dispositions (organization_id, id)
);

CREATE TABLE telephony_settings (
    organization_id    uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    twilio_account_sid text NULL CHECK (twilio_account_sid ~ '^AC[0-9a-fA-F]{32}$'),
    -- Write-only through the API: never returned by a query, never logged. It must be stored
    -- as is: verifying a Twilio signature needs the token itself.
    twilio_auth_token  text NULL CHECK (length(twilio_auth_token) BETWEEN 1 AND 256),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         uuid NULL
);
