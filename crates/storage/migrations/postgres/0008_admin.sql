-- What operators set on accounts and domains (XEP-0133 Service
-- Administration, `chorusctl user disable` and `motd`), PostgreSQL dialect.
-- Kept in step with ../sqlite/0008_admin.sql.

-- An account an operator disabled: it may not log in and its sessions were
-- ended; its data stays. One row per disabled account, gone when it is
-- re-enabled or deleted.
CREATE TABLE account_disabled (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    -- What the operator gave as the reason, '' for none.
    reason TEXT NOT NULL,
    -- Microseconds since the Unix epoch, as the archive keeps time.
    at BIGINT NOT NULL
);

-- The message of the day of each served domain, sent to every session of
-- the domain at its initial presence. A domain is not an account: the row
-- outlives every account and goes only when an operator deletes it.
CREATE TABLE motd (
    domain TEXT COLLATE "C" PRIMARY KEY,
    text TEXT NOT NULL,
    at BIGINT NOT NULL
);
