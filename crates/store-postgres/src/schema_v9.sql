-- The consent register (see the SQLite migration 12).
CREATE TABLE consents (
    tenant      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    state       INTEGER NOT NULL,
    at          BIGINT NOT NULL,
    source      TEXT NOT NULL,
    text_hash   BYTEA,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (tenant, subject, purpose, seq)
);
