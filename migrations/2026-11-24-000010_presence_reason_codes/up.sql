-- Presence reason codes: the organization's own list of why an agent is not available
-- (e.g. BREAK → COFFEE, SMOKING; TRAINING → ONBOARDING). `setAgentPresence` accepts a reason
-- only from this list, and only for the presence it belongs to.
CREATE TABLE presence_reason_codes (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    code            text NOT NULL CHECK (code ~ '^[A-Z0-9_]{1,64}$'),
    -- AVAILABLE and OFFLINE take no reason.
    presence        text NOT NULL CHECK (presence IN ('BREAK', 'LUNCH', 'TRAINING', 'MEETING', 'AWAY')),
    label           text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, code)
);

-- Presence and routing state change independently: each axis has its own "since".
-- `state_since` stays the routing state's.
ALTER TABLE agents ADD COLUMN presence_since timestamptz NULL;
UPDATE agents SET presence_since = state_since;
ALTER TABLE agents ALTER COLUMN presence_since SET DEFAULT now();
ALTER TABLE agents ALTER COLUMN presence_since SET NOT NULL;
