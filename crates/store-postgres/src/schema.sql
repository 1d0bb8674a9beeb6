-- Strongroom PostgreSQL schema, version 1 (the same model as the SQLite store's versions 1-3).
-- Integers are BIGINT; ordering columns (`ord`) give insertion order where SQLite uses rowid.

CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);

CREATE TABLE tenant_keys (
    tenant TEXT NOT NULL REFERENCES tenants(id), version BIGINT NOT NULL, wrapped BYTEA NOT NULL,
    created_at BIGINT NOT NULL, PRIMARY KEY (tenant, version));

CREATE TABLE api_keys (
    ord BIGSERIAL, id TEXT PRIMARY KEY, tenant TEXT REFERENCES tenants(id), name TEXT NOT NULL,
    hash BYTEA NOT NULL UNIQUE, roles TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    last_used_at BIGINT, rotated_to TEXT);

CREATE TABLE collections (
    tenant TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL, version BIGINT NOT NULL, def TEXT NOT NULL,
    updated_at BIGINT NOT NULL, PRIMARY KEY (tenant, name));

CREATE TABLE roles (
    tenant TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL, def TEXT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name));

CREATE TABLE subjects (
    tenant TEXT NOT NULL REFERENCES tenants(id), id TEXT NOT NULL, kek_version BIGINT NOT NULL,
    wrapped_dek BYTEA NOT NULL, ref_index BYTEA, created_at BIGINT NOT NULL, PRIMARY KEY (tenant, id));
CREATE UNIQUE INDEX subjects_ref ON subjects (tenant, ref_index) WHERE ref_index IS NOT NULL;

CREATE TABLE records (
    ord BIGSERIAL, tenant TEXT NOT NULL, id TEXT NOT NULL, collection TEXT NOT NULL, subject TEXT NOT NULL,
    version BIGINT NOT NULL, state BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    blocked_at BIGINT, data BYTEA NOT NULL, PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, subject) REFERENCES subjects (tenant, id));
CREATE INDEX records_subject ON records (tenant, subject);

CREATE TABLE record_history (
    tenant TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    data BYTEA NOT NULL, PRIMARY KEY (tenant, id, version));

CREATE TABLE blind_index (
    tenant TEXT NOT NULL, collection TEXT NOT NULL, field TEXT NOT NULL, hash BYTEA NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (tenant, collection, field, hash, record));

CREATE TABLE audit (
    log TEXT NOT NULL, seq BIGINT NOT NULL, time BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    outcome TEXT NOT NULL, subject TEXT, collection TEXT, body TEXT NOT NULL, hash BYTEA NOT NULL,
    PRIMARY KEY (log, seq));
CREATE INDEX audit_subject ON audit (log, subject) WHERE subject IS NOT NULL;

CREATE TABLE audit_heads (log TEXT PRIMARY KEY, size BIGINT NOT NULL, hash BYTEA NOT NULL, compact BYTEA NOT NULL);

CREATE TABLE audit_checkpoints (
    log TEXT NOT NULL, seq BIGINT NOT NULL, size BIGINT NOT NULL, root BYTEA NOT NULL, time BIGINT NOT NULL,
    prev BYTEA NOT NULL, signature BYTEA NOT NULL, PRIMARY KEY (log, seq));

CREATE TABLE users (
    ord BIGSERIAL, id TEXT PRIMARY KEY, tenant TEXT REFERENCES tenants(id), username TEXT NOT NULL,
    username_key TEXT NOT NULL, password_hash TEXT NOT NULL, password_changed_at BIGINT NOT NULL,
    password_history TEXT NOT NULL, roles TEXT NOT NULL, disabled BOOLEAN NOT NULL, failed_count BIGINT NOT NULL,
    lock_level BIGINT NOT NULL, locked_until BIGINT, totp_secret BYTEA, totp_pending BYTEA,
    totp_last_step BIGINT NOT NULL, recovery_codes TEXT NOT NULL, created_at BIGINT NOT NULL, version BIGINT NOT NULL);
CREATE UNIQUE INDEX users_name ON users (coalesce(tenant, ''), username_key);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY, token_hash BYTEA NOT NULL UNIQUE, tenant TEXT, user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    idle_timeout_ms BIGINT NOT NULL, revoked_at BIGINT, restricted_to TEXT);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE settings (scope TEXT PRIMARY KEY, body TEXT NOT NULL);
