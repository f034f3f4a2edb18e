"""XEP-0198 stream management with slixmpp's own xep_0198 plugin: the
connection drops (the transport is aborted, or an operator kills the
connection's receiver actor), slixmpp reconnects and resumes, and every
message sent meanwhile arrives exactly once."""

import asyncio
import json

from conftest import USERS, Client


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class SmClient(Client):
    """A conftest client with stream management and resumption on."""

    def __init__(self, jid, password, server):
        super().__init__(jid, password, server)
        self.register_plugin("xep_0198")
        self.plugin["xep_0198"].allow_resume = True
        self.enabled = asyncio.Event()
        self.resumed = asyncio.Event()
        self.add_event_handler("sm_enabled", lambda _: self.enabled.set())
        self.add_event_handler("session_resumed", lambda _: self.resumed.set())

    async def reconnect_and_resume(self, timeout=20):
        self.gone.clear()
        self.resumed.clear()
        self.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self.resumed.wait(), timeout)


async def bodies(client, count, timeout=10):
    got = []
    for _ in range(count):
        msg = await asyncio.wait_for(client.messages.get(), timeout)
        got.append(msg["body"])
    return got


def conn_of(server, jid):
    listed = server.ctl("sessions", "list", "--jid", jid.split("/")[0], "--json")
    assert listed.returncode == 0, listed.stderr
    for s in json.loads(listed.stdout)["sessions"]:
        if s["jid"] == jid:
            return s["conn"]
    raise AssertionError(f"no session for {jid}: {listed.stdout}")


def conn_path(server, conn):
    return f"root/listeners/port:c2s@127.0.0.1:{server.starttls_port}/conns/conn-{conn}"


async def wait_detached(server, conn, timeout=10):
    """Until the connection's group holds c2s alone (the session waits)."""
    path = conn_path(server, conn)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        tree = server.ctl("actors", "tree", "--path", path, "--json")
        if tree.returncode == 0:
            node = json.loads(tree.stdout)["tree"]
            children = [c["id"] for c in node.get("children", [])]
            if children == ["c2s"]:
                return
        assert asyncio.get_running_loop().time() < deadline, tree.stdout + tree.stderr
        await asyncio.sleep(0.1)


async def dropped_and_resumed(server, user, drop):
    alice = SmClient(f"{user}@localhost/sm", USERS[user], server)
    bob = Client("bob@localhost/sm", USERS["bob"], server)
    await alice.online()
    await asyncio.wait_for(alice.enabled.wait(), 10)
    assert alice.plugin["xep_0198"].sm_id
    await bob.online()
    try:
        bob.send_message(mto=alice.boundjid.full, mbody="before", mtype="chat")
        assert await bodies(alice, 1) == ["before"]

        conn = conn_of(server, alice.boundjid.full)
        drop(alice, conn)
        await asyncio.wait_for(alice.gone.wait(), 10)
        # The session outlives its connection, detached in the tree.
        await wait_detached(server, conn)
        for i in range(5):
            bob.send_message(mto=alice.boundjid.full, mbody=f"while away {i}", mtype="chat")
        # Bob's messages reached the server before alice comes back.
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=10)

        await alice.reconnect_and_resume()
        assert str(alice.boundjid) == f"{user}@localhost/sm", "same session, no new bind"
        assert await bodies(alice, 5) == [f"while away {i}" for i in range(5)]
        # Nothing twice: a ping round trip, and no message is left over.
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=10)
        await asyncio.sleep(0.2)
        assert alice.messages.empty()
        # The session lives on the new connection and works both ways.
        assert conn_of(server, alice.boundjid.full) != conn
        alice.send_message(mto=bob.boundjid.full, mbody="back", mtype="chat")
        assert await bodies(bob, 1) == ["back"]
    finally:
        alice.disconnect()
        bob.disconnect()


def test_aborted_transport_resumes_without_losing_messages(server):
    run(dropped_and_resumed(server, "carol", lambda client, _conn: client.abort()))


def test_killed_receiver_resumes_without_losing_messages(server):
    def kill_receiver(_client, conn):
        killed = server.ctl("actors", "kill", f"{conn_path(server, conn)}/receiver")
        assert killed.returncode == 0, killed.stderr

    run(dropped_and_resumed(server, "dave", kill_receiver))
