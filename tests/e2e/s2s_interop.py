"""What the federation interop tests (test_prosody_s2s.py,
test_ejabberd_s2s.py) share: certificates made with the openssl CLI, the
check that the other server is installed, and the scenario itself, in which
alice on Chorus and bob on the other server subscribe to each other, see
each other's presence and rosters at 'both', chat both ways and ping each
other's server, after which `chorusctl s2s list` shows one stream each way.

The `chorus` fixture that goes with it is in conftest.py.
"""

import asyncio
import json
import os
import subprocess
import time

import pytest

from conftest import Client
from test_im import next_from, presence_log, until

# The first stanza each way opens a stream: TCP, STARTTLS, and dialback,
# whose check is a second connection back to the sender. On loopback that
# takes well under a second; the margin is for a loaded CI machine.
S2S_WAIT = 30


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def self_signed(directory, domain):
    cert, key = directory / f"{domain}.crt", directory / f"{domain}.key"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={domain}",
        "-addext", f"subjectAltName=DNS:{domain}",
    )
    return cert, key


class Ca:
    """The test CA, in `directory`."""

    def __init__(self, directory):
        self.cert, self.key = directory / "ca.crt", directory / "ca.key"

    def make(self):
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
            "-subj", "/CN=Chorus e2e federation CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )


def issue(ca, directory, domain):
    """A certificate for `domain` from `ca`, good for both ends of s2s."""
    cert, key, csr = (directory / f"{domain}.{ext}" for ext in ("crt", "key", "csr"))
    ext = directory / f"{domain}.ext"
    ext.write_text(
        f"subjectAltName=DNS:{domain}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={domain}",
    )
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )
    return cert, key


def chorus_config(data_dir, s2s_port, hosts):
    """The `SERVER_CONFIG` of a federation test module: Chorus's certificate
    comes from the test CA (made here, in `data_dir`), which it also trusts
    for remote servers, so that only a server that knows that CA can verify
    it; an s2s listener on 127.0.0.1:`s2s_port`; and `hosts`, the fixed
    address ("domain=IP:port") of each other server."""
    ca = Ca(data_dir)
    ca.make()
    cert, key = issue(ca, data_dir, "localhost")
    hosts = ", ".join(f'"{h}"' for h in hosts)
    return f"""
[tls]
cert = "{cert}"
key = "{key}"

[[listeners]]
kind = "s2s"
address = "127.0.0.1:{s2s_port}"

[s2s]
hosts = [{hosts}]
ca_file = "{ca.cert}"
connect_timeout_secs = 60
"""


def require(what, missing):
    """Fail the `what` interop test, saying what is `missing` (None:
    nothing), or skip it under CHORUS_ALLOW_SKIP."""
    if missing is None:
        return
    if os.environ.get("CHORUS_ALLOW_SKIP"):
        pytest.skip(f"the {what} interop test needs {missing}")
    pytest.fail(f"the {what} interop test needs {missing} (set CHORUS_ALLOW_SKIP=1 to skip)")


def tail(path, lines=120):
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def subscribe_and_chat(chorus, *, alice_jid, alice_password, remote, bob_jid, bob_password,
                       bob_resource, mechanism, logs):
    """alice (on Chorus) and bob (on `remote`, a server `Client` can log in
    to) subscribe to each other, see each other's presence, have each other
    at 'both' in their rosters, chat both ways and ping each other's server.
    `logs` ({name: path}) are printed when something fails."""

    async def scenario():
        alice = Client(f"{alice_jid}/chorus", alice_password, chorus)
        bob = Client(f"{bob_jid}/{bob_resource}", bob_password, remote, mechanism=mechanism)
        alice_sees, bob_sees = presence_log(alice), presence_log(bob)
        # Alice approves requests by herself; Bob answers by hand.
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

            # Chorus to the other server: the request opens Chorus's
            # outgoing stream.
            alice.send_presence(pto=bob_jid, ptype="subscribe")
            req = await asyncio.wait_for(requests.get(), S2S_WAIT)
            assert req["from"] == alice_jid
            # The other way: the approval opens the other server's.
            bob.send_presence(pto=alice_jid, ptype="subscribed")
            bob.send_presence(pto=alice_jid, ptype="subscribe")

            # Each server sends its user's presence after the approval
            # (RFC 6121 §3.1.5), across the two streams.
            pres = await next_from(alice_sees["available"], f"{bob_jid}/{bob_resource}", S2S_WAIT)
            assert pres["to"].bare == alice_jid
            pres = await next_from(bob_sees["available"], f"{alice_jid}/chorus", S2S_WAIT)
            assert pres["to"].bare == bob_jid

            # Both rosters at 'both' by their pushes, then by a fresh get.
            await until(
                lambda: alice.client_roster[bob_jid]["subscription"] == "both"
                and bob.client_roster[alice_jid]["subscription"] == "both",
                S2S_WAIT,
            )
            await alice.get_roster()
            await bob.get_roster()
            for client, contact in ((alice, bob_jid), (bob, alice_jid)):
                item = client.client_roster[contact]
                assert item["subscription"] == "both", (contact, item)
                assert not item["pending_out"], (contact, item)

            # Chat both ways, with the full JIDs each server stamps.
            alice.send_message(mto=bob_jid, mbody="hello from chorus", mtype="chat")
            msg = await asyncio.wait_for(bob.messages.get(), S2S_WAIT)
            assert msg["from"] == f"{alice_jid}/chorus"
            assert msg["body"] == "hello from chorus"
            answer = f"hello from {bob_resource} ✓"
            bob.send_message(mto=msg["from"], mbody=answer, mtype="chat")
            msg = await asyncio.wait_for(alice.messages.get(), S2S_WAIT)
            assert msg["from"] == f"{bob_jid}/{bob_resource}"
            assert msg["to"] == f"{alice_jid}/chorus"
            assert msg["body"] == answer

            # IQs to the other server, and their answers (XEP-0199).
            await alice.plugin["xep_0199"].ping(jid=remote.domain, timeout=S2S_WAIT)
            await bob.plugin["xep_0199"].ping(jid="localhost", timeout=S2S_WAIT)
        finally:
            alice.disconnect()
            bob.disconnect()

    try:
        run(scenario())
    except BaseException:
        for name, path in logs.items():
            print(f"--- {name}\n" + tail(path))
        print("--- Chorus's log\n" + tail(chorus.data_dir / "server.log"))
        raise


def assert_streams(chorus, domain, auth):
    """Chorus's side of it: one stream each way with `domain`, both over TLS
    and authenticated by `auth` ("dialback", "external"), and nothing left
    waiting. What the clients sent last (their unavailable presence as
    they left) may still be on its way: the queue is read until it drains,
    for a few seconds."""
    deadline = time.monotonic() + 5
    while True:
        r = chorus.ctl("--json", "s2s", "list")
        assert r.returncode == 0, r.stderr
        streams = json.loads(r.stdout)["streams"]
        if all(s["queued"] == 0 for s in streams) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for direction in ("in", "out"):
        mine = [s for s in streams if s["direction"] == direction and s["remote"] == domain]
        assert len(mine) == 1, streams
        assert mine[0]["local"] == "localhost", streams
        assert mine[0]["auth"] == auth, streams
        assert mine[0]["tls"].startswith("TLS"), streams
        assert mine[0]["queued"] == 0, streams
