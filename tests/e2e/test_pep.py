"""slixmpp against Chorus for PEP (XEP-0163) and what clients build on it,
end to end with slixmpp's own plugins and slixmpp-omemo:

- User Avatar (XEP-0084): a contact that announces interest in the
  metadata node through its caps (XEP-0115) is notified of a new avatar
  and fetches the data.
- PEP Native Bookmarks (XEP-0402): a bookmark stored by one resource with
  the XEP-0223 publish-options is pushed to the account's other resource.
- OMEMO (XEP-0384): two slixmpp-omemo clients publish device lists and
  bundles in both namespaces (`urn:xmpp:omemo:2` and the legacy
  `eu.siacs.conversations.axolotl`), find each other's, and exchange an
  encrypted message (slixmpp-omemo encrypts messages with the legacy
  protocol only: omemo:2 messages need XEP-0420, which slixmpp lacks).

The `server` fixture is per module, so these accounts start with no
nodes whatever the other modules did."""

import asyncio
import base64

from omemo.storage import Just, Nothing, Storage
from slixmpp.plugins import register_plugin
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0402.stanza import Conference
from slixmpp_omemo import XEP_0384

from conftest import USERS, Client

OMEMO_2 = "urn:xmpp:omemo:2"
OMEMO_LEGACY = "eu.siacs.conversations.axolotl"
# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def client(jid, server, plugins=()):
    c = Client(jid, USERS[jid.split("@")[0]], server)
    for p in ("xep_0030", "xep_0060", "xep_0115", "xep_0163", *plugins):
        c.register_plugin(p)
    return c


async def befriend(a, b):
    """A mutual presence subscription; slixmpp accepts and subscribes back
    on its own (auto_authorize, auto_subscribe). Both ask for the roster
    first, so that the server pushes them the changes (RFC 6121 §2.1.6)."""
    await a.get_roster(timeout=10)
    await b.get_roster(timeout=10)
    a.send_presence(pto=b.boundjid.bare, ptype="subscribe")
    deadline = asyncio.get_running_loop().time() + 15
    while asyncio.get_running_loop().time() < deadline:
        ra = a.client_roster[b.boundjid.bare]["subscription"]
        rb = b.client_roster[a.boundjid.bare]["subscription"]
        if ra == "both" and rb == "both":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never mutual: {ra} / {rb}")


def next_event(c, name, timeout=20):
    got = asyncio.get_running_loop().create_future()

    def handler(msg):
        if not got.done():
            got.set_result(msg)

    c.add_event_handler(name, handler)
    return asyncio.wait_for(got, timeout)


def test_a_contact_is_notified_of_an_avatar_and_fetches_it(server):
    async def scenario():
        alice = await client("alice@localhost/avatar", server, ["xep_0084"]).online()
        bob = client("bob@localhost/avatar", server, ["xep_0084"])
        notified = next_event(bob, "avatar_metadata_publish")
        await bob.online()
        try:
            await befriend(alice, bob)
            avatar_id = alice.plugin["xep_0084"].generate_id(PNG)
            await alice.plugin["xep_0084"].publish_avatar(PNG, timeout=10)
            await alice.plugin["xep_0084"].publish_avatar_metadata(
                {"id": avatar_id, "type": "image/png", "bytes": len(PNG)}, timeout=10
            )
            # Live, or as the last item once the server learnt bob's caps.
            msg = await notified
            assert msg["from"].bare == "alice@localhost"
            info = msg["pubsub_event"]["items"]["item"]["avatar_metadata"]["info"]
            assert info["id"] == avatar_id
            assert int(info["bytes"]) == len(PNG)
            data = await bob.plugin["xep_0084"].retrieve_avatar(
                "alice@localhost", avatar_id, timeout=10
            )
            assert data["pubsub"]["items"]["item"]["avatar_data"]["value"] == PNG
        finally:
            alice.disconnect()
            bob.disconnect()

    run(scenario())


def bookmark_options():
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in [
        ("pubsub#persist_items", "true"),
        ("pubsub#access_model", "whitelist"),
        ("pubsub#max_items", "max"),
        ("pubsub#send_last_published_item", "never"),
    ]:
        form.add_field(var=var, value=value)
    return form


def test_a_bookmark_stored_by_one_resource_is_pushed_to_the_other(server):
    async def scenario():
        phone = client("carol@localhost/phone", server, ["xep_0402"])
        laptop = client("carol@localhost/laptop", server, ["xep_0402"])
        for c in (phone, laptop):
            c.plugin["xep_0163"].register_pep("bookmarks", Conference)
        await phone.online()
        await laptop.online()
        try:
            pushed = next_event(laptop, "bookmarks_publish")
            # Let the server learn the laptop's caps (+notify) first: a
            # bookmarks node sends no last item, so a push that came before
            # would be lost to this test, not to a real client.
            await asyncio.sleep(1)
            conference = Conference()
            conference["name"] = "Tea party"
            conference["autojoin"] = True
            conference["nick"] = "carol"
            await phone.plugin["xep_0163"].publish(
                conference,
                id="tea@conference.localhost",
                options=bookmark_options(),
                timeout=10,
            )
            msg = await pushed
            item = msg["pubsub_event"]["items"]["item"]
            assert item["id"] == "tea@conference.localhost"
            assert item["conference"]["name"] == "Tea party"
            assert item["conference"]["autojoin"]
            # Private: another account cannot read it (XEP-0223).
            dave = await client("dave@localhost/peek", server).online()
            try:
                try:
                    await dave.plugin["xep_0060"].get_items(
                        "carol@localhost", "urn:xmpp:bookmarks:1", timeout=10
                    )
                    raise AssertionError("bookmarks readable by another account")
                except Exception as e:  # slixmpp's IqError
                    assert getattr(e, "condition", "") == "not-allowed", e
            finally:
                dave.disconnect()
        finally:
            phone.disconnect()
            laptop.disconnect()

    run(scenario())


class MemoryStorage(Storage):
    """python-omemo's storage, kept in memory for one test client."""

    def __init__(self):
        super().__init__()
        self.data = {}

    async def _load(self, key):
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


class Omemo(XEP_0384):
    """slixmpp-omemo with in-memory storage and blind trust (BTBV)."""

    default_config = {"fallback_message": "This message is OMEMO encrypted."}

    def plugin_init(self):
        self._memory = MemoryStorage()
        super().plugin_init()

    @property
    def storage(self):
        return self._memory

    @property
    def _btbv_enabled(self):
        return True

    async def _devices_blindly_trusted(self, blindly_trusted, identifier):
        pass

    async def _prompt_manual_trust(self, manually_trusted, identifier):
        raise AssertionError("blind trust should decide")


register_plugin(Omemo)


def omemo_client(jid, server):
    c = client(jid, server, ["xep_0280", "xep_0334", "xep_0384"])
    c.omemo_ready = asyncio.Event()
    c.add_event_handler("omemo_initialized", lambda _: c.omemo_ready.set())
    return c


def test_two_omemo_clients_find_each_others_keys_and_exchange_a_message(server):
    async def scenario():
        alice = omemo_client("erin@localhost/omemo", server)
        bob = omemo_client("dave@localhost/omemo", server)
        await alice.online()
        await bob.online()
        try:
            await asyncio.wait_for(alice.omemo_ready.wait(), 30)
            await asyncio.wait_for(bob.omemo_ready.wait(), 30)
            # Device lists and bundles are open (access_model=open): no
            # roster needed. Each sees the other's device in both
            # namespaces, fetched from Chorus's PEP.
            alice_sm = await alice.plugin["xep_0384"].get_session_manager()
            bob_sm = await bob.plugin["xep_0384"].get_session_manager()
            await alice_sm.refresh_device_lists("dave@localhost")
            devices = await alice_sm.get_device_information("dave@localhost")
            assert len(devices) == 1, devices
            assert set(next(iter(devices)).namespaces) == {OMEMO_2, OMEMO_LEGACY}

            received = asyncio.get_running_loop().create_future()

            async def on_message(msg):
                if bob.plugin["xep_0384"].is_encrypted(msg) and not received.done():
                    received.set_result(msg)

            bob.add_event_handler("message", on_message)
            msg = alice.make_message(mto="dave@localhost", mtype="chat")
            msg["body"] = "a secret for dave"
            encrypted, errors = await alice.plugin["xep_0384"].encrypt_message(msg, {msg["to"]})
            assert encrypted is not None and not errors, errors
            # What goes over the wire carries no plaintext.
            assert "a secret" not in str(encrypted)
            encrypted.send()
            got = await asyncio.wait_for(received, 20)
            plain, sender = await bob.plugin["xep_0384"].decrypt_message(got)
            assert plain["body"] == "a secret for dave"
            assert sender.bare_jid == "erin@localhost"
            # And bob finds erin's keys in both namespaces too.
            await bob_sm.refresh_device_lists("erin@localhost")
            devices = await bob_sm.get_device_information("erin@localhost")
            assert set(next(iter(devices)).namespaces) == {OMEMO_2, OMEMO_LEGACY}
        finally:
            alice.disconnect()
            bob.disconnect()

    run(scenario())
