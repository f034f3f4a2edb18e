//! Memory per open (pre-auth) connection, and the time to snapshot the tree.
//!
//! Run on demand: `cargo run --release -p chorus-server --example conn_memory [N...]`.
//! The example re-executes itself as the server (`serve` mode) so that the
//! client sockets are not counted: it reads the server's VmRSS from /proc
//! before and after opening N connections, each with a stream header sent and
//! the features received, then times `actors tree` over the admin socket.
//! Loopback only; every run is bounded and stops its server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

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

async fn serve(dir: String) -> anyhow::Result<()> {
    let mut cfg = chorus_config::Config::default();
    cfg.server.data_dir = dir.into();
    cfg.listeners[0].address = "127.0.0.1:0".parse()?;
    cfg.c2s.negotiation_timeout_secs = 3600;
    let server = chorus_server::Server::start(cfg).await?;
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
    println!("SOCKET {}", server.admin_socket.display());
    // The driver kills us when done; stop anyway after ten minutes.
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

async fn open(addr: std::net::SocketAddr) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(HEADER).await?;
    let mut acc = Vec::new();
    let mut buf = [0u8; 1024];
    while !acc.windows(18).any(|w| w == b"</stream:features>")
        && !acc.ends_with(b"<stream:features/>")
    {
        let n = s.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "closed");
        acc.extend_from_slice(&buf[..n]);
    }
    Ok(s)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return serve(args.get(2).cloned().unwrap_or_default()).await;
    }
    let counts: Vec<usize> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![1000, 10_000]
    };
    for n in counts {
        let dir = std::env::temp_dir().join(format!("chorus-conn-memory-{}", std::process::id()));
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg(&dir)
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
        let addr: std::net::SocketAddr = lines
            .next()
            .transpose()?
            .and_then(|l| l.strip_prefix("ADDR ").map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("no address"))?
            .parse()?;
        let socket = lines
            .next()
            .transpose()?
            .and_then(|l| l.strip_prefix("SOCKET ").map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("no socket"))?;
        // Warm up allocator and runtime with a few connections first.
        let warm: Vec<_> = futures_join(addr, 16).await?;
        drop(warm);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kib(pid);
        let conns = futures_join(addr, n).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(pid);
        let t = Instant::now();
        let tree = chorus_ctl::request(
            std::path::Path::new(&socket),
            "/api/actors/tree",
            &serde_json::json!({}),
        )?;
        let snapshot = t.elapsed();
        let listed = tree.to_string().matches("group(one_for_all)").count();
        println!(
            "{{\"connections\":{n},\"rss_before_kib\":{before},\"rss_after_kib\":{after},\"kib_per_conn\":{:.2},\"tree_snapshot_ms\":{:.1},\"groups_in_tree\":{listed}}}",
            (after.saturating_sub(before)) as f64 / n as f64,
            snapshot.as_secs_f64() * 1e3
        );
        drop(conns);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Opens `n` streams, 64 at a time.
async fn futures_join(addr: std::net::SocketAddr, n: usize) -> anyhow::Result<Vec<TcpStream>> {
    let mut out = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let batch = left.min(64);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            set.spawn(open(addr));
        }
        while let Some(r) = set.join_next().await {
            out.push(r??);
        }
        left -= batch;
    }
    Ok(out)
}
