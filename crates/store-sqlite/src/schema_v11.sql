-- Flags of a data subject, read with every record of it (one join on the primary key, so a
-- change made on any node is seen by the next read anywhere): 1 = processing restricted
-- (Art. 18), 2 = an objection or a withdrawn consent is recorded (the purpose register is then
-- consulted).
ALTER TABLE subjects ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
-- The few flagged subjects, for the purge and retention jobs (they keep restricted subjects).
CREATE INDEX subjects_flagged ON subjects (tenant, id) WHERE flags != 0;
