//! The c2s actor: the stream state machine of one client connection
//! (RFC 6120 §4-§8).
//!
//! Phases, each starting with a stream header from the client:
//! 1. plaintext: features offer STARTTLS (required by default, §5.3.1);
//! 2. TLS (STARTTLS or direct TLS): features offer SASL (§6), SCRAM with
//!    channel binding first;
//! 3. authenticated: features offer resource binding (§7) and the legacy
//!    `session` as optional;
//! 4. bound: stanzas are checked, `from` is stamped (§8.1.2.1), and they are
//!    routed from this actor through the shared session table.
//!
//! Every protocol violation ends the stream with the RFC's stream error;
//! every stanza-level problem is answered with the RFC's stanza error and the
//! stream goes on.
//!
//! XEP-0198 stream management: once bound, the client may enable acks and
//! resumption. c2s monitors its socket and receiver (the group's
//! insignificant members). When they go and the session is resumable, c2s
//! stays alone in its group, *detached*: still routed to, queueing what
//! arrives, until a new connection's c2s takes its state over with
//! `<resume/>` (the session then lives under the new `conn-<id>`, and the
//! old group ends) or the resume timeout passes. Whatever the client never
//! acknowledged goes to offline storage or bounces when the session ends,
//! from `Drop`, so also when c2s is killed.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use chorus_jid::{BareJid, FullJid};
use chorus_proto::{
    error_reply, ns, IqType, PresenceType, StanzaError, StanzaErrorCondition, StanzaKind,
    StreamError,
};
use chorus_router::{Outcome, Session, SessionSink, SessionsMsg};
use chorus_sasl::{
    ChannelBindingData, Mechanism, PlainRequest, ScramCredentials, ScramHash, ScramServer,
};
use chorus_storage::AccountStore;
use chorus_xml::{Element, NsContext, StreamEvent, StreamHeader, XmlError};
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent,
};

use crate::conn::C2sContext;
use crate::receiver::Flow;
use crate::socket::SocketHandle;
use crate::tls::ChannelBindings;

/// Presences held for an inactive client before the queue is flushed
/// rather than grown (XEP-0352: bounded).
const CSI_MAX_HELD: usize = 256;

/// XEP-0352 client state indication.
#[derive(Default)]
struct Csi {
    /// The client said `<inactive/>`.
    inactive: bool,
    /// Held presence, latest per sender, in arrival order.
    held: Vec<(String, Element)>,
}

/// XEP-0115 node identifying the software.
const CAPS_NODE: &str = "https://chorus.invalid/caps";

/// XEP-0198: the server asks for an ack (`<r/>`) after this many stanzas.
const SM_REQUEST_EVERY: u32 = 5;

/// XEP-0198 state of a session that enabled stream management.
struct Sm {
    /// The resumption id; None when resumption was not asked for.
    id: Option<String>,
    /// How long the session waits, detached, for a resumption.
    timeout: std::time::Duration,
    /// Stanzas received from the client (the `h` we report).
    handled: u32,
    /// Stanzas sent to the client, modulo 2^32.
    sent: u32,
    /// Sent and not yet acknowledged, oldest first: the last
    /// `unacked.len()` of `sent`.
    unacked: VecDeque<Element>,
    /// Stanzas sent since our last `<r/>`.
    since_request: u32,
    /// The queue went past its bound: the stream ends (resource-constraint).
    overflowed: bool,
}

impl Sm {
    /// Applies the client's `h`; Err when it acknowledges more than was sent.
    fn ack(&mut self, h: u32) -> Result<(), ()> {
        let ahead = h.wrapping_sub(self.sent);
        if ahead != 0 && ahead < 1 << 31 {
            return Err(());
        }
        let behind = self.sent.wrapping_sub(h) as usize;
        if behind < self.unacked.len() {
            let acked = self.unacked.len() - behind;
            self.unacked.drain(..acked);
        }
        Ok(())
    }
}

/// A resumable session, by its id (XEP-0198).
#[derive(Clone)]
pub(crate) struct SmEntry {
    user: BareJid,
    c2s: ActorRef<C2sMsg>,
}

/// What a detached (or superseded) session hands to the connection that
/// resumes it.
pub struct Handover {
    full: FullJid,
    sm: Sm,
    directed: std::collections::HashSet<String>,
    csi: Csi,
}

pub enum C2sMsg {
    /// One parser event from the receiver; the reply paces the receiver.
    Incoming(Box<Result<StreamEvent, XmlError>>, RpcReplyPort<Flow>),
    /// TLS is up; the receiver waits for the reply before parsing on.
    TlsEstablished(Box<ChannelBindings>, RpcReplyPort<()>),
    /// Stanzas routed to this session wait in its [`Inbox`]: take them.
    Routed,
    /// Another connection bound our full JID (RFC 6120 §7.7.2.2).
    Replaced,
    /// The peer closed the TCP connection.
    PeerClosed,
    /// The negotiation deadline passed: by now the client must have sent
    /// its stream header and authenticated.
    HeaderTimeout,
    /// Periodic XEP-0199 keepalive check.
    Keepalive,
    /// An operator ends the session, with a reason for the client.
    Kick(Box<String>),
    /// The server is shutting down (RFC 6120 §4.9.3.17).
    Shutdown,
    /// Watch these members of the connection (socket, receiver): their exit
    /// ends the session or, when it is resumable, detaches it (XEP-0198).
    Monitor(Vec<ActorCell>),
    /// A new connection of `user` resumes this session (XEP-0198 §5): hand
    /// the state over, unless the session is not resumable.
    Takeover {
        user: BareJid,
        to: Box<(ActorRef<C2sMsg>, Arc<Inbox>)>,
        conn_id: u64,
        reply: RpcReplyPort<Option<Box<Handover>>>,
    },
    /// The resume timeout of the detachment with this number passed.
    ResumeTimeout(u64),
    /// A message went to offline storage while this session was becoming
    /// available: read offline storage again.
    FetchOffline,
}

pub struct C2sActor;

pub struct C2sArgs {
    /// The client's address, for per-IP limits.
    pub peer: Option<std::net::IpAddr>,
    pub conn_id: u64,
    pub socket: SocketHandle,
    pub ctx: Arc<C2sContext>,
}

/// An exchange under way.
enum SaslState {
    Scram(Box<ScramServer>),
}

pub struct C2sState {
    conn_id: u64,
    myself: ActorRef<C2sMsg>,
    socket: SocketHandle,
    ctx: Arc<C2sContext>,
    /// Our stream header has been sent (an error must follow a header,
    /// RFC 6120 §4.9.1.2).
    header_sent: bool,
    /// The first stream header arrived (the connection-timeout check).
    header_received: bool,
    /// The stream is closing; ignore further input.
    closing: bool,
    /// The domain the client addressed.
    domain: Option<String>,
    /// TLS is up, with these channel bindings.
    tls: Option<ChannelBindings>,
    sasl: Option<SaslState>,
    /// Whether the features we sent offered a -PLUS mechanism (SCRAM's
    /// downgrade check needs to know).
    plus_advertised: bool,
    auth_failures: u32,
    peer: Option<std::net::IpAddr>,
    /// The mechanism of the exchange under way, for metrics.
    auth_mech: &'static str,
    /// Authenticated account.
    user: Option<BareJid>,
    /// Bound resource.
    full: Option<FullJid>,
    /// Where we sent directed available presence (RFC 6121 §4.6).
    directed: std::collections::HashSet<String>,
    /// XEP-0352 client state.
    csi: Csi,
    /// When the client last sent a complete element.
    last_inbound: std::time::Instant,
    /// Our keepalive ping awaiting any sign of life, sent at this time.
    ping_sent: Option<std::time::Instant>,
    /// The keepalive timer, started at bind.
    keepalive: Option<ractor::concurrency::JoinHandle<()>>,
    /// Replaced by a new binding of the same full JID: its successor owns
    /// the presence, so ours must not announce unavailable.
    replaced: bool,
    /// XEP-0198, once enabled. Behind a lock only because stanzas are sent
    /// from `&self` methods.
    sm: Mutex<Option<Sm>>,
    /// Socket and receiver, monitored.
    transport: Vec<ActorCell>,
    /// The transport is gone; the session waits for a resumption.
    detached: bool,
    /// Counts detachments, so that a stale resume timer is ignored.
    detach_epoch: u64,
    /// Routed stanzas not yet taken (see [`Inbox`]).
    inbox: Arc<Inbox>,
    /// The session was resumed on this c2s: forward what still arrives.
    moved_to: Option<(ActorRef<C2sMsg>, Arc<Inbox>)>,
    /// This actor is draining its mailbox to stop.
    ending: bool,
}

impl Drop for C2sState {
    /// Runs on every exit, kill included: ractor skips `post_stop` for a
    /// killed actor, so the session table is cleaned here.
    fn drop(&mut self) {
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
        let sm = self.sm_lock().take();
        if let Some(id) = sm.as_ref().and_then(|s| s.id.as_ref()) {
            let me = self.myself.get_id();
            self.ctx
                .sm_sessions
                .remove_if(id, |_, e| e.c2s.get_id() == me);
        }
        // Routed stanzas the actor never took: a kill drops the mailbox,
        // not the inbox. They follow a resumed session to its new
        // connection, or are handled as unacknowledged ones below.
        let mut leftover: Vec<Element> = Vec::new();
        for stanza in self.inbox.close() {
            match &self.moved_to {
                Some((to, inbox)) => {
                    if let Err(back) = forward(to, inbox, stanza) {
                        leftover.push(back);
                    }
                }
                None => leftover.push(stanza),
            }
        }
        let Some(full) = self.full.clone() else {
            if let Some(user) = self.user.clone() {
                self.reroute(user, leftover);
            }
            return;
        };
        let session = self
            .ctx
            .router
            .sessions
            .get(&full)
            .filter(|s| s.conn_id == self.conn_id);
        if self.ctx.router.sessions.remove(&full, self.conn_id) {
            tracing::info!(conn = self.conn_id, jid = %full, "session ended");
            self.ctx
                .modules
                .session_closed(&self.ctx.router, &full, self.conn_id);
        }
        // XEP-0198: what the client never acknowledged is not lost: offline
        // storage, or an error to its sender. So is what never left the inbox.
        let mut unacked = sm.map(|s| s.unacked).unwrap_or_default();
        unacked.extend(leftover);
        if !unacked.is_empty() {
            tracing::info!(conn = self.conn_id, jid = %full, count = unacked.len(), "unacknowledged stanzas rerouted");
            self.reroute(full.bare(), unacked);
        }
        // RFC 6121 §4.5.2: contacts learn we left, also when the c2s actor
        // was killed. Drop cannot await, so the broadcast runs in a task.
        let was_available = session.is_some_and(|s| s.available());
        let directed = std::mem::take(&mut self.directed);
        if (was_available || !directed.is_empty()) && !self.replaced {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let router = self.ctx.router.clone();
                rt.spawn(async move {
                    let p = Element::new("presence", ns::JABBER_CLIENT)
                        .with_attr("type", "unavailable")
                        .with_attr("from", full.to_string());
                    if was_available {
                        router.broadcast(&full, &p, false).await;
                    }
                    for to in directed {
                        let mut d = p.clone();
                        d.set_attr("to", to);
                        let _ = router.route(d).await;
                    }
                });
            }
        }
    }
}

/// A random token (stream ids, generated resources): unpredictable, not secret.
fn random_token() -> String {
    let a = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let b = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{a:016x}{b:016x}")
}

fn b64(data: &[u8]) -> String {
    if data.is_empty() {
        // RFC 6120 §6.4.2: empty initial response / success data is "=".
        "=".to_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(data)
    }
}

/// SASL payloads: "=" is an empty payload, absent is none (§6.4.2).
fn unb64(text: &str) -> Result<Vec<u8>, ()> {
    let t = text.trim();
    if t == "=" || t.is_empty() {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .map_err(|_| ())
}

/// Stanzas routed to a session and not yet taken by its c2s actor.
///
/// They wait here rather than in the actor's mailbox because a killed
/// ractor actor's mailbox is dropped unread: a message routed to a session
/// (`Outcome::Delivered`, so acknowledged to its sender under XEP-0198)
/// would vanish with it. `Drop` of the c2s state closes the inbox and
/// handles what it still holds as unacknowledged; a stanza offered to a
/// closed inbox comes back to the router, which routes it as if the
/// session had not been there (RFC 6121 §8.5.3.2). A routed stanza costs a
/// lock and, when the inbox was empty, one payload-less message to wake
/// the actor, which then takes everything at once.
#[derive(Default)]
pub struct Inbox(Mutex<InboxState>);

#[derive(Default)]
struct InboxState {
    items: VecDeque<Element>,
    closed: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a stanza: Ok(true) when the actor must be woken (the inbox
    /// was empty), Err with the stanza once the inbox is closed.
    fn push(&self, stanza: Element) -> Result<bool, Element> {
        let mut st = self.lock();
        if st.closed {
            return Err(stanza);
        }
        st.items.push_back(stanza);
        Ok(st.items.len() == 1)
    }

    fn take(&self) -> VecDeque<Element> {
        std::mem::take(&mut self.lock().items)
    }

    /// No more stanzas; returns those still queued.
    fn close(&self) -> VecDeque<Element> {
        let mut st = self.lock();
        st.closed = true;
        std::mem::take(&mut st.items)
    }
}

/// Puts a stanza in a c2s actor's inbox, waking it if needed.
fn forward(to: &ActorRef<C2sMsg>, inbox: &Inbox, stanza: Element) -> Result<(), Element> {
    if inbox.push(stanza)? {
        // If the actor is already gone, `Drop` of its state takes the
        // stanza from the inbox when it closes it.
        let _ = to.cast(C2sMsg::Routed);
    }
    Ok(())
}

/// What feature modules write to the client goes through the session's
/// own path, so XEP-0198 counts and keeps it.
impl chorus_modules::ClientLink for C2sState {
    fn send(&mut self, stanza: &Element) {
        self.send_element(stanza);
    }

    fn flushed(&mut self) -> futures_util::future::BoxFuture<'_, bool> {
        Box::pin(async move {
            // Under XEP-0198 the unacknowledged queue holds what was sent.
            let tracked = self.sm_lock().is_some();
            self.socket.sync().await || tracked
        })
    }
}

/// How routing reaches this actor.
struct Sink {
    c2s: ActorRef<C2sMsg>,
    inbox: Arc<Inbox>,
}

impl SessionSink for Sink {
    fn deliver(&self, stanza: Element) -> bool {
        self.try_deliver(stanza).is_ok()
    }

    fn try_deliver(&self, stanza: Element) -> Result<(), Element> {
        forward(&self.c2s, &self.inbox, stanza)
    }

    fn replaced(&self) {
        let _ = self.c2s.cast(C2sMsg::Replaced);
    }

    fn kick(&self, reason: String) {
        let _ = self.c2s.cast(C2sMsg::Kick(Box::new(reason)));
    }

    fn offline_waiting(&self) {
        let _ = self.c2s.cast(C2sMsg::FetchOffline);
    }
}

fn stored_to_scram(
    c: chorus_storage::StoredCredentials,
    hash: ScramHash,
) -> Option<ScramCredentials> {
    Some(ScramCredentials {
        hash,
        salt: c.salt,
        iterations: c.iterations,
        stored_key: c.stored_key,
        server_key: c.server_key,
    })
}

impl C2sState {
    /// How routing reaches this actor.
    fn sink(&self) -> Box<Sink> {
        Box::new(Sink {
            c2s: self.myself.clone(),
            inbox: self.inbox.clone(),
        })
    }

    /// Handles stanzas this session will never deliver as unacknowledged
    /// (offline storage or an error to the sender), in a task: `Drop`
    /// cannot await.
    fn reroute(&self, owner: BareJid, stanzas: impl IntoIterator<Item = Element>) {
        let stanzas: Vec<Element> = stanzas.into_iter().collect();
        if stanzas.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let router = self.ctx.router.clone();
            rt.spawn(async move {
                for stanza in stanzas {
                    router.unacknowledged(&owner, stanza).await;
                }
            });
        }
    }

    /// One stanza taken from the inbox.
    fn on_routed(&mut self, stanza: Element) {
        if let Some((to, inbox)) = &self.moved_to {
            // Resumed elsewhere: the session lives there now.
            if let Err(back) = forward(to, inbox, stanza) {
                if let Some(user) = self.user.clone() {
                    self.reroute(user, [back]);
                }
            }
        } else if !self.closing {
            self.deliver(stanza);
        } else {
            self.keep_unacked(stanza);
        }
    }

    fn sm_lock(&self) -> MutexGuard<'_, Option<Sm>> {
        // Nothing under the lock can panic half-way through a change.
        self.sm.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, bytes: Vec<u8>) {
        if self.detached {
            return;
        }
        // On overflow the socket is already closing the connection; count
        // the moment it happened.
        if let Err(crate::socket::SendError::OverflowNow) = self.socket.send(bytes) {
            self.ctx
                .metrics
                .outbound_drops
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn send_element(&self, el: &Element) {
        if StanzaKind::of(el).is_some() {
            // XEP-0198: every stanza is kept until the client acknowledges it.
            let mut request = false;
            if let Some(sm) = self.sm_lock().as_mut() {
                sm.unacked.push_back(el.clone());
                sm.sent = sm.sent.wrapping_add(1);
                if sm.unacked.len() > self.ctx.sm_max_unacked {
                    // Kept all the same: the session ends, and Drop reroutes it.
                    sm.overflowed = true;
                    return;
                }
                sm.since_request += 1;
                if sm.since_request >= SM_REQUEST_EVERY {
                    sm.since_request = 0;
                    request = true;
                }
            }
            self.write_element(el);
            if request {
                self.send(b"<r xmlns='urn:xmpp:sm:3'/>".to_vec());
            }
            return;
        }
        self.write_element(el);
    }

    /// Serializes an element to the socket, outside XEP-0198 accounting.
    fn write_element(&self, el: &Element) {
        if self.detached {
            return;
        }
        let mut out = Vec::with_capacity(256);
        el.write_to(&mut out, &NsContext::stream(ns::JABBER_CLIENT));
        if let Some(kind) = StanzaKind::of(el) {
            self.ctx.metrics.stanzas_out.inc(kind.as_str());
            self.ctx.metrics.observe_size(out.len());
        }
        self.send(out);
    }

    fn send_header(&mut self, from: &str) {
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{}' from='{}' version='1.0' xml:lang='en'>",
            ns::JABBER_CLIENT,
            ns::STREAM,
            random_token(),
            chorus_xml::escape_attr(from),
        );
        self.send(header.into_bytes());
        self.header_sent = true;
    }

    /// Sends a stream error and closes the stream (RFC 6120 §4.9.1.1).
    fn stream_error(&mut self, err: StreamError, text: Option<&str>) -> Flow {
        self.stream_error_with(err, text, None)
    }

    /// A stream error with an application-specific condition (§4.9.4).
    fn stream_error_with(
        &mut self,
        err: StreamError,
        text: Option<&str>,
        app: Option<Element>,
    ) -> Flow {
        if self.closing {
            return Flow::Stop;
        }
        self.ctx.metrics.stream_errors.inc(err.as_str());
        tracing::info!(conn = self.conn_id, jid = ?self.full.as_ref().map(|j| j.to_string()), condition = err.as_str(), text, "stream error");
        if !self.header_sent {
            let from = self
                .domain
                .clone()
                .unwrap_or_else(|| self.ctx.domains.first().cloned().unwrap_or_default());
            self.send_header(&from);
        }
        self.send_element(&err.to_element_with(text, app));
        self.close();
        Flow::Stop
    }

    fn close(&mut self) {
        self.closing = true;
        self.send(b"</stream:stream>".to_vec());
        self.socket.close();
        if self.detached {
            // No transport left to report the end: the session ends now.
            self.end();
        }
    }

    /// Ends the session: processes what is already queued in the mailbox
    /// (routed stanzas join the unacknowledged queue), then stops, which
    /// ends the group.
    fn end(&mut self) {
        self.closing = true;
        if !self.ending {
            self.ending = true;
            if self.myself.drain().is_err() {
                self.myself.stop(None);
            }
        }
    }

    /// Whether a dropped connection leaves this session detached rather
    /// than ending it (XEP-0198 resumption enabled, stream not closed).
    fn resumable(&self) -> bool {
        !self.closing
            && self.moved_to.is_none()
            && self.full.is_some()
            && self.sm_lock().as_ref().is_some_and(|s| s.id.is_some())
    }

    /// The socket or the receiver is gone (peer closed, I/O error, killed):
    /// detach a resumable session, end any other.
    fn transport_down(&mut self) {
        if self.detached || self.moved_to.is_some() {
            return;
        }
        if self.socket.gauge().overflowed() {
            // The peer got a stream error: the session is over.
            self.closing = true;
        }
        if self.resumable() {
            self.detach();
        } else {
            self.closing = true;
            self.socket.close();
            self.end();
        }
    }

    /// XEP-0198 §5: the connection is gone, the session stays, routed to
    /// and queueing, until it is resumed or the timeout passes.
    fn detach(&mut self) {
        let timeout = self
            .sm_lock()
            .as_ref()
            .map_or(self.ctx.sm_resume_timeout, |s| s.timeout);
        // What is still queued at the socket may yet reach the peer; the
        // receiver waits in a read, which only a kill interrupts.
        self.socket.close();
        let socket = self.socket.actor().get_id();
        for member in &self.transport {
            if member.get_id() != socket {
                member.kill();
            }
        }
        self.detached = true;
        self.detach_epoch += 1;
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
        self.ping_sent = None;
        let epoch = self.detach_epoch;
        self.myself
            .send_after(timeout, move || C2sMsg::ResumeTimeout(epoch));
        tracing::info!(conn = self.conn_id, jid = ?self.full.as_ref().map(|j| j.to_string()), ?timeout, "session detached; waiting for resumption");
    }

    /// A routed stanza that arrives once the stream is closing: kept for
    /// offline storage when stream management tracks it.
    fn keep_unacked(&self, stanza: Element) {
        if let Some(sm) = self.sm_lock().as_mut() {
            sm.unacked.push_back(stanza);
            sm.sent = sm.sent.wrapping_add(1);
        }
    }

    /// The unacknowledged queue went past its bound: `resource-constraint`.
    fn check_overflow(&mut self) -> Option<Flow> {
        let overflowed = self.sm_lock().as_ref().is_some_and(|s| s.overflowed);
        if overflowed && !self.closing {
            return Some(self.stream_error(
                StreamError::ResourceConstraint,
                Some("too many unacknowledged stanzas"),
            ));
        }
        None
    }

    fn mechanisms(&self) -> Vec<Mechanism> {
        let mut out = Vec::new();
        let cb = self.channel_binding_data();
        if self.tls.is_some() && !cb.is_empty() {
            out.push(Mechanism::ScramSha256Plus);
            out.push(Mechanism::ScramSha1Plus);
        }
        out.push(Mechanism::ScramSha256);
        out.push(Mechanism::ScramSha1);
        if self.tls.is_some() || self.ctx.allow_plain_without_tls {
            out.push(Mechanism::Plain);
        }
        out
    }

    fn channel_binding_data(&self) -> ChannelBindingData {
        match &self.tls {
            Some(b) => ChannelBindingData {
                tls_exporter: b.tls_exporter.clone(),
                tls_server_end_point: b.tls_server_end_point.clone(),
            },
            None => ChannelBindingData::none(),
        }
    }

    fn features(&mut self) -> Element {
        let mut f = Element::new("features", ns::STREAM);
        // XEP-0115 §6.3: the server's own capabilities, in every feature list.
        f.push(
            Element::new("c", ns::CAPS)
                .with_attr("hash", "sha-1")
                .with_attr("node", CAPS_NODE)
                .with_attr("ver", self.ctx.caps_ver.as_str()),
        );
        if self.user.is_some() {
            f.push(Element::new("bind", ns::BIND));
            // RFC 6121 §2.6.1 and §3.4: roster versioning and pre-approval.
            f.push(Element::new("ver", ns::ROSTER_VER));
            // XEP-0352 §3: client state indication.
            f.push(Element::new("csi", ns::CSI));
            // XEP-0198 §3: stream management (enable after bind, or resume).
            f.push(Element::new("sm", ns::SM));
            f.push(Element::new("sub", ns::PRE_APPROVAL));
            // RFC 6121 Appendix E: advertised for old clients, optional.
            f.push(
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION)),
            );
            return f;
        }
        let starttls_offered = self.tls.is_none() && self.ctx.tls().is_some();
        if starttls_offered {
            let mut st = Element::new("starttls", ns::TLS);
            if self.ctx.require_encryption {
                st.push(Element::new("required", ns::TLS));
            }
            f.push(st);
        }
        if self.tls.is_some() || !self.ctx.require_encryption {
            let mechs = self.mechanisms();
            self.plus_advertised = mechs.iter().any(|m| m.is_plus());
            let mut m = Element::new("mechanisms", ns::SASL);
            for mech in mechs {
                m.push(Element::new("mechanism", ns::SASL).with_text(mech.name()));
            }
            f.push(m);
            // XEP-0077 §6: registration is offered where it is open.
            if self
                .domain
                .as_deref()
                .is_some_and(|d| self.ctx.registration_open(d))
            {
                f.push(Element::new("register", ns::REGISTER_FEATURE));
            }
            if let Some(b) = &self.tls {
                // XEP-0440: which channel-binding types we can verify.
                let mut cb = Element::new("sasl-channel-binding", ns::SASL_CB);
                if b.tls_exporter.is_some() {
                    cb.push(
                        Element::new("channel-binding", ns::SASL_CB)
                            .with_attr("type", "tls-exporter"),
                    );
                }
                if b.tls_server_end_point.is_some() {
                    cb.push(
                        Element::new("channel-binding", ns::SASL_CB)
                            .with_attr("type", "tls-server-end-point"),
                    );
                }
                f.push(cb);
            }
        }
        f
    }

    fn on_header(&mut self, h: &StreamHeader) -> Flow {
        self.header_received = true;
        if self
            .ctx
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return self.stream_error(StreamError::SystemShutdown, None);
        }
        // RFC 6120 §4.8.1: the stream element must be in the streams namespace.
        if h.name != "stream" || h.ns != ns::STREAM {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("expected stream:stream"),
            );
        }
        // §4.8.2: a c2s stream's content namespace is jabber:client.
        if h.default_ns != ns::JABBER_CLIENT {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("expected jabber:client"),
            );
        }
        let to = h
            .attr("to")
            .map(|t| t.trim_end_matches('.').to_ascii_lowercase());
        match to {
            // A restarted stream must stay on the domain it started with.
            Some(d) if self.domain.as_ref().is_some_and(|cur| *cur != d) => {
                return self
                    .stream_error(StreamError::HostUnknown, Some("domain changed on restart"));
            }
            Some(d) if self.ctx.domains.contains(&d) => self.domain = Some(d),
            // §4.9.3.6: a 'to' we do not serve (or none at all).
            _ => return self.stream_error(StreamError::HostUnknown, None),
        }
        // §4.7.5: no version means pre-1.0; a major version above ours is unsupported.
        let supported = h
            .attr("version")
            .and_then(|v| v.split_once('.'))
            .and_then(|(major, _)| major.parse::<u32>().ok())
            .is_some_and(|major| major == 1);
        if !supported {
            return self.stream_error(
                StreamError::UnsupportedVersion,
                Some("version 1.0 is required"),
            );
        }
        let domain = self.domain.clone().unwrap_or_default();
        self.send_header(&domain);
        let features = self.features();
        self.send_element(&features);
        Flow::Continue
    }

    fn sasl_failure(&mut self, condition: &str, text: Option<&str>) -> Flow {
        self.sasl = None;
        self.auth_failures += 1;
        self.ctx
            .metrics
            .auth
            .inc(&format!("{}/failure", self.auth_mech));
        let mut f = Element::new("failure", ns::SASL).with_child(Element::new(condition, ns::SASL));
        if let Some(t) = text {
            f.push(
                Element::new("text", ns::SASL)
                    .with_attr("xml:lang", "en")
                    .with_text(t),
            );
        }
        self.send_element(&f);
        tracing::info!(conn = self.conn_id, condition, "authentication failed");
        if self.auth_failures >= self.ctx.sasl_max_attempts {
            return self.stream_error(
                StreamError::PolicyViolation,
                Some("too many failed authentication attempts"),
            );
        }
        Flow::Continue
    }

    /// The authzid, if any, must name the authenticated account (§6.4.6).
    fn authzid_ok(&self, user: &BareJid, authzid: Option<&str>) -> bool {
        match authzid {
            None | Some("") => true,
            Some(a) => a.parse::<BareJid>().is_ok_and(|j| j == *user),
        }
    }

    fn account(&self, username: &str) -> Option<BareJid> {
        BareJid::new(Some(username), self.domain.as_deref()?).ok()
    }

    async fn lookup(
        &self,
        user: &BareJid,
        hash: ScramHash,
    ) -> Result<Option<ScramCredentials>, ()> {
        let Some(node) = user.node() else {
            return Ok(None);
        };
        match self
            .ctx
            .storage
            .credentials(node, user.domain(), hash.name())
            .await
        {
            Ok(c) => Ok(c.and_then(|c| stored_to_scram(c, hash))),
            Err(e) => {
                tracing::error!(error = %e, "storage error during authentication");
                Err(())
            }
        }
    }

    fn sasl_success(&mut self, user: BareJid, additional: &[u8]) -> Flow {
        tracing::info!(conn = self.conn_id, jid = %user, "authenticated");
        self.ctx
            .metrics
            .auth
            .inc(&format!("{}/success", self.auth_mech));
        self.sasl = None;
        self.user = Some(user);
        let mut s = Element::new("success", ns::SASL);
        if !additional.is_empty() {
            s.push_text(b64(additional));
        }
        self.send_element(&s);
        // §6.4.6: the client restarts the stream; so do we.
        Flow::Reset
    }

    async fn on_auth(&mut self, el: &Element) -> Flow {
        if self.tls.is_none() && self.ctx.require_encryption {
            return self.sasl_failure("encryption-required", None);
        }
        let mech = el
            .attr("mechanism")
            .and_then(|m| m.parse::<Mechanism>().ok());
        self.auth_mech = mech.map(Mechanism::name).unwrap_or("unknown");
        let Some(mech) = mech.filter(|m| self.mechanisms().contains(m)) else {
            return self.sasl_failure("invalid-mechanism", None);
        };
        let Ok(payload) = unb64(&el.text()) else {
            return self.sasl_failure("incorrect-encoding", None);
        };
        if mech == Mechanism::Plain {
            let req = match PlainRequest::parse(&payload) {
                Ok(r) => r,
                Err(e) => return self.sasl_failure(e.condition().as_str(), None),
            };
            let Some(user) = self.account(req.username()) else {
                return self.sasl_failure("not-authorized", None);
            };
            let creds = match self.lookup(&user, ScramHash::Sha256).await {
                Ok(c) => c,
                Err(()) => return self.sasl_failure("temporary-auth-failure", None),
            };
            return match req.verify(creds.as_ref()) {
                Ok(out) if self.authzid_ok(&user, out.authzid.as_deref()) => {
                    self.sasl_success(user, &[])
                }
                Ok(_) => self.sasl_failure("invalid-authzid", None),
                Err(e) => self.sasl_failure(e.condition().as_str(), None),
            };
        }
        let Some(hash) = mech.hash() else {
            return self.sasl_failure("invalid-mechanism", None);
        };
        let mut server = ScramServer::new(mech, self.channel_binding_data(), self.plus_advertised)
            .with_unknown_user_iterations(self.ctx.sasl_iterations);
        let first = match server.handle_client_first(&payload) {
            Ok(f) => f,
            Err(e) => return self.sasl_failure(e.condition().as_str(), None),
        };
        let creds = match self.account(&first.username) {
            Some(user) => match self.lookup(&user, hash).await {
                Ok(c) => c,
                Err(()) => return self.sasl_failure("temporary-auth-failure", None),
            },
            None => None,
        };
        match server.server_first(creds.as_ref()) {
            Ok(challenge) => {
                self.send_element(&Element::new("challenge", ns::SASL).with_text(b64(&challenge)));
                self.sasl = Some(SaslState::Scram(Box::new(server)));
                Flow::Continue
            }
            Err(e) => self.sasl_failure(e.condition().as_str(), None),
        }
    }

    fn on_response(&mut self, el: &Element) -> Flow {
        let Some(SaslState::Scram(mut server)) = self.sasl.take() else {
            return self.sasl_failure("malformed-request", Some("no authentication in progress"));
        };
        let Ok(payload) = unb64(&el.text()) else {
            return self.sasl_failure("incorrect-encoding", None);
        };
        match server.handle_client_final(&payload) {
            Ok((server_final, outcome)) => {
                let Some(user) = self.account(&outcome.username) else {
                    return self.sasl_failure("not-authorized", None);
                };
                if !self.authzid_ok(&user, outcome.authzid.as_deref()) {
                    return self.sasl_failure("invalid-authzid", None);
                }
                self.sasl_success(user, &server_final)
            }
            Err(e) => self.sasl_failure(e.condition().as_str(), None),
        }
    }

    /// Elements before authentication: STARTTLS and SASL only.
    async fn on_preauth(&mut self, el: &Element) -> Flow {
        if el.is("starttls", ns::TLS) {
            if self.tls.is_some() || self.ctx.tls().is_none() {
                // §5.4.2.2: failure, then close.
                self.send_element(&Element::new("failure", ns::TLS));
                self.close();
                return Flow::Stop;
            }
            self.send_element(&Element::new("proceed", ns::TLS));
            return Flow::StartTls;
        }
        if el.is("iq", ns::JABBER_CLIENT)
            && el.get_child("query", ns::REGISTER).is_some()
            && (self.tls.is_some() || !self.ctx.require_encryption)
            && self
                .domain
                .as_deref()
                .is_some_and(|d| self.ctx.registration_open(d))
        {
            self.register_account(el).await;
            return Flow::Continue;
        }
        if StanzaKind::of(el).is_some() {
            // §4.9.3.12: stanzas before authentication, with or without TLS.
            return self.stream_error(StreamError::NotAuthorized, Some("authenticate first"));
        }
        match (el.name(), el.ns()) {
            ("auth", ns::SASL) => self.on_auth(el).await,
            ("response", ns::SASL) => self.on_response(el),
            ("abort", ns::SASL) => self.sasl_failure("aborted", None),
            // §5.3.1: STARTTLS is mandatory-to-negotiate here.
            _ if self.tls.is_none() && self.ctx.require_encryption => {
                self.stream_error(StreamError::PolicyViolation, Some("STARTTLS is required"))
            }
            _ => self.stream_error(StreamError::NotAuthorized, Some("authenticate first")),
        }
    }

    /// XEP-0077 §3.1: account creation before authentication.
    async fn register_account(&mut self, iq: &Element) {
        let Some(query) = iq.get_child("query", ns::REGISTER) else {
            return;
        };
        match iq.attr("type") {
            Some("get") => {
                let r = self.iq_result(iq).with_child(
                    Element::new("query", ns::REGISTER)
                        .with_child(
                            Element::new("instructions", ns::REGISTER)
                                .with_text("Choose a username and a password."),
                        )
                        .with_child(Element::new("username", ns::REGISTER))
                        .with_child(Element::new("password", ns::REGISTER)),
                );
                self.send_element(&r);
            }
            Some("set") => {
                let username = query.get_child("username", ns::REGISTER).map(|u| u.text());
                let password = query.get_child("password", ns::REGISTER).map(|p| p.text());
                let (Some(username), Some(password)) = (username, password) else {
                    return self.iq_error(iq, StanzaErrorCondition::NotAcceptable);
                };
                let Some(user) = self.account(&username).filter(|_| !password.is_empty()) else {
                    return self.iq_error(iq, StanzaErrorCondition::NotAcceptable);
                };
                if !self.ctx.take_register_token(self.peer) {
                    tracing::warn!(conn = self.conn_id, peer = ?self.peer, "registration rate limit");
                    return self.iq_error(iq, StanzaErrorCondition::PolicyViolation);
                }
                let Ok(creds) =
                    chorus_modules::register::credentials(&password, self.ctx.sasl_iterations)
                else {
                    return self.iq_error(iq, StanzaErrorCondition::NotAcceptable);
                };
                let node = user.node().unwrap_or_default();
                match self
                    .ctx
                    .storage
                    .create_account(node, user.domain(), &creds)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(conn = self.conn_id, jid = %user, "account registered in-band");
                        let r = self.iq_result(iq);
                        self.send_element(&r);
                    }
                    Err(chorus_storage::StorageError::AlreadyExists) => {
                        self.iq_error(iq, StanzaErrorCondition::Conflict)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "in-band registration failed");
                        self.iq_error(iq, StanzaErrorCondition::InternalServerError)
                    }
                }
            }
            _ => self.iq_error(iq, StanzaErrorCondition::BadRequest),
        }
    }

    fn iq_result(&self, iq: &Element) -> Element {
        let mut r = Element::new("iq", ns::JABBER_CLIENT).with_attr("type", "result");
        if let Some(id) = iq.attr("id") {
            r.set_attr("id", id);
        }
        r
    }

    fn iq_error(&self, iq: &Element, cond: StanzaErrorCondition) {
        if let Some(e) = error_reply(iq, &StanzaError::new(cond)) {
            self.send_element(&e);
        }
    }

    /// Authenticated, not yet bound: resource binding (§7) only, or a
    /// XEP-0198 resumption instead.
    async fn on_unbound(&mut self, el: &Element) -> Flow {
        if el.ns() == ns::SM {
            match el.name() {
                "resume" => return self.resume(el).await,
                // §4: enabling comes after binding.
                "enable" => self.sm_failed("unexpected-request"),
                _ => {}
            }
            return Flow::Continue;
        }
        if !el.is("iq", ns::JABBER_CLIENT) {
            return self.stream_error(StreamError::NotAuthorized, Some("bind a resource first"));
        }
        if el.attr("id").is_none() {
            // RFC 6120 §8.2.3, as for bound streams (`on_stanza`).
            self.iq_error(el, StanzaErrorCondition::BadRequest);
            return Flow::Continue;
        }
        if let Some(bind) = el.get_child("bind", ns::BIND) {
            if IqType::of(el) != Some(IqType::Set) {
                self.iq_error(el, StanzaErrorCondition::BadRequest);
                return Flow::Continue;
            }
            self.bind(el, bind.get_child("resource", ns::BIND).map(|r| r.text()))
                .await;
            return Flow::Continue;
        }
        if el.get_child("session", ns::SESSION).is_some() {
            let r = self.iq_result(el);
            self.send_element(&r);
            return Flow::Continue;
        }
        self.iq_error(el, StanzaErrorCondition::NotAllowed);
        Flow::Continue
    }

    async fn bind(&mut self, iq: &Element, requested: Option<String>) {
        let Some(user) = self.user.clone() else {
            return;
        };
        let requested = requested
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        let full = match requested {
            Some(r) => match user.with_resource(&r) {
                Ok(f) => f,
                // §7.7.2.1: a resource that cannot be prepared.
                Err(_) => return self.iq_error(iq, StanzaErrorCondition::BadRequest),
            },
            // §7.6: the server generates one.
            None => match user.with_resource(&format!("chorus-{}", &random_token()[..12])) {
                Ok(f) => f,
                Err(_) => return self.iq_error(iq, StanzaErrorCondition::InternalServerError),
            },
        };
        let session = Arc::new(Session::new(full.clone(), self.conn_id, self.sink()));
        let Some(sessions) = self.ctx.sessions_actor() else {
            return self.iq_error(iq, StanzaErrorCondition::InternalServerError);
        };
        let registered = sessions
            .call(
                |reply| SessionsMsg::Register {
                    session,
                    max_resources: self.ctx.max_resources,
                    reply,
                },
                Some(std::time::Duration::from_secs(5)),
            )
            .await;
        match registered {
            Ok(ractor::rpc::CallResult::Success(Ok(()))) => {
                tracing::info!(conn = self.conn_id, jid = %full, "resource bound");
                self.ctx
                    .modules
                    .session_bound(&self.ctx.router, &full, self.conn_id);
                self.full = Some(full.clone());
                self.start_keepalive();
                let r = self.iq_result(iq).with_child(
                    Element::new("bind", ns::BIND)
                        .with_child(Element::new("jid", ns::BIND).with_text(full.to_string())),
                );
                self.send_element(&r);
            }
            Ok(ractor::rpc::CallResult::Success(Err(_))) => {
                self.iq_error(iq, StanzaErrorCondition::ResourceConstraint)
            }
            _ => self.iq_error(iq, StanzaErrorCondition::InternalServerError),
        }
    }

    /// XEP-0199 keepalive: check at half the shorter period.
    fn start_keepalive(&mut self) {
        let tick = (self.ctx.ping_interval.min(self.ctx.ping_timeout) / 2)
            .max(std::time::Duration::from_millis(100));
        if let Some(k) = self
            .keepalive
            .replace(self.myself.send_interval(tick, || C2sMsg::Keepalive))
        {
            k.abort();
        }
    }

    /// XEP-0198 `<failed/>` with a stanza error condition.
    fn sm_failed(&self, condition: &str) {
        self.write_element(
            &Element::new("failed", ns::SM).with_child(Element::new(condition, ns::STANZAS)),
        );
    }

    /// XEP-0198 nonzas of a bound stream: enable, r, a.
    fn on_sm(&mut self, el: &Element) -> Flow {
        match el.name() {
            "enable" => {
                if self.sm_lock().is_some() {
                    self.sm_failed("unexpected-request");
                    return Flow::Continue;
                }
                let resume = matches!(el.attr("resume"), Some("true" | "1"));
                let timeout = el
                    .attr("max")
                    .and_then(|m| m.parse::<u64>().ok())
                    .filter(|&m| m > 0)
                    .map_or(self.ctx.sm_resume_timeout, std::time::Duration::from_secs)
                    .min(self.ctx.sm_max_resume_timeout);
                let id = resume.then(random_token);
                let mut enabled = Element::new("enabled", ns::SM);
                if let (Some(id), Some(user)) = (&id, &self.user) {
                    self.ctx.sm_sessions.insert(
                        id.clone(),
                        SmEntry {
                            user: user.clone(),
                            c2s: self.myself.clone(),
                        },
                    );
                    enabled.set_attr("id", id.as_str());
                    enabled.set_attr("resume", "true");
                    enabled.set_attr("max", timeout.as_secs().to_string());
                }
                *self.sm_lock() = Some(Sm {
                    id,
                    timeout,
                    handled: 0,
                    sent: 0,
                    unacked: VecDeque::new(),
                    since_request: 0,
                    overflowed: false,
                });
                tracing::debug!(conn = self.conn_id, resume, "stream management enabled");
                self.write_element(&enabled);
            }
            "r" => {
                let h = self.sm_lock().as_ref().map(|s| s.handled);
                if let Some(h) = h {
                    self.write_element(&Element::new("a", ns::SM).with_attr("h", h.to_string()));
                }
            }
            "a" => {
                let Some(h) = el.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
                    return self
                        .stream_error(StreamError::InvalidXml, Some("<a/> without a valid h"));
                };
                return self.client_ack(h);
            }
            "resume" => self.sm_failed("unexpected-request"),
            _ => {}
        }
        Flow::Continue
    }

    /// The client acknowledged `h` stanzas (XEP-0198 §4); more than we sent
    /// ends the stream (§4, handled-count-too-high).
    fn client_ack(&mut self, h: u32) -> Flow {
        let too_high = {
            let mut guard = self.sm_lock();
            match guard.as_mut() {
                Some(sm) => sm.ack(h).err().map(|()| sm.sent),
                None => None,
            }
        };
        match too_high {
            None => Flow::Continue,
            Some(sent) => self.stream_error_with(
                StreamError::UndefinedCondition,
                Some("acknowledged more stanzas than were sent"),
                Some(
                    Element::new("handled-count-too-high", ns::SM)
                        .with_attr("h", h.to_string())
                        .with_attr("send-count", sent.to_string()),
                ),
            ),
        }
    }

    /// XEP-0198 §5: takes over a detached (or stale) session of the same
    /// account, then resends what its client did not acknowledge.
    async fn resume(&mut self, el: &Element) -> Flow {
        let Some(user) = self.user.clone() else {
            return Flow::Continue;
        };
        let Some(h) = el.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
            self.sm_failed("bad-request");
            return Flow::Continue;
        };
        let previd = el.attr("previd").unwrap_or_default().to_owned();
        let entry = self
            .ctx
            .sm_sessions
            .get(&previd)
            .map(|e| e.clone())
            .filter(|e| e.user == user);
        let Some(entry) = entry else {
            tracing::info!(conn = self.conn_id, jid = %user, "resumption of an unknown session");
            self.sm_failed("item-not-found");
            return Flow::Continue;
        };
        let taken = entry
            .c2s
            .call(
                |reply| C2sMsg::Takeover {
                    user: user.clone(),
                    to: Box::new((self.myself.clone(), self.inbox.clone())),
                    conn_id: self.conn_id,
                    reply,
                },
                Some(std::time::Duration::from_secs(5)),
            )
            .await;
        let Ok(ractor::rpc::CallResult::Success(Some(handover))) = taken else {
            self.sm_failed("item-not-found");
            return Flow::Continue;
        };
        let Handover {
            full,
            mut sm,
            directed,
            csi,
        } = *handover;
        self.ctx.sm_sessions.insert(
            previd.clone(),
            SmEntry {
                user,
                c2s: self.myself.clone(),
            },
        );
        tracing::info!(conn = self.conn_id, jid = %full, unacked = sm.unacked.len(), "session resumed");
        self.full = Some(full);
        self.directed = directed;
        self.csi = csi;
        self.start_keepalive();
        let too_high = sm.ack(h).is_err();
        let sent = sm.sent;
        let handled = sm.handled;
        let resend: Vec<Element> = sm.unacked.iter().cloned().collect();
        sm.since_request = 0;
        *self.sm_lock() = Some(sm);
        if too_high {
            return self.stream_error_with(
                StreamError::UndefinedCondition,
                Some("acknowledged more stanzas than were sent"),
                Some(
                    Element::new("handled-count-too-high", ns::SM)
                        .with_attr("h", h.to_string())
                        .with_attr("send-count", sent.to_string()),
                ),
            );
        }
        self.write_element(
            &Element::new("resumed", ns::SM)
                .with_attr("previd", previd)
                .with_attr("h", handled.to_string()),
        );
        let any = !resend.is_empty();
        for stanza in &resend {
            self.write_element(stanza);
        }
        if any {
            self.send(b"<r xmlns='urn:xmpp:sm:3'/>".to_vec());
        }
        Flow::Continue
    }

    /// The resuming connection's c2s asks for this session (XEP-0198 §5).
    /// The session table entry moves to it, this actor forwards what still
    /// reaches it and stops, which ends this connection's group.
    fn hand_over(
        &mut self,
        user: &BareJid,
        to: (ActorRef<C2sMsg>, Arc<Inbox>),
        conn_id: u64,
    ) -> Option<Box<Handover>> {
        if self.closing || self.moved_to.is_some() {
            return None;
        }
        let full = self.full.clone().filter(|f| f.bare() == *user)?;
        if !self.resumable() {
            return None;
        }
        let old = self
            .ctx
            .router
            .sessions
            .get(&full)
            .filter(|s| s.conn_id == self.conn_id)?;
        let sink = Box::new(Sink {
            c2s: to.0.clone(),
            inbox: to.1.clone(),
        });
        let session = Arc::new(old.moved(conn_id, sink));
        if !self.ctx.router.sessions.swap(session, self.conn_id) {
            return None;
        }
        let sm = self.sm_lock().take()?;
        // Nothing of the session is left here for Drop to clean up.
        self.full = None;
        self.moved_to = Some(to);
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
        tracing::info!(conn = self.conn_id, jid = %full, to_conn = conn_id, "session handed over for resumption");
        Some(Box::new(Handover {
            full,
            sm,
            directed: std::mem::take(&mut self.directed),
            csi: std::mem::take(&mut self.csi),
        }))
    }

    /// The resuming c2s gave up waiting for the handover (or is gone): the
    /// session stays here, and the table entry comes back if it can.
    fn take_back(&mut self, handover: Handover, conn_id: u64) {
        let Handover {
            full,
            sm,
            directed,
            csi,
        } = handover;
        let moved = self
            .ctx
            .router
            .sessions
            .get(&full)
            .filter(|s| s.conn_id == conn_id);
        if let Some(s) = moved {
            let back = Arc::new(s.moved(self.conn_id, self.sink()));
            self.ctx.router.sessions.swap(back, conn_id);
        }
        tracing::warn!(conn = self.conn_id, jid = %full, "resumption abandoned by the new connection; the session stays");
        self.full = Some(full);
        *self.sm_lock() = Some(sm);
        self.directed = directed;
        self.csi = csi;
        self.moved_to = None;
        if !self.detached {
            self.start_keepalive();
        }
    }

    /// A stanza from the bound client.
    async fn on_stanza(&mut self, mut el: Element) -> Flow {
        let Some(full) = self.full.clone() else {
            return Flow::Continue;
        };
        if el.ns() == ns::SM {
            return self.on_sm(&el);
        }
        if el.ns() == ns::CSI {
            // XEP-0352 nonzas: <active/> and <inactive/>.
            match el.name() {
                "inactive" => self.csi.inactive = true,
                "active" => {
                    self.csi.inactive = false;
                    self.flush_held();
                }
                _ => {}
            }
            return Flow::Continue;
        }
        let Some(kind) = StanzaKind::of(&el) else {
            // §8.2-8.3: only message, presence and iq exist in jabber:client.
            self.ctx.metrics.stanzas_in.inc("other");
            return self.stream_error(StreamError::UnsupportedStanzaType, Some(el.name()));
        };
        self.ctx.metrics.stanzas_in.inc(kind.as_str());
        if let Some(sm) = self.sm_lock().as_mut() {
            sm.handled = sm.handled.wrapping_add(1);
        }
        // §8.1.2.1: the server stamps 'from'; a client may only claim itself.
        if let Some(claimed) = el.attr("from") {
            let ok = claimed
                .parse::<chorus_jid::Jid>()
                .is_ok_and(|j| j == *full.as_jid() || j == *full.bare().as_jid());
            if !ok {
                return self.stream_error(StreamError::InvalidFrom, None);
            }
        }
        el.set_attr("from", full.to_string());
        if kind == StanzaKind::Iq {
            // §8.2.3: id and type required, exactly one payload for get/set.
            // Violations are stanza errors, `bad-request` (§8.3.3.1: "does
            // not conform to the appropriate schema"), and the stream goes
            // on; a reply to an IQ without id carries no id either. A
            // `result` or `error` is never answered (`error_reply`).
            let typ = IqType::of(&el);
            let payloads = el.children().count();
            let bad = el.attr("id").is_none()
                || typ.is_none()
                || (typ.is_some_and(IqType::is_request) && payloads != 1);
            if bad {
                self.iq_error(&el, StanzaErrorCondition::BadRequest);
                return Flow::Continue;
            }
        }
        if kind != StanzaKind::Presence && el.attr("to").is_none() {
            // §8.1.1.1: no 'to' means the account itself (bare JID).
            el.set_attr("to", full.bare().to_string());
        }
        // Features see what the client sent (carbons, avatar hashes).
        let ctx = self.ctx.clone();
        ctx.modules
            .user_sent(&ctx.router, &full, self.conn_id, &mut el)
            .await;
        if kind == StanzaKind::Presence {
            if el.attr("to").is_none() {
                self.on_broadcast_presence(&full, &el).await;
                return Flow::Continue;
            }
            if PresenceType::of(&el).is_none() && el.attr("type").is_some() {
                if let Some(e) =
                    error_reply(&el, &StanzaError::new(StanzaErrorCondition::BadRequest))
                {
                    self.send_element(&e);
                }
                return Flow::Continue;
            }
            self.on_addressed_presence(&full, el).await;
            return Flow::Continue;
        }
        if let Outcome::Reply(e) = self.ctx.router.route(el).await {
            self.reply(e);
        }
        Flow::Continue
    }

    /// An answer the router handed back for our client (an error, or the
    /// server's answer to an IQ): written at once.
    fn reply(&mut self, answer: Element) {
        self.send_element(&answer);
    }

    /// Handles every stanza waiting in the inbox.
    fn take_routed(&mut self) {
        for stanza in self.inbox.take() {
            self.on_routed(stanza);
        }
    }

    /// Presence without 'to' is broadcast presence (RFC 6121 §4.2-§4.5): it
    /// sets availability and priority, which message routing to the bare JID
    /// depends on, and the router broadcasts it from the roster.
    async fn on_broadcast_presence(&mut self, full: &FullJid, el: &Element) {
        let Some(session) = self.ctx.router.sessions.get(full) else {
            return;
        };
        match PresenceType::of(el) {
            Some(PresenceType::Available) => {
                // §4.7.2.3: priority is an integer in -128..=127, default 0.
                let priority = el
                    .get_child("priority", ns::JABBER_CLIENT)
                    .and_then(|p| p.text().trim().parse::<i8>().ok())
                    .unwrap_or(0);
                let initial = !session.available();
                let mut kept = el.clone();
                kept.remove_attr("to");
                session.set_last_presence(Some(kept));
                session.set_presence(true, priority);
                // §4.2-§4.4: to subscribers and own resources; probes first time.
                self.ctx.router.broadcast(full, el, initial).await;
                // XEP-0160 §3: stored messages go out on the first available
                // presence with a non-negative priority (RFC 6121 §8.5.2.2.1).
                if initial && priority >= 0 {
                    self.deliver_stored(full).await;
                }
            }
            Some(PresenceType::Unavailable) => {
                let was = session.available();
                session.set_presence(false, 0);
                session.set_last_presence(None);
                if was {
                    self.ctx.router.broadcast(full, el, false).await;
                }
                self.end_directed(full).await;
            }
            // An undefined type (§4.7.1).
            None => {
                if let Some(e) =
                    error_reply(el, &StanzaError::new(StanzaErrorCondition::BadRequest))
                {
                    self.send_element(&e);
                }
            }
            // Subscription states and probes need an addressee; nothing to do.
            Some(_) => {}
        }
    }

    /// §4.6.3: entities that got directed presence get unavailable too.
    async fn end_directed(&mut self, full: &FullJid) {
        for to in std::mem::take(&mut self.directed) {
            let p = Element::new("presence", ns::JABBER_CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", full.to_string())
                .with_attr("to", to);
            let _ = self.ctx.router.route(p).await;
        }
    }

    /// Presence with a 'to': subscription management (RFC 6121 §3) or
    /// directed presence (§4.6).
    async fn on_addressed_presence(&mut self, full: &FullJid, el: Element) {
        let kind = PresenceType::of(&el);
        let to = el.attr("to").unwrap_or_default().to_owned();
        match kind {
            Some(
                k @ (PresenceType::Subscribe
                | PresenceType::Subscribed
                | PresenceType::Unsubscribe
                | PresenceType::Unsubscribed),
            ) => {
                let contact = match to.parse::<chorus_jid::Jid>() {
                    Ok(j) if j.node().is_some() => j.bare(),
                    Ok(_) => return,
                    Err(e) => {
                        if let Some(r) = error_reply(&el, &StanzaError::from(&e)) {
                            self.send_element(&r);
                        }
                        return;
                    }
                };
                if let Some(e) = self
                    .ctx
                    .router
                    .subscription(&full.bare(), &contact, k, el)
                    .await
                {
                    self.reply(e);
                }
            }
            // §4.3: probes are the server's business, not the client's.
            Some(PresenceType::Probe) => {}
            _ => {
                match kind {
                    Some(PresenceType::Available) => {
                        self.directed.insert(to);
                    }
                    Some(PresenceType::Unavailable) => {
                        self.directed.remove(&to);
                    }
                    _ => {}
                }
                if let Outcome::Reply(e) = self.ctx.router.route(el).await {
                    self.reply(e);
                }
            }
        }
    }

    /// Delivers a routed stanza, holding back presence while the client
    /// says it is inactive (XEP-0352 §5): only the latest presence per
    /// sender is kept, and anything else (messages, IQs) goes out at once,
    /// after the held presence so that order is kept.
    fn deliver(&mut self, stanza: Element) {
        if let Some(full) = &self.full {
            self.ctx
                .modules
                .user_received(&self.ctx.router, full, self.conn_id, &stanza);
        }
        if self.csi.inactive && stanza.name() == "presence" {
            let from = stanza.attr("from").unwrap_or_default().to_owned();
            if let Some(slot) = self.csi.held.iter_mut().find(|(f, _)| *f == from) {
                slot.1 = stanza;
            } else if self.csi.held.len() < CSI_MAX_HELD {
                self.csi.held.push((from, stanza));
                self.ctx
                    .metrics
                    .csi_held
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                // Bounded: past the cap, flush rather than grow.
                self.flush_held();
                self.send_element(&stanza);
            }
            return;
        }
        if !self.csi.held.is_empty() && stanza.name() != "presence" {
            self.flush_held();
        }
        self.send_element(&stanza);
    }

    fn flush_held(&mut self) {
        let held = std::mem::take(&mut self.csi.held);
        self.ctx
            .metrics
            .csi_flushed
            .fetch_add(held.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for (_, p) in held {
            self.send_element(&p);
        }
    }

    /// XEP-0199 §4.1: pings a client that has been silent for the ping
    /// interval; closes the session when the answer does not come in time.
    fn keepalive_tick(&mut self) {
        let (Some(full), false) = (&self.full, self.closing || self.detached) else {
            return;
        };
        if let Some(sent) = self.ping_sent {
            if sent.elapsed() >= self.ctx.ping_timeout {
                if self.resumable() {
                    // XEP-0198: a dead connection, not a dead session.
                    self.detach();
                } else {
                    self.stream_error(StreamError::ConnectionTimeout, Some("no answer to ping"));
                }
            }
            return;
        }
        if self.last_inbound.elapsed() >= self.ctx.ping_interval {
            let ping = Element::new("iq", ns::JABBER_CLIENT)
                .with_attr("type", "get")
                .with_attr("id", format!("keepalive-{}", self.conn_id))
                .with_attr("from", self.domain.clone().unwrap_or_default())
                .with_attr("to", full.to_string())
                .with_child(Element::new("ping", ns::PING));
            self.send_element(&ping);
            self.ping_sent = Some(std::time::Instant::now());
        }
    }

    /// The session can take what was kept for it (XEP-0160 offline
    /// messages): the modules write it through this session.
    async fn deliver_stored(&mut self, full: &FullJid) {
        let ctx = self.ctx.clone();
        ctx.modules
            .available(&ctx.router, full, self.conn_id, self)
            .await;
    }

    async fn on_element(&mut self, el: Element) -> Flow {
        if self.user.is_none() {
            return self.on_preauth(&el).await;
        }
        if self.full.is_none() {
            return self.on_unbound(&el).await;
        }
        self.on_stanza(el).await
    }
}

impl Actor for C2sActor {
    type Msg = C2sMsg;
    type State = C2sState;
    type Arguments = C2sArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: C2sArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_after(args.ctx.header_timeout, || C2sMsg::HeaderTimeout);
        Ok(C2sState {
            conn_id: args.conn_id,
            myself,
            socket: args.socket,
            ctx: args.ctx,
            header_sent: false,
            header_received: false,
            closing: false,
            domain: None,
            tls: None,
            sasl: None,
            plus_advertised: false,
            auth_failures: 0,
            peer: args.peer,
            auth_mech: "none",
            user: None,
            full: None,
            directed: Default::default(),
            csi: Csi::default(),
            last_inbound: std::time::Instant::now(),
            ping_sent: None,
            keepalive: None,
            replaced: false,
            sm: Mutex::new(None),
            transport: Vec::new(),
            detached: false,
            detach_epoch: 0,
            inbox: Arc::default(),
            moved_to: None,
            ending: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            C2sMsg::Incoming(ev, reply) => {
                let flow = if state.closing || state.detached || state.moved_to.is_some() {
                    Flow::Stop
                } else {
                    match *ev {
                        Ok(StreamEvent::Header(h)) => {
                            // A restart after TLS or SASL re-sends our header.
                            state.header_sent = false;
                            state.on_header(&h)
                        }
                        Ok(StreamEvent::Element(el)) => {
                            // Any stanza proves the client is alive (XEP-0199 §4.1).
                            state.last_inbound = std::time::Instant::now();
                            state.ping_sent = None;
                            // Boxed: the stanza path (SASL, storage, routing,
                            // modules) is a large future, and inlined it
                            // would size every idle c2s actor's task.
                            Box::pin(state.on_element(el)).await
                        }
                        Ok(StreamEvent::End) => {
                            state.close();
                            Flow::Stop
                        }
                        Err(e) => state.stream_error(StreamError::from(e.kind), Some(&e.detail)),
                    }
                };
                let flow = state.check_overflow().unwrap_or(flow);
                let _ = reply.send(flow);
                return Ok(());
            }
            C2sMsg::TlsEstablished(bindings, reply) => {
                state.tls = Some(*bindings);
                state.header_sent = false;
                let _ = reply.send(());
            }
            C2sMsg::Routed => state.take_routed(),
            C2sMsg::Replaced => {
                state.replaced = true;
                state.stream_error(StreamError::Conflict, Some("replaced by a new connection"));
            }
            C2sMsg::PeerClosed => {
                if state.resumable() {
                    state.transport_down();
                } else {
                    state.closing = true;
                    state.socket.close();
                }
            }
            C2sMsg::Keepalive => state.keepalive_tick(),
            C2sMsg::Shutdown => {
                state.stream_error(StreamError::SystemShutdown, None);
            }
            C2sMsg::FetchOffline => {
                // Only a session that already had its initial presence
                // (RFC 6121 §8.5.2.2.1): the router asks available ones.
                let available = state.full.as_ref().is_some_and(|f| {
                    state
                        .ctx
                        .router
                        .sessions
                        .get(f)
                        .is_some_and(|s| s.conn_id == state.conn_id && s.available())
                });
                if available && !state.closing && state.moved_to.is_none() {
                    if let Some(full) = state.full.clone() {
                        Box::pin(state.deliver_stored(&full)).await;
                    }
                }
            }
            C2sMsg::Kick(reason) => {
                // As ejabberd's kick_session: a policy-violation with the reason.
                tracing::info!(conn = state.conn_id, reason = %reason, "kicked by operator");
                // What was routed before the kick (the answer to an account
                // removal, XEP-0077 §3.2) still goes out first.
                state.take_routed();
                state.stream_error(StreamError::PolicyViolation, Some(&reason));
            }
            C2sMsg::HeaderTimeout => {
                // One deadline from accept to authentication, never reset by
                // input: a slowloris that sends a header and then trickles a
                // byte at a time would otherwise hold its connection forever
                // (the keepalive only starts at bind). ejabberd's
                // `negotiation_timeout` covers the same span.
                if !state.header_received || state.user.is_none() {
                    let text = if state.header_received {
                        "authentication not completed in time"
                    } else {
                        "no stream header in time"
                    };
                    state.stream_error(StreamError::ConnectionTimeout, Some(text));
                }
            }
            C2sMsg::Monitor(members) => {
                let me = state.myself.get_cell();
                for m in &members {
                    me.monitor(m.clone());
                }
                let dead = members.iter().any(|m| {
                    matches!(m.get_status(), ActorStatus::Stopping | ActorStatus::Stopped)
                });
                state.transport = members;
                if dead {
                    state.transport_down();
                }
            }
            C2sMsg::Takeover {
                user,
                to,
                conn_id,
                reply,
            } => {
                let handover = state.hand_over(&user, *to, conn_id);
                let handed = handover.is_some();
                match reply.send(handover) {
                    Ok(()) if handed => {
                        // A connection still open from our side is superseded.
                        state.socket.close();
                        state.end();
                    }
                    Err(ractor::MessagingErr::SendErr(Some(h))) => state.take_back(*h, conn_id),
                    _ => {}
                }
            }
            C2sMsg::ResumeTimeout(epoch) => {
                if state.detached && epoch == state.detach_epoch && state.moved_to.is_none() {
                    tracing::info!(conn = state.conn_id, jid = ?state.full.as_ref().map(|j| j.to_string()), "resume timeout; session ends");
                    state.end();
                }
            }
        }
        state.check_overflow();
        Ok(())
    }

    /// Socket and receiver are monitored (not linked: the group's
    /// supervisor is their parent); their exit is the transport going.
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorTerminated(cell, ..)
        | SupervisionEvent::ActorFailed(cell, _) = &event
        {
            if state.transport.iter().any(|m| m.get_id() == cell.get_id()) {
                state.transport_down();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(sent: u32, unacked: usize) -> Sm {
        Sm {
            id: None,
            timeout: std::time::Duration::from_secs(1),
            handled: 0,
            sent,
            unacked: (0..unacked)
                .map(|i| Element::new("message", ns::JABBER_CLIENT).with_attr("id", i.to_string()))
                .collect(),
            since_request: 0,
            overflowed: false,
        }
    }

    #[test]
    fn acks_drop_what_they_cover_and_refuse_more_than_was_sent() {
        let mut s = sm(10, 4);
        assert!(s.ack(8).is_ok());
        assert_eq!(s.unacked.len(), 2);
        assert_eq!(s.unacked[0].attr("id"), Some("2"));
        // A stale ack changes nothing.
        assert!(s.ack(7).is_ok());
        assert_eq!(s.unacked.len(), 2);
        assert!(s.ack(11).is_err());
        assert!(s.ack(10).is_ok());
        assert!(s.unacked.is_empty());
    }

    #[test]
    fn acks_count_modulo_two_to_the_32() {
        // Three stanzas sent across the wrap: u32::MAX, 0, 1.
        let mut s = sm(1, 3);
        assert!(s.ack(u32::MAX).is_ok());
        assert_eq!(s.unacked.len(), 2);
        assert!(s.ack(0).is_ok());
        assert_eq!(s.unacked.len(), 1);
        assert!(s.ack(2).is_err());
        assert!(s.ack(1).is_ok());
        assert!(s.unacked.is_empty());
    }
}
