-- Persistent multi-user chat rooms (XEP-0045), PostgreSQL dialect. Kept in
-- step with ../sqlite/0006_muc.sql.
--
-- A room is one row: what disco#items lists without loading the room
-- (its service, name and whether it is public) in columns, and the rest
-- (configuration, affiliations, subject, registered nicks) as the muc
-- module serializes it. A room is small and is written whole, so every
-- write is one idempotent upsert: a room actor killed half-way through
-- one and restarted writes it again with no harm.

CREATE TABLE muc_rooms (
    jid TEXT COLLATE "C" PRIMARY KEY,
    service TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    public BIGINT NOT NULL CHECK (public IN (0, 1)),
    state TEXT NOT NULL
);

CREATE INDEX muc_rooms_by_service ON muc_rooms (service, jid);

-- A room's message archive (XEP-0313 on the room's JID, kept while the
-- room's configuration enables logging). As in an account's archive, a
-- message's place is archived_at, its archiving time in microseconds made
-- strictly increasing per room: one column is the order, the stamp and the
-- paging key. Only the room's actor appends to its archive, so places are
-- handed out without a lock; an append names its stanza-id, and one
-- already there is left alone, so the actor may repeat an append that a
-- kill interrupted.
CREATE TABLE muc_messages (
    room TEXT COLLATE "C" NOT NULL,
    archived_at BIGINT NOT NULL,
    stanza_id TEXT COLLATE "C" NOT NULL,
    -- The sender's nick: 'with' as room/nick filters on it.
    nick TEXT COLLATE "C" NOT NULL,
    -- The <message/> as the room broadcast it.
    stanza TEXT NOT NULL,
    PRIMARY KEY (room, archived_at)
);

CREATE UNIQUE INDEX muc_messages_by_id ON muc_messages (room, stanza_id);
CREATE INDEX muc_messages_by_nick ON muc_messages (room, nick, archived_at);
