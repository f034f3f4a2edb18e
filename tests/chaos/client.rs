//! The soak's XMPP client: plaintext (STARTTLS offered, not required),
//! SCRAM-SHA-256 with a cached salted password (so that neither side spends
//! its time in PBKDF2), bind, XEP-0198 with resumption, initial presence.
//!
//! It keeps the books the assertions need: every connection it opened (its
//! local port, which the server logs with the `conn-<id>` it accepted it
//! as), how each one ended, each stream management session and whether it
//! was lost (resumption failed), every message it sent and whether the
//! server acknowledged it, and every copy of every message it received, in
//! which session and how (live, resent on resumption, or from offline
//! storage with a XEP-0203 delay).
//!
//! XEP-0198 as a client does it: it counts the stanzas it receives after
//! `<enabled/>` (its `h`), answers `<r/>` with `<a/>`, keeps what it sent
//! until the server's `<a/>` covers it, resumes with `<resume previd h/>`
//! after a drop and resends what `<resumed h/>` does not cover (§5). If
//! resumption fails it binds the same resource again and gets its offline
//! messages with its initial presence; what the server never acknowledged
//! in the lost session is not sent again (the server may or may not have
//! handled it: delivered at most once).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use chorus_sasl::{Mechanism, SaltedPassword, ScramClient};
use chorus_xml::{Element, Limits, StreamEvent, StreamParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub const NS_SM: &str = "urn:xmpp:sm:3";
const NS_CLIENT: &str = "jabber:client";
const NS_STREAM: &str = "http://etherx.jabber.org/streams";
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_PING: &str = "urn:xmpp:ping";
const NS_DELAY: &str = "urn:xmpp:delay";

/// How long one step of a login may take (debug builds on a busy 2-core
/// machine are slow; a step that takes this long is a failure).
const STEP: Duration = Duration::from_secs(20);

/// Messages a client keeps unacknowledged at most: past it, a send waits
/// for the next interval. The load adapts to what the server (and the
/// machine it shares) handles, so the soak never turns into an overload
/// test: no speed is asserted.
pub const WINDOW: usize = 4;

/// A message: (sender index, sequence number).
pub type MsgId = (u32, u32);

/// What the test asks of every client.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Exchange messages.
    Send,
    /// Send nothing new; keep answering and asking for acks.
    Quiet,
    /// Close the stream cleanly and stop.
    Close,
}

/// The session number of the final offline sweep.
pub const SWEEP: u32 = u32::MAX;

pub struct Shared {
    pub addr: SocketAddr,
    pub password: String,
    pub salted: SaltedPassword,
    pub interval: Duration,
    pub mode: watch::Receiver<Mode>,
    pub ledger: Mutex<Ledger>,
    /// Clients in the running phase (bound or resumed, enabled).
    pub live: AtomicUsize,
    /// Messages sent and neither acknowledged nor given up with a lost session.
    pub outstanding: AtomicI64,
    /// Bounds concurrent first logins.
    pub login_gate: tokio::sync::Semaphore,
}

/// Live progress, for the test to know when everything settled.
#[derive(Default)]
pub struct Ledger {
    pub acked: HashSet<MsgId>,
    pub delivered: HashSet<MsgId>,
}

impl Ledger {
    /// Acknowledged messages not delivered yet.
    pub fn pending(&self) -> usize {
        self.acked.difference(&self.delivered).count()
    }
}

/// One TCP connection a client opened.
#[derive(Debug, Clone)]
pub struct ConnRecord {
    pub port: u16,
    pub opened: Instant,
    /// The stream management session it served or tried to resume (0: none).
    pub session: u32,
    /// It bound a resource or resumed a session.
    pub established: bool,
    /// Why the server's side ended it, when it did (None: we closed it).
    pub dropped: Option<String>,
    /// Where it was when it ended.
    pub phase: &'static str,
}

#[derive(Debug, Clone)]
pub struct SmSession {
    pub no: u32,
    /// Indices into `conns` of the connections that bound it, resumed it or
    /// tried to.
    pub conns: Vec<usize>,
    /// Resumption failed: the server ended it.
    pub lost: bool,
    pub resumed: u32,
}

/// How a copy of a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Live,
    /// Resent by the server right after `<resumed/>`.
    Resumed,
    /// From offline storage (XEP-0203 delay) at a fresh login.
    Offline,
    /// From offline storage, found by the final sweep.
    Sweep,
}

#[derive(Debug, Clone, Copy)]
pub struct Copy {
    pub session: u32,
    pub via: Via,
}

#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub acked: bool,
    pub session: u32,
}

#[derive(Debug, Default)]
pub struct ClientReport {
    pub idx: u32,
    pub conns: Vec<ConnRecord>,
    pub sessions: Vec<SmSession>,
    pub sent: Vec<Sent>,
    pub received: HashMap<MsgId, Vec<Copy>>,
    pub anomalies: Vec<String>,
    pub bind_retries: u32,
    pub resumes: u32,
    /// Sends skipped because WINDOW messages were unacknowledged.
    pub deferred: u64,
}

/// One open connection: the halves and the parser of the server's stream.
struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    parser: StreamParser,
}

fn parser() -> StreamParser {
    let mut p = StreamParser::new(Limits {
        max_stanza_bytes_preauth: 1 << 20,
        ..Limits::default()
    });
    p.set_authenticated(true);
    p
}

async fn write(wr: &mut OwnedWriteHalf, s: &str) -> Result<(), String> {
    wr.write_all(s.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))
}

fn stream_error(e: &Element) -> String {
    let cond = e
        .children()
        .find(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    format!("stream error <{cond}/>")
}

fn stanza_error(e: &Element) -> String {
    e.get_child("error", NS_CLIENT)
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        })
        .map(|c| c.name().to_owned())
        .unwrap_or_default()
}

impl Conn {
    async fn next_event(&mut self, deadline: tokio::time::Instant) -> Result<StreamEvent, String> {
        let mut buf = [0u8; 8192];
        loop {
            match self.parser.next_event() {
                Ok(Some(ev)) => return Ok(ev),
                Ok(None) => {}
                Err(e) => return Err(format!("malformed XML from the server: {e:?}")),
            }
            let n = tokio::time::timeout_at(deadline, self.rd.read(&mut buf))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("EOF".into());
            }
            self.parser.feed(&buf[..n]);
        }
    }

    /// The next top-level element; a stream error or the stream's end is an Err.
    async fn next_element(&mut self, deadline: tokio::time::Instant) -> Result<Element, String> {
        loop {
            match self.next_event(deadline).await? {
                StreamEvent::Header(_) => continue,
                StreamEvent::End => return Err("server closed the stream".into()),
                StreamEvent::Element(e) if e.is("error", NS_STREAM) => {
                    return Err(stream_error(&e))
                }
                StreamEvent::Element(e) => return Ok(e),
            }
        }
    }

    /// Opens (or restarts) the stream; returns the features.
    async fn open(&mut self) -> Result<Element, String> {
        self.parser.reset();
        write(
            &mut self.wr,
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
        )
        .await?;
        let deadline = tokio::time::Instant::now() + STEP;
        match self.next_event(deadline).await? {
            StreamEvent::Header(_) => {}
            other => return Err(format!("expected the stream header, got {other:?}")),
        }
        let f = self.next_element(deadline).await?;
        if !f.is("features", NS_STREAM) {
            return Err(format!("expected features, got {}", f.to_xml()));
        }
        Ok(f)
    }

    async fn scram(&mut self, user: &str, shared: &Shared) -> Result<(), String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut c = ScramClient::new(Mechanism::ScramSha256, user, &shared.password, None)
            .map_err(|e| format!("scram: {e}"))?
            .with_salted_password(shared.salted.clone());
        write(
            &mut self.wr,
            &format!(
                "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{}</auth>",
                b64.encode(c.client_first())
            ),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + STEP;
        let challenge = self.next_element(deadline).await?;
        if !challenge.is("challenge", NS_SASL) {
            return Err(format!("SASL: {}", challenge.to_xml()));
        }
        let first = b64
            .decode(challenge.text())
            .map_err(|e| format!("SASL base64: {e}"))?;
        let fin = c
            .handle_server_first(&first)
            .map_err(|e| format!("SASL server-first: {e}"))?;
        write(
            &mut self.wr,
            &format!("<response xmlns='{NS_SASL}'>{}</response>", b64.encode(fin)),
        )
        .await?;
        let outcome = self.next_element(deadline).await?;
        if !outcome.is("success", NS_SASL) {
            return Err(format!("SASL: {}", outcome.to_xml()));
        }
        let last = b64
            .decode(outcome.text())
            .map_err(|e| format!("SASL base64: {e}"))?;
        c.handle_server_final(&last)
            .map_err(|e| format!("SASL server-final: {e}"))
    }
}

/// How a running connection ended.
enum RunEnd {
    /// We closed it (Mode::Close).
    Closed,
    /// The server's side ended it.
    Dropped(String),
}

pub struct Client {
    pub idx: u32,
    peer: u32,
    user: String,
    shared: Arc<Shared>,
    r: ClientReport,
    /// The stream management id of the current session, while resumable.
    sm_id: Option<String>,
    /// The current session's number (1-based; 0: none yet).
    session: u32,
    /// Stanzas received in this session (our `h`).
    in_h: u32,
    /// The server's last `h`.
    out_acked: u32,
    /// Sent and not yet acknowledged: the XML, and the message's sequence
    /// number if it is one of ours.
    queue: VecDeque<(String, Option<u32>)>,
    /// Between `<resumed/>` and the server's next `<r/>` (which follows its
    /// resends) or its `<a/>` (the answer to the `<r/>` we send right after
    /// `<resumed/>`): what arrives is what the server resends.
    resending: bool,
    sweep: bool,
    first_login: bool,
}

impl Client {
    pub fn new(idx: u32, n: u32, shared: Arc<Shared>) -> Client {
        Client {
            idx,
            peer: if idx ^ 1 < n { idx ^ 1 } else { idx },
            user: format!("u{idx}"),
            shared,
            r: ClientReport {
                idx,
                ..ClientReport::default()
            },
            sm_id: None,
            session: 0,
            in_h: 0,
            out_acked: 0,
            queue: VecDeque::new(),
            resending: false,
            sweep: false,
            first_login: true,
        }
    }

    /// A client that logs in once without stream management, collects what
    /// is left in offline storage, and leaves.
    pub fn sweeper(idx: u32, n: u32, shared: Arc<Shared>) -> Client {
        let mut c = Client::new(idx, n, shared);
        c.sweep = true;
        c.session = SWEEP;
        c
    }

    fn anomaly(&mut self, what: String) {
        if self.r.anomalies.len() < 20 {
            self.r.anomalies.push(what);
        }
    }

    fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Runs until the test says Close; returns the books.
    pub async fn run(mut self) -> ClientReport {
        loop {
            if self.mode() == Mode::Close {
                break;
            }
            let conn = match self.connect_and_login().await {
                Ok(c) => c,
                Err(()) => {
                    // Recorded; try again soon.
                    tokio::time::sleep(Duration::from_millis(20 + u64::from(self.idx % 50))).await;
                    continue;
                }
            };
            self.shared.live.fetch_add(1, Ordering::SeqCst);
            let end = self.running(conn).await;
            self.shared.live.fetch_sub(1, Ordering::SeqCst);
            match end {
                RunEnd::Closed => break,
                RunEnd::Dropped(cause) => {
                    if let Some(c) = self.r.conns.last_mut() {
                        c.dropped = Some(cause);
                        c.phase = "running";
                    }
                    tokio::time::sleep(Duration::from_millis(20 + u64::from(self.idx % 50))).await;
                }
            }
        }
        self.r
    }

    /// Runs the sweep: one login, offline messages, close.
    pub async fn run_sweep(mut self) -> ClientReport {
        match self.connect_and_login().await {
            Ok(conn) => {
                if let RunEnd::Dropped(cause) = self.running(conn).await {
                    self.anomaly(format!("sweep connection dropped: {cause}"));
                }
            }
            Err(()) => self.anomaly("sweep login failed".into()),
        }
        self.r
    }

    async fn connect(&mut self) -> Result<Conn, String> {
        let mut last = String::new();
        for _ in 0..200 {
            match TcpStream::connect(self.shared.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let port = s.local_addr().map(|a| a.port()).unwrap_or(0);
                    self.r.conns.push(ConnRecord {
                        port,
                        opened: Instant::now(),
                        session: if self.sweep { SWEEP } else { self.session },
                        established: false,
                        dropped: None,
                        phase: "login",
                    });
                    let (rd, wr) = s.into_split();
                    return Ok(Conn {
                        rd,
                        wr,
                        parser: parser(),
                    });
                }
                Err(e) => {
                    last = e.to_string();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(format!("cannot connect: {last}"))
    }

    /// Marks the last connection as dropped by the server in `phase`.
    fn dropped(&mut self, phase: &'static str, cause: String) {
        if let Some(c) = self.r.conns.last_mut() {
            c.dropped = Some(cause);
            c.phase = phase;
        }
    }

    /// Connects, authenticates and resumes the session or binds a new one.
    async fn connect_and_login(&mut self) -> Result<Conn, ()> {
        let shared = self.shared.clone();
        let permit = if self.first_login {
            Some(shared.login_gate.acquire().await)
        } else {
            None
        };
        let mut conn = match self.connect().await {
            Ok(c) => c,
            Err(e) => {
                self.anomaly(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Err(());
            }
        };
        let ci = self.r.conns.len() - 1;
        if let Some(s) = self.current_session_mut() {
            s.conns.push(ci);
        }
        let user = self.user.clone();
        let login = async {
            conn.open().await?;
            conn.scram(&user, &shared).await?;
            conn.open().await
        };
        let features = match login.await {
            Ok(f) => f,
            Err(e) => {
                self.dropped("login", e);
                return Err(());
            }
        };
        if features.get_child("sm", NS_SM).is_none() && !self.sweep {
            self.anomaly("no XEP-0198 feature after authentication".into());
        }
        if self.sm_id.is_some() {
            match self.resume(&mut conn).await {
                Ok(true) => {
                    drop(permit);
                    return Ok(conn);
                }
                Ok(false) => {}
                Err(e) => {
                    self.dropped("resume", e);
                    return Err(());
                }
            }
        }
        if let Err(e) = self.bind_and_enable(&mut conn).await {
            self.dropped("bind", e);
            return Err(());
        }
        self.first_login = false;
        drop(permit);
        Ok(conn)
    }

    fn current_session_mut(&mut self) -> Option<&mut SmSession> {
        let no = self.session;
        self.r.sessions.iter_mut().find(|s| s.no == no)
    }

    /// XEP-0198 §5. Ok(true): resumed; Ok(false): the session is lost.
    async fn resume(&mut self, conn: &mut Conn) -> Result<bool, String> {
        let previd = self.sm_id.clone().unwrap_or_default();
        write(
            &mut conn.wr,
            &format!(
                "<resume xmlns='{NS_SM}' previd='{previd}' h='{}'/>",
                self.in_h
            ),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + STEP;
        let answer = conn.next_element(deadline).await?;
        if answer.is("resumed", NS_SM) {
            let Some(h) = answer.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
                return Err(format!("<resumed/> without h: {}", answer.to_xml()));
            };
            self.on_ack(h);
            // §5: what the server did not acknowledge is sent again.
            let mut out = String::new();
            for (xml, _) in &self.queue {
                out.push_str(xml);
            }
            out.push_str("<r xmlns='urn:xmpp:sm:3'/>");
            write(&mut conn.wr, &out).await?;
            self.resending = true;
            self.r.resumes += 1;
            if let Some(s) = self.current_session_mut() {
                s.resumed += 1;
            }
            if let Some(c) = self.r.conns.last_mut() {
                c.established = true;
            }
            return Ok(true);
        }
        if answer.is("failed", NS_SM) {
            self.lose_session();
            return Ok(false);
        }
        Err(format!(
            "unexpected answer to <resume/>: {}",
            answer.to_xml()
        ))
    }

    /// The current session is gone: what it did not get acknowledged is
    /// given up (neither resent nor counted as acknowledged).
    fn lose_session(&mut self) {
        let given_up = self.queue.iter().filter(|(_, m)| m.is_some()).count();
        self.shared
            .outstanding
            .fetch_sub(given_up as i64, Ordering::SeqCst);
        self.queue.clear();
        self.sm_id = None;
        self.in_h = 0;
        self.out_acked = 0;
        if let Some(s) = self.current_session_mut() {
            s.lost = true;
        }
    }

    async fn bind_and_enable(&mut self, conn: &mut Conn) -> Result<(), String> {
        let resource = if self.sweep {
            "sweep".to_owned()
        } else {
            format!("r{}", self.idx)
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            write(
                &mut conn.wr,
                &format!(
                    "<iq type='set' id='bind{attempt}'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>"
                ),
            )
            .await?;
            let deadline = tokio::time::Instant::now() + STEP;
            let iq = loop {
                let e = conn.next_element(deadline).await?;
                if e.is("iq", NS_CLIENT) {
                    break e;
                }
                self.anomaly(format!("before the bind result: {}", e.to_xml()));
            };
            if iq.attr("type") == Some("result") {
                break;
            }
            // The sessions actor may be restarting (chaos): try again.
            let cond = stanza_error(&iq);
            if attempt > 100 {
                return Err(format!("bind failed {attempt} times, last: {cond}"));
            }
            self.r.bind_retries += 1;
            if cond != "internal-server-error" {
                self.anomaly(format!("bind error {cond}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(c) = self.r.conns.last_mut() {
            c.established = true;
        }
        if self.sweep {
            write(&mut conn.wr, "<presence/>").await?;
            return Ok(());
        }
        write(
            &mut conn.wr,
            &format!("<enable xmlns='{NS_SM}' resume='true'/>"),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + STEP;
        let enabled = loop {
            let e = conn.next_element(deadline).await?;
            if e.ns() == NS_SM {
                break e;
            }
            // Not counted: stream management is not on yet.
            self.on_stanza(e, false);
        };
        let Some(id) = enabled.attr("id").filter(|_| enabled.is("enabled", NS_SM)) else {
            return Err(format!("enable: {}", enabled.to_xml()));
        };
        self.sm_id = Some(id.to_owned());
        self.session = self.r.sessions.len() as u32 + 1;
        let ci = self.r.conns.len() - 1;
        self.r.conns[ci].session = self.session;
        self.r.sessions.push(SmSession {
            no: self.session,
            conns: vec![ci],
            lost: false,
            resumed: 0,
        });
        self.in_h = 0;
        self.out_acked = 0;
        self.queue.clear();
        self.resending = false;
        self.send_stanza(conn, "<presence/>".to_owned(), None).await
    }

    async fn send_stanza(
        &mut self,
        conn: &mut Conn,
        xml: String,
        msg: Option<u32>,
    ) -> Result<(), String> {
        send_on(&mut conn.wr, &mut self.queue, self.sweep, xml, msg, "").await
    }

    /// The server acknowledged `h` stanzas in all.
    fn on_ack(&mut self, h: u32) {
        let n = h.wrapping_sub(self.out_acked) as usize;
        if n > self.queue.len() {
            self.anomaly(format!(
                "server acknowledged {n} stanzas, {} were outstanding",
                self.queue.len()
            ));
        }
        let mut acked = Vec::new();
        for _ in 0..n.min(self.queue.len()) {
            if let Some((_, Some(seq))) = self.queue.pop_front() {
                acked.push(seq);
            }
        }
        self.out_acked = h;
        if acked.is_empty() {
            return;
        }
        self.shared
            .outstanding
            .fetch_sub(acked.len() as i64, Ordering::SeqCst);
        let mut ledger = self.shared.ledger.lock().unwrap_or_else(|p| p.into_inner());
        for seq in acked {
            if let Some(s) = self.r.sent.get_mut(seq as usize) {
                s.acked = true;
            }
            ledger.acked.insert((self.idx, seq));
        }
    }

    /// A stanza from the server; `counted` when stream management counts it.
    /// Returns the reply to send, if any.
    fn on_stanza(&mut self, el: Element, counted: bool) -> Option<String> {
        if counted {
            self.in_h = self.in_h.wrapping_add(1);
        }
        match el.name() {
            "message" => {
                let body = el
                    .get_child("body", NS_CLIENT)
                    .map(|b| b.text())
                    .unwrap_or_default();
                let id = body
                    .strip_prefix("m:")
                    .and_then(|r| r.split_once(':'))
                    .and_then(|(s, q)| Some((s.parse::<u32>().ok()?, q.parse::<u32>().ok()?)));
                if el.attr("type") == Some("error") {
                    let what = format!("bounced message {}: {}", body, stanza_error(&el));
                    self.anomaly(what);
                    return None;
                }
                let Some(id) = id else {
                    self.anomaly(format!("unexpected message {}", el.to_xml()));
                    return None;
                };
                if id.0 ^ 1 != self.idx && id.0 != self.idx {
                    self.anomaly(format!("message {id:?} reached u{}", self.idx));
                }
                let via = if self.sweep {
                    Via::Sweep
                } else if el.get_child("delay", NS_DELAY).is_some() {
                    Via::Offline
                } else if self.resending {
                    Via::Resumed
                } else {
                    Via::Live
                };
                self.r.received.entry(id).or_default().push(Copy {
                    session: self.session,
                    via,
                });
                self.shared
                    .ledger
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .delivered
                    .insert(id);
                None
            }
            "iq" => {
                let t = el.attr("type").unwrap_or_default();
                if (t == "get" || t == "set") && el.get_child("ping", NS_PING).is_some() {
                    let id = el.attr("id").unwrap_or_default();
                    return Some(format!("<iq type='result' id='{id}' to='localhost'/>"));
                }
                if t == "get" || t == "set" {
                    self.anomaly(format!("unexpected iq {}", el.to_xml()));
                }
                None
            }
            _ => None,
        }
    }

    /// The bound, enabled connection: exchange messages until told to close
    /// or until the server's side drops.
    async fn running(&mut self, conn: Conn) -> RunEnd {
        let Conn {
            mut rd,
            mut wr,
            mut parser,
        } = conn;
        let mut mode_rx = self.shared.mode.clone();
        let interval = self.shared.interval;
        // Spread the senders over the interval.
        let offset = interval.mul_f64(f64::from(self.idx % 97) / 97.0);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(Duration::from_millis(300));
        // The sweep leaves once nothing arrived for a while.
        let mut idle_since = tokio::time::Instant::now();
        let mut buf = vec![0u8; 16384];
        loop {
            let mode = *mode_rx.borrow_and_update();
            if self.sweep {
                if idle_since.elapsed() > Duration::from_millis(1500) {
                    let _ = write(&mut wr, "</stream:stream>").await;
                    drain_to_eof(&mut rd).await;
                    return RunEnd::Closed;
                }
            } else if mode == Mode::Close {
                // Acknowledge everything first, so that the server keeps
                // nothing to reroute when the session ends.
                let bye = format!("<a xmlns='{NS_SM}' h='{}'/></stream:stream>", self.in_h);
                if let Err(e) = write(&mut wr, &bye).await {
                    return RunEnd::Dropped(e);
                }
                return self.close_reading(&mut rd, &mut parser, &mut buf).await;
            }
            tokio::select! {
                r = rd.read(&mut buf) => {
                    let n = match r {
                        Ok(0) => return RunEnd::Dropped("EOF".into()),
                        Ok(n) => n,
                        Err(e) => return RunEnd::Dropped(format!("read: {e}")),
                    };
                    idle_since = tokio::time::Instant::now();
                    parser.feed(&buf[..n]);
                    if let Err(e) = self.drain(&mut parser, &mut wr).await {
                        return RunEnd::Dropped(e);
                    }
                }
                _ = tick.tick(), if mode == Mode::Send && !self.sweep => {
                    if let Err(e) = self.send_message(&mut wr).await {
                        return RunEnd::Dropped(e);
                    }
                }
                _ = flush.tick(), if !self.sweep && mode == Mode::Quiet && !self.queue.is_empty() => {
                    if let Err(e) = write(&mut wr, "<r xmlns='urn:xmpp:sm:3'/>").await {
                        return RunEnd::Dropped(e);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(200)), if self.sweep => {}
                _ = mode_rx.changed() => {}
            }
        }
    }

    /// After our `</stream:stream>`: read until the server closes too.
    async fn close_reading(
        &mut self,
        rd: &mut OwnedReadHalf,
        parser: &mut StreamParser,
        buf: &mut [u8],
    ) -> RunEnd {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            loop {
                match parser.next_event() {
                    Ok(Some(StreamEvent::End)) => {
                        drain_to_eof(rd).await;
                        return RunEnd::Closed;
                    }
                    Ok(Some(StreamEvent::Element(e))) => {
                        if e.ns() == NS_CLIENT {
                            self.anomaly(format!("stanza after our close: {}", e.to_xml()));
                            self.on_stanza(e, true);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return RunEnd::Dropped(format!("malformed XML: {e:?}")),
                }
            }
            match tokio::time::timeout_at(deadline, rd.read(buf)).await {
                Ok(Ok(0)) => return RunEnd::Closed,
                Ok(Ok(n)) => parser.feed(&buf[..n]),
                Ok(Err(e)) => return RunEnd::Dropped(format!("read while closing: {e}")),
                Err(_) => return RunEnd::Dropped("server did not close the stream".into()),
            }
        }
    }

    async fn send_message(&mut self, wr: &mut OwnedWriteHalf) -> Result<(), String> {
        if self.queue.iter().filter(|(_, m)| m.is_some()).count() >= WINDOW {
            self.r.deferred += 1;
            return Ok(());
        }
        let seq = self.r.sent.len() as u32;
        self.r.sent.push(Sent {
            acked: false,
            session: self.session,
        });
        self.shared.outstanding.fetch_add(1, Ordering::SeqCst);
        let xml = format!(
            "<message to='u{}@localhost' type='chat' id='m{}-{seq}'><body>m:{}:{seq}</body></message>",
            self.peer, self.idx, self.idx
        );
        send_on(
            wr,
            &mut self.queue,
            false,
            xml,
            Some(seq),
            "<r xmlns='urn:xmpp:sm:3'/>",
        )
        .await
    }

    /// Handles everything parsed so far.
    async fn drain(
        &mut self,
        parser: &mut StreamParser,
        wr: &mut OwnedWriteHalf,
    ) -> Result<(), String> {
        loop {
            let ev = match parser.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("malformed XML from the server: {e:?}")),
            };
            let el = match ev {
                StreamEvent::Element(el) => el,
                StreamEvent::End => return Err("server closed the stream".into()),
                StreamEvent::Header(_) => {
                    self.anomaly("stream header in the middle of a stream".into());
                    continue;
                }
            };
            if el.is("error", NS_STREAM) {
                return Err(stream_error(&el));
            }
            if el.ns() == NS_SM {
                match el.name() {
                    "r" => {
                        self.resending = false;
                        if !self.sweep {
                            write(wr, &format!("<a xmlns='{NS_SM}' h='{}'/>", self.in_h)).await?;
                        }
                    }
                    "a" => match el.attr("h").and_then(|h| h.parse::<u32>().ok()) {
                        Some(h) => {
                            // The answer to the <r/> sent with <resume/>'s
                            // resends comes after the server's own resends.
                            self.resending = false;
                            self.on_ack(h)
                        }
                        None => self.anomaly(format!("bad ack {}", el.to_xml())),
                    },
                    _ => self.anomaly(format!("unexpected {}", el.to_xml())),
                }
                continue;
            }
            if el.ns() != NS_CLIENT {
                self.anomaly(format!("unexpected {}", el.to_xml()));
                continue;
            }
            let counted = !self.sweep;
            if let Some(reply) = self.on_stanza(el, counted) {
                send_on(wr, &mut self.queue, self.sweep, reply, None, "").await?;
            }
        }
    }
}

/// Writes a stanza (and `extra`), keeping it until acknowledged unless
/// stream management is off.
async fn send_on(
    wr: &mut OwnedWriteHalf,
    queue: &mut VecDeque<(String, Option<u32>)>,
    untracked: bool,
    xml: String,
    msg: Option<u32>,
    extra: &str,
) -> Result<(), String> {
    let out = format!("{xml}{extra}");
    if !untracked {
        queue.push_back((xml, msg));
    }
    write(wr, &out).await
}

async fn drain_to_eof(rd: &mut OwnedReadHalf) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}
