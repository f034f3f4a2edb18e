//! Administration: one command registry ([`commands`]) that serves both the
//! HTTP+JSON API on a unix socket ([`server`]) and `chorusctl`, and later
//! XEP-0133 ad-hoc commands.
//!
//! The API is `POST /api/<command words joined by '/'>` with a JSON object
//! of arguments as the body (an empty body means no arguments), answered with
//! JSON: `{"ok": <result>}` or `{"error": "..."}` with a 4xx status. File
//! permissions on the socket are the access control (mode 0600), so
//! `curl --unix-socket data/chorus.sock -X POST http://chorus/api/actors/tree`
//! works for the operator and nobody else.

pub mod chaos;
pub mod commands;
pub mod metrics;
pub mod piefxis;
pub mod server;

pub use commands::{ArgSpec, CommandSpec, COMMANDS, LOCAL};
pub use server::{AdminActor, AdminArgs, AdminContext};

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
