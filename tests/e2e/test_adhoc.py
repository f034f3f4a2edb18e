"""slixmpp against Chorus for XEP-0050 Ad-Hoc Commands and XEP-0133
Service Administration, end to end with slixmpp's own xep_0050 plugin:

- The command list: the admin (`admin.admins`) finds the XEP-0133
  commands under the server's command node; another user finds only the
  ping, and is refused an admin command with `forbidden`.
- add-user: the admin fills the form the server returns, completes it,
  and the new account logs in with the password given.
- announce: a headline from the server reaches another user's session.
- end-user-session: the target's session ends (a policy-violation stream
  error) and the account can log in again.

The `server` fixture is per module, so this module's admin list applies
to it alone."""

import asyncio

import pytest
from slixmpp.exceptions import IqError

from conftest import USERS, Client

ADMIN = "http://jabber.org/protocol/admin"

SERVER_CONFIG = """
[admin]
admins = ["alice@localhost"]
"""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def adhoc_client(jid, password, server):
    c = Client(jid, password, server)
    for p in ("xep_0004", "xep_0030", "xep_0050"):
        c.register_plugin(p)
    return c


async def admin_command(client, name, values):
    """Runs the XEP-0133 command `name` the way a client UI does: execute,
    fill the returned form, complete. Returns the completed <command/>."""
    adhoc = client.plugin["xep_0050"]
    node = f"{ADMIN}#{name}"
    first = await adhoc.send_command("localhost", node, action="execute")
    cmd = first["command"]
    assert cmd["status"] == "executing"
    form = cmd["form"]
    assert form["type"] == "form"
    # (slixmpp gives a parsed field's value as a list.)
    assert form.get_fields()["FORM_TYPE"]["value"] in (ADMIN, [ADMIN])
    answer = client.plugin["xep_0004"].make_form(ftype="submit")
    answer.add_field(var="FORM_TYPE", ftype="hidden", value=ADMIN)
    for var, value in values.items():
        answer.add_field(var=var, value=value)
    done = await adhoc.send_command(
        "localhost", node, action="complete", payload=answer, sessionid=cmd["sessionid"]
    )
    assert done["command"]["status"] == "completed", done
    assert done["command"]["sessionid"] == cmd["sessionid"]
    return done["command"]


def test_only_the_admin_sees_and_runs_the_admin_commands(server):
    async def scenario():
        alice = adhoc_client("alice@localhost/admin", USERS["alice"], server)
        bob = adhoc_client("bob@localhost/user", USERS["bob"], server)
        await alice.online()
        await bob.online()
        try:
            items = await alice.plugin["xep_0050"].get_commands("localhost")
            nodes = {i[1] for i in items["disco_items"]["items"]}
            for name in ("add-user", "delete-user", "end-user-session", "announce", "set-motd"):
                assert f"{ADMIN}#{name}" in nodes, nodes
            items = await bob.plugin["xep_0050"].get_commands("localhost")
            assert [i[1] for i in items["disco_items"]["items"]] == ["ping"]
            # The ping is everybody's.
            pong = await bob.plugin["xep_0050"].send_command("localhost", "ping")
            assert pong["command"]["status"] == "completed"
            assert pong["command"]["notes"] == [("info", "Pong")]
            with pytest.raises(IqError) as refused:
                await bob.plugin["xep_0050"].send_command("localhost", f"{ADMIN}#add-user")
            assert refused.value.condition == "forbidden"
        finally:
            alice.disconnect()
            bob.disconnect()

    run(scenario())


def test_add_user_then_the_new_account_logs_in(server):
    async def scenario():
        alice = adhoc_client("alice@localhost/admin", USERS["alice"], server)
        await alice.online()
        try:
            cmd = await admin_command(
                alice,
                "add-user",
                {
                    "accountjid": "juliet@localhost",
                    "password": "R0m30 & more",
                    "password-verify": "R0m30 & more",
                    "email": "juliet@capulet.example",
                },
            )
            assert ("info", "juliet@localhost added") in cmd["notes"]
        finally:
            alice.disconnect()
        juliet = Client("juliet@localhost/balcony", "R0m30 & more", server)
        await juliet.online()
        juliet.disconnect()
        await asyncio.wait_for(juliet.gone.wait(), 10)

    run(scenario())


def test_an_announcement_reaches_online_users(server):
    async def scenario():
        alice = adhoc_client("alice@localhost/admin", USERS["alice"], server)
        bob = Client("bob@localhost/desk", USERS["bob"], server)
        await alice.online()
        await bob.online()
        try:
            await admin_command(
                alice,
                "announce",
                {"announcement": ["Going down for maintenance", "in 2 minutes."]},
            )
            msg = await asyncio.wait_for(bob.messages.get(), 10)
            assert msg["from"] == "localhost"
            assert msg["type"] == "headline"
            assert msg["body"] == "Going down for maintenance\nin 2 minutes."
        finally:
            alice.disconnect()
            bob.disconnect()

    run(scenario())


def test_end_user_session_disconnects_the_target(server):
    async def scenario():
        alice = adhoc_client("alice@localhost/admin", USERS["alice"], server)
        carol = Client("carol@localhost/phone", USERS["carol"], server)
        # The kicked client must not reconnect by itself.
        carol.add_event_handler("disconnected", lambda _: carol.abort())
        await alice.online()
        await carol.online()
        try:
            await admin_command(alice, "end-user-session", {"accountjids": ["carol@localhost"]})
            await asyncio.wait_for(carol.gone.wait(), 10)
            assert carol.stream_errors == ["policy-violation"]
        finally:
            alice.disconnect()
        # Ended, not banned: carol logs in again.
        again = Client("carol@localhost/phone", USERS["carol"], server)
        await again.online()
        again.disconnect()

    run(scenario())
