"""Federation with Prosody (Debian's package, 0.12) on loopback: a Chorus
user and a Prosody user subscribe to each other, see each other's presence
and their rosters at 'both', ping each other's server and chat both ways;
`chorusctl s2s list` then shows one stream each way, over TLS. Twice:

- with `p.test`, whose certificate is self-signed and which does not know
  Chorus's CA either: both servers fall back to Server Dialback (XEP-0220),
  Prosody with `s2s_secure_auth = false`;
- with `pv.test`, whose certificate comes from the test CA that Chorus's
  does and which trusts it (`s2s_secure_auth = true`, so no dialback): both
  authenticate with SASL EXTERNAL (XEP-0178).

Chorus serves `localhost` (the `server` fixture, here with a certificate
from the test CA and `s2s.ca_file` naming it) with an `s2s` listener, and
its `s2s.hosts` sends each Prosody domain to its address. Each Prosody
runs from a temporary directory with its own configuration, and resolves
`localhost` through tests/e2e/prosody/mod_test_s2s_hosts.lua, the
counterpart of `s2s.hosts` (its own resolver never reads /etc/hosts).
Every port is free and on loopback: Chorus on 127.0.0.1, the Prosodys on
127.0.0.12 and 127.0.0.13.

Without prosody installed (.ci/run installs it) the tests fail, saying so,
unless CHORUS_ALLOW_SKIP is set: then they are skipped.
"""

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from conftest import USERS, Client, free_port, wait_for_port
from test_im import next_from, presence_log, until

HERE = pathlib.Path(__file__).resolve().parent
CHORUS_S2S_PORT = free_port()
BOB_PASSWORD = "bob on prosody"
# The first stanza each way opens a stream: TCP, STARTTLS, and dialback,
# whose check is a second connection back to the sender. On loopback that
# takes well under a second; the margin is for a loaded CI machine.
S2S_WAIT = 30


class Prosody:
    """One Prosody server: its domain, address, files, and what `Client`
    needs to log in to it."""

    def __init__(self, domain, host, verified):
        self.domain = domain
        self.host = host
        # Verified: a certificate from the test CA, and only certificates
        # authenticate servers. Else self-signed, and dialback.
        self.verified = verified
        self.starttls_port = free_port(host)
        self.tls_port = None
        self.s2s_port = free_port(host)

    def setup(self, data_dir, ca):
        self.data_dir = data_dir
        self.config = data_dir / "prosody.cfg.lua"
        self.log = data_dir / "prosody.log"
        if self.verified:
            certificate, key = issue(ca, data_dir, self.domain)
            cafile = f'cafile = "{ca.cert}";'
            # What clients trust.
            self.cert = ca.cert
        else:
            certificate, key = self_signed(data_dir, self.domain)
            cafile = ""
            self.cert = certificate
        self.config.write_text(
            f"""
-- Chorus's e2e test: nothing here is the system's Prosody's. It runs in
-- the foreground (-F), as root where the test is root (CI).
run_as_root = true
pidfile = "{data_dir}/prosody.pid"
data_path = "{data_dir}/data"
certificates = "{data_dir}"
plugin_paths = {{ "{HERE / 'prosody'}" }}
log = {{ debug = "{self.log}" }}
interfaces = {{ "{self.host}" }}
c2s_ports = {{ {self.starttls_port} }}
s2s_ports = {{ {self.s2s_port} }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
modules_enabled = {{
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix";
    "test_s2s_hosts";
}}
test_s2s_hosts = {{ ["localhost"] = {{ "127.0.0.1", {CHORUS_S2S_PORT} }} }}
authentication = "internal_hashed"
storage = "internal"
allow_registration = false
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {"true" if self.verified else "false"}
-- Both servers run on one machine: IPv6 has nothing to connect to.
use_ipv6 = false

VirtualHost "{self.domain}"
    ssl = {{ certificate = "{certificate}"; key = "{key}"; {cafile} }}
"""
        )

    def ctl(self, *args):
        return subprocess.run(
            ["prosodyctl", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )


DIALBACK = Prosody("p.test", "127.0.0.12", verified=False)
VERIFIED = Prosody("pv.test", "127.0.0.13", verified=True)


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


def prosody_missing():
    for tool in ("prosody", "prosodyctl", "openssl"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH (apt-get install prosody)"
    return None


def require_prosody():
    missing = prosody_missing()
    if missing is None:
        return
    if os.environ.get("CHORUS_ALLOW_SKIP"):
        pytest.skip(f"the Prosody interop test needs Debian's prosody: {missing}")
    pytest.fail(
        f"the Prosody interop test needs Debian's prosody: {missing} "
        "(set CHORUS_ALLOW_SKIP=1 to skip)"
    )


def SERVER_CONFIG(data_dir):
    # Chorus's certificate comes from the test CA, which it also trusts for
    # remote servers; only the server that knows that CA can verify it.
    require_prosody()
    ca = Ca(data_dir)
    ca.make()
    cert, key = issue(ca, data_dir, "localhost")
    hosts = ", ".join(f'"{p.domain}={p.host}:{p.s2s_port}"' for p in (DIALBACK, VERIFIED))
    return f"""
[tls]
cert = "{cert}"
key = "{key}"

[[listeners]]
kind = "s2s"
address = "127.0.0.1:{CHORUS_S2S_PORT}"

[s2s]
hosts = [{hosts}]
ca_file = "{ca.cert}"
connect_timeout_secs = 60
"""


@pytest.fixture(scope="module")
def chorus(server):
    """The `server`, whose clients trust the test CA."""
    server.ca = Ca(server.data_dir)
    server.cert = server.ca.cert
    wait_for_port(CHORUS_S2S_PORT, time.time() + 30)
    return server


def tail(path, lines=120):
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


@pytest.fixture(scope="module", params=[DIALBACK, VERIFIED], ids=["dialback", "external"])
def prosody(request, chorus, tmp_path_factory):
    p = request.param
    p.setup(tmp_path_factory.mktemp(f"prosody-{p.domain}"), chorus.ca)
    r = p.ctl("register", "bob", p.domain, BOB_PASSWORD)
    assert r.returncode == 0, f"prosodyctl register: {r.stdout}{r.stderr}"
    out = open(p.data_dir / "prosody.out", "w")
    proc = subprocess.Popen(
        ["prosody", "-F", "--config", str(p.config)], stdout=out, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.time() + 30
        for port in (p.starttls_port, p.s2s_port):
            try:
                wait_for_port(port, deadline, p.host)
            except RuntimeError:
                raise AssertionError(
                    f"Prosody did not listen on {p.host}:{port} (exit code {proc.poll()}):\n"
                    f"{tail(p.data_dir / 'prosody.out')}\n{tail(p.log)}"
                ) from None
        yield p
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_chorus_and_prosody_users_subscribe_and_chat_both_ways(chorus, prosody):
    # One account on Chorus per Prosody: each starts with an empty roster.
    alice_jid = "alice@localhost" if prosody is DIALBACK else "carol@localhost"
    alice_password = USERS[alice_jid.split("@")[0]]
    bob_jid = f"bob@{prosody.domain}"

    async def scenario():
        alice = Client(f"{alice_jid}/chorus", alice_password, chorus)
        # Prosody 0.12 stores SCRAM-SHA-1 only, and offers no -PLUS over TLS 1.3.
        bob = Client(f"{bob_jid}/prosody", BOB_PASSWORD, prosody, mechanism="SCRAM-SHA-1")
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

            # Chorus to Prosody: the request opens Chorus's outgoing stream.
            alice.send_presence(pto=bob_jid, ptype="subscribe")
            req = await asyncio.wait_for(requests.get(), S2S_WAIT)
            assert req["from"] == alice_jid
            # Prosody to Chorus: the approval opens Prosody's.
            bob.send_presence(pto=alice_jid, ptype="subscribed")
            bob.send_presence(pto=alice_jid, ptype="subscribe")

            # Each server sends its user's presence after the approval
            # (RFC 6121 §3.1.5), across the two streams.
            pres = await next_from(alice_sees["available"], f"{bob_jid}/prosody", S2S_WAIT)
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
            bob.send_message(mto=msg["from"], mbody="hello from prosody ✓", mtype="chat")
            msg = await asyncio.wait_for(alice.messages.get(), S2S_WAIT)
            assert msg["from"] == f"{bob_jid}/prosody"
            assert msg["to"] == f"{alice_jid}/chorus"
            assert msg["body"] == "hello from prosody ✓"

            # IQs to the other server, and their answers (XEP-0199).
            await alice.plugin["xep_0199"].ping(jid=prosody.domain, timeout=S2S_WAIT)
            await bob.plugin["xep_0199"].ping(jid="localhost", timeout=S2S_WAIT)
        finally:
            alice.disconnect()
            bob.disconnect()

    try:
        run(scenario())
    except BaseException:
        print(f"--- Prosody's log ({prosody.domain})\n" + tail(prosody.log))
        print("--- Chorus's log\n" + tail(chorus.data_dir / "server.log"))
        raise

    # Chorus's side of it: one stream each way with Prosody, both over TLS
    # and authenticated the way the certificates allow.
    r = chorus.ctl("--json", "s2s", "list")
    assert r.returncode == 0, r.stderr
    streams = json.loads(r.stdout)["streams"]
    auth = "external" if prosody.verified else "dialback"
    for direction in ("in", "out"):
        mine = [s for s in streams if s["direction"] == direction and s["remote"] == prosody.domain]
        assert len(mine) == 1, streams
        assert mine[0]["local"] == "localhost", streams
        assert mine[0]["auth"] == auth, streams
        assert mine[0]["tls"].startswith("TLS"), streams
        assert mine[0]["queued"] == 0, streams
