-- Version 2: identity (users, sessions, security settings) and API-key rotation.

ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN rotated_to TEXT;

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    tenant              TEXT REFERENCES tenants(id),
    username            TEXT NOT NULL,
    username_key        TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    password_changed_at INTEGER NOT NULL,
    password_history    TEXT NOT NULL,
    roles               TEXT NOT NULL,
    disabled            INTEGER NOT NULL,
    failed_count        INTEGER NOT NULL,
    lock_level          INTEGER NOT NULL,
    locked_until        INTEGER,
    totp_secret         BLOB,
    totp_pending        BLOB,
    totp_last_step      INTEGER NOT NULL,
    recovery_codes      TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    version             INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_name ON users (coalesce(tenant, ''), username_key);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    token_hash      BLOB NOT NULL UNIQUE,
    tenant          TEXT,
    user_id         TEXT NOT NULL REFERENCES users(id),
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    idle_timeout_ms INTEGER NOT NULL,
    revoked_at      INTEGER,
    restricted_to   TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE settings (
    scope TEXT PRIMARY KEY,
    body  TEXT NOT NULL
) STRICT;
