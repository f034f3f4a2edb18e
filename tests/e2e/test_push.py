"""XEP-0357 push notifications end to end. An "app server" is a plain
slixmpp client whose full JID is the push jid: it answers each pubsub
publish with a result, as a real app server does. The user enables push
with a publish-options secret, turns on stream management with
resumption, and loses its connection without closing the stream (the
session waits, detached); a third client sends N messages. The app server
gets exactly N notifications, none with a body, each with the secret.

slixmpp 1.17 has no XEP-0357 plugin, so `<enable/>` is built by hand here;
everything else (SASL, stream management, IQ handling) is slixmpp's own.
"""

import asyncio
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import USERS, Client
from test_sm import SmClient, conn_of, wait_detached

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
SECRET = "eW91IGZvdW5kIGl0"
NODE = "device-token-1"
N = 5


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


class AppServer(Client):
    """Answers every pubsub publish it is sent and keeps it."""

    def __init__(self, jid, password, server):
        super().__init__(jid, password, server)
        self.notifications = asyncio.Queue()
        self.register_handler(
            Callback(
                "push notification",
                MatchXPath(f"{{jabber:client}}iq/{{{NS_PUBSUB}}}pubsub"),
                self._publish,
            )
        )

    def _publish(self, iq):
        if iq["type"] != "set":
            return
        self.notifications.put_nowait(ET.fromstring(ET.tostring(iq.xml)))
        iq.reply(clear=True).send()


def fields(form):
    return {
        f.get("var"): [v.text for v in f.findall(f"{{{NS_DATA}}}value")]
        for f in form.findall(f"{{{NS_DATA}}}field")
    }


def check(notification, user_bare, app_full):
    assert notification.get("from") == user_bare, ET.tostring(notification)
    assert notification.get("to") == app_full
    pubsub = notification.find(f"{{{NS_PUBSUB}}}pubsub")
    publish = pubsub.find(f"{{{NS_PUBSUB}}}publish")
    assert publish.get("node") == NODE
    summary = publish.find(
        f"{{{NS_PUBSUB}}}item/{{{NS_PUSH}}}notification/{{{NS_DATA}}}x"
    )
    got = fields(summary)
    assert got["FORM_TYPE"] == ["urn:xmpp:push:summary"]
    # No body (and no sender) by default: the app server learns that a
    # message came, nothing of what it says.
    assert "last-message-body" not in got, got
    assert "last-message-sender" not in got, got
    assert b"while away" not in ET.tostring(notification)
    options = pubsub.find(f"{{{NS_PUBSUB}}}publish-options/{{{NS_DATA}}}x")
    assert fields(options)["secret"] == [SECRET]


async def enable_push(client, app_jid):
    iq = client.make_iq_set()
    iq.append(
        ET.fromstring(
            f"<enable xmlns='{NS_PUSH}' jid='{app_jid}' node='{NODE}'>"
            f"<x xmlns='{NS_DATA}' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
            f"<field var='secret'><value>{SECRET}</value></field></x></enable>"
        )
    )
    answer = await iq.send(timeout=10)
    assert answer["type"] == "result"


async def one_notification_per_message_to_a_detached_session(server):
    app = AppServer("erin@localhost/push", USERS["erin"], server)
    alice = SmClient("alice@localhost/phone", USERS["alice"], server)
    bob = Client("bob@localhost/desk", USERS["bob"], server)
    await app.online()
    await alice.online()
    await asyncio.wait_for(alice.enabled.wait(), 10)
    assert alice.plugin["xep_0198"].sm_id
    await bob.online()
    try:
        await enable_push(alice, app.boundjid.full)
        # Attached, a message is delivered and nobody is notified.
        bob.send_message(mto=alice.boundjid.full, mbody="here?", mtype="chat")
        assert (await asyncio.wait_for(alice.messages.get(), 10))["body"] == "here?"

        # The transport goes; the session waits for resumption.
        conn = conn_of(server, alice.boundjid.full)
        alice.abort()
        await asyncio.wait_for(alice.gone.wait(), 10)
        await wait_detached(server, conn)

        for i in range(N):
            bob.send_message(mto=alice.boundjid.full, mbody=f"while away {i}", mtype="chat")
        got = []
        for _ in range(N):
            got.append(await asyncio.wait_for(app.notifications.get(), 15))
        # Exactly N: nothing more after a round trip and a pause.
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=10)
        await asyncio.sleep(1.0)
        assert app.notifications.empty(), "more notifications than messages"
        for n in got:
            check(n, "alice@localhost", app.boundjid.full)
    finally:
        for c in (app, alice, bob):
            c.disconnect()


def test_a_detached_session_gets_one_notification_per_message_and_no_body(server):
    run(one_notification_per_message_to_a_detached_session(server))
