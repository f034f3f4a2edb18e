-- Message archives (XEP-0313) and archiving preferences (XEP-0441), SQLite
-- dialect.
--
-- Kept in step with ../postgres/0003_archive.sql: same tables, same columns,
-- same constraints, same indexes; the dialects differ only in the integer
-- types (INTEGER here, BIGINT/SMALLINT there) and COLLATE "C" there.
--
-- Invariant: every per-account table references accounts(id) with
-- ON DELETE CASCADE. Times are integer microseconds since the Unix epoch;
-- flags are 0/1 integers (see 0002_im.sql for why).

-- The newest archived_at handed out per account. Its row is the per-account
-- lock under which a message gets its place in the archive (as
-- offline_sequences is for offline messages), so places commit in
-- increasing order: a reader that sees a message has seen every earlier one,
-- and paging "after X" can never skip a message that commits later. Never
-- reset while the account exists, so purging the archive does not let a new
-- message take an old place.
CREATE TABLE archive_sequences (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    last_at INTEGER NOT NULL
) STRICT;

CREATE TABLE archive_messages (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- When the message was archived, made strictly increasing per account:
    -- it is the archive order, the XEP-0203 stamp of the result and what
    -- 'start'/'end' filter on, all in one column, so every query is one
    -- index range.
    archived_at INTEGER NOT NULL,
    -- The XEP-0359 stanza-id: random, opaque, unique within the archive.
    stanza_id TEXT NOT NULL,
    -- The other party, split so that 'with' as a bare JID is an index
    -- equality and a full JID adds the resource ('' when there is none).
    with_bare TEXT NOT NULL,
    with_resource TEXT NOT NULL,
    -- 1: the account's user sent it; 0: received.
    outgoing INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
    -- The serialized <message/>, as delivered.
    stanza TEXT NOT NULL,
    PRIMARY KEY (account_id, archived_at),
    -- Cursor and before-id/after-id/ids lookups.
    UNIQUE (account_id, stanza_id)
) STRICT;

-- Queries filtered by 'with': equality on the first two columns, then the
-- same time range and order as the primary key.
CREATE INDEX archive_messages_by_with ON archive_messages (account_id, with_bare, archived_at);

-- The retention sweep deletes the oldest messages of all accounts in
-- batches.
CREATE INDEX archive_messages_by_age ON archive_messages (archived_at);

-- An account's archiving default (XEP-0441); no row means the server's
-- configured default.
CREATE TABLE archive_prefs (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    default_mode TEXT NOT NULL CHECK (default_mode IN ('always', 'never', 'roster'))
) STRICT;

-- JIDs always (1) or never (0) archived, whatever the default. One row per
-- JID, so a JID cannot be on both lists.
CREATE TABLE archive_pref_jids (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    always INTEGER NOT NULL CHECK (always IN (0, 1)),
    PRIMARY KEY (account_id, jid)
) STRICT;
