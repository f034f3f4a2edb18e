//! Message archive commands (XEP-0313): `mam purge`, which empties one
//! account's archive; archiving itself goes on as configured.

use serde_json::{json, Value};

use super::{account_arg, storage_err, CommandResult};
use crate::AdminContext;

/// `mam purge`: deletes every archived message of an account.
pub async fn purge(ctx: &AdminContext, args: &Value) -> CommandResult {
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
