//! Account commands: `user add`, `user del`, `user passwd` and `user list`.
//!
//! A password reaches the server only inside the request body (chorusctl
//! reads it from a prompt or stdin, never argv) and goes no further than
//! `credentials`, which turns it into SCRAM keys: storage never sees it.

use chorus_storage::{AccountStore, StoredCredentials};
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
            Err(CommandError::Failed(format!("{jid} already exists")))
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
        Err(CommandError::Failed(format!("{jid} does not exist")))
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
        Err(CommandError::Failed(format!("{jid} does not exist")))
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
