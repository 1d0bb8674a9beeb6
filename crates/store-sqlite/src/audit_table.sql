CREATE TABLE "audit" (
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
) STRICT, WITHOUT ROWID
