//! Commands on the supervision tree: `actors tree`, `actors info`,
//! `actors top`, `actors kill`, and `chaos`, which kills actors on a
//! schedule (its runner is [`crate::chaos`]).
//!
//! Everything here reads or acts through the actor registry, by tree path,
//! as an operator sees the tree in `chorusctl actors tree`.

use chorus_supervisor::StopMode;
use serde_json::{json, Value};

use super::{arg_str, arg_usize, CommandError, CommandResult};
use crate::AdminContext;

/// Every node of a tree, depth first.
fn flatten(node: &chorus_supervisor::TreeNode, out: &mut Vec<chorus_supervisor::TreeNode>) {
    let mut n = node.clone();
    n.children = Vec::new();
    out.push(n);
    for c in &node.children {
        flatten(c, out);
    }
}

/// `actors tree`: the live tree, or a subtree, to a depth.
pub async fn tree(ctx: &AdminContext, args: &Value) -> CommandResult {
    let depth = arg_usize(args, "depth")?;
    let path = arg_str(args, "path").unwrap_or(&ctx.root);
    let node = ctx
        .registry
        .snapshot(path, depth)
        .ok_or_else(|| CommandError::Failed(format!("no actor at '{path}'")))?;
    let text = node.render(depth);
    Ok(json!({ "tree": node, "text": text }))
}

/// `actors kill`: kills (abnormal exit) or stops (normal) one actor; its
/// supervisor decides what happens next.
pub async fn kill(ctx: &AdminContext, args: &Value) -> CommandResult {
    let path = arg_str(args, "path").unwrap_or_default();
    let mode = match arg_str(args, "mode").unwrap_or("kill") {
        "kill" => StopMode::Kill,
        "stop" => StopMode::Stop,
        other => {
            return Err(CommandError::BadArgs(format!(
                "mode must be kill or stop, not '{other}'"
            )))
        }
    };
    ctx.registry
        .kill(path, mode)
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    tracing::warn!(path, ?mode, "actor killed by operator");
    Ok(json!({ "killed": path }))
}

/// `actors info`: one actor's figures.
pub async fn info(ctx: &AdminContext, args: &Value) -> CommandResult {
    let path = arg_str(args, "path").unwrap_or_default();
    let node = ctx
        .registry
        .snapshot(path, Some(0))
        .ok_or_else(|| CommandError::Failed(format!("no actor at '{path}'")))?;
    let text = format!(
        "path: {}\nkind: {}\nstatus: {}\nuptime: {} ms\nrestarts: {}\nmessages handled: {}\nmailbox: {}\nlast error: {}\n",
        node.path,
        node.kind,
        node.status,
        node.uptime_ms,
        node.restarts,
        node.handled,
        node.mailbox.map(|m| m.to_string()).unwrap_or_else(|| "not counted".into()),
        node.last_error.clone().unwrap_or_else(|| "none".into()),
    );
    Ok(json!({ "actor": node, "text": text }))
}

/// `actors top`: actors ranked by mailbox depth, messages or restarts.
pub async fn top(ctx: &AdminContext, args: &Value) -> CommandResult {
    let by = arg_str(args, "by").unwrap_or("mailbox");
    let limit = arg_usize(args, "limit")?.unwrap_or(10);
    let root = ctx
        .registry
        .snapshot(&ctx.root, None)
        .ok_or_else(|| CommandError::Failed("the tree is not running".into()))?;
    let mut all = Vec::new();
    flatten(&root, &mut all);
    let key = |n: &chorus_supervisor::TreeNode| -> i64 {
        match by {
            "msgs" => n.handled as i64,
            "restarts" => i64::from(n.restarts),
            _ => n.mailbox.unwrap_or(-1),
        }
    };
    if !matches!(by, "mailbox" | "msgs" | "restarts") {
        return Err(CommandError::BadArgs(format!(
            "--by must be mailbox, msgs or restarts, not '{by}'"
        )));
    }
    all.sort_by_key(|n| std::cmp::Reverse(key(n)));
    all.truncate(limit);
    let text = all
        .iter()
        .map(|n| format!("{:>10}  {}\n", key(n), n.path))
        .collect::<String>();
    Ok(json!({ "actors": all, "text": text }))
}

/// `chaos`: kills actors matching a pattern on a schedule, then reports.
pub async fn chaos(ctx: &AdminContext, args: &Value) -> CommandResult {
    let pattern = arg_str(args, "kill").unwrap_or_default();
    let every = crate::chaos::parse_duration("every", arg_str(args, "every").unwrap_or_default())?;
    let total = crate::chaos::parse_duration("for", arg_str(args, "for").unwrap_or_default())?;
    crate::chaos::run(ctx, pattern, every, total).await
}
