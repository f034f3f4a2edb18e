//! The admin API server: HTTP/1.1 (hyper) + JSON on a unix socket,
//! dispatching through the handler table ([`crate::commands::HANDLERS`]).
//!
//! The admin actor owns the listening socket; each request runs in its own
//! short task so that a slow client cannot block the next one. The socket
//! file is created mode 0600 and removed when the actor's state drops (stop,
//! kill, or shutdown), never only in `post_stop`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chorus_admin_api::wire;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use tokio::net::{UnixListener, UnixStream};

use crate::commands;
use crate::AdminContext;

const MAX_REQUEST: usize = 64 * 1024;
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

pub struct AdminActor;

pub struct AdminArgs {
    pub socket: PathBuf,
    pub ctx: Arc<AdminContext>,
}

pub struct AdminState {
    listener: UnixListener,
    socket: PathBuf,
    ctx: Arc<AdminContext>,
}

impl Drop for AdminState {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

pub enum AdminMsg {
    Accept,
}

impl Actor for AdminActor {
    type Msg = AdminMsg;
    type State = AdminState;
    type Arguments = AdminArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AdminArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        if let Some(dir) = args.socket.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        // A socket file left by a crashed predecessor would make bind fail.
        let _ = std::fs::remove_file(&args.socket);
        let listener = UnixListener::bind(&args.socket)?;
        std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o600))?;
        tracing::info!(socket = %args.socket.display(), "admin API listening");
        myself.cast(AdminMsg::Accept)?;
        Ok(AdminState {
            listener,
            socket: args.socket,
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
                    // A chaos run holds its request open for its duration.
                    let deadline = REQUEST_DEADLINE + crate::chaos::MAX_DURATION;
                    let _ = tokio::time::timeout(deadline, serve(stream, ctx)).await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        myself.cast(AdminMsg::Accept)?;
        Ok(())
    }
}

/// Serves the connection's requests (HTTP/1.1 through hyper).
async fn serve(stream: UnixStream, ctx: Arc<AdminContext>) -> std::io::Result<()> {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(&ctx, req).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
        .map_err(std::io::Error::other)
}

async fn answer(ctx: &AdminContext, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let (status, body) = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
        Ok(body) => dispatch(ctx, &method, &path, &body.to_bytes()).await,
        Err(_) => (400, wire::error("request too large, or cut short")),
    };
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn dispatch(ctx: &AdminContext, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let Some(name) = wire::command_name(path) else {
        return (404, wire::error(format!("no such endpoint '{path}'")));
    };
    let Some(command) = commands::lookup(&name) else {
        return (404, wire::error(format!("unknown command '{name}'")));
    };
    if method != "POST" && !(method == "GET" && command.spec.read_only) {
        return (405, wire::error("use POST"));
    }
    let args: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return (400, wire::error("the body must be a JSON object")),
        }
    };
    match commands::run(ctx, command, &args).await {
        Ok(v) => (200, wire::ok(v)),
        Err(e) => (e.status(), wire::error(e.to_string())),
    }
}
