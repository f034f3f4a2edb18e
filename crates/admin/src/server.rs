//! The admin API server: HTTP/1.1 + JSON on a unix socket, one request per
//! connection (`Connection: close`), dispatching through the handler table
//! ([`crate::commands::HANDLERS`]).
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
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Reads one request, runs it, writes the response.
async fn serve(mut stream: UnixStream, ctx: Arc<AdminContext>) -> std::io::Result<()> {
    let (status, body) = match read_request(&mut stream).await {
        Ok((method, path, body)) => dispatch(&ctx, &method, &path, &body).await,
        Err(msg) => (400, wire::error(msg)),
    };
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        _ => "Bad Request",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
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

async fn read_request(stream: &mut UnixStream) -> Result<(String, String, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return Err("request too large".into());
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("incomplete request".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end]).map_err(|_| "request head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut content_length = 0usize;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                content_length = v.trim().parse().map_err(|_| "bad Content-Length")?;
            }
        }
    }
    if content_length > MAX_REQUEST {
        return Err("request too large".into());
    }
    let mut body = buf[header_end..].to_vec();
    while body.len() < content_length {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("incomplete body".into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(content_length);
    Ok((method, path, body))
}
