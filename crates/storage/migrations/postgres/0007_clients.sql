-- The clients each account logs in with (XEP-0388 user agents) and their
-- FAST tokens (XEP-0484), PostgreSQL dialect. Kept in step with
-- ../sqlite/0007_clients.sql.

CREATE TABLE clients (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The <user-agent id='...'> the client sent: stable per installation.
    client_id TEXT NOT NULL COLLATE "C",
    -- What the client called itself (<software/>, <device/>), '' if nothing.
    software TEXT NOT NULL,
    device TEXT NOT NULL,
    -- Microseconds since the Unix epoch, as the archive keeps time.
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

-- XEP-0484 §6.1: at most two tokens per client, in the slots 'new' (issued,
-- not yet used) and 'current' (used at least once). The token itself is
-- not kept: `hash` is SHA-256 of it (which HMAC uses in its place, RFC 2104
-- §2) sealed under the server's key in <data_dir>/fast-token.key, so this
-- table alone logs nobody in.
CREATE TABLE fast_tokens (
    account_id BIGINT NOT NULL,
    client_id TEXT NOT NULL COLLATE "C",
    slot TEXT NOT NULL CHECK (slot IN ('new', 'current')),
    mechanism TEXT NOT NULL,
    hash BYTEA NOT NULL,
    expires BIGINT NOT NULL,
    -- The highest <fast count='N'/> accepted for this token (replays are
    -- refused), 0 before any.
    count BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id, slot),
    FOREIGN KEY (account_id, client_id) REFERENCES clients (account_id, client_id)
        ON DELETE CASCADE
);
