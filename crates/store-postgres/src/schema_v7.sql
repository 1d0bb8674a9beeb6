-- A record's blind-index entries by record: what a purge, an erasure, a retention reduction and
-- an update of a searchable field delete. Without it each of those scans the tenant's (or the
-- field's) whole index.
CREATE INDEX blind_index_record ON blind_index (tenant, record);

-- Blocked records by id (the purge's and the pending list's order), with what the purge reads
-- of them. The index of v9 led with `blocked_at`, so each page ordered by id re-read every
-- blocked record of the collection: a purge of a million records did a million squared.
DROP INDEX records_blocked;
CREATE INDEX records_blocked ON records (tenant, collection, id, blocked_at, subject) WHERE state = 1;
