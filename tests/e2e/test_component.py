"""XEP-0114 external components end to end: slixmpp's own ComponentXMPP
connects to a `component` listener with its shared secret (the
`<handshake/>`), receives a message a slixmpp client sends to a JID of its
domain, and answers it; the client gets the answer from the component's
JID. Everything on both sides is stock slixmpp."""

import asyncio
import time

import slixmpp

from conftest import USERS, Client, free_port, wait_for_port

COMPONENT_PORT = free_port()
DOMAIN = "echo.localhost"
SECRET = "an e2e component secret"

SERVER_CONFIG = f"""
[[listeners]]
kind = "component"
address = "127.0.0.1:{COMPONENT_PORT}"

[[components]]
domain = "{DOMAIN}"
secret = "{SECRET}"
"""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


class Echo(slixmpp.ComponentXMPP):
    """Answers every message with its body, prefixed."""

    def __init__(self):
        super().__init__(DOMAIN, SECRET, "127.0.0.1", COMPONENT_PORT)
        self.started = asyncio.Event()
        self.received = asyncio.Queue()
        self.add_event_handler("session_start", lambda _: self.started.set())
        self.add_event_handler("message", self._message)

    def _message(self, msg):
        self.received.put_nowait(msg)
        msg.reply("echo: " + msg["body"]).send()


def test_component_receives_a_message_and_answers(server):
    wait_for_port(COMPONENT_PORT, time.time() + 30)

    async def scenario():
        echo = Echo()
        echo.connect()
        await asyncio.wait_for(echo.started.wait(), 20)
        alice = await Client("alice@localhost/c", USERS["alice"], server).online()
        try:
            alice.send_message(mto=f"bot@{DOMAIN}", mbody="hello", mtype="chat")
            got = await asyncio.wait_for(echo.received.get(), 20)
            assert got["from"] == "alice@localhost/c"
            assert got["to"] == f"bot@{DOMAIN}"
            assert got["body"] == "hello"
            answer = await asyncio.wait_for(alice.messages.get(), 20)
            assert answer["from"] == f"bot@{DOMAIN}"
            assert answer["body"] == "echo: hello"
        finally:
            alice.disconnect()
            echo.disconnect()

    run(scenario())
