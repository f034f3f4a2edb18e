//! Shared helpers for the server's integration tests: a server on loopback
//! port 0 with its own temporary data directory, and raw-socket XMPP I/O.
#![allow(dead_code, clippy::unwrap_used)]

pub mod client;
pub mod daemon;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chorus_config::{Config, ListenerConfig, ListenerKind};
use chorus_server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, unique per test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("chorus-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `chorusctl` binary, which belongs to the chorus-ctl package: cargo
/// gives this one no `CARGO_BIN_EXE_chorusctl`, so it is found beside
/// `chorus`, in the same target directory, where `cargo test --workspace`
/// and `cargo build` put it. Run alone, `cargo test -p chorus-server` does
/// not build it: a missing binary, or one older than its sources, fails
/// here with the command that fixes it rather than testing a stale client.
pub fn chorusctl_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let bin =
                std::path::Path::new(env!("CARGO_BIN_EXE_chorus")).with_file_name("chorusctl");
            // target/<profile>/chorus: a release test run needs a release chorusctl.
            let release = bin.parent().is_some_and(|d| d.ends_with("release"));
            let fix = if release {
                "build it with `cargo build --release -p chorus-ctl`"
            } else {
                "build it with `cargo build -p chorus-ctl` (`cargo test --workspace` does)"
            };
            let built = std::fs::metadata(&bin)
                .and_then(|m| m.modified())
                .unwrap_or_else(|e| panic!("{}: {e}: {fix}", bin.display()));
            let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            for dir in ["ctl/src", "admin-api/src", "config/src"] {
                for entry in std::fs::read_dir(crates.join(dir)).unwrap() {
                    let path = entry.unwrap().path();
                    let changed = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap();
                    assert!(
                        changed <= built,
                        "{} is older than {}: {fix}",
                        bin.display(),
                        path.display()
                    );
                }
            }
            bin
        })
        .clone()
}

/// A config with one c2s listener on an ephemeral loopback port.
pub fn test_config(tag: &str) -> Config {
    let mut c = Config::default();
    c.server.data_dir = temp_dir(tag);
    // Parallel tests must not fight over the default metrics port.
    c.metrics.address = "127.0.0.1:0".into();
    c.listeners = vec![ListenerConfig {
        kind: ListenerKind::C2s,
        address: "127.0.0.1:0".parse().unwrap(),
    }];
    c
}

pub async fn start(config: Config) -> Server {
    // CHORUS_TEST_LOG=debug shows the server's logs while debugging a test.
    if let Ok(filter) = std::env::var("CHORUS_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let server = Server::start(config).await.expect("server starts");
    wait_until(Duration::from_secs(10), || server.first_addr().is_some()).await;
    server
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until the stream features are complete (empty or not).
pub async fn read_features(stream: &mut TcpStream) -> String {
    read_until_any(stream, &["<stream:features/>", "</stream:features>"]).await
}

/// Reads until the accumulated text contains `needle`; panics on timeout or EOF.
pub async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    read_until_any(stream, &[needle]).await
}

/// Reads until the accumulated text contains one of `needles`.
pub async fn read_until_any(stream: &mut TcpStream, needles: &[&str]) -> String {
    let mut acc = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if needles
            .iter()
            .any(|n| String::from_utf8_lossy(&acc).contains(n))
        {
            return String::from_utf8_lossy(&acc).into_owned();
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for {needles:?}; got {:?}",
                    String::from_utf8_lossy(&acc)
                )
            })
            .unwrap_or(0);
        if n == 0 {
            panic!(
                "connection closed waiting for {needles:?}; got {:?}",
                String::from_utf8_lossy(&acc)
            );
        }
        acc.extend_from_slice(&buf[..n]);
    }
}

/// Reads everything until the server closes; panics if it stays open.
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut acc = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => acc.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "connection not closed; got {:?}",
        String::from_utf8_lossy(&acc)
    );
    String::from_utf8_lossy(&acc).into_owned()
}

/// True when the peer has not closed: a read times out rather than
/// returning EOF.
pub async fn is_open(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
        Err(_) => true,
        Ok(Ok(n)) => n > 0,
        Ok(Err(_)) => false,
    }
}

/// Connects and opens a stream; returns once the features arrived.
pub async fn open_stream(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(HEADER.as_bytes()).await.unwrap();
    read_features(&mut s).await;
    s
}

/// Sends `input` on a fresh connection and returns everything the server
/// wrote before closing.
pub async fn exchange(addr: std::net::SocketAddr, input: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(input).await.unwrap();
    read_to_close(&mut s).await
}

/// Asserts RFC 6120 §4.9 error closing: our header, the condition, then
/// `</stream:stream>`, then the close (checked by the caller's read).
pub fn assert_stream_error(out: &str, condition: &str) {
    let header = out.find("<stream:stream").unwrap_or(usize::MAX);
    let err = out
        .find(&format!(
            "<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'"
        ))
        .unwrap_or_else(|| panic!("no <{condition}/> in {out:?}"));
    let close = out.rfind("</stream:stream>").unwrap_or(0);
    assert!(header < err, "header before the error: {out:?}");
    assert!(out[..err].contains("<stream:error>"), "{out:?}");
    assert!(err < close, "</stream:stream> after the error: {out:?}");
}

pub fn conns_path(server: &Server) -> String {
    let id = server.bound.iter().next().unwrap().key().clone();
    format!("root/listeners/{id}/conns")
}

/// Registers an account directly in the server's storage.
pub async fn add_user(server: &Server, local: &str, password: &str) {
    add_user_at(server, local, "localhost", password).await
}

/// [`add_user`] on another served domain.
pub async fn add_user_at(server: &Server, local: &str, domain: &str, password: &str) {
    use chorus_sasl::{ScramCredentials, ScramHash};
    use chorus_storage::{AccountStore, StoredCredentials};
    let creds: Vec<StoredCredentials> = [ScramHash::Sha1, ScramHash::Sha256]
        .into_iter()
        .map(|h| {
            let c = ScramCredentials::derive(password, h, 4096).unwrap();
            StoredCredentials {
                hash: h.name().to_owned(),
                salt: c.salt,
                iterations: c.iterations,
                stored_key: c.stored_key,
                server_key: c.server_key,
            }
        })
        .collect();
    server
        .storage
        .create_account(local, domain, &creds)
        .await
        .unwrap();
}
