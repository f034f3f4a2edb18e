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
//!
//! The state machine is split by phase, one file each: `negotiation.rs`
//! (stream headers, features, STARTTLS), `sasl.rs`, `bind.rs`,
//! `session.rs` (the bound stream: stanzas in and out), and the two
//! stream-level XEPs, `sm.rs` (XEP-0198) and `csi.rs` (XEP-0352); routed
//! stanzas wait in the `inbox.rs` queue.

mod bind;
mod csi;
mod inbox;
mod negotiation;
mod sasl;
mod sasl2;
mod session;
mod sm;

pub use csi::ClientStateIndication;
use csi::Csi;
use inbox::forward;
pub use inbox::Inbox;
pub use negotiation::Stream;
pub use sasl::Sasl;
use sasl::SaslState;
pub(crate) use sasl2::fast_key;
pub use sasl2::Sasl2;
use sasl2::Sasl2Request;
pub use sm::Handover;
pub(crate) use sm::SmEntry;
pub use sm::StreamManagement;
use sm::{Resumption, Sm, SM_REQUEST_EVERY};

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
use chorus_xml::{Element, StreamEvent, StreamHeader, XmlError};
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent,
};

use crate::conn::C2sContext;
use crate::framing::{Framing, OutHeader};
use crate::receiver::Flow;
use crate::socket::SocketHandle;
use crate::tls::ChannelBindings;

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
    /// The keepalive heard nothing from the client (XEP-0199 §4.1).
    ConnectionLost,
    /// An operator ends the session, with a reason for the client.
    Kick(Box<String>),
    /// The account was removed (XEP-0077 §3.2).
    AccountRemoved,
    /// Stanzas have waited unacknowledged long enough: ask for an ack
    /// (XEP-0198).
    AckRequestDue,
    /// A close waiting for the client's acknowledgement waited long enough.
    CloseNow,
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
    /// How the stream is framed on this connection.
    pub framing: Arc<dyn Framing>,
    /// TLS already up below the stream (an `https` WebSocket, or one a
    /// trusted proxy terminated): the stream starts encrypted.
    pub tls: Option<ChannelBindings>,
    /// The client's address has `c2s.max_connections_per_ip` connections
    /// already: the stream is refused at its header.
    pub over_limit: bool,
}

pub struct C2sState {
    /// The negotiation deadline's timer task, stopped once the client has
    /// authenticated so that an idle session does not hold it.
    negotiation_timer: Option<NegotiationTimer>,
    conn_id: u64,
    /// How the stream is framed on this connection (the transport seam).
    framing: Arc<dyn Framing>,
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
    /// The XEP-0388 `<authenticate/>` of the exchange under way, when it
    /// is a SASL2 one: what to do once it succeeds (Bind 2, resumption,
    /// FAST tokens).
    sasl2: Option<Box<Sasl2Request>>,
    /// Whether the features we sent offered a -PLUS mechanism (SCRAM's
    /// downgrade check needs to know).
    plus_advertised: bool,
    auth_failures: u32,
    peer: Option<std::net::IpAddr>,
    /// Past `c2s.max_connections_per_ip`: refused at the header.
    over_limit: bool,
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
    /// The bound session's entry in the table: every element from the
    /// client touches it, which is how the keepalive knows it is alive.
    session: Option<Arc<Session>>,
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
    /// A close of the server's own, waiting for the client to acknowledge
    /// what it was sent (XEP-0198; `sm.rs`).
    pending_close: Option<(StreamError, Option<String>)>,
}

type NegotiationTimer = ractor::concurrency::JoinHandle<Result<(), ractor::MessagingErr<C2sMsg>>>;

impl C2sState {
    /// Ends the negotiation deadline: authenticated in time, or gone.
    fn stop_negotiation_timer(&mut self) {
        if let Some(timer) = self.negotiation_timer.take() {
            timer.abort();
        }
    }
}

impl Drop for C2sState {
    /// Runs on every exit, kill included: ractor skips `post_stop` for a
    /// killed actor, so the session table is cleaned here.
    fn drop(&mut self) {
        self.stop_negotiation_timer();
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
                let storage = self.ctx.storage.clone();
                rt.spawn(async move {
                    let p = Element::new("presence", ns::JABBER_CLIENT)
                        .with_attr("type", "unavailable")
                        .with_attr("from", full.to_string());
                    let directed: Vec<String> = if was_available {
                        router.broadcast(&full, &p, false).await;
                        session::beyond_broadcast(&storage, &full, directed).await
                    } else {
                        directed.into_iter().collect()
                    };
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

    fn account_removed(&self) {
        let _ = self.c2s.cast(C2sMsg::AccountRemoved);
    }

    fn connection_lost(&self) {
        let _ = self.c2s.cast(C2sMsg::ConnectionLost);
    }

    fn offline_waiting(&self) {
        let _ = self.c2s.cast(C2sMsg::FetchOffline);
    }
}

impl C2sState {
    /// How routing reaches this actor.
    fn sink(&self) -> Box<Sink> {
        Box::new(Sink {
            c2s: self.myself.clone(),
            inbox: self.inbox.clone(),
        })
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
                if sm.unacked.len() > self.ctx.config.c2s.sm_max_unacked {
                    // Kept all the same: the session ends, and Drop reroutes it.
                    sm.overflowed = true;
                    return;
                }
                sm.since_request += 1;
                if sm.since_request >= SM_REQUEST_EVERY {
                    sm.since_request = 0;
                    request = true;
                } else if !sm.request_armed {
                    // Fewer than SM_REQUEST_EVERY: asked for after a while.
                    sm.request_armed = true;
                    self.myself
                        .send_after(self.ctx.config.c2s.sm_request_ack_after(), || {
                            C2sMsg::AckRequestDue
                        });
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
        self.framing.element(el, &mut out);
        if let Some(kind) = StanzaKind::of(el) {
            self.ctx.metrics.stanzas_out.inc(kind.as_str());
            self.ctx.metrics.observe_size(out.len());
        }
        self.send(out);
    }

    fn send_header(&mut self, from: &str) {
        let mut header = Vec::with_capacity(192);
        self.framing.header(
            &OutHeader {
                from,
                id: &random_token(),
                to: None,
            },
            &mut header,
        );
        self.send(header);
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
        let mut footer = Vec::new();
        self.framing.footer(&mut footer);
        self.send(footer);
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
        let negotiation_timer = myself
            .send_after(args.ctx.config.c2s.negotiation_timeout(), || {
                C2sMsg::HeaderTimeout
            });
        Ok(C2sState {
            negotiation_timer: Some(negotiation_timer),
            conn_id: args.conn_id,
            framing: args.framing,
            myself,
            socket: args.socket,
            ctx: args.ctx,
            header_sent: false,
            header_received: false,
            closing: false,
            domain: None,
            tls: args.tls,
            sasl: None,
            sasl2: None,
            plus_advertised: false,
            auth_failures: 0,
            peer: args.peer,
            over_limit: args.over_limit,
            auth_mech: "none",
            user: None,
            full: None,
            directed: Default::default(),
            csi: Csi::default(),
            session: None,
            replaced: false,
            sm: Mutex::new(None),
            transport: Vec::new(),
            detached: false,
            detach_epoch: 0,
            inbox: Arc::default(),
            moved_to: None,
            ending: false,
            pending_close: None,
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
                        // Only a framing whose header is an element (RFC
                        // 7395 <open/>) lets one arrive first.
                        Ok(StreamEvent::Element(_)) if !state.header_received => state
                            .stream_error(
                                StreamError::InvalidNamespace,
                                Some("expected the stream's opening element first"),
                            ),
                        Ok(StreamEvent::Element(el)) => {
                            // Any stanza proves the client is alive (XEP-0199 §4.1).
                            if let Some(s) = &state.session {
                                s.touch();
                            }
                            // Boxed: the stanza path (SASL, storage, routing,
                            // modules) is a large future, and inlined it
                            // would size every idle c2s actor's task.
                            Box::pin(state.on_element(el)).await
                        }
                        Ok(StreamEvent::End) => {
                            // RFC 6120 §4.4: the client closed; so do we,
                            // with XEP-0198's last acknowledgement first.
                            state.last_ack();
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
                state.close_after_ack(
                    StreamError::Conflict,
                    Some("replaced by a new connection".to_owned()),
                );
            }
            C2sMsg::PeerClosed => {
                if state.resumable() {
                    state.transport_down();
                } else {
                    state.closing = true;
                    state.socket.close();
                }
            }
            C2sMsg::ConnectionLost => state.connection_lost(),
            C2sMsg::Shutdown => {
                state.close_after_ack(StreamError::SystemShutdown, None);
            }
            C2sMsg::AckRequestDue => state.ack_request_due(),
            C2sMsg::CloseNow => {
                if let Some((err, text)) = state.pending_close.take() {
                    state.close_now(err, text);
                }
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
                state.close_after_ack(StreamError::PolicyViolation, Some(*reason));
            }
            C2sMsg::AccountRemoved => {
                // XEP-0077 §3.2: "the server SHOULD then return a
                // <not-authorized/> stream error and terminate all active
                // sessions", after the answer to the removal (already routed).
                state.take_routed();
                state.close_after_ack(
                    StreamError::NotAuthorized,
                    Some("account removed".to_owned()),
                );
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
