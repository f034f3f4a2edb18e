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
/// Answers kept for retransmission (§14.3).
const KEPT: usize = 4;

/// The sessions of one listener, by `sid`.
#[derive(Default)]
pub(crate) struct Sessions(DashMap<String, Arc<Session>>);

pub(crate) struct Session {
    sid: String,
    state: Mutex<State>,
    /// Output arrived, a newer request came, or the session ended.
    notify: Notify,
    wait: u64,
}

struct State {
    /// To the receiver; None once the session ends.
    to_c2s: Option<mpsc::UnboundedSender<WsMessage>>,
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
    let Some(rid) = el.attr("rid").and_then(|r| r.parse::<u64>().ok()) else {
        return terminate("bad-request");
    };
    match el.attr("sid") {
        None => create(conn, &el, rid).await,
        Some(sid) => {
            let session = conn.bosh.0.get(sid).map(|s| s.clone());
            match session {
                Some(s) => request(conn, &s, &el, rid).await,
                None => terminate("item-not-found"),
            }
        }
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
    let (to_c2s, from_http) = mpsc::unbounded_channel::<WsMessage>();
    let (to_http, mut from_c2s) = mpsc::unbounded_channel::<WsMessage>();
    let sid = match chorus_sasl::NewToken::generate() {
        Ok(t) => t.hash[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        Err(_) => return terminate("internal-server-error"),
    };
    let session = Arc::new(Session {
        sid: sid.clone(),
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
        }),
        notify: Notify::new(),
        wait,
    });
    conn.bosh.0.insert(sid.clone(), session.clone());

    // What c2s writes, into the outbox.
    {
        let session = session.clone();
        let max_bytes = conn.ctx.config.limits.max_outbound_bytes;
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
                tokio::time::sleep(Duration::from_secs(5)).await;
                let (idle, ended) = {
                    let s = session.state();
                    (s.last_request.elapsed(), s.ended.is_some())
                };
                if ended || idle > Duration::from_secs(INACTIVITY + session.wait) {
                    session.end("");
                    if let Some(sessions) = sessions.upgrade() {
                        sessions.0.remove(&session.sid);
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
    open_stream(&session, &to);
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
        ("hold", HOLD.to_string()),
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
fn open_stream(session: &Session, to: &str) {
    let open = format!(
        "<open xmlns='{NS_FRAMING}' to='{}' version='1.0'/>",
        chorus_xml::escape_attr(to)
    );
    if let Some(tx) = &session.state().to_c2s {
        let _ = tx.send(WsMessage::text(open));
    }
}

fn remember(session: &Session, rid: u64, answer: &str) {
    let mut s = session.state();
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
            if !s.outbox.is_empty() || s.ended.is_some() {
                s.outbox_bytes = 0;
                return s.outbox.drain(..).collect();
            }
            if s.generation > generation {
                return Vec::new();
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Vec::new();
        }
    }
}

/// §8-§9: a request of a running session.
async fn request(
    conn: &Arc<Conn>,
    session: &Arc<Session>,
    el: &Element,
    rid: u64,
) -> Response<Body> {
    // §14.1-§14.3: in order, within the window; a repeat gets its answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let notified = session.notify.notified();
        {
            let s = session.state();
            if rid <= s.last_rid {
                if let Some((_, a)) = s.answers.iter().find(|(r, _)| *r == rid) {
                    return xml(StatusCode::OK, a.clone());
                }
                drop(s);
                session.end("item-not-found");
                conn.bosh.0.remove(&session.sid);
                return terminate("item-not-found");
            }
            if rid == s.last_rid + 1 {
                break;
            }
            if rid > s.last_rid + REQUESTS {
                drop(s);
                session.end("item-not-found");
                conn.bosh.0.remove(&session.sid);
                return terminate("item-not-found");
            }
        }
        // One ahead of a request still on its way: wait a little for it.
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            session.end("item-not-found");
            conn.bosh.0.remove(&session.sid);
            return terminate("item-not-found");
        }
    }
    let generation = {
        let mut s = session.state();
        s.last_rid = rid;
        s.last_request = Instant::now();
        s.generation += 1;
        s.generation
    };
    // An older held request gives way to this one (§11).
    session.notify.notify_waiters();
    if el.attr("type") == Some("terminate") {
        // §13: the client ends the session, with its last stanzas.
        send_children(session, el);
        if let Some(tx) = &session.state().to_c2s {
            let _ = tx.send(WsMessage::text(format!("<close xmlns='{NS_FRAMING}'/>")));
        }
        let answer = body(&[("type", "terminate".to_owned())], &[]);
        session.end("");
        conn.bosh.0.remove(&session.sid);
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
        open_stream(session, &to);
    } else {
        send_children(session, el);
    }
    let children = collect(session, Duration::from_secs(session.wait), generation).await;
    let ended = session.state().ended.clone();
    let answer = match ended {
        Some(condition) => {
            conn.bosh.0.remove(&session.sid);
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

fn send_children(session: &Session, el: &Element) {
    let s = session.state();
    let Some(tx) = &s.to_c2s else {
        return;
    };
    for child in el.children() {
        let _ = tx.send(WsMessage::text(child.to_xml()));
    }
}
