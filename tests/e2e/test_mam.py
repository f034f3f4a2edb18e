"""slixmpp against Chorus for XEP-0313 Message Archive Management (version
1.1.1), end to end with slixmpp's own xep_0313 plugin: a client sends
messages, then queries its archive and sees them, in order, under the
XEP-0359 stanza-ids the recipient was given; paging goes through slixmpp's
XEP-0059 iterator; the server advertises MAM on the account's bare JID.

The `server` fixture is per module, so these archives start empty whatever
the other modules did."""

import asyncio

from conftest import USERS, Client


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def mam_client(jid, server):
    client = Client(jid, USERS[jid.split("@")[0]], server)
    for plugin in ("xep_0030", "xep_0313", "xep_0359"):
        client.register_plugin(plugin)
    return client


def body_of(result):
    """The archived message's body from a MAM result message."""
    return result["mam_result"]["forwarded"]["stanza"]["body"]


def test_sent_messages_come_back_from_the_archive(server):
    async def scenario():
        alice = await mam_client("alice@localhost/mam", server).online()
        bob = await mam_client("bob@localhost/mam", server).online()
        try:
            texts = [f"archived message {i}" for i in range(5)]
            for text in texts:
                alice.send_message(mto="bob@localhost", mbody=text, mtype="chat")
            # Bob receives each with a stanza-id by his own archive.
            received = []
            for text in texts:
                msg = await asyncio.wait_for(bob.messages.get(), 10)
                assert msg["body"] == text
                assert msg["stanza_id"]["by"] == "bob@localhost"
                assert msg["stanza_id"]["id"]
                received.append(msg["stanza_id"]["id"])

            # XEP-0313 §7: advertised on the account's bare JID.
            info = await alice.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=10)
            features = info["disco_info"]["features"]
            assert "urn:xmpp:mam:2" in features
            assert "urn:xmpp:mam:2#extended" in features

            # Alice's archive: what she sent, in order, in one page.
            iq = await alice.plugin["xep_0313"].retrieve(rsm={"max": 50}, timeout=10)
            assert [body_of(r) for r in iq["mam"]["results"]] == texts
            assert iq["mam_fin"]["complete"]

            # Filtered by the correspondent, and paged two at a time
            # through slixmpp's RSM iterator.
            paged = [
                r
                async for r in alice.plugin["xep_0313"].iterate(
                    with_jid="bob@localhost", rsm={"max": 2}
                )
            ]
            assert [body_of(r) for r in paged] == texts

            # Bob's archive: the same messages, under the ids he was given.
            iq = await bob.plugin["xep_0313"].retrieve(rsm={"max": 50}, timeout=10)
            results = iq["mam"]["results"]
            assert [body_of(r) for r in results] == texts
            assert [r["mam_result"]["id"] for r in results] == received
            assert all(
                r["mam_result"]["forwarded"]["stanza"]["from"] == "alice@localhost/mam"
                for r in results
            )

            # Backwards from the end (an empty RSM <before/>), as clients
            # load recent history: newest first, two at a time.
            recent = [
                r
                async for r in bob.plugin["xep_0313"].iterate(
                    reverse=True, rsm={"max": 2}, total=3
                )
            ]
            assert [body_of(r) for r in recent] == texts[::-1][:3]

            # The query form lists the fields (§4.1.5).
            form = await alice.plugin["xep_0313"].get_fields(timeout=10)
            fields = {field["var"] for field in form["fields"]}
            assert {"with", "start", "end", "before-id", "after-id", "ids"} <= fields
        finally:
            alice.disconnect()
            bob.disconnect()

    run(scenario())
