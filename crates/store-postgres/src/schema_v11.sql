-- A tenant's final archive at offboarding (see the SQLite migration 14).
CREATE TABLE tenant_archives (
    tenant      TEXT PRIMARY KEY,
    token_hash  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    data        BYTEA NOT NULL
);
CREATE INDEX tenant_archives_expiry ON tenant_archives (expires_at);
