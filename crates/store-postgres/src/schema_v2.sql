-- Schema v2: the audit table's filter columns are generated from the hashed body (PostgreSQL
-- refuses to update them), a subject index table and stored tree nodes (derived, checked by
-- `audit verify`), and the format and C2SP origin of checkpoints. The derived rows of existing
-- entries are filled in by the migration code.
ALTER TABLE audit DROP COLUMN time, DROP COLUMN actor, DROP COLUMN action, DROP COLUMN outcome,
    DROP COLUMN subject, DROP COLUMN collection;
ALTER TABLE audit
    ADD COLUMN time BIGINT GENERATED ALWAYS AS (((body::jsonb) ->> 'time')::bigint) STORED,
    ADD COLUMN actor TEXT GENERATED ALWAYS AS ((body::jsonb) ->> 'actor') STORED,
    ADD COLUMN action TEXT GENERATED ALWAYS AS ((body::jsonb) ->> 'action') STORED,
    ADD COLUMN outcome TEXT GENERATED ALWAYS AS ((body::jsonb) ->> 'outcome') STORED,
    ADD COLUMN subject TEXT GENERATED ALWAYS AS ((body::jsonb) ->> 'subject') STORED,
    ADD COLUMN collection TEXT GENERATED ALWAYS AS ((body::jsonb) ->> 'collection') STORED;
CREATE INDEX audit_subject ON audit (log, subject) WHERE subject IS NOT NULL;

CREATE TABLE audit_subjects (log TEXT NOT NULL, subject TEXT NOT NULL, seq BIGINT NOT NULL,
    PRIMARY KEY (log, subject, seq));
CREATE TABLE audit_nodes (log TEXT NOT NULL, level INTEGER NOT NULL, idx BIGINT NOT NULL,
    hash BYTEA NOT NULL, PRIMARY KEY (log, level, idx));

ALTER TABLE audit_checkpoints ADD COLUMN format SMALLINT NOT NULL DEFAULT 1,
    ADD COLUMN origin TEXT NOT NULL DEFAULT '';
