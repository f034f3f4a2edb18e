-- Instant-messaging state (PostgreSQL dialect): rosters with versioning and
-- pending inbound subscription requests (RFC 6121), offline messages,
-- private XML (XEP-0049), vCards (XEP-0054) and block lists (XEP-0191).
--
-- Kept in step with ../sqlite/0002_im.sql: same tables, same columns, same
-- constraints. The dialects differ only where they must: BIGINT and
-- SMALLINT instead of SQLite's INTEGER, and COLLATE "C" on the JID and name
-- columns so they compare and sort byte-wise, as SQLite's BINARY collation
-- does, whatever locale the cluster uses.
--
-- Invariant: every per-account table references accounts(id) with
-- ON DELETE CASCADE (roster_groups also references its item).
-- Flags are 0/1 SMALLINTs rather than BOOLEAN: sqlx's Any driver reads
-- SQLite values as integers, never as booleans, so one Rust type (i16)
-- serves both backends.
-- XML is stored as the TEXT the caller serialized; storage never parses it.
-- Times are integer microseconds since the Unix epoch.

-- One row per account whose roster ever changed. `version` is the roster
-- version (RFC 6121 §2.6), bumped by every change. `horizon` is the oldest
-- version a delta can still be computed from: removals at or below it have
-- been forgotten (see roster_tombstones).
CREATE TABLE roster_versions (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    horizon BIGINT NOT NULL
);

CREATE TABLE roster_items (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The contact's normalized bare JID.
    jid TEXT COLLATE "C" NOT NULL,
    name TEXT,
    subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    -- ask='subscribe' (pending out).
    ask SMALLINT NOT NULL CHECK (ask IN (0, 1)),
    -- approved='true' (subscription pre-approval, RFC 6121 §3.4).
    approved SMALLINT NOT NULL CHECK (approved IN (0, 1)),
    -- The roster version at which this item last changed.
    version BIGINT NOT NULL,
    PRIMARY KEY (account_id, jid)
);

-- Roster deltas select by version.
CREATE INDEX roster_items_by_version ON roster_items (account_id, version);

CREATE TABLE roster_groups (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid TEXT COLLATE "C" NOT NULL,
    -- The group's place in the item's list, from 0: the order the client
    -- gave is the order it gets back.
    ordinal BIGINT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, jid, ordinal),
    UNIQUE (account_id, jid, name),
    FOREIGN KEY (account_id, jid) REFERENCES roster_items (account_id, jid) ON DELETE CASCADE
);

-- A removed roster item's JID and the version that removed it, so a delta
-- can tell the client to drop it. Deleted when the JID is added again (the
-- item row then carries the newer version) and pruned to a bounded number
-- per account, raising roster_versions.horizon.
CREATE TABLE roster_tombstones (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (account_id, jid)
);

CREATE INDEX roster_tombstones_by_version ON roster_tombstones (account_id, version);

-- Inbound subscription requests the user has not answered (RFC 6121
-- §3.1.3), kept apart from roster_items because a request from someone not
-- in the roster creates no roster item.
CREATE TABLE roster_pending_in (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid TEXT COLLATE "C" NOT NULL,
    -- The <presence type='subscribe'/> as received, redelivered at login.
    stanza TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, jid)
);

-- The last offline message id handed out per account. Never reset while
-- the account exists, so ids are not reused after delivery empties the
-- queue, and its row is the per-account lock that makes the quota check
-- and the insert one atomic step.
CREATE TABLE offline_sequences (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    last_id BIGINT NOT NULL
);

CREATE TABLE offline_messages (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    stored_at BIGINT NOT NULL,
    stanza TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE private_xml (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The stored fragment's root element name and namespace (its key).
    name TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    xml TEXT NOT NULL,
    PRIMARY KEY (account_id, namespace, name)
);

CREATE TABLE vcards (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    vcard TEXT NOT NULL
);

CREATE TABLE blocked_jids (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- A normalized JID of any form XEP-0191 allows: full, bare, domain,
    -- or domain/resource.
    jid TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, jid)
);
