//! The handler table: each admin command declared in `chorus-admin-api`
//! bound to the function that runs it, in one place ([`HANDLERS`]).
//!
//! After ejabberd's `ejabberd_commands`: the declaration (name, arguments,
//! help) is data that `chorusctl` also reads, and the handler is a plain
//! async function of the admin context and the JSON arguments. Nothing here
//! knows about HTTP, so a second front end (XEP-0133 ad-hoc commands) can
//! call [`execute`] or a [`Command`]'s handler the same way the unix socket
//! API does. Handlers live in one file per area:
//!
//! - [`actors`] for the supervision tree (tree, info, top, kill) and chaos runs,
//! - [`sessions`] for bound sessions (list, count, kick),
//! - [`users`] for accounts (add, del, passwd, list, disable, enable, roster,
//!   lastlogin, count),
//! - [`announce`] for messages from the server (announce, motd),
//! - [`mam`] for message archives (purge),
//! - [`muc`] for group chat rooms (list, info, create, destroy),
//! - [`node`] for the running server (status, stats, log level),
//! - [`config`] for the configuration (reload; check runs in chorusctl),
//! - [`cert`] for the TLS certificates in use (list),
//! - [`s2s`] for federation's streams (list, close),
//! - [`backup`] for XEP-0227 import and export.

pub mod actors;
pub mod announce;
pub mod backup;
pub mod cert;
pub mod config;
pub mod mam;
pub mod muc;
pub mod node;
pub mod s2s;
pub mod sessions;
pub mod users;

use std::future::Future;
use std::pin::Pin;

use chorus_admin_api as api;
use chorus_admin_api::CommandSpec;
use chorus_jid::BareJid;
use serde_json::Value;

use crate::AdminContext;

/// Why a command did not run, or failed. Each kind has its own HTTP status
/// (`CommandError::status`) and its own `chorusctl` exit code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command '{0}'")]
    Unknown(String),
    #[error("{0}")]
    BadArgs(String),
    #[error("{0}")]
    Failed(String),
    /// What the command acts on does not exist (an account, a session).
    #[error("{0}")]
    NotFound(String),
    /// The command would clash with what exists (an account taken).
    #[error("{0}")]
    Conflict(String),
}

impl CommandError {
    /// The HTTP status the admin API answers this error with.
    pub(crate) fn status(&self) -> u16 {
        match self {
            CommandError::Unknown(_) => 404,
            CommandError::BadArgs(_) => 400,
            CommandError::Failed(_) | CommandError::Conflict(_) => 409,
            CommandError::NotFound(_) => 404,
        }
    }
}

/// What a handler returns: the command's JSON result, or why it failed.
pub type CommandResult = Result<Value, CommandError>;

/// A running handler. Boxed so that handlers of different bodies fit one
/// table; `Send` because the API runs each request in a task of its own.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = CommandResult> + Send + 'a>>;

/// A command's handler: the admin context and the JSON object of
/// arguments, already checked for the required ones.
pub type Handler = for<'a> fn(&'a AdminContext, &'a Value) -> HandlerFuture<'a>;

/// One declaration and its handler.
pub struct Command {
    pub spec: &'static CommandSpec,
    pub handler: Handler,
}

/// Binds a declaration to a plain `async fn(&AdminContext, &Value)`: the
/// closure only boxes the future, so the handler itself stays an ordinary
/// function that a test or another front end can call directly.
macro_rules! bind {
    ($spec:expr => $handler:path) => {
        Command {
            spec: &$spec,
            handler: |ctx, args| Box::pin($handler(ctx, args)),
        }
    };
}

/// Every command the server runs, each bound once. A unit test checks that
/// this table and `chorus_admin_api::COMMANDS` name the same commands.
pub static HANDLERS: &[Command] = &[
    bind!(api::ACTORS_TREE => actors::tree),
    bind!(api::ACTORS_INFO => actors::info),
    bind!(api::ACTORS_TOP => actors::top),
    bind!(api::ACTORS_KILL => actors::kill),
    bind!(api::CHAOS => actors::chaos),
    bind!(api::SESSIONS_LIST => sessions::list),
    bind!(api::SESSIONS_COUNT => sessions::count),
    bind!(api::SESSIONS_KICK => sessions::kick),
    bind!(api::USER_ADD => users::add),
    bind!(api::USER_DEL => users::del),
    bind!(api::USER_PASSWD => users::passwd),
    bind!(api::USER_LIST => users::list),
    bind!(api::MAM_PURGE => mam::purge),
    bind!(api::MUC_LIST => muc::list),
    bind!(api::MUC_INFO => muc::info),
    bind!(api::MUC_CREATE => muc::create),
    bind!(api::MUC_DESTROY => muc::destroy),
    bind!(api::USER_DISABLE => users::disable),
    bind!(api::USER_ENABLE => users::enable),
    bind!(api::USER_ROSTER => users::roster),
    bind!(api::USER_LASTLOGIN => users::lastlogin),
    bind!(api::USER_COUNT => users::count),
    bind!(api::USER_INFO => users::info),
    bind!(api::USER_CLIENTS => users::clients),
    bind!(api::USER_REVOKE => users::revoke),
    bind!(api::ANNOUNCE => announce::announce),
    bind!(api::MOTD_SET => announce::motd_set),
    bind!(api::MOTD_SHOW => announce::motd_show),
    bind!(api::MOTD_DELETE => announce::motd_delete),
    bind!(api::STATUS => node::status),
    bind!(api::STATS => node::stats),
    bind!(api::LOG_LEVEL => node::log_level),
    bind!(api::CONFIG_RELOAD => config::reload),
    bind!(api::CONFIG_CHECK => config::check),
    bind!(api::CERT_LIST => cert::list),
    bind!(api::S2S_LIST => s2s::list),
    bind!(api::S2S_CLOSE => s2s::close),
    bind!(api::IMPORT => backup::import),
    bind!(api::EXPORT => backup::export),
];

/// The command with these words, if the server has it.
pub fn lookup(name: &str) -> Option<&'static Command> {
    HANDLERS.iter().find(|c| c.spec.name == name)
}

/// Runs one command: refuses it if a required argument is missing, else
/// calls its handler.
pub async fn run(ctx: &AdminContext, command: &Command, args: &Value) -> CommandResult {
    for a in command.spec.args.iter().filter(|a| a.required) {
        if args.get(a.name).is_none() {
            return Err(CommandError::BadArgs(format!(
                "missing argument '{}'",
                a.name
            )));
        }
    }
    (command.handler)(ctx, args).await
}

/// Runs one command by name.
pub async fn execute(ctx: &AdminContext, name: &str, args: &Value) -> CommandResult {
    let command = lookup(name).ok_or_else(|| CommandError::Unknown(name.to_owned()))?;
    run(ctx, command, args).await
}

// Argument helpers shared by the handlers. Arguments arrive as JSON from
// any front end, so every accessor tolerates a missing or mistyped value.

fn arg_str<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn arg_usize(args: &Value, name: &str) -> Result<Option<usize>, CommandError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|v| Some(v as usize))
            .ok_or_else(|| CommandError::BadArgs(format!("{name} must be a non-negative integer"))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| CommandError::BadArgs(format!("{name} must be a non-negative integer"))),
        Some(_) => Err(CommandError::BadArgs(format!(
            "{name} must be a non-negative integer"
        ))),
    }
}

/// Parses `user@domain` for a local domain.
fn account_arg(ctx: &AdminContext, args: &Value) -> Result<BareJid, CommandError> {
    let raw = arg_str(args, "jid").unwrap_or_default();
    let jid: BareJid = raw
        .parse()
        .map_err(|e| CommandError::BadArgs(format!("invalid JID '{raw}': {e}")))?;
    if jid.node().is_none() {
        return Err(CommandError::BadArgs(format!("'{raw}' has no user part")));
    }
    if !ctx.domains.iter().any(|d| d == jid.domain()) {
        return Err(CommandError::BadArgs(format!(
            "'{}' is not served here (server.domains: {})",
            jid.domain(),
            ctx.domains.join(", ")
        )));
    }
    Ok(jid)
}

fn storage_err(e: chorus_storage::StorageError) -> CommandError {
    CommandError::Failed(format!("storage: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_command_has_exactly_one_handler() {
        for spec in api::COMMANDS {
            let bound = HANDLERS.iter().filter(|c| c.spec.name == spec.name).count();
            assert_eq!(bound, 1, "'{}' has {bound} handlers", spec.name);
        }
    }

    #[test]
    fn every_handler_serves_a_declared_command() {
        for command in HANDLERS {
            // The very declaration, not a look-alike with the same words.
            assert!(
                api::COMMANDS
                    .iter()
                    .any(|spec| std::ptr::eq(*spec, command.spec)),
                "'{}' is not in COMMANDS",
                command.spec.name
            );
        }
        assert_eq!(HANDLERS.len(), api::COMMANDS.len());
    }

    #[test]
    fn lookup_finds_each_command_by_its_words() {
        for spec in api::COMMANDS {
            let found = lookup(spec.name).map(|c| c.spec.name);
            assert_eq!(found, Some(spec.name));
        }
        assert!(lookup("actors tre").is_none());
    }
}
