-- Accounts and their SCRAM credentials (SQLite dialect).
--
-- Kept in step with ../postgres/0001_accounts.sql: same tables, same columns,
-- same constraints. The dialects differ only where they must: SQLite's rowid
-- alias instead of an identity column, BLOB instead of BYTEA, and STRICT so a
-- stray TEXT bind can never land in a key column.
--
-- Invariant: every per-account table references accounts(id) with
-- ON DELETE CASCADE, so deleting the account row deletes everything it owns.
-- SQLite only honours that with PRAGMA foreign_keys = ON, which Storage sets on
-- every pooled connection.

CREATE TABLE accounts (
    -- INTEGER PRIMARY KEY makes this the rowid: assigned on insert, 64-bit.
    id INTEGER PRIMARY KEY,
    localpart TEXT NOT NULL,
    domain TEXT NOT NULL,
    -- Domain first: listing one virtual host's accounts is a range scan.
    UNIQUE (domain, localpart)
) STRICT;

CREATE TABLE scram_credentials (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The SCRAM hash name as in the mechanism name: 'SHA-1', 'SHA-256'.
    hash TEXT NOT NULL,
    salt BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (account_id, hash)
) STRICT;
