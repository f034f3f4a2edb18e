-- When each account last went offline, and what it said then (XEP-0012
-- Last Activity), PostgreSQL dialect. Kept in step with
-- ../sqlite/0004_last_activity.sql.

CREATE TABLE last_activity (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    -- Microseconds since the Unix epoch, as the archive keeps time.
    at BIGINT NOT NULL,
    -- The status text of the last unavailable presence, '' for none.
    status TEXT NOT NULL
);
