//! XEP-0133: Service Administration (version 1.3.1): the admin commands as
//! XEP-0050 ad-hoc commands for the accounts in `admin.admins`, and the
//! message of the day sent at each session's initial presence.
//!
//! Each command's form maps onto the admin command `chorusctl` runs
//! (`crate::commands::execute` with the same words and arguments), so an
//! admin in a client has exactly the authority and effects of the operator
//! at the socket: `delete-user` is `user del` (the `account_removed`
//! hooks, the sessions ended), `disable-user` is `user disable`, and so
//! on. Field vars are the XEP's (§4, §6.2: `accountjid`, `accountjids`,
//! `password`, `password-verify`, `max_items`, `announcement`, `motd`...).
//! Commands on accounts take only accounts of domains served here; the
//! counts, lists, announcement and message of the day are of the domain
//! the command was sent to.
//!
//! `delete-user` has two stages: the accounts, then (with `next`) a review
//! of what exists and is online, from which `prev` goes back and
//! `complete` deletes; `complete` at the first stage deletes at once, as
//! the XEP's own flow does.
//!
//! Left out: get-user-password (passwords are never stored), user-stats,
//! black- and whitelists, the disabled/active/idle counts and lists,
//! welcome messages, edit-admin, restart and shutdown.

use chorus_jid::{BareJid, Jid};
use chorus_modules::{ClientLink, HookSet, Module, ModuleInfo, SessionCtx, Support, Xep};
use chorus_proto::{ns, StanzaErrorCondition};
use chorus_storage::{AccountStore, AdminStore};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::adhoc::{AdhocCommand, Done, Env, Failure, Fields, NoteType};
use crate::commands::announce::{server_message, MotdSent, MOTD_SUBJECT};
use crate::commands::{execute, CommandError};
use crate::AdminContext;

/// The XEP-0133 commands, in the order a client lists them.
pub fn commands() -> Vec<Box<dyn AdhocCommand>> {
    use Kind::*;
    [
        (AddUser, "add-user", "Add a User"),
        (DeleteUser, "delete-user", "Delete a User"),
        (DisableUser, "disable-user", "Disable a User"),
        (ReenableUser, "reenable-user", "Re-Enable a User"),
        (EndUserSession, "end-user-session", "End User Session"),
        (
            ChangeUserPassword,
            "change-user-password",
            "Change User Password",
        ),
        (GetUserRoster, "get-user-roster", "Get User Roster"),
        (
            GetUserLastlogin,
            "get-user-lastlogin",
            "Get User Last Login Time",
        ),
        (
            RegisteredUsersNum,
            "get-registered-users-num",
            "Get Number of Registered Users",
        ),
        (
            OnlineUsersNum,
            "get-online-users-num",
            "Get Number of Online Users",
        ),
        (
            RegisteredUsersList,
            "get-registered-users-list",
            "Get List of Registered Users",
        ),
        (
            OnlineUsersList,
            "get-online-users-list",
            "Get List of Online Users",
        ),
        (Announce, "announce", "Send Announcement to Online Users"),
        (SetMotd, "set-motd", "Set Message of the Day"),
        (EditMotd, "edit-motd", "Edit Message of the Day"),
        (DeleteMotd, "delete-motd", "Delete Message of the Day"),
    ]
    .into_iter()
    .map(|(kind, node, name)| {
        Box::new(AdminCommand {
            kind,
            node: NODES
                .iter()
                .copied()
                .find(|n| n.strip_prefix("http://jabber.org/protocol/admin#") == Some(node))
                .unwrap_or(""),
            name,
        }) as Box<dyn AdhocCommand>
    })
    .collect()
}

/// The command nodes (§4: `http://jabber.org/protocol/admin#<name>`), as
/// static strings for the disco items.
const NODES: &[&str] = &[
    "http://jabber.org/protocol/admin#add-user",
    "http://jabber.org/protocol/admin#delete-user",
    "http://jabber.org/protocol/admin#disable-user",
    "http://jabber.org/protocol/admin#reenable-user",
    "http://jabber.org/protocol/admin#end-user-session",
    "http://jabber.org/protocol/admin#change-user-password",
    "http://jabber.org/protocol/admin#get-user-roster",
    "http://jabber.org/protocol/admin#get-user-lastlogin",
    "http://jabber.org/protocol/admin#get-registered-users-num",
    "http://jabber.org/protocol/admin#get-online-users-num",
    "http://jabber.org/protocol/admin#get-registered-users-list",
    "http://jabber.org/protocol/admin#get-online-users-list",
    "http://jabber.org/protocol/admin#announce",
    "http://jabber.org/protocol/admin#set-motd",
    "http://jabber.org/protocol/admin#edit-motd",
    "http://jabber.org/protocol/admin#delete-motd",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    AddUser,
    DeleteUser,
    DisableUser,
    ReenableUser,
    EndUserSession,
    ChangeUserPassword,
    GetUserRoster,
    GetUserLastlogin,
    RegisteredUsersNum,
    OnlineUsersNum,
    RegisteredUsersList,
    OnlineUsersList,
    Announce,
    SetMotd,
    EditMotd,
    DeleteMotd,
}

struct AdminCommand {
    kind: Kind,
    node: &'static str,
    name: &'static str,
}

/// The reason a session ended by `end-user-session` is given.
const END_SESSION_REASON: &str = "Session ended by an administrator";
/// The `max_items` choices of §4.20 and §4.22.
const MAX_ITEMS: &[&str] = &["25", "50", "75", "100", "150", "200", "none"];

impl AdhocCommand for AdminCommand {
    fn node(&self) -> &'static str {
        self.node
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn admin_only(&self) -> bool {
        true
    }

    fn stages(&self) -> usize {
        use Kind::*;
        match self.kind {
            RegisteredUsersNum | OnlineUsersNum | DeleteMotd => 0,
            DeleteUser => 2,
            _ => 1,
        }
    }

    fn completes_at(&self, stage: usize) -> bool {
        // delete-user completes from its first form as the XEP shows, or
        // after the review its `next` leads to.
        self.kind == Kind::DeleteUser || stage + 1 == self.stages()
    }

    fn form<'a>(
        &'a self,
        env: &'a Env<'a>,
        stage: usize,
        earlier: &'a [Fields],
        prefill: Option<&'a Fields>,
    ) -> BoxFuture<'a, Result<Element, Failure>> {
        Box::pin(async move {
            let ctx = env.ctx()?;
            let mut f = match (self.kind, stage) {
                (Kind::DeleteUser, 1) => return review(ctx, earlier).await,
                (Kind::AddUser, _) => form(
                    "Adding a User",
                    "Fill out this form to add a user.",
                    vec![
                        field("accountjid", "jid-single", "The Jabber ID for the account to be added", true),
                        field("password", "text-private", "The password for this account", true),
                        field("password-verify", "text-private", "Retype password", true),
                        field("email", "text-single", "Email address (not stored)", false),
                        field("given_name", "text-single", "Given name (not stored)", false),
                        field("surname", "text-single", "Family name (not stored)", false),
                    ],
                ),
                (Kind::DeleteUser, _) => accounts_form(
                    "Deleting a User",
                    "Fill out this form to delete a user.",
                    "The Jabber ID(s) to delete",
                ),
                (Kind::DisableUser, _) => {
                    let mut f = accounts_form(
                        "Disabling a User",
                        "Fill out this form to disable a user.",
                        "The Jabber ID(s) to disable",
                    );
                    f.push(field(
                        "reason",
                        "text-single",
                        "Reason (kept, and sent to the user's sessions)",
                        false,
                    ));
                    f
                }
                (Kind::ReenableUser, _) => accounts_form(
                    "Re-Enable a User",
                    "Fill out this form to re-enable a user.",
                    "The Jabber ID(s) to re-enable",
                ),
                (Kind::EndUserSession, _) => accounts_form(
                    "Ending a User Session",
                    "Fill out this form to end a user's session.",
                    "The Jabber ID(s) for which to end sessions",
                ),
                (Kind::ChangeUserPassword, _) => form(
                    "Changing a User Password",
                    "Fill out this form to change a user's password.",
                    vec![
                        field("accountjid", "jid-single", "The Jabber ID for this account", true),
                        field("password", "text-private", "The password for this account", true),
                    ],
                ),
                (Kind::GetUserRoster, _) => accounts_form(
                    "Getting a User's Roster",
                    "Fill out this form to get a user's roster.",
                    "The Jabber ID for which to retrieve the roster",
                ),
                (Kind::GetUserLastlogin, _) => accounts_form(
                    "Getting a User's Last Login Time",
                    "Fill out this form to get a user's last login time.",
                    "The Jabber ID for which to retrieve the last login time",
                ),
                (Kind::RegisteredUsersList, _) => max_items_form(
                    "Requesting List of Registered Users",
                    "Fill out this form to request the registered users of this service.",
                ),
                (Kind::OnlineUsersList, _) => max_items_form(
                    "Requesting List of Online Users",
                    "Fill out this form to request the online users of this service.",
                ),
                (Kind::Announce, _) => form(
                    "Making an Announcement",
                    "Fill out this form to make an announcement to all active users of this service.",
                    vec![
                        field("subject", "text-single", "Subject", false),
                        field("announcement", "text-multi", "Announcement", true),
                    ],
                ),
                (Kind::SetMotd | Kind::EditMotd, _) => {
                    let (title, instructions) = if self.kind == Kind::SetMotd {
                        (
                            "Setting the Message of the Day",
                            "Fill out this form to set the message of the day.",
                        )
                    } else {
                        (
                            "Editing the Message of the Day",
                            "Fill out this form to edit the message of the day.",
                        )
                    };
                    let mut motd = field("motd", "text-multi", "Message of the Day", true);
                    // §4.25: the edit form "SHOULD include the current
                    // message of the day".
                    if self.kind == Kind::EditMotd && prefill.is_none() {
                        let current = ctx.storage.motd(env.domain).await.map_err(|e| {
                            Failure::Error(
                                StanzaErrorCondition::InternalServerError,
                                format!("storage: {e}"),
                            )
                        })?;
                        for line in current.unwrap_or_default().lines() {
                            motd.push(value(line));
                        }
                    }
                    form(title, instructions, vec![motd])
                }
                (Kind::RegisteredUsersNum | Kind::OnlineUsersNum | Kind::DeleteMotd, _) => {
                    return Err(Failure::Error(
                        StanzaErrorCondition::InternalServerError,
                        "this command has no form".into(),
                    ))
                }
            };
            if let Some(values) = prefill {
                fill(&mut f, values);
            }
            Ok(f)
        })
    }

    fn check(&self, env: &Env<'_>, stage: usize, fields: &Fields) -> Result<(), Failure> {
        let ctx = env.ctx()?;
        match (self.kind, stage) {
            (Kind::AddUser, _) => {
                account(ctx, fields)?;
                let password = text(fields, "password");
                if password.is_empty() {
                    return Err(Failure::BadPayload("a password is required".into()));
                }
                // A client that shows the XEP's form sends both; one that
                // leaves the second field out is not second-guessed.
                if fields.contains_key("password-verify")
                    && text(fields, "password-verify") != password
                {
                    return Err(Failure::BadPayload("the passwords do not match".into()));
                }
                Ok(())
            }
            (Kind::ChangeUserPassword, _) => {
                account(ctx, fields)?;
                if text(fields, "password").is_empty() {
                    return Err(Failure::BadPayload("a password is required".into()));
                }
                Ok(())
            }
            (Kind::DeleteUser | Kind::DisableUser | Kind::ReenableUser, 0) => {
                accounts(ctx, fields).map(drop)
            }
            (Kind::EndUserSession, _) => sessions(ctx, fields).map(drop),
            (Kind::GetUserRoster | Kind::GetUserLastlogin, _) => account(ctx, fields).map(drop),
            (Kind::RegisteredUsersList | Kind::OnlineUsersList, _) => max_items(fields).map(drop),
            (Kind::Announce, _) => nonempty(fields, "announcement"),
            (Kind::SetMotd | Kind::EditMotd, _) => nonempty(fields, "motd"),
            _ => Ok(()),
        }
    }

    fn run<'a>(
        &'a self,
        env: &'a Env<'a>,
        submitted: &'a [Fields],
    ) -> BoxFuture<'a, Result<Done, Failure>> {
        Box::pin(async move {
            let ctx = env.ctx()?;
            let empty = Fields::new();
            let fields = submitted.first().unwrap_or(&empty);
            let domain = env.domain;
            match self.kind {
                Kind::AddUser => {
                    let jid = account(ctx, fields)?;
                    let args =
                        json!({ "jid": jid.to_string(), "password": text(fields, "password") });
                    run(ctx, "user add", &args).await?;
                    Ok(done(jid.to_string(), format!("{jid} added")))
                }
                Kind::ChangeUserPassword => {
                    let jid = account(ctx, fields)?;
                    let args =
                        json!({ "jid": jid.to_string(), "password": text(fields, "password") });
                    run(ctx, "user passwd", &args).await?;
                    Ok(done(jid.to_string(), format!("password of {jid} changed")))
                }
                Kind::DeleteUser => {
                    let jids = accounts(ctx, fields)?;
                    each(
                        ctx,
                        "user del",
                        jids.iter().map(|j| json!({ "jid": j.to_string() })),
                        &jids,
                        "deleted",
                    )
                    .await
                }
                Kind::DisableUser => {
                    let jids = accounts(ctx, fields)?;
                    let reason = text(fields, "reason");
                    each(
                        ctx,
                        "user disable",
                        jids.iter()
                            .map(|j| json!({ "jid": j.to_string(), "reason": reason })),
                        &jids,
                        "disabled",
                    )
                    .await
                }
                Kind::ReenableUser => {
                    let jids = accounts(ctx, fields)?;
                    each(
                        ctx,
                        "user enable",
                        jids.iter().map(|j| json!({ "jid": j.to_string() })),
                        &jids,
                        "re-enabled",
                    )
                    .await
                }
                Kind::EndUserSession => {
                    let jids = sessions(ctx, fields)?;
                    each(
                        ctx,
                        "sessions kick",
                        jids.iter()
                            .map(|j| json!({ "jid": j.to_string(), "reason": END_SESSION_REASON })),
                        &jids,
                        "session(s) ended",
                    )
                    .await
                }
                Kind::GetUserRoster => {
                    let jid = account(ctx, fields)?;
                    let r = run(ctx, "user roster", &json!({ "jid": jid.to_string() })).await?;
                    let mut x = result_form(vec![result_field("accountjids", &[jid.to_string()])]);
                    // §4.8: the roster "formatted according to the
                    // 'jabber:iq:roster' protocol", inside the form.
                    let mut q = Element::new("query", ns::ROSTER);
                    for i in r["items"].as_array().into_iter().flatten() {
                        let mut item = Element::new("item", ns::ROSTER)
                            .with_attr("jid", i["jid"].as_str().unwrap_or_default())
                            .with_attr(
                                "subscription",
                                i["subscription"].as_str().unwrap_or("none"),
                            );
                        if let Some(n) = i["name"].as_str() {
                            item.set_attr("name", n);
                        }
                        if i["ask"].as_bool() == Some(true) {
                            item.set_attr("ask", "subscribe");
                        }
                        for g in i["groups"].as_array().into_iter().flatten() {
                            item.push(
                                Element::new("group", ns::ROSTER)
                                    .with_text(g.as_str().unwrap_or_default()),
                            );
                        }
                        q.push(item);
                    }
                    x.push(q);
                    Ok(Done {
                        payload: Some(x),
                        notes: Vec::new(),
                        target: jid.to_string(),
                    })
                }
                Kind::GetUserLastlogin => {
                    let jid = account(ctx, fields)?;
                    let r = run(ctx, "user lastlogin", &json!({ "jid": jid.to_string() })).await?;
                    let online = r["online"].as_array().is_some_and(|o| !o.is_empty());
                    // Chorus records logouts (XEP-0012), not logins: like
                    // ejabberd, an account online now says "Online", one
                    // offline gives when it went offline (XEP-0082).
                    let last = if online {
                        "Online".to_owned()
                    } else {
                        r["last_logout"].as_str().unwrap_or("Never").to_owned()
                    };
                    Ok(Done {
                        payload: Some(result_form(vec![
                            result_field("accountjids", &[jid.to_string()]),
                            result_field("lastlogin", &[last]),
                        ])),
                        notes: Vec::new(),
                        target: jid.to_string(),
                    })
                }
                Kind::RegisteredUsersNum => {
                    let r = run(ctx, "user count", &json!({ "domain": domain })).await?;
                    let n = r["count"].as_u64().unwrap_or_default().to_string();
                    Ok(Done {
                        payload: Some(result_form(vec![labelled(
                            result_field("registeredusersnum", &[n]),
                            "The number of registered users",
                        )])),
                        notes: Vec::new(),
                        target: domain.to_owned(),
                    })
                }
                Kind::OnlineUsersNum => {
                    let n = online_users(ctx, domain).await?.len().to_string();
                    Ok(Done {
                        payload: Some(result_form(vec![labelled(
                            result_field("onlineusersnum", &[n]),
                            "The number of online users",
                        )])),
                        notes: Vec::new(),
                        target: domain.to_owned(),
                    })
                }
                Kind::RegisteredUsersList | Kind::OnlineUsersList => {
                    let max = max_items(fields)?;
                    let (all, var, label) = if self.kind == Kind::RegisteredUsersList {
                        let r = run(ctx, "user list", &json!({ "domain": domain })).await?;
                        let users = r["users"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|u| u.as_str().map(str::to_owned))
                            .collect::<Vec<_>>();
                        (users, "registereduserjids", "The list of all users")
                    } else {
                        (
                            online_users(ctx, domain).await?,
                            "onlineuserjids",
                            "The list of all online users",
                        )
                    };
                    let total = all.len();
                    let shown: Vec<String> =
                        all.into_iter().take(max.unwrap_or(usize::MAX)).collect();
                    let mut notes = Vec::new();
                    if shown.len() < total {
                        notes.push((
                            NoteType::Warn,
                            format!("showing {} of {total}", shown.len()),
                        ));
                    }
                    let mut f = labelled(result_field(var, &shown), label);
                    f.set_attr("type", "jid-multi");
                    Ok(Done {
                        payload: Some(result_form(vec![f])),
                        notes,
                        target: domain.to_owned(),
                    })
                }
                Kind::Announce => {
                    let args = json!({
                        "text": text(fields, "announcement"),
                        "subject": text(fields, "subject"),
                        "domain": domain,
                    });
                    let r = run(ctx, "announce", &args).await?;
                    let n = r["sent"].as_u64().unwrap_or_default();
                    Ok(done(domain.to_owned(), format!("sent to {n} session(s)")))
                }
                Kind::SetMotd | Kind::EditMotd => {
                    let args = json!({
                        "text": text(fields, "motd"),
                        "domain": domain,
                        "quiet": self.kind == Kind::EditMotd,
                    });
                    let r = run(ctx, "motd set", &args).await?;
                    let n = r["sent"].as_u64().unwrap_or_default();
                    Ok(done(
                        domain.to_owned(),
                        format!("message of the day set; sent to {n} session(s)"),
                    ))
                }
                Kind::DeleteMotd => {
                    let r = run(ctx, "motd delete", &json!({ "domain": domain })).await?;
                    let gone = r["deleted"].as_array().is_some_and(|d| !d.is_empty());
                    Ok(done(
                        domain.to_owned(),
                        if gone {
                            "message of the day deleted"
                        } else {
                            "there was no message of the day"
                        }
                        .to_owned(),
                    ))
                }
            }
        })
    }
}

/// Runs the admin command `name`, its errors as the stanza errors of
/// XEP-0133 §5 (`conflict` for an account that exists, `item-not-found`
/// for one that does not).
async fn run(ctx: &AdminContext, name: &str, args: &Value) -> Result<Value, Failure> {
    execute(ctx, name, args).await.map_err(|e| match e {
        CommandError::BadArgs(t) => Failure::BadPayload(t),
        CommandError::NotFound(t) | CommandError::Unknown(t) => {
            Failure::Error(StanzaErrorCondition::ItemNotFound, t)
        }
        CommandError::Conflict(t) => Failure::Error(StanzaErrorCondition::Conflict, t),
        CommandError::Failed(t) => Failure::Error(StanzaErrorCondition::InternalServerError, t),
    })
}

/// Runs `name` once per account: one account's failure is that command's
/// error; with several, each outcome is a note and the command completes.
async fn each<T: std::fmt::Display>(
    ctx: &AdminContext,
    name: &str,
    args: impl Iterator<Item = Value>,
    targets: &[T],
    what: &str,
) -> Result<Done, Failure> {
    let mut notes = Vec::new();
    for (args, target) in args.zip(targets) {
        match run(ctx, name, &args).await {
            Ok(_) => notes.push((NoteType::Info, format!("{target}: {what}"))),
            Err(f) if targets.len() == 1 => return Err(f),
            Err(Failure::BadPayload(t) | Failure::Error(_, t)) => {
                notes.push((NoteType::Error, format!("{target}: {t}")))
            }
        }
    }
    let target = targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Ok(Done {
        payload: None,
        notes,
        target,
    })
}

fn done(target: String, note: String) -> Done {
    Done {
        payload: None,
        notes: vec![(NoteType::Info, note)],
        target,
    }
}

/// The bare JIDs of the accounts of `domain` with a session.
async fn online_users(ctx: &AdminContext, domain: &str) -> Result<Vec<String>, Failure> {
    let r = run(ctx, "sessions list", &json!({})).await?;
    let mut users: Vec<String> = r["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["jid"].as_str()?.parse::<Jid>().ok())
        .filter(|j| j.domain() == domain)
        .map(|j| j.bare().to_string())
        .collect();
    users.sort_unstable();
    users.dedup();
    Ok(users)
}

/// The review stage of delete-user: what each account is, before it goes.
async fn review(ctx: &AdminContext, earlier: &[Fields]) -> Result<Element, Failure> {
    let empty = Fields::new();
    let jids = accounts(ctx, earlier.first().unwrap_or(&empty))?;
    let mut f = form(
        "Confirm Deletion",
        "These accounts and everything stored for them will be deleted; their sessions end.",
        Vec::new(),
    );
    for j in &jids {
        let exists = ctx
            .storage
            .account_exists(j.node().unwrap_or_default(), j.domain())
            .await
            .unwrap_or(false);
        let sessions = ctx.sessions.resources(j).len();
        let line = if exists {
            format!("{j}: {sessions} session(s) online")
        } else {
            format!("{j}: no such account")
        };
        f.push(
            Element::new("field", ns::DATA_FORMS)
                .with_attr("type", "fixed")
                .with_child(value(&line)),
        );
    }
    Ok(f)
}

// Reading the submitted forms. Everything here comes from the client:
// nothing is trusted, nothing panics.

/// The text of a field, its values joined by newlines (text-multi).
fn text(fields: &Fields, var: &str) -> String {
    fields.get(var).map(|v| v.join("\n")).unwrap_or_default()
}

fn nonempty(fields: &Fields, var: &str) -> Result<(), Failure> {
    if text(fields, var).trim().is_empty() {
        Err(Failure::BadPayload(format!("'{var}' is required")))
    } else {
        Ok(())
    }
}

/// An account JID of a served domain.
fn local_account(ctx: &AdminContext, raw: &str) -> Result<BareJid, Failure> {
    let jid: BareJid = raw
        .trim()
        .parse()
        .map_err(|e| Failure::BadPayload(format!("invalid JID '{raw}': {e}")))?;
    if jid.node().is_none() {
        return Err(Failure::BadPayload(format!("'{raw}' is not an account")));
    }
    if !ctx.domains.iter().any(|d| d == jid.domain()) {
        return Err(Failure::BadPayload(format!(
            "'{}' is not served here",
            jid.domain()
        )));
    }
    Ok(jid)
}

/// The one account of `accountjid` (or, as the XEP's forms for the roster
/// and the last login have it, of a one-value `accountjids`).
fn account(ctx: &AdminContext, fields: &Fields) -> Result<BareJid, Failure> {
    let values = fields
        .get("accountjid")
        .filter(|v| !v.is_empty())
        .or_else(|| fields.get("accountjids"))
        .map(Vec::as_slice)
        .unwrap_or_default();
    match values {
        [one] => local_account(ctx, one),
        [] => Err(Failure::BadPayload("'accountjid' is required".into())),
        _ => Err(Failure::BadPayload("one account at a time".into())),
    }
}

/// The accounts of `accountjids` (at least one).
fn accounts(ctx: &AdminContext, fields: &Fields) -> Result<Vec<BareJid>, Failure> {
    let values: Vec<&String> = fields
        .get("accountjids")
        .or_else(|| fields.get("accountjid"))
        .into_iter()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .collect();
    if values.is_empty() {
        return Err(Failure::BadPayload("'accountjids' is required".into()));
    }
    values.into_iter().map(|v| local_account(ctx, v)).collect()
}

/// End-user-session's targets: accounts (every session) or full JIDs (one
/// session, §4.5), of served domains.
fn sessions(ctx: &AdminContext, fields: &Fields) -> Result<Vec<Jid>, Failure> {
    let values: Vec<&String> = fields
        .get("accountjids")
        .or_else(|| fields.get("accountjid"))
        .into_iter()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .collect();
    if values.is_empty() {
        return Err(Failure::BadPayload("'accountjids' is required".into()));
    }
    values
        .into_iter()
        .map(|v| {
            let jid: Jid = v
                .trim()
                .parse()
                .map_err(|e| Failure::BadPayload(format!("invalid JID '{v}': {e}")))?;
            local_account(ctx, &jid.bare().to_string())?;
            Ok(jid)
        })
        .collect()
}

/// `max_items`: a number, `none` or absent (no limit).
fn max_items(fields: &Fields) -> Result<Option<usize>, Failure> {
    match fields
        .get("max_items")
        .and_then(|v| v.first())
        .map(|v| v.trim())
    {
        None | Some("") | Some("none") => Ok(None),
        Some(n) => n
            .parse()
            .map(Some)
            .map_err(|_| Failure::BadPayload(format!("max_items '{n}' is not a number"))),
    }
}

// Building forms (XEP-0004), every one with the XEP-0133 FORM_TYPE.

fn value(text: &str) -> Element {
    Element::new("value", ns::DATA_FORMS).with_text(text)
}

fn form_type() -> Element {
    Element::new("field", ns::DATA_FORMS)
        .with_attr("type", "hidden")
        .with_attr("var", "FORM_TYPE")
        .with_child(value(ns::ADMIN))
}

fn form(title: &str, instructions: &str, fields: Vec<Element>) -> Element {
    let mut x = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "form")
        .with_child(Element::new("title", ns::DATA_FORMS).with_text(title))
        .with_child(Element::new("instructions", ns::DATA_FORMS).with_text(instructions))
        .with_child(form_type());
    for f in fields {
        x.push(f);
    }
    x
}

fn field(var: &str, typ: &str, label: &str, required: bool) -> Element {
    let mut f = Element::new("field", ns::DATA_FORMS)
        .with_attr("var", var)
        .with_attr("type", typ)
        .with_attr("label", label);
    if required {
        f.push(Element::new("required", ns::DATA_FORMS));
    }
    f
}

fn accounts_form(title: &str, instructions: &str, label: &str) -> Element {
    form(
        title,
        instructions,
        vec![field("accountjids", "jid-multi", label, true)],
    )
}

fn max_items_form(title: &str, instructions: &str) -> Element {
    let mut f = field(
        "max_items",
        "list-single",
        "Maximum number of items to show",
        false,
    );
    for v in MAX_ITEMS {
        let label = if *v == "none" { "None" } else { v };
        f.push(
            Element::new("option", ns::DATA_FORMS)
                .with_attr("label", label)
                .with_child(value(v)),
        );
    }
    form(title, instructions, vec![f])
}

/// Puts what the requester submitted before back into a form it returns
/// to (`prev`); private fields stay empty.
fn fill(form: &mut Element, values: &Fields) {
    for f in form.children_mut() {
        if f.name() != "field" || f.attr("type") == Some("text-private") {
            continue;
        }
        let Some(vs) = f.attr("var").and_then(|v| values.get(v)) else {
            continue;
        };
        let vs = vs.clone();
        f.remove_children(|c| c.name() == "value");
        for v in vs {
            f.push(value(&v));
        }
    }
}

fn result_form(fields: Vec<Element>) -> Element {
    let mut x = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "result")
        .with_child(form_type());
    for f in fields {
        x.push(f);
    }
    x
}

fn result_field(var: &str, values: &[String]) -> Element {
    let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", var);
    for v in values {
        f.push(value(v));
    }
    f
}

fn labelled(mut f: Element, label: &str) -> Element {
    f.set_attr("label", label);
    f
}

/// Sends each session the message of the day of its domain once, at its
/// initial presence (XEP-0133 §4.24), as Prosody's mod_motd does. Its own
/// module, beside the commands, because it needs no admin context: only
/// storage, read per session that becomes available.
pub struct Motd;

static MOTD_INFO: ModuleInfo = ModuleInfo {
    name: "motd",
    file: file!(),
    xeps: &[Xep {
        number: 133,
        name: "Service Administration",
        version: "1.3.1",
        support: Support::Partial,
        note: "For admin.admins: add, delete (with a review stage), disable and re-enable users, end sessions, change passwords, rosters, last login (the last logout, or Online), registered and online counts and lists, announcements, and the message of the day (sent at each login). Not: get-user-password (never stored), user-stats, black/whitelists, disabled/active/idle users, welcome messages, edit-admin, restart, shutdown.",
    }],
    hooks: HookSet::AVAILABLE,
    ..ModuleInfo::EMPTY
};

impl Module for Motd {
    fn info(&self) -> &'static ModuleInfo {
        &MOTD_INFO
    }

    fn available<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        link: &'a mut dyn ClientLink,
    ) -> Option<BoxFuture<'a, ()>> {
        Some(Box::pin(async move {
            let Some(session) = ctx.services.sessions.get(ctx.full) else {
                return;
            };
            // The hook runs again when an offline message arrives during
            // login; the message of the day goes once per session.
            if session.marked::<MotdSent>().is_some() {
                return;
            }
            let domain = ctx.full.domain();
            match ctx.services.storage.motd(domain).await {
                Ok(Some(text)) => {
                    session.mark(MotdSent);
                    link.send(&server_message(domain, ctx.full, Some(MOTD_SUBJECT), &text));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "message of the day unreadable"),
            }
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_xep_node() {
        let cmds = commands();
        assert_eq!(cmds.len(), NODES.len());
        for c in &cmds {
            assert!(
                c.node().starts_with("http://jabber.org/protocol/admin#"),
                "{}",
                c.name()
            );
        }
        let mut nodes: Vec<_> = cmds.iter().map(|c| c.node()).collect();
        nodes.dedup();
        assert_eq!(nodes.len(), NODES.len());
    }

    #[test]
    fn max_items_is_a_number_or_none() {
        let f = |v: &str| {
            let mut m = Fields::new();
            m.insert("max_items".into(), vec![v.into()]);
            max_items(&m)
        };
        assert_eq!(f("25").unwrap(), Some(25));
        assert_eq!(f("none").unwrap(), None);
        assert!(matches!(f("lots"), Err(Failure::BadPayload(_))));
        assert_eq!(max_items(&Fields::new()).unwrap(), None);
    }

    #[test]
    fn going_back_refills_all_but_passwords() {
        let mut f = form(
            "t",
            "i",
            vec![
                field("accountjid", "jid-single", "a", true),
                field("password", "text-private", "p", true),
            ],
        );
        let mut v = Fields::new();
        v.insert("accountjid".into(), vec!["juliet@localhost".into()]);
        v.insert("password".into(), vec!["secret".into()]);
        fill(&mut f, &v);
        let xml = f.to_xml();
        assert!(xml.contains("<value>juliet@localhost</value>"), "{xml}");
        assert!(!xml.contains("secret"), "{xml}");
    }
}
