-- XEP-0357 push registrations, SQLite dialect. Kept in step with
-- ../postgres/0009_push.sql.
--
-- One row per (account, app server, node): what a client enabled with
-- <enable/>. Re-enabling the same pair replaces the row. Kept in storage
-- rather than on the session because a notification is owed while no
-- session exists at all (a message to an offline account), and after a
-- restart.

CREATE TABLE push_registrations (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The app server's JID ("XMPP Push Service"), normalized.
    service TEXT NOT NULL,
    -- The pubsub node on it; '' when the client named none.
    node TEXT NOT NULL,
    -- The publish-options data form as serialized XML, '' for none: sent
    -- back with every notification (it usually carries the app's secret).
    options TEXT NOT NULL,
    -- When it was (re-)enabled, microseconds since the Unix epoch: past the
    -- per-account cap the oldest registration goes first.
    enabled_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, service, node)
) STRICT;
