-- Tenancy and identity: organizations, their versioned business settings, users and refresh tokens.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- IANA zone name; every day/week/month bucket of this tenant's KPIs follows it.
    timezone    text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
    locale      text NOT NULL DEFAULT 'en-GB' CHECK (length(locale) BETWEEN 2 AND 35),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per organization. `version` is the optimistic-concurrency token: every update
-- must name the version it read and bumps it by one.
CREATE TABLE business_settings (
    organization_id                 uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    version                         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    service_level_threshold_seconds integer NOT NULL DEFAULT 20 CHECK (service_level_threshold_seconds BETWEEN 1 AND 3600),
    service_level_target_percent    double precision NOT NULL DEFAULT 80 CHECK (service_level_target_percent BETWEEN 0 AND 100),
    service_level_variant           text NOT NULL DEFAULT 'ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS'
        CHECK (service_level_variant IN (
            'ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS',
            'ANSWERED_WITHIN_OVER_ANSWERED',
            'ANSWERED_AND_ABANDONED_WITHIN_OVER_OFFERED',
            'ANSWERED_WITHIN_OVER_OFFERED',
            'ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_ABANDONS_WITHIN')),
    short_abandon_seconds           integer NOT NULL DEFAULT 5 CHECK (short_abandon_seconds BETWEEN 0 AND 600),
    max_abandon_rate_percent        double precision NOT NULL DEFAULT 5 CHECK (max_abandon_rate_percent BETWEEN 0 AND 100),
    wrap_up_limit_seconds           integer NOT NULL DEFAULT 120 CHECK (wrap_up_limit_seconds BETWEEN 0 AND 7200),
    -- [{"weekday": 1..7 (ISO, Monday = 1), "open": "HH:MM", "close": "HH:MM"}, ...]
    business_hours                  jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(business_hours) = 'array'),
    holidays                        date[] NOT NULL DEFAULT '{}',
    data_retention_days             integer NOT NULL DEFAULT 730 CHECK (data_retention_days BETWEEN 1 AND 3650),
    updated_at                      timestamptz NOT NULL DEFAULT now(),
    updated_by                      uuid NULL
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- Logins name only an e-mail address, so addresses are unique across tenants; stored lower-case.
    email           text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '_%@_%' AND length(email) <= 254),
    display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role            text NOT NULL CHECK (role IN ('VIEWER', 'AGENT', 'SUPERVISOR', 'ADMIN', 'SUPER_ADMIN')),
    password_hash   text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    -- Bumped to revoke every token issued to this user so far.
    token_version   integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    last_login_at   timestamptz NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id)
);
-- Cursor pagination of an organization's users: (created_at, id) keyset.
CREATE INDEX users_org_created_idx ON users (organization_id, created_at, id);

-- Refresh tokens are stored only as a SHA-256 of the token. A token used once is marked
-- used and replaced; presenting a used token again revokes its whole family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz NULL,
    revoked_at  timestamptz NULL,
    CHECK (expires_at > issued_at)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
