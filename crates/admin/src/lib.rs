//! Administration on the server side: a handler for every command declared
//! in `chorus-admin-api` ([`commands`]), the HTTP+JSON API that serves them
//! on a unix socket ([`server`]), XEP-0227 import and export ([`piefxis`]),
//! the chaos runner ([`chaos`]) and the monitoring endpoint ([`metrics`]).
//!
//! The declarations themselves live in `chorus-admin-api`, which
//! `chorusctl` links without linking this crate, its storage or the router;
//! the handler table here binds each one to a plain async function of the
//! [`AdminContext`] and the JSON arguments, which the XEP-0133 ad-hoc
//! commands ([`adhoc`], [`xep0133`]) call as the socket API does.
//!
//! The API is `POST /api/<command words joined by '/'>` with a JSON object
//! of arguments as the body (an empty body means no arguments), answered with
//! JSON: `{"ok": <result>}` or `{"error": "..."}` with a 4xx status. File
//! permissions on the socket are the access control (mode 0600), so
//! `curl --unix-socket data/chorus.sock -X POST http://chorus/api/actors/tree`
//! works for the operator and nobody else.

pub mod adhoc;
pub mod chaos;
pub mod commands;
mod context;
pub mod metrics;
pub mod piefxis;
pub mod server;
pub mod xep0133;

pub use chorus_admin_api::{ArgSpec, CommandSpec, COMMANDS, LOCAL};
pub use commands::{execute, Command, CommandError, Handler, HANDLERS};
pub use context::{AdminContext, CertificateInfo, CertificatesFn, ReloadFn, S2sControl, S2sStream};
pub use server::{AdminActor, AdminArgs};

/// The feature modules of this crate, for the server's module list: XEP-0050
/// ad-hoc commands (the ping for every local user, XEP-0133 for
/// `admin.admins`, running the same handlers as the socket API) and the
/// message of the day sent at login. `admin` is where the server puts its
/// [`AdminContext`] once it has built it, after the modules.
pub fn modules(
    config: &chorus_config::Config,
    admin: adhoc::AdminSlot,
) -> Vec<Box<dyn chorus_modules::Module>> {
    let mut commands: Vec<Box<dyn adhoc::AdhocCommand>> = vec![Box::new(adhoc::PingCommand)];
    commands.extend(xep0133::commands());
    vec![
        Box::new(adhoc::AdHoc::new(commands, &config.admin.admins, admin)),
        Box::new(xep0133::Motd),
    ]
}

/// Changes the log filter of the running process (`chorusctl log level`).
pub type LogReloader = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static LOG_RELOADER: std::sync::OnceLock<LogReloader> = std::sync::OnceLock::new();

/// Installed once by the binary that owns the tracing subscriber; logging
/// is process-global, so is this.
pub fn set_log_reloader(f: LogReloader) {
    let _ = LOG_RELOADER.set(f);
}

pub(crate) fn reload_log(spec: &str) -> Result<(), String> {
    match LOG_RELOADER.get() {
        Some(f) => f(spec),
        None => Err("this process has no reloadable log filter".into()),
    }
}
