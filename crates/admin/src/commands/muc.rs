//! Group chat commands (XEP-0045): `muc list`, `muc info`, `muc create`,
//! `muc destroy`. The rooms are the muc module's; these only ask it.

use serde_json::{json, Value};

use super::{arg_str, CommandError, CommandResult};
use crate::AdminContext;

fn rooms(ctx: &AdminContext) -> Result<&chorus_modules::MucRooms, CommandError> {
    ctx.muc
        .as_ref()
        .ok_or_else(|| CommandError::Failed("group chat is off (muc.enabled = false)".into()))
}

fn failed(e: chorus_modules::MucAdminError) -> CommandError {
    match e {
        chorus_modules::MucAdminError::NotARoom(_) => CommandError::BadArgs(e.to_string()),
        e => CommandError::Failed(e.to_string()),
    }
}

fn summary_json(r: &chorus_modules::RoomSummary) -> Value {
    json!({
        "jid": r.jid,
        "name": r.name,
        "occupants": r.occupants,
        "persistent": r.persistent,
        "public": r.public,
        "members_only": r.members_only,
        "live": r.live,
    })
}

/// `muc list [service]`
pub async fn list(ctx: &AdminContext, args: &Value) -> CommandResult {
    let muc = rooms(ctx)?;
    let service = arg_str(args, "service");
    if let Some(s) = service {
        if !muc.services().iter().any(|x| x == s) {
            return Err(CommandError::BadArgs(format!(
                "'{s}' is not a MUC service here ({})",
                muc.services().join(", ")
            )));
        }
    }
    let list = muc.list(service).await.map_err(failed)?;
    let mut text = String::new();
    for r in &list {
        text.push_str(&format!(
            "{}\t{} occupant(s)\t{}{}{}\t{}\n",
            r.jid,
            r.occupants,
            if r.persistent {
                "persistent"
            } else {
                "temporary"
            },
            if r.members_only { ",members-only" } else { "" },
            if r.live { ",live" } else { "" },
            r.name
        ));
    }
    if list.is_empty() {
        text.push_str("no rooms\n");
    }
    Ok(json!({
        "rooms": list.iter().map(summary_json).collect::<Vec<_>>(),
        "text": text,
    }))
}

/// `muc info <room>`
pub async fn info(ctx: &AdminContext, args: &Value) -> CommandResult {
    let muc = rooms(ctx)?;
    let d = muc
        .info(arg_str(args, "room").unwrap_or_default())
        .await
        .map_err(failed)?;
    let mut text = format!(
        "{} ({})\nsubject: {}\n",
        d.summary.jid,
        if d.summary.live { "live" } else { "stored" },
        d.subject
    );
    text.push_str("configuration:\n");
    for (var, values) in &d.config {
        text.push_str(&format!("  {var} = {}\n", values.join(", ")));
    }
    text.push_str("affiliations:\n");
    for (jid, a) in &d.affiliations {
        text.push_str(&format!("  {jid}\t{a}\n"));
    }
    text.push_str("occupants:\n");
    for (nick, jids, role, a) in &d.occupants {
        text.push_str(&format!("  {nick}\t{role}\t{a}\t{}\n", jids.join(" ")));
    }
    Ok(json!({
        "room": summary_json(&d.summary),
        "subject": d.subject,
        "config": d.config.iter().map(|(k, v)| json!({"var": k, "values": v})).collect::<Vec<_>>(),
        "affiliations": d.affiliations.iter().map(|(j, a)| json!({"jid": j, "affiliation": a})).collect::<Vec<_>>(),
        "occupants": d.occupants.iter().map(|(n, j, r, a)| json!({"nick": n, "jids": j, "role": r, "affiliation": a})).collect::<Vec<_>>(),
        "text": text,
    }))
}

/// `muc create <room> <owner>`
pub async fn create(ctx: &AdminContext, args: &Value) -> CommandResult {
    let muc = rooms(ctx)?;
    let room = arg_str(args, "room").unwrap_or_default();
    let owner = arg_str(args, "owner").unwrap_or_default();
    muc.create(room, owner).await.map_err(failed)?;
    tracing::info!(room, owner, "room created by operator");
    Ok(
        json!({ "room": room, "owner": owner, "text": format!("{room} created, owned by {owner}\n") }),
    )
}

/// `muc destroy <room> [--reason R]`
pub async fn destroy(ctx: &AdminContext, args: &Value) -> CommandResult {
    let muc = rooms(ctx)?;
    let room = arg_str(args, "room").unwrap_or_default();
    let reason = arg_str(args, "reason").map(str::to_owned);
    muc.destroy(room, reason).await.map_err(failed)?;
    tracing::info!(room, "room destroyed by operator");
    Ok(json!({ "room": room, "text": format!("{room} destroyed\n") }))
}
