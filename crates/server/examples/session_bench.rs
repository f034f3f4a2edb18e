//! Authenticated sessions: SCRAM-SHA-256 logins per second (4096
//! iterations) and RSS per idle authenticated session, with and without TLS.
//!
//! Run on demand: `cargo run --release -p chorus-server --example session_bench [N...]`.
//! Like `conn_memory`, it re-executes itself as the server so that only the
//! server's memory is measured. The server creates N accounts that share one
//! salt, so the client derives the salted password once and caches it (the
//! generator must not be the bottleneck; the server never runs PBKDF2 for
//! SCRAM, it checks stored keys). Each login: stream, (STARTTLS, stream),
//! SCRAM-SHA-256, stream, bind, initial presence. Loopback only, bounded.
//! With `CHORUS_BENCH_WRAP` (say `heaptrack -o /tmp/ht`) the server runs
//! under that tool: its peak heap is then N idle sessions, allocation by
//! allocation.

#[path = "../tests/it/common/client.rs"]
mod client;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chorus_sasl::{Mechanism, SaltedPassword, ScramCredentials, ScramHash};
use chorus_storage::{AccountStore, StoredCredentials};
use client::XmppClient;

const PASSWORD: &str = "benchmark password";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn serve(dir: String, n: usize, tls: bool) -> anyhow::Result<()> {
    let mut cfg = chorus_config::Config::default();
    cfg.server.data_dir = dir.into();
    cfg.listeners[0].address = "127.0.0.1:0".parse()?;
    cfg.c2s.require_encryption = tls;
    cfg.limits.max_outbound_stanzas = 1000;
    let server = chorus_server::Server::start(cfg).await?;
    let salt = b"shared-bench-salt".to_vec();
    let creds: Vec<StoredCredentials> = [ScramHash::Sha1, ScramHash::Sha256]
        .into_iter()
        .map(|h| {
            let c = ScramCredentials::derive_with_salt(PASSWORD, h, &salt, 4096)?;
            Ok(StoredCredentials {
                hash: h.name().to_owned(),
                salt: c.salt,
                iterations: c.iterations,
                stored_key: c.stored_key,
                server_key: c.server_key,
            })
        })
        .collect::<Result<_, chorus_sasl::SaslError>>()?;
    for i in 0..n {
        server
            .storage
            .create_account(&format!("u{i}"), "localhost", &creds)
            .await?;
    }
    while server.first_addr().is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "ADDR {}",
        server
            .first_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(900)).await;
    Ok(())
}

async fn login(
    addr: std::net::SocketAddr,
    i: usize,
    tls: bool,
    salted: SaltedPassword,
) -> XmppClient {
    let mut c = XmppClient::connect(addr).await;
    c.open().await;
    if tls {
        c.starttls().await;
        c.open().await;
    }
    c.scram_cached(
        Mechanism::ScramSha256,
        &format!("u{i}"),
        PASSWORD,
        None,
        Some(salted),
    )
    .await
    .expect("login");
    c.open().await;
    c.bind(Some("bench")).await.expect("bind");
    c.send("<presence/>").await;
    c
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let n = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
        return serve(
            args.get(2).cloned().unwrap_or_default(),
            n,
            args.get(4).map(String::as_str) == Some("tls"),
        )
        .await;
    }
    let counts: Vec<usize> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![1000, 10_000]
    };
    let salted = SaltedPassword::derive(PASSWORD, ScramHash::Sha256, b"shared-bench-salt", 4096)?;
    for n in counts {
        // `CHORUS_BENCH_TRANSPORT=plain` (or `tls`) runs only that one.
        let only = std::env::var("CHORUS_BENCH_TRANSPORT").unwrap_or_default();
        for tls in [false, true] {
            if (only == "plain" && tls) || (only == "tls" && !tls) {
                continue;
            }
            let dir =
                std::env::temp_dir().join(format!("chorus-session-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            // `CHORUS_BENCH_WRAP="heaptrack -o /tmp/ht"` runs the server
            // under a profiler for the byte-by-byte breakdown (the RSS
            // figures are then the wrapper's, not the server's).
            let wrap = std::env::var("CHORUS_BENCH_WRAP").unwrap_or_default();
            let mut wrap = wrap.split_whitespace();
            let exe = std::env::current_exe()?;
            let mut command = match wrap.next() {
                Some(tool) => {
                    let mut c = Command::new(tool);
                    c.args(wrap).arg(&exe);
                    c
                }
                None => Command::new(&exe),
            };
            let mut child = command
                .arg("serve")
                .arg(&dir)
                .arg(n.to_string())
                .arg(if tls { "tls" } else { "plain" })
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let pid = child.id();
            let mut lines = BufReader::new(
                child
                    .stdout
                    .take()
                    .ok_or_else(|| anyhow::anyhow!("stdout"))?,
            )
            .lines();
            // A wrapper may print lines of its own first. The pipe stays
            // open (`by_ref`) for as long as the server runs.
            let addr: std::net::SocketAddr = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|l| l.strip_prefix("ADDR ").map(str::to_owned))
                .ok_or_else(|| anyhow::anyhow!("no address"))?
                .parse()?;
            // Warm-up logins, then measure from a settled baseline.
            let warm = batch(addr, 0..16, tls, &salted).await;
            drop(warm);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let before = rss_kib(pid);
            let t = Instant::now();
            let sessions = batch(addr, 16..n, tls, &salted).await;
            let elapsed = t.elapsed();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = rss_kib(pid);
            let count = sessions.len();
            println!(
                "{{\"sessions\":{count},\"tls\":{tls},\"logins_per_s\":{:.0},\"rss_before_kib\":{before},\"rss_after_kib\":{after},\"kib_per_session\":{:.2}}}",
                count as f64 / elapsed.as_secs_f64(),
                after.saturating_sub(before) as f64 / count.max(1) as f64
            );
            drop(sessions);
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}

/// Logs in accounts `range`, 32 at a time.
async fn batch(
    addr: std::net::SocketAddr,
    range: std::ops::Range<usize>,
    tls: bool,
    salted: &SaltedPassword,
) -> Vec<XmppClient> {
    let mut out = Vec::with_capacity(range.len());
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let s = salted.clone();
            set.spawn(login(addr, i, tls, s));
        }
        while let Some(r) = set.join_next().await {
            if let Ok(c) = r {
                out.push(c);
            }
        }
    }
    out
}
