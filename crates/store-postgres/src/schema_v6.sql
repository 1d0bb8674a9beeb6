-- The job runner: one row per job with its schedule, progress and lease.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    tenant       TEXT REFERENCES tenants (id),
    every_ms     BIGINT NOT NULL,
    next_run_at  BIGINT NOT NULL,
    state        TEXT NOT NULL,
    done         BIGINT NOT NULL,
    total        BIGINT,
    cursor       TEXT,
    started_at   BIGINT,
    last_run_at  BIGINT,
    last_ok_at   BIGINT,
    last_error   TEXT,
    runs         BIGINT NOT NULL,
    lease_holder TEXT,
    lease_until  BIGINT NOT NULL
);

-- Blocked records by when they were blocked: what the purge reads.
CREATE INDEX records_blocked ON records (tenant, collection, blocked_at, id) WHERE state = 1;
