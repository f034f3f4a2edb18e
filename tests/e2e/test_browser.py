"""A real browser: Converse.js (from npm, unmodified) in headless Chromium
(Debian's) logs in over XMPP over WebSocket (RFC 7395), chats with a
slixmpp client, and shares a picture through HTTP File Upload (XEP-0363),
which the slixmpp client downloads byte for byte; then it logs in again
over BOSH (XEP-0206) and chats once more. The screenshot of the
conversation is kept in target/e2e-artifacts/converse.png.

Needs /usr/bin/chromium and the packages of `browser/` (`.ci/run`
installs both); without them the test is skipped, saying why."""

import asyncio
import json
import os
import pathlib
import shutil
import struct
import subprocess
import urllib.request
import zlib

import pytest

from conftest import ROOT, USERS, Client, free_port
from test_xmppjs import node_ready

HERE = pathlib.Path(__file__).resolve().parent / "browser"
HTTP_PORT = free_port()
# The page is served from another loopback port: uploads are cross-origin
# PUTs, as they are for a web client on its own site. The plain http
# listener counts as encrypted, as behind a TLS-terminating proxy.
SERVER_CONFIG = f"""
[[listeners]]
kind = "http"
address = "127.0.0.1:{HTTP_PORT}"

[http]
consider_websocket_secure = true
public_url = "http://127.0.0.1:{HTTP_PORT}"
"""

def png(width, height):
    """A real PNG: diagonal stripes, so the screenshot shows the picture."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(
            bytes((40, 120, 200)) if (x + y) // 12 % 2 else bytes((250, 200, 60))
            for x in range(width)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PICTURE = png(160, 120)


def browser_ready():
    missing = node_ready()
    if missing:
        return missing
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not shutil.which(chromium):
        return f"no Chromium at {chromium} (apt-get install chromium)"
    if not (HERE / "node_modules" / "converse.js").exists():
        return "run `npm ci` in tests/e2e/browser"
    return None


def test_converse_logs_in_over_websocket_chats_and_shares_a_picture(server, tmp_path):
    missing = browser_ready()
    if missing:
        pytest.skip(missing)
    picture = tmp_path / "picture.png"
    picture.write_bytes(PICTURE)
    artifacts = ROOT / "target" / "e2e-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    screenshot = artifacts / "converse.png"

    async def scenario():
        bob = await Client("bob@localhost", USERS["bob"], server).online()
        shared = []
        bosh_from = []

        async def answer():
            # The greeting, the picture's URL, then the greeting over BOSH.
            while True:
                msg = await asyncio.wait_for(bob.messages.get(), 50)
                body = msg["body"]
                if body == "hello from the browser":
                    bob.send_message(mto=msg["from"], mbody="hello back", mtype="chat")
                elif "/upload/" in body:
                    shared.append((str(msg["from"]), body))
                    bob.send_message(mto=msg["from"], mbody="got the picture", mtype="chat")
                elif body == "hello over BOSH":
                    bosh_from.append(str(msg["from"]))
                    bob.send_message(mto=msg["from"], mbody="hello back over BOSH", mtype="chat")
                    return

        answering = asyncio.ensure_future(answer())
        try:
            proc = await asyncio.to_thread(
                subprocess.run,
                [
                    "node",
                    str(HERE / "converse_test.mjs"),
                    f"ws://127.0.0.1:{HTTP_PORT}/xmpp-websocket",
                    USERS["alice"],
                    "bob@localhost",
                    str(picture),
                    str(screenshot),
                ],
                cwd=HERE,
                capture_output=True,
                timeout=90,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"the browser did not finish: {e.stdout!r} {e.stderr!r}") from e
        events = [
            json.loads(line) for line in proc.stdout.decode().splitlines() if line.startswith("{")
        ]
        assert proc.returncode == 0, (events, proc.stderr.decode()[-2000:])
        await asyncio.wait_for(answering, 10)
        bob.disconnect()
        return events, shared, bosh_from

    events, shared, bosh_from = asyncio.run(scenario())
    # The page's console errors are reported too (Converse tries a CDN the
    # sandbox cannot reach); the steps are what counts.
    steps = [e for e in events if e["event"] not in ("console", "pageerror")]
    assert [e["event"] for e in steps] == [
        "online",
        "sent",
        "reply",
        "shared",
        "acknowledged",
        "screenshot",
        "bosh-online",
        "bosh-reply",
        "done",
    ], events
    assert bosh_from and bosh_from[0].startswith("alice@localhost/"), bosh_from
    assert steps[0]["jid"].startswith("alice@localhost/"), events
    # The picture, shared by URL, downloads byte for byte.
    (sender, url), = shared
    assert sender.startswith("alice@localhost/"), sender
    url = url.strip().split()[0]
    assert url.startswith(f"http://127.0.0.1:{HTTP_PORT}/upload/"), url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == PICTURE
    assert screenshot.stat().st_size > 0
