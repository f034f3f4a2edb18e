//! The Chorus server as a library: [`Server::start`] builds the supervision
//! tree from a [`Config`] and returns a handle. The `chorus` binary is a thin
//! shell around it; integration tests start servers in-process with it.
//!
//! ```text
//! root                      one_for_one, intensity from [supervision]
//! ├─ sessions               permanent worker: owns the session table
//! ├─ listeners              one_for_one supervisor
//! │  └─ port:c2s@ADDR       one per [[listeners]] entry
//! │     ├─ acceptor
//! │     └─ conns            temporary one_for_all groups, one per connection
//! │        └─ conn-N        socket, receiver, c2s
//! └─ admin                  HTTP+JSON admin API on a unix socket
//! ```

pub mod lock;
pub mod notify;
pub mod reload;
pub mod xeps;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chorus_admin::adhoc::AdminSlot;
use chorus_admin::metrics::{MetricsActor, MetricsArgs, MetricsContext};
use chorus_admin::{AdminActor, AdminArgs, AdminContext};
use chorus_c2s::c2s::C2sMsg;
use chorus_c2s::tls::{dev_certificate, CertSource, TlsSetup};
use chorus_c2s::{C2sContext, C2sShared};
use chorus_config::Config;
use chorus_listener::{address_key, port_spec, BoundAddrs};
use chorus_modules::{Modules, Services};
use chorus_router::{Router, SessionTable, SessionsActor};
use chorus_storage::Storage;
use chorus_supervisor::{
    spawn_root, spawn_supervisor, ChildSpec, Registry, Restart, RootExit, RootHandle, StartCtx,
    Strategy, SupervisorMsg, SupervisorOptions,
};
use ractor::{Actor, ActorRef};

/// The root of the tree's paths.
pub const ROOT: &str = "root";

/// The configuration key of the metrics endpoint's address, for errors.
const METRICS_KEY: &str = "metrics.address";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("cannot start the supervision tree: {0}")]
    Spawn(String),
    #[error("storage: {0}")]
    Storage(#[from] chorus_storage::StorageError),
    #[error("TLS: {0}")]
    Tls(#[from] chorus_c2s::tls::TlsError),
    #[error(transparent)]
    Bind(#[from] chorus_listener::BindError),
    #[error("listener kind \"{0}\" is not available in this version of Chorus")]
    ListenerKind(&'static str),
    #[error("route table: {0}")]
    Route(String),
    #[error("dialback secret {0}: {1}")]
    DialbackKey(PathBuf, std::io::Error),
}

/// The TLS setup from configuration and the ACME certificates on disk,
/// generating the dev certificate when neither gives a default one.
pub(crate) fn tls_setup(config: &Config) -> Result<TlsSetup, StartError> {
    // ACME certificates already obtained (none unless acme.enabled).
    let (acme_sni, acme_default) = chorus_acme::installed(config);
    let configured = !config.tls.cert.as_os_str().is_empty();
    let default = if let (false, Some(acme)) = (configured, acme_default) {
        acme
    } else if !configured {
        let (cert, key) = dev_certificate(&config.server.data_dir, &config.server.domains)?;
        CertSource {
            domain: None,
            cert,
            key,
        }
    } else {
        CertSource {
            domain: None,
            cert: config.tls.cert.clone(),
            key: config.tls.key.clone(),
        }
    };
    let mut sni: Vec<CertSource> = config
        .tls
        .sni
        .iter()
        .map(|s| CertSource {
            domain: Some(s.domain.clone()),
            cert: s.cert.clone(),
            key: s.key.clone(),
        })
        .collect();
    // After [tls]'s: a later entry wins a name, and `installed` left out
    // the names [tls] keeps unless acme.domains chose ACME for them.
    sni.extend(acme_sni);
    Ok(TlsSetup::new(&default, &sni)?)
}

/// The admin commands' view of federation.
struct S2sAdmin(Arc<chorus_s2s::S2sContext>);

impl chorus_admin::S2sControl for S2sAdmin {
    fn streams(&self) -> Vec<chorus_admin::S2sStream> {
        self.0
            .streams()
            .into_iter()
            .map(|s| chorus_admin::S2sStream {
                direction: s.direction,
                local: s.local,
                remote: s.remote,
                auth: s.auth,
                tls: s.tls,
                queued: s.queued,
                path: s.path,
            })
            .collect()
    }

    fn close(&self, domain: &str) -> usize {
        self.0.close(domain)
    }
}

/// What `chorusctl cert list` shows: each certificate the listeners serve
/// now, and where it came from.
fn certificates_in_use(ctx: &C2sContext, config: &Config) -> Vec<chorus_admin::CertificateInfo> {
    let Some(tls) = ctx.tls() else {
        return Vec::new();
    };
    let acme_dir = chorus_acme::acme_dir(config);
    let dev = config.server.data_dir.join("dev-cert.pem");
    tls.certificates()
        .into_iter()
        .map(|c| {
            let source = if c.path.starts_with(&acme_dir) {
                "acme"
            } else if c.path == dev {
                "dev"
            } else {
                "configured"
            };
            let facts = chorus_c2s::tls::CertFacts::from_der(&c.leaf);
            chorus_admin::CertificateInfo {
                source,
                path: c.path,
                sni: c.sni,
                default: c.default,
                names: facts
                    .as_ref()
                    .map(|f| f.dns_names.clone())
                    .unwrap_or_default(),
                issuer: facts.as_ref().map(|f| f.issuer.clone()).unwrap_or_default(),
                not_after: facts.ok().map(|f| f.not_after),
            }
        })
        .collect()
}

/// XEP-0313 retention: deletes archived messages older than `retention`
/// now and then every hour, in the background. A plain task rather than a
/// supervised actor: it holds no state, a failed sweep is logged and the
/// next one retries, and it ends by itself once the storage is dropped (it
/// holds only a weak reference). Not changed by a configuration reload.
fn spawn_archive_retention(storage: std::sync::Weak<Storage>, retention: std::time::Duration) {
    use chorus_storage::ArchiveStore;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let Some(storage) = storage.upgrade() else {
                return;
            };
            let cutoff = std::time::SystemTime::now()
                .checked_sub(retention)
                .unwrap_or(std::time::UNIX_EPOCH);
            match storage.archive_purge_older_than(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "archive retention sweep"),
                Err(e) => tracing::warn!(error = %e, "archive retention sweep failed"),
            }
        }
    });
}

/// What a listener of `kind` starts for each connection it accepts: each
/// kind brings its own connection group. The configuration refuses kinds
/// this version cannot start (`ListenerKind::available`) with the same
/// message.
pub(crate) fn connections(
    ctx: &Arc<C2sContext>,
    s2s: &Arc<chorus_s2s::S2sContext>,
    kind: chorus_config::ListenerKind,
) -> Result<Arc<dyn chorus_listener::Connections>, StartError> {
    use chorus_config::ListenerKind;
    match kind {
        ListenerKind::C2s | ListenerKind::C2sTls => Ok(Arc::new(
            chorus_c2s::ClientConnections::new(ctx.clone(), kind == ListenerKind::C2sTls),
        )),
        ListenerKind::Http | ListenerKind::Https => Ok(Arc::new(
            chorus_http::HttpConnections::new(ctx.clone(), kind == ListenerKind::Https),
        )),
        ListenerKind::S2s | ListenerKind::S2sTls => Ok(Arc::new(chorus_s2s::S2sConnections::new(
            s2s.clone(),
            kind == ListenerKind::S2sTls,
        ))),
        // XEP-0114: each connection a group of socket, receiver, component.
        ListenerKind::Component => Ok(Arc::new(chorus_component::ComponentConnections::new(
            ctx.clone(),
        ))),
    }
}

/// The modules a server runs, in order: the client stream's declarations,
/// every standard feature module, the admin crate's (XEP-0050 ad-hoc
/// commands, XEP-0133), then `extra`.
pub fn modules(config: &Config, extra: Vec<Box<dyn chorus_modules::Module>>) -> Modules {
    modules_with_admin(config, extra, AdminSlot::default())
}

/// [`modules`], with the slot the server fills with its admin context once
/// built: the context comes after the modules (it holds their MUC rooms),
/// and the XEP-0133 commands need it to run.
fn modules_with_admin(
    config: &Config,
    extra: Vec<Box<dyn chorus_modules::Module>>,
    admin: AdminSlot,
) -> Modules {
    let mut list = chorus_c2s::stream_modules();
    list.push(Box::new(chorus_http::Discovery));
    // XEP-0114: the declaration, and the components' domains as hosted
    // services (routed from start, connected or not).
    list.push(Box::new(chorus_component::Component::from_config(config)));
    list.push(Box::new(chorus_s2s::Federation));
    list.extend(Modules::standard_list(config));
    list.extend(chorus_admin::modules(config, admin));
    list.extend(extra);
    Modules::with(list)
}

/// A running server.
pub struct Server {
    pub registry: Registry,
    pub root: ActorRef<SupervisorMsg>,
    handle: Option<RootHandle>,
    pub bound: BoundAddrs,
    pub admin_socket: PathBuf,
    pub sessions: Arc<SessionTable>,
    pub storage: Arc<Storage>,
    /// The router and its route table: services register their domains
    /// here.
    pub router: Arc<Router>,
    /// The feature modules the server runs.
    pub modules: Arc<Modules>,
    c2s: Arc<C2sContext>,
    /// Live configuration reload.
    pub reloader: Arc<reload::Reloader>,
    /// Where the metrics endpoint bound, once it has.
    pub metrics_addr: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    /// The data directory's lock, released when the server is dropped:
    /// an embedding that starts another server on the same directory
    /// stops this one and [`Server::wait`]s for it first.
    _lock: lock::DataDirLock,
}

impl Server {
    pub async fn start(config: Config) -> Result<Server, StartError> {
        Self::start_from(config, None).await
    }

    /// Starts from a configuration read from `path`, which `config reload`
    /// and SIGHUP read again.
    pub async fn start_from(config: Config, path: Option<PathBuf>) -> Result<Server, StartError> {
        Self::start_with(config, path, Vec::new()).await
    }

    /// Starts with feature modules of the caller's besides the standard
    /// ones (after them, so their hooks run last): tests, and later
    /// third-party features.
    pub async fn start_with(
        config: Config,
        path: Option<PathBuf>,
        extra: Vec<Box<dyn chorus_modules::Module>>,
    ) -> Result<Server, StartError> {
        let data_dir = config.server.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| StartError::DataDir(data_dir.clone(), e))?;
        // Before anything else opens a file there: the database, the dev
        // certificate and the admin socket belong to one server.
        let data_lock = lock::DataDirLock::acquire(&data_dir)?;
        let registry = Registry::new();
        let options = SupervisorOptions {
            strategy: Strategy::OneForOne,
            intensity: config.supervision.intensity,
            period: config.supervision.period(),
            ..SupervisorOptions::default()
        };
        let storage = Arc::new(
            Storage::connect_with(
                &config.storage_url(),
                config.storage.sqlite_synchronous == chorus_config::SqliteSync::Normal,
            )
            .await?,
        );
        let tls = Arc::new(tls_setup(&config)?);
        let sessions: Arc<SessionTable> = Arc::default();
        let domains: Vec<String> = config
            .server
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        let router = Arc::new(Router::new(
            sessions.clone(),
            domains.clone(),
            storage.clone(),
        ));
        if let Some(retention) = config.mam.retention() {
            spawn_archive_retention(Arc::downgrade(&storage), retention);
        }
        let admin_slot = AdminSlot::default();
        let modules = Arc::new(modules_with_admin(&config, extra, admin_slot.clone()));
        let metrics: Arc<chorus_metrics::Metrics> = Arc::default();
        let services = Arc::new(Services {
            storage: storage.clone(),
            sessions: sessions.clone(),
            started: Instant::now(),
            software: ("Chorus", env!("CARGO_PKG_VERSION")),
            features: modules.features(),
            account_features: modules.account_features(),
            sasl_iterations: config.sasl.iterations,
            caps_ver: chorus_modules::caps_ver_with_forms(
                &modules.features(),
                &modules.server_info_forms(),
            ),
            server_forms: modules.server_info_forms(),
        });
        // The feature modules answer for the hosted domains themselves and
        // act at routing's hook points.
        modules
            .install(&router, services.clone())
            .map_err(|e| StartError::Spawn(e.to_string()))?;
        let ctx = Arc::new(C2sContext::new(
            config.clone(),
            Some(tls),
            C2sShared {
                router: router.clone(),
                storage: storage.clone(),
                modules: modules.clone(),
                services: services.clone(),
                metrics: metrics.clone(),
                registry: registry.clone(),
                sessions_path: format!("{ROOT}/sessions"),
            },
        ));
        // Federation: every domain the route table does not know is remote.
        let s2s = chorus_s2s::S2sContext::new(ctx.clone())
            .map_err(|e| StartError::DialbackKey(config.server.data_dir.join("dialback.key"), e))?;
        if config.s2s.enabled {
            router
                .routes
                .set_remote(Arc::new(chorus_s2s::Remote(s2s.clone())));
        }
        let s2s_admin: Arc<dyn chorus_admin::S2sControl> = Arc::new(S2sAdmin(s2s.clone()));
        let bound: BoundAddrs = Arc::default();
        let reloader = Arc::new(reload::Reloader {
            path,
            current: std::sync::Mutex::new(config.clone()),
            c2s: ctx.clone(),
            s2s: s2s.clone(),
            registry: registry.clone(),
            bound: bound.clone(),
            options: options.clone(),
            lock: tokio::sync::Mutex::new(()),
        });
        let admin_socket = config.admin_socket();
        let admin_ctx = Arc::new(AdminContext {
            registry: registry.clone(),
            started: Instant::now(),
            root: ROOT.to_owned(),
            storage: storage.clone(),
            sessions: sessions.clone(),
            router: router.clone(),
            domains,
            sasl_iterations: config.sasl.iterations,
            listeners: bound.clone(),
            config_hash: config.hash(),
            metrics: metrics.clone(),
            chaos_allowed: config.admin.chaos,
            muc: modules.muc_rooms(),
            certificates: {
                let (c2s, config) = (ctx.clone(), config.clone());
                Arc::new(move || certificates_in_use(&c2s, &config))
            },
            s2s: s2s_admin.clone(),
            reload: {
                let r = reloader.clone();
                Arc::new(move || {
                    let r = r.clone();
                    Box::pin(async move { r.reload().await })
                })
            },
        });
        // From here the XEP-0133 commands run (before, they answer
        // service-unavailable); no listener is open yet, so none does.
        let _ = admin_slot.set(Arc::downgrade(&admin_ctx));

        let table = sessions.clone();
        let sessions_spec =
            ChildSpec::worker("sessions", Restart::Permanent, move |c: StartCtx| {
                let table = table.clone();
                Box::pin(async move {
                    let (a, _) =
                        Actor::spawn_linked(None, SessionsActor, table, c.supervisor).await?;
                    Ok(a.get_cell())
                })
            });
        // Every port is opened here, before the tree, so that one the
        // server cannot open fails the start with the address and the key
        // to change; each port's first start takes its socket.
        let mut ports: Vec<ChildSpec> = Vec::with_capacity(config.listeners.len());
        for (i, l) in config.listeners.iter().enumerate() {
            let key = address_key(i);
            let listener = chorus_listener::bind(l.address, &key).await?;
            ports.push(port_spec(
                l.clone(),
                key,
                Some(listener),
                connections(&ctx, &s2s, l.kind)?,
                bound.clone(),
                options.clone(),
            ));
        }
        let listener_options = options.clone();
        let listeners_spec =
            ChildSpec::supervisor("listeners", Restart::Permanent, move |c: StartCtx| {
                Box::pin(spawn_supervisor(c, listener_options.clone(), ports.clone()))
            });
        let socket = admin_socket.clone();
        let admin_spec = ChildSpec::worker("admin", Restart::Permanent, move |c: StartCtx| {
            let args = AdminArgs {
                socket: socket.clone(),
                ctx: admin_ctx.clone(),
            };
            Box::pin(async move {
                let (a, _) = Actor::spawn_linked(None, AdminActor, args, c.supervisor).await?;
                Ok(a.get_cell())
            })
        })
        // Waits in accept() like the acceptor: shut down by kill; requests in
        // flight run in their own tasks.
        .shutdown(std::time::Duration::ZERO);
        // Feature modules' own actors (the keepalive, later MUC rooms...),
        // started before any listener takes a client.
        let child_ctx = chorus_modules::ChildCtx {
            router: router.clone(),
            services: services.clone(),
        };
        let module_children = modules.children(&child_ctx);
        // Services on domains of their own (pubsub.<domain>), routed from
        // now on.
        let mut hosted: Vec<String> = Vec::new();
        for (domain, service) in modules.hosted(&child_ctx) {
            hosted.push(domain.clone());
            router
                .routes
                .add(&domain, chorus_router::Destination::Service(service))
                .map_err(|e| StartError::Route(e.to_string()))?;
        }
        let modules_options = options.clone();
        let modules_spec =
            ChildSpec::supervisor("modules", Restart::Permanent, move |c: StartCtx| {
                Box::pin(spawn_supervisor(
                    c,
                    modules_options.clone(),
                    module_children.clone(),
                ))
            });
        let mut children = vec![
            sessions_spec,
            modules_spec,
            s2s.supervisor_spec(),
            listeners_spec,
            admin_spec,
        ];
        if config.acme.enabled {
            // After the listeners: the CA's HTTP-01 requests reach an
            // `http` one.
            let r = reloader.clone();
            children.push(chorus_acme::child_spec(Arc::new(chorus_acme::AcmeArgs {
                config: config.clone(),
                hosted,
                challenges: ctx.acme_challenges.clone(),
                install: Arc::new(move || {
                    let r = r.clone();
                    Box::pin(async move { r.reload_certificates().await })
                }),
            })));
        }
        let metrics_addr: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        if let Ok(address) = config.metrics.address.parse::<SocketAddr>() {
            // Opened now for the same reason as the ports.
            let prebound = Arc::new(std::sync::Mutex::new(Some(
                chorus_listener::bind(address, METRICS_KEY).await?,
            )));
            let mctx = Arc::new(MetricsContext {
                metrics,
                registry: registry.clone(),
                sessions: sessions.clone(),
                modules: modules.clone(),
                storage: storage.clone(),
                listeners: bound.clone(),
                configured_listeners: config.listeners.len(),
                bound: metrics_addr.clone(),
                s2s: s2s_admin.clone(),
            });
            children.push(
                ChildSpec::worker("metrics", Restart::Permanent, move |c: StartCtx| {
                    let args = MetricsArgs {
                        address,
                        key: METRICS_KEY,
                        // The first start's; a restart binds again.
                        prebound: prebound.lock().ok().and_then(|mut p| p.take()),
                        ctx: mctx.clone(),
                    };
                    Box::pin(async move {
                        let (a, _) =
                            Actor::spawn_linked(None, MetricsActor, args, c.supervisor).await?;
                        Ok(a.get_cell())
                    })
                })
                // Waits in accept(), like the acceptor.
                .shutdown(std::time::Duration::ZERO),
            );
        }
        let (root, handle) = spawn_root(ROOT, registry.clone(), options, children)
            .await
            .map_err(|e| StartError::Spawn(e.to_string()))?;
        Ok(Server {
            registry,
            root,
            handle: Some(handle),
            bound,
            admin_socket,
            sessions,
            storage,
            router,
            modules,
            c2s: ctx,
            reloader,
            metrics_addr,
            _lock: data_lock,
        })
    }

    /// Federation: the streams, for `chorusctl s2s` and tests.
    pub fn s2s(&self) -> &Arc<chorus_s2s::S2sContext> {
        &self.reloader.s2s
    }

    /// Where a listener bound, by its port actor id.
    pub fn bound_addr(&self, port_id: &str) -> Option<SocketAddr> {
        self.bound.get(port_id).map(|a| *a)
    }

    /// The first listener's bound address (tests).
    pub fn first_addr(&self) -> Option<SocketAddr> {
        self.bound.iter().next().map(|e| *e.value())
    }

    /// Graceful shutdown: every stream gets `system-shutdown` (RFC 6120
    /// §4.9.3.17), new streams too; after all connections closed or `grace`
    /// passed, the tree stops.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.c2s
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // External components end too (XEP-0114 streams, system-shutdown).
        chorus_component::shutdown_all(&self.registry, ROOT);
        // And federation's streams, both ways.
        self.s2s().shutdown();
        let c2s = self.registry.paths_matching("root/listeners/*/conns/*/c2s");
        tracing::info!(
            streams = c2s.len(),
            ?grace,
            "shutting down: closing every stream"
        );
        for path in c2s {
            if let Some(cell) = self.registry.lookup(&path) {
                let r: ActorRef<C2sMsg> = cell.into();
                let _ = r.cast(C2sMsg::Shutdown);
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline
            && !self
                .registry
                .paths_matching("root/listeners/*/conns/*")
                .is_empty()
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // What the modules hold for storage (the archive's queue) is
        // written before the tree stops.
        self.modules.stopping().await;
        self.stop();
    }

    /// Stops the whole tree.
    pub fn stop(&self) {
        self.root.stop(Some("shutdown".into()));
    }

    /// Waits until the root exits; `Escalated` means a restart intensity was
    /// exceeded all the way up (the binary exits non-zero so systemd restarts it).
    pub async fn wait(mut self) -> RootExit {
        match self.handle.take() {
            Some(h) => h.wait().await,
            None => RootExit::Normal,
        }
    }

    /// The root's exit, for a caller that keeps sharing the server (the
    /// binary drains it from a signal task meanwhile).
    pub fn take_exit(&mut self) -> Option<RootHandle> {
        self.handle.take()
    }
}
