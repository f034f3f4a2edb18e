"""slixmpp against Chorus for instant messaging (RFC 6121), end to end: two
clients subscribe to each other, see each other come online and go away,
see the subscription as 'both' in their rosters, and a message sent to an
offline account arrives at its next login with a XEP-0203 delay stamp.

The `server` fixture is per module, so these accounts start with empty
rosters whatever test_c2s.py did."""

import asyncio

from conftest import USERS, Client


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


async def until(predicate, timeout=10):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def presence_log(client):
    """Queues of available and unavailable presence from other accounts."""
    seen = {"available": asyncio.Queue(), "unavailable": asyncio.Queue()}

    def record(kind):
        def handler(pres):
            if pres["from"].bare != client.boundjid.bare:
                seen[kind].put_nowait(pres)

        return handler

    client.add_event_handler("presence_available", record("available"))
    client.add_event_handler("presence_unavailable", record("unavailable"))
    return seen


async def next_from(queue, jid, timeout=10):
    while True:
        pres = await asyncio.wait_for(queue.get(), timeout)
        if pres["from"] == jid:
            return pres


def test_mutual_subscription_presence_and_roster(server):
    async def scenario():
        alice = Client("alice@localhost/im", USERS["alice"], server)
        bob = Client("bob@localhost/im", USERS["bob"], server)
        alice_sees, bob_sees = presence_log(alice), presence_log(bob)
        # Alice approves requests automatically but does not ask back; Bob
        # answers by hand: approves, then asks for Alice's presence too.
        alice.auto_authorize = True
        alice.auto_subscribe = False
        bob.auto_authorize = None
        bob.auto_subscribe = False
        requests = asyncio.Queue()
        bob.add_event_handler("presence_subscribe", requests.put_nowait)
        await alice.online()
        await bob.online()
        try:
            await alice.get_roster()
            await bob.get_roster()

            alice.send_presence(pto="bob@localhost", ptype="subscribe")
            req = await asyncio.wait_for(requests.get(), 10)
            assert req["from"] == "alice@localhost"
            bob.send_presence(pto="alice@localhost", ptype="subscribed")
            bob.send_presence(pto="alice@localhost", ptype="subscribe")

            # Each sees the other come online: Bob's presence follows his
            # approval, Alice's follows hers (RFC 6121 §3.1.5).
            pres = await next_from(alice_sees["available"], "bob@localhost/im")
            assert pres["to"].bare == "alice@localhost"
            await next_from(bob_sees["available"], "alice@localhost/im")

            # The roster pushes brought both rosters to 'both' ...
            await until(
                lambda: alice.client_roster["bob@localhost"]["subscription"] == "both"
                and bob.client_roster["alice@localhost"]["subscription"] == "both"
            )
            # ... and a fresh roster get (with slixmpp's cached version)
            # agrees, with nothing pending.
            await alice.get_roster()
            await bob.get_roster()
            for client, contact in ((alice, "bob@localhost"), (bob, "alice@localhost")):
                item = client.client_roster[contact]
                assert item["subscription"] == "both"
                assert not item["pending_out"]

            # Bob leaves: Alice sees him go (§4.5.2).
            bob.disconnect()
            await asyncio.wait_for(bob.gone.wait(), 10)
            pres = await next_from(alice_sees["unavailable"], "bob@localhost/im")
            assert pres["type"] == "unavailable"
        finally:
            alice.disconnect()
            bob.disconnect()

    run(scenario())


def test_message_to_an_offline_account_arrives_at_next_login_with_delay(server):
    async def scenario():
        alice = await Client("alice@localhost/sender", USERS["alice"], server).online()
        try:
            # Carol has not logged in on this server: chat goes to storage.
            alice.send_message(mto="carol@localhost", mbody="while you were out", mtype="chat")
            # The ping is answered after the message was handled (in order).
            await alice.plugin["xep_0199"].ping(jid="localhost", timeout=10)

            carol = Client("carol@localhost/back", USERS["carol"], server)
            carol.register_plugin("xep_0203")
            await carol.online()
            try:
                msg = await asyncio.wait_for(carol.messages.get(), 10)
                assert msg["body"] == "while you were out"
                assert msg["from"] == "alice@localhost/sender"
                stamp = msg["delay"]["stamp"]
                assert stamp is not None
                assert msg["delay"]["from"] == "localhost"
            finally:
                carol.disconnect()
        finally:
            alice.disconnect()

    run(scenario())
