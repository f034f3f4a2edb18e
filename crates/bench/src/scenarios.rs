//! The load scenarios. Every run is bounded: logins and messages by
//! count, every wait by a deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chorus_xml::StreamEvent;
use serde::Serialize;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Mutex, Notify, Semaphore};

use crate::stats::Latency;
use crate::xmpp::{self, Session, Stream, Target};

/// A session's write half, shared by its sender and its reader (which
/// answers subscription requests).
type SharedWriter = Arc<Mutex<WriteHalf<Box<dyn Stream>>>>;

/// Where the sessions come from: an XMPP server, or the raw TCP relay.
#[derive(Clone)]
pub enum Endpoint {
    Xmpp(Target),
    Relay(std::net::SocketAddr),
}

impl Endpoint {
    fn name(&self) -> &'static str {
        match self {
            Endpoint::Xmpp(_) => "xmpp",
            Endpoint::Relay(_) => "relay",
        }
    }
}

/// Logs in sessions `0..n` at `rate` per second (0: as fast as
/// `concurrency` allows). Returns the sessions (None where a login failed),
/// the login latencies in microseconds and the elapsed time.
pub async fn login_many(
    ep: &Endpoint,
    n: usize,
    rate: f64,
    concurrency: usize,
    presence: bool,
) -> (Vec<Option<Session>>, Vec<u64>, Duration, Vec<String>) {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        if rate > 0.0 {
            tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into())
                .await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let ep = ep.clone();
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = match &ep {
                Endpoint::Xmpp(t) => xmpp::login(t, i, "bench", presence).await,
                Endpoint::Relay(addr) => relay_session(*addr, i).await,
            };
            drop(permit);
            (r, t0.elapsed())
        }));
    }
    let mut sessions = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for h in handles {
        match h.await {
            Ok((Ok(s), d)) => {
                lat.push(d.as_micros() as u64);
                sessions.push(Some(s));
            }
            Ok((Err(e), _)) => {
                if errors.len() < 5 {
                    errors.push(format!("{e:#}"));
                }
                sessions.push(None);
            }
            Err(e) => {
                errors.push(e.to_string());
                sessions.push(None);
            }
        }
    }
    (sessions, lat, start.elapsed(), errors)
}

/// A relay "session": TCP, then our index so the relay can pair us.
async fn relay_session(addr: std::net::SocketAddr, i: usize) -> Result<Session> {
    let mut tcp = xmpp::connect(addr, i).await?;
    tcp.write_all(&(i as u64).to_be_bytes()).await?;
    let mut parser = xmpp::parser();
    // The relay forwards stanzas only; give the parser the stream header
    // a server would have sent.
    parser.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    Ok(Session {
        io: Box::new(tcp),
        parser,
        jid: format!("relay{i}@relay/bench"),
    })
}

async fn close_all(sessions: Vec<Option<Session>>) {
    let mut tasks = Vec::new();
    for mut s in sessions.into_iter().flatten() {
        tasks.push(tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                let _ = s.io.write_all(b"</stream:stream>").await;
                let _ = s.io.flush().await;
                let _ = s.io.shutdown().await;
            })
            .await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[derive(Debug, Serialize)]
pub struct ConnectResult {
    pub scenario: &'static str,
    pub endpoint: &'static str,
    pub sessions: usize,
    pub ok: usize,
    pub failures: usize,
    pub logins_per_sec: f64,
    pub login_p50_ms: f64,
    pub login_p99_ms: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub kib_per_session: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// `connect`: N sessions at a rate, held, then closed.
pub async fn connect(
    ep: &Endpoint,
    n: usize,
    rate: f64,
    concurrency: usize,
    hold: Duration,
    rss: &dyn Fn() -> Option<u64>,
) -> ConnectResult {
    let rss_before = rss();
    let (sessions, mut lat, elapsed, errors) = login_many(ep, n, rate, concurrency, true).await;
    let ok = lat.len();
    // Held: the server settles (allocator, queues) before we read its RSS.
    tokio::time::sleep(hold).await;
    let rss_after = rss();
    close_all(sessions).await;
    let l = Latency::from_micros(&mut lat);
    ConnectResult {
        scenario: "connect",
        endpoint: ep.name(),
        sessions: n,
        ok,
        failures: n - ok,
        logins_per_sec: ok as f64 / elapsed.as_secs_f64(),
        login_p50_ms: l.p50_ms,
        login_p99_ms: l.p99_ms,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        kib_per_session: match (rss_before, rss_after) {
            (Some(b), Some(a)) if ok > 0 => Some((a as f64 - b as f64) / ok as f64),
            _ => None,
        },
        errors,
    }
}

/// One direction of a pair: what its sender sent and its peer received.
#[derive(Default)]
struct Lane {
    sent: AtomicU64,
    received: AtomicU64,
    progress: Notify,
}

#[derive(Debug, Serialize)]
pub struct MessagesResult {
    pub scenario: &'static str,
    pub endpoint: &'static str,
    pub pairs: usize,
    /// Target rate in messages/s, or 0 for "as fast as the window allows".
    pub target_rate: f64,
    pub window: u64,
    pub secs: f64,
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub delivered_per_sec: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub login_failures: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// `messages`: pairs exchanging chat messages, either at a fixed total rate
/// (open loop) or as fast as a per-direction window of unacknowledged
/// (not yet delivered) messages allows (closed loop, for throughput).
#[allow(clippy::too_many_arguments)]
pub async fn messages(
    ep: &Endpoint,
    pairs: usize,
    rate: f64,
    window: u64,
    secs: Duration,
    concurrency: usize,
    body_bytes: usize,
) -> Result<MessagesResult> {
    let n = pairs * 2;
    let (sessions, _, _, errors) = login_many(ep, n, 0.0, concurrency, true).await;
    let failures = sessions.iter().filter(|s| s.is_none()).count();
    if failures > 0 {
        close_all(sessions).await;
        bail!("{failures} of {n} logins failed: {errors:?}");
    }
    let jids: Vec<String> = sessions.iter().flatten().map(|s| s.jid.clone()).collect();
    let lanes: Arc<Vec<Lane>> = Arc::new((0..n).map(|_| Lane::default()).collect());
    let stop_send = Arc::new(AtomicBool::new(false));
    let stop_recv = Arc::new(Notify::new());
    let stopped = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let padding = "x".repeat(body_bytes);
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let mut writers: Vec<SharedWriter> = Vec::new();
    for (i, s) in sessions.into_iter().flatten().enumerate() {
        let Session { io, mut parser, .. } = s;
        let (mut rd, wr) = tokio::io::split(io);
        let wr = Arc::new(Mutex::new(wr));
        writers.push(wr.clone());
        // Receiver i reads what sender i^1 sent: lane i^1.
        let lanes_r = lanes.clone();
        let stop = stop_recv.clone();
        let stopped_r = stopped.clone();
        receivers.push(tokio::spawn(async move {
            let mut lat: Vec<u64> = Vec::new();
            let mut buf = vec![0u8; 16384];
            let lane = &lanes_r[i ^ 1];
            loop {
                if stopped_r.load(Ordering::Relaxed) {
                    break;
                }
                let ev = tokio::select! {
                    ev = read_event(&mut rd, &mut parser, &mut buf) => ev,
                    _ = stop.notified() => break,
                };
                match ev {
                    Some(StreamEvent::Element(e)) if e.name() == "message" => {
                        if let Some(ts) = e.get_child("body", "jabber:client").and_then(|b| {
                            b.text()
                                .split(' ')
                                .nth(1)
                                .and_then(|t| t.parse::<u64>().ok())
                        }) {
                            let now = epoch.elapsed().as_micros() as u64;
                            lat.push(now.saturating_sub(ts));
                            lane.received.fetch_add(1, Ordering::Relaxed);
                            lane.progress.notify_one();
                        }
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            lat
        }));
        let lanes_s = lanes.clone();
        let stop = stop_send.clone();
        let to = jids[i ^ 1].clone();
        let padding = padding.clone();
        let per_sender = if rate > 0.0 { rate / n as f64 } else { 0.0 };
        senders.push(tokio::spawn(async move {
            let lane = &lanes_s[i];
            let mut tick = (per_sender > 0.0).then(|| {
                // Senders spread evenly over one period: aligned timers
                // would send in bursts of n and measure the burst's queue.
                let period = Duration::from_secs_f64(1.0 / per_sender);
                let phase = period.mul_f64(i as f64 / n as f64);
                let mut t = tokio::time::interval_at((Instant::now() + phase).into(), period);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                } else {
                    while lane.sent.load(Ordering::Relaxed) - lane.received.load(Ordering::Relaxed)
                        >= window
                    {
                        let _ = tokio::time::timeout(
                            Duration::from_millis(50),
                            lane.progress.notified(),
                        )
                        .await;
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                }
                let ts = epoch.elapsed().as_micros() as u64;
                let stanza = format!(
                    "<message to='{to}' type='chat' id='m{seq}'><body>bench {ts} {seq} {padding}</body></message>"
                );
                let mut w = wr.lock().await;
                if w.write_all(stanza.as_bytes()).await.is_err() || w.flush().await.is_err() {
                    return;
                }
                drop(w);
                lane.sent.fetch_add(1, Ordering::Relaxed);
                seq += 1;
            }
        }));
    }
    let total = |f: fn(&Lane) -> u64| lanes.iter().map(f).sum::<u64>();
    let start = Instant::now();
    tokio::time::sleep(secs).await;
    let delivered_in_window = total(|l| l.received.load(Ordering::Relaxed));
    let measured = start.elapsed();
    stop_send.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = s.await;
    }
    // Drain: what was sent gets up to 10 s to arrive before it counts lost.
    let drain = Instant::now() + Duration::from_secs(10);
    while total(|l| l.received.load(Ordering::Relaxed)) < total(|l| l.sent.load(Ordering::Relaxed))
        && Instant::now() < drain
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stopped.store(true, Ordering::Relaxed);
    stop_recv.notify_waiters();
    let mut lat = Vec::new();
    for r in receivers {
        if let Ok(mut l) = r.await {
            lat.append(&mut l);
        }
    }
    for w in writers {
        let mut w = w.lock().await;
        let _ = w.write_all(b"</stream:stream>").await;
        let _ = w.shutdown().await;
    }
    let sent = total(|l| l.sent.load(Ordering::Relaxed));
    let delivered = total(|l| l.received.load(Ordering::Relaxed));
    let l = Latency::from_micros(&mut lat);
    Ok(MessagesResult {
        scenario: "messages",
        endpoint: ep.name(),
        pairs,
        target_rate: rate,
        window,
        secs: measured.as_secs_f64(),
        sent,
        delivered,
        lost: sent.saturating_sub(delivered),
        delivered_per_sec: delivered_in_window as f64 / measured.as_secs_f64(),
        latency_p50_ms: l.p50_ms,
        latency_p99_ms: l.p99_ms,
        latency_max_ms: l.max_ms,
        login_failures: failures,
        errors,
    })
}

async fn read_event(
    rd: &mut ReadHalf<Box<dyn Stream>>,
    parser: &mut chorus_xml::StreamParser,
    buf: &mut [u8],
) -> Option<StreamEvent> {
    xmpp::next_event(rd, parser, buf).await.ok().flatten()
}

#[derive(Debug, Serialize)]
pub struct PresenceResult {
    pub scenario: &'static str,
    pub users: usize,
    pub roster: usize,
    pub subscriptions_confirmed: u64,
    /// Presence updates sent in the measured phase (two per user: away,
    /// then available again).
    pub updates: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub secs: f64,
    pub fanout_per_sec: f64,
    /// Unavailable presence at the end: deliveries and their rate.
    pub unavailable_delivered: u64,
    pub unavailable_per_sec: f64,
    pub login_failures: usize,
}

/// What every session's reader counts.
#[derive(Default)]
struct Counters {
    subscribed: AtomicU64,
    presences: AtomicU64,
    /// PEP notifications from someone else.
    notifications: AtomicU64,
    /// Their latencies, microseconds, from the stamp in the payload.
    latencies: std::sync::Mutex<Vec<u64>>,
    /// Answers to the PEP publishes: results, and errors.
    published: AtomicU64,
    publish_errors: AtomicU64,
    /// The first refusal, as the server worded it.
    first_publish_error: std::sync::Mutex<Option<String>>,
    /// MUC: self-presences from the room (status 110), the room's
    /// configuration answered, and groupchat messages from the room.
    muc_joined: AtomicU64,
    muc_configured: AtomicU64,
    muc_refused: AtomicU64,
    groupchat: AtomicU64,
}

/// `users` logged-in sessions, each subscribed to R others (made over XMPP
/// so every server gets the same setup; i subscribes to i+1..=i+R and
/// everyone approves), with readers that count what arrives and answer
/// what a client answers: subscription requests, and disco#info queries
/// for the caps of [`PEP_FEATURES`].
struct Rig {
    users: usize,
    roster: usize,
    confirmed: u64,
    login_failures: usize,
    writers: Vec<SharedWriter>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    counters: Arc<Counters>,
    last_arrival: Arc<std::sync::Mutex<Instant>>,
    stop: Arc<Notify>,
    /// When the measured phase started, for notification latencies.
    epoch: Instant,
}

/// The node the PEP scenario publishes to, and what its clients support.
const PEP_NODE: &str = "urn:xmpp:chorus:bench:0";
const PEP_FEATURES: &[&str] = &[
    "http://jabber.org/protocol/caps",
    "http://jabber.org/protocol/disco#info",
    "urn:xmpp:chorus:bench:0+notify",
];
const CAPS_NODE: &str = "https://chorus.example/bench";

/// XEP-0115 §5.1 for the bench client's identity and [`PEP_FEATURES`].
fn caps_ver() -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut features = PEP_FEATURES.to_vec();
    features.sort_unstable();
    let mut s = "client/bot//chorus-bench<".to_owned();
    for f in features {
        s.push_str(f);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
}

impl Rig {
    /// `mutual`: i also subscribes to i-1..=i-R, so each user ends with 2R
    /// contacts in `both`, as real contacts are (PEP servers learn a
    /// contact's caps from the presence it sends the owner).
    async fn new(
        t: &Target,
        users: usize,
        roster: usize,
        concurrency: usize,
        mutual: bool,
    ) -> Result<Rig> {
        let roster = roster.min(users.saturating_sub(1));
        let ep = Endpoint::Xmpp(t.clone());
        // Available from the start: subscription requests and approvals
        // reach available resources only (RFC 6121 §3.1.3, §3.2.3).
        let (sessions, _, _, errors) = login_many(&ep, users, 0.0, concurrency, true).await;
        let failures = sessions.iter().filter(|s| s.is_none()).count();
        if failures > 0 {
            close_all(sessions).await;
            bail!("{failures} of {users} logins failed: {errors:?}");
        }
        let counters = Arc::new(Counters::default());
        let last_arrival = Arc::new(std::sync::Mutex::new(Instant::now()));
        let stop = Arc::new(Notify::new());
        let epoch = Instant::now();
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for (i, s) in sessions.into_iter().flatten().enumerate() {
            let Session { io, mut parser, .. } = s;
            let (mut rd, wr) = tokio::io::split(io);
            let wr = Arc::new(Mutex::new(wr));
            writers.push(wr.clone());
            let own = format!("{}@{}", t.user(i), t.domain);
            let (counters, last, stop) = (counters.clone(), last_arrival.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                loop {
                    let ev = tokio::select! {
                        ev = read_event(&mut rd, &mut parser, &mut buf) => ev,
                        _ = stop.notified() => break,
                    };
                    let Some(StreamEvent::Element(e)) = ev else {
                        if ev.is_none() {
                            break;
                        }
                        continue;
                    };
                    let from = e.attr("from").unwrap_or("").to_owned();
                    let bare = from.split('/').next().unwrap_or("").to_owned();
                    if let Ok(mut l) = last.lock() {
                        *l = Instant::now();
                    }
                    let answer = match (e.name(), e.attr("type")) {
                        ("presence", None) if is_self_presence(&e) => {
                            counters.muc_joined.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        ("presence", Some("error")) if bare.contains("@conference.") => {
                            counters.muc_refused.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        ("iq", Some("result")) if e.attr("id") == Some(MUC_CONFIG_ID) => {
                            counters.muc_configured.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        ("message", Some("groupchat")) => {
                            count_groupchat(&e, epoch, &counters);
                            None
                        }
                        ("presence", Some("subscribe")) => {
                            Some(format!("<presence to='{bare}' type='subscribed'/>"))
                        }
                        ("presence", Some("subscribed")) => {
                            counters.subscribed.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        ("presence", None | Some("unavailable")) if bare != own => {
                            counters.presences.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        ("iq", Some("get")) => disco_answer(&e),
                        ("iq", Some(kind))
                            if e.attr("id").is_some_and(|i| i.starts_with("pub-")) =>
                        {
                            if kind == "result" {
                                counters.published.fetch_add(1, Ordering::Relaxed);
                            } else {
                                counters.publish_errors.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut first) = counters.first_publish_error.lock() {
                                    first.get_or_insert_with(|| {
                                        e.get_child("error", "jabber:client")
                                            .map(|x| x.to_xml())
                                            .unwrap_or_default()
                                    });
                                }
                            }
                            None
                        }
                        ("message", _) => {
                            count_notification(&e, &bare, &own, epoch, &counters);
                            None
                        }
                        _ => None,
                    };
                    if let Some(a) = answer {
                        let mut w = wr.lock().await;
                        let _ = w.write_all(a.as_bytes()).await;
                        let _ = w.flush().await;
                    }
                }
            }));
        }
        let mut rig = Rig {
            users,
            roster,
            confirmed: 0,
            login_failures: failures,
            writers,
            readers,
            counters,
            last_arrival,
            stop,
            epoch,
        };
        let (prefix, domain) = (t.prefix.clone(), t.domain.clone());
        rig.broadcast(move |i| {
            let back = if mutual { roster } else { 0 };
            (1..=roster)
                .map(|k| (i + k) % users)
                .chain((1..=back).map(|k| (i + users - k) % users))
                .map(|j| format!("<presence to='{prefix}{j}@{domain}' type='subscribe'/>"))
                .collect()
        })
        .await;
        let want = (users * roster * if mutual { 2 } else { 1 }) as u64;
        // Done when every approval came back, or when presence traffic went
        // quiet: a server may answer a repeated request (accounts kept from
        // an earlier run) with presence rather than `subscribed` (RFC 6121
        // §3.1.3 allows either).
        rig.touch();
        let deadline = Instant::now() + Duration::from_secs(120);
        while rig.counters.subscribed.load(Ordering::Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if rig.quiet_for() > Duration::from_secs(3) {
                break;
            }
        }
        rig.confirmed = rig.counters.subscribed.load(Ordering::Relaxed);
        // The presence that follows the new subscriptions settles first.
        rig.settle(Duration::from_secs(2)).await;
        Ok(rig)
    }

    /// Sends each session `f(i)`, all sessions at once.
    async fn broadcast(&self, f: impl Fn(usize) -> Vec<String> + Send + Sync + 'static) {
        let f = Arc::new(f);
        let mut tasks = Vec::new();
        for (i, w) in self.writers.iter().enumerate() {
            let (w, f) = (w.clone(), f.clone());
            tasks.push(tokio::spawn(async move {
                let mut w = w.lock().await;
                for s in f(i) {
                    let _ = w.write_all(s.as_bytes()).await;
                }
                let _ = w.flush().await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The latencies counted so far.
    fn latency(&self) -> Latency {
        let mut samples = self
            .counters
            .latencies
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        Latency::from_micros(&mut samples)
    }

    fn touch(&self) {
        if let Ok(mut l) = self.last_arrival.lock() {
            *l = Instant::now();
        }
    }

    fn quiet_for(&self) -> Duration {
        self.last_arrival
            .lock()
            .map(|l| l.elapsed())
            .unwrap_or_default()
    }

    /// Seconds from `start` to the last arrival.
    fn since(&self, start: Instant) -> f64 {
        self.last_arrival
            .lock()
            .map(|l| l.saturating_duration_since(start))
            .unwrap_or_default()
            .as_secs_f64()
            .max(1e-6)
    }

    async fn settle(&self, quiet: Duration) {
        settle(&self.last_arrival, quiet, Duration::from_secs(60)).await;
    }

    async fn close(self) {
        self.stop.notify_waiters();
        for r in self.readers {
            r.abort();
        }
        for w in self.writers {
            let mut w = w.lock().await;
            let _ = w.write_all(b"</stream:stream>").await;
            let _ = w.shutdown().await;
        }
    }
}

/// The answer to a disco#info query for the bench client's caps node.
fn disco_answer(iq: &chorus_xml::Element) -> Option<String> {
    let q = iq.get_child("query", "http://jabber.org/protocol/disco#info")?;
    let (id, from) = (iq.attr("id")?, iq.attr("from")?);
    let node = q
        .attr("node")
        .map(|n| format!(" node='{}'", chorus_xml::escape_attr(n)))
        .unwrap_or_default();
    let mut a = format!(
        "<iq type='result' id='{}' to='{}'><query xmlns='http://jabber.org/protocol/disco#info'{node}>\
         <identity category='client' type='bot' name='chorus-bench'/>",
        chorus_xml::escape_attr(id),
        chorus_xml::escape_attr(from)
    );
    for f in PEP_FEATURES {
        a.push_str(&format!("<feature var='{f}'/>"));
    }
    a.push_str("</query></iq>");
    Some(a)
}

/// Counts a PEP notification from someone else, with its latency from
/// the stamp the publisher put in the payload (microseconds since the
/// rig's epoch, one clock for the whole generator).
fn count_notification(
    m: &chorus_xml::Element,
    from: &str,
    own: &str,
    epoch: Instant,
    counters: &Counters,
) {
    if from == own {
        return;
    }
    let Some(item) = m
        .get_child("event", "http://jabber.org/protocol/pubsub#event")
        .and_then(|e| e.get_child("items", "http://jabber.org/protocol/pubsub#event"))
        .and_then(|i| i.get_child("item", "http://jabber.org/protocol/pubsub#event"))
    else {
        return;
    };
    counters.notifications.fetch_add(1, Ordering::Relaxed);
    let stamp = item
        .get_child("x", PEP_NODE)
        .and_then(|x| x.attr("t"))
        .and_then(|t| t.parse::<u64>().ok());
    if let Some(t) = stamp {
        let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut l) = counters.latencies.lock() {
            l.push(now.saturating_sub(t));
        }
    }
}

/// `presence`: each user has a roster of R contacts while available,
/// changes its presence twice (measured), then goes unavailable.
pub async fn presence(
    t: &Target,
    users: usize,
    roster: usize,
    concurrency: usize,
) -> Result<PresenceResult> {
    let rig = Rig::new(t, users, roster, concurrency, false).await?;
    let want = (rig.users * rig.roster) as u64;
    // Measured: two updates each, each fanned out to R contacts.
    rig.counters.presences.store(0, Ordering::Relaxed);
    let start = Instant::now();
    rig.broadcast(|_| {
        vec![
            "<presence><show>away</show></presence>".to_owned(),
            "<presence/>".to_owned(),
        ]
    })
    .await;
    let expected = 2 * want;
    let deadline = Instant::now() + Duration::from_secs(120);
    while rig.counters.presences.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = rig.counters.presences.load(Ordering::Relaxed);
    let secs = rig.since(start);
    // Unavailable: receivers going offline themselves race with it, so the
    // count is informative, not exact.
    rig.counters.presences.store(0, Ordering::Relaxed);
    let ustart = Instant::now();
    rig.broadcast(|_| vec!["<presence type='unavailable'/>".to_owned()])
        .await;
    rig.settle(Duration::from_secs(1)).await;
    let unavailable = rig.counters.presences.load(Ordering::Relaxed);
    let usecs = rig.since(ustart);
    let result = PresenceResult {
        scenario: "presence",
        users: rig.users,
        roster: rig.roster,
        subscriptions_confirmed: rig.confirmed,
        updates: 2 * rig.users as u64,
        expected_deliveries: expected,
        delivered,
        secs,
        fanout_per_sec: delivered as f64 / secs,
        unavailable_delivered: unavailable,
        unavailable_per_sec: unavailable as f64 / usecs,
        login_failures: rig.login_failures,
    };
    rig.close().await;
    Ok(result)
}

#[derive(Debug, Serialize)]
pub struct PepResult {
    pub scenario: &'static str,
    pub users: usize,
    pub roster: usize,
    pub subscriptions_confirmed: u64,
    /// Items each user published.
    pub items: usize,
    /// Every publish fanned out to the 2R contacts (mutual subscriptions)
    /// that asked for the node (`+notify`).
    pub expected_notifications: u64,
    pub delivered: u64,
    pub secs: f64,
    pub notifications_per_sec: f64,
    #[serde(flatten)]
    pub latency: Latency,
    /// Publishes the server refused (an IQ error), and the first refusal.
    pub publish_errors: u64,
    pub first_publish_error: Option<String>,
    pub login_failures: usize,
}

/// `pep`: the rig with mutual subscriptions (2R contacts each), then every
/// user announces caps asking for the bench node (`+notify`, XEP-0163
/// §4.2) and answers the server's disco#info query; then each publishes
/// `items` items (measured), each notifying its 2R contacts. Latency is
/// from the publish to each notification.
pub async fn pep(
    t: &Target,
    users: usize,
    roster: usize,
    items: usize,
    concurrency: usize,
) -> Result<PepResult> {
    let rig = Rig::new(t, users, roster, concurrency, true).await?;
    let ver = caps_ver();
    let caps = format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{CAPS_NODE}' ver='{ver}'/></presence>"
    );
    rig.broadcast(move |_| vec![caps.clone()]).await;
    // The servers ask each client (or look its caps up), and the presence
    // goes to contacts: done once quiet.
    rig.settle(Duration::from_secs(2)).await;
    // Not measured: one publish each creates the node, and is answered
    // before the measured ones go out.
    let epoch = rig.epoch;
    let publish = move |i: usize, k: usize| {
        let t = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        format!(
            "<iq type='set' id='pub-{i}-{k}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{PEP_NODE}'><item id='{k}'><x xmlns='{PEP_NODE}' t='{t}'/></item>\
             </publish></pubsub></iq>"
        )
    };
    // One at a time: ejabberd's mnesia aborts concurrent node creations
    // ("cyclic" locks on its node index) and the node is then missing.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (i, w) in rig.writers.iter().enumerate() {
        {
            let mut w = w.lock().await;
            let _ = w.write_all(publish(i, 0).as_bytes()).await;
            let _ = w.flush().await;
        }
        while rig.counters.published.load(Ordering::Relaxed)
            + rig.counters.publish_errors.load(Ordering::Relaxed)
            <= i as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    rig.settle(Duration::from_secs(2)).await;
    rig.counters.published.store(0, Ordering::Relaxed);
    rig.counters.publish_errors.store(0, Ordering::Relaxed);
    if let Ok(mut first) = rig.counters.first_publish_error.lock() {
        *first = None;
    }
    rig.counters.notifications.store(0, Ordering::Relaxed);
    if let Ok(mut l) = rig.counters.latencies.lock() {
        l.clear();
    }
    let start = Instant::now();
    rig.broadcast(move |i| (1..=items).map(|k| publish(i, k)).collect())
        .await;
    // Mutual rosters: each publish reaches 2R contacts.
    let expected = (rig.users * 2 * rig.roster * items) as u64;
    let answers = (rig.users * items) as u64;
    // Done when every notification came, or when every publish was
    // answered and nothing more arrived for 5 s.
    rig.touch();
    let deadline = Instant::now() + Duration::from_secs(120);
    while rig.counters.notifications.load(Ordering::Relaxed) < expected && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let answered = rig.counters.published.load(Ordering::Relaxed)
            + rig.counters.publish_errors.load(Ordering::Relaxed);
        if answered >= answers && rig.quiet_for() > Duration::from_secs(5) {
            break;
        }
    }
    let delivered = rig.counters.notifications.load(Ordering::Relaxed);
    let secs = rig.since(start);
    let result = PepResult {
        scenario: "pep",
        users: rig.users,
        roster: rig.roster,
        subscriptions_confirmed: rig.confirmed,
        items,
        expected_notifications: expected,
        delivered,
        secs,
        notifications_per_sec: delivered as f64 / secs,
        latency: rig.latency(),
        publish_errors: rig.counters.publish_errors.load(Ordering::Relaxed),
        first_publish_error: rig
            .counters
            .first_publish_error
            .lock()
            .ok()
            .and_then(|f| f.clone()),
        login_failures: rig.login_failures,
    };
    rig.close().await;
    Ok(result)
}

/// The id of the room configuration the MUC scenario submits.
const MUC_CONFIG_ID: &str = "muc-config";

/// Waits until `counter` reaches `want`; fails after `limit_secs`, or as
/// soon as the room refuses someone.
async fn wait_count(
    what: &str,
    counters: &Counters,
    counter: &AtomicU64,
    want: u64,
    limit_secs: u64,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(limit_secs);
    while counter.load(Ordering::Relaxed) < want {
        let refused = counters.muc_refused.load(Ordering::Relaxed);
        if Instant::now() > deadline || refused > 0 {
            bail!(
                "{what}: {} of {want} ({refused} refused)",
                counter.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// A MUC occupant's own presence (XEP-0045 status 110).
fn is_self_presence(p: &chorus_xml::Element) -> bool {
    p.get_child("x", "http://jabber.org/protocol/muc#user")
        .is_some_and(|x| {
            x.children()
                .any(|c| c.name() == "status" && c.attr("code") == Some("110"))
        })
}

/// Counts a groupchat message with the bench's body (`b <stamp>`), with its
/// latency from the stamp.
fn count_groupchat(m: &chorus_xml::Element, epoch: Instant, counters: &Counters) {
    let Some(body) = m.get_child("body", "jabber:client").map(|b| b.text()) else {
        return;
    };
    let Some(t) = body.strip_prefix("b ").and_then(|t| t.parse::<u64>().ok()) else {
        return;
    };
    counters.groupchat.fetch_add(1, Ordering::Relaxed);
    let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
    if let Ok(mut l) = counters.latencies.lock() {
        l.push(now.saturating_sub(t));
    }
}

#[derive(Debug, Serialize)]
pub struct MucResult {
    pub scenario: &'static str,
    pub occupants: usize,
    /// Occupants that got in (their own presence came back).
    pub joined: u64,
    /// Seconds from the first join to the last occupant's.
    pub join_secs: f64,
    pub senders: usize,
    /// Messages each sender sent.
    pub messages: usize,
    /// Every message reaches every occupant, its sender too (XEP-0045
    /// §7.4's reflection).
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub secs: f64,
    pub deliveries_per_sec: f64,
    #[serde(flatten)]
    pub latency: Latency,
    pub login_failures: usize,
}

/// `muc`: `occupants` sessions enter one room (user 0 creates it as an
/// instant room, XEP-0045 §10.1.2; the others join at once, asking for no
/// history); then the first `senders` each send `messages` groupchat
/// messages (measured), each reaching every occupant. Latency is from the
/// send to each delivery.
pub async fn muc(
    t: &Target,
    occupants: usize,
    senders: usize,
    messages: usize,
    concurrency: usize,
) -> Result<MucResult> {
    let rig = Rig::new(t, occupants, 0, concurrency, false).await?;
    let room = format!(
        "bench{occupants}-{}@conference.{}",
        std::process::id(),
        t.domain
    );
    let join = {
        let (room, prefix) = (room.clone(), t.prefix.clone());
        move |i: usize| {
            vec![format!(
                "<presence to='{room}/{prefix}{i}'><x xmlns='http://jabber.org/protocol/muc'>\
                 <history maxstanzas='0'/></x></presence>"
            )]
        }
    };
    // User 0 creates the room and accepts the default configuration.
    {
        let mut w = rig.writers[0].lock().await;
        w.write_all(join(0)[0].as_bytes()).await?;
        w.flush().await?;
    }
    wait_count(
        "room creation",
        &rig.counters,
        &rig.counters.muc_joined,
        1,
        30,
    )
    .await?;
    {
        let mut w = rig.writers[0].lock().await;
        w.write_all(
            format!(
                "<iq type='set' id='{MUC_CONFIG_ID}' to='{room}'>\
                 <query xmlns='http://jabber.org/protocol/muc#owner'>\
                 <x xmlns='jabber:x:data' type='submit'/></query></iq>"
            )
            .as_bytes(),
        )
        .await?;
        w.flush().await?;
    }
    wait_count(
        "room configuration",
        &rig.counters,
        &rig.counters.muc_configured,
        1,
        30,
    )
    .await?;
    let joins = Instant::now();
    let others = Arc::new(join);
    let j = others.clone();
    rig.broadcast(move |i| if i == 0 { Vec::new() } else { j(i) })
        .await;
    let want = rig.users as u64;
    wait_count("joins", &rig.counters, &rig.counters.muc_joined, want, 600).await?;
    let join_secs = joins.elapsed().as_secs_f64();
    // Every occupant's presence reaches every other: that settles first,
    // for as long as it takes (5 s of quiet, 300 s at most).
    settle(
        &rig.last_arrival,
        Duration::from_secs(5),
        Duration::from_secs(300),
    )
    .await;
    if let Ok(mut l) = rig.counters.latencies.lock() {
        l.clear();
    }
    rig.counters.groupchat.store(0, Ordering::Relaxed);
    let senders = senders.min(rig.users);
    let epoch = rig.epoch;
    let start = Instant::now();
    let to = room.clone();
    rig.broadcast(move |i| {
        if i >= senders {
            return Vec::new();
        }
        (0..messages)
            .map(|_| {
                let t = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                format!("<message to='{to}' type='groupchat'><body>b {t}</body></message>")
            })
            .collect()
    })
    .await;
    let expected = (senders * messages * rig.users) as u64;
    rig.touch();
    // A server may still be digesting the join storm (N² presences) when
    // the messages go out: it gets 60 s of silence before it is given up.
    let deadline = Instant::now() + Duration::from_secs(600);
    while rig.counters.groupchat.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if rig.quiet_for() > Duration::from_secs(60) {
            break;
        }
    }
    let delivered = rig.counters.groupchat.load(Ordering::Relaxed);
    let secs = rig.since(start);
    let result = MucResult {
        scenario: "muc",
        occupants: rig.users,
        joined: rig.counters.muc_joined.load(Ordering::Relaxed),
        join_secs,
        senders,
        messages,
        expected_deliveries: expected,
        delivered,
        secs,
        deliveries_per_sec: delivered as f64 / secs,
        latency: rig.latency(),
        login_failures: rig.login_failures,
    };
    rig.close().await;
    Ok(result)
}

/// Waits until nothing arrived for `quiet`, or `limit` passed.
async fn settle(last: &std::sync::Mutex<Instant>, quiet: Duration, limit: Duration) {
    let end = Instant::now() + limit;
    tokio::time::sleep(quiet).await;
    while Instant::now() < end {
        let since = last.lock().map(|l| l.elapsed()).unwrap_or(quiet);
        if since >= quiet {
            return;
        }
        tokio::time::sleep(quiet - since).await;
    }
}
