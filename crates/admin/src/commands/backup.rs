//! Whole-server import and export in XEP-0227 (PIEFXIS) format: `import`
//! and `export`. The work is in [`crate::piefxis`]; these handlers only
//! take the path argument the server itself opens.

use serde_json::Value;

use super::{arg_str, CommandResult};
use crate::AdminContext;

/// `import <file>`: accounts and their data from a XEP-0227 file.
pub async fn import(ctx: &AdminContext, args: &Value) -> CommandResult {
    crate::piefxis::import(ctx, arg_str(args, "file").unwrap_or_default()).await
}

/// `export <dir>`: one XEP-0227 file per served domain.
pub async fn export(ctx: &AdminContext, args: &Value) -> CommandResult {
    crate::piefxis::export(ctx, arg_str(args, "dir").unwrap_or_default()).await
}
