-- Exports of a subject's data (see the SQLite migration 13).
CREATE TABLE exports (
    tenant          TEXT NOT NULL,
    id              TEXT NOT NULL,
    subject         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    downloads_left  INTEGER NOT NULL CHECK (downloads_left > 0),
    data            BYTEA NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX exports_expiry ON exports (expires_at);
CREATE INDEX exports_subject ON exports (tenant, subject);
