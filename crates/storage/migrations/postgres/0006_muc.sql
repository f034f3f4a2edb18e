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
