-- People and tenants (#13 parts 3, 5, 7): suspended organizations, single-use tokens that set a
-- password (invitation, reset), and coaching sessions with an outcome, a follow-up, the
-- agent's acknowledgement and the calls they talk about.

-- A suspended organization: every request and socket of its users and API keys is refused
-- (ORGANIZATION_SUSPENDED) until a SUPER_ADMIN resumes it. Its data stays untouched.
ALTER TABLE organizations
    ADD COLUMN suspended_at      timestamptz NULL,
    ADD COLUMN suspension_reason text NULL CHECK (length(suspension_reason) <= 500);

-- Tokens that let a person set a password without knowing the current one. Stored only as a
-- SHA-256 of the token; single use (`used_at`), expiring (`expires_at`). Issuing a new token
-- of a purpose spends the user's older ones of that purpose.
CREATE TABLE user_tokens (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    purpose         text NOT NULL CHECK (purpose IN ('INVITATION', 'PASSWORD_RESET')),
    token_hash      bytea NOT NULL UNIQUE,
    created_by      uuid NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz NULL,
    CHECK (expires_at > created_at),
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX user_tokens_user_idx ON user_tokens (user_id, purpose);

ALTER TABLE coaching_sessions
    ADD COLUMN outcome         text NULL CHECK (length(outcome) BETWEEN 1 AND 5000),
    ADD COLUMN follow_up_on    date NULL,
    ADD COLUMN acknowledged_at timestamptz NULL,
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT coaching_sessions_notes_length CHECK (length(notes) <= 10000),
    ADD CONSTRAINT coaching_sessions_org_id_key UNIQUE (organization_id, id),
    -- An outcome is what completing a session records.
    ADD CONSTRAINT coaching_sessions_outcome_when_completed CHECK (outcome IS NULL OR completed_at IS NOT NULL);

-- The calls a coaching session talks about; both ends in the same organization.
CREATE TABLE coaching_session_interactions (
    organization_id uuid NOT NULL,
    session_id      uuid NOT NULL,
    interaction_id  uuid NOT NULL,
    PRIMARY KEY (session_id, interaction_id),
    FOREIGN KEY (organization_id, session_id) REFERENCES coaching_sessions (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, interaction_id) REFERENCES interactions (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX coaching_session_interactions_interaction_idx ON coaching_session_interactions (interaction_id);
