-- The consent register without a rowid: the primary key's B-tree holds the rows, so the read
-- path's lookup of the state in force (by that key) is one descent instead of an index entry
-- and a table row.
CREATE TABLE consents_v13 (
    tenant      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    state       INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    source      TEXT NOT NULL,
    text_hash   BLOB,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (tenant, subject, purpose, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO consents_v13 SELECT tenant, subject, purpose, seq, state, at, source, text_hash, recorded_by FROM consents;
DROP TABLE consents;
ALTER TABLE consents_v13 RENAME TO consents;

-- Exports of a subject's data (access and portability requests), sealed under the subject's
-- key, until downloaded as often as allowed or expired.
CREATE TABLE exports (
    tenant          TEXT NOT NULL,
    id              TEXT NOT NULL,
    subject         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    downloads_left  INTEGER NOT NULL CHECK (downloads_left > 0),
    data            BLOB NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;
CREATE INDEX exports_expiry ON exports (expires_at);
CREATE INDEX exports_subject ON exports (tenant, subject);
