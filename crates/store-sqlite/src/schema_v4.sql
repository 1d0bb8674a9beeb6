-- Version 4: the audit table is stored in its primary key's order, (log, seq), WITHOUT ROWID.
-- Before, every entry went into two B-trees (the rowid table and the primary-key index) and
-- every read of a range of a log looked each row up twice; now an append touches one B-tree
-- and verification and export read a log as one sequential scan.

CREATE TABLE audit_v4 (
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
) STRICT, WITHOUT ROWID;

INSERT INTO audit_v4 (log, seq, time, actor, action, outcome, subject, collection, body, hash)
    SELECT log, seq, time, actor, action, outcome, subject, collection, body, hash
    FROM audit ORDER BY log, seq;
DROP TABLE audit;
ALTER TABLE audit_v4 RENAME TO audit;
CREATE INDEX audit_subject ON audit (log, subject) WHERE subject IS NOT NULL;
