//! BOSH (XEP-0124 1.11.2, with XEP-0206 1.4 for XMPP) on `/http-bind`.
//!
//! A BOSH session is a WebSocket without the socket: each session is an
//! ordinary `conn-<id>` group of socket, receiver and c2s
//! (`chorus_c2s::ws::websocket_group`), whose message halves are channels
//! that the HTTP requests feed and drain. Elements a request carries go to
//! the receiver one message each, as WebSocket messages would; what c2s
//! writes (one element per message, `<open/>` and `<close/>` included)
//! collects in the session's outbox until a held request takes it. So the
//! stream state machine, SASL, binding and stream management are the same
//! code, and the session is in the tree and killable like any connection.
//!
//! Requests are taken in `rid` order (§14.1), with up to `requests` in
//! flight; a request seen again gets its answer again (§14.3, the last
//! few are kept); an unknown `sid` or a `rid` out of the window ends with
//! `item-not-found` (§17.2). At most `hold` requests wait for output, for up
//! to `wait` seconds; a session with no request for `inactivity` seconds
//! ends (§12).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chorus_c2s::ws::{WsError, WsMessage};
use chorus_supervisor::SupervisorMsg;
use chorus_xml::Element;
use dashmap::DashMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use ractor::ActorRef;
use tokio::sync::{mpsc, Notify};

use crate::{respond, Body, Conn};

const NS_BOSH: &str = "http://jabber.org/protocol/httpbind";
const NS_XBOSH: &str = "urn:xmpp:xbosh";
const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Longest a request is held waiting for output (§7.1 `wait`).
const MAX_WAIT: u64 = 60;
/// Requests the client may have in flight (§7.1 `requests`).
const REQUESTS: u64 = 2;
/// Requests held at once (§7.1 `hold`).
const HOLD: u64 = 1;
/// Seconds without a request before the session ends (§7.1 `inactivity`).
const INACTIVITY: u64 = 60;
/// Answers kept for retransmission (§14.3): one per request in flight.
const KEPT: usize = REQUESTS as usize;
/// The largest rid (§7.1: 2^53 - 1, so that clients in any language can
/// count it).
const MAX_RID: u64 = (1 << 53) - 1;
/// Elements from requests waiting for the receiver: the backpressure a
/// TCP window gives, a request waits while they are full.
const INBOUND: usize = 64;
/// How long an ended session stays, so that its last answer can still be
/// taken (and taken again).
const ENDED_GRACE: Duration = Duration::from_secs(10);

/// The sessions of one listener, by `sid`, and how many each address has.
#[derive(Default)]
pub(crate) struct Sessions {
    by_sid: DashMap<String, Arc<Session>>,
    per_ip: DashMap<Option<IpAddr>, usize>,
}

impl Sessions {
    fn get(&self, sid: &str) -> Option<Arc<Session>> {
        self.by_sid.get(sid).map(|s| s.clone())
    }

    /// Takes a place for a new session of `peer`; false past the cap.
    fn admit(&self, peer: Option<IpAddr>, cap: u32) -> bool {
        let mut n = self.per_ip.entry(peer).or_insert(0);
        if *n >= cap as usize {
            return false;
        }
        *n += 1;
        true
    }

    fn remove(&self, sid: &str) {
        if let Some((_, s)) = self.by_sid.remove(sid) {
            if let Some(mut n) = self.per_ip.get_mut(&s.peer) {
                *n = n.saturating_sub(1);
            }
            self.per_ip.remove_if(&s.peer, |_, n| *n == 0);
        }
    }
}

pub(crate) struct Session {
    sid: String,
    peer: Option<IpAddr>,
    state: Mutex<State>,
    /// Output arrived, a newer request came, or the session ended.
    notify: Notify,
    /// Requests take their turn here, so that their elements reach c2s in
    /// rid order (§14.1) even when two run at once.
    order: tokio::sync::Mutex<()>,
    wait: u64,
    /// 0: answer at once; 1: hold for up to `wait` (§7.1).
    hold: u64,
}

struct State {
    /// To the receiver; None once the session ends.
    to_c2s: Option<mpsc::Sender<WsMessage>>,
    last_rid: u64,
    /// What c2s wrote, waiting for a request to carry it, and its bytes:
    /// a client that stops asking must not make it grow without end.
    outbox: VecDeque<String>,
    outbox_bytes: usize,
    /// The stream's id and domain, from c2s's `<open/>`.
    opened: Option<(String, String)>,
    /// The session is over: None while it runs, else the condition (empty
    /// for a normal end).
    ended: Option<String>,
    /// Answers by rid, for retransmission.
    answers: VecDeque<(u64, String)>,
    /// Counts requests, so that an older held one gives way (§11).
    generation: u64,
    last_request: Instant,
    ended_at: Option<Instant>,
}

impl Session {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the session from our side: the receiver sees its input close.
    fn end(&self, condition: &str) {
        let mut s = self.state();
        s.to_c2s = None;
        if s.ended.is_none() {
            s.ended = Some(condition.to_owned());
            s.ended_at = Some(Instant::now());
        }
        drop(s);
        self.notify.notify_waiters();
    }
}

fn body(attrs: &[(&str, String)], children: &[String]) -> String {
    let mut out = format!(
        "<body xmlns='{NS_BOSH}' xmlns:xmpp='{NS_XBOSH}' xmlns:stream='http://etherx.jabber.org/streams'"
    );
    for (k, v) in attrs {
        out.push_str(&format!(" {k}='{}'", chorus_xml::escape_attr(v)));
    }
    if children.is_empty() {
        out.push_str("/>");
        return out;
    }
    out.push('>');
    for c in children {
        out.push_str(c);
    }
    out.push_str("</body>");
    out
}

fn xml(status: StatusCode, text: String) -> Response<Body> {
    respond(status, "text/xml; charset=utf-8", text)
}

/// §17.2: a terminal error, sent as 200 with the condition.
fn terminate(condition: &str) -> Response<Body> {
    xml(
        StatusCode::OK,
        body(
            &[
                ("type", "terminate".to_owned()),
                ("condition", condition.to_owned()),
            ],
            &[],
        ),
    )
}

pub(crate) async fn handle(conn: &Arc<Conn>, req: Request<Incoming>) -> Response<Body> {
    let limit = conn.ctx.limits().max_stanza_bytes.saturating_add(4096);
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return terminate("policy-violation"),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return terminate("bad-request");
    };
    let Ok(el) = Element::from_xml(text) else {
        return terminate("bad-request");
    };
    if !el.is("body", NS_BOSH) {
        return terminate("bad-request");
    }
    let Some(rid) = el
        .attr("rid")
        .and_then(|r| r.parse::<u64>().ok())
        .filter(|r| *r <= MAX_RID)
    else {
        return terminate("bad-request");
    };
    match el.attr("sid") {
        None => create(conn, &el, rid).await,
        Some(sid) => match conn.bosh.get(sid) {
            Some(s) => request(&s, &el, rid).await,
            None => terminate("item-not-found"),
        },
    }
}

/// §7 and XEP-0206 §3: a new session, and its stream opened.
async fn create(conn: &Arc<Conn>, el: &Element, rid: u64) -> Response<Body> {
    let Some(to) = el
        .attr("to")
        .map(|t| t.to_ascii_lowercase())
        .filter(|t| conn.ctx.domains.contains(t))
    else {
        return terminate("host-unknown");
    };
    let wait = el
        .attr("wait")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(MAX_WAIT)
        .clamp(1, MAX_WAIT);
    let hold = el
        .attr("hold")
        .and_then(|h| h.parse::<u64>().ok())
        .unwrap_or(HOLD)
        .min(HOLD);
    if !conn
        .bosh
        .admit(conn.peer, conn.ctx.config.http.bosh_sessions_per_ip)
    {
        tracing::info!(peer = ?conn.peer, "BOSH sessions per address reached");
        return terminate("policy-violation");
    }
    let (to_c2s, from_http) = mpsc::channel::<WsMessage>(INBOUND);
    let (to_http, mut from_c2s) = mpsc::unbounded_channel::<WsMessage>();
    let sid = match chorus_sasl::NewToken::generate() {
        Ok(t) => t.hash[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        Err(_) => return terminate("internal-server-error"),
    };
    // The place admit() took is given back by remove(), once in the map.
    let session = Arc::new(Session {
        sid: sid.clone(),
        peer: conn.peer,
        order: tokio::sync::Mutex::new(()),
        hold,
        state: Mutex::new(State {
            to_c2s: Some(to_c2s),
            last_rid: rid,
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            opened: None,
            ended: None,
            answers: VecDeque::new(),
            generation: 0,
            last_request: Instant::now(),
            ended_at: None,
        }),
        notify: Notify::new(),
        wait,
    });
    conn.bosh.by_sid.insert(sid.clone(), session.clone());

    // What c2s writes, into the outbox.
    {
        let session = session.clone();
        // Four times the TCP socket's queue: the outbox empties only once
        // per request, with no write deadline to catch up in.
        let max_bytes = conn.ctx.config.limits.max_outbound_bytes.saturating_mul(4);
        tokio::spawn(async move {
            while let Some(msg) = from_c2s.recv().await {
                let WsMessage::Text(t) = msg else {
                    break;
                };
                let t = t.as_str();
                if t.starts_with("<open ") {
                    if let Ok(open) = Element::from_xml(t) {
                        let id = open.attr("id").unwrap_or_default().to_owned();
                        let from = open.attr("from").unwrap_or_default().to_owned();
                        session.state().opened = Some((id, from));
                    }
                } else if t.starts_with("<close ") {
                    session.state().ended.get_or_insert_with(String::new);
                } else {
                    let mut s = session.state();
                    s.outbox_bytes += t.len();
                    s.outbox.push_back(t.to_owned());
                    if s.outbox_bytes > max_bytes {
                        // As the TCP socket's outbound limit does.
                        drop(s);
                        tracing::warn!(sid = %session.sid, "BOSH outbox overflow; ending the session");
                        session.end("policy-violation");
                        break;
                    }
                }
                session.notify.notify_waiters();
            }
            session.end("remote-connection-failed");
        });
    }
    // §12: a session nobody asks for ends.
    {
        let session = session.clone();
        let sessions = Arc::downgrade(&conn.bosh);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let (idle, ended_at) = {
                    let s = session.state();
                    (s.last_request.elapsed(), s.ended_at)
                };
                if ended_at.is_none() && idle > Duration::from_secs(INACTIVITY + session.wait) {
                    session.end("");
                }
                if ended_at.is_some_and(|t| t.elapsed() > ENDED_GRACE) {
                    if let Some(sessions) = sessions.upgrade() {
                        sessions.remove(&session.sid);
                    }
                    return;
                }
            }
        });
    }

    let read = Box::pin(futures_util::stream::unfold(
        from_http,
        |mut rx| async move { rx.recv().await.map(|m| (Ok::<_, WsError>(m), rx)) },
    ));
    let write = Box::pin(futures_util::sink::unfold(
        to_http,
        |tx, msg: WsMessage| async move {
            tx.send(msg).map_err(|_| WsError::ConnectionClosed)?;
            Ok::<_, WsError>(tx)
        },
    ));
    let tls = conn.tls.clone().or_else(|| {
        conn.ctx
            .config
            .http
            .consider_websocket_secure
            .then(chorus_c2s::tls::ChannelBindings::default)
    });
    let id = conn.ctx.next_conn_id();
    let spec = chorus_c2s::ws::websocket_group(id, conn.peer, read, write, tls, conn.ctx.clone());
    let conns: ActorRef<SupervisorMsg> = conn.conns.clone().into();
    if conns.cast(SupervisorMsg::StartGroup(spec, None)).is_err() {
        session.end("remote-connection-failed");
        return terminate("remote-connection-failed");
    }
    tracing::info!(conn = conn.id, to_conn = id, peer = ?conn.peer, "BOSH session");
    open_stream(&session, &to).await;
    // The answer carries the stream's features (XEP-0206 §3).
    let features = collect(&session, Duration::from_secs(10), 0).await;
    let (authid, from) = session
        .state()
        .opened
        .clone()
        .unwrap_or_else(|| (String::new(), to.clone()));
    let attrs = [
        ("sid", sid),
        ("wait", wait.to_string()),
        ("requests", REQUESTS.to_string()),
        ("hold", hold.to_string()),
        ("inactivity", INACTIVITY.to_string()),
        ("polling", "2".to_owned()),
        ("ver", "1.11".to_owned()),
        ("from", from),
        ("authid", authid),
        ("xmpp:version", "1.0".to_owned()),
        ("xmpp:restartlogic", "true".to_owned()),
    ];
    let answer = body(&attrs, &features);
    remember(&session, rid, &answer);
    xml(StatusCode::OK, answer)
}

/// Opens (or restarts, XEP-0206 §5) the stream as a WebSocket client would.
async fn open_stream(session: &Session, to: &str) {
    let open = format!(
        "<open xmlns='{NS_FRAMING}' to='{}' version='1.0'/>",
        chorus_xml::escape_attr(to)
    );
    to_c2s(session, vec![open]).await;
}

/// Hands elements to the receiver, waiting while its queue is full.
async fn to_c2s(session: &Session, messages: Vec<String>) {
    let Some(tx) = session.state().to_c2s.clone() else {
        return;
    };
    for m in messages {
        if tx.send(WsMessage::text(m)).await.is_err() {
            return;
        }
    }
}

fn remember(session: &Session, rid: u64, answer: &str) {
    let mut s = session.state();
    // A request taken over (§14.3) is answered by its last handler.
    s.answers.retain(|(r, _)| *r != rid);
    s.answers.push_back((rid, answer.to_owned()));
    while s.answers.len() > KEPT {
        s.answers.pop_front();
    }
}

/// Waits up to `wait` for output (or the end), then takes it all; gives
/// way early when a newer request (generation) comes.
async fn collect(session: &Session, wait: Duration, generation: u64) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = session.notify.notified();
        {
            let mut s = session.state();
            // A newer request takes the output (§11).
            if s.generation > generation {
                return Vec::new();
            }
            if !s.outbox.is_empty() || s.ended.is_some() {
                s.outbox_bytes = 0;
                return s.outbox.drain(..).collect();
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Vec::new();
        }
    }
}

/// Where a request stands against the session's rids (§14).
enum Turn {
    /// Next in order: process it.
    Next,
    /// The request in flight, sent again: wait in its place (§14.3).
    TakeOver,
    /// Answered already: the same answer again.
    Answered(String),
    /// Ahead of a request still on its way.
    Early,
    /// Outside the window, or too old to answer again.
    Lost,
}

fn turn(s: &State, rid: u64) -> Turn {
    if let Some((_, a)) = s.answers.iter().find(|(r, _)| *r == rid) {
        return Turn::Answered(a.clone());
    }
    // A session ended without a condition (the client's terminate, or the
    // stream closed and its end delivered): its sid is no more (§13).
    if s.ended.as_deref() == Some("") {
        return Turn::Lost;
    }
    match s.last_rid.checked_add(1) {
        Some(next) if rid == next => Turn::Next,
        _ if rid == s.last_rid && s.ended.is_none() => Turn::TakeOver,
        _ if rid > s.last_rid && rid - s.last_rid <= REQUESTS => Turn::Early,
        _ => Turn::Lost,
    }
}

/// §8-§9: a request of a running session.
async fn request(session: &Arc<Session>, el: &Element, rid: u64) -> Response<Body> {
    // §14.1-§14.3: in order, within the window; a repeat gets its answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let (order, generation, taken_over) = loop {
        let notified = session.notify.notified();
        let order = session.order.lock().await;
        let now = {
            let mut s = session.state();
            match turn(&s, rid) {
                Turn::Next => {
                    s.last_rid = rid;
                    s.last_request = Instant::now();
                    s.generation += 1;
                    Some((s.generation, false))
                }
                Turn::TakeOver => {
                    s.last_request = Instant::now();
                    s.generation += 1;
                    Some((s.generation, true))
                }
                Turn::Answered(a) => return xml(StatusCode::OK, a),
                Turn::Early => None,
                Turn::Lost => {
                    drop(s);
                    session.end("item-not-found");
                    return terminate("item-not-found");
                }
            }
        };
        if let Some((generation, taken_over)) = now {
            break (order, generation, taken_over);
        }
        drop(order);
        // Ahead of a request still on its way: wait a little for it.
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            session.end("item-not-found");
            return terminate("item-not-found");
        }
    };
    // An older held request gives way to this one (§11).
    session.notify.notify_waiters();
    if !taken_over {
        if el.attr("type") == Some("terminate") {
            // §13: the client ends the session, with its last stanzas.
            let mut last: Vec<String> = el.children().map(Element::to_xml).collect();
            last.push(format!("<close xmlns='{NS_FRAMING}'/>"));
            to_c2s(session, last).await;
            drop(order);
            let answer = body(&[("type", "terminate".to_owned())], &[]);
            session.end("");
            remember(session, rid, &answer);
            return xml(StatusCode::OK, answer);
        }
        let restart = el.attr(&format!("{{{NS_XBOSH}}}restart"));
        if matches!(restart, Some("true" | "1")) {
            let to = session
                .state()
                .opened
                .as_ref()
                .map(|(_, from)| from.clone())
                .unwrap_or_default();
            open_stream(session, &to).await;
        } else {
            to_c2s(session, el.children().map(Element::to_xml).collect()).await;
        }
    }
    drop(order);
    let wait = if session.hold == 0 { 0 } else { session.wait };
    let children = collect(session, Duration::from_secs(wait), generation).await;
    let ended = session.state().ended.clone();
    let answer = match ended {
        Some(condition) => {
            let mut attrs = vec![("type", "terminate".to_owned())];
            if !condition.is_empty() {
                attrs.push(("condition", condition));
            }
            body(&attrs, &children)
        }
        None => body(&[], &children),
    };
    remember(session, rid, &answer);
    xml(StatusCode::OK, answer)
}
