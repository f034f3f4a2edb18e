//! Commands about the running server process as a whole: `status`,
//! `stats` and `log level`.

use serde_json::{json, Value};

use super::{arg_str, CommandError, CommandResult};
use crate::AdminContext;

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

/// `status`: version, uptime, listeners, sessions and the config hash.
pub async fn status(ctx: &AdminContext, _args: &Value) -> CommandResult {
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

/// `stats`: traffic and resource figures.
pub async fn stats(ctx: &AdminContext, _args: &Value) -> CommandResult {
    let m = &ctx.metrics;
    let total =
        |f: &chorus_metrics::Family, keys: &[&str]| -> u64 { keys.iter().map(|k| f.get(k)).sum() };
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

/// `log level`: swaps the process's log filter (tracing `EnvFilter`
/// syntax) through the reloader the binary installed.
pub async fn log_level(_ctx: &AdminContext, args: &Value) -> CommandResult {
    let filter = arg_str(args, "filter").unwrap_or_default();
    crate::reload_log(filter).map_err(CommandError::BadArgs)?;
    tracing::warn!(filter, "log filter changed by operator");
    Ok(json!({ "filter": filter, "text": format!("log filter: {filter}\n") }))
}
