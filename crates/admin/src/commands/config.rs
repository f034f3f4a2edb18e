//! Configuration commands: `config reload`, which rereads the file in the
//! running server (as SIGHUP does), and `config check`, which is declared
//! here only so that the registry is complete: chorusctl runs it offline,
//! without a server.

use serde_json::{json, Value};

use super::{CommandError, CommandResult};
use crate::AdminContext;

/// `config reload`: applies what can change without dropping connections.
pub async fn reload(ctx: &AdminContext, _args: &Value) -> CommandResult {
    let summary = (ctx.reload)().await.map_err(CommandError::Failed)?;
    Ok(json!({ "summary": summary, "text": format!("{summary}\n") }))
}

/// `config check` sent to the server: refused, it is a local command.
pub async fn check(_ctx: &AdminContext, _args: &Value) -> CommandResult {
    Err(CommandError::BadArgs(
        "config check runs offline in chorusctl, not through the server".into(),
    ))
}
