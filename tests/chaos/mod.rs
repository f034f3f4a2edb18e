//! The chaos soak (issue 8, part 4): many XEP-0198 sessions exchange
//! messages with the real `chorus` binary while `chorusctl chaos` kills one
//! actor every second: a connection's `receiver`, `socket` or `c2s`, the
//! port's `acceptor`, `sessions`, or the archive writer.
//!
//! Included in the server's one integration-test binary
//! (`crates/server/tests/it/main.rs`). Short by default, for CI; the full run:
//!
//! ```text
//! CHORUS_SOAK_SESSIONS=2000 CHORUS_SOAK_SECS=60 \
//!   cargo test --release -p chorus-server --test it chaos -- --nocapture
//! ```
//!
//! `CHORUS_SOAK_SESSIONS` (default 200, rounded up to even: clients are
//! pairs), `CHORUS_SOAK_SECS` (default 10: how long kills go on, one per
//! second), `CHORUS_SOAK_INTERVAL_MS` (default 1000: each client sends its
//! peer one message per interval, unless `client::WINDOW` of its messages
//! are unacknowledged: the load follows what the server handles, and no
//! speed is asserted), `CHORUS_SOAK_KILL=0` (a control run: the same
//! traffic for the same time, no kills).
//!
//! The kills: six `chorusctl chaos` runs at once, one per pattern, each
//! `--every 5s`, started a second apart, so that an actor dies every
//! second, in turn: receiver, socket, c2s, acceptor, sessions, archive
//! writer (archiving is on, the shipped default).
//!
//! What it asserts, from the clients' books (client.rs), the server's log
//! (`accepted` lines map each client's local port to its `conn-<id>`) and
//! the chaos reports (which `conn-<id>` lost which actor):
//! - only connections whose actors were killed drop: every connection the
//!   server's side ended had its socket, receiver or c2s killed; killing the
//!   acceptor, `sessions` or the archive writer drops nobody;
//! - only sessions whose c2s was killed are lost (resumption fails); every
//!   other drop resumes (XEP-0198 §5);
//! - every message the server acknowledged reaches its recipient exactly
//!   once: live, resent on resumption, or from offline storage; the only
//!   second copies allowed are those XEP-0198 §4 implies: a copy received
//!   in a session that was then lost, which the server never saw
//!   acknowledged, comes again (to the client's new session, or from
//!   offline storage); messages the server never acknowledged come from
//!   lost sessions only, and arrive at most once;
//! - every acknowledged message is in its sender's archive and in its
//!   recipient's, read from the database file once the writer caught up;
//! - nothing waits in offline storage for an account that is online: a
//!   final sweep logs every account in once more and finds nothing;
//! - afterwards, with every client gone, the tree holds no connection and
//!   the same number of actors as before any client came;
//! - the server's memory comes back: RSS after the clients left is no more
//!   than the baseline measured with every session live before the chaos,
//!   plus a margin (`rss_margin_kib`). What the margin covers is traffic,
//!   not chaos: at 2000 sessions for 60 s, runs with kills ended 18-26 MiB
//!   above their baseline, and a control run (`CHORUS_SOAK_KILL=0`: same
//!   traffic and duration, no kills) 18 MiB above its own, with the same
//!   RSS after the traffic (142 MiB) as the runs with kills (142-146 MiB).
//!   The exact leak checks are the actor, connection and session counts.
#![allow(clippy::unwrap_used)]

mod client;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_sasl::{SaltedPassword, ScramCredentials, ScramHash};
use serde_json::Value;

use client::{Client, ClientReport, Ledger, Mode, Shared, Via};

/// Allowed on top of the baseline RSS once the clients left: what the
/// traffic leaves behind (storage caches, allocator slack), the same with
/// and without kills (see the module's documentation): 16 MiB and a
/// quarter of the baseline.
fn rss_margin_kib(baseline_kib: u64) -> u64 {
    16 * 1024 + baseline_kib / 4
}

struct Params {
    sessions: u32,
    secs: u64,
    interval: Duration,
    /// False for a control run: the same traffic and duration, no kills
    /// (what memory does without the chaos).
    kill: bool,
}

impl Params {
    fn from_env() -> Params {
        let num = |k: &str, d: u64| -> u64 {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let sessions = num("CHORUS_SOAK_SESSIONS", 200).max(2) as u32;
        Params {
            sessions: sessions + sessions % 2,
            secs: num("CHORUS_SOAK_SECS", 10).max(5),
            interval: Duration::from_millis(num("CHORUS_SOAK_INTERVAL_MS", 1000).max(10)),
            kill: num("CHORUS_SOAK_KILL", 1) != 0,
        }
    }
}

/// The real binary, with JSON logs kept in memory.
struct Daemon {
    child: Child,
    dir: std::path::PathBuf,
    socket: std::path::PathBuf,
    addr: std::net::SocketAddr,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or("")
}

impl Daemon {
    fn spawn() -> Daemon {
        let dir = std::env::temp_dir().join(format!("chorus-soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("chorus.sock");
        let config = dir.join("chorus.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\ndomains = ['localhost']\ndata_dir = '{}'\n\n\
                 [metrics]\naddress = '127.0.0.1:0'\n\n\
                 [[listeners]]\nkind = 'c2s'\naddress = '127.0.0.1:0'\n\n\
                 # Plaintext and cached SCRAM keep the clients cheap (tests only).\n\
                 [c2s]\nrequire_encryption = false\n\n\
                 [offline]\nquota = 100000\n\n\
                 [admin]\nchaos = true\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .arg("--config")
            .arg(&config)
            .arg("--log-format")
            .arg("json")
            // `accepted` (debug) maps a client's port to its conn-<id>.
            .env("CHORUS_LOG", "info,chorus_listener=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if message(&v) == "listening" {
                    let _ = tx.send(v["fields"]["address"].as_str().unwrap_or("").to_owned());
                }
                sink.lock().unwrap().push(v);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server logged its address")
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Daemon {
            child,
            dir,
            socket,
            addr,
            logs,
        }
    }

    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(crate::common::chorusctl_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ctl_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.ctl(&all);
        assert_eq!(code, 0, "chorusctl {args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// `n` accounts u0..u{n-1} with one password and one salt, imported as
/// XEP-0227 SCRAM credentials (no PBKDF2 per account on either side).
fn import_accounts(d: &Daemon, n: u32, salted: &SaltedPassword) {
    let c = ScramCredentials::from_salted_password(salted);
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let scram = format!(
        "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-256'>\
         <iter-count>{}</iter-count><salt>{}</salt><server-key>{}</server-key>\
         <stored-key>{}</stored-key></scram-credentials>",
        c.iterations,
        b64(&c.salt),
        b64(&c.server_key),
        b64(&c.stored_key)
    );
    let path = d.dir.join("accounts.xml");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(
        f,
        "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='localhost'>"
    )
    .unwrap();
    for i in 0..n {
        writeln!(f, "<user name='u{i}'>{scram}</user>").unwrap();
    }
    writeln!(f, "</host>\n</server-data>").unwrap();
    drop(f);
    let (code, out, err) = d.ctl(&["import", path.to_str().unwrap()]);
    assert_eq!(code, 0, "import: {out} {err}");
}

/// The `conn-<id>` in a tree path, if any.
fn conn_of(path: &str) -> Option<u64> {
    path.split('/')
        .find_map(|s| s.strip_prefix("conn-"))
        .and_then(|n| n.parse().ok())
}

fn group_nodes(tree: &Value, out: &mut Vec<String>) {
    if tree["kind"]
        .as_str()
        .is_some_and(|k| k.starts_with("group"))
    {
        out.push(tree["id"].as_str().unwrap_or("").to_owned());
    }
    for c in tree["children"].as_array().into_iter().flatten() {
        group_nodes(c, out);
    }
}

fn node_ids(tree: &Value, out: &mut Vec<String>) {
    out.push(tree["id"].as_str().unwrap_or("").to_owned());
    for c in tree["children"].as_array().into_iter().flatten() {
        node_ids(c, out);
    }
}

const KINDS: [(&str, &str); 6] = [
    ("receiver", "root/listeners/*/conns/*/receiver"),
    ("socket", "root/listeners/*/conns/*/socket"),
    ("c2s", "root/listeners/*/conns/*/c2s"),
    ("acceptor", "root/listeners/*/acceptor"),
    ("sessions", "root/sessions"),
    ("archive-writer", "root/modules/archive-writer"),
];

/// Kinds whose actor is a supervised service: each kill must be followed
/// by a restart, and drops nobody.
fn is_service(kind: &str) -> bool {
    matches!(kind, "acceptor" | "sessions" | "archive-writer")
}

/// The archive copies of `acked` (sender index, sequence number) that the
/// daemon's database does not hold: each message belongs in its sender's
/// archive as sent and in its recipient's as received. Read from the
/// database file, not over XMPP, so no flush on query hides a lost row.
async fn missing_from_archive(
    storage: &chorus_storage::Storage,
    n: u32,
    acked: &[(u32, u32)],
) -> Vec<String> {
    use chorus_storage::{ArchiveCursor, ArchiveQuery, ArchiveStore};
    // (account index, body, sent by the account)
    let mut held: HashSet<(u32, String, bool)> = HashSet::new();
    for i in 0..n {
        let mut cursor = ArchiveCursor::First;
        loop {
            let query = ArchiveQuery {
                with: None,
                start: None,
                end: None,
                after_id: None,
                before_id: None,
                ids: Vec::new(),
                cursor: cursor.clone(),
                limit: 500,
            };
            let page = storage
                .archive_query(&format!("u{i}"), "localhost", &query)
                .await
                .unwrap();
            for m in &page.messages {
                let body = m
                    .stanza
                    .split_once("<body>")
                    .and_then(|(_, rest)| rest.split_once("</body>"))
                    .map_or("", |(body, _)| body);
                held.insert((i, body.to_owned(), m.outgoing));
            }
            match page.messages.last() {
                Some(last) if !page.complete => {
                    cursor = ArchiveCursor::After(last.stanza_id.clone())
                }
                _ => break,
            }
        }
    }
    let mut missing = Vec::new();
    for &(idx, seq) in acked {
        let peer = if idx ^ 1 < n { idx ^ 1 } else { idx };
        let body = format!("m:{idx}:{seq}");
        if !held.contains(&(idx, body.clone(), true)) {
            missing.push(format!("{body} in u{idx}'s archive (sent)"));
        }
        if !held.contains(&(peer, body.clone(), false)) {
            missing.push(format!("{body} in u{peer}'s archive (received)"));
        }
    }
    missing
}

/// Waits for `cond`, polling; false on timeout.
async fn settle(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let p = Params::from_env();
    let n = p.sessions;
    let started = Instant::now();
    let mut d = Daemon::spawn();

    // One salt for every account: one PBKDF2 here, none per login.
    let password = "soak-password".to_owned();
    let salted =
        SaltedPassword::derive(&password, ScramHash::Sha256, b"chorus-soak-salt", 4096).unwrap();
    import_accounts(&d, n, &salted);
    let stats0 = d.ctl_json(&["stats"]);
    let rss_empty = d.rss_kib();

    let (mode_tx, mode_rx) = tokio::sync::watch::channel(Mode::Send);
    let shared = Arc::new(Shared {
        addr: d.addr,
        password,
        salted,
        interval: p.interval,
        mode: mode_rx,
        ledger: Mutex::new(Ledger::default()),
        live: Default::default(),
        outstanding: Default::default(),
        login_gate: tokio::sync::Semaphore::new(32),
    });
    let handles: Vec<_> = (0..n)
        .map(|i| tokio::spawn(Client::new(i, n, shared.clone()).run()))
        .collect();
    let all_live = settle(Duration::from_secs(120 + u64::from(n) / 10), || {
        shared.live.load(Ordering::SeqCst) == n as usize
    })
    .await;
    assert!(
        all_live,
        "only {} of {n} sessions logged in",
        shared.live.load(Ordering::SeqCst)
    );
    let login_secs = started.elapsed().as_secs_f64();
    eprintln!("soak: {n} sessions live after {login_secs:.1} s");
    // Warm up: every session exchanges messages for a few intervals, then
    // the baseline is taken with everything live.
    tokio::time::sleep(p.interval * 3).await;
    let rss_baseline = d.rss_kib();
    let stats_baseline = d.ctl_json(&["stats"]);

    // The chaos: one chorusctl per pattern, a second apart, each every 5 s.
    let chaos_started = Instant::now();
    let mut runs: Vec<(&str, Child)> = Vec::new();
    let kinds: &[(&str, &str)] = if p.kill { &KINDS } else { &[] };
    if !p.kill {
        // As long as the six runs below take: the last starts after 5 s
        // and watches its last kill for up to 5 s.
        tokio::time::sleep(Duration::from_secs(p.secs + 10)).await;
    }
    for (i, (kind, pattern)) in kinds.iter().enumerate() {
        let at = chaos_started + Duration::from_secs(i as u64);
        tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
        let child = Command::new(crate::common::chorusctl_bin())
            .arg("--socket")
            .arg(&d.socket)
            .args([
                "--json",
                "chaos",
                "--kill",
                pattern,
                "--every",
                "5s",
                "--for",
                &format!("{}s", p.secs),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        runs.push((kind, child));
    }
    let mut reports: Vec<(&str, Value)> = Vec::new();
    for (kind, child) in runs {
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "chorusctl chaos {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        reports.push((kind, serde_json::from_slice(&out.stdout).unwrap()));
    }
    let chaos_secs = chaos_started.elapsed().as_secs_f64();
    eprintln!("soak: chaos over after {chaos_secs:.1} s");
    assert!(d.alive(), "the server exited during the chaos");

    // Quiet: no new messages; wait until every session is back, everything
    // sent is acknowledged or given up, and every acknowledged message
    // arrived.
    mode_tx.send(Mode::Quiet).unwrap();
    let quiet_started = Instant::now();
    let settled = settle(Duration::from_secs(60), || {
        shared.live.load(Ordering::SeqCst) == n as usize
            && shared.outstanding.load(Ordering::SeqCst) == 0
            && shared.ledger.lock().unwrap().pending() == 0
    })
    .await;
    let quiet_secs = quiet_started.elapsed().as_secs_f64();
    let rss_after_chaos = d.rss_kib();
    let (live_q, outstanding_q, pending_q) = (
        shared.live.load(Ordering::SeqCst),
        shared.outstanding.load(Ordering::SeqCst),
        shared.ledger.lock().unwrap().pending(),
    );

    eprintln!("soak: settled={settled} in {quiet_secs:.1} s");
    mode_tx.send(Mode::Close).unwrap();
    let mut clients: Vec<ClientReport> = Vec::new();
    for h in handles {
        clients.push(h.await.unwrap());
    }

    eprintln!("soak: clients closed");
    // The sweep: every account once more, for what offline storage still holds.
    let sweepers: Vec<_> = (0..n)
        .map(|i| {
            let s = shared.clone();
            // connect_and_login takes a login permit.
            tokio::spawn(Client::sweeper(i, n, s).run_sweep())
        })
        .collect();
    let mut sweeps: Vec<ClientReport> = Vec::new();
    for h in sweepers {
        sweeps.push(h.await.unwrap());
    }

    eprintln!("soak: sweep done");
    // The tree and memory once everyone left.
    let mut stats_end = d.ctl_json(&["stats"]);
    let gone = settle(Duration::from_secs(20), || {
        stats_end = d.ctl_json(&["stats"]);
        stats_end["connections"] == 0 && stats_end["sessions"] == 0
    })
    .await;
    // Let the last Drop tasks and the allocator settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats_end = d.ctl_json(&["stats"]);
    let rss_end = d.rss_kib();
    let tree = d.ctl_json(&["actors", "tree"]);
    let mut groups = Vec::new();
    group_nodes(&tree["tree"], &mut groups);
    let mut ids = Vec::new();
    node_ids(&tree["tree"], &mut ids);
    assert!(d.alive(), "the server exited");

    // ---- What happened, from the books ----
    let logs = d.logs.lock().unwrap().clone();
    // Local port -> the conn ids the server accepted from it, in order.
    let mut accepted: HashMap<u16, Vec<u64>> = HashMap::new();
    let mut log_errors = Vec::new();
    for v in &logs {
        if message(v) == "accepted" {
            let port = v["fields"]["peer"]
                .as_str()
                .and_then(|p| p.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok());
            if let (Some(port), Some(conn)) = (port, v["fields"]["conn"].as_u64()) {
                accepted.entry(port).or_default().push(conn);
            }
        }
        if v["level"] == "ERROR" {
            log_errors.push(v.to_string());
        }
    }
    // Kills: conn id -> kinds killed; per kind counts and restarts.
    let mut killed: HashMap<u64, HashSet<&str>> = HashMap::new();
    let mut kills_by_kind: BTreeMap<&str, (u64, u64, f64)> = BTreeMap::new();
    for (kind, r) in &reports {
        let e = kills_by_kind.entry(kind).or_default();
        for k in r["kills"].as_array().into_iter().flatten() {
            let Some(path) = k["path"].as_str() else {
                continue;
            };
            e.0 += 1;
            if k["restarted"] == true {
                e.1 += 1;
                e.2 = e.2.max(k["restart_ms"].as_f64().unwrap_or(0.0));
            }
            if let Some(c) = conn_of(path) {
                killed.entry(c).or_default().insert(kind);
            }
        }
    }

    // Each client connection's conn id: per local port, the server's
    // `accepted` lines in order match the connections from that port in the
    // order they were opened. Owners index `clients` then `sweeps`.
    let owners: Vec<&ClientReport> = clients.iter().chain(sweeps.iter()).collect();
    let mut by_port: HashMap<u16, Vec<(Instant, usize, usize)>> = HashMap::new();
    for (oi, c) in owners.iter().enumerate() {
        for (i, rec) in c.conns.iter().enumerate() {
            by_port
                .entry(rec.port)
                .or_default()
                .push((rec.opened, oi, i));
        }
    }
    let mut conn_id: HashMap<(usize, usize), u64> = HashMap::new();
    let mut unmapped = 0;
    for (port, mut list) in by_port {
        list.sort();
        let ids = accepted.get(&port).cloned().unwrap_or_default();
        if ids.len() != list.len() {
            unmapped += list.len();
            continue;
        }
        for ((_, oi, i), id) in list.into_iter().zip(ids) {
            conn_id.insert((oi, i), id);
        }
    }
    let id_of = |client: usize, conn: usize| conn_id.get(&(client, conn)).copied();

    let mut problems: Vec<String> = Vec::new();
    let mut drops = 0;
    let mut drops_in_login = 0;
    let mut drops_unexplained = 0;
    let mut losses_unexplained = 0;
    let mut resumes = 0;
    let mut sessions_lost = 0;
    let mut bind_retries = 0;
    let mut deferred = 0;
    for (ci, c) in clients.iter().enumerate() {
        resumes += c.resumes;
        bind_retries += c.bind_retries;
        deferred += c.deferred;
        for a in &c.anomalies {
            problems.push(format!("u{}: {a}", c.idx));
        }
        for (i, rec) in c.conns.iter().enumerate() {
            let Some(cause) = &rec.dropped else { continue };
            drops += 1;
            if rec.phase != "running" {
                drops_in_login += 1;
            }
            let explained = id_of(ci, i).is_some_and(|id| killed.contains_key(&id));
            if !explained {
                drops_unexplained += 1;
            }
            match id_of(ci, i) {
                Some(id) if killed.contains_key(&id) => {}
                Some(id) => problems.push(format!(
                    "u{}: conn-{id} dropped ({cause}, in {}) but none of its actors was killed",
                    c.idx, rec.phase
                )),
                None => problems.push(format!(
                    "u{}: connection from port {} dropped ({cause}) and the server's log does not say which conn it was",
                    c.idx, rec.port
                )),
            }
        }
        for s in &c.sessions {
            if !s.lost {
                continue;
            }
            sessions_lost += 1;
            let c2s_killed = s.conns.iter().any(|&i| {
                id_of(ci, i)
                    .and_then(|id| killed.get(&id))
                    .is_some_and(|k| k.contains("c2s"))
            });
            if !c2s_killed {
                losses_unexplained += 1;
                let ids: Vec<_> = s.conns.iter().map(|&i| id_of(ci, i)).collect();
                problems.push(format!(
                    "u{}: session {} lost (resumption failed) but no c2s of its connections {ids:?} was killed",
                    c.idx, s.no
                ));
            }
        }
    }
    if unmapped > 0 {
        problems.push(format!(
            "{unmapped} client connections could not be matched to the server's accepted log"
        ));
    }

    // Deliveries.
    let mut received: HashMap<(u32, u32), Vec<(client::Copy, bool)>> = HashMap::new();
    let lost_sessions: HashSet<(u32, u32)> = clients
        .iter()
        .flat_map(|c| {
            c.sessions
                .iter()
                .filter(|s| s.lost)
                .map(move |s| (c.idx, s.no))
        })
        .collect();
    for c in clients.iter().chain(sweeps.iter()) {
        for (id, copies) in &c.received {
            for cp in copies {
                let in_lost = lost_sessions.contains(&(c.idx, cp.session));
                received.entry(*id).or_default().push((*cp, in_lost));
            }
        }
    }
    for s in &sweeps {
        for a in &s.anomalies {
            problems.push(format!("sweep u{}: {a}", s.idx));
        }
    }
    let (mut sent, mut acked, mut lost_msgs, mut dup_allowed, mut dup_bad) = (0, 0, 0, 0, 0);
    let (mut unacked_delivered, mut unacked_not_delivered) = (0, 0);
    let mut via_count: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &clients {
        for (seq, s) in c.sent.iter().enumerate() {
            sent += 1;
            let id = (c.idx, seq as u32);
            let copies = received.get(&id).cloned().unwrap_or_default();
            if let Some((first, _)) = copies.first() {
                *via_count
                    .entry(match first.via {
                        Via::Live => "live",
                        Via::Resumed => "resumed",
                        Via::Offline => "offline",
                        Via::Sweep => "offline, at the final sweep",
                    })
                    .or_default() += 1;
            }
            // A second copy is what XEP-0198 §4 allows only when the one
            // before it arrived in a session that was then lost.
            for w in copies.windows(2) {
                let (prev, prev_lost) = w[0];
                if prev_lost && w[1].0.session != prev.session {
                    dup_allowed += 1;
                } else {
                    dup_bad += 1;
                    if dup_bad <= 10 {
                        problems.push(format!("message {id:?} delivered twice: {copies:?}"));
                    }
                }
            }
            if s.acked {
                acked += 1;
                if copies.is_empty() {
                    lost_msgs += 1;
                    if lost_msgs <= 10 {
                        problems.push(format!(
                            "message {id:?} was acknowledged and never delivered"
                        ));
                    }
                }
            } else {
                if !lost_sessions.contains(&(c.idx, s.session)) {
                    problems.push(format!(
                        "message {id:?} never acknowledged, yet its session {} was not lost",
                        s.session
                    ));
                }
                if copies.is_empty() {
                    unacked_not_delivered += 1;
                } else {
                    unacked_delivered += 1;
                }
            }
        }
    }
    let swept: usize = sweeps
        .iter()
        .map(|s| s.received.values().map(Vec::len).sum::<usize>())
        .sum();

    if swept > 0 {
        problems.push(format!(
            "{swept} messages waited in offline storage while their recipient was online"
        ));
    }
    // The archive (archiving is on by default): every acknowledged message
    // is in its sender's archive and its recipient's, archive writer kills
    // or not. The writer commits in the background, so give it a moment.
    let acked_ids: Vec<(u32, u32)> = clients
        .iter()
        .flat_map(|c| {
            c.sent
                .iter()
                .enumerate()
                .filter(|(_, s)| s.acked)
                .map(move |(seq, _)| (c.idx, seq as u32))
        })
        .collect();
    let url = format!("sqlite://{}", d.dir.join("chorus.db").display());
    let storage = chorus_storage::Storage::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let unarchived = loop {
        let missing = missing_from_archive(&storage, n, &acked_ids).await;
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    storage.close().await;
    for m in unarchived.iter().take(10) {
        problems.push(format!("acknowledged, not archived: {m}"));
    }
    if unarchived.len() > 10 {
        problems.push(format!(
            "... {} acknowledged messages missing from the archives in all",
            unarchived.len()
        ));
    }
    // The tree and the memory.
    if !groups.is_empty() {
        problems.push(format!(
            "connections left in the tree: {}",
            groups.join(", ")
        ));
    }
    for fixed in [
        "root",
        "sessions",
        "listeners",
        "acceptor",
        "conns",
        "admin",
    ] {
        if !ids.iter().any(|i| i == fixed) {
            problems.push(format!("{fixed} missing from the tree afterwards"));
        }
    }
    if stats_end["actors"] != stats0["actors"] {
        problems.push(format!(
            "{} actors registered afterwards, {} before any client",
            stats_end["actors"], stats0["actors"]
        ));
    }
    if !gone {
        problems.push(format!(
            "connections or sessions left afterwards: {stats_end}"
        ));
    }
    let margin = rss_margin_kib(rss_baseline);
    if rss_end > rss_baseline + margin {
        problems.push(format!(
            "RSS {rss_end} KiB once the clients left, above the live baseline {rss_baseline} KiB + {margin} KiB"
        ));
    }
    if !settled {
        problems.push(format!(
            "did not settle after the chaos: {live_q}/{n} sessions live, {outstanding_q} messages unacknowledged, {pending_q} acknowledged and not delivered"
        ));
    }
    for &(kind, _) in kinds {
        let (k, r, _) = kills_by_kind.get(kind).copied().unwrap_or_default();
        if k == 0 {
            problems.push(format!("no {kind} was killed"));
        }
        if is_service(kind) && r != k {
            problems.push(format!("{kind}: {k} killed, only {r} restarted"));
        }
    }
    for e in log_errors.iter().take(10) {
        problems.push(format!("server logged an error: {e}"));
    }

    let kills_total: u64 = kills_by_kind.values().map(|v| v.0).sum();
    let mut report = String::new();
    let mut line = |s: String| {
        report.push_str(&s);
        report.push('\n');
    };
    line(format!(
        "chaos soak: {n} sessions, one message per {:?} each, kills for {} s ({chaos_secs:.0} s with the chorusctl runs' start and end)",
        p.interval, p.secs
    ));
    line(format!(
        "  logins: {n} in {login_secs:.1} s; bind retries (sessions restarting): {bind_retries}"
    ));
    line(format!(
        "  kills: {kills_total} ({})",
        kills_by_kind
            .iter()
            .map(|(k, (n, r, ms))| if is_service(k) {
                format!("{k} {n}, restarted {r}, slowest {ms:.1} ms")
            } else {
                format!("{k} {n}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    ));
    line(format!(
        "  connections dropped: {drops} ({drops_in_login} during login or resumption), {drops_unexplained} of them without a kill on that conn"
    ));
    line(format!(
        "  sessions resumed: {resumes}; sessions lost: {sessions_lost}, {losses_unexplained} of them without a c2s kill"
    ));
    line(format!(
        "  messages: {sent} sent ({deferred} sends deferred while {} were unacknowledged), {acked} acknowledged, {lost_msgs} of those lost; first copies by way: {}",
        client::WINDOW,
        via_count
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    line(format!(
        "  duplicates: {dup_bad} not allowed; {dup_allowed} second copies after the recipient's session was lost (XEP-0198 §4: it never acknowledged the first)"
    ));
    line(format!(
        "  never acknowledged (sender's session lost): {unacked_delivered} delivered once, {unacked_not_delivered} not delivered"
    ));
    line(format!(
        "  settled in {quiet_secs:.1} s after the chaos; the final sweep found {swept} messages in offline storage"
    ));
    line(format!(
        "  archives: {} acknowledged messages, {} copies (sender's and recipient's) missing",
        acked_ids.len(),
        unarchived.len()
    ));
    line(format!(
        "  actors: {} before the clients, {} with {n} sessions, {} afterwards; connections afterwards: {}",
        stats0["actors"], stats_baseline["actors"], stats_end["actors"], stats_end["connections"]
    ));
    line(format!(
        "  server RSS: {} KiB empty, {rss_baseline} KiB baseline ({n} sessions live), {rss_after_chaos} KiB after the chaos, {rss_end} KiB once the clients left",
        rss_empty
    ));
    line(format!("  total {:.0} s", started.elapsed().as_secs_f64()));
    println!("{report}");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n\n{report}",
        problems.len(),
        problems.join("\n")
    );
}

/// The soak's first finding, pinned down: stanzas routed to a session whose
/// c2s is killed before it took them are not lost. They used to wait in the
/// actor's mailbox, which ractor drops unread on a kill; they now wait in
/// the session's inbox, which `Drop` of the c2s state hands to the router
/// (XEP-0198 §4: as if sent to an unavailable resource, so offline storage
/// here, the account having no other resource).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_c2s_loses_nothing_routed_to_it() {
    use crate::common::client::XmppClient;
    use chorus_storage::OfflineStore as _;

    const N: usize = 1000;
    let mut cfg = crate::common::test_config("chaos-inbox");
    cfg.offline.quota = 10_000;
    let server = crate::common::start(cfg).await;
    crate::common::add_user(&server, "alice", "wonderland").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, jid) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    alice
        .send(&format!(
            "<enable xmlns='{}' resume='true'/>",
            client::NS_SM
        ))
        .await;
    // The presence echo may come first.
    loop {
        let e = alice.next_element().await;
        if e.ns() == client::NS_SM {
            assert!(e.is("enabled", client::NS_SM), "{}", e.to_xml());
            break;
        }
    }
    let full: chorus_jid::FullJid = jid.parse().unwrap();
    assert!(
        crate::common::wait_until(Duration::from_secs(5), || server
            .sessions
            .get(&full)
            .is_some_and(|s| s.available()))
        .await
    );
    let session = server.sessions.get(&full).unwrap();
    // Routed as the router does it, then the kill at once: most of them
    // are still waiting for the actor when it dies.
    for i in 0..N {
        let m = chorus_xml::Element::new("message", "jabber:client")
            .with_attr("from", "bob@localhost/b")
            .with_attr("to", jid.as_str())
            .with_attr("type", "chat")
            .with_attr("id", format!("k{i}"))
            .with_child(
                chorus_xml::Element::new("body", "jabber:client").with_text(format!("{i}")),
            );
        assert!(session.sink.deliver(m));
    }
    let c2s = format!(
        "{}/conn-{}/c2s",
        crate::common::conns_path(&server),
        session.conn_id
    );
    server
        .registry
        .kill(&c2s, chorus_supervisor::StopMode::Kill)
        .unwrap();
    drop(session);
    let mut stored = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        stored = server
            .storage
            .count_offline("alice", "localhost")
            .await
            .unwrap();
        if stored as usize >= N && server.sessions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stored as usize, N,
        "every routed message is in offline storage"
    );
    // Alice's next login gets each of them once.
    let (mut later, _) = XmppClient::login(addr, "alice", "wonderland", Some("later")).await;
    let mut seen = HashSet::new();
    while seen.len() < N {
        let e = later.next_element().await;
        if e.name() == "message" {
            assert!(
                seen.insert(e.attr("id").unwrap().to_owned()),
                "twice: {}",
                e.to_xml()
            );
        }
    }
    server.stop();
}
