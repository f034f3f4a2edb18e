//! Commands on bound sessions: `sessions list`, `sessions count` and
//! `sessions kick`, read from and acted on through the router's session
//! table, the same one routing reads.

use chorus_jid::BareJid;
use serde_json::{json, Value};

use super::{arg_str, CommandError, CommandResult};
use crate::AdminContext;

/// `sessions list`: every bound session, or one account's.
pub async fn list(ctx: &AdminContext, args: &Value) -> CommandResult {
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

/// `sessions count`: how many sessions are bound.
pub async fn count(ctx: &AdminContext, _args: &Value) -> CommandResult {
    let n = ctx.sessions.len();
    Ok(json!({ "count": n, "text": format!("{n}\n") }))
}

/// `sessions kick`: ends one session (full JID) or all of an account's
/// (bare JID) with a stream error carrying the reason.
pub async fn kick(ctx: &AdminContext, args: &Value) -> CommandResult {
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
        return Err(CommandError::NotFound(format!("no session for {raw}")));
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
