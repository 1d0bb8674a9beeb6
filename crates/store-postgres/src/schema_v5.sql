-- Registers kept as JSON documents (incidents, …): one row per version, never changed or deleted.
CREATE TABLE register_entries (
    register    TEXT NOT NULL,
    id          TEXT NOT NULL,
    version     BIGINT NOT NULL,
    tenant      TEXT REFERENCES tenants (id),
    body        TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (register, id, version)
);
CREATE INDEX register_entries_by_scope ON register_entries (register, tenant, id, version);
