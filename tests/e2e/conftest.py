"""End-to-end fixtures: a real `chorus` server on loopback ports, accounts
registered with the real `chorusctl`, and slixmpp clients.

The binaries come from CHORUS_BIN_DIR (default: target/debug of the
checkout). Every server binds 127.0.0.1 only and is stopped by the fixture.
"""

import asyncio
import hashlib
import os
import pathlib
import socket
import ssl
import subprocess
import time

import pytest
import slixmpp
from slixmpp.util.sasl import mechanisms as sasl_mechanisms

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("CHORUS_BIN_DIR", ROOT / "target" / "debug"))
USERS = {"alice": "wonder land ✓", "bob": "builder", "carol": "c4r0l", "dave": "d4ve", "erin": "3rin"}


# COMPAT(slixmpp): Python's ssl module (3.11) offers neither tls-exporter
# nor tls-server-end-point, and tls-unique does not exist in TLS 1.3, so
# stock slixmpp cannot run SCRAM-*-PLUS against a TLS 1.3 server. The tests
# supply tls-server-end-point (RFC 5929: SHA-256 of the server certificate,
# which Python can compute) and relabel slixmpp's gs2 header accordingly.
# Everything else in the exchange is slixmpp's own code.
if "tls-exporter" not in ssl.CHANNEL_BINDING_TYPES:
    ssl.CHANNEL_BINDING_TYPES.append("tls-exporter")
    _orig_cb = ssl.SSLObject.get_channel_binding

    def _server_end_point(self, cb_type="tls-unique"):
        if cb_type == "tls-exporter":
            return hashlib.sha256(self.getpeercert(binary_form=True)).digest()
        return _orig_cb(self, cb_type)

    ssl.SSLObject.get_channel_binding = _server_end_point
    _orig_process_1 = sasl_mechanisms.SCRAM.process_1

    def _process_1(self, challenge):
        out = _orig_process_1(self, challenge)
        if self.gs2_header.startswith(b"p=tls-exporter"):
            self.gs2_header = self.gs2_header.replace(
                b"p=tls-exporter", b"p=tls-server-end-point", 1
            )
            self.client_first_message = self.gs2_header + self.client_first_message_bare
            out = self.client_first_message
        return out

    sasl_mechanisms.SCRAM.process_1 = _process_1


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(port, deadline, host="127.0.0.1"):
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


class ChorusServer:
    # Where `Client` connects; another server a test runs (Prosody) has its
    # own `host`, ports and `cert`.
    host = "127.0.0.1"

    def __init__(self, data_dir, starttls_port, tls_port):
        self.data_dir = data_dir
        self.starttls_port = starttls_port
        self.tls_port = tls_port
        self.socket = data_dir / "chorus.sock"
        self.cert = data_dir / "dev-cert.pem"

    def ctl(self, *args, stdin=None):
        return subprocess.run(
            [str(BIN / "chorusctl"), "--socket", str(self.socket), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """A server per test module. A module may append to its configuration
    with a module-level `SERVER_CONFIG` string (TOML sections), or with a
    function of the data directory that returns it, for a module that puts
    files there first (certificates)."""
    data_dir = tmp_path_factory.mktemp("chorus")
    extra_config = getattr(request.module, "SERVER_CONFIG", "")
    if callable(extra_config):
        extra_config = extra_config(data_dir)
    p1, p2 = free_port(), free_port()
    config = data_dir / "chorus.toml"
    config.write_text(
        f"""
[server]
domains = ["localhost"]
data_dir = "{data_dir}"

[metrics]
address = "127.0.0.1:0"

[[listeners]]
kind = "c2s"
address = "127.0.0.1:{p1}"

[[listeners]]
kind = "c2s-tls"
address = "127.0.0.1:{p2}"
"""
        + extra_config
    )
    log = open(data_dir / "server.log", "w")
    proc = subprocess.Popen(
        [str(BIN / "chorus"), "--config", str(config)], stdout=log, stderr=log
    )
    srv = ChorusServer(data_dir, p1, p2)
    try:
        deadline = time.time() + 30
        wait_for_port(p1, deadline)
        wait_for_port(p2, deadline)
        while not srv.socket.exists() and time.time() < deadline:
            time.sleep(0.05)
        for user, password in USERS.items():
            r = srv.ctl("user", "add", f"{user}@localhost", "--password-stdin", stdin=password + "\n")
            assert r.returncode == 0, r.stderr
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def chorus(request, server):
    """The `server` of a federation test module (test_*_s2s.py), whose
    `SERVER_CONFIG` is s2s_interop.chorus_config: its clients trust the test
    CA, and its s2s listener, on the module's CHORUS_S2S_PORT, is up."""
    from s2s_interop import Ca

    server.ca = Ca(server.data_dir)
    server.cert = server.ca.cert
    wait_for_port(request.module.CHORUS_S2S_PORT, time.time() + 30)
    return server


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that records what it receives. `mechanism` is the
    only SASL mechanism it tries (another server may not offer Chorus's)."""

    def __init__(self, jid, password, server, direct_tls=False, mechanism="SCRAM-SHA-256-PLUS"):
        super().__init__(jid, password)
        self.ca_certs = server.cert
        self.register_plugin("xep_0199")
        self.plugin["feature_mechanisms"].use_mech = mechanism
        self.enable_plaintext = False
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.host = server.host
        self.port = server.tls_port if direct_tls else server.starttls_port
        self.messages = asyncio.Queue()
        self.stream_errors = []
        self.started = asyncio.Event()
        self.gone = asyncio.Event()
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("message", self._message)
        self.add_event_handler("stream_error", self._stream_error)
        self.add_event_handler("disconnected", lambda _: self.gone.set())
        self.add_event_handler("failed_all_auth", lambda _: self.gone.set())

    async def _start(self, _event):
        self.send_presence()
        self.started.set()

    async def _message(self, msg):
        await self.messages.put(msg)

    def _stream_error(self, err):
        self.stream_errors.append(err["condition"])

    async def online(self, timeout=20):
        self.connect(self.host, self.port)
        await asyncio.wait_for(self.started.wait(), timeout)
        return self

    @property
    def mechanism(self):
        return self.plugin["feature_mechanisms"].mech.name
