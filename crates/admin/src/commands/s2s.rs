//! `s2s list` and `s2s close`: federation's streams, read from and acted on
//! through the s2s context the server hands over.

use serde_json::{json, Value};

use super::{arg_str, CommandError, CommandResult};
use crate::AdminContext;

/// `s2s list`: every stream, outgoing and incoming.
pub async fn list(ctx: &AdminContext, _args: &Value) -> CommandResult {
    let streams = ctx.s2s.streams();
    let mut text = String::new();
    for s in &streams {
        text.push_str(&format!(
            "{:<3}  {} -> {}  auth={}  tls={}  queued={}  {}\n",
            s.direction,
            if s.direction == "out" {
                &s.local
            } else {
                &s.remote
            },
            if s.direction == "out" {
                &s.remote
            } else {
                &s.local
            },
            if s.auth.is_empty() {
                "pending"
            } else {
                &s.auth
            },
            s.tls,
            s.queued,
            s.path
        ));
    }
    if streams.is_empty() {
        text.push_str("no server-to-server stream\n");
    }
    let rows: Vec<Value> = streams
        .iter()
        .map(|s| {
            json!({
                "direction": s.direction,
                "local": s.local,
                "remote": s.remote,
                "auth": s.auth,
                "tls": s.tls,
                "queued": s.queued,
                "path": s.path,
            })
        })
        .collect();
    Ok(json!({ "streams": rows, "text": text.trim_end() }))
}

/// `s2s close DOMAIN`.
pub async fn close(ctx: &AdminContext, args: &Value) -> CommandResult {
    let domain = arg_str(args, "domain")
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if domain.is_empty() {
        return Err(CommandError::BadArgs("a remote domain is required".into()));
    }
    let closed = ctx.s2s.close(&domain);
    if closed == 0 {
        return Err(CommandError::NotFound(format!("no stream with {domain}")));
    }
    tracing::warn!(domain, closed, "s2s streams closed by operator");
    Ok(json!({ "closed": closed, "text": format!("closed {closed} stream(s) with {domain}") }))
}
