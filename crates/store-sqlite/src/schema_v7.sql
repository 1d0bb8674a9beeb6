-- The declarations register (OR-07): one row per version, never changed or deleted.
CREATE TABLE declarations (
    id              TEXT NOT NULL,
    version         INTEGER NOT NULL,
    tenant          TEXT REFERENCES tenants (id),
    measure         TEXT NOT NULL,
    statement       TEXT NOT NULL,
    owner           TEXT NOT NULL,
    evidence_name   TEXT,
    evidence_sha256 BLOB,
    declared_at     INTEGER NOT NULL,
    review_by       INTEGER NOT NULL,
    withdrawn       INTEGER NOT NULL,
    recorded_by     TEXT NOT NULL,
    recorded_at     INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE INDEX declarations_by_tenant ON declarations (tenant, id, version);
