-- Strongroom SQLite schema, version 1. Byte layouts: docs/storage.md.
-- No column ever holds a stored value in plaintext: record data is AES-GCM envelopes,
-- indexes are HMACs, audit bodies hold only ids, names and outcomes.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE tenant_keys (
    tenant     TEXT NOT NULL REFERENCES tenants(id),
    version    INTEGER NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, version)
) STRICT;

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT REFERENCES tenants(id),
    name       TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    roles      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE collections (
    tenant     TEXT NOT NULL REFERENCES tenants(id),
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    def        TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) STRICT;

CREATE TABLE roles (
    tenant     TEXT NOT NULL REFERENCES tenants(id),
    name       TEXT NOT NULL,
    def        TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) STRICT;

CREATE TABLE subjects (
    tenant      TEXT NOT NULL REFERENCES tenants(id),
    id          TEXT NOT NULL,
    kek_version INTEGER NOT NULL,
    wrapped_dek BLOB NOT NULL,
    ref_index   BLOB,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;
CREATE UNIQUE INDEX subjects_ref ON subjects (tenant, ref_index) WHERE ref_index IS NOT NULL;

CREATE TABLE records (
    tenant     TEXT NOT NULL,
    id         TEXT NOT NULL,
    collection TEXT NOT NULL,
    subject    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    blocked_at INTEGER,
    data       BLOB NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, subject) REFERENCES subjects (tenant, id)
) STRICT;
CREATE INDEX records_subject ON records (tenant, subject);

CREATE TABLE record_history (
    tenant     TEXT NOT NULL,
    id         TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (tenant, id, version)
) STRICT;

CREATE TABLE blind_index (
    tenant     TEXT NOT NULL,
    collection TEXT NOT NULL,
    field      TEXT NOT NULL,
    hash       BLOB NOT NULL,
    record     TEXT NOT NULL,
    PRIMARY KEY (tenant, collection, field, hash, record)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit (
    log        TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    time       INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    subject    TEXT,
    collection TEXT,
    body       TEXT NOT NULL,
    hash       BLOB NOT NULL,
    PRIMARY KEY (log, seq)
) STRICT;
CREATE INDEX audit_subject ON audit (log, subject) WHERE subject IS NOT NULL;
