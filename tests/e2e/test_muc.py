"""slixmpp against Chorus for XEP-0045 Multi-User Chat, end to end with
slixmpp's own xep_0045 plugin, on the service at `conference.localhost`:

- A reserved room: its creator finds it locked (status 201, nobody else
  gets in), makes it members-only with the owner's configuration form;
  a non-member is refused, a mediated invitation makes him a member, he
  joins from two clients under one nick; every session of every occupant
  receives each groupchat message exactly once, with the room's
  XEP-0359 stanza-id and a XEP-0421 occupant-id; a nick change (303) and
  a kick (307) are seen by those concerned. The room's archive (XEP-0313
  on the room's JID, read with slixmpp's xep_0313) holds what was said,
  once each, in the order the occupants got it, from the senders' nicks,
  under the stanza-ids they got; it is closed to one who never was a
  member (`forbidden`).
- Killing a room's actor (`chorusctl actors kill`) while its occupants
  talk over each other, in a members-only, moderated room that logs (the
  default: status 170): the room restarts with its occupants, every
  message it accepted reaches every occupant once, in its sender's order,
  and the room's archive holds each of them once, in its sender's order.
- A moderated room: a visitor is refused (`forbidden`), asks for voice
  (the moderator gets the XEP-0045 §8.6 form) and speaks once given it.
- A refused entry reaches slixmpp's join_muc_wait as an error (the error
  presence carries the MUC <x/>, §7.2.1).

The `server` fixture is per module, so these rooms start out not
existing whatever the other modules did."""

import asyncio
import json
from collections import Counter

import pytest
from slixmpp.exceptions import IqError, PresenceError

from conftest import USERS, Client

SERVICE = "conference.localhost"
OCCUPANT_ID = "urn:xmpp:occupant-id:0"
MAM = "urn:xmpp:mam:2"
MUC_USER = "http://jabber.org/protocol/muc#user"

# Flood control (`muc.message_burst`, 10 by default) would refuse part of
# the stream of messages the actor test has each occupant send; it is not
# what these tests are about.
SERVER_CONFIG = """
[muc]
message_burst = 1000
"""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 180))


def muc_client(jid, server):
    c = Client(jid, USERS[jid.split("@")[0]], server)
    for p in ("xep_0030", "xep_0045", "xep_0313", "xep_0359"):
        c.register_plugin(p)
    return c


def muc(client):
    return client.plugin["xep_0045"]


def occupant_id(stanza):
    """The XEP-0421 occupant id the room put on a stanza, or None."""
    el = stanza.xml.find(f"{{{OCCUPANT_ID}}}occupant-id")
    return None if el is None else el.get("id")


def next_event(c, name, match=lambda _: True, timeout=30):
    """The next `name` event of `c` that `match`es, as an awaitable; the
    handler is in place before the call returns."""
    got = asyncio.get_running_loop().create_future()

    def handler(stanza):
        if not got.done() and match(stanza):
            got.set_result(stanza)

    c.add_event_handler(name, handler)

    async def wait():
        try:
            return await asyncio.wait_for(got, timeout)
        finally:
            c.del_event_handler(name, handler)

    return asyncio.ensure_future(wait())


async def room_archive(client, room, page=50):
    """The whole archive of `room` as `client` reads it with slixmpp's
    xep_0313 (paged through its RSM iterator): the result messages, in
    the archive's order. (The iterator ends quietly on an error; a refusal
    is to be asked with `retrieve`, which raises it.)"""
    return [r async for r in client.plugin["xep_0313"].iterate(jid=room, rsm={"max": page})]


def archived(result):
    """The message a MAM result forwards."""
    return result["mam_result"]["forwarded"]["stanza"]


def real_jids(stanza):
    """The real JIDs a stanza from a room gives away (muc#user items)."""
    return [i.get("jid") for i in stanza.xml.iter(f"{{{MUC_USER}}}item") if i.get("jid")]


def presence_of(room, nick, *codes, ptype=None):
    """A matcher for the presence of `room/nick` with these status codes."""

    def match(pres):
        return (
            pres["from"] == f"{room}/{nick}"
            and set(codes) <= pres["muc"]["status_codes"]
            and (ptype is None or pres["type"] == ptype)
        )

    return match


class Transcript:
    """The live groupchat messages with a body one client gets from a
    room, in order (the discussion history sent on joining, which carries
    a XEP-0203 delay from the room, is left out)."""

    def __init__(self, client, room, name):
        self.room = room
        self.name = name
        self.messages = []
        self.changed = asyncio.Event()
        client.add_event_handler(f"muc::{room}::message", self._add)

    def _add(self, msg):
        delay = msg.get_plugin("delay", check=True)
        if delay is not None and delay["from"] == self.room:
            return
        self.messages.append(msg)
        self.changed.set()

    @property
    def bodies(self):
        return [m["body"] for m in self.messages]

    async def until(self, what, done, timeout=60):
        """Waits until `done(self)`; on time out, says what it waited for
        and what came."""

        async def loop():
            while not done(self):
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.name} never got {what}; got {len(self.messages)}: {self.bodies}"
            ) from None

    async def has(self, *bodies, timeout=60):
        await self.until(
            f"{list(bodies)}", lambda t: set(bodies) <= set(t.bodies), timeout
        )


async def refused_entry(client, room, nick):
    """Tries to enter `room` as `nick` with slixmpp's join_muc_wait, which
    is to be refused. Returns the room's error presence, and whether
    join_muc_wait saw it (raised PresenceError): it does only when the
    error carries the MUC <x/> (see
    test_a_refused_entry_is_reported_to_slixmpp); here the refusal itself
    is what is tested."""
    error = next_event(client, "presence_error", lambda p: p["from"] == f"{room}/{nick}")
    join = asyncio.ensure_future(muc(client).join_muc_wait(room, nick, timeout=60))
    pres = await error
    # slixmpp handles the error presence in the same turn as the event
    # above: the join ends now or never.
    try:
        await asyncio.wait_for(join, 5)
    except PresenceError as e:
        assert e.condition == pres["error"]["condition"]
        return pres, True
    except asyncio.TimeoutError:
        return pres, False
    raise AssertionError(f"{client.boundjid} entered {room} as {nick}")


def assert_each_once(transcripts, expected):
    """Every transcript has exactly the `expected` bodies, each once, each
    with the room's stanza-id; a message has the same stanza-id for
    every recipient, and no two messages share one."""
    ids = {}
    for t in transcripts:
        got = Counter(t.bodies)
        assert got == Counter(expected), (
            f"{t.name}: missing {Counter(expected) - got}, extra {got - Counter(expected)}"
        )
        for m in t.messages:
            sid = m["stanza_id"]
            assert sid["by"] == t.room, m
            assert sid["id"], m
            assert ids.setdefault(m["body"], sid["id"]) == sid["id"], (
                f"{m['body']!r}: stanza-id differs between recipients"
            )
    assert len(set(ids.values())) == len(ids), "two messages share a stanza-id"


async def create_room(owner, room, nick, **config):
    """Creates a reserved room (XEP-0045 §10.1.3): join, then submit the
    owner's configuration form with `config` (`muc#roomconfig_` fields),
    which unlocks it. Returns the self-presence."""
    pres, _subject, _occupants, _history = await muc(owner).join_muc_wait(room, nick, timeout=30)
    form = await muc(owner).get_room_config(room, timeout=30)
    fields = form.get_fields()
    values = {}
    for key, value in config.items():
        var = f"muc#roomconfig_{key}"
        assert var in fields, f"{var} not in the configuration form: {list(fields)}"
        values[var] = value
    form.set_values(values)
    await muc(owner).set_room_config(room, form, timeout=30)
    return pres


def test_reserved_members_only_room(server):
    room = f"tea@{SERVICE}"

    async def scenario():
        alice = muc_client("alice@localhost/desk", server)
        bob_phone = muc_client("bob@localhost/phone", server)
        bob_laptop = muc_client("bob@localhost/laptop", server)
        carol = muc_client("carol@localhost/pc", server)
        erin = muc_client("erin@localhost/pc", server)
        clients = (alice, bob_phone, bob_laptop, carol, erin)
        for c in clients:
            await c.online()
        try:
            # §10.1.1: the room is created, reserved (the MUC <x/>), and its
            # creator is its owner; it stays locked until configured.
            pres, _subject, _occupants, _history = await muc(alice).join_muc_wait(
                room, "Alice", timeout=30
            )
            assert {110, 201} <= pres["muc"]["status_codes"], pres
            assert pres["muc"]["affiliation"] == "owner"
            assert pres["muc"]["role"] == "moderator"
            alice_id = occupant_id(pres)
            assert alice_id
            # Nobody else gets into a locked room (§10.1.1: item-not-found).
            error, _ = await refused_entry(bob_laptop, room, "Bob")
            assert error["error"]["condition"] == "item-not-found", error

            # §10.1.3: the owner's form configures the room and unlocks it.
            form = await muc(alice).get_room_config(room, timeout=30)
            fields = form.get_fields()
            # (slixmpp reads a hidden field's values as a list.)
            assert fields["FORM_TYPE"]["value"] == ["http://jabber.org/protocol/muc#roomconfig"]
            for var in ("membersonly", "moderatedroom", "roomname", "whois"):
                assert f"muc#roomconfig_{var}" in fields, list(fields)
            form.set_values(
                {
                    "muc#roomconfig_roomname": "Tea party",
                    "muc#roomconfig_membersonly": True,
                    "muc#roomconfig_moderatedroom": False,
                }
            )
            await muc(alice).set_room_config(room, form, timeout=30)
            info = await alice.plugin["xep_0030"].get_info(jid=room, timeout=30)
            features = info["disco_info"]["features"]
            assert "muc_membersonly" in features and "muc_unmoderated" in features, features
            # XEP-0313 §7: the room keeps an archive, on its bare JID (§3.3.2).
            assert MAM in features, features
            identities = info["disco_info"]["identities"]
            assert ("conference", "text", None, "Tea party") in identities, identities

            # §7.2.6: not a member, not in.
            error, _ = await refused_entry(bob_laptop, room, "Bob")
            assert error["error"]["condition"] == "registration-required", error

            # §7.8.2: the owner's mediated invitation reaches bob, from the
            # room, and makes him a member. (The phone takes it: slixmpp
            # hides invitations to a room the client tried to join, as
            # the laptop did.)
            invited = next_event(bob_phone, "groupchat_invite")
            muc(alice).invite(room, "bob@localhost", reason="Tea?")
            inv = await invited
            assert inv["from"] == room
            assert inv["muc"]["invite"]["from"].bare == "alice@localhost"
            assert inv["muc"]["invite"]["reason"] == "Tea?"
            members = await muc(alice).get_affiliation_list(room, "member", timeout=30)
            assert [str(j) for j in members] == ["bob@localhost"]

            # Bob joins from both clients under one nick (§7.2: one
            # occupant, two sessions).
            sees_bob = next_event(alice, f"muc::{room}::got_online", presence_of(room, "Bob"))
            pres, subject, occupants, _ = await muc(bob_phone).join_muc_wait(room, "Bob", timeout=30)
            assert 110 in pres["muc"]["status_codes"] and 201 not in pres["muc"]["status_codes"]
            assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("member", "participant")
            # The room logs (the default), and says so (status 170).
            assert 170 in pres["muc"]["status_codes"], pres
            # §7.2.3: the others' presence first, then one's own.
            assert [p["from"] for p in occupants] == [f"{room}/Alice", f"{room}/Bob"]
            assert subject["from"].bare == room
            bob_id = occupant_id(pres)
            # Semi-anonymous by default: the moderator sees bob's real JID.
            seen = await sees_bob
            assert seen["muc"]["jid"] == "bob@localhost/phone"
            assert occupant_id(seen) == bob_id
            pres, _, _, _ = await muc(bob_laptop).join_muc_wait(room, "Bob", timeout=30)
            assert 110 in pres["muc"]["status_codes"]
            assert occupant_id(pres) == bob_id
            assert sorted(muc(bob_laptop).get_roster(room)) == ["Alice", "Bob"]

            # Everyone says something; every session of every occupant
            # gets each message once, from the sender's nick, with the
            # room's stanza-id and the sender's occupant-id.
            heard = {
                "alice": Transcript(alice, room, "alice"),
                "bob/phone": Transcript(bob_phone, room, "bob/phone"),
                "bob/laptop": Transcript(bob_laptop, room, "bob/laptop"),
            }
            said = {
                "Alice wonders who is late": alice,
                "Bob's phone says hi": bob_phone,
                "Bob's laptop says hi": bob_laptop,
            }
            for body, c in said.items():
                c.send_message(mto=room, mbody=body, mtype="groupchat")
            for t in heard.values():
                await t.has(*said)
            assert_each_once(heard.values(), list(said))
            for t in heard.values():
                by_body = {m["body"]: m for m in t.messages}
                assert by_body["Alice wonders who is late"]["from"] == f"{room}/Alice"
                for body in ("Bob's phone says hi", "Bob's laptop says hi"):
                    assert by_body[body]["from"] == f"{room}/Bob"
                    assert occupant_id(by_body[body]) == bob_id
                assert occupant_id(by_body["Alice wonders who is late"]) == alice_id
            assert alice_id != bob_id

            # §7.6: alice changes her nick; bob sees Alice leave with 303
            # and the new nick, then Alicia arrive, the same occupant.
            left = next_event(
                bob_phone, f"muc::{room}::presence", presence_of(room, "Alice", 303, ptype="unavailable")
            )
            came = next_event(bob_phone, f"muc::{room}::got_online", presence_of(room, "Alicia"))
            assert await muc(alice).set_self_nick(room, "Alicia", timeout=30) == "Alicia"
            assert (await left)["muc"]["item_nick"] == "Alicia"
            assert occupant_id(await came) == alice_id
            assert sorted(muc(bob_phone).get_roster(room)) == ["Alicia", "Bob"]
            alice.send_message(mto=room, mbody="Call me Alicia", mtype="groupchat")
            for t in heard.values():
                await t.has("Call me Alicia")
            renamed = [m for m in heard["bob/laptop"].messages if m["body"] == "Call me Alicia"][0]
            assert renamed["from"] == f"{room}/Alicia"
            assert occupant_id(renamed) == alice_id

            # §9.3, §8.2: alice makes carol a member, carol joins, alice
            # kicks her; carol and bob see status 307.
            await muc(alice).set_affiliation(room, "member", jid="carol@localhost", timeout=30)
            heard["carol"] = Transcript(carol, room, "carol")
            pres, _, _, _ = await muc(carol).join_muc_wait(room, "Carol", timeout=30)
            assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("member", "participant")
            alice.send_message(mto=room, mbody="Welcome Carol", mtype="groupchat")
            for t in heard.values():
                await t.has("Welcome Carol")
            kicked = next_event(
                carol, f"muc::{room}::self-presence", presence_of(room, "Carol", 307, ptype="unavailable")
            )
            bob_sees = next_event(
                bob_laptop, f"muc::{room}::presence", presence_of(room, "Carol", 307, ptype="unavailable")
            )
            await muc(alice).set_role(room, "Carol", "none", reason="Too much sugar", timeout=30)
            pres = await kicked
            assert 110 in pres["muc"]["status_codes"]
            assert pres["muc"]["role"] == "none"
            assert pres["muc"]["item"]["reason"] == "Too much sugar"
            assert pres["muc"]["item"]["actor"]["nick"] == "Alicia"
            await bob_sees
            assert sorted(muc(bob_laptop).get_roster(room)) == ["Alicia", "Bob"]

            # Out is out: what is said next does not reach carol, and what
            # she says is refused (§7.4: not-acceptable, not an occupant).
            alice.send_message(mto=room, mbody="Carol has left", mtype="groupchat")
            for name in ("alice", "bob/phone", "bob/laptop"):
                await heard[name].has("Carol has left")
            refused = next_event(carol, f"muc::{room}::message_error")
            carol.send_message(mto=room, mbody="But I like sugar", mtype="groupchat")
            err = await refused
            assert err["error"]["condition"] == "not-acceptable", err
            # The room answers carol in order: had it sent her "Carol has
            # left", it would have come before the error.
            assert "Carol has left" not in heard["carol"].bodies

            everything = list(said) + ["Call me Alicia", "Welcome Carol", "Carol has left"]
            assert_each_once(
                [heard["alice"], heard["bob/phone"], heard["bob/laptop"]], everything
            )
            assert_each_once([heard["carol"]], ["Welcome Carol"])

            # XEP-0313 on the room: bob, a member, reads its archive in one
            # page (§4.3.2: complete). It holds what the occupants got, each
            # once (§6.1.2), in the order they got it (§3.1), from the
            # sender's nick of the time, under the stanza-id they got
            # (§3.5); carol's refused message is not in it (§6.1).
            iq = await bob_phone.plugin["xep_0313"].retrieve(
                jid=room, rsm={"max": 50}, timeout=30
            )
            assert iq["mam_fin"]["complete"], iq
            results = iq["mam"]["results"]
            got = [
                (archived(r)["body"], str(archived(r)["from"]), r["mam_result"]["id"])
                for r in results
            ]
            assert [b for b, _, _ in got] == heard["alice"].bodies, got
            for t in (heard["alice"], heard["bob/phone"], heard["bob/laptop"]):
                assert got == [
                    (m["body"], str(m["from"]), m["stanza_id"]["id"]) for m in t.messages
                ], t.name
            for r in results:
                assert r["from"] == room, r
                message = archived(r)
                assert message["type"] == "groupchat", r
                # §6.1.2: no 'to' on the forwarded message; and bob, a
                # participant of a semi-anonymous room, learns no real JID.
                assert message.xml.get("to") is None, r
                assert not real_jids(message), r
                # §4.2: when the room got it (a SHOULD).
                assert r["mam_result"]["forwarded"]["delay"]["stamp"] is not None, r

            # §6.1.2: in a members-only room only owners, admins and
            # members may read the archive; §8.1: others get forbidden.
            # Erin never was a member; no result reaches her before the
            # error.
            with pytest.raises(IqError) as refused_query:
                await erin.plugin["xep_0313"].retrieve(jid=room, timeout=30)
            assert refused_query.value.iq["error"]["condition"] == "forbidden", (
                refused_query.value.iq
            )
            assert erin.messages.empty(), erin.messages.get_nowait()
        finally:
            for c in clients:
                c.disconnect()

    run(scenario())


def actor_info(server, path):
    r = server.ctl("actors", "info", path, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_killing_the_room_actor_loses_nothing(server):
    room = f"chaos@{SERVICE}"
    path = f"root/modules/muc/{room}"
    # Messages the room passes between two kills, and after the last.
    between = 30

    async def scenario():
        names = ("alice", "bob", "carol")
        clients = {n: muc_client(f"{n}@localhost/chaos", server) for n in names}
        for c in clients.values():
            await c.online()
        try:
            # A reserved room, members-only and moderated, which logs (the
            # default): alice owns it, bob and carol are made members, so
            # they enter as participants, with voice (§5.1.2).
            alice = clients["alice"]
            await create_room(alice, room, "alice", membersonly=True, moderatedroom=True)
            info = await alice.plugin["xep_0030"].get_info(jid=room, timeout=30)
            features = info["disco_info"]["features"]
            for feature in ("muc_membersonly", "muc_moderated", MAM):
                assert feature in features, features
            for n in names[1:]:
                await muc(alice).set_affiliation(room, "member", jid=f"{n}@localhost", timeout=30)
                pres, _, _, _ = await muc(clients[n]).join_muc_wait(room, n, timeout=30)
                assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("member", "participant")
                assert 170 in pres["muc"]["status_codes"], pres
            heard = {n: Transcript(clients[n], room, n) for n in names}
            left = []
            for n in names:
                clients[n].add_event_handler(
                    f"muc::{room}::got_offline", lambda p, n=n: left.append((n, str(p["from"])))
                )

            stop = asyncio.Event()
            sent = {n: [] for n in names}

            async def chatter(name):
                """Messages until told to stop, at most five of them not yet
                back from the room at any time: the three occupants talk
                over each other across the kills."""

                def echoed(t):
                    return sum(1 for m in t.messages if m["from"].resource == name)

                while not stop.is_set():
                    i = len(sent[name])
                    await heard[name].until(
                        f"its own message {i - 5}", lambda t, i=i: echoed(t) > i - 5
                    )
                    body = f"{name} {i}"
                    clients[name].send_message(mto=room, mbody=body, mtype="groupchat")
                    sent[name].append(body)

            async def passed(count):
                """Waits until alice got `count` more messages."""
                target = len(heard["alice"].messages) + count
                await heard["alice"].until(
                    f"{target} messages", lambda t: len(t.messages) >= target
                )

            before = actor_info(server, path)["actor"]
            senders = [asyncio.ensure_future(chatter(n)) for n in names]
            try:
                for _ in range(2):
                    await passed(between)
                    r = await asyncio.to_thread(server.ctl, "actors", "kill", path)
                    assert r.returncode == 0, r.stdout + r.stderr
                # The room goes on after the last kill too.
                await passed(between)
                stop.set()
                await asyncio.gather(*senders)
            finally:
                for s in senders:
                    s.cancel()
            expected = [b for n in names for b in sent[n]]
            for t in heard.values():
                await t.until(
                    f"all {len(expected)} messages", lambda t: len(t.messages) >= len(expected)
                )
            assert_each_once(heard.values(), expected)
            # And each sender's messages in the order sent (RFC 6120 §10.1).
            for t in heard.values():
                for n in names:
                    theirs = [m["body"] for m in t.messages if m["from"].resource == n]
                    assert theirs == sent[n], (t.name, n, theirs)
            # Both kills killed the room's actor, and its supervisor
            # restarted it each time.
            after = actor_info(server, path)["actor"]
            assert after["restarts"] - before["restarts"] == 2, after
            assert after["last_error"] == "killed", after
            assert after["status"] == "running", after
            # Nobody left the room, even for a moment.
            assert not left, left

            # The occupants are still there: a new message reaches all
            # three, and the moderator's list has the other two.
            clients["carol"].send_message(mto=room, mbody="still here", mtype="groupchat")
            for t in heard.values():
                await t.has("still here")
            assert_each_once(heard.values(), expected + ["still here"])
            participants = await muc(clients["alice"]).get_roles_list(
                room, "participant", timeout=30
            )
            assert sorted(participants) == ["bob", "carol"]

            # The room's archive, read by a member through slixmpp's RSM
            # iterator, holds every message the room passed exactly once
            # (XEP-0313 §6.1.2), each sender's in the order sent, from
            # the sender's nick, under the stanza-id the occupants got.
            everything = expected + ["still here"]
            archive = await room_archive(clients["bob"], room, page=40)
            bodies = Counter(archived(r)["body"] for r in archive)
            assert bodies == Counter(everything), (
                f"archive: missing {Counter(everything) - bodies}, extra {bodies - Counter(everything)}"
            )
            ids = {m["body"]: m["stanza_id"]["id"] for m in heard["alice"].messages}
            for r in archive:
                body = archived(r)["body"]
                sender = "carol" if body == "still here" else body.split()[0]
                assert archived(r)["from"] == f"{room}/{sender}", r
                assert r["mam_result"]["id"] == ids[body], r
            for n in names:
                theirs = [
                    archived(r)["body"] for r in archive if archived(r)["from"].resource == n
                ]
                assert theirs == sent[n] + (["still here"] if n == "carol" else []), (n, theirs)
        finally:
            for c in clients.values():
                c.disconnect()

    run(scenario())


def test_a_visitor_speaks_once_given_voice(server):
    room = f"stage@{SERVICE}"
    request_ns = "http://jabber.org/protocol/muc#request"

    async def scenario():
        alice = await muc_client("alice@localhost/stage", server).online()
        dave = await muc_client("dave@localhost/stage", server).online()
        try:
            await create_room(alice, room, "alice", moderatedroom=True)
            info = await alice.plugin["xep_0030"].get_info(jid=room, timeout=30)
            assert "muc_moderated" in info["disco_info"]["features"]
            heard = Transcript(alice, room, "alice")

            # §5.1.2: in a moderated room, no affiliation means a visitor.
            alice_sees = next_event(
                alice, f"muc::{room}::got_online", presence_of(room, "dave")
            )
            pres, _, _, _ = await muc(dave).join_muc_wait(room, "dave", timeout=30)
            assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("none", "visitor")
            assert (await alice_sees)["muc"]["role"] == "visitor"

            # §7.4: a visitor's message is refused with forbidden.
            refused = next_event(dave, f"muc::{room}::message_error")
            dave.send_message(mto=room, mbody="May I speak?", mtype="groupchat")
            err = await refused
            assert err["error"]["condition"] == "forbidden", err

            # §8.6: he asks for voice; the moderator gets the request form.
            asked = next_event(alice, "message_xform", lambda m: m["from"] == room)
            muc(dave).request_voice(room, "participant")
            request = (await asked)["form"].get_values()
            assert request["FORM_TYPE"] == [request_ns], request
            assert request["muc#roomnick"] == "dave", request
            assert request["muc#role"] == "participant", request

            # §8.3: the moderator gives him voice; both see the new role.
            voiced = next_event(
                dave,
                f"muc::{room}::self-presence",
                lambda p: p["muc"]["role"] == "participant",
            )
            alice_sees = next_event(
                alice,
                f"muc::{room}::presence",
                lambda p: p["from"] == f"{room}/dave" and p["muc"]["role"] == "participant",
            )
            await muc(alice).set_role(room, "dave", "participant", timeout=30)
            pres = await voiced
            assert pres["muc"]["item"]["actor"]["nick"] == "alice"
            await alice_sees

            dave.send_message(mto=room, mbody="Thank you", mtype="groupchat")
            await heard.has("Thank you")
            assert heard.bodies == ["Thank you"], "the refused message went out"
            assert heard.messages[0]["from"] == f"{room}/dave"
        finally:
            alice.disconnect()
            dave.disconnect()

    run(scenario())


def test_a_refused_entry_is_reported_to_slixmpp(server):
    """XEP-0045 §7.2.1: "If an error occurs in relation to joining a room,
    the service SHOULD include the MUC child element (i.e., <x
    xmlns='http://jabber.org/protocol/muc'/>) in the <presence/> stanza of
    type "error"." slixmpp's join_muc_wait goes by it: without it, a
    refused client waits until its time out instead of learning why."""
    room = f"locked@{SERVICE}"

    async def scenario():
        dave = await muc_client("dave@localhost/refusal", server).online()
        erin = await muc_client("erin@localhost/refusal", server).online()
        try:
            pres, _, _, _ = await muc(dave).join_muc_wait(room, "dave", timeout=30)
            assert 201 in pres["muc"]["status_codes"]
            # Locked until dave configures it: erin is refused.
            error, seen = await refused_entry(erin, room, "erin")
            assert error["error"]["condition"] == "item-not-found", error
            assert error.xml.find("{http://jabber.org/protocol/muc}x") is not None, (
                f"the error presence has no MUC <x/>: {error}"
            )
            assert seen, "join_muc_wait did not report the refusal"
            # The room says it refused (RFC 6120 §8.3.2 'by'; XEP-0045's
            # examples put the room's JID there).
            assert error["error"]["by"] == room, error
        finally:
            dave.disconnect()
            erin.disconnect()

    run(scenario())
