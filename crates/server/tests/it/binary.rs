//! The `chorus` and `chorusctl` binaries together: the tree `chorusctl
//! actors tree` prints matches the open connections, kill by path works
//! through the CLI, and root escalation ends the process non-zero.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::daemon::*;
use crate::common::*;
use serde_json::Value;

fn chorusctl(socket: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::common::chorusctl_bin())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn conn_nodes(tree: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(n: &Value, out: &mut Vec<String>) {
        if n["kind"].as_str().is_some_and(|k| k.starts_with("group")) {
            out.push(n["id"].as_str().unwrap_or("").to_owned());
        }
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, out);
        }
    }
    walk(tree, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_tree_matches_open_connections() {
    let d = spawn_daemon("ctl-tree", "");
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open_stream(d.addr).await);
    }
    let (code, out, err) = chorusctl(&d.socket, &["actors", "tree", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut conns = conn_nodes(&v["tree"]);
    conns.sort();
    assert_eq!(conns, vec!["conn-1", "conn-2", "conn-3"]);

    let (code, human, _) = chorusctl(&d.socket, &["actors", "tree"]);
    assert_eq!(code, 0);
    for needle in [
        "root",
        "sessions",
        "listeners",
        "acceptor",
        "conns",
        "conn-2",
        "socket",
        "receiver",
        "c2s",
        "admin",
    ] {
        assert!(human.contains(needle), "{needle} in\n{human}");
    }

    // Kill one connection through the CLI; the tree follows.
    let port = v["tree"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "listeners")
        .unwrap()["children"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("root/listeners/{port}/conns/conn-2");
    let (code, _, err) = chorusctl(&d.socket, &["actors", "kill", &path]);
    assert_eq!(code, 0, "{err}");
    read_to_close(&mut streams[1]).await;
    let mut left = Vec::new();
    for _ in 0..100 {
        let (_, out, _) = chorusctl(&d.socket, &["actors", "tree", "--json"]);
        left = conn_nodes(&serde_json::from_str::<Value>(&out).unwrap()["tree"]);
        left.sort();
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, vec!["conn-1", "conn-3"]);

    let (code, _, err) = chorusctl(&d.socket, &["actors", "kill", "root/nope"]);
    assert_eq!(code, 1, "unknown path is a command error: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_intensity_exceeded_exits_non_zero() {
    let mut d = spawn_daemon("ctl-escalate", "");
    let started = Instant::now();
    let mut status = None;
    while started.elapsed() < Duration::from_secs(10) {
        let _ = chorus_ctl::request(
            &d.socket,
            "/api/actors/kill",
            &serde_json::json!({ "path": "root/sessions" }),
        );
        if let Some(s) = d.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
    }
    let status = status.expect("process exited after root gave up");
    assert_eq!(status.code(), Some(1));
}

#[test]
fn chorusctl_without_server_exits_3() {
    let (code, _, err) = chorusctl(
        std::path::Path::new("/nonexistent/chorus.sock"),
        &["actors", "tree"],
    );
    assert_eq!(code, 3, "{err}");
}

fn chorusctl_stdin(socket: &std::path::Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(crate::common::chorusctl_bin())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_manage_accounts_and_logins_follow() {
    let d = spawn_daemon("ctl-users", "");
    let (code, out, err) = chorusctl_stdin(
        &d.socket,
        &["user", "add", "dora@localhost", "--password-stdin"],
        "explorer\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dora@localhost"));
    let (code, _, err) = chorusctl_stdin(
        &d.socket,
        &["user", "add", "dora@localhost", "--password-stdin"],
        "x\n",
    );
    assert_eq!(code, 1, "duplicate is a command error: {err}");
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = chorusctl_stdin(
        &d.socket,
        &["user", "add", "eve@elsewhere.example", "--password-stdin"],
        "x\n",
    );
    assert_eq!(code, 1, "{err}");
    chorusctl_stdin(
        &d.socket,
        &["user", "add", "abe@localhost", "--password-stdin"],
        "lincoln\n",
    );

    let (code, out, _) = chorusctl(&d.socket, &["user", "list"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["abe@localhost", "dora@localhost"]
    );
    let (_, out, _) = chorusctl(&d.socket, &["user", "list", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["users"].as_array().unwrap().len(), 2);

    // The password set through chorusctl logs in; a changed one replaces it.
    let (_c, jid) = common::client::XmppClient::login(d.addr, "dora", "explorer", Some("r")).await;
    assert_eq!(jid, "dora@localhost/r");
    let (code, _, err) = chorusctl_stdin(
        &d.socket,
        &["user", "passwd", "dora@localhost", "--password-stdin"],
        "map\n",
    );
    assert_eq!(code, 0, "{err}");
    let mut c = common::client::XmppClient::connect(d.addr).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    assert_eq!(
        c.scram(
            chorus_sasl::Mechanism::ScramSha256,
            "dora",
            "explorer",
            None
        )
        .await
        .unwrap_err(),
        "not-authorized"
    );
    c.scram(chorus_sasl::Mechanism::ScramSha256, "dora", "map", None)
        .await
        .unwrap();

    let (code, _, err) = chorusctl(&d.socket, &["user", "del", "dora@localhost"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = chorusctl(&d.socket, &["user", "del", "dora@localhost"]);
    assert_eq!(code, 1);
    let (_, out, _) = chorusctl(&d.socket, &["user", "list"]);
    assert_eq!(out.trim(), "abe@localhost");
    // Passwords never appear on argv: there is no such flag.
    let (code, _, _) = chorusctl(
        &d.socket,
        &["user", "add", "x@localhost", "--password", "p"],
    );
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sessions_and_actor_commands() {
    let d = spawn_daemon("ctl-ops", "");
    chorusctl_stdin(
        &d.socket,
        &["user", "add", "kim@localhost", "--password-stdin"],
        "possible\n",
    );
    let (code, out, err) = chorusctl(&d.socket, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sessions: 0") && out.contains("port:c2s@127.0.0.1:0"),
        "{out}"
    );
    let (_, out, _) = chorusctl(&d.socket, &["status", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["listeners"][0]["address"], d.addr.to_string());
    assert_eq!(v["config_hash"].as_str().unwrap().len(), 16);

    let (mut a, _) =
        common::client::XmppClient::login(d.addr, "kim", "possible", Some("one")).await;
    let (_b, _) = common::client::XmppClient::login(d.addr, "kim", "possible", Some("two")).await;
    let (_, out, _) = chorusctl(&d.socket, &["sessions", "count"]);
    assert_eq!(out.trim(), "2");
    let (_, out, _) = chorusctl(&d.socket, &["sessions", "list", "--jid", "kim@localhost"]);
    assert!(
        out.contains("kim@localhost/one") && out.contains("kim@localhost/two"),
        "{out}"
    );
    let (code, _, err) = chorusctl(
        &d.socket,
        &[
            "sessions",
            "kick",
            "kim@localhost/one",
            "--reason",
            "maintenance",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(a.expect_stream_error().await, "policy-violation");
    let (_, out, _) = chorusctl(&d.socket, &["sessions", "count"]);
    assert_eq!(out.trim(), "1");
    let (code, _, _) = chorusctl(&d.socket, &["sessions", "kick", "nobody@localhost"]);
    assert_eq!(code, 1);

    let (code, out, err) = chorusctl(&d.socket, &["actors", "info", "root/sessions"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kind: worker") && out.contains("restarts: 0"),
        "{out}"
    );
    chorusctl(&d.socket, &["actors", "kill", "root/sessions"]);
    let mut restarted = false;
    for _ in 0..50 {
        let (_, out, _) = chorusctl(
            &d.socket,
            &["actors", "top", "--by", "restarts", "--limit", "1"],
        );
        if out.contains("root/sessions") && out.trim_start().starts_with('1') {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        restarted,
        "actors top --by restarts shows the restarted sessions actor first"
    );
    let (code, _, _) = chorusctl(&d.socket, &["actors", "top", "--by", "cpu"]);
    assert_eq!(code, 2, "invalid value is a usage error");
}

#[test]
fn config_check_is_offline_and_names_sources() {
    let dir = temp_dir("config-check");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[server]\ndomains = ['example.org']\n").unwrap();
    let out = Command::new(crate::common::chorusctl_bin())
        .args(["config", "check", "--file"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text.contains("server.domains = [\"example.org\"]") && text.contains("# file "),
        "{text}"
    );
    assert!(
        text.contains("limits.max_depth = 64") && text.contains("# default"),
        "{text}"
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\ndomian = ['x']\n").unwrap();
    let out = Command::new(crate::common::chorusctl_bin())
        .args(["config", "check", "--file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `domains`?"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_system_shutdown_drains_and_exits_zero() {
    let mut d = spawn_daemon("sigterm", "");
    let mut a = common::client::XmppClient::connect(d.addr).await;
    a.open().await;
    let mut b = common::client::XmppClient::connect(d.addr).await;
    b.open().await;
    let status = Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(a.expect_stream_error().await, "system-shutdown");
    assert_eq!(b.expect_stream_error().await, "system-shutdown");
    let started = Instant::now();
    let code = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "exited within the grace period"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert!(!d.socket.exists(), "the admin socket is removed");
}

#[test]
fn sd_notify_reports_ready_and_stopping() {
    let dir = temp_dir("notify");
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let d = spawn_daemon_env("notify-daemon", "", &[("NOTIFY_SOCKET", path.as_os_str())]);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_live_log_level() {
    let d = spawn_daemon("ctl-stats", "");
    let _s = open_stream(d.addr).await;
    let (code, out, err) = chorusctl(&d.socket, &["stats", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["connections"], 1);
    assert_eq!(v["sessions"], 0);
    assert!(v["rss_kib"].as_u64().unwrap() > 1000);
    assert!(v["actors"].as_u64().unwrap() >= 9);
    // At info, an accepted connection is not logged; at debug it is.
    let _quiet = open_stream(d.addr).await;
    let (code, out, err) = chorusctl(&d.socket, &["log", "level", "debug"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("log filter: debug"));
    let before: Vec<String> = d.logs.try_iter().collect();
    assert!(!before.iter().any(|l| l.contains("accepted")), "{before:?}");
    let _loud = open_stream(d.addr).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    while Instant::now() < deadline && !seen {
        if let Ok(l) = d.logs.recv_timeout(Duration::from_millis(100)) {
            seen = l.contains("DEBUG") && l.contains("accepted");
        }
    }
    assert!(seen, "debug lines appear after the change");
    let (code, _, err) = chorusctl(&d.socket, &["log", "level", "info,[[bad"]);
    assert_eq!(code, 1, "an invalid filter is refused: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_is_refused_unless_enabled() {
    let d = spawn_daemon("chaos-off", "");
    let (code, _, err) = chorusctl(
        &d.socket,
        &[
            "chaos",
            "--kill",
            "root/sessions",
            "--every",
            "100ms",
            "--for",
            "300ms",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("admin.chaos = true"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_report_matches_what_happened() {
    let d = spawn_daemon("chaos-on", "\n[admin]\nchaos = true\n");
    chorusctl_stdin(
        &d.socket,
        &["user", "add", "vic@localhost", "--password-stdin"],
        "tim\n",
    );
    let (mut victim, _) = common::client::XmppClient::login(d.addr, "vic", "tim", Some("r")).await;
    // Five acceptor kills, 200 ms apart: each restarted, nobody lost.
    let (code, out, err) = chorusctl(
        &d.socket,
        &[
            "chaos",
            "--kill",
            "root/listeners/*/acceptor",
            "--every",
            "200ms",
            "--for",
            "1s",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["killed"], 5, "{r}");
    assert_eq!(r["restarted"], 5, "{r}");
    assert!(r["kills"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["restart_ms"].as_f64().unwrap() < 200.0));
    assert_eq!(r["sessions_lost"].as_array().unwrap().len(), 0);
    // The server still accepts.
    let _s = open_stream(d.addr).await;

    // Killing the session's c2s (conn-1: it logged in first) loses it, and
    // the report says so;
    // a connection is temporary, so it is not restarted.
    let (code, out, err) = chorusctl(
        &d.socket,
        &[
            "chaos",
            "--kill",
            "root/listeners/*/conns/conn-1/c2s",
            "--every",
            "300ms",
            "--for",
            "300ms",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["killed"], 1, "{r}");
    assert_eq!(r["restarted"], 0, "{r}");
    assert_eq!(r["sessions_lost"][0], "vic@localhost/r");
    victim.next_event().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_swaps_certificates_and_listeners_without_dropping_connections() {
    let certs = temp_dir("reload-certs");
    let (cert_a, key_a) =
        chorus_c2s::tls::dev_certificate(&certs.join("a"), &["localhost".into()]).unwrap();
    let (cert_b, key_b) =
        chorus_c2s::tls::dev_certificate(&certs.join("b"), &["localhost".into()]).unwrap();
    let tls = |c: &std::path::Path, k: &std::path::Path| {
        format!(
            "\n[tls]\ncert = '{}'\nkey = '{}'\n",
            c.display(),
            k.display()
        )
    };
    let d = spawn_daemon("reload", &tls(&cert_a, &key_a));
    let config = d.socket.parent().unwrap().join("chorus.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    let der = |p: &std::path::Path| {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        CertificateDer::from_pem_file(p).unwrap().as_ref().to_vec()
    };
    chorusctl_stdin(
        &d.socket,
        &["user", "add", "ron@localhost", "--password-stdin"],
        "weasley\n",
    );
    let (mut old, _) =
        common::client::XmppClient::login(d.addr, "ron", "weasley", Some("old")).await;
    assert_eq!(old.peer_cert().unwrap(), der(&cert_a));

    // Certificate B and a second listener.
    let swapped = original
        .replace(&cert_a.display().to_string(), &cert_b.display().to_string())
        .replace(&key_a.display().to_string(), &key_b.display().to_string())
        + "\n[[listeners]]\nkind = 'c2s'\naddress = '127.0.0.2:0'\n";
    std::fs::write(&config, swapped).unwrap();
    let (code, out, err) = chorusctl(&d.socket, &["config", "reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("listener port:c2s@127.0.0.2:0 started"),
        "{out}"
    );
    let mut fresh = common::client::XmppClient::connect(d.addr).await;
    fresh.open().await;
    fresh.starttls().await;
    assert_eq!(
        fresh.peer_cert().unwrap(),
        der(&cert_b),
        "new connections see the new certificate"
    );
    let (_, status, _) = chorusctl(&d.socket, &["status", "--json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["listeners"].as_array().unwrap().len(), 2);
    // The old session is untouched.
    old.send("<iq to='localhost' type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(old.expect("iq").await.attr("id"), Some("alive"));

    // An invalid file changes nothing and says why.
    std::fs::write(&config, "[server]\ndomian = ['x']\n").unwrap();
    let (code, _, err) = chorusctl(&d.socket, &["config", "reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean `domains`?"), "{err}");
    let mut again = common::client::XmppClient::connect(d.addr).await;
    again.open().await;
    again.starttls().await;
    assert_eq!(
        again.peer_cert().unwrap(),
        der(&cert_b),
        "the old configuration stays"
    );

    // SIGHUP does the same as config reload.
    std::fs::write(&config, &original).unwrap();
    Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = common::client::XmppClient::connect(d.addr).await;
        c.open().await;
        c.starttls().await;
        if c.peer_cert().unwrap() == der(&cert_a) {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP reloaded the certificate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the real binary to its exit (at most 20 s) and returns its status
/// and standard error: for servers that must refuse to start.
fn run_to_exit(config: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server was expected to refuse to start, and is still running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_refuses_to_start_and_leaves_the_first_alone() {
    let d = spawn_daemon("lock", "");
    let dir = d.socket.parent().unwrap().to_owned();
    // Same data directory, another port (and the metrics endpoint on one of
    // its own too), as an operator starting a second instance by mistake.
    let second = dir.join("second.toml");
    std::fs::write(
        &second,
        format!(
            "[server]\ndomains = ['localhost']\ndata_dir = '{}'\n\n[metrics]\naddress = '127.0.0.1:0'\n\n\
             [[listeners]]\nkind = 'c2s'\naddress = '127.0.0.1:0'\n",
            dir.display()
        ),
    )
    .unwrap();
    let (code, err) = run_to_exit(&second);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("PID {}", d.child.id()))
            && err.contains(&dir.join("chorus.lock").display().to_string()),
        "the refusal names the lock file and its holder: {err}"
    );
    // The first server's admin socket is still there and still answers.
    assert!(d.socket.exists(), "the admin socket was left in place");
    let status = d.admin("/api/status", serde_json::json!({}));
    assert_eq!(status["listeners"][0]["address"], d.addr.to_string());
    let _s = open_stream(d.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_named_with_its_configuration_key() {
    // Held by the test for its whole length: every bind below collides.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let dir = temp_dir("bind-errors");
    let write = |name: &str, metrics: &str, second: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "[server]\ndomains = ['localhost']\ndata_dir = '{}'\n\n[metrics]\naddress = '{metrics}'\n\n\
                 [[listeners]]\nkind = 'c2s'\naddress = '127.0.0.1:0'\n\n\
                 [[listeners]]\nkind = 'c2s-tls'\naddress = '{second}'\n",
                dir.display()
            ),
        )
        .unwrap();
        path
    };

    let (code, err) = run_to_exit(&write("listener.toml", "127.0.0.1:0", &busy.to_string()));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot listen on {busy} (listeners[1].address): Address already in use\n"
        )),
        "{err}"
    );
    assert!(
        !dir.join("chorus.sock").exists(),
        "nothing was started: no admin socket"
    );

    let (code, err) = run_to_exit(&write("metrics.toml", &busy.to_string(), "127.0.0.1:0"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot listen on {busy} (metrics.address): Address already in use\n"
        )),
        "{err}"
    );

    // A reload that adds a listener on a port in use says the same.
    let d = spawn_daemon("bind-reload", "");
    let config = d.socket.parent().unwrap().join("chorus.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[listeners]]\nkind = 'c2s'\naddress = '{busy}'\n"
    ));
    std::fs::write(&config, text).unwrap();
    let (code, _, err) = chorusctl(&d.socket, &["config", "reload"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot listen on {busy} (listeners[1].address): Address already in use"
        )),
        "{err}"
    );
    drop(taken);
}

#[test]
fn config_check_reads_every_certificate_and_key_file_it_names() {
    let dir = temp_dir("config-check-tls");
    let (cert, key) =
        chorus_c2s::tls::dev_certificate(&dir.join("certs"), &["example.org".into()]).unwrap();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.join("missing.key");
    let file = dir.join("chorus.toml");
    let write = |sni_cert: &std::path::Path, sni_key: &std::path::Path| {
        std::fs::write(
            &file,
            format!(
                "[server]\ndomains = ['example.org', 'example.net']\n\
                 [tls]\ncert = '{}'\nkey = '{}'\n\
                 [[tls.sni]]\ndomain = 'example.net'\ncert = '{}'\nkey = '{}'\n",
                cert.display(),
                key.display(),
                sni_cert.display(),
                sni_key.display()
            ),
        )
        .unwrap();
    };
    let check = || {
        let out = Command::new(crate::common::chorusctl_bin())
            .args(["config", "check", "--file"])
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    write(&cert, &key);
    let (code, out, err) = check();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.ends_with("configuration OK\n"), "{out}");

    // Both problems of the SNI entry, each with its key and path.
    write(&garbage, &missing);
    let (code, out, err) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains("configuration OK"), "{out}");
    let problems: Vec<&str> = err.lines().skip(1).collect();
    assert_eq!(
        problems,
        [
            format!(
                "tls.sni[0].cert = {:?}: no PEM certificate (BEGIN CERTIFICATE) in it",
                garbage.display()
            ),
            format!(
                "tls.sni[0].key = {:?}: cannot read it: No such file or directory",
                missing.display()
            ),
        ],
        "{err}"
    );
}

/// The fail2ban `failregex` lines of docs/OPERATIONS.md, as Rust regexes:
/// `<HOST>` becomes a named group for an IP address, as fail2ban's does.
fn documented_failregexes() -> Vec<regex::Regex> {
    let doc = include_str!("../../../../docs/OPERATIONS.md");
    let filter = doc
        .split("`/etc/fail2ban/filter.d/chorus.conf`:")
        .nth(1)
        .and_then(|rest| rest.split("```ini\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the filter's ini block in docs/OPERATIONS.md");
    let mut out = Vec::new();
    let mut in_failregex = false;
    for line in filter.lines() {
        let pattern = if let Some(p) = line.strip_prefix("failregex =") {
            in_failregex = true;
            p
        } else if in_failregex && line.starts_with(char::is_whitespace) {
            line
        } else {
            in_failregex = false;
            continue;
        };
        let pattern = pattern.trim().replace("<HOST>", "(?P<host>[0-9A-Fa-f:.]+)");
        out.push(regex::Regex::new(&pattern).unwrap());
    }
    assert_eq!(out.len(), 2, "{filter}");
    out
}

/// The address the documented filter would ban for `line`, if any.
fn banned(filters: &[regex::Regex], line: &str) -> Option<String> {
    filters
        .iter()
        .find_map(|re| re.captures(line))
        .map(|c| c["host"].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_and_registrations_are_logged_for_fail2ban() {
    let d = spawn_daemon(
        "fail2ban",
        "\n[register]\nenabled = true\nburst = 1\nthrottle_exempt = []\n",
    );
    d.add_user("ann", "right");
    let tls = |addr| async move {
        let mut c = common::client::XmppClient::connect(addr).await;
        c.open().await;
        c.starttls().await;
        c.open().await;
        c
    };
    // A wrong password for a real account.
    let mut c = tls(d.addr).await;
    let mech = chorus_sasl::Mechanism::ScramSha256;
    assert_eq!(
        c.scram(mech, "ann", "wrong", None).await.unwrap_err(),
        "not-authorized"
    );
    // A username that is no JID and tries to pass for a log line of its
    // own, naming another address.
    let forged = "x  WARN a: authentication failed peer=6.6.6.6 conn=1";
    let mut c = tls(d.addr).await;
    assert_eq!(
        c.scram(mech, forged, "x", None).await.unwrap_err(),
        "not-authorized"
    );
    // A taken name, then the rate limit (one registration per address).
    let mut c = tls(d.addr).await;
    for id in ["taken", "limited"] {
        c.send(&format!(
            "<iq type='set' id='{id}'><query xmlns='jabber:iq:register'>\
             <username>ann</username><password>x</password></query></iq>"
        ))
        .await;
        c.expect("iq").await;
    }

    let want = [
        "authentication failed peer=127.0.0.1 conn=",
        "jid=ann@localhost mechanism=SCRAM-SHA-256 condition=not-authorized",
        "jid=\"x  WARN a: authentication failed peer=6.6.6.6 conn=1\" mechanism=SCRAM-SHA-256",
        "registration failed peer=127.0.0.1 conn=",
        "jid=ann@localhost reason=conflict",
        "jid=ann@localhost reason=rate-limit",
    ];
    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want.iter().all(|w| lines.iter().any(|l| l.contains(w))) {
        assert!(
            Instant::now() < deadline,
            "missing {:?} in\n{}",
            want.iter()
                .filter(|w| !lines.iter().any(|l| l.contains(*w)))
                .collect::<Vec<_>>(),
            lines.join("\n")
        );
        if let Ok(l) = d.logs.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    let failures: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" failed peer="))
        .collect();
    assert_eq!(failures.len(), 4, "{failures:#?}");
    for l in &failures {
        assert!(l.contains(" WARN "), "at WARN: {l}");
    }

    // The documented filter bans the client's address for each of the
    // four, from the server's lines as written and as the journal shows
    // them, and never the address the forged username names.
    let filters = documented_failregexes();
    for l in &lines {
        let journal = format!("host chorus[42]: {l}");
        let found = [banned(&filters, l), banned(&filters, &journal)];
        if failures.contains(&l) {
            assert_eq!(
                found,
                [Some("127.0.0.1".into()), Some("127.0.0.1".into())],
                "{l}"
            );
        } else {
            assert_eq!(found, [None, None], "{l}");
        }
    }
    // fail2ban cuts the timestamp out of a log file's lines first.
    let cut = failures[0].split_once('Z').unwrap().1;
    assert_eq!(banned(&filters, cut).as_deref(), Some("127.0.0.1"), "{cut}");
}
