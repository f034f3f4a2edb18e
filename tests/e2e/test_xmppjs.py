"""A real client library, xmpp.js (`@xmpp/client`, from npm, unmodified):

- SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484): it logs in with
  its password in one round trip and is handed a FAST token, then logs in
  again with a wrong password and the token alone. A slixmpp client
  receives a message from each session.
- XMPP over WebSocket (RFC 7395): it logs in over the `http` listener's
  `/xmpp-websocket` and chats with a slixmpp client on TCP.

Needs Node.js 20.10 or later and the packages of `xmppjs/` (`.ci/run`
installs them with `npm ci`); without them the test is skipped, saying
why."""

import asyncio
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import USERS, Client, free_port

HTTP_PORT = free_port()
# A plain http listener counted as encrypted, as behind a TLS-terminating
# proxy: Node's WebSocket cannot be told to accept the dev certificate.
SERVER_CONFIG = f"""
[[listeners]]
kind = "http"
address = "127.0.0.1:{HTTP_PORT}"

[http]
consider_websocket_secure = true
"""

HERE = pathlib.Path(__file__).resolve().parent / "xmppjs"


def node_ready():
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    major, minor = (int(x) for x in version.strip().lstrip("v").split(".")[:2])
    if (major, minor) < (20, 10):
        return f"xmpp.js needs Node.js 20.10 or later, found {version.strip()}"
    if not (HERE / "node_modules" / "@xmpp" / "client").exists():
        return "run `npm ci` in tests/e2e/xmppjs"
    return None


def test_xmppjs_logs_in_with_sasl2_bind2_then_with_a_fast_token(server):
    missing = node_ready()
    if missing:
        pytest.skip(missing)

    async def scenario():
        bob = await Client("bob@localhost", USERS["bob"], server).online()
        env = dict(os.environ, NODE_TLS_REJECT_UNAUTHORIZED="0")
        # In a thread: the client runs while bob's slixmpp loop receives.
        try:
            proc = await asyncio.to_thread(
                subprocess.run,
                [
                    "node",
                    str(HERE / "fast_login.mjs"),
                    str(server.starttls_port),
                    USERS["alice"],
                    "bob@localhost",
                ],
                cwd=HERE,
                env=env,
                capture_output=True,
                timeout=45,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"xmpp.js did not finish: {e.stdout!r} {e.stderr!r}") from e
        out, err = proc.stdout, proc.stderr
        events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
        assert proc.returncode == 0, (out.decode(), err.decode())
        bodies = []
        for _ in range(2):
            msg = await asyncio.wait_for(bob.messages.get(), 10)
            bodies.append((str(msg["from"]), msg["body"]))
        bob.disconnect()
        return events, bodies

    events, bodies = asyncio.run(scenario())
    online = [e for e in events if e["event"] == "online"]
    assert [e["label"] for e in online] == ["password", "token"], events
    first, second = online
    # The password login is SASL2 with SCRAM, and binds through Bind 2.
    assert first["mechanisms"] == ["SCRAM-SHA-1"], events
    assert first["jid"].startswith("alice@localhost/xmppjs/"), events
    # The server handed out a token, and the second login used it alone.
    tokens = [e for e in events if e["event"] == "token"]
    assert tokens and tokens[0]["mechanism"] == "HT-SHA-256-NONE", events
    assert second["mechanisms"] == ["HT-SHA-256-NONE"], events
    # Same client, same resource (XEP-0386 §2.2.1).
    assert second["jid"] == first["jid"], events
    assert not [e for e in events if e["event"] in ("error", "failed")], events
    assert [b for _, b in bodies] == ["hello from password", "hello from token"]
    assert all(f == first["jid"] for f, _ in bodies)
    # The client is listed with its software (chorusctl user clients).
    r = server.ctl("user", "clients", "alice@localhost")
    assert r.returncode == 0, r.stderr
    assert "xmpp.js" in r.stdout, r.stdout


def test_xmppjs_chats_over_websocket(server):
    missing = node_ready()
    if missing:
        pytest.skip(missing)

    async def scenario():
        bob = await Client("bob@localhost", USERS["bob"], server).online()

        async def answer():
            msg = await asyncio.wait_for(bob.messages.get(), 20)
            bob.send_message(mto=msg["from"], mbody="hello back", mtype="chat")
            return str(msg["from"]), msg["body"]

        answering = asyncio.ensure_future(answer())
        try:
            proc = await asyncio.to_thread(
                subprocess.run,
                [
                    "node",
                    "--experimental-websocket",
                    str(HERE / "websocket.mjs"),
                    f"ws://127.0.0.1:{HTTP_PORT}/xmpp-websocket",
                    USERS["alice"],
                    "bob@localhost",
                ],
                cwd=HERE,
                capture_output=True,
                timeout=45,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"xmpp.js did not finish: {e.stdout!r} {e.stderr!r}") from e
        got = await answering
        bob.disconnect()
        events = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.startswith("{")]
        assert proc.returncode == 0, (proc.stdout.decode(), proc.stderr.decode())
        return events, got

    events, (sender, body) = asyncio.run(scenario())
    online = [e for e in events if e["event"] == "online"]
    assert online and online[0]["jid"].startswith("alice@localhost/browser"), events
    assert body == "hello over WebSocket"
    assert sender == online[0]["jid"]
    assert [e["body"] for e in events if e["event"] == "reply"] == ["hello back"], events
    assert not [e for e in events if e["event"] in ("error", "failed")], events
