//! `cert list`: the certificates the TLS listeners serve now, from the live
//! TLS setup (so an ACME certificate shows as soon as it is swapped in).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::CommandResult;
use crate::AdminContext;

/// `cert list`: each certificate once, with its names, issuer, expiry and
/// source.
pub async fn list(ctx: &AdminContext, _args: &Value) -> CommandResult {
    let now = SystemTime::now();
    let mut text = String::new();
    let mut certs = Vec::new();
    for c in (ctx.certificates)() {
        let not_after = c
            .not_after
            .map(|t| humantime::format_rfc3339_seconds(t).to_string());
        let unix = c
            .not_after
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        // Negative once expired.
        let days_left = c.not_after.map(|t| match t.duration_since(now) {
            Ok(d) => (d.as_secs() / 86_400) as i64,
            Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
        });
        let mut served = c.sni.clone();
        if c.default {
            served.push("(default)".to_owned());
        }
        text.push_str(&format!(
            "{}  {}\n  names:     {}\n  served for: {}\n  issuer:    {}\n  expires:   {}\n",
            c.source,
            c.path.display(),
            c.names.join(", "),
            served.join(", "),
            c.issuer,
            match (&not_after, days_left) {
                (Some(t), Some(d)) if d >= 0 => format!("{t} ({d} days left)"),
                (Some(t), _) => format!("{t} (expired)"),
                _ => "unreadable".to_owned(),
            },
        ));
        certs.push(json!({
            "source": c.source,
            "path": c.path.display().to_string(),
            "names": c.names,
            "sni": c.sni,
            "default": c.default,
            "issuer": c.issuer,
            "not_after": not_after,
            "not_after_unix": unix,
            "days_left": days_left,
        }));
    }
    if certs.is_empty() {
        text.push_str("no TLS certificate in use\n");
    }
    Ok(json!({ "certificates": certs, "text": text.trim_end() }))
}
