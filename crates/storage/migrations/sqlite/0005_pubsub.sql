-- Publish-subscribe (XEP-0060): nodes, their items, affiliations and
-- subscriptions, for every account's PEP service (XEP-0163) and for hosted
-- pubsub services. SQLite dialect; kept in step with
-- ../postgres/0005_pubsub.sql.
--
-- A node belongs to a service, named by its JID: an account's bare JID for
-- PEP, a service domain (pubsub.example.org) otherwise. A PEP node also
-- references its account, so that deleting the account deletes its nodes
-- and, through them, their items, affiliations and subscriptions.

CREATE TABLE pubsub_nodes (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    node TEXT NOT NULL,
    -- The owning account of a PEP node; NULL on a hosted service.
    account_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    -- The node configuration as the pubsub module serializes it.
    config TEXT NOT NULL,
    UNIQUE (service, node)
) STRICT;

CREATE INDEX pubsub_nodes_by_account ON pubsub_nodes (account_id);

CREATE TABLE pubsub_items (
    node_id INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    -- The publisher's JID, as XEP-0060 §7.1.2 may report it.
    publisher TEXT NOT NULL,
    -- The item's payload as serialized XML, '' for none.
    payload TEXT NOT NULL,
    -- Publication order within the node: republishing an item id moves
    -- it to the end.
    seq INTEGER NOT NULL,
    PRIMARY KEY (node_id, item_id)
) STRICT;

CREATE INDEX pubsub_items_by_seq ON pubsub_items (node_id, seq);

CREATE TABLE pubsub_affiliations (
    node_id INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    affiliation TEXT NOT NULL
        CHECK (affiliation IN ('owner', 'publisher', 'publish-only', 'member', 'outcast')),
    PRIMARY KEY (node_id, jid)
) STRICT;

CREATE TABLE pubsub_subscriptions (
    node_id INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    subid TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('subscribed', 'pending', 'unconfigured')),
    -- The subscription options as the pubsub module serializes them.
    options TEXT NOT NULL,
    PRIMARY KEY (node_id, jid, subid)
) STRICT;
