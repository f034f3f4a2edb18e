"""slixmpp against Chorus, end to end: STARTTLS and direct TLS, SCRAM-SHA-256-PLUS,
messages both ways, an IQ ping, and a resource replaced by a new login."""

import asyncio

from conftest import USERS, Client


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def exchange(alice, bob):
    alice.send_message(mto=bob.boundjid.full, mbody="hello bob", mtype="chat")
    msg = await asyncio.wait_for(bob.messages.get(), 10)
    assert msg["body"] == "hello bob"
    assert msg["from"] == alice.boundjid.full
    bob.send_message(mto=alice.boundjid.bare, mbody="hi alice", mtype="chat")
    msg = await asyncio.wait_for(alice.messages.get(), 10)
    assert msg["body"] == "hi alice"
    assert msg["from"] == bob.boundjid.full


def test_starttls_scram_plus_chat_and_ping(server):
    async def scenario():
        alice = await Client("alice@localhost/laptop", USERS["alice"], server).online()
        bob = await Client("bob@localhost/phone", USERS["bob"], server).online()
        try:
            assert alice.mechanism == "SCRAM-SHA-256-PLUS"
            assert bob.mechanism == "SCRAM-SHA-256-PLUS"
            assert str(alice.boundjid) == "alice@localhost/laptop"
            await exchange(alice, bob)
            # XEP-0199 to the other client's full JID (answered by slixmpp)
            # and to the server.
            rtt = await alice.plugin["xep_0199"].ping(jid=bob.boundjid.full, timeout=10)
            assert rtt >= 0
            rtt = await bob.plugin["xep_0199"].ping(jid="localhost", timeout=10)
            assert rtt >= 0
        finally:
            alice.disconnect()
            bob.disconnect()

    run(scenario())


def test_direct_tls_chat(server):
    async def scenario():
        alice = await Client("alice@localhost/tls", USERS["alice"], server, direct_tls=True).online()
        bob = await Client("bob@localhost/tls", USERS["bob"], server, direct_tls=True).online()
        try:
            assert alice.mechanism == "SCRAM-SHA-256-PLUS"
            await exchange(alice, bob)
        finally:
            alice.disconnect()
            bob.disconnect()

    run(scenario())


def test_third_login_replaces_the_resource(server):
    async def scenario():
        first = await Client("carol@localhost/desk", USERS["carol"], server).online()
        bob = await Client("bob@localhost/desk", USERS["bob"], server).online()
        second = await Client("carol@localhost/desk", USERS["carol"], server).online()
        try:
            await asyncio.wait_for(first.gone.wait(), 10)
            assert "conflict" in first.stream_errors
            bob.send_message(mto="carol@localhost/desk", mbody="who is there?", mtype="chat")
            msg = await asyncio.wait_for(second.messages.get(), 10)
            assert msg["body"] == "who is there?"
            assert first.messages.empty()
        finally:
            second.disconnect()
            bob.disconnect()

    run(scenario())


def test_wrong_password_is_refused(server):
    async def scenario():
        c = Client("alice@localhost/x", "not the password", server)
        c.connect("127.0.0.1", c.port)
        await asyncio.wait_for(c.gone.wait(), 20)
        assert not c.started.is_set()

    run(scenario())
