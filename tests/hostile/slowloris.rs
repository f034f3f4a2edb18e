//! Slowloris: a thousand connections that each send a byte now and then,
//! enough to look alive, never enough to get anywhere.
//!
//! `c2s.negotiation_timeout_secs` is one deadline from accept to authentication.
//! It is not reset by input, so trickling does not buy time: every
//! connection ends with `connection-timeout` (RFC 6120 §4.9.3.4) a
//! deadline after it was accepted, whether it trickles its stream header,
//! trickles a stanza after a complete header, or sends whitespace
//! keepalives without ever authenticating.

use super::*;

const CONNECTIONS: usize = 1000;
/// c2s.negotiation_timeout_secs for this test.
const DEADLINE: Duration = Duration::from_secs(6);
/// Connections opened before waiting for the server to accept them.
const CONNECTING: usize = 50;
/// One byte per connection this often.
const DRIP: Duration = Duration::from_millis(500);
/// Peak memory per connection held: the three actors, their mailboxes and
/// the parser's buffer come to ~26 KiB (docs/BENCHMARKS.md); the bound
/// leaves room for debug builds and allocator slack, and is far below what
/// a buffer that kept the trickled bytes, or a connection that was never
/// released, would add up to over a long attack.
const PEAK_KIB_PER_CONNECTION: u64 = 64;
/// Growth allowed from one wave's end to the next's: allocator noise. A
/// thousand connections that each left a third of their memory behind
/// would exceed it.
const LEAK_BOUND_KIB: u64 = 8 * 1024;

#[derive(Clone, Copy, Debug)]
enum Loris {
    /// Trickles the stream header itself.
    Header,
    /// Sends a header, then trickles a SASL `<auth/>`.
    Stanza,
    /// Sends a header, then whitespace keepalives (RFC 6120 §4.6.1).
    Whitespace,
}

/// One slow connection; returns what the server wrote, and how long after
/// the connection was established the server closed it.
async fn loris(addr: std::net::SocketAddr, kind: Loris) -> (String, Duration) {
    let (mut r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
    let started = Instant::now();
    let drip: Vec<u8> = match kind {
        Loris::Header => HEADER.as_bytes().to_vec(),
        Loris::Stanza | Loris::Whitespace => {
            w.write_all(HEADER.as_bytes()).await.unwrap();
            if let Loris::Stanza = kind {
                b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGV2ZQBjb3JyZWN0IGhvcnNl</auth>".to_vec()
            } else {
                vec![b' '; 1000]
            }
        }
    };
    let mut acc = Vec::new();
    let mut buf = [0u8; 4096];
    let mut tick = tokio::time::interval(DRIP);
    let mut next = 0;
    let closed = tokio::time::timeout(DEADLINE + Duration::from_secs(20), async {
        loop {
            tokio::select! {
                n = r.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => acc.extend_from_slice(&buf[..n]),
                },
                _ = tick.tick() => {
                    if next < drip.len() {
                        let _ = w.write_all(&drip[next..next + 1]).await;
                        next += 1;
                    }
                }
            }
        }
    })
    .await;
    let out = String::from_utf8_lossy(&acc).into_owned();
    assert!(
        closed.is_ok(),
        "{kind:?} still open after the deadline: {out:?}"
    );
    (out, started.elapsed())
}

/// One wave of [`CONNECTIONS`] slow connections, all held at once while
/// the good session pings; returns once the server has closed them all.
async fn wave(a: &mut Arena) {
    let addr = a.addr();
    let started = Instant::now();
    let mut most = 0;
    let mut attack = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let kind = match i % 3 {
            0 => Loris::Header,
            1 => Loris::Stanza,
            _ => Loris::Whitespace,
        };
        attack.push(tokio::spawn(async move { (kind, loris(addr, kind).await) }));
        // Paced by what the server has accepted: the listen backlog is 128
        // (tokio's default), and a SYN that finds it full is dropped and
        // retried only a second later.
        if (i + 1) % CONNECTING == 0 {
            let opened = 1 + i as u64 + 1;
            while most < opened && started.elapsed() < DEADLINE {
                most = most.max(a.counts().0);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // All of them held at once, and meanwhile the good session answers.
    let all = CONNECTIONS as u64 + 1;
    while most < all && started.elapsed() < DEADLINE {
        most = most.max(a.counts().0);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        most,
        all,
        "the server held every slow connection at once (opening them took {:?} of the {DEADLINE:?} deadline)",
        started.elapsed()
    );
    let held = started.elapsed();
    let during = a.d.rss_kib();
    a.ping().await;

    let mut results = Vec::with_capacity(CONNECTIONS);
    for t in attack {
        results.push(t.await.unwrap());
    }
    for (kind, (out, took)) in &results {
        assert_stream_error(out, "connection-timeout");
        // Nothing else closed the connection before the deadline, and
        // trickling did not extend it.
        assert!(
            *took >= DEADLINE - Duration::from_millis(100),
            "{kind:?} closed after {took:?}, before the deadline"
        );
        assert!(
            *took < DEADLINE + Duration::from_secs(15),
            "{kind:?} closed after {took:?}"
        );
    }
    let slowest = results.iter().map(|(_, (_, t))| *t).max().unwrap();
    eprintln!(
        "{CONNECTIONS} slow connections: all open after {held:?}, server RSS then {during} KiB; all closed with connection-timeout, the last {slowest:?} after it connected"
    );
    a.wait_connections(1).await;
}

/// Raises this process's soft limit on open files to the hard limit (the
/// server, spawned after, inherits it): both ends of a thousand connections
/// need a descriptor each. `prlimit` rather than `setrlimit`, since the
/// workspace forbids unsafe code.
fn raise_fd_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let (soft, hard) = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .map(|rest| {
            let mut f = rest.split_whitespace();
            (
                f.next().unwrap_or("0").to_owned(),
                f.next().unwrap_or("0").to_owned(),
            )
        })
        .unwrap();
    let need = 2 * CONNECTIONS as u64 + 1000;
    if soft.parse::<u64>().is_ok_and(|s| s >= need) || soft == "unlimited" {
        return;
    }
    let _ = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:{hard}"))
        .status();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    assert!(
        soft == "unlimited" || soft.parse::<u64>().is_ok_and(|s| s >= need),
        "this test needs {need} open files; the limit is {soft} (ulimit -n)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_all_get_connection_timeout() {
    raise_fd_limit();
    let mut a = Arena::start(
        "hostile-slowloris",
        &format!(
            // All the attack comes from one address: the per-address cap
            // would refuse most of it at the header, and this test is
            // about the deadline.
            "\n[c2s]\nnegotiation_timeout_secs = {}\nmax_connections_per_ip = {}\n",
            DEADLINE.as_secs(),
            CONNECTIONS * 2
        ),
        &[],
    )
    .await;
    a.mark();
    wave(&mut a).await;
    let after_one = a.d.rss_kib();
    // A second wave reuses what the first one freed: memory that a
    // connection kept after it closed would add up here.
    wave(&mut a).await;
    let after_two = a.d.rss_kib();
    eprintln!("server RSS after the first wave {after_one} KiB, after the second {after_two} KiB");
    assert!(
        after_two.saturating_sub(after_one) < LEAK_BOUND_KIB,
        "a second wave grew RSS from {after_one} KiB to {after_two} KiB"
    );
    // The good session was never touched by the deadline: it authenticated.
    a.ping().await;
    a.finish(0, PEAK_KIB_PER_CONNECTION * CONNECTIONS as u64)
        .await;
}
