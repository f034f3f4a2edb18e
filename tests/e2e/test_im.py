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


def test_killing_a_c2s_actor_shows_unavailable_and_carbons_reach_a_second_resource(server):
    """The issue's 'done when' in slixmpp terms: dave and erin subscribe to
    each other; an admin kills erin's c2s actor and dave sees her go; dave
    chats with erin while a second resource of his gets the carbons."""

    async def scenario():
        dave = Client("dave@localhost/desk", USERS["dave"], server)
        erin = Client("erin@localhost/desk", USERS["erin"], server)
        dave_sees = presence_log(dave)
        for c in (dave, erin):
            c.auto_authorize = True
            c.auto_subscribe = True
        await dave.online()
        await erin.online()
        phone = Client("dave@localhost/phone", USERS["dave"], server)
        phone.register_plugin("xep_0280")
        sent, received = asyncio.Queue(), asyncio.Queue()
        phone.add_event_handler("carbon_sent", sent.put_nowait)
        phone.add_event_handler("carbon_received", received.put_nowait)
        await phone.online()
        erin2 = None
        try:
            dave.send_presence(pto="erin@localhost", ptype="subscribe")
            await next_from(dave_sees["available"], "erin@localhost/desk")

            # An operator kills erin's c2s actor: dave sees her go.
            listed = server.ctl("sessions", "list", "--jid", "erin@localhost", "--json")
            assert listed.returncode == 0, listed.stderr
            import json

            conn = json.loads(listed.stdout)["sessions"][0]["conn"]
            path = f"root/listeners/port:c2s@127.0.0.1:{server.starttls_port}/conns/conn-{conn}/c2s"
            killed = server.ctl("actors", "kill", path)
            assert killed.returncode == 0, killed.stderr
            pres = await next_from(dave_sees["unavailable"], "erin@localhost/desk")
            assert pres["type"] == "unavailable"
            await asyncio.wait_for(erin.gone.wait(), 10)

            # Carbons on dave's phone for what dave/desk sends and receives.
            await phone.plugin["xep_0280"].enable()
            erin2 = await Client("erin@localhost/laptop", USERS["erin"], server).online()
            erin2.send_message(mto="dave@localhost/desk", mbody="back again", mtype="chat")
            msg = await asyncio.wait_for(dave.messages.get(), 10)
            assert msg["body"] == "back again"
            carbon = await asyncio.wait_for(received.get(), 10)
            assert carbon["carbon_received"]["body"] == "back again"
            dave.send_message(mto="erin@localhost/laptop", mbody="welcome", mtype="chat")
            carbon = await asyncio.wait_for(sent.get(), 10)
            assert carbon["carbon_sent"]["body"] == "welcome"
            assert carbon["carbon_sent"]["to"] == "erin@localhost/laptop"
        finally:
            for c in (dave, phone, erin, erin2):
                if c is not None:
                    c.disconnect()

    run(scenario())
