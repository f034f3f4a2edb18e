//! The hostile-input suite (ARCHITECTURE-BRIEF §5): one test per hostile
//! input, each against the real `chorus` binary over real sockets.
//!
//! Every test follows the same script, which [`Arena`] carries:
//! 1. start a server in its own process (so that its resident memory is its
//!    own, not shared with the tests running beside it) and log in a
//!    well-behaved session, `good@localhost/watch`;
//! 2. mark the server's RSS, then run the attack while a thread samples
//!    `VmRSS` from `/proc/<pid>/status` every few milliseconds;
//! 3. assert the exact RFC 6120 answer: for a stream error our header, the
//!    condition, `</stream:stream>` and the close (CONVENTIONS §10); for a
//!    stanza error the condition, with the stream going on;
//! 4. [`Arena::finish`]: the attack's connections are gone from the server,
//!    the good session's XEP-0199 ping still answers, and the peak RSS grew
//!    by less than the test's bound.
//!
//! Where the attack can carry volume, it does: the offending construct is
//! followed by [`FLOOD`] bytes that continue it. A server that buffered
//! instead of refusing at the offending byte would grow by the flood, four
//! times the bound ([`MEM_BOUND_KIB`]); one that refuses holds at most a
//! stanza limit and a read buffer.
//!
//! The suite lives at the top of the repository (`tests/hostile/`) and is
//! compiled into the server's one integration-test binary
//! (`crates/server/tests/it/main.rs`) to keep the build small.
#![allow(clippy::unwrap_used)]

mod auth;
mod header;
mod slow_reader;
mod slowloris;
mod stanzas;
mod xml;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::client::XmppClient;
use crate::common::daemon::{rss_kib, spawn_daemon, try_rss_kib, Daemon};
use crate::common::HEADER;

/// Bytes an attack keeps sending after its offending construct.
pub const FLOOD: usize = 16 << 20;

/// How much the server's RSS may grow during one attack on one or a few
/// connections. The noise measured (TLS sessions, first-use allocations,
/// allocator slack) is 0.1 to 1 MiB; a buffer that followed the [`FLOOD`]
/// would be four times this.
pub const MEM_BOUND_KIB: u64 = 4 * 1024;

/// Every account's password.
pub const PASSWORD: &str = "correct horse";

const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// A server under attack and its well-behaved session.
pub struct Arena {
    pub d: Daemon,
    /// `good@localhost/watch`, logged in before the attack.
    pub good: XmppClient,
    pings: u32,
    watch: Option<MemWatch>,
}

impl Arena {
    /// A server with `extra` appended to its configuration, the accounts
    /// `good` and `users` (password [`PASSWORD`]), and the good session.
    pub async fn start(tag: &str, extra: &str, users: &[&str]) -> Arena {
        let d = spawn_daemon(tag, extra);
        for u in std::iter::once(&"good").chain(users) {
            d.add_user(u, PASSWORD);
        }
        let (good, jid) = XmppClient::login(d.addr, "good", PASSWORD, Some("watch")).await;
        assert_eq!(jid, "good@localhost/watch");
        let mut arena = Arena {
            d,
            good,
            pings: 0,
            watch: None,
        };
        arena.ping().await;
        arena
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.d.addr
    }

    /// The good session's ping round trip: `<iq type='get'>` to the server,
    /// and the next IQ it receives must be the result.
    pub async fn ping(&mut self) {
        self.pings += 1;
        let id = format!("p{}", self.pings);
        self.good
            .send(&format!(
                "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .await;
        let r = self.good.expect("iq").await;
        assert_eq!(
            (r.attr("type"), r.attr("id")),
            (Some("result"), Some(id.as_str())),
            "the good session's ping: {}",
            r.to_xml()
        );
    }

    /// Records the baseline RSS and starts sampling; call right before the
    /// attack.
    pub fn mark(&mut self) {
        self.watch = Some(MemWatch::start(self.d.child.id()));
    }

    /// The server's connections and bound sessions, from the admin API.
    pub fn counts(&self) -> (u64, u64) {
        let v = self.d.admin("/api/stats", serde_json::json!({}));
        (
            v["connections"].as_u64().unwrap(),
            v["sessions"].as_u64().unwrap(),
        )
    }

    /// Polls until the server holds exactly `connections` connections.
    pub async fn wait_connections(&self, connections: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (c, _) = self.counts();
            if c == connections {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server still holds {c} connections, expected {connections}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The end of every test: the attack's connections are gone (only the
    /// good session and `kept` other connections remain), the good
    /// session's ping answers, and RSS grew by less than `bound_kib` at its
    /// peak.
    pub async fn finish(mut self, kept: u64, bound_kib: u64) {
        self.wait_connections(1 + kept).await;
        self.ping().await;
        let watch = self.watch.take().expect("mark() before the attack");
        let (base, peak, after) = watch.stop();
        eprintln!(
            "server RSS: baseline {base} KiB, peak {peak} KiB (+{}), after {after} KiB (+{}), bound +{bound_kib} KiB",
            peak.saturating_sub(base),
            after.saturating_sub(base)
        );
        assert!(
            peak.saturating_sub(base) < bound_kib,
            "server RSS grew from {base} KiB to a peak of {peak} KiB, more than {bound_kib} KiB"
        );
    }

    /// The server logged a line containing `needle` (waits up to 10 s).
    pub fn logged(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(l) = self.d.logs.recv_timeout(Duration::from_millis(50)) {
                if l.contains(needle) {
                    return true;
                }
            }
        }
        false
    }
}

/// Samples a process's `VmRSS` from a thread, so that a busy test runtime
/// cannot make it miss the peak.
struct MemWatch {
    base: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    pid: u32,
}

impl MemWatch {
    fn start(pid: u32) -> MemWatch {
        let base = rss_kib(pid);
        let peak = Arc::new(AtomicU64::new(base));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                // Ends with the process too (a failed test kills it).
                while !stop.load(Ordering::Relaxed) {
                    let Some(rss) = try_rss_kib(pid) else { break };
                    peak.fetch_max(rss, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        MemWatch {
            base,
            peak,
            stop,
            thread,
            pid,
        }
    }

    /// (baseline, peak, now) in KiB.
    fn stop(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        let now = rss_kib(self.pid);
        let peak = self.peak.load(Ordering::Relaxed).max(now);
        (self.base, peak, now)
    }
}

/// One hostile connection: writes `attack`, then up to `flood` more bytes
/// of `filler` repeated (in the background, for as long as the server reads
/// them), and returns everything the server wrote until it closed the
/// connection.
pub async fn assault(
    addr: std::net::SocketAddr,
    attack: &[u8],
    filler: &[u8],
    flood: usize,
) -> String {
    let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
    assault_on(r, w, attack, filler, flood).await
}

/// [`assault`] on an established stream (plain or TLS), split in halves.
pub async fn assault_on<R, W>(
    mut r: R,
    mut w: W,
    attack: &[u8],
    filler: &[u8],
    flood: usize,
) -> String
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let attack = attack.to_vec();
    let chunk: Vec<u8> = filler.iter().copied().cycle().take(64 * 1024).collect();
    let writer = tokio::spawn(async move {
        // Write errors are expected: the server resets the connection once
        // it has closed it with bytes of ours still unread.
        if w.write_all(&attack).await.is_err() || w.flush().await.is_err() {
            return w;
        }
        let mut left = if chunk.is_empty() { 0 } else { flood };
        while left > 0 {
            let n = left.min(chunk.len());
            if w.write_all(&chunk[..n]).await.is_err() || w.flush().await.is_err() {
                break;
            }
            left -= n;
        }
        // Still open for writing: an attacker does not half-close, and the
        // server must end the stream on its own.
        w
    });
    let out = read_until_closed(&mut r).await;
    writer.abort();
    out
}

/// Connections that repeat each variant at once, besides the flooding one:
/// many attackers, and a check that each one's actors are cleaned up.
pub const SWARM: usize = 10;

/// What each swarm connection sends after its attack: enough filler to
/// cross any limit (the pre-authentication stanza limit is 8 KiB).
pub const SWARM_FLOOD: usize = 64 * 1024;

/// A pre-authentication attack, `(attack, filler)` per variant: each
/// variant on one connection that floods its filler after the attack and
/// on [`SWARM`] more at once that do not, all answered with `condition`.
pub async fn refused_preauth(arena: &Arena, variants: &[(&[u8], &[u8])], condition: &str) {
    for (attack, filler) in variants {
        let out = assault(arena.addr(), attack, filler, FLOOD).await;
        assert_stream_error(&out, condition);
        let attack = Arc::new(attack.to_vec());
        let addr = arena.addr();
        let filler = Arc::new(filler.to_vec());
        let outs = concurrently(SWARM, |_| {
            let (attack, filler) = (attack.clone(), filler.clone());
            async move { assault(addr, &attack, &filler, SWARM_FLOOD).await }
        })
        .await;
        for out in outs {
            assert_stream_error(&out, condition);
        }
    }
}

/// A post-authentication attack: `user` logs in (STARTTLS, SCRAM, bind),
/// then sends `attack` and floods `filler`; the stream ends with
/// `condition`.
pub async fn refused_postauth(
    arena: &Arena,
    user: &str,
    attack: &[u8],
    filler: &[u8],
    condition: &str,
) {
    let (c, _) = XmppClient::login(arena.addr(), user, PASSWORD, Some("attack")).await;
    let (r, w) = tls_halves(c);
    let out = assault_on(r, w, attack, filler, FLOOD).await;
    assert_stream_error_tail(&out, condition);
}

/// Reads until EOF or a reset; panics if the server keeps the connection
/// open for 15 s.
pub async fn read_until_closed<R: AsyncRead + Unpin>(r: &mut R) -> String {
    let mut acc = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => acc.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&acc).into_owned();
    assert!(
        closed.is_ok(),
        "the server kept the connection open: {text:?}"
    );
    text
}

/// Asserts the tail of a stream the server ended mid-way: exactly one
/// stream error, with `condition`, then `</stream:stream>`.
pub fn assert_stream_error_tail(out: &str, condition: &str) {
    let err = out
        .find(&format!("<{condition} xmlns='{NS_STREAMS}'"))
        .unwrap_or_else(|| panic!("no <{condition}/> in {out:?}"));
    assert!(out[..err].ends_with("<stream:error>"), "{out:?}");
    assert_eq!(out.matches("<stream:error>").count(), 1, "{out:?}");
    let close = out.rfind("</stream:stream>").unwrap_or(0);
    assert!(err < close, "</stream:stream> after the error: {out:?}");
}

/// Asserts a whole stream that ended in an error: our header first, then
/// [`assert_stream_error_tail`].
pub fn assert_stream_error(out: &str, condition: &str) {
    crate::common::assert_stream_error(out, condition);
    assert_stream_error_tail(out, condition);
}

/// A client header followed by `body`.
pub fn with_header(body: &str) -> Vec<u8> {
    format!("{HEADER}{body}").into_bytes()
}

/// STARTTLS done and the stream restarted: a client about to authenticate.
pub async fn tls_client(addr: std::net::SocketAddr) -> XmppClient {
    let mut c = XmppClient::connect(addr).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    c
}

/// Splits a client's TLS stream into halves for [`assault_on`].
pub fn tls_halves(
    c: XmppClient,
) -> (
    tokio::io::ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>,
    tokio::io::WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>,
) {
    let mut c = c;
    match std::mem::replace(&mut c.io, crate::common::client::Io::Gone) {
        crate::common::client::Io::Tls(t) => tokio::io::split(*t),
        _ => panic!("not a TLS client"),
    }
}

/// Runs `n` copies of `f` at once and collects their results in order.
pub async fn concurrently<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
