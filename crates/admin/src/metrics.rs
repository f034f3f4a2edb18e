//! The loopback HTTP endpoint for monitoring: `/metrics` (OpenMetrics
//! text), `/healthz` (the process answers) and `/readyz` (every listener is
//! bound and storage answers). HTTP/1.1 through hyper, on a loopback
//! address by default (`[metrics] address`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_metrics::{Metrics, Snapshot};
use chorus_modules::Modules;
use chorus_router::SessionTable;
use chorus_storage::Storage;
use chorus_supervisor::Registry;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::{TcpListener, TcpStream};

/// What the endpoint reads at scrape time.
pub struct MetricsContext {
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    pub sessions: Arc<SessionTable>,
    pub modules: Arc<Modules>,
    pub storage: Arc<Storage>,
    /// Listener ids that are bound, and how many are configured.
    pub listeners: Arc<dashmap::DashMap<String, SocketAddr>>,
    pub configured_listeners: usize,
    /// Where this endpoint bound (port 0 in tests).
    pub bound: Arc<Mutex<Option<SocketAddr>>>,
    /// Federation's streams.
    pub s2s: Arc<dyn crate::S2sControl>,
}

impl MetricsContext {
    fn snapshot(&self) -> Snapshot {
        let mut connections = Vec::new();
        let mut restarts = Vec::new();
        let mut mailboxes = Vec::new();
        if let Some(root) = self.registry.snapshot("root", None) {
            let mut stack = vec![&root];
            while let Some(n) = stack.pop() {
                if n.id == "conns" {
                    // .../port:<kind>@<addr>/conns: one child group per connection.
                    let port = n.path.rsplit('/').nth(1).unwrap_or_default().to_owned();
                    connections.push((port, n.children.len() as u64));
                }
                // Every supervisor, at 0 until a child restarts, so that the
                // series exist before anything goes wrong. Connection
                // groups are not supervisors that restart anything, and
                // would add a series per connection.
                if n.kind == "supervisor" {
                    let child_restarts: u64 =
                        n.children.iter().map(|c| u64::from(c.restarts)).sum();
                    restarts.push((n.path.clone(), child_restarts));
                }
                if let Some(m) = n.mailbox {
                    mailboxes.push((n.path.clone(), m));
                }
                stack.extend(n.children.iter());
            }
        }
        connections.sort();
        restarts.sort();
        mailboxes.sort_by_key(|(_, m)| std::cmp::Reverse(*m));
        mailboxes.truncate(10);
        let streams = self.s2s.streams();
        Snapshot {
            connections,
            sessions: self.sessions.len() as u64,
            restarts,
            mailboxes,
            module_panics: self.modules.panics(),
            s2s_streams: {
                let (mut inc, mut out) = (0, 0);
                for st in &streams {
                    if st.direction == "in" {
                        inc += 1;
                    } else if !st.auth.is_empty() {
                        out += 1;
                    }
                }
                vec![("in".to_owned(), inc), ("out".to_owned(), out)]
            },
            s2s_queued: streams.iter().map(|st| st.queued as u64).sum(),
        }
    }

    async fn ready(&self) -> Result<(), String> {
        if self.listeners.len() < self.configured_listeners {
            return Err(format!(
                "{} of {} listeners bound",
                self.listeners.len(),
                self.configured_listeners
            ));
        }
        self.storage
            .ping()
            .await
            .map_err(|e| format!("storage: {e}"))
    }
}

pub struct MetricsActor;

pub struct MetricsArgs {
    pub address: SocketAddr,
    /// The configuration key of `address`, named when it cannot be bound.
    pub key: &'static str,
    /// The socket the server opened before starting the tree (so that a
    /// port in use fails the start with a clear error); `None` on a
    /// restart, which binds again.
    pub prebound: Option<TcpListener>,
    pub ctx: Arc<MetricsContext>,
}

pub struct MetricsState {
    listener: TcpListener,
    ctx: Arc<MetricsContext>,
}

pub enum MetricsMsg {
    Accept,
}

impl Actor for MetricsActor {
    type Msg = MetricsMsg;
    type State = MetricsState;
    type Arguments = MetricsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: MetricsArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = match args.prebound {
            Some(l) => l,
            None => chorus_listener::bind(args.address, args.key).await?,
        };
        let local = listener.local_addr()?;
        tracing::info!(endpoint = %local, "metrics endpoint listening");
        if let Ok(mut b) = args.ctx.bound.lock() {
            *b = Some(local);
        }
        myself.cast(MetricsMsg::Accept)?;
        Ok(MetricsState {
            listener,
            ctx: args.ctx,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match state.listener.accept().await {
            Ok((stream, _)) => {
                let ctx = state.ctx.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), serve(stream, ctx)).await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        myself.cast(MetricsMsg::Accept)?;
        Ok(())
    }
}

/// Serves the connection's requests (HTTP/1.1 through hyper).
async fn serve(stream: TcpStream, ctx: Arc<MetricsContext>) -> std::io::Result<()> {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(&ctx, &req).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
        .map_err(std::io::Error::other)
}

async fn answer(ctx: &MetricsContext, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ctx.metrics.render(&ctx.snapshot()),
        ),
        ("GET", "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        ("GET", "/readyz") => match ctx.ready().await {
            Ok(()) => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        ("GET", _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_owned(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    r
}
