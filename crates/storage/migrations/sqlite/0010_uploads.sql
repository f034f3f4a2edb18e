-- HTTP File Upload (XEP-0363): one row per slot handed out, sqlite dialect.
-- Kept in step with ../postgres/0010_uploads.sql.
-- The owner is a bare JID, not a foreign key: the files on disk must be
-- found and deleted when the account goes (the upload module's
-- account-removed hook does both), which a cascade would not do.

CREATE TABLE uploads (
    -- Random, part of every URL of the file.
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    -- Microseconds since the Unix epoch, as the archive keeps time.
    created INTEGER NOT NULL,
    -- 1 once the file is stored, 0 while only the slot exists.
    complete INTEGER NOT NULL
) STRICT;

CREATE INDEX uploads_owner ON uploads (owner);
CREATE INDEX uploads_created ON uploads (created);
