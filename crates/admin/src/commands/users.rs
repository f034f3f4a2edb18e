//! Account commands: `user add`, `user del`, `user passwd`, `user list`,
//! `user disable` and `user enable`, `user roster`, `user lastlogin`,
//! `user count`, `user info`, and `user clients` and `user revoke` (XEP-0388
//! clients and their XEP-0484 FAST tokens). The XEP-0133 ad-hoc commands run these same functions.
//!
//! A password reaches the server only inside the request body (chorusctl
//! reads it from a prompt or stdin, never argv) and goes no further than
//! `credentials`, which turns it into SCRAM keys: storage never sees it.

use chorus_jid::BareJid;
use chorus_storage::{
    AccountStore, AdminStore, ClientStore, LastActivityStore, RosterStore, StoredCredentials,
};
use serde_json::{json, Value};

use super::{account_arg, arg_str, storage_err, CommandError, CommandResult};
use crate::AdminContext;

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

/// `user add`: registers an account; an existing one is not touched.
pub async fn add(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let creds = credentials(ctx, args)?;
    let node = jid.node().unwrap_or_default();
    match ctx.storage.create_account(node, jid.domain(), &creds).await {
        Ok(()) => {
            tracing::info!(jid = %jid, "account registered by operator");
            Ok(json!({ "added": jid.to_string() }))
        }
        Err(chorus_storage::StorageError::AlreadyExists) => {
            Err(CommandError::Conflict(format!("{jid} already exists")))
        }
        Err(e) => Err(storage_err(e)),
    }
}

/// `user del`: deletes an account and everything stored for it.
pub async fn del(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let node = jid.node().unwrap_or_default();
    if ctx
        .storage
        .delete_account(node, jid.domain())
        .await
        .map_err(storage_err)?
    {
        tracing::info!(jid = %jid, "account deleted by operator");
        // What modules keep beyond storage goes too, and its sessions end,
        // as when a user removes their own account (XEP-0077 §3.2).
        ctx.router.hooks().account_removed(&ctx.router, &jid).await;
        for s in ctx.sessions.resources(&jid) {
            s.sink.account_removed();
        }
        Ok(json!({ "deleted": jid.to_string() }))
    } else {
        Err(CommandError::NotFound(format!("{jid} does not exist")))
    }
}

/// `user passwd`: replaces an account's credentials.
pub async fn passwd(ctx: &AdminContext, args: &Value) -> CommandResult {
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
        Err(CommandError::NotFound(format!("{jid} does not exist")))
    }
}

/// `user list`: every account, or one domain's.
pub async fn list(ctx: &AdminContext, args: &Value) -> CommandResult {
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

/// The reason a session of a disabled account is told when it is ended.
const DISABLED_DEFAULT: &str = "Account disabled by the server operator";

/// `user disable`: keeps the account and its data, ends its sessions at
/// once (a kick with the reason) and refuses its logins until `user
/// enable` (XEP-0133 §4.3: "MUST result in the termination of any active
/// sessions for the user and in the prevention of further user logins").
pub async fn disable(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let reason = arg_str(args, "reason").unwrap_or_default();
    let node = jid.node().unwrap_or_default();
    // Stored before the kick, so that a client reconnecting at once is
    // already refused.
    if !ctx
        .storage
        .disable_account(node, jid.domain(), reason, std::time::SystemTime::now())
        .await
        .map_err(storage_err)?
    {
        return Err(CommandError::NotFound(format!("{jid} does not exist")));
    }
    let ended = end_sessions(
        ctx,
        &jid,
        if reason.is_empty() {
            DISABLED_DEFAULT
        } else {
            reason
        },
    );
    tracing::info!(jid = %jid, reason, sessions = ended, "account disabled by operator");
    Ok(json!({
        "disabled": jid.to_string(),
        "sessions_ended": ended,
        "text": format!("disabled {jid}; {ended} session(s) ended\n"),
    }))
}

/// Ends every session of `jid` with `reason`; returns how many.
fn end_sessions(ctx: &AdminContext, jid: &BareJid, reason: &str) -> usize {
    let sessions = ctx.sessions.resources(jid);
    for s in &sessions {
        s.sink.kick(reason.to_owned());
    }
    sessions.len()
}

/// `user enable`: lets a disabled account log in again.
pub async fn enable(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let node = jid.node().unwrap_or_default();
    let was = ctx
        .storage
        .enable_account(node, jid.domain())
        .await
        .map_err(storage_err)?;
    if !was
        && !ctx
            .storage
            .account_exists(node, jid.domain())
            .await
            .map_err(storage_err)?
    {
        return Err(CommandError::NotFound(format!("{jid} does not exist")));
    }
    tracing::info!(jid = %jid, was_disabled = was, "account enabled by operator");
    let text = if was {
        format!("enabled {jid}\n")
    } else {
        format!("{jid} was not disabled\n")
    };
    Ok(json!({ "enabled": jid.to_string(), "was_disabled": was, "text": text }))
}

/// `user roster`: the account's roster as stored (RFC 6121 §2.1).
pub async fn roster(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let node = existing(ctx, &jid).await?;
    let node = node.as_str();
    let roster = ctx
        .storage
        .roster(node, jid.domain())
        .await
        .map_err(storage_err)?;
    let mut text = String::new();
    let items: Vec<Value> = roster
        .items
        .iter()
        .map(|i| {
            text.push_str(&format!(
                "{}  {}  {}{}{}\n",
                i.jid,
                i.subscription.as_str(),
                i.name.as_deref().unwrap_or("-"),
                if i.groups.is_empty() { "" } else { "  " },
                i.groups.join(", ")
            ));
            json!({
                "jid": i.jid,
                "name": i.name,
                "subscription": i.subscription.as_str(),
                "ask": i.ask,
                "groups": i.groups,
            })
        })
        .collect();
    if text.is_empty() {
        text = format!("{jid} has no contacts\n");
    }
    Ok(json!({ "jid": jid.to_string(), "items": items, "text": text }))
}

/// `user lastlogin`: the account's online resources, and its last logout
/// as recorded for XEP-0012. Chorus records logouts, not logins; like
/// ejabberd's get-user-lastlogin, an account online now says so.
pub async fn lastlogin(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let node = existing(ctx, &jid).await?;
    let node = node.as_str();
    let online: Vec<String> = ctx
        .sessions
        .resources(&jid)
        .iter()
        .map(|s| s.full.resource().to_owned())
        .collect();
    let last = ctx
        .storage
        .last_activity(node, jid.domain())
        .await
        .map_err(storage_err)?;
    let last_logout = last
        .as_ref()
        .map(|(at, _)| humantime::format_rfc3339_seconds(*at).to_string());
    let text = match (&online[..], &last_logout) {
        ([], Some(t)) => format!("{jid}: offline since {t}\n"),
        ([], None) => format!("{jid}: never logged out\n"),
        (r, _) => format!("{jid}: online ({})\n", r.join(", ")),
    };
    Ok(json!({
        "jid": jid.to_string(),
        "online": online,
        "last_logout": last_logout,
        "status": last.map(|(_, s)| s),
        "text": text,
    }))
}

/// `user count`: how many accounts exist, in total or in one domain.
pub async fn count(ctx: &AdminContext, args: &Value) -> CommandResult {
    let n = ctx
        .storage
        .count_accounts(arg_str(args, "domain"))
        .await
        .map_err(storage_err)?;
    Ok(json!({ "count": n, "text": format!("{n}\n") }))
}

/// The account's node, after checking that the account exists.
async fn existing(ctx: &AdminContext, jid: &BareJid) -> Result<String, CommandError> {
    let node = jid.node().unwrap_or_default();
    if !ctx
        .storage
        .account_exists(node, jid.domain())
        .await
        .map_err(storage_err)?
    {
        return Err(CommandError::NotFound(format!("{jid} does not exist")));
    }
    Ok(node.to_owned())
}

/// `user clients`: the clients the account logged in with over SASL2
/// (XEP-0388 user agents), most recent first, with their token's expiry.
pub async fn clients(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let node = existing(ctx, &jid).await?;
    let list = ctx
        .storage
        .clients(&node, jid.domain())
        .await
        .map_err(storage_err)?;
    let stamp = |t: std::time::SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let mut text = String::new();
    let items: Vec<Value> = list
        .iter()
        .map(|c| {
            let token = c.token_expires.map(stamp);
            text.push_str(&format!(
                "{}  {}  {}  last {}  token {}\n",
                c.id,
                if c.software.is_empty() {
                    "-"
                } else {
                    &c.software
                },
                if c.device.is_empty() { "-" } else { &c.device },
                stamp(c.last_seen),
                token.as_deref().unwrap_or("none"),
            ));
            json!({
                "id": c.id,
                "software": c.software,
                "device": c.device,
                "first_seen": stamp(c.first_seen),
                "last_seen": stamp(c.last_seen),
                "token_expires": token,
            })
        })
        .collect();
    if text.is_empty() {
        text = format!("{jid} has no recorded clients\n");
    }
    Ok(json!({ "jid": jid.to_string(), "clients": items, "text": text }))
}

/// `user revoke`: ends the FAST tokens of one client, or of all.
pub async fn revoke(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let node = existing(ctx, &jid).await?;
    let client = arg_str(args, "client");
    let n = ctx
        .storage
        .fast_revoke(&node, jid.domain(), client)
        .await
        .map_err(storage_err)?;
    tracing::info!(jid = %jid, client = client.unwrap_or("*"), tokens = n, "FAST tokens revoked");
    let text = format!("{n} token(s) of {jid} revoked\n");
    Ok(json!({ "jid": jid.to_string(), "revoked": n, "text": text }))
}

/// `user info`: one account at a glance: whether it is disabled, where it
/// is online, when it last logged out, and the clients it logs in with
/// (XEP-0388 user agents, with their FAST tokens).
pub async fn info(ctx: &AdminContext, args: &Value) -> CommandResult {
    let jid = account_arg(ctx, args)?;
    let node = existing(ctx, &jid).await?;
    let disabled = ctx
        .storage
        .account_disabled(&node, jid.domain())
        .await
        .map_err(storage_err)?;
    let online: Vec<String> = ctx
        .sessions
        .resources(&jid)
        .iter()
        .map(|s| s.full.resource().to_owned())
        .collect();
    let last_logout = ctx
        .storage
        .last_activity(&node, jid.domain())
        .await
        .map_err(storage_err)?
        .map(|(at, _)| humantime::format_rfc3339_seconds(at).to_string());
    let listed = clients(ctx, args).await?;
    let mut text = format!("{jid}\n");
    text.push_str(&match &disabled {
        None => "  disabled: no\n".to_owned(),
        Some(r) if r.is_empty() => "  disabled: yes\n".to_owned(),
        Some(r) => format!("  disabled: yes ({r})\n"),
    });
    text.push_str(&format!(
        "  online: {}\n  last logout: {}\n  clients:\n",
        if online.is_empty() {
            "no".to_owned()
        } else {
            online.join(", ")
        },
        last_logout.as_deref().unwrap_or("never"),
    ));
    for line in listed["text"].as_str().unwrap_or_default().lines() {
        text.push_str(&format!("    {line}\n"));
    }
    Ok(json!({
        "jid": jid.to_string(),
        "disabled": disabled.is_some(),
        "disabled_reason": disabled,
        "online": online,
        "last_logout": last_logout,
        "clients": listed["clients"],
        "text": text,
    }))
}
