-- The consent register (GDPR Art. 7, 21): every change of a subject's consent to a purpose, or
-- objection to one, in order. The latest row per (subject, purpose) is the state in force; a
-- read for a purpose based on consent looks it up by this primary key.
CREATE TABLE consents (
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
) STRICT;

-- The subject's flags are read with every record (a correlated lookup by (tenant, id)): an
-- index that holds them answers it without a visit to the table row.
CREATE INDEX subjects_flags ON subjects (tenant, id, flags);
