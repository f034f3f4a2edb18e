"""Federation with ejabberd (Debian's package, 23.01) on loopback: a Chorus
user and an ejabberd user subscribe to each other, see each other's
presence and their rosters at 'both', ping each other's server and chat
both ways; `chorusctl s2s list` then shows one stream each way, over TLS.
Twice, as with Prosody:

- with `e.test`, whose certificate is self-signed and which does not know
  Chorus's CA either: both servers fall back to Server Dialback (XEP-0220,
  ejabberd's mod_s2s_dialback) after TLS;
- with `ev.test`, whose certificate comes from the test CA that Chorus's
  does and which trusts it (`ca_file`): both authenticate with SASL
  EXTERNAL (XEP-0178).

Chorus serves `localhost` as in test_prosody_s2s.py (s2s_interop.py has
what the two share), and its `s2s.hosts` sends each ejabberd domain to its
address. ejabberd reaches `localhost` by its own rules: a name without a
dot has no SRV lookup, so it asks the system's resolver (getaddrinfo, which
reads /etc/hosts) for the address, on its `outgoing_s2s_port`, which is
Chorus's s2s port here. Every port is free and on loopback: Chorus on
127.0.0.1, the ejabberds on 127.0.0.21 and 127.0.0.22 (their Erlang
distribution, which ejabberdctl talks to, on 127.0.0.1).

Each ejabberd runs from a temporary directory, as a process of the test's
own that the fixture stops: its ejabberd.yml, ejabberdctl.cfg and inetrc there
(`ejabberdctl --config-dir`), its Mnesia database (`--spool`) and its logs
(`--logs`), with an Erlang node name and cookie of its own. The node listens
for ejabberdctl on a port of its own (`ERL_DIST_PORT`): no epmd is started
or asked. Nothing of the system's ejabberd (/etc/ejabberd, /var/lib/ejabberd,
its service) is used.

Without ejabberd installed (.ci/run installs it) the test fails, saying so,
unless CHORUS_ALLOW_SKIP is set: then it is skipped.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import time

import pytest

from conftest import USERS, free_port, wait_for_port
from s2s_interop import (
    assert_streams, chorus_config, issue, require, self_signed, subscribe_and_chat, tail,
)

CHORUS_S2S_PORT = free_port()
BOB_PASSWORD = "bob on ejabberd"


def find_ejabberdctl():
    # Debian puts it in /usr/sbin, which a user's PATH may lack.
    return shutil.which("ejabberdctl", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


def ejabberd_missing():
    if find_ejabberdctl() is None:
        return "Debian's ejabberd: `ejabberdctl` is not installed (apt-get install ejabberd)"
    if shutil.which("openssl") is None:
        return "`openssl`, which is not on PATH"
    return None


class Ejabberd:
    """One ejabberd server: its domain, address, files, and what `Client`
    needs to log in to it."""

    tls_port = None

    def __init__(self, domain, host, verified):
        self.domain = domain
        self.host = host
        # Verified: a certificate from the test CA, which it trusts. Else
        # self-signed, and dialback.
        self.verified = verified
        self.starttls_port = free_port(self.host)
        self.s2s_port = free_port(self.host)
        # Where ejabberdctl finds the node (Erlang distribution).
        self.dist_port = free_port()
        self.node = f"chorus-e2e-{secrets.token_hex(4)}@localhost"
        self.cookie = secrets.token_hex(16)

    def setup(self, data_dir, ca):
        self.data_dir = data_dir
        self.spool, self.logs = data_dir / "spool", data_dir / "logs"
        self.spool.mkdir()
        self.logs.mkdir()
        self.log = self.logs / "ejabberd.log"
        self.pidfile = data_dir / "ejabberd.pid"
        if self.verified:
            certificate, key = issue(ca, data_dir, self.domain)
            ca_file = f'ca_file: "{ca.cert}"'
            # What clients trust.
            self.cert = ca.cert
        else:
            certificate, key = self_signed(data_dir, self.domain)
            # The system's CAs, which know neither server.
            ca_file = ""
            self.cert = certificate

        # COMPAT(ejabberd 23.01's ejabberdctl): run by root (CI) it always
        # runs itself again as the `ejabberd` user (su), who cannot enter
        # the test's private temporary directory, and run by anyone else it
        # refuses. Its copy here has an empty INSTALLUSER, as a build
        # without an install user has: ejabberd then runs as whoever runs
        # the test, as Prosody does with `run_as_root`. The rest is Debian's
        # script; SCRIPT keeps its directory (SCRIPT_DIR) /usr/sbin.
        self.script = find_ejabberdctl()
        text, n = re.subn(
            r"^INSTALLUSER=.*$", 'INSTALLUSER=""', open(self.script).read(), flags=re.M
        )
        assert n == 1, f"{self.script} sets no INSTALLUSER: a new ejabberdctl?"
        self.ejabberdctl = data_dir / "ejabberdctl"
        self.ejabberdctl.write_text(text)
        self.ejabberdctl.chmod(0o755)

        # ejabberdctl sources this. The node's distribution listens on
        # 127.0.0.1:dist_port, which ejabberdctl's own short-lived nodes
        # connect to directly (-erl_epmd_port, no epmd); the cookie is given
        # (-setcookie), so no ~/.erlang.cookie is read or made; contributed
        # modules would go here too, not to ~/.ejabberd-modules.
        (data_dir / "ejabberdctl.cfg").write_text(
            f"""
ERLANG_NODE={self.node}
ERL_DIST_PORT={self.dist_port}
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie {self.cookie} -kernel inet_dist_use_interface {{127,0,0,1}}"
EJABBERD_PID_PATH={self.pidfile}
CONTRIB_MODULES_PATH={data_dir / "contrib"}
CONTRIB_MODULES_CONF_DIR={data_dir / "contrib-conf"}
"""
        )
        # Erlang's own resolver (ERL_INETRC, which ejabberdctl points here):
        # the node names' `localhost`, and no DNS at all. ejabberd's s2s
        # addresses come from getaddrinfo instead (see above).
        (data_dir / "inetrc").write_text(
            '{lookup, [file]}.\n{host, {127,0,0,1}, ["localhost"]}.\n'
            '{resolv_conf, ""}.\n{hosts_file, ""}.\n'
        )
        (data_dir / "ejabberd.yml").write_text(
            f"""
# Chorus's e2e test: nothing here is the system's ejabberd's.
hosts: ["{self.domain}"]
loglevel: debug
certfiles:
  - "{certificate}"
  - "{key}"
{ca_file}
listen:
  - port: {self.starttls_port}
    ip: "{self.host}"
    module: ejabberd_c2s
    starttls_required: true
  - port: {self.s2s_port}
    ip: "{self.host}"
    module: ejabberd_s2s_in
s2s_use_starttls: required
# Chorus: `localhost`, on its s2s port, from ejabberd's address.
outgoing_s2s_port: {CHORUS_S2S_PORT}
outgoing_s2s_families: [ipv4]
outgoing_s2s_ipv4_address: "{self.host}"
auth_method: internal
modules:
  mod_roster: {{}}
  mod_s2s_dialback: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
"""
        )

    def ctl_command(self, *args):
        return [
            str(self.ejabberdctl), "--config-dir", str(self.data_dir),
            "--spool", str(self.spool), "--logs", str(self.logs), *args,
        ]

    def env(self):
        return {**os.environ, "SCRIPT": self.script}

    def ctl(self, *args):
        return subprocess.run(
            self.ctl_command(*args), env=self.env(), capture_output=True, text=True, timeout=60
        )


DIALBACK = Ejabberd("e.test", "127.0.0.21", verified=False)
VERIFIED = Ejabberd("ev.test", "127.0.0.22", verified=True)


def SERVER_CONFIG(data_dir):
    require("ejabberd", ejabberd_missing())
    hosts = [f"{e.domain}={e.host}:{e.s2s_port}" for e in (DIALBACK, VERIFIED)]
    return chorus_config(data_dir, CHORUS_S2S_PORT, hosts)


def stop(e, proc):
    """Stop the Erlang VM that `proc` (ejabberdctl foreground, a bash that
    waits for it) runs, and `proc` with it: SIGTERM, which the VM takes as a
    clean shutdown, to the VM's own process (the pid file's, if it is
    `proc`'s child), else to `proc`'s session, which the fixture made and
    holds the test's own processes only; SIGKILL to that session if it is
    not done in 20 seconds, and to whatever of it is left (the VM's helper
    erl_child_setup) when it is."""
    vm = None
    try:
        pid = int(e.pidfile.read_text().strip())
        with open(f"/proc/{pid}/stat") as f:
            if int(f.read().rsplit(")", 1)[1].split()[1]) == proc.pid:
                vm = pid
    except (OSError, ValueError, IndexError):
        pass
    try:
        if vm is not None:
            os.kill(vm, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        # ejabberdctl (bash) returns when the VM has exited.
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if vm is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module", params=[DIALBACK, VERIFIED], ids=["dialback", "external"])
def ejabberd(request, chorus, tmp_path_factory):
    e = request.param
    e.setup(tmp_path_factory.mktemp(f"ejabberd-{e.domain}"), chorus.ca)
    out = open(e.data_dir / "ejabberd.out", "w")
    started = time.monotonic()
    proc = subprocess.Popen(
        e.ctl_command("foreground"),
        env=e.env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        for port in (e.starttls_port, e.s2s_port):
            try:
                wait_for_port(port, deadline, e.host)
            except RuntimeError:
                raise AssertionError(
                    f"ejabberd did not listen on {e.host}:{port} (exit code {proc.poll()}):\n"
                    f"{tail(e.data_dir / 'ejabberd.out')}\n{tail(e.log)}"
                ) from None
        r = e.ctl("register", "bob", e.domain, BOB_PASSWORD)
        assert r.returncode == 0, f"ejabberdctl register: {r.stdout}{r.stderr}"
        print(f"ejabberd ({e.domain}) up, bob registered, in {time.monotonic() - started:.1f} s")
        yield e
    finally:
        stop(e, proc)
        out.close()


def test_chorus_and_ejabberd_users_subscribe_and_chat_both_ways(chorus, ejabberd):
    # One account on Chorus per ejabberd: each starts with an empty roster.
    alice_jid = "alice@localhost" if ejabberd is DIALBACK else "carol@localhost"
    subscribe_and_chat(
        chorus,
        alice_jid=alice_jid,
        alice_password=USERS[alice_jid.split("@")[0]],
        remote=ejabberd,
        bob_jid=f"bob@{ejabberd.domain}",
        bob_password=BOB_PASSWORD,
        bob_resource="ejabberd",
        # One that both ejabberd and slixmpp have; SASL is not what this
        # tests.
        mechanism="SCRAM-SHA-1",
        logs={f"ejabberd's log ({ejabberd.domain})": ejabberd.log},
    )
    assert_streams(chorus, ejabberd.domain, "external" if ejabberd.verified else "dialback")
