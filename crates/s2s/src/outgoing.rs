//! Outgoing streams: one `s2s-out` actor per (local, remote) domain pair,
//! as ejabberd's `ejabberd_s2s_out`.
//!
//! The stanzas for the pair wait in its [`Link`], which the server keeps
//! for as long as it runs; the actor only drains it. A stanza leaves the
//! queue once it is written, so an actor killed in the middle leaves its
//! successor (the supervisor restarts it: transient) everything not yet
//! written. The actor connects (resolution, TCP, STARTTLS or direct TLS,
//! in [`connect`]), authenticates (SASL EXTERNAL when the remote's
//! certificate verifies and it offers EXTERNAL, Server Dialback
//! otherwise), writes the queue in order, and then stops by itself once
//! idle for `s2s.idle_timeout_secs`. When the domain cannot be reached in
//! `s2s.connect_timeout_secs`, the queue bounces to its senders, and for a
//! backoff that doubles per failure new stanzas bounce at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_c2s::receiver::Flow;
use chorus_proto::{ns, StanzaErrorCondition};
use chorus_supervisor::{ChildSpec, Restart, StartCtx, SupervisorMsg};
use chorus_xml::{escape_attr, escape_text, Element, NsContext, StreamEvent, XmlError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::{bounce, dialback, S2sContext, StreamInfo};

pub mod connect;

type VerifyReply = oneshot::Sender<crate::Verified>;

/// The stanzas and dialback requests for one (local, remote) pair, and
/// the state of its actor. Outlives the actor (see the module docs).
pub struct Link {
    pub local: String,
    pub remote: String,
    inner: Mutex<Inner>,
}

struct Inner {
    queue: VecDeque<Element>,
    /// db:verify requests (id, key) waiting to be sent.
    verifies: Vec<(String, String, VerifyReply)>,
    /// The running actor.
    actor: Option<ActorRef<OutMsg>>,
    /// A start was asked of the supervisor.
    starting: bool,
    /// Until then, stanzas bounce at once with `failed`.
    retry_at: Option<Instant>,
    /// The server forgot this link; pushes go to a fresh one.
    removed: bool,
    backoff: Duration,
    failed: (StanzaErrorCondition, &'static str),
    /// What `chorusctl s2s list` shows.
    auth: &'static str,
    tls: String,
}

impl Link {
    pub(crate) fn new(local: &str, remote: &str) -> Link {
        Link {
            local: local.to_owned(),
            remote: remote.to_owned(),
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                verifies: Vec::new(),
                actor: None,
                starting: false,
                retry_at: None,
                removed: false,
                backoff: Duration::ZERO,
                failed: (StanzaErrorCondition::RemoteServerNotFound, ""),
                auth: "",
                tls: String::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The actor's id under `root/s2s`.
    pub fn actor_id(&self) -> String {
        format!("{}->{}", self.local, self.remote)
    }

    /// Queues `stanza`, or gives it back with the condition to bounce it
    /// with.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(
        self: &Arc<Self>,
        ctx: &Arc<S2sContext>,
        stanza: Element,
    ) -> Result<(), Pushed> {
        let mut inner = self.lock();
        if inner.removed {
            return Err(Pushed::Removed(stanza));
        }
        if self.backing_off(&inner) {
            let (c, t) = inner.failed.clone();
            return Err(Pushed::Bounce(stanza, c, t));
        }
        if inner.queue.len() >= ctx.config().queue_max_stanzas {
            return Err(Pushed::Bounce(
                stanza,
                StanzaErrorCondition::ResourceConstraint,
                "too many stanzas waiting for this domain",
            ));
        }
        inner.queue.push_back(stanza);
        self.wake(ctx, &mut inner);
        Ok(())
    }

    /// Queues a db:verify request (XEP-0220 §2.1.2); gives the reply back
    /// when the link was forgotten meanwhile.
    pub(crate) fn verify(
        self: &Arc<Self>,
        ctx: &Arc<S2sContext>,
        id: String,
        key: String,
        reply: VerifyReply,
    ) -> Result<(), VerifyReply> {
        let mut inner = self.lock();
        if inner.removed {
            return Err(reply);
        }
        if self.backing_off(&inner) {
            // Dropped: the check fails at once (remote-connection-failed).
            return Ok(());
        }
        inner.verifies.push((id, key, reply));
        self.wake(ctx, &mut inner);
        Ok(())
    }

    /// A recent failure: new work bounces until `retry_at`.
    fn backing_off(&self, inner: &Inner) -> bool {
        inner.actor.is_none()
            && !inner.starting
            && inner.retry_at.is_some_and(|at| Instant::now() < at)
    }

    fn wake(self: &Arc<Self>, ctx: &Arc<S2sContext>, inner: &mut Inner) {
        if let Some(a) = &inner.actor {
            if a.cast(OutMsg::Wake).is_ok() {
                return;
            }
            // Gone without telling (its Drop clears this when it runs): a
            // fresh one, which drains the queue.
            inner.actor = None;
        }
        if !inner.starting {
            self.start(ctx, inner);
        }
    }

    fn start(self: &Arc<Self>, ctx: &Arc<S2sContext>, inner: &mut Inner) {
        let Some(sup) = ctx.supervisor() else {
            // The supervisor's start takes the link over.
            return;
        };
        inner.starting = true;
        let sup = ActorRef::<SupervisorMsg>::from(sup);
        // A spec left by an actor stopped on purpose (`actors kill --mode
        // stop`) would refuse the new one: forget it first (in order, same
        // mailbox).
        let _ = sup.cast(SupervisorMsg::TerminateChild(self.actor_id()));
        let spec = spec(self.clone(), ctx.clone());
        let link = self.clone();
        tokio::spawn(async move {
            let started = sup
                .call(|reply| SupervisorMsg::StartChild(spec, Some(reply)), None)
                .await;
            if !matches!(started, Ok(ractor::rpc::CallResult::Success(Ok(_)))) {
                tracing::warn!(link = %link.actor_id(), "s2s-out could not be started");
                link.lock().starting = false;
            }
        });
    }

    /// The actor `id` is gone: unless a successor took its place.
    pub(crate) fn actor_gone(&self, id: ractor::ActorId) {
        let mut inner = self.lock();
        if inner.actor.as_ref().is_some_and(|a| a.get_id() == id) {
            inner.actor = None;
            inner.auth = "";
            inner.tls.clear();
        }
    }

    /// Whether the server may forget this link: nothing waits, no actor,
    /// no backoff to remember. Marks it removed (a push that still holds
    /// it then takes a fresh one).
    pub(crate) fn forgettable(&self) -> bool {
        let mut inner = self.lock();
        let idle = inner.actor.is_none()
            && !inner.starting
            && inner.queue.is_empty()
            && inner.verifies.is_empty()
            && inner.retry_at.is_none_or(|at| Instant::now() >= at);
        if idle {
            inner.removed = true;
        }
        idle
    }

    /// After a restart of `root/s2s`: an actor for whatever still waits.
    pub(crate) fn restart_if_needed(self: &Arc<Self>, ctx: &Arc<S2sContext>) {
        let mut inner = self.lock();
        inner.actor = None;
        inner.starting = false;
        if !inner.queue.is_empty() || !inner.verifies.is_empty() {
            self.start(ctx, &mut inner);
        }
    }

    /// Stops the actor for good when nothing waits; false (and nothing
    /// done) otherwise. Under the lock, so a stanza pushed at the same time
    /// either is seen here or starts a new actor after this one's spec is
    /// gone.
    fn retire(&self, ctx: &S2sContext, me: &ActorRef<OutMsg>) -> bool {
        let mut inner = self.lock();
        if !inner.queue.is_empty() || !inner.verifies.is_empty() {
            return false;
        }
        self.terminate(ctx, &mut inner, me);
        true
    }

    /// Ends the actor `me`, and its spec with it while it is the link's
    /// actor. One that is not any more (a successor was started) only
    /// stops itself: a TerminateChild by name would stop the successor.
    fn terminate(&self, ctx: &S2sContext, inner: &mut Inner, me: &ActorRef<OutMsg>) {
        if inner
            .actor
            .as_ref()
            .is_none_or(|a| a.get_id() != me.get_id())
        {
            me.stop(None);
            return;
        }
        inner.actor = None;
        inner.starting = false;
        inner.auth = "";
        inner.tls.clear();
        match ctx.supervisor() {
            Some(sup) => {
                let _ = ActorRef::<SupervisorMsg>::from(sup)
                    .cast(SupervisorMsg::TerminateChild(self.actor_id()));
            }
            None => me.stop(None),
        }
    }

    /// The domain cannot be reached: everything waiting is handed back to
    /// bounce, new stanzas bounce for a while, and the actor stops.
    fn fail(
        &self,
        ctx: &S2sContext,
        condition: StanzaErrorCondition,
        text: &'static str,
    ) -> Vec<Element> {
        let mut inner = self.lock();
        let retry = ctx.config();
        inner.backoff = if inner.backoff.is_zero() {
            Duration::from_secs(retry.retry_secs)
        } else {
            (inner.backoff * 2).min(Duration::from_secs(retry.retry_max_secs))
        };
        inner.retry_at = Some(Instant::now() + inner.backoff);
        inner.failed = (condition, text);
        // Dropped: the waiting checks learn the connection failed.
        inner.verifies.clear();
        inner.queue.drain(..).collect()
    }

    /// After a failure's bounces: what was pushed meanwhile, or the end of
    /// the actor when nothing was.
    fn fail_done(&self, ctx: &S2sContext, me: &ActorRef<OutMsg>) -> Vec<Element> {
        let mut inner = self.lock();
        inner.verifies.clear();
        if inner.queue.is_empty() {
            self.terminate(ctx, &mut inner, me);
        }
        inner.queue.drain(..).collect()
    }

    /// Up to `n` stanzas from the front, left in the queue until written.
    fn peek(&self, n: usize) -> Vec<Element> {
        self.lock().queue.iter().take(n).cloned().collect()
    }

    fn written(&self, n: usize) {
        let mut inner = self.lock();
        let n = n.min(inner.queue.len());
        inner.queue.drain(..n);
    }

    fn take_verifies(&self) -> Vec<(String, String, VerifyReply)> {
        std::mem::take(&mut self.lock().verifies)
    }

    fn set_status(&self, auth: &'static str, tls: &str) {
        let mut inner = self.lock();
        inner.auth = auth;
        inner.tls = tls.to_owned();
        if !auth.is_empty() {
            inner.backoff = Duration::ZERO;
            inner.retry_at = None;
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn info(&self) -> Option<StreamInfo> {
        let inner = self.lock();
        if inner.actor.is_none() && inner.queue.is_empty() {
            return None;
        }
        Some(StreamInfo {
            direction: "out",
            local: self.local.clone(),
            remote: self.remote.clone(),
            auth: inner.auth.to_owned(),
            tls: if inner.tls.is_empty() {
                "none".to_owned()
            } else {
                inner.tls.clone()
            },
            queued: inner.queue.len(),
            path: format!("root/s2s/{}", self.actor_id()),
        })
    }

    /// Asks the actor to close its stream (`chorusctl s2s close`).
    pub(crate) fn close(&self) -> bool {
        match &self.lock().actor {
            Some(a) => a.cast(OutMsg::Close).is_ok(),
            None => false,
        }
    }
}

/// Why a stanza was not queued.
pub(crate) enum Pushed {
    /// Bounce it with this condition and text.
    Bounce(Element, StanzaErrorCondition, &'static str),
    /// The link was forgotten meanwhile: push on a fresh one.
    Removed(Element),
}

/// The spec of a link's actor: transient, so a kill brings it back on the
/// same link, and a stop on purpose (idle, failed) does not.
fn spec(link: Arc<Link>, ctx: Arc<S2sContext>) -> ChildSpec {
    ChildSpec::worker(link.actor_id(), Restart::Transient, move |c: StartCtx| {
        let args = (link.clone(), ctx.clone());
        async move {
            let (a, _) = Actor::spawn_linked(None, OutActor, args, c.supervisor).await?;
            Ok(a.get_cell())
        }
    })
    .kind("s2s-out")
}

pub enum OutMsg {
    /// Stanzas or verify requests are waiting.
    Wake,
    /// The connection attempt numbered so ended.
    Connected(u64, Box<Result<connect::Conn, connect::ConnectError>>),
    /// One event read on connection `n`; the reply paces the reader.
    Event(u64, Box<Result<StreamEvent, XmlError>>, RpcReplyPort<Flow>),
    /// Connection `n` was closed by the peer or failed.
    Closed(u64),
    /// Once a second: deadlines and idleness.
    Tick,
    /// An operator closes the stream.
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// `<auth mechanism='EXTERNAL'>` sent.
    Sasl,
    /// SASL succeeded; waiting for the restarted stream's features.
    SaslRestart,
    /// `<db:result>` sent.
    Dialback,
    Up,
}

pub struct OutActor;

pub struct OutState {
    link: Arc<Link>,
    ctx: Arc<S2sContext>,
    myself: ActorRef<OutMsg>,
    /// Numbers connections, so that a late event of an old one is ignored.
    conn: u64,
    phase: Phase,
    writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    /// The remote's stream id: the dialback key covers it.
    stream_id: String,
    dialback_offered: bool,
    sasl_offered: bool,
    verified: bool,
    tls: String,
    /// db:verify sent, by id, awaiting the remote's answer.
    verifying: HashMap<String, Vec<VerifyReply>>,
    /// Authentication must be done by then.
    deadline: Instant,
    last_active: Instant,
    /// Reconnections of an established stream in a row.
    reconnects: u32,
}

impl Drop for OutState {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        // Killed or stopped: a restart registers again; otherwise the next
        // stanza starts a fresh actor rather than waking a dead one.
        self.link.actor_gone(self.myself.get_id());
    }
}

impl Actor for OutActor {
    type Msg = OutMsg;
    type State = OutState;
    type Arguments = (Arc<Link>, Arc<S2sContext>);

    async fn pre_start(
        &self,
        myself: ActorRef<OutMsg>,
        (link, ctx): Self::Arguments,
    ) -> Result<OutState, ActorProcessingErr> {
        {
            let mut inner = link.lock();
            inner.actor = Some(myself.clone());
            inner.starting = false;
        }
        myself.send_interval(Duration::from_secs(1), || OutMsg::Tick);
        let mut state = OutState {
            deadline: Instant::now() + ctx.config().connect_timeout(),
            link,
            ctx,
            myself,
            conn: 0,
            phase: Phase::Connecting,
            writer: None,
            reader: None,
            stream_id: String::new(),
            dialback_offered: false,
            sasl_offered: false,
            verified: false,
            tls: String::new(),
            verifying: HashMap::new(),
            last_active: Instant::now(),
            reconnects: 0,
        };
        state.connect();
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<OutMsg>,
        msg: OutMsg,
        state: &mut OutState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OutMsg::Wake => {
                if state.phase == Phase::Up {
                    state.send_verifies().await;
                    state.flush().await;
                } else if state.writer.is_some() {
                    state.send_verifies().await;
                }
            }
            OutMsg::Connected(n, result) if n == state.conn => match *result {
                Ok(conn) => state.connected(conn).await,
                Err(e) => {
                    tracing::info!(local = %state.link.local, remote = %state.link.remote, error = %e, "s2s connection failed");
                    state.fail(e.condition(), e.text()).await;
                }
            },
            OutMsg::Event(n, ev, reply) => {
                let flow = if n == state.conn {
                    state.event(*ev).await
                } else {
                    Flow::Stop
                };
                let _ = reply.send(flow);
            }
            OutMsg::Closed(n) if n == state.conn => state.lost().await,
            OutMsg::Tick => state.tick().await,
            OutMsg::Close => {
                state.write_raw(b"</stream:stream>").await;
                state.drop_connection();
                if state.ctx.shutting_down() {
                    // What is queued is lost with the process's memory.
                    let mut inner = state.link.lock();
                    state.link.terminate(&state.ctx, &mut inner, &state.myself);
                } else if state.link.retire(&state.ctx, &state.myself) {
                    state.ctx.forget(&state.link);
                } else {
                    state.connect();
                }
            }
            OutMsg::Connected(..) | OutMsg::Closed(_) => {}
        }
        Ok(())
    }
}

impl OutState {
    fn connect(&mut self) {
        self.drop_connection();
        self.conn += 1;
        self.phase = Phase::Connecting;
        self.deadline = Instant::now() + self.ctx.config().connect_timeout();
        let (n, ctx, me) = (self.conn, self.ctx.clone(), self.myself.clone());
        let (local, remote) = (self.link.local.clone(), self.link.remote.clone());
        tokio::spawn(async move {
            let timeout = ctx.config().connect_timeout();
            let result = match tokio::time::timeout(
                timeout,
                connect::connect(&ctx, &local, &remote),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(connect::ConnectError::Timeout),
            };
            let _ = me.cast(OutMsg::Connected(n, Box::new(result)));
        });
    }

    fn drop_connection(&mut self) {
        self.writer = None;
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        // Dropped: the waiting checks learn the connection failed.
        self.verifying.clear();
    }

    async fn connected(&mut self, conn: connect::Conn) {
        let connect::Conn {
            read,
            write,
            parser,
            stream_id,
            features,
            dialback_declared,
            verified,
            tls,
        } = conn;
        self.writer = Some(write);
        self.stream_id = stream_id;
        self.verified = verified;
        self.tls = tls;
        self.sasl_offered = features
            .get_child("mechanisms", ns::SASL)
            .is_some_and(|m| m.children().any(|c| c.text().trim() == "EXTERNAL"));
        self.dialback_offered = dialback_declared
            || features
                .get_child("dialback", dialback::NS_FEATURE)
                .is_some();
        let (n, me) = (self.conn, self.myself.clone());
        self.reader = Some(tokio::spawn(read_loop(n, read, parser, me)));
        self.last_active = Instant::now();
        self.send_verifies().await;
        self.authenticate().await;
    }

    /// XEP-0178 when the certificate verifies and EXTERNAL is offered,
    /// else XEP-0220.
    async fn authenticate(&mut self) {
        if self.verified && self.sasl_offered {
            use base64::Engine;
            // XEP-0178 §3 step 5: the authorization identity is our domain.
            let authzid = base64::engine::general_purpose::STANDARD.encode(&self.link.local);
            let auth = format!(
                "<auth xmlns='{}' mechanism='EXTERNAL'>{authzid}</auth>",
                ns::SASL
            );
            self.phase = Phase::Sasl;
            self.write_raw(auth.as_bytes()).await;
        } else {
            self.dialback().await;
        }
    }

    async fn dialback(&mut self) {
        if !self.ctx.config().dialback || !self.dialback_offered {
            let reason = if self.ctx.config().dialback {
                "the remote server offers neither a verifiable certificate nor dialback"
            } else {
                "the remote server's certificate does not verify (dialback is off)"
            };
            tracing::warn!(local = %self.link.local, remote = %self.link.remote, reason, "s2s authentication impossible");
            self.fail(StanzaErrorCondition::RemoteServerNotFound, "")
                .await;
            return;
        }
        let key = self
            .ctx
            .secret
            .key(&self.link.remote, &self.link.local, &self.stream_id);
        let result = format!(
            "<db:result from='{}' to='{}'>{key}</db:result>",
            escape_attr(&self.link.local),
            escape_attr(&self.link.remote)
        );
        self.phase = Phase::Dialback;
        self.write_raw(result.as_bytes()).await;
    }

    async fn send_verifies(&mut self) {
        if self.writer.is_none() {
            return;
        }
        for (id, key, reply) in self.link.take_verifies() {
            let v = format!(
                "<db:verify from='{}' to='{}' id='{}'>{}</db:verify>",
                escape_attr(&self.link.local),
                escape_attr(&self.link.remote),
                escape_attr(&id),
                escape_text(&key)
            );
            self.verifying.entry(id).or_default().push(reply);
            self.write_raw(v.as_bytes()).await;
        }
    }

    async fn event(&mut self, ev: Result<StreamEvent, XmlError>) -> Flow {
        self.last_active = Instant::now();
        let el = match ev {
            Ok(StreamEvent::Element(el)) => el,
            Ok(StreamEvent::Header(_)) => return Flow::Continue,
            Ok(StreamEvent::End) => {
                self.lost().await;
                return Flow::Stop;
            }
            Err(e) => {
                tracing::info!(remote = %self.link.remote, error = %e.detail, "s2s-out: unreadable stream");
                self.lost().await;
                return Flow::Stop;
            }
        };
        if el.is("error", ns::STREAM) {
            let condition = el.children().next().map(|c| c.name().to_owned());
            tracing::info!(remote = %self.link.remote, condition, "s2s-out: stream error from the remote");
            self.lost().await;
            return Flow::Stop;
        }
        match (self.phase, el.name(), el.ns()) {
            (Phase::Sasl, "success", ns::SASL) => {
                self.phase = Phase::SaslRestart;
                let header = connect::header(&self.link.local, &self.link.remote);
                self.write_raw(header.as_bytes()).await;
                return Flow::Reset;
            }
            (Phase::Sasl, "failure", ns::SASL) => {
                tracing::info!(remote = %self.link.remote, "SASL EXTERNAL refused; trying dialback");
                self.dialback().await;
            }
            (Phase::SaslRestart, "features", ns::STREAM) => self.up("external").await,
            (_, "result", dialback::NS) => {
                if self.phase == Phase::Dialback
                    && el.attr("from") == Some(self.link.remote.as_str())
                    && el.attr("to") == Some(self.link.local.as_str())
                {
                    if el.attr("type") == Some("valid") {
                        self.up("dialback").await;
                    } else {
                        tracing::warn!(local = %self.link.local, remote = %self.link.remote, answer = el.attr("type"), "the remote server refused our dialback key");
                        self.fail(StanzaErrorCondition::RemoteServerNotFound, "")
                            .await;
                        return Flow::Stop;
                    }
                }
            }
            (_, "verify", dialback::NS) => {
                let ours = el.attr("from") == Some(self.link.remote.as_str())
                    && el.attr("to") == Some(self.link.local.as_str());
                let outcome = match el.attr("type") {
                    Some("valid") if ours => crate::Verified::Valid,
                    Some("error") => crate::Verified::Failed("remote-connection-failed"),
                    _ => crate::Verified::Invalid,
                };
                if let Some(replies) = el.attr("id").and_then(|id| self.verifying.remove(id)) {
                    for r in replies {
                        let _ = r.send(outcome);
                    }
                }
            }
            _ => {
                tracing::debug!(remote = %self.link.remote, element = el.name(), "s2s-out: ignored");
            }
        }
        Flow::Continue
    }

    async fn up(&mut self, auth: &'static str) {
        tracing::info!(local = %self.link.local, remote = %self.link.remote, auth, tls = %self.tls, "s2s stream established");
        self.phase = Phase::Up;
        self.link.set_status(auth, &self.tls);
        self.flush().await;
    }

    /// Writes the queue, a batch at a time; a stanza leaves the queue once
    /// written.
    async fn flush(&mut self) {
        const BATCH: usize = 64;
        while self.phase == Phase::Up {
            let batch = self.link.peek(BATCH);
            if batch.is_empty() {
                break;
            }
            let mut out = Vec::with_capacity(batch.len() * 256);
            for mut el in batch.iter().cloned() {
                // RFC 6120 §4.8.3: stanzas go out in the server namespace.
                el.rename_ns(ns::JABBER_CLIENT, ns::JABBER_SERVER);
                el.write_to(&mut out, &NsContext::stream(ns::JABBER_SERVER));
            }
            if !self.write_raw(&out).await {
                return;
            }
            self.link.written(batch.len());
            self.reconnects = 0;
            self.last_active = Instant::now();
        }
    }

    /// Writes `bytes`; false (and the connection handled as lost) when it
    /// cannot.
    async fn write_raw(&mut self, bytes: &[u8]) -> bool {
        let Some(w) = self.writer.as_mut() else {
            return false;
        };
        let timeout = self.ctx.c2s.config.c2s.write_timeout();
        let ok = matches!(
            tokio::time::timeout(timeout, async {
                w.write_all(bytes).await?;
                w.flush().await
            })
            .await,
            Ok(Ok(()))
        );
        if !ok {
            tracing::info!(remote = %self.link.remote, "s2s-out: write failed");
            self.writer = None;
            // Handled as a connection the peer closed, once this step ends;
            // the reader goes now, so that it is handled once.
            if let Some(r) = self.reader.take() {
                r.abort();
            }
            let _ = self.myself.cast(OutMsg::Closed(self.conn));
        }
        ok
    }

    /// The connection ended. An established stream with work left
    /// reconnects (a few times in a row at most); an idle one retires; one
    /// that never authenticated is a failure.
    async fn lost(&mut self) {
        let was_up = self.phase == Phase::Up;
        self.drop_connection();
        self.link.set_status("", "");
        if !was_up {
            self.fail(StanzaErrorCondition::RemoteServerNotFound, "")
                .await;
            return;
        }
        if self.link.retire(&self.ctx, &self.myself) {
            self.ctx.forget(&self.link);
            return;
        }
        self.reconnects += 1;
        if self.reconnects > 3 {
            self.fail(StanzaErrorCondition::RemoteServerNotFound, "")
                .await;
            return;
        }
        self.connect();
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        // Checks whose asker gave up (its own timeout) hold nothing open.
        self.verifying.retain(|_, replies| {
            replies.retain(|r| !r.is_closed());
            !replies.is_empty()
        });
        if self.phase != Phase::Up {
            if now > self.deadline {
                tracing::info!(local = %self.link.local, remote = %self.link.remote, "s2s connection timed out");
                self.fail(StanzaErrorCondition::RemoteServerTimeout, "")
                    .await;
            }
            return;
        }
        if self.verifying.is_empty()
            && now.duration_since(self.last_active) > self.ctx.config().idle_timeout()
            && self.link.queued() == 0
        {
            self.write_raw(b"</stream:stream>").await;
            if self.link.retire(&self.ctx, &self.myself) {
                self.ctx.forget(&self.link);
                tracing::debug!(remote = %self.link.remote, "idle s2s stream closed");
                self.drop_connection();
                self.phase = Phase::Connecting;
                self.deadline = now + Duration::from_secs(3600);
            } else {
                self.connect();
            }
        }
    }

    /// Bounces the queue and stops (see [`Link::fail`]).
    async fn fail(&mut self, condition: StanzaErrorCondition, text: &'static str) {
        self.drop_connection();
        // Nothing more happens here until the supervisor stops the actor.
        self.phase = Phase::Connecting;
        self.deadline = Instant::now() + Duration::from_secs(3600);
        let mut queued = self.link.fail(&self.ctx, condition.clone(), text);
        let router = self.ctx.router().clone();
        // The link keeps this actor until the bounces are routed, so what
        // is pushed meanwhile bounces too. (A kill in the middle loses the
        // bounces not yet routed: the stanzas are out of the queue.)
        loop {
            for stanza in queued {
                if let Some(e) = bounce(&stanza, condition.clone(), text) {
                    self.ctx.bounced();
                    router.send(e).await;
                }
            }
            queued = self.link.fail_done(&self.ctx, &self.myself);
            if queued.is_empty() {
                break;
            }
        }
        self.ctx.forget(&self.link);
    }
}

/// Reads connection `n`, handing each event to the actor and waiting for
/// its answer, as the receiver does for c2s.
async fn read_loop(
    n: u64,
    mut read: Box<dyn AsyncRead + Send + Unpin>,
    mut parser: chorus_xml::StreamParser,
    actor: ActorRef<OutMsg>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        loop {
            let ev = match parser.next_event() {
                Ok(None) => break,
                Ok(Some(ev)) => Ok(ev),
                Err(e) => Err(e),
            };
            let failed = ev.is_err();
            match actor
                .call(|r| OutMsg::Event(n, Box::new(ev), r), None)
                .await
            {
                Ok(ractor::rpc::CallResult::Success(Flow::Continue)) => {}
                Ok(ractor::rpc::CallResult::Success(Flow::Reset)) => parser.reset(),
                _ => return,
            }
            if failed {
                return;
            }
        }
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = actor.cast(OutMsg::Closed(n));
                return;
            }
            Ok(k) => parser.feed(&buf[..k]),
        }
    }
}
