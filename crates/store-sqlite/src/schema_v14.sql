-- A tenant's final archive at offboarding: sealed under a key derived from a one-time token of
-- which only the SHA-256 is kept; deleted by its one download or at its expiry. The tenant row
-- itself is gone by then, hence no reference to it.
CREATE TABLE tenant_archives (
    tenant      TEXT PRIMARY KEY,
    token_hash  BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    data        BLOB NOT NULL
) STRICT;
CREATE INDEX tenant_archives_expiry ON tenant_archives (expires_at);
