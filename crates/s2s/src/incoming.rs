//! Incoming streams: the `s2s` listener kind, as ejabberd's
//! `ejabberd_s2s_in`.
//!
//! Each accepted connection is a `conn-<id>` group of the client stream's
//! socket and receiver (generic over their owner) and an `s2s-in` actor,
//! the stream's state machine. A remote server authenticates each pair of
//! its domain and ours separately (several can share one stream:
//! piggybacking, XEP-0220 §2.5):
//! - by SASL EXTERNAL (XEP-0178) when the certificate it presented in the
//!   TLS handshake verifies for its domain;
//! - by Server Dialback (XEP-0220): its `<db:result>` key is checked with
//!   its authoritative server over our own outgoing stream to it
//!   (`db:verify`), unless its certificate already proves the domain
//!   (XEP-0344 §2.4).
//!
//! Every stanza must name a `from` whose domain is authenticated on this
//! stream for the `to` domain, which must be ours (RFC 6120 §8.1.1.2,
//! §8.1.2.2, §4.9.3); others end the stream with the RFC's error.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_c2s::conn::{spawn_stream, StreamTransport};
use chorus_c2s::framing::{Framing, OutHeader, XmlStream};
use chorus_c2s::receiver::{Flow, Input, StreamOwner};
use chorus_c2s::socket::{SocketHandle, Writer};
use chorus_c2s::tls::ChannelBindings;
use chorus_proto::{ns, StanzaKind, StreamError};
use chorus_supervisor::{GroupMember, GroupSpec, StartCtx};
use chorus_xml::{Element, StreamEvent, StreamHeader, XmlError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::net::TcpStream;

use crate::{dialback, S2sContext, StreamInfo};

/// The `s2s` listener kind.
pub struct S2sConnections {
    ctx: Arc<S2sContext>,
    /// `s2s-tls` (XEP-0368): the TLS handshake before anything is read.
    direct_tls: bool,
}

impl S2sConnections {
    pub fn new(ctx: Arc<S2sContext>, direct_tls: bool) -> S2sConnections {
        S2sConnections { ctx, direct_tls }
    }
}

impl chorus_listener::Connections for S2sConnections {
    fn next_id(&self) -> u64 {
        self.ctx.c2s.next_conn_id()
    }

    fn group(&self, id: u64, stream: TcpStream) -> GroupSpec {
        let (ctx, direct) = (self.ctx.clone(), self.direct_tls);
        GroupSpec::new(format!("conn-{id}"), move |sctx: StartCtx| async move {
            start_members(id, sctx, stream, direct, ctx).await
        })
    }
}

static FRAMING: XmlStream = XmlStream::server();

async fn start_members(
    id: u64,
    sctx: StartCtx,
    stream: TcpStream,
    direct_tls: bool,
    ctx: Arc<S2sContext>,
) -> Result<Vec<GroupMember>, ractor::SpawnErr> {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    // Counted at accept, so that connections that never send a header
    // count too; one past the cap is refused at its header.
    let slot = chorus_listener::IpSlot::take(&ctx.per_ip, peer, ctx.config().max_streams_per_ip);
    let over = slot.is_none();
    let (input, writer) = if direct_tls {
        (Input::Handshake(stream), Writer::Detached)
    } else {
        let (r, w) = stream.into_split();
        (Input::Plain(r), Writer::Plain(w))
    };
    let sup = sctx.supervisor.clone();
    let path = format!("{}/s2s-in", sctx.path);
    let members = spawn_stream(
        &sctx,
        &ctx.c2s,
        StreamTransport {
            input,
            writer,
            framing: Arc::new(XmlStream::server()),
            messages: false,
            slot,
            tls: ctx.server_tls(),
            // No session outlives the connection: either one's end is the
            // stream's.
            significant: true,
        },
        "s2s-in",
        |socket| async {
            let (owner, _) = Actor::spawn_linked(
                None,
                InActor,
                InArgs {
                    ctx: ctx.clone(),
                    conn_id: id,
                    peer,
                    socket,
                    path,
                    over,
                },
                sup,
            )
            .await?;
            Ok(owner)
        },
    )
    .await?;
    Ok(members.group.finish())
}

pub enum InMsg {
    Incoming(Box<Result<StreamEvent, XmlError>>, RpcReplyPort<Flow>),
    TlsEstablished(Box<ChannelBindings>, RpcReplyPort<()>),
    PeerClosed,
    /// The authoritative server answered about a key (XEP-0220 §2.1.3).
    Dialback {
        remote: String,
        local: String,
        outcome: crate::Verified,
    },
    /// Authentication took too long.
    Deadline,
    /// An operator closes the stream.
    Close,
    /// The server stops.
    Shutdown,
    /// Now and then: a stream silent for `s2s.idle_timeout_secs` is closed.
    IdleCheck,
}

impl StreamOwner for InMsg {
    fn incoming(ev: Box<Result<StreamEvent, XmlError>>, reply: RpcReplyPort<Flow>) -> Self {
        InMsg::Incoming(ev, reply)
    }
    fn tls_established(bindings: Box<ChannelBindings>, reply: RpcReplyPort<()>) -> Self {
        InMsg::TlsEstablished(bindings, reply)
    }
    fn peer_closed() -> Self {
        InMsg::PeerClosed
    }
}

/// What `chorusctl s2s list` sees of an incoming stream.
pub struct InInfo {
    shared: Arc<Mutex<Listed>>,
    pub(crate) actor: ActorRef<InMsg>,
}

#[derive(Default)]
struct Listed {
    /// (remote, local, method)
    pairs: Vec<(String, String, &'static str)>,
    tls: String,
    path: String,
}

impl InInfo {
    pub(crate) fn streams(&self) -> Vec<StreamInfo> {
        let l = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        l.pairs
            .iter()
            .map(|(remote, local, auth)| StreamInfo {
                direction: "in",
                local: local.clone(),
                remote: remote.clone(),
                auth: (*auth).to_owned(),
                tls: if l.tls.is_empty() {
                    "none".to_owned()
                } else {
                    l.tls.clone()
                },
                queued: 0,
                path: l.path.clone(),
            })
            .collect()
    }

    pub(crate) fn remote_domains(&self) -> Vec<String> {
        let l = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        l.pairs.iter().map(|(r, _, _)| r.clone()).collect()
    }

    pub(crate) fn close(&self) {
        let _ = self.actor.cast(InMsg::Close);
    }
}

pub struct InArgs {
    /// Past `s2s.max_streams_per_ip`: refused at the header.
    over: bool,
    ctx: Arc<S2sContext>,
    conn_id: u64,
    peer: Option<IpAddr>,
    socket: SocketHandle,
    path: String,
}

pub struct InActor;

pub struct InState {
    ctx: Arc<S2sContext>,
    myself: ActorRef<InMsg>,
    conn_id: u64,
    peer: Option<IpAddr>,
    socket: SocketHandle,
    tls: Option<ChannelBindings>,
    /// Our domain the header was addressed to, and the domain the peer
    /// named itself with, if it did.
    to: Option<String>,
    from: Option<String>,
    stream_id: String,
    header_sent: bool,
    closing: bool,
    /// Authenticated (remote, local) pairs.
    pairs: HashSet<(String, String)>,
    /// Dialback requests being checked.
    pending: HashSet<(String, String)>,
    sasl_done: bool,
    listed: Arc<Mutex<Listed>>,
    /// Past `s2s.max_streams_per_ip`: refused at the header.
    over: bool,
    /// When the peer last sent anything.
    last_active: Instant,
    /// Stanza rate: tokens and when they were last topped up.
    tokens: f64,
    refilled: Instant,
}

impl Drop for InState {
    fn drop(&mut self) {
        self.ctx.incoming.remove(&self.conn_id);
    }
}

impl Actor for InActor {
    type Msg = InMsg;
    type State = InState;
    type Arguments = InArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<InMsg>,
        args: InArgs,
    ) -> Result<InState, ActorProcessingErr> {
        let listed = Arc::new(Mutex::new(Listed {
            path: args.path,
            ..Listed::default()
        }));
        args.ctx.incoming.insert(
            args.conn_id,
            InInfo {
                shared: listed.clone(),
                actor: myself.clone(),
            },
        );
        myself.send_after(args.ctx.config().connect_timeout() * 2, || InMsg::Deadline);
        myself.send_interval(args.ctx.config().idle_timeout() / 4, || InMsg::IdleCheck);
        Ok(InState {
            over: args.over,
            tokens: args.ctx.config().max_stanzas_per_sec as f64,
            refilled: Instant::now(),
            last_active: Instant::now(),
            ctx: args.ctx,
            myself,
            conn_id: args.conn_id,
            peer: args.peer,
            socket: args.socket,
            tls: None,
            to: None,
            from: None,
            stream_id: String::new(),
            header_sent: false,
            closing: false,
            pairs: HashSet::new(),
            pending: HashSet::new(),
            sasl_done: false,
            listed,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<InMsg>,
        msg: InMsg,
        state: &mut InState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            InMsg::Incoming(ev, reply) => {
                let flow = state.incoming(*ev).await;
                let _ = reply.send(flow);
            }
            InMsg::TlsEstablished(b, reply) => {
                state.tls = Some(*b);
                let _ = reply.send(());
            }
            InMsg::PeerClosed => myself.stop(None),
            InMsg::Dialback {
                remote,
                local,
                outcome,
            } => state.dialback_answer(remote, local, outcome),
            InMsg::Deadline => {
                if state.pairs.is_empty() && !state.closing {
                    state.stream_error(StreamError::ConnectionTimeout, None);
                }
            }
            InMsg::Close => {
                if !state.closing {
                    state.close();
                }
            }
            InMsg::Shutdown => {
                state.stream_error(StreamError::SystemShutdown, None);
            }
            InMsg::IdleCheck => {
                if !state.closing && state.last_active.elapsed() > state.ctx.config().idle_timeout()
                {
                    tracing::debug!(
                        conn = state.conn_id,
                        remote = state.from.as_deref(),
                        "idle incoming s2s stream closed"
                    );
                    state.close();
                }
            }
        }
        Ok(())
    }
}

impl InState {
    fn send(&self, bytes: Vec<u8>) {
        let _ = self.socket.send(bytes);
    }

    fn send_element(&self, el: &Element) {
        let mut out = Vec::with_capacity(128);
        FRAMING.element(el, &mut out);
        self.send(out);
    }

    fn send_header(&mut self, from: &str) {
        if self.stream_id.is_empty() {
            self.stream_id = random_id();
        }
        let mut out = Vec::with_capacity(256);
        let to = self.from.clone();
        FRAMING.header(
            &OutHeader {
                from,
                id: &self.stream_id,
                to: to.as_deref(),
            },
            &mut out,
        );
        self.send(out);
        self.header_sent = true;
    }

    fn close(&mut self) {
        self.closing = true;
        let mut out = Vec::new();
        FRAMING.footer(&mut out);
        self.send(out);
        self.socket.close();
    }

    fn stream_error(&mut self, err: StreamError, text: Option<&str>) -> Flow {
        if self.closing {
            return Flow::Stop;
        }
        self.ctx.c2s.metrics.stream_errors.inc(err.as_str());
        tracing::info!(conn = self.conn_id, peer = ?self.peer, remote = self.from.as_deref(), condition = err.as_str(), text, "s2s stream error");
        if !self.header_sent {
            let from = self
                .to
                .clone()
                .or_else(|| self.ctx.c2s.domains.first().cloned())
                .unwrap_or_default();
            self.send_header(&from);
        }
        self.send_element(&err.to_element(text));
        self.close();
        Flow::Stop
    }

    fn tls_chain(&self) -> &[rustls::pki_types::CertificateDer<'static>] {
        self.tls
            .as_ref()
            .map(|b| b.peer_certificates.as_slice())
            .unwrap_or_default()
    }

    /// Whether the peer's certificate proves `domain`.
    fn cert_proves(&self, domain: &str) -> bool {
        self.ctx
            .verifier
            .verifies(self.tls_chain(), &crate::ascii(domain))
    }

    /// TLS is up, or not needed with this peer.
    fn secure_for(&self, domain: &str) -> bool {
        self.tls.is_some() || self.ctx.config().plaintext_ok(domain)
    }

    fn authenticated(&mut self, remote: String, local: String, method: &'static str) {
        tracing::info!(conn = self.conn_id, peer = ?self.peer, remote, local, method, "s2s stream authenticated");
        let mut l = self.listed.lock().unwrap_or_else(|p| p.into_inner());
        l.pairs.push((remote.clone(), local.clone(), method));
        l.tls = self.tls_version();
        drop(l);
        self.pairs.insert((remote, local));
    }

    fn tls_version(&self) -> String {
        match &self.tls {
            Some(b) if b.tls_exporter.is_some() => "TLSv1_3".to_owned(),
            Some(_) => "TLSv1_2".to_owned(),
            None => String::new(),
        }
    }

    async fn incoming(&mut self, ev: Result<StreamEvent, XmlError>) -> Flow {
        if self.closing {
            return Flow::Stop;
        }
        self.last_active = Instant::now();
        match ev {
            Err(e) => {
                let err = StreamError::from(e.kind);
                self.stream_error(err, Some(&e.detail))
            }
            Ok(StreamEvent::Header(h)) => self.on_header(&h),
            Ok(StreamEvent::End) => {
                self.close();
                Flow::Stop
            }
            Ok(StreamEvent::Element(el)) => self.on_element(el).await,
        }
    }

    fn on_header(&mut self, h: &StreamHeader) -> Flow {
        if self.ctx.shutting_down() {
            return self.stream_error(StreamError::SystemShutdown, None);
        }
        if let Err(text) = FRAMING.accepts(h) {
            return self.stream_error(StreamError::InvalidNamespace, Some(text));
        }
        let to = h.attr("to").and_then(norm);
        let from = h.attr("from").and_then(norm);
        match &to {
            Some(d) if self.ctx.is_ours(d) => {
                if self.to.as_ref().is_some_and(|cur| cur != d) {
                    return self
                        .stream_error(StreamError::HostUnknown, Some("domain changed on restart"));
                }
                self.to = Some(d.clone());
            }
            _ => return self.stream_error(StreamError::HostUnknown, None),
        }
        self.from = from;
        if h.attr("version").and_then(|v| v.split('.').next()) != Some("1") {
            return self.stream_error(
                StreamError::UnsupportedVersion,
                Some("version 1.0 is required"),
            );
        }
        if self.over {
            return self.stream_error(
                StreamError::PolicyViolation,
                Some("too many streams from this address"),
            );
        }
        if let Some(f) = &self.from {
            if !self.ctx.config().allows(f) {
                tracing::warn!(peer = ?self.peer, remote = %f, "s2s refused by policy");
                return self.stream_error(
                    StreamError::PolicyViolation,
                    Some("federation with this domain is not allowed"),
                );
            }
        }
        // A fresh id per stream: dialback keys cover it.
        self.stream_id = random_id();
        let local = self.to.clone().unwrap_or_default();
        self.send_header(&local);
        let features = self.features();
        self.send_element(&features);
        Flow::Continue
    }

    /// RFC 6120 §4.3.2: STARTTLS first where TLS is required; then SASL
    /// EXTERNAL when the certificate proves the claimed domain, and
    /// dialback (with XEP-0220 §2.4.1 error support).
    fn features(&self) -> Element {
        let mut f = Element::new("features", ns::STREAM);
        let claimed = self.from.clone().unwrap_or_default();
        if self.tls.is_none() && self.ctx.server_tls().is_some() {
            let mut st = Element::new("starttls", ns::TLS);
            if !self.ctx.config().plaintext_ok(&claimed) {
                st.push(Element::new("required", ns::TLS));
            }
            f.push(st);
        }
        if !self.secure_for(&claimed) {
            return f;
        }
        if !self.sasl_done && !claimed.is_empty() && self.cert_proves(&claimed) {
            f.push(
                Element::new("mechanisms", ns::SASL)
                    .with_child(Element::new("mechanism", ns::SASL).with_text("EXTERNAL")),
            );
        }
        if self.ctx.config().dialback {
            f.push(
                Element::new("dialback", dialback::NS_FEATURE)
                    .with_child(Element::new("errors", dialback::NS_FEATURE)),
            );
        }
        f
    }

    async fn on_element(&mut self, el: Element) -> Flow {
        if el.is("starttls", ns::TLS) {
            if self.tls.is_some() || self.ctx.server_tls().is_none() {
                self.send_element(&Element::new("failure", ns::TLS));
                self.close();
                return Flow::Stop;
            }
            self.send_element(&Element::new("proceed", ns::TLS));
            return Flow::StartTls;
        }
        if el.ns() == dialback::NS {
            self.pace().await;
            return match el.name() {
                "result" if el.attr("type").is_none() => self.on_db_result(&el),
                "verify" if el.attr("type").is_none() => self.on_db_verify(&el),
                _ => Flow::Continue,
            };
        }
        if el.is("auth", ns::SASL) {
            return self.on_auth(&el);
        }
        if StanzaKind::of(&el).is_some() {
            return self.on_stanza(el).await;
        }
        if el.ns() == ns::JABBER_SERVER {
            return self.stream_error(StreamError::UnsupportedStanzaType, None);
        }
        // Unknown nonzas are ignored (RFC 6120 §4.9.3.9 would allow
        // unsupported-stanza-type; servers ignore what they do not know).
        Flow::Continue
    }

    /// XEP-0178 §3: EXTERNAL, with the peer's certificate.
    fn on_auth(&mut self, el: &Element) -> Flow {
        let local = self.to.clone().unwrap_or_default();
        let failure = |state: &mut Self, condition: &str, why: &str| {
            tracing::warn!(conn = state.conn_id, peer = ?state.peer, remote = state.from.as_deref(), why, "s2s SASL EXTERNAL refused");
            state.send_element(
                &Element::new("failure", ns::SASL).with_child(Element::new(condition, ns::SASL)),
            );
            Flow::Continue
        };
        if el.attr("mechanism") != Some("EXTERNAL") {
            return failure(self, "invalid-mechanism", "not EXTERNAL");
        }
        if self.sasl_done || self.tls.is_none() {
            return failure(self, "not-authorized", "no TLS, or already authenticated");
        }
        use base64::Engine;
        let text = el.text();
        let text = text.trim();
        // RFC 6120 §6.4.2: "=" is an empty response; XEP-0178 §3: the
        // authorization identity, when given, is the peer's domain.
        let authzid = if text.is_empty() || text == "=" {
            None
        } else {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded {
                Some(d) => Some(d),
                None => return failure(self, "incorrect-encoding", "bad base64 or UTF-8"),
            }
        };
        let domain = match (&authzid, &self.from) {
            (Some(a), from) => match norm(a) {
                Some(d) if from.as_ref().is_none_or(|f| *f == d) => d,
                _ => return failure(self, "invalid-authzid", "not the stream's domain"),
            },
            (None, Some(f)) => f.clone(),
            (None, None) => return failure(self, "invalid-authzid", "no domain named"),
        };
        if !self.cert_proves(&domain) {
            return failure(
                self,
                "not-authorized",
                "the certificate does not prove the domain",
            );
        }
        if !self.ctx.config().allows(&domain) {
            return failure(self, "not-authorized", "domain not allowed");
        }
        self.sasl_done = true;
        self.authenticated(domain, local, "external");
        self.send_element(&Element::new("success", ns::SASL));
        // RFC 6120 §6.4.6: the stream restarts; our next header gets a new id.
        self.stream_id.clear();
        Flow::Reset
    }

    /// A dialback error answer (XEP-0220 §2.4): the stream stays open.
    fn dialback_error(
        &self,
        name: &str,
        local: &str,
        remote: &str,
        id: Option<&str>,
        condition: &str,
    ) {
        let mut answer = Element::new(name, dialback::NS)
            .with_attr("from", local.to_owned())
            .with_attr("to", remote.to_owned())
            .with_attr("type", "error");
        if let Some(id) = id {
            answer.set_attr("id", id.to_owned());
        }
        let kind = if condition == "remote-server-timeout" {
            "wait"
        } else {
            "cancel"
        };
        answer.push(
            Element::new("error", ns::JABBER_SERVER)
                .with_attr("type", kind)
                .with_child(Element::new(condition, ns::STANZAS)),
        );
        self.send_element(&answer);
    }

    /// XEP-0220 §2.1.1-§2.1.2: a key from the originating server.
    fn on_db_result(&mut self, el: &Element) -> Flow {
        let (Some(raw_remote), Some(raw_local)) = (el.attr("from"), el.attr("to")) else {
            return self.stream_error(
                StreamError::ImproperAddressing,
                Some("db:result without from or to"),
            );
        };
        let (Some(remote), Some(local)) = (norm(raw_remote), norm(raw_local)) else {
            return self.stream_error(
                StreamError::ImproperAddressing,
                Some("db:result with a malformed domain"),
            );
        };
        // §2.4: a domain we do not serve is an error for this pair only.
        if !self.ctx.is_ours(&local) {
            tracing::info!(peer = ?self.peer, remote, local, "s2s dialback for a domain not served here");
            self.dialback_error("result", raw_local, raw_remote, None, "item-not-found");
            return Flow::Continue;
        }
        if !self.secure_for(&remote) {
            return self.stream_error(StreamError::PolicyViolation, Some("TLS is required"));
        }
        if !self.ctx.config().allows(&remote) {
            tracing::warn!(peer = ?self.peer, remote, "s2s dialback refused by policy");
            self.dialback_error("result", &local, &remote, None, "not-allowed");
            return Flow::Continue;
        }
        // From here the peer may be authenticated at any moment: stanzas
        // take the post-authentication size limit (each is still checked
        // against the authenticated pairs).
        if self.pairs.contains(&(remote.clone(), local.clone())) || self.cert_proves(&remote) {
            // XEP-0344 §2.4: a certificate that proves the domain needs no
            // callback.
            self.dialback_answer(remote, local, crate::Verified::Valid);
            return Flow::Authenticated;
        }
        if !self.ctx.config().dialback {
            self.dialback_error("result", &local, &remote, None, "not-authorized");
            return Flow::Continue;
        }
        if self.pending.contains(&(remote.clone(), local.clone())) {
            return Flow::Authenticated;
        }
        // Each pending check costs an outgoing connection: a few at a time.
        if self.pending.len() >= MAX_PENDING_DIALBACK {
            self.dialback_error("result", &local, &remote, None, "resource-constraint");
            return Flow::Continue;
        }
        self.pending.insert((remote.clone(), local.clone()));
        let key = el.text();
        let (ctx, me, id) = (
            self.ctx.clone(),
            self.myself.clone(),
            self.stream_id.clone(),
        );
        tokio::spawn(async move {
            let outcome = ctx.verify_key(&local, &remote, &id, key.trim()).await;
            let _ = me.cast(InMsg::Dialback {
                remote,
                local,
                outcome,
            });
        });
        Flow::Authenticated
    }

    fn dialback_answer(&mut self, remote: String, local: String, outcome: crate::Verified) {
        self.pending.remove(&(remote.clone(), local.clone()));
        if self.closing {
            return;
        }
        let kind = match outcome {
            crate::Verified::Valid => "valid",
            crate::Verified::Invalid => "invalid",
            crate::Verified::Failed(condition) => {
                // §2.4: the authoritative server could not be asked.
                tracing::warn!(conn = self.conn_id, peer = ?self.peer, remote, local, condition, "s2s dialback key could not be checked");
                self.dialback_error("result", &local, &remote, None, condition);
                return;
            }
        };
        let answer = Element::new("result", dialback::NS)
            .with_attr("from", local.clone())
            .with_attr("to", remote.clone())
            .with_attr("type", kind);
        self.send_element(&answer);
        if kind == "valid" {
            if !self.pairs.contains(&(remote.clone(), local.clone())) {
                self.authenticated(remote, local, "dialback");
            }
        } else {
            // §2.1.3 (XEP-0220 1.1.1): a key that does not verify ends the
            // stream.
            tracing::warn!(conn = self.conn_id, peer = ?self.peer, remote, local, "s2s dialback key not verified");
            self.close();
        }
    }

    /// XEP-0220 §2.1.3: we are the authoritative server for `to`.
    fn on_db_verify(&mut self, el: &Element) -> Flow {
        let (Some(raw_remote), Some(raw_local), Some(id)) =
            (el.attr("from"), el.attr("to"), el.attr("id"))
        else {
            return self.stream_error(
                StreamError::ImproperAddressing,
                Some("db:verify without from, to or id"),
            );
        };
        let (Some(remote), Some(local)) = (norm(raw_remote), norm(raw_local)) else {
            return self.stream_error(
                StreamError::ImproperAddressing,
                Some("db:verify with a malformed domain"),
            );
        };
        if !self.ctx.is_ours(&local) {
            tracing::info!(peer = ?self.peer, remote, local, "s2s dialback verify for a domain not served here");
            self.dialback_error("verify", raw_local, raw_remote, Some(id), "item-not-found");
            return Flow::Continue;
        }
        let valid = self.ctx.secret.check(&el.text(), &remote, &local, id);
        if !valid {
            tracing::warn!(conn = self.conn_id, peer = ?self.peer, remote, local, "s2s dialback: a key we did not make");
        }
        let answer = Element::new("verify", dialback::NS)
            .with_attr("from", local)
            .with_attr("to", remote)
            .with_attr("id", id.to_owned())
            .with_attr("type", if valid { "valid" } else { "invalid" });
        self.send_element(&answer);
        Flow::Continue
    }

    /// RFC 6120 §8.1.1.2, §8.1.2.2: both addresses, `from` authenticated
    /// for `to` on this stream.
    async fn on_stanza(&mut self, mut el: Element) -> Flow {
        let domain = |a: Option<&str>| -> Option<Result<String, ()>> {
            a.map(|s| {
                s.parse::<chorus_jid::Jid>()
                    .map(|j| j.domain().to_owned())
                    .map_err(|_| ())
            })
        };
        let from = match domain(el.attr("from")) {
            Some(Ok(d)) => d,
            Some(Err(())) => {
                return self.stream_error(StreamError::InvalidFrom, Some("malformed from"))
            }
            None => {
                return self.stream_error(
                    StreamError::ImproperAddressing,
                    Some("a stanza without from"),
                )
            }
        };
        let to = match domain(el.attr("to")) {
            Some(Ok(d)) => d,
            Some(Err(())) => {
                return self.stream_error(StreamError::ImproperAddressing, Some("malformed to"))
            }
            None => {
                return self
                    .stream_error(StreamError::ImproperAddressing, Some("a stanza without to"))
            }
        };
        if !self.pairs.contains(&(from.clone(), to.clone())) {
            if !self.ctx.is_ours(&to) {
                return self.stream_error(
                    StreamError::HostUnknown,
                    Some("a stanza for a domain not served here"),
                );
            }
            return self.stream_error(
                StreamError::InvalidFrom,
                Some("the sender's domain is not authenticated on this stream"),
            );
        }
        self.pace().await;
        // RFC 6120 §4.8.3: routed in the client namespace.
        el.rename_ns(ns::JABBER_SERVER, ns::JABBER_CLIENT);
        // A groupchat message a user's block list stops is dropped, not
        // answered: a room takes an error as its occupant being gone
        // (XEP-0045 §18.1), and one blocked occupant must not cost the user
        // the room.
        let groupchat = el.name() == "message" && el.attr("type") == Some("groupchat");
        if let chorus_router::Outcome::Reply(e) = self.ctx.router().route(el).await {
            if !groupchat {
                self.ctx.router().answer(e).await;
            }
        }
        Flow::Continue
    }

    /// `s2s.max_stanzas_per_sec`: a token bucket; an empty one delays the
    /// answer to the receiver, so the peer is read more slowly.
    async fn pace(&mut self) {
        let rate = self.ctx.config().max_stanzas_per_sec as f64;
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(rate);
        self.refilled = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.refilled = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

/// Dialback checks one incoming stream may have running at once.
const MAX_PENDING_DIALBACK: usize = 8;

/// A domain as JIDs normalize it (RFC 7622 §3.2), so that what a peer
/// names in a header, a dialback element or an authzid compares equal to
/// the domains of the stanzas it sends.
fn norm(d: &str) -> Option<String> {
    chorus_jid::Jid::domain_jid(d.trim_end_matches('.'))
        .ok()
        .map(|j| j.domain().to_owned())
}

/// An unpredictable stream id: dialback keys cover it (XEP-0185 §4).
fn random_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Unreachable on supported systems; a weaker id beats no stream.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b.copy_from_slice(&t.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
