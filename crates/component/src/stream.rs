//! The `component` actor: the stream state machine of one external
//! component's connection (XEP-0114 §3).
//!
//! 1. The component opens `<stream:stream xmlns='jabber:component:accept'
//!    to='irc.example.org'>`; a `to` that no `[[components]]` entry names
//!    gets `host-unknown`. The server answers with a header from that
//!    domain and a fresh random stream id (§3, "Stream Header").
//! 2. The component sends `<handshake>` with the lowercase hex SHA-1 of the
//!    stream id followed by the secret (§3, "Handshake"); it is compared
//!    in constant time. Success is an empty `<handshake/>`; failure, or
//!    anything else first, is `not-authorized`, and a handshake not
//!    completed within `c2s.negotiation_timeout_secs` is
//!    `connection-timeout`. A second connection for a domain that is
//!    connected gets `conflict` (the newcomer, as ejabberd does).
//! 3. From then on the component sends stanzas (§3, "Stanzas"): each must
//!    have a `from` in the component's domain or a subdomain of it
//!    (`invalid-from` otherwise) and a `to` (`improper-addressing`
//!    otherwise). They are routed as they are: a component is trusted for
//!    its domain, so nothing is stamped. Errors the router hands back are
//!    written to the component.
//!
//! Every failure ends the stream with its RFC 6120 §4.9.3 condition
//! ([`StreamFailure`] maps each to one), our header first if none was
//! sent, then `</stream:stream>` and the close.

use std::sync::Arc;

use chorus_c2s::framing::{Framing, OutHeader};
use chorus_c2s::receiver::{Flow, StreamOwner};
use chorus_c2s::socket::SocketHandle;
use chorus_c2s::tls::ChannelBindings;
use chorus_c2s::C2sContext;
use chorus_jid::Jid;
use chorus_proto::{ns, StreamError};
use chorus_router::Outcome;
use chorus_supervisor::Registry;
use chorus_xml::{Element, StreamEvent, StreamHeader, XmlError};
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent,
};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use crate::route::{renamespace, AttachError, Attached, ComponentDomain, ComponentService};
use crate::NS_COMPONENT;

pub enum ComponentMsg {
    /// One parser event from the receiver; the reply paces the receiver.
    Incoming(Box<Result<StreamEvent, XmlError>>, RpcReplyPort<Flow>),
    /// Never sent (no STARTTLS on a component stream); answered all the
    /// same, as the receiver waits for it.
    TlsEstablished(Box<ChannelBindings>, RpcReplyPort<()>),
    /// The peer closed the connection, or reading failed.
    PeerClosed,
    /// The handshake deadline passed.
    HandshakeTimeout,
    /// Watch these members of the connection (socket, receiver): their
    /// exit ends the stream.
    Monitor(Vec<ActorCell>),
    /// The server is shutting down (RFC 6120 §4.9.3.17).
    Shutdown,
}

impl StreamOwner for ComponentMsg {
    fn incoming(ev: Box<Result<StreamEvent, XmlError>>, reply: RpcReplyPort<Flow>) -> Self {
        ComponentMsg::Incoming(ev, reply)
    }
    fn tls_established(bindings: Box<ChannelBindings>, reply: RpcReplyPort<()>) -> Self {
        ComponentMsg::TlsEstablished(bindings, reply)
    }
    fn peer_closed() -> Self {
        ComponentMsg::PeerClosed
    }
}

/// Tells every component stream of the server rooted at `root` that the
/// server shuts down: each ends with `system-shutdown`.
pub fn shutdown_all(registry: &Registry, root: &str) -> usize {
    let paths = registry.paths_matching(&format!("{root}/listeners/*/conns/*/component"));
    for path in &paths {
        if let Some(cell) = registry.lookup(path) {
            let r: ActorRef<ComponentMsg> = cell.into();
            let _ = r.cast(ComponentMsg::Shutdown);
        }
    }
    paths.len()
}

/// Why a component stream ends; each is one RFC 6120 §4.9.3 condition.
#[derive(Debug, thiserror::Error)]
pub enum StreamFailure {
    #[error("no component is configured for this domain")]
    HostUnknown,
    #[error("{0}")]
    InvalidNamespace(&'static str),
    #[error("handshake failed")]
    HandshakeFailed,
    #[error("send the handshake first")]
    HandshakeFirst,
    #[error("another connection serves this component domain")]
    Conflict,
    #[error("'from' is not in the component's domain")]
    InvalidFrom,
    #[error("a stanza needs a 'to'")]
    ImproperAddressing,
    #[error("only message, presence and iq")]
    UnsupportedStanzaType,
    #[error("a second stream header")]
    SecondHeader,
    #[error("handshake not completed in time")]
    Timeout,
    #[error("the server is shutting down")]
    Shutdown,
    #[error("no randomness for the stream id")]
    NoRandomness,
    #[error("{}", .0.detail)]
    Xml(XmlError),
}

impl StreamFailure {
    /// The stream error condition (RFC 6120 §4.9.3).
    pub fn condition(&self) -> StreamError {
        match self {
            StreamFailure::HostUnknown => StreamError::HostUnknown,
            StreamFailure::InvalidNamespace(_) => StreamError::InvalidNamespace,
            StreamFailure::HandshakeFailed | StreamFailure::HandshakeFirst => {
                StreamError::NotAuthorized
            }
            StreamFailure::Conflict => StreamError::Conflict,
            StreamFailure::InvalidFrom => StreamError::InvalidFrom,
            StreamFailure::ImproperAddressing => StreamError::ImproperAddressing,
            StreamFailure::UnsupportedStanzaType => StreamError::UnsupportedStanzaType,
            StreamFailure::SecondHeader => StreamError::BadFormat,
            StreamFailure::Timeout => StreamError::ConnectionTimeout,
            StreamFailure::Shutdown => StreamError::SystemShutdown,
            StreamFailure::NoRandomness => StreamError::InternalServerError,
            StreamFailure::Xml(e) => StreamError::from(e.kind),
        }
    }
}

pub struct ComponentActor;

pub struct ComponentArgs {
    /// The component's address, for the logs.
    pub peer: Option<std::net::IpAddr>,
    pub conn_id: u64,
    pub socket: SocketHandle,
    pub ctx: Arc<C2sContext>,
    pub framing: Arc<dyn Framing>,
}

/// Where the stream is.
enum Phase {
    /// Waiting for the component's stream header.
    Header,
    /// Header answered with `stream_id`: waiting for `<handshake>`.
    Handshake {
        component: Arc<ComponentDomain>,
        stream_id: String,
    },
    /// Authenticated: the component serves its domain.
    Ready(Arc<ComponentDomain>),
}

pub struct ComponentState {
    conn_id: u64,
    peer: Option<std::net::IpAddr>,
    ctx: Arc<C2sContext>,
    socket: SocketHandle,
    framing: Arc<dyn Framing>,
    myself: ActorRef<ComponentMsg>,
    phase: Phase,
    header_sent: bool,
    /// Our footer went out: nothing more is read or written.
    closing: bool,
    /// Socket and receiver, monitored.
    transport: Vec<ActorCell>,
    /// `conn` and, once the header named it, `domain`: every log line of
    /// the stream carries both.
    span: tracing::Span,
}

/// A fresh stream id: 128 bits from the OS, in hex. It is the handshake's
/// nonce (XEP-0114 §3), so it must not repeat or be guessable: a handshake
/// seen on the wire must not work for another stream.
fn stream_id() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    Some(hex(&b))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The handshake a component that knows `secret` sends for `stream_id`
/// (XEP-0114 §3): lowercase hex SHA-1 of the two concatenated.
fn expected_handshake(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    hex(&h.finalize())
}

/// Checks a stanza from the component of `domain` (XEP-0114 §3).
fn check_stanza(el: &Element, domain: &str) -> Result<(), StreamFailure> {
    // COMPAT(slixmpp use_jc_ns): stanzas in jabber:client are taken too.
    let in_ns = el.ns() == NS_COMPONENT || el.ns() == ns::JABBER_CLIENT;
    if !in_ns || !matches!(el.name(), "message" | "presence" | "iq") {
        return Err(StreamFailure::UnsupportedStanzaType);
    }
    let from = el
        .attr("from")
        .and_then(|f| f.parse::<Jid>().ok())
        .ok_or(StreamFailure::InvalidFrom)?;
    if !from_allowed(&from, domain) {
        return Err(StreamFailure::InvalidFrom);
    }
    // RFC 6120 §4.9.3.7: between servers (and so from a component) a
    // stanza names its recipient.
    if el.attr("to").is_none() {
        return Err(StreamFailure::ImproperAddressing);
    }
    Ok(())
}

/// Whether `from` may be used by the component of `domain`: the domain
/// itself or a subdomain, with any local part and resource.
fn from_allowed(from: &Jid, domain: &str) -> bool {
    let d = from.domain();
    d == domain
        || d.len() > domain.len() + 1
            && d.ends_with(domain)
            && d.as_bytes()[d.len() - domain.len() - 1] == b'.'
}

impl ComponentState {
    fn send(&self, bytes: Vec<u8>) {
        // An overflow closes the connection from the socket's side.
        let _ = self.socket.send(bytes);
    }

    fn write_element(&self, el: &Element) {
        let mut out = Vec::with_capacity(256);
        self.framing.element(el, &mut out);
        self.send(out);
    }

    fn domain(&self) -> Option<&str> {
        match &self.phase {
            Phase::Header => None,
            Phase::Handshake { component, .. } | Phase::Ready(component) => {
                Some(component.domain())
            }
        }
    }

    fn send_header(&mut self, from: &str, id: &str) {
        let mut header = Vec::with_capacity(192);
        self.framing
            .header(&OutHeader { from, id, to: None }, &mut header);
        self.send(header);
        self.header_sent = true;
    }

    /// Ends the stream with `failure`'s stream error (RFC 6120 §4.9.1.1).
    fn fail(&mut self, failure: StreamFailure) -> Flow {
        if self.closing {
            return Flow::Stop;
        }
        let err = failure.condition();
        self.ctx.metrics.stream_errors.inc(err.as_str());
        tracing::info!(condition = err.as_str(), text = %failure, "component stream error");
        if !self.header_sent {
            let from = self
                .domain()
                .map(str::to_owned)
                .or_else(|| self.ctx.domains.first().cloned())
                .unwrap_or_default();
            let id = stream_id().unwrap_or_default();
            self.send_header(&from, &id);
        }
        let text = failure.to_string();
        self.write_element(&err.to_element_with(Some(&text), None));
        self.close();
        Flow::Stop
    }

    /// Writes our footer and closes; the group ends when the socket has
    /// written it and stopped (see the monitors).
    fn close(&mut self) {
        self.closing = true;
        self.detach();
        let mut footer = Vec::new();
        self.framing.footer(&mut footer);
        self.send(footer);
        self.socket.close();
    }

    /// Routing to the domain answers `service-unavailable` from now on.
    fn detach(&mut self) {
        if let Phase::Ready(component) = &self.phase {
            component.detach(self.conn_id);
        }
    }

    fn transport_down(&mut self) {
        self.closing = true;
        self.detach();
        self.myself.stop(None);
    }

    async fn on_event(&mut self, ev: Result<StreamEvent, XmlError>) -> Flow {
        match ev {
            Ok(StreamEvent::Header(h)) => self.on_header(&h),
            Ok(StreamEvent::Element(el)) => match &self.phase {
                Phase::Header => self.fail(StreamFailure::HandshakeFirst),
                Phase::Handshake { .. } => self.on_handshake(&el),
                Phase::Ready(component) => {
                    let component = component.clone();
                    match check_stanza(&el, component.domain()) {
                        Ok(()) => {
                            self.route(&el).await;
                            Flow::Continue
                        }
                        Err(f) => self.fail(f),
                    }
                }
            },
            Ok(StreamEvent::End) => {
                // RFC 6120 §4.4: the component closed; so do we.
                self.close();
                Flow::Stop
            }
            Err(e) => self.fail(StreamFailure::Xml(e)),
        }
    }

    fn on_header(&mut self, h: &StreamHeader) -> Flow {
        if !matches!(self.phase, Phase::Header) {
            return self.fail(StreamFailure::SecondHeader);
        }
        if self
            .ctx
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return self.fail(StreamFailure::Shutdown);
        }
        if let Err(text) = self.framing.accepts(h) {
            return self.fail(StreamFailure::InvalidNamespace(text));
        }
        // XEP-0114 §3: `to` names the component's domain. No version
        // check: the protocol predates RFC 6120's version attribute.
        let to = h
            .attr("to")
            .map(|t| t.trim_end_matches('.').to_ascii_lowercase());
        let Some(component) = to.and_then(|d| ComponentService::find(&self.ctx.router, &d)) else {
            return self.fail(StreamFailure::HostUnknown);
        };
        self.span.record("domain", component.domain());
        let Some(id) = stream_id() else {
            return self.fail(StreamFailure::NoRandomness);
        };
        let from = component.domain().to_owned();
        self.send_header(&from, &id);
        self.phase = Phase::Handshake {
            component,
            stream_id: id,
        };
        Flow::Continue
    }

    fn on_handshake(&mut self, el: &Element) -> Flow {
        let Phase::Handshake {
            component,
            stream_id,
        } = &self.phase
        else {
            return Flow::Stop;
        };
        if !el.is("handshake", NS_COMPONENT) {
            return self.fail(StreamFailure::HandshakeFirst);
        }
        let expected = expected_handshake(stream_id, component.secret());
        // COMPAT: some components send uppercase hex; the digest is the same.
        let given = el.text().trim().to_ascii_lowercase();
        let ok: bool = expected.as_bytes().ct_eq(given.as_bytes()).into();
        let component = component.clone();
        if !ok {
            // One WARN line with `peer=` first, as for a failed client
            // login (fail2ban reads these); the domain is configured, so
            // it is safe to log.
            tracing::warn!(
                peer = %self.peer.map(|p| p.to_string()).unwrap_or_default(),
                "component handshake failed"
            );
            return self.fail(StreamFailure::HandshakeFailed);
        }
        let attached = Attached {
            conn_id: self.conn_id,
            socket: self.socket.clone(),
            framing: self.framing.clone(),
            stream: self.myself.clone(),
        };
        if let Err(AttachError::Conflict) = component.attach(attached) {
            return self.fail(StreamFailure::Conflict);
        }
        self.phase = Phase::Ready(component);
        self.write_element(&Element::new("handshake", NS_COMPONENT));
        tracing::info!(peer = ?self.peer, "component connected");
        // The post-authentication stanza limit from here on.
        Flow::Authenticated
    }

    /// Routes a checked stanza; an error the router hands back goes to the
    /// component.
    async fn route(&self, el: &Element) {
        let stanza = renamespace(el, NS_COMPONENT, ns::JABBER_CLIENT);
        // Boxed: the routing future is large, and inlined it would size
        // every idle component actor's task.
        if let Outcome::Reply(e) = Box::pin(self.ctx.router.route(stanza)).await {
            self.write_element(&renamespace(&e, ns::JABBER_CLIENT, NS_COMPONENT));
        }
    }
}

impl Drop for ComponentState {
    /// A killed actor's state drops too: its domain is unrouted at once.
    fn drop(&mut self) {
        self.detach();
    }
}

impl Actor for ComponentActor {
    type Msg = ComponentMsg;
    type State = ComponentState;
    type Arguments = ComponentArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ComponentArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // One deadline from accept to the handshake, never extended by
        // input (the c2s negotiation timeout, for the same slowloris).
        myself.send_after(args.ctx.config.c2s.negotiation_timeout(), || {
            ComponentMsg::HandshakeTimeout
        });
        Ok(ComponentState {
            span: tracing::info_span!(
                "component",
                conn = args.conn_id,
                domain = tracing::field::Empty
            ),
            conn_id: args.conn_id,
            peer: args.peer,
            ctx: args.ctx,
            socket: args.socket,
            framing: args.framing,
            myself,
            phase: Phase::Header,
            header_sent: false,
            closing: false,
            transport: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        async move {
            match msg {
                ComponentMsg::Incoming(ev, reply) => {
                    let flow = if state.closing {
                        Flow::Stop
                    } else {
                        state.on_event(*ev).await
                    };
                    let _ = reply.send(flow);
                }
                ComponentMsg::TlsEstablished(_, reply) => {
                    let _ = reply.send(());
                }
                ComponentMsg::PeerClosed => {
                    state.closing = true;
                    state.detach();
                    state.socket.close();
                }
                ComponentMsg::HandshakeTimeout => {
                    if !matches!(state.phase, Phase::Ready(_)) {
                        state.fail(StreamFailure::Timeout);
                    }
                }
                ComponentMsg::Shutdown => {
                    state.fail(StreamFailure::Shutdown);
                }
                ComponentMsg::Monitor(members) => {
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
            }
        }
        .instrument(span)
        .await;
        Ok(())
    }

    /// Socket and receiver are monitored (their parent is the group's
    /// supervisor); their exit is the connection going.
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
                let span = state.span.clone();
                let _g = span.enter();
                tracing::debug!("component transport gone");
                state.transport_down();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn handshake_is_lowercase_hex_sha1_of_id_and_secret() {
        // Computed independently (Python hashlib) for id 3BF96D32 and "secret".
        assert_eq!(
            expected_handshake("3BF96D32", "secret"),
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"
        );
    }

    #[test]
    fn from_must_be_the_domain_or_a_subdomain() {
        let ok = |j: &str| from_allowed(&j.parse().unwrap(), "irc.example.org");
        assert!(ok("irc.example.org"));
        assert!(ok("nick@irc.example.org/r"));
        assert!(ok("room@chan.irc.example.org"));
        assert!(!ok("airc.example.org"));
        assert!(!ok("example.org"));
        assert!(!ok("alice@localhost"));
    }

    #[test]
    fn stream_ids_differ() {
        let a = stream_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, stream_id().unwrap());
    }
}
