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

import pathlib
import shutil
import subprocess
import time

import pytest

from conftest import USERS, free_port, wait_for_port
from s2s_interop import (
    assert_streams, chorus_config, issue, require, self_signed, subscribe_and_chat, tail,
)

HERE = pathlib.Path(__file__).resolve().parent
CHORUS_S2S_PORT = free_port()
BOB_PASSWORD = "bob on prosody"


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


def prosody_missing():
    for tool in ("prosody", "prosodyctl", "openssl"):
        if shutil.which(tool) is None:
            return f"Debian's prosody: `{tool}` is not on PATH (apt-get install prosody)"
    return None


def SERVER_CONFIG(data_dir):
    require("Prosody", prosody_missing())
    hosts = [f"{p.domain}={p.host}:{p.s2s_port}" for p in (DIALBACK, VERIFIED)]
    return chorus_config(data_dir, CHORUS_S2S_PORT, hosts)


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


def test_chorus_and_prosody_users_subscribe_and_chat_both_ways(chorus, prosody):
    # One account on Chorus per Prosody: each starts with an empty roster.
    alice_jid = "alice@localhost" if prosody is DIALBACK else "carol@localhost"
    subscribe_and_chat(
        chorus,
        alice_jid=alice_jid,
        alice_password=USERS[alice_jid.split("@")[0]],
        remote=prosody,
        bob_jid=f"bob@{prosody.domain}",
        bob_password=BOB_PASSWORD,
        bob_resource="prosody",
        # Prosody 0.12 stores SCRAM-SHA-1 only, and offers no -PLUS over TLS 1.3.
        mechanism="SCRAM-SHA-1",
        logs={f"Prosody's log ({prosody.domain})": prosody.log},
    )
    assert_streams(chorus, prosody.domain, "external" if prosody.verified else "dialback")
