//! Messages from the server to its users: `announce` (to every online
//! session, XEP-0133 §4.23) and the message of the day, `motd set`,
//! `motd show` and `motd delete` (§4.24-§4.26), which the `motd` module
//! (`crate::xep0133::Motd`) sends each session at its initial presence.
//!
//! Both are headline messages from the domain itself, as Prosody's
//! mod_announce sends them: clients show them without opening a
//! conversation, and they are neither archived nor kept offline.

use chorus_jid::FullJid;
use chorus_proto::ns;
use chorus_storage::AdminStore;
use chorus_xml::Element;
use serde_json::{json, Value};

use super::{arg_str, storage_err, CommandError, CommandResult};
use crate::AdminContext;

/// The subject of a message of the day, so that a client tells it from
/// an announcement.
pub const MOTD_SUBJECT: &str = "Message of the day";

/// Kept on a session once it was sent the message of the day, so that it
/// gets it once (the `available` hook runs again when an offline message
/// arrives during login).
#[derive(Clone, Copy, Debug)]
pub struct MotdSent;

/// A headline from `domain` to `to`.
pub fn server_message(domain: &str, to: &FullJid, subject: Option<&str>, body: &str) -> Element {
    let mut m = Element::new("message", ns::JABBER_CLIENT)
        .with_attr("type", "headline")
        .with_attr("from", domain)
        .with_attr("to", to.to_string());
    if let Some(s) = subject.filter(|s| !s.is_empty()) {
        m.push(Element::new("subject", ns::JABBER_CLIENT).with_text(s));
    }
    m.push(Element::new("body", ns::JABBER_CLIENT).with_text(body));
    m
}

/// The domains a command acts on: `--domain` (one of ours), else all.
fn domains(ctx: &AdminContext, args: &Value) -> Result<Vec<String>, CommandError> {
    match arg_str(args, "domain") {
        None => Ok(ctx.domains.clone()),
        Some(d) => {
            let d = d.to_ascii_lowercase();
            if ctx.domains.contains(&d) {
                Ok(vec![d])
            } else {
                Err(CommandError::BadArgs(format!(
                    "'{d}' is not served here (server.domains: {})",
                    ctx.domains.join(", ")
                )))
            }
        }
    }
}

fn text_arg(args: &Value) -> Result<&str, CommandError> {
    match arg_str(args, "text") {
        Some(t) if !t.trim().is_empty() => Ok(t),
        _ => Err(CommandError::BadArgs("the text is empty".into())),
    }
}

/// Routes `body` to the sessions of `domains` (only the available ones
/// with `available_only`); returns how many were sent it. Each is routed
/// like any stanza from the server, so blocking and the session's own
/// rules apply.
async fn send_to_sessions(
    ctx: &AdminContext,
    domains: &[String],
    subject: Option<&str>,
    body: &str,
    available_only: bool,
) -> usize {
    let mut sent = 0;
    for s in ctx.sessions.sessions() {
        let domain = s.full.domain();
        if !domains.iter().any(|d| d == domain) || (available_only && !s.available()) {
            continue;
        }
        if available_only {
            // Past its initial presence: the hook will not send it again.
            s.mark(MotdSent);
        }
        ctx.router
            .send(server_message(domain, &s.full, subject, body))
            .await;
        sent += 1;
    }
    sent
}

/// `announce`: a headline to every online session.
pub async fn announce(ctx: &AdminContext, args: &Value) -> CommandResult {
    let text = text_arg(args)?;
    let domains = domains(ctx, args)?;
    let sent = send_to_sessions(ctx, &domains, arg_str(args, "subject"), text, false).await;
    tracing::info!(domains = %domains.join(","), sessions = sent, "announcement sent by operator");
    Ok(json!({ "sent": sent, "text": format!("sent to {sent} session(s)\n") }))
}

/// `motd set`: stores the message of the day and sends it to the sessions
/// already available (XEP-0133 §4.24: "sent immediately to users who are
/// online when the message is set, or after the next session initiation
/// for other users").
/// With `--quiet` it is only stored: XEP-0133's edit-motd runs it so, as
/// ejabberd's `motd/update` does, since a correction is not news.
pub async fn motd_set(ctx: &AdminContext, args: &Value) -> CommandResult {
    let announce = !args.get("quiet").and_then(Value::as_bool).unwrap_or(false);
    let text = text_arg(args)?;
    let domains = domains(ctx, args)?;
    for d in &domains {
        ctx.storage.set_motd(d, text).await.map_err(storage_err)?;
    }
    let sent = if announce {
        send_to_sessions(ctx, &domains, Some(MOTD_SUBJECT), text, true).await
    } else {
        0
    };
    tracing::info!(domains = %domains.join(","), sessions = sent, "message of the day set by operator");
    Ok(json!({
        "set": domains,
        "sent": sent,
        "text": format!("set for {}; sent to {sent} session(s)\n", domains.join(", ")),
    }))
}

/// `motd show`: the message of the day of each domain that has one.
pub async fn motd_show(ctx: &AdminContext, args: &Value) -> CommandResult {
    let mut motds = serde_json::Map::new();
    let mut text = String::new();
    for d in domains(ctx, args)? {
        if let Some(m) = ctx.storage.motd(&d).await.map_err(storage_err)? {
            text.push_str(&format!("{d}:\n{m}\n"));
            motds.insert(d, Value::String(m));
        }
    }
    if text.is_empty() {
        text.push_str("no message of the day\n");
    }
    Ok(json!({ "motd": motds, "text": text }))
}

/// `motd delete`: no more message of the day.
pub async fn motd_delete(ctx: &AdminContext, args: &Value) -> CommandResult {
    let mut deleted = Vec::new();
    for d in domains(ctx, args)? {
        if ctx.storage.delete_motd(&d).await.map_err(storage_err)? {
            deleted.push(d);
        }
    }
    tracing::info!(domains = %deleted.join(","), "message of the day deleted by operator");
    Ok(json!({
        "deleted": deleted,
        "text": if deleted.is_empty() {
            "no message of the day\n".to_owned()
        } else {
            format!("deleted for {}\n", deleted.join(", "))
        },
    }))
}
