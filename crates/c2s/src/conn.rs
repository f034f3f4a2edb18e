//! Starting one connection: the `conn-<id>` group of socket, receiver and c2s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chorus_modules::{Modules, Services};
use chorus_router::{Router, SessionsMsg};
use chorus_storage::Storage;
use chorus_supervisor::{GroupMember, GroupSpec, PartialGroup, Registry, StartCtx};
use chorus_xml::Limits;
use ractor::{Actor, ActorRef};
use tokio::net::TcpStream;

use crate::c2s::{C2sActor, C2sArgs, C2sMsg};
use crate::framing::Framing;
use crate::receiver::StreamOwner;
use crate::receiver::{Input, ReceiverActor, ReceiverArgs};
use crate::socket::{OutboundGauge, SocketActor, SocketArgs, SocketHandle, Writer};
use crate::tls::TlsSetup;

/// What every connection of a server shares: configuration, services and
/// counters. Built once by the server.
pub struct C2sContext {
    /// The configuration the server started with: options are read from
    /// their declared sections (`chorus-config`), never copied field by
    /// field. What a reload changes for new connections (parser limits,
    /// certificates) lives beside it.
    pub config: chorus_config::Config,
    /// Domains served, lowercase.
    pub domains: Vec<String>,
    /// Parser limits for new connections; `config reload` replaces them.
    limits: std::sync::RwLock<Limits>,
    /// TLS for new connections; `config reload` replaces the certificates.
    /// None only in tests that run without certificates.
    tls: std::sync::RwLock<Option<Arc<TlsSetup>>>,
    /// XEP-0198: resumable sessions by stream management id.
    pub(crate) sm_sessions: dashmap::DashMap<String, crate::c2s::SmEntry>,
    pub router: Arc<Router>,
    pub storage: Arc<Storage>,
    pub modules: Arc<Modules>,
    pub metrics: Arc<chorus_metrics::Metrics>,
    pub services: Arc<Services>,
    pub registry: Registry,
    /// Tree path of the `sessions` actor (looked up per bind: it may have
    /// been restarted).
    pub sessions_path: String,
    /// Source of `conn-<id>` ids, unique across ports.
    next_id: AtomicU64,
    /// Open client connections by address (`c2s.max_connections_per_ip`).
    pub(crate) per_ip: chorus_listener::IpCounts,
    /// The server is draining: new streams are refused with system-shutdown.
    pub shutting_down: std::sync::atomic::AtomicBool,
    /// Seals FAST token hashes in storage (`chorus_sasl::seal`); kept in
    /// `<data_dir>/fast-token.key`, outside the database.
    pub(crate) fast_key: [u8; 32],
    /// ACME HTTP-01 challenges in flight (RFC 8555 §8.3): token to key
    /// authorization, filled by the ACME worker and served by the `http`
    /// listeners under `/.well-known/acme-challenge/`.
    pub acme_challenges: Arc<dashmap::DashMap<String, String>>,
}

/// The server-wide services a connection uses, built once by the server.
pub struct C2sShared {
    pub router: Arc<Router>,
    pub storage: Arc<Storage>,
    pub modules: Arc<Modules>,
    pub services: Arc<Services>,
    pub metrics: Arc<chorus_metrics::Metrics>,
    pub registry: Registry,
    /// Tree path of the `sessions` actor.
    pub sessions_path: String,
}

impl C2sContext {
    pub fn new(
        config: chorus_config::Config,
        tls: Option<Arc<TlsSetup>>,
        shared: C2sShared,
    ) -> Self {
        let C2sShared {
            router,
            storage,
            modules,
            services,
            metrics,
            registry,
            sessions_path,
        } = shared;
        C2sContext {
            domains: config
                .server
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            limits: std::sync::RwLock::new(config.limits.xml()),
            tls: std::sync::RwLock::new(tls),
            fast_key: crate::c2s::fast_key(&config.server.data_dir),
            config,
            sm_sessions: dashmap::DashMap::new(),
            router,
            storage,
            modules,
            metrics,
            services,
            registry,
            sessions_path,
            next_id: AtomicU64::new(1),
            per_ip: Default::default(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            acme_challenges: Arc::default(),
        }
    }

    /// The current parser limits.
    pub fn limits(&self) -> Limits {
        self.limits
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The current TLS setup (None only in tests without certificates).
    pub fn tls(&self) -> Option<Arc<TlsSetup>> {
        self.tls
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Applies reloaded limits and certificates to connections opened from
    /// now on; established ones keep theirs.
    pub fn reload(&self, limits: Limits, tls: Option<Arc<TlsSetup>>) {
        if let Ok(mut l) = self.limits.write() {
            *l = limits;
        }
        if let Ok(mut t) = self.tls.write() {
            *t = tls;
        }
    }

    /// Swaps in new certificates (a renewed ACME one) for connections
    /// opened from now on, leaving the parser limits alone.
    pub fn set_tls(&self, tls: Arc<TlsSetup>) {
        if let Ok(mut t) = self.tls.write() {
            *t = Some(tls);
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn sessions_actor(&self) -> Option<ActorRef<SessionsMsg>> {
        self.registry
            .lookup(&self.sessions_path)
            .map(ActorRef::from)
    }
}

/// The `c2s` and `c2s-tls` listener kinds: every accepted connection
/// becomes a client connection group.
pub struct ClientConnections {
    ctx: Arc<C2sContext>,
    /// XEP-0368: the connection starts with the TLS handshake.
    direct_tls: bool,
    framing: Arc<dyn Framing>,
}

impl ClientConnections {
    pub fn new(ctx: Arc<C2sContext>, direct_tls: bool) -> ClientConnections {
        ClientConnections {
            ctx,
            direct_tls,
            framing: Arc::new(crate::framing::XmlStream::client()),
        }
    }
}

impl chorus_listener::Connections for ClientConnections {
    fn next_id(&self) -> u64 {
        self.ctx.next_conn_id()
    }

    fn group(&self, id: u64, stream: TcpStream) -> GroupSpec {
        connection_group(
            id,
            stream,
            self.direct_tls,
            self.framing.clone(),
            self.ctx.clone(),
        )
    }
}

/// The group spec for one accepted connection. The members are spawned
/// linked to the `conns` supervisor in dependency order (socket, c2s,
/// receiver) and listed in the tree as socket, receiver, c2s. With
/// `direct_tls` (XEP-0368) the receiver runs the handshake before anything
/// is read.
///
/// c2s is the group's only significant member: its exit ends the group.
/// Socket and receiver are insignificant and monitored by c2s, which decides
/// what their exit means: the end of the session (it stops itself, and the
/// group with it), or, with XEP-0198 resumption enabled, a detached session
/// that waits for its client in a group of one.
pub fn connection_group(
    id: u64,
    stream: TcpStream,
    direct_tls: bool,
    framing: Arc<dyn Framing>,
    ctx: Arc<C2sContext>,
) -> GroupSpec {
    GroupSpec::new(format!("conn-{id}"), move |sctx: StartCtx| async move {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok().map(|a| a.ip());
        let (input, writer) = if direct_tls {
            (Input::Handshake(stream), Writer::Detached)
        } else {
            let (r, w) = stream.into_split();
            (Input::Plain(r), Writer::Plain(w))
        };
        // Across the c2s and c2s-tls listeners; one past the cap is
        // refused at its header, with a stream error.
        let slot =
            chorus_listener::IpSlot::take(&ctx.per_ip, peer, ctx.config.c2s.max_connections_per_ip);
        let transport = Transport {
            peer,
            input,
            writer,
            framing,
            tls: None,
            messages: false,
            over_limit: slot.is_none(),
            slot,
        };
        start_members(id, sctx, transport, ctx).await
    })
}

/// One connection's transport, as the members take it.
pub(crate) struct Transport {
    pub(crate) peer: Option<std::net::IpAddr>,
    pub(crate) input: Input,
    pub(crate) writer: Writer,
    pub(crate) framing: Arc<dyn Framing>,
    /// TLS already up below the stream (see [`C2sArgs::tls`]).
    pub(crate) tls: Option<crate::tls::ChannelBindings>,
    /// Writes are messages (WebSocket), not a byte stream.
    pub(crate) messages: bool,
    /// The connection's place in its listener's per-address count; None
    /// when the address has no place left (refused at its header) or its
    /// listener counts otherwise (HTTP).
    pub(crate) slot: Option<chorus_listener::IpSlot>,
    /// Past `c2s.max_connections_per_ip`.
    pub(crate) over_limit: bool,
}

/// Spawns socket, c2s and receiver for `transport` under the `conns`
/// supervisor (see [`connection_group`]).
pub(crate) async fn start_members(
    id: u64,
    sctx: StartCtx,
    transport: Transport,
    ctx: Arc<C2sContext>,
) -> Result<Vec<GroupMember>, ractor::SpawnErr> {
    let Transport {
        peer,
        input,
        writer,
        framing,
        tls,
        messages,
        slot,
        over_limit,
    } = transport;
    let sup = sctx.supervisor.clone();
    let members = spawn_stream(
        &sctx,
        &ctx,
        StreamTransport {
            input,
            writer,
            framing: framing.clone(),
            messages,
            slot,
            tls: ctx.tls(),
            significant: false,
        },
        "c2s",
        |socket| async {
            let (c2s, _) = Actor::spawn_linked(
                None,
                C2sActor,
                C2sArgs {
                    peer,
                    conn_id: id,
                    socket,
                    ctx: ctx.clone(),
                    framing,
                    tls,
                    over_limit,
                },
                sup,
            )
            .await?;
            Ok(c2s)
        },
    )
    .await?;
    // c2s monitors the transport from here on (a member that already
    // died is noticed by its status).
    members
        .owner
        .cast(C2sMsg::Monitor(members.transport.to_vec()))
        .map_err(|_| ractor::SpawnErr::StartupFailed("c2s exited at start".into()))?;
    tracing::debug!(conn = id, "connection started");
    Ok(members.group.finish())
}

/// What the socket and receiver of one stream take, whichever state
/// machine owns the stream (c2s, `s2s-in`, `component`).
pub struct StreamTransport {
    pub input: Input,
    pub writer: Writer,
    pub framing: Arc<dyn Framing>,
    /// Writes are messages (WebSocket), not a byte stream.
    pub messages: bool,
    /// The connection's place in its listener's per-address count, held by
    /// the socket.
    pub slot: Option<chorus_listener::IpSlot>,
    /// For the receiver's STARTTLS or direct TLS handshake.
    pub tls: Option<Arc<TlsSetup>>,
    /// Whether the socket's or the receiver's exit ends the group. False
    /// when the owner monitors them and decides (c2s: XEP-0198
    /// detachment).
    pub significant: bool,
}

/// One stream's members, as [`spawn_stream`] started them.
pub struct StreamMembers<M: ractor::Message> {
    /// Socket, receiver and owner, in the tree's order; dropping it kills
    /// them (an early return leaks no actor).
    pub group: PartialGroup,
    pub owner: ActorRef<M>,
    /// The socket's and the receiver's cells, for the owner to monitor.
    pub transport: [ractor::ActorCell; 2],
}

/// Spawns one stream's socket, then its owner (`owner`, given the socket's
/// handle), then the receiver that feeds the owner, linked to the `conns`
/// supervisor in that dependency order. The members are named `socket`,
/// `receiver` and `owner_id`; if a spawn fails, what was started is killed.
pub async fn spawn_stream<M, F, Fut>(
    sctx: &StartCtx,
    ctx: &C2sContext,
    t: StreamTransport,
    owner_id: &str,
    owner: F,
) -> Result<StreamMembers<M>, ractor::SpawnErr>
where
    M: StreamOwner,
    F: FnOnce(SocketHandle) -> Fut,
    Fut: std::future::Future<Output = Result<ActorRef<M>, ractor::SpawnErr>>,
{
    let sup = sctx.supervisor.clone();
    let mut gauge = OutboundGauge::new(
        ctx.config.limits.max_outbound_stanzas,
        ctx.config.limits.max_outbound_bytes,
    );
    if t.messages {
        gauge = gauge.messages();
    }
    let gauge = Arc::new(gauge);
    let mut group = PartialGroup::new();
    let (socket, _) = Actor::spawn_linked(
        None,
        SocketActor,
        SocketArgs {
            slot: t.slot,
            writer: t.writer,
            write_timeout: ctx.config.c2s.write_timeout(),
            gauge: gauge.clone(),
            framing: t.framing.clone(),
        },
        sup.clone(),
    )
    .await?;
    let socket_cell = socket.get_cell();
    group.push_member(
        GroupMember::new("socket", "worker", socket_cell.clone()).significant(t.significant),
    );
    let owner = owner(SocketHandle::new(socket.clone(), gauge)).await?;
    let receiver = Actor::spawn_linked(
        None,
        ReceiverActor::<M>::default(),
        ReceiverArgs {
            input: t.input,
            owner: owner.clone(),
            socket,
            limits: ctx.limits(),
            tls: t.tls,
            handshake_timeout: ctx.config.handshake_timeout(),
            framing: t.framing,
        },
        sup,
    )
    .await;
    let receiver = match receiver {
        Ok((r, _)) => r.get_cell(),
        Err(e) => {
            owner.get_cell().kill();
            return Err(e);
        }
    };
    group.push_member(
        GroupMember::new("receiver", "worker", receiver.clone()).significant(t.significant),
    );
    group.push(owner_id.to_owned(), "worker", owner.get_cell());
    Ok(StreamMembers {
        group,
        owner,
        transport: [socket_cell, receiver],
    })
}
