-- Schema v5: the audit table's filter columns are generated from the hashed body, so they
-- cannot disagree with it; the subjects named among an entry's objects get an index table, and
-- the tree's interior nodes at every eighth level are stored for O(log n) proofs (both derived
-- tables are checked against the bodies by `audit verify`); checkpoints gain their format and
-- C2SP origin. The derived rows of existing entries are filled in by the migration code.

CREATE TABLE audit_v5 (
    log        TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    body       TEXT NOT NULL,
    hash       BLOB NOT NULL,
    time       INTEGER GENERATED ALWAYS AS (json_extract(body, '$.time')) VIRTUAL,
    actor      TEXT GENERATED ALWAYS AS (json_extract(body, '$.actor')) VIRTUAL,
    action     TEXT GENERATED ALWAYS AS (json_extract(body, '$.action')) VIRTUAL,
    outcome    TEXT GENERATED ALWAYS AS (json_extract(body, '$.outcome')) VIRTUAL,
    subject    TEXT GENERATED ALWAYS AS (json_extract(body, '$.subject')) VIRTUAL,
    collection TEXT GENERATED ALWAYS AS (json_extract(body, '$.collection')) VIRTUAL,
    PRIMARY KEY (log, seq)
) STRICT, WITHOUT ROWID;

INSERT INTO audit_v5 (log, seq, body, hash) SELECT log, seq, body, hash FROM audit ORDER BY log, seq;
DROP TABLE audit;
ALTER TABLE audit_v5 RENAME TO audit;
CREATE INDEX audit_subject ON audit (log, subject) WHERE subject IS NOT NULL;

CREATE TABLE audit_subjects (
    log     TEXT NOT NULL,
    subject TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (log, subject, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_nodes (
    log   TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (log, level, idx)
) STRICT, WITHOUT ROWID;

ALTER TABLE audit_checkpoints ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_checkpoints ADD COLUMN origin TEXT NOT NULL DEFAULT '';
