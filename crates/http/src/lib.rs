//! The `http` and `https` listener kinds: XMPP over WebSocket (RFC 7395) on
//! `/xmpp-websocket`, BOSH (XEP-0206, `bosh.rs`) on `/http-bind`, and their
//! discovery (XEP-0156) on
//! `/.well-known/host-meta` and `/.well-known/host-meta.json`, with the
//! CORS headers browsers need.
//!
//! Each accepted connection is a group `http-<id>` under its port's
//! `conns`, with one `http` actor that serves HTTP/1.1 on it (hyper, after
//! the TLS handshake for `https`). A WebSocket upgrade hands the connection
//! over: the actor starts a new group `conn-<id>` of socket, receiver and
//! c2s under the same `conns` (`chorus_c2s::ws::websocket_group`), exactly
//! as a TCP client connection has, and its own group ends. So a WebSocket
//! session is in the tree, killable and resumable (XEP-0198) like any
//! other, and the c2s state machine, SASL, binding, stream management and
//! CSI are the same code.
//!
//! HTTP File Upload (XEP-0363) files are served here too, under
//! `/upload/` (`upload.rs`): PUT streamed to disk, GET and HEAD with
//! `Range`, all authorized by the URL's signature
//! (`chorus_modules::upload`).
//!
//! ACME HTTP-01 challenges (RFC 8555 §8.3) are answered on
//! `/.well-known/acme-challenge/<token>` from the key authorizations the
//! `acme` worker (`chorus-acme`) has in flight.

mod bosh;
mod upload;

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chorus_c2s::tls::ChannelBindings;
use chorus_c2s::C2sContext;
use chorus_modules::{Module, ModuleInfo, Support, Xep};
use chorus_supervisor::{GroupMember, GroupSpec, StartCtx, SupervisorMsg};
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// What the HTTP listeners implement, as a declaration for `docs/XEPS.md`.
pub struct Discovery;

static DISCOVERY_INFO: ModuleInfo = ModuleInfo {
    name: "http",
    file: file!(),
    xeps: &[
        Xep {
            number: 124,
            name: "Bidirectional-streams Over Synchronous HTTP (BOSH)",
            version: "1.11.2",
            support: Support::Partial,
            note: "On /http-bind: sessions, rid order with retransmission, hold and wait, \
                   inactivity, terminate. No polling-interval enforcement, no key sequences \
                   (§15), no multiple streams per session (§19).",
        },
        Xep {
            number: 156,
            name: "Discovering Alternative XMPP Connection Methods",
            version: "1.4.0",
            support: Support::Complete,
            note: "host-meta (XRD) and host-meta.json (JRD) with the WebSocket and BOSH \
                   endpoints, with CORS; no DNS TXT records (deprecated).",
        },
        Xep {
            number: 206,
            name: "XMPP Over BOSH",
            version: "1.4",
            support: Support::Complete,
            note: "Each session a c2s connection group; stream restarts with \
                   xmpp:restart.",
        },
    ],
    ..ModuleInfo::EMPTY
};

impl Module for Discovery {
    fn info(&self) -> &'static ModuleInfo {
        &DISCOVERY_INFO
    }
}

/// Where XMPP over WebSocket is served.
pub const WEBSOCKET_PATH: &str = "/xmpp-websocket";
/// Where BOSH (XEP-0206) is served.
pub const BOSH_PATH: &str = "/http-bind";
/// Where an ACME CA fetches HTTP-01 key authorizations (RFC 8555 §8.3).
pub const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";
/// XEP-0156 link relations of the WebSocket and BOSH endpoints.
const REL_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";
const REL_BOSH: &str = "urn:xmpp:alt-connections:xbosh";

/// The `http` and `https` listener kinds.
pub struct HttpConnections {
    ctx: Arc<C2sContext>,
    tls: bool,
    upload: Option<Arc<chorus_modules::upload::UploadOptions>>,
    /// The listener's BOSH sessions, which outlive any one connection.
    bosh: Arc<bosh::Sessions>,
    /// Open HTTP connections by address (`http.max_connections_per_ip`).
    per_ip: Arc<dashmap::DashMap<Option<IpAddr>, usize>>,
}

impl HttpConnections {
    pub fn new(ctx: Arc<C2sContext>, tls: bool) -> HttpConnections {
        let upload = chorus_modules::upload::UploadOptions::from_config(&ctx.config).map(Arc::new);
        HttpConnections {
            ctx,
            tls,
            upload,
            bosh: Arc::default(),
            per_ip: Arc::default(),
        }
    }
}

impl chorus_listener::Connections for HttpConnections {
    fn next_id(&self) -> u64 {
        self.ctx.next_conn_id()
    }

    fn group(&self, id: u64, stream: TcpStream) -> GroupSpec {
        let ctx = self.ctx.clone();
        let tls = self.tls;
        let upload = self.upload.clone();
        let bosh = self.bosh.clone();
        let per_ip = self.per_ip.clone();
        GroupSpec::new(format!("http-{id}"), move |sctx: StartCtx| async move {
            let conns = sctx.supervisor.clone();
            let (actor, _) = Actor::spawn_linked(
                None,
                HttpActor,
                HttpArgs {
                    id,
                    stream,
                    tls,
                    ctx,
                    upload,
                    bosh,
                    per_ip,
                    conns: conns.clone(),
                },
                conns,
            )
            .await?;
            Ok(vec![GroupMember::new("http", "worker", actor.get_cell())])
        })
    }
}

/// One HTTP connection's actor: the connection is served in a task it
/// owns; the task's end (closed, or upgraded) ends the actor and its group.
pub struct HttpActor;

pub struct HttpArgs {
    id: u64,
    stream: TcpStream,
    tls: bool,
    ctx: Arc<C2sContext>,
    upload: Option<Arc<chorus_modules::upload::UploadOptions>>,
    bosh: Arc<bosh::Sessions>,
    per_ip: Arc<dashmap::DashMap<Option<IpAddr>, usize>>,
    /// The port's `conns` supervisor, where an upgraded connection's group
    /// starts.
    conns: ActorCell,
}

pub enum HttpMsg {
    /// The connection is served.
    Done,
}

pub struct HttpState {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpState {
    /// A killed actor takes its connection with it.
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Actor for HttpActor {
    type Msg = HttpMsg;
    type State = HttpState;
    type Arguments = HttpArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HttpMsg>,
        args: HttpArgs,
    ) -> Result<HttpState, ActorProcessingErr> {
        let task = tokio::spawn(async move {
            serve(args).await;
            let _ = myself.cast(HttpMsg::Done);
        });
        Ok(HttpState { task })
    }

    async fn handle(
        &self,
        myself: ActorRef<HttpMsg>,
        msg: HttpMsg,
        _state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HttpMsg::Done => myself.stop(None),
        }
        Ok(())
    }
}

/// What every request of one connection shares.
struct Conn {
    id: u64,
    peer: Option<IpAddr>,
    /// The TLS bindings of an `https` connection.
    tls: Option<ChannelBindings>,
    https: bool,
    ctx: Arc<C2sContext>,
    upload: Option<Arc<chorus_modules::upload::UploadOptions>>,
    bosh: Arc<bosh::Sessions>,
    conns: ActorCell,
}

async fn serve(args: HttpArgs) {
    let HttpArgs {
        id,
        stream,
        tls,
        ctx,
        upload,
        bosh,
        per_ip,
        conns,
    } = args;
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    // Held for the connection's life; dropped with this task.
    let Some(_slot) =
        chorus_listener::IpSlot::take(&per_ip, peer, ctx.config.http.max_connections_per_ip)
    else {
        tracing::info!(conn = id, peer = ?peer, "HTTP connections per address reached");
        let mut stream = stream;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = stream
            .write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
                  Connection: close\r\nRetry-After: 10\r\n\r\n",
            )
            .await;
        let _ = stream.shutdown().await;
        // Read what the client sent before closing, briefly: closing with
        // unread data would reset the connection before it reads the 503.
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut sink)).await;
        return;
    };
    if !tls {
        let conn = Arc::new(Conn {
            id,
            peer,
            tls: None,
            https: false,
            ctx,
            upload,
            bosh,
            conns,
        });
        serve_io(stream, conn).await;
        return;
    }
    let Some(setup) = ctx.tls() else {
        tracing::warn!(conn = id, "https listener without TLS certificates");
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(setup.https.clone());
    let stream =
        match tokio::time::timeout(ctx.config.handshake_timeout(), acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::info!(conn = id, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(conn = id, "TLS handshake timed out");
                return;
            }
        };
    let bindings = setup.bindings(stream.get_ref().1);
    let conn = Arc::new(Conn {
        id,
        peer,
        tls: Some(bindings),
        https: true,
        ctx,
        upload,
        bosh,
        conns,
    });
    serve_io(stream, conn).await;
}

async fn serve_io<I>(io: I, conn: Arc<Conn>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = Duration::from_secs(conn.ctx.config.http.request_timeout_secs);
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |req| {
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(route(&conn, req).await) }
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(conn = conn.id, error = %e, "HTTP connection ended");
    }
}

/// Every response's body: small ones whole, files streamed.
type Body = BoxBody<Bytes, std::io::Error>;

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// XEP-0156 §3: discovery is read by web pages of other origins.
fn cors(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, PUT, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Range"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Range, Content-Disposition, Content-Length"),
    );
    r
}

async fn route(conn: &Arc<Conn>, mut req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let upload_path = path
        .strip_prefix(chorus_modules::upload::PATH_PREFIX)
        .map(str::to_owned);
    let response = match (method.clone(), path.as_str()) {
        (Method::OPTIONS, _) => cors(respond(StatusCode::NO_CONTENT, "text/plain", "")),
        _ if upload_path.is_some() => match (&conn.upload, &upload_path) {
            (Some(opts), Some(rest)) => cors(upload::handle(conn, opts, req, rest).await),
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        },
        (Method::GET | Method::HEAD, "/.well-known/host-meta") => {
            cors(host_meta(conn, &req, false))
        }
        (Method::GET | Method::HEAD, "/.well-known/host-meta.json") => {
            cors(host_meta(conn, &req, true))
        }
        (Method::GET | Method::HEAD, p) if p.starts_with(ACME_CHALLENGE_PATH) => {
            acme_challenge(conn, &p[ACME_CHALLENGE_PATH.len()..])
        }
        (Method::POST, BOSH_PATH) => cors(bosh::handle(conn, req).await),
        (Method::GET, WEBSOCKET_PATH) if conn.ctx.config.http.websocket => {
            websocket(conn, &mut req)
        }
        (
            _,
            "/.well-known/host-meta" | "/.well-known/host-meta.json" | WEBSOCKET_PATH | BOSH_PATH,
        ) => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    };
    let status = response.status().as_u16();
    conn.ctx.metrics.http_requests.inc(&status.to_string());
    // An upload's path is its download credential: the log keeps the id.
    let logged = match &upload_path {
        Some(rest) => format!(
            "{}{}/…",
            chorus_modules::upload::PATH_PREFIX,
            rest.split('/').next().unwrap_or_default()
        ),
        None => path,
    };
    tracing::info!(
        conn = conn.id,
        peer = ?conn.peer,
        method = %method,
        path = %logged,
        status,
        "http request"
    );
    response
}

/// RFC 8555 §8.3: the key authorization of a challenge the ACME worker
/// has in flight, on any host name (the CA asks for the name it
/// validates), or 404.
fn acme_challenge(conn: &Conn, token: &str) -> Response<Body> {
    match conn.ctx.acme_challenges.get(token) {
        Some(key_authorization) => respond(
            StatusCode::OK,
            "application/octet-stream",
            key_authorization.value().clone(),
        ),
        None => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// The base URL clients are pointed to: `http.public_url`, or the scheme
/// of this listener and the request's `Host`.
fn base_url(conn: &Conn, req: &Request<Incoming>, websocket: bool) -> Option<String> {
    let configured = conn.ctx.config.http.public_url.trim_end_matches('/');
    let (scheme, rest) = if configured.is_empty() {
        let host = req.headers().get(header::HOST)?.to_str().ok()?;
        // A Host header is a name and a port, nothing that could end the
        // XML attribute or JSON string it goes into.
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        {
            return None;
        }
        (if conn.https { "https" } else { "http" }, host.to_owned())
    } else {
        let (scheme, rest) = configured.split_once("://")?;
        (
            if scheme == "https" { "https" } else { "http" },
            rest.to_owned(),
        )
    };
    let scheme = match (websocket, scheme) {
        (true, "https") => "wss",
        (true, _) => "ws",
        (false, s) => s,
    };
    Some(format!("{scheme}://{rest}"))
}

/// XEP-0156 §3.1 (XRD) and §3.2 (JRD): where the WebSocket endpoint is.
fn host_meta(conn: &Conn, req: &Request<Incoming>, json: bool) -> Response<Body> {
    let Some(base) = base_url(conn, req, true) else {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "no usable Host\n");
    };
    let mut links: Vec<(&str, String)> = Vec::new();
    if conn.ctx.config.http.websocket {
        links.push((REL_WEBSOCKET, format!("{base}{WEBSOCKET_PATH}")));
    }
    if let Some(http_base) = base_url(conn, req, false) {
        links.push((REL_BOSH, format!("{http_base}{BOSH_PATH}")));
    }
    if json {
        let links: Vec<serde_json::Value> = links
            .iter()
            .map(|(rel, href)| serde_json::json!({ "rel": rel, "href": href }))
            .collect();
        let body = serde_json::json!({ "links": links }).to_string();
        return respond(StatusCode::OK, "application/json", body);
    }
    let mut body = String::from(
        "<?xml version='1.0' encoding='utf-8'?>\n\
         <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n",
    );
    for (rel, href) in links {
        body.push_str(&format!(
            "  <Link rel='{rel}' href='{}'/>\n",
            chorus_xml::escape_attr(&href)
        ));
    }
    body.push_str("</XRD>\n");
    respond(StatusCode::OK, "application/xrd+xml", body)
}

/// RFC 6455 §4.2 with RFC 7395 §3.1: the `xmpp` subprotocol, and the
/// origin when `http.websocket_origins` restricts it; then the upgraded
/// connection becomes a `conn-<id>` group.
fn websocket(conn: &Arc<Conn>, req: &mut Request<Incoming>) -> Response<Body> {
    let mut r = upgrade(conn, req);
    if r.status() != StatusCode::SWITCHING_PROTOCOLS {
        // A refused upgrade ends the connection: the client was not going
        // to speak HTTP on it.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn upgrade(conn: &Arc<Conn>, req: &mut Request<Incoming>) -> Response<Body> {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return respond(
            StatusCode::UPGRADE_REQUIRED,
            "text/plain",
            "this is an XMPP over WebSocket endpoint (RFC 7395)\n",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut r = respond(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "WebSocket version 13\n",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "no Sec-WebSocket-Key\n",
        );
    };
    // RFC 7395 §3.1: the client asks for the "xmpp" subprotocol.
    if !has_token(header::SEC_WEBSOCKET_PROTOCOL, "xmpp") {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "the xmpp subprotocol is required (RFC 7395 section 3.1)\n",
        );
    }
    let allowed = &conn.ctx.config.http.websocket_origins;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !allowed.is_empty() && !allowed.iter().any(|o| o == origin) {
            tracing::info!(
                conn = conn.id,
                origin,
                "WebSocket from an origin not allowed"
            );
            return respond(StatusCode::FORBIDDEN, "text/plain", "origin not allowed\n");
        }
    }
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut *req);
    let conn = conn.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::info!(conn = conn.id, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        start_websocket(&conn, upgraded).await;
    });
    let mut r = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    r.headers_mut().remove(header::CONTENT_TYPE);
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("xmpp"),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

async fn start_websocket(conn: &Conn, upgraded: hyper::upgrade::Upgraded) {
    let limits = conn.ctx.limits();
    // One message is one element (RFC 7395 §3.3.3): the stanza limit,
    // with room for the framing, bounds it.
    let max = limits.max_stanza_bytes.saturating_add(1024);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let (write, read) = ws.split();
    // Encrypted below the stream: https, or a proxy the operator trusts.
    let tls = conn.tls.clone().or_else(|| {
        conn.ctx
            .config
            .http
            .consider_websocket_secure
            .then(ChannelBindings::default)
    });
    let id = conn.ctx.next_conn_id();
    tracing::info!(conn = conn.id, to_conn = id, peer = ?conn.peer, "WebSocket upgraded");
    let spec = chorus_c2s::ws::websocket_group(
        id,
        conn.peer,
        Box::pin(read),
        Box::pin(write),
        tls,
        conn.ctx.clone(),
    );
    let conns: ActorRef<SupervisorMsg> = conn.conns.clone().into();
    if conns.cast(SupervisorMsg::StartGroup(spec, None)).is_err() {
        tracing::warn!(
            conn = id,
            "cannot start the WebSocket connection: conns is gone"
        );
    }
}
