-- Roles carry a version, so that a change can be made conditional on the version read (If-Match).
ALTER TABLE roles ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
