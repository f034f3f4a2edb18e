-- HTTP File Upload (XEP-0363): one row per slot handed out, postgres dialect.
-- Kept in step with ../sqlite/0010_uploads.sql.
-- The owner is a bare JID, not a foreign key: the files on disk must be
-- found and deleted when the account goes (the upload module's
-- account-removed hook does both), which a cascade would not do.

CREATE TABLE uploads (
    -- Random, part of every URL of the file.
    id TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT COLLATE "C" NOT NULL,
    filename TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    -- Microseconds since the Unix epoch, as the archive keeps time.
    created BIGINT NOT NULL,
    -- 1 once the file is stored, 0 while only the slot exists.
    complete BIGINT NOT NULL
);

CREATE INDEX uploads_owner ON uploads (owner);
CREATE INDEX uploads_created ON uploads (created);
