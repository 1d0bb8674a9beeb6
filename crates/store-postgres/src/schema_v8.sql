-- Flags of a data subject, read with every record of it (see the SQLite migration 11).
ALTER TABLE subjects ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
-- The few flagged subjects, for the purge and retention jobs (they keep restricted subjects).
CREATE INDEX subjects_flagged ON subjects (tenant, id) WHERE flags <> 0;
