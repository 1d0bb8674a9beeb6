-- Version 3: the verifiable audit log. Each log's head (size, last leaf hash and the RFC 6962
-- compact range of its Merkle tree) is updated by the writer in the same transaction as the
-- entries; signed checkpoints are stored beside it.

CREATE TABLE audit_heads (
    log     TEXT PRIMARY KEY,
    size    INTEGER NOT NULL,
    hash    BLOB NOT NULL,
    compact BLOB NOT NULL
) STRICT;

CREATE TABLE audit_checkpoints (
    log       TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    root      BLOB NOT NULL,
    time      INTEGER NOT NULL,
    prev      BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (log, seq)
) STRICT;
