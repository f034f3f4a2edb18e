//! The admin API server: HTTP/1.1 + JSON on a unix socket, one request per
//! connection (`Connection: close`), dispatching on the command registry.
//!
//! The admin actor owns the listening socket; each request runs in its own
//! short task so that a slow client cannot block the next one. The socket
//! file is created mode 0600 and removed when the actor's state drops (stop,
//! kill, or shutdown), never only in `post_stop`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_jid::BareJid;
use chorus_router::SessionTable;
use chorus_storage::{AccountStore, Storage, StoredCredentials};
use chorus_supervisor::{Registry, StopMode};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::commands;

const MAX_REQUEST: usize = 64 * 1024;
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// What commands need from the running server.
pub struct AdminContext {
    pub registry: Registry,
    pub started: Instant,
    /// The root path of the tree (`root`).
    pub root: String,
    pub storage: Arc<Storage>,
    pub sessions: Arc<SessionTable>,
    /// Domains served, lowercase.
    pub domains: Vec<String>,
    /// PBKDF2 iterations for new credentials.
    pub sasl_iterations: u32,
    /// Where each listener bound, by port actor id.
    pub listeners: Arc<dashmap::DashMap<String, std::net::SocketAddr>>,
    /// A fingerprint of the effective configuration, to tell configs apart.
    pub config_hash: String,
    pub metrics: Arc<chorus_metrics::Metrics>,
    /// `admin.chaos`: whether `chaos` may run.
    pub chaos_allowed: bool,
    /// `config reload`: rereads the file and applies what it can.
    pub reload: ReloadFn,
}

/// Reloads the configuration, returning a summary or the error.
pub type ReloadFn = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>
        + Send
        + Sync,
>;

/// Resident memory of this process, from /proc (Linux).
fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every node of a tree, depth first.
fn flatten(node: &chorus_supervisor::TreeNode, out: &mut Vec<chorus_supervisor::TreeNode>) {
    let mut n = node.clone();
    n.children = Vec::new();
    out.push(n);
    for c in &node.children {
        flatten(c, out);
    }
}

/// Parses `user@domain` for a local domain.
fn account_arg(ctx: &AdminContext, args: &Value) -> Result<BareJid, CommandError> {
    let raw = arg_str(args, "jid").unwrap_or_default();
    let jid: BareJid = raw
        .parse()
        .map_err(|e| CommandError::BadArgs(format!("invalid JID '{raw}': {e}")))?;
    if jid.node().is_none() {
        return Err(CommandError::BadArgs(format!("'{raw}' has no user part")));
    }
    if !ctx.domains.iter().any(|d| d == jid.domain()) {
        return Err(CommandError::BadArgs(format!(
            "'{}' is not served here (server.domains: {})",
            jid.domain(),
            ctx.domains.join(", ")
        )));
    }
    Ok(jid)
}

/// SCRAM credentials for every hash we offer; the password goes no further.
fn credentials(ctx: &AdminContext, args: &Value) -> Result<Vec<StoredCredentials>, CommandError> {
    let password = arg_str(args, "password")
        .ok_or_else(|| CommandError::BadArgs("missing password".into()))?;
    if password.is_empty() {
        return Err(CommandError::BadArgs("the password is empty".into()));
    }
    chorus_modules::register::credentials(password, ctx.sasl_iterations)
        .map_err(|e| CommandError::BadArgs(format!("unusable password: {e}")))
}

fn storage_err(e: chorus_storage::StorageError) -> CommandError {
    CommandError::Failed(format!("storage: {e}"))
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command '{0}'")]
    Unknown(String),
    #[error("{0}")]
    BadArgs(String),
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    fn status(&self) -> u16 {
        match self {
            CommandError::Unknown(_) => 404,
            CommandError::BadArgs(_) => 400,
            CommandError::Failed(_) => 409,
        }
    }
}

fn arg_str<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn arg_usize(args: &Value, name: &str) -> Result<Option<usize>, CommandError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|v| Some(v as usize))
            .ok_or_else(|| CommandError::BadArgs(format!("{name} must be a non-negative integer"))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| CommandError::BadArgs(format!("{name} must be a non-negative integer"))),
        Some(_) => Err(CommandError::BadArgs(format!(
            "{name} must be a non-negative integer"
        ))),
    }
}

/// Runs one command by name.
pub async fn execute(ctx: &AdminContext, name: &str, args: &Value) -> Result<Value, CommandError> {
    let spec = commands::find(name).ok_or_else(|| CommandError::Unknown(name.to_owned()))?;
    for a in spec.args.iter().filter(|a| a.required) {
        if args.get(a.name).is_none() {
            return Err(CommandError::BadArgs(format!(
                "missing argument '{}'",
                a.name
            )));
        }
    }
    match spec.name {
        "actors tree" => {
            let depth = arg_usize(args, "depth")?;
            let path = arg_str(args, "path").unwrap_or(&ctx.root);
            let node = ctx
                .registry
                .snapshot(path, depth)
                .ok_or_else(|| CommandError::Failed(format!("no actor at '{path}'")))?;
            let text = node.render(depth);
            Ok(json!({ "tree": node, "text": text }))
        }
        "actors kill" => {
            let path = arg_str(args, "path").unwrap_or_default();
            let mode = match arg_str(args, "mode").unwrap_or("kill") {
                "kill" => StopMode::Kill,
                "stop" => StopMode::Stop,
                other => {
                    return Err(CommandError::BadArgs(format!(
                        "mode must be kill or stop, not '{other}'"
                    )))
                }
            };
            ctx.registry
                .kill(path, mode)
                .map_err(|e| CommandError::Failed(e.to_string()))?;
            tracing::warn!(path, ?mode, "actor killed by operator");
            Ok(json!({ "killed": path }))
        }
        "status" => {
            let mut listeners: Vec<Value> = ctx
                .listeners
                .iter()
                .map(|e| json!({ "id": e.key(), "address": e.value().to_string() }))
                .collect();
            listeners.sort_by_key(|v| v["id"].as_str().unwrap_or_default().to_owned());
            let uptime = ctx.started.elapsed().as_secs();
            let sessions = ctx.sessions.len();
            let text = format!(
                "Chorus {}\nuptime: {uptime} s\nsessions: {sessions}\nconfig: {}\nlisteners:\n{}",
                env!("CARGO_PKG_VERSION"),
                ctx.config_hash,
                listeners
                    .iter()
                    .map(|l| format!(
                        "  {} on {}\n",
                        l["id"].as_str().unwrap_or(""),
                        l["address"].as_str().unwrap_or("")
                    ))
                    .collect::<String>()
            );
            Ok(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": uptime,
                "listeners": listeners,
                "sessions": sessions,
                "config_hash": ctx.config_hash,
                "text": text,
            }))
        }
        "sessions list" => {
            let filter = match arg_str(args, "jid") {
                Some(j) => Some(
                    j.parse::<BareJid>()
                        .map_err(|e| CommandError::BadArgs(format!("invalid JID '{j}': {e}")))?,
                ),
                None => None,
            };
            let mut rows = Vec::new();
            for full in ctx.sessions.all() {
                if filter.as_ref().is_some_and(|b| full.bare() != *b) {
                    continue;
                }
                if let Some(s) = ctx.sessions.get(&full) {
                    rows.push(json!({
                        "jid": full.to_string(),
                        "conn": s.conn_id,
                        "available": s.available(),
                        "priority": s.priority(),
                    }));
                }
            }
            let text = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}  conn-{}  {}  priority {}\n",
                        r["jid"].as_str().unwrap_or(""),
                        r["conn"],
                        if r["available"] == true {
                            "available"
                        } else {
                            "unavailable"
                        },
                        r["priority"]
                    )
                })
                .collect::<String>();
            Ok(json!({ "sessions": rows, "text": text }))
        }
        "sessions count" => {
            let n = ctx.sessions.len();
            Ok(json!({ "count": n, "text": format!("{n}\n") }))
        }
        "sessions kick" => {
            let raw = arg_str(args, "jid").unwrap_or_default();
            let jid: chorus_jid::Jid = raw
                .parse()
                .map_err(|e| CommandError::BadArgs(format!("invalid JID '{raw}': {e}")))?;
            let reason = arg_str(args, "reason").unwrap_or("Kicked by the server operator");
            let targets: Vec<_> = match chorus_jid::FullJid::try_from(jid.clone()) {
                Ok(full) => ctx.sessions.get(&full).into_iter().collect(),
                Err(_) => ctx.sessions.resources(&jid.bare()),
            };
            if targets.is_empty() {
                return Err(CommandError::Failed(format!("no session for {raw}")));
            }
            let kicked: Vec<String> = targets.iter().map(|s| s.full.to_string()).collect();
            for s in targets {
                s.sink.kick(reason.to_owned());
            }
            tracing::warn!(
                jid = raw,
                count = kicked.len(),
                "sessions kicked by operator"
            );
            Ok(json!({ "kicked": kicked, "text": format!("kicked {}\n", kicked.join(", ")) }))
        }
        "actors info" => {
            let path = arg_str(args, "path").unwrap_or_default();
            let node = ctx
                .registry
                .snapshot(path, Some(0))
                .ok_or_else(|| CommandError::Failed(format!("no actor at '{path}'")))?;
            let text = format!(
                "path: {}\nkind: {}\nstatus: {}\nuptime: {} ms\nrestarts: {}\nmessages handled: {}\nmailbox: {}\nlast error: {}\n",
                node.path,
                node.kind,
                node.status,
                node.uptime_ms,
                node.restarts,
                node.handled,
                node.mailbox.map(|m| m.to_string()).unwrap_or_else(|| "not counted".into()),
                node.last_error.clone().unwrap_or_else(|| "none".into()),
            );
            Ok(json!({ "actor": node, "text": text }))
        }
        "actors top" => {
            let by = arg_str(args, "by").unwrap_or("mailbox");
            let limit = arg_usize(args, "limit")?.unwrap_or(10);
            let root = ctx
                .registry
                .snapshot(&ctx.root, None)
                .ok_or_else(|| CommandError::Failed("the tree is not running".into()))?;
            let mut all = Vec::new();
            flatten(&root, &mut all);
            let key = |n: &chorus_supervisor::TreeNode| -> i64 {
                match by {
                    "msgs" => n.handled as i64,
                    "restarts" => i64::from(n.restarts),
                    _ => n.mailbox.unwrap_or(-1),
                }
            };
            if !matches!(by, "mailbox" | "msgs" | "restarts") {
                return Err(CommandError::BadArgs(format!(
                    "--by must be mailbox, msgs or restarts, not '{by}'"
                )));
            }
            all.sort_by_key(|n| std::cmp::Reverse(key(n)));
            all.truncate(limit);
            let text = all
                .iter()
                .map(|n| format!("{:>10}  {}\n", key(n), n.path))
                .collect::<String>();
            Ok(json!({ "actors": all, "text": text }))
        }
        "user add" => {
            let jid = account_arg(ctx, args)?;
            let creds = credentials(ctx, args)?;
            let node = jid.node().unwrap_or_default();
            match ctx.storage.create_account(node, jid.domain(), &creds).await {
                Ok(()) => {
                    tracing::info!(jid = %jid, "account registered by operator");
                    Ok(json!({ "added": jid.to_string() }))
                }
                Err(chorus_storage::StorageError::AlreadyExists) => {
                    Err(CommandError::Failed(format!("{jid} already exists")))
                }
                Err(e) => Err(storage_err(e)),
            }
        }
        "user del" => {
            let jid = account_arg(ctx, args)?;
            let node = jid.node().unwrap_or_default();
            if ctx
                .storage
                .delete_account(node, jid.domain())
                .await
                .map_err(storage_err)?
            {
                tracing::info!(jid = %jid, "account deleted by operator");
                Ok(json!({ "deleted": jid.to_string() }))
            } else {
                Err(CommandError::Failed(format!("{jid} does not exist")))
            }
        }
        "user passwd" => {
            let jid = account_arg(ctx, args)?;
            let creds = credentials(ctx, args)?;
            let node = jid.node().unwrap_or_default();
            if ctx
                .storage
                .set_credentials(node, jid.domain(), &creds)
                .await
                .map_err(storage_err)?
            {
                tracing::info!(jid = %jid, "password changed by operator");
                Ok(json!({ "changed": jid.to_string() }))
            } else {
                Err(CommandError::Failed(format!("{jid} does not exist")))
            }
        }
        "user list" => {
            let domain = arg_str(args, "domain");
            let users: Vec<String> = ctx
                .storage
                .list_accounts(domain)
                .await
                .map_err(storage_err)?
                .into_iter()
                .map(|(l, d)| format!("{l}@{d}"))
                .collect();
            let text = users.iter().map(|u| format!("{u}\n")).collect::<String>();
            Ok(json!({ "users": users, "text": text }))
        }
        "mam purge" => {
            let jid = account_arg(ctx, args)?;
            let node = jid.node().unwrap_or_default();
            let deleted = chorus_storage::ArchiveStore::archive_purge_account(
                ctx.storage.as_ref(),
                node,
                jid.domain(),
            )
            .await
            .map_err(storage_err)?;
            tracing::info!(jid = %jid, deleted, "archive purged by operator");
            Ok(json!({
                "jid": jid.to_string(),
                "deleted": deleted,
                "text": format!("{deleted} archived messages of {jid} deleted\n"),
            }))
        }
        "stats" => {
            let m = &ctx.metrics;
            let total = |f: &chorus_metrics::Family, keys: &[&str]| -> u64 {
                keys.iter().map(|k| f.get(k)).sum()
            };
            let kinds = ["message", "presence", "iq"];
            let connections = ctx
                .registry
                .paths_matching("root/listeners/*/conns/*")
                .len();
            let auth_ok: u64 = [
                "SCRAM-SHA-256-PLUS",
                "SCRAM-SHA-1-PLUS",
                "SCRAM-SHA-256",
                "SCRAM-SHA-1",
                "PLAIN",
            ]
            .iter()
            .map(|mech| m.auth.get(&format!("{mech}/success")))
            .sum();
            let v = json!({
                "uptime_s": ctx.started.elapsed().as_secs(),
                "connections": connections,
                "sessions": ctx.sessions.len(),
                "stanzas_in": total(&m.stanzas_in, &kinds),
                "stanzas_out": total(&m.stanzas_out, &kinds),
                "auth_success": auth_ok,
                "actors": ctx.registry.len(),
                "rss_kib": rss_kib(),
            });
            let text = v
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}: {v}\n"))
                        .collect::<String>()
                })
                .unwrap_or_default();
            let mut v = v;
            v["text"] = json!(text);
            Ok(v)
        }
        "log level" => {
            let filter = arg_str(args, "filter").unwrap_or_default();
            crate::reload_log(filter).map_err(CommandError::BadArgs)?;
            tracing::warn!(filter, "log filter changed by operator");
            Ok(json!({ "filter": filter, "text": format!("log filter: {filter}\n") }))
        }
        "config reload" => {
            let summary = (ctx.reload)().await.map_err(CommandError::Failed)?;
            Ok(json!({ "summary": summary, "text": format!("{summary}\n") }))
        }
        "chaos" => {
            let pattern = arg_str(args, "kill").unwrap_or_default();
            let every =
                crate::chaos::parse_duration("every", arg_str(args, "every").unwrap_or_default())?;
            let total =
                crate::chaos::parse_duration("for", arg_str(args, "for").unwrap_or_default())?;
            crate::chaos::run(ctx, pattern, every, total).await
        }
        "import" => crate::piefxis::import(ctx, arg_str(args, "file").unwrap_or_default()).await,
        "export" => crate::piefxis::export(ctx, arg_str(args, "dir").unwrap_or_default()).await,
        "config check" => Err(CommandError::BadArgs(
            "config check runs offline in chorusctl, not through the server".into(),
        )),
        other => Err(CommandError::Unknown(other.to_owned())),
    }
}

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
        Err(msg) => (400, json!({ "error": msg })),
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
    let Some(rest) = path.strip_prefix("/api/") else {
        return (
            404,
            json!({ "error": format!("no such endpoint '{path}'") }),
        );
    };
    let name = rest.trim_end_matches('/').replace('/', " ");
    let Some(spec) = commands::find(&name) else {
        return (404, json!({ "error": format!("unknown command '{name}'") }));
    };
    if method != "POST" && !(method == "GET" && spec.read_only) {
        return (405, json!({ "error": "use POST" }));
    }
    let args: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return (400, json!({ "error": "the body must be a JSON object" })),
        }
    };
    match execute(ctx, &name, &args).await {
        Ok(v) => (200, json!({ "ok": v })),
        Err(e) => (e.status(), json!({ "error": e.to_string() })),
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
