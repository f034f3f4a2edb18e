//! The admin commands as data, and the wire format of the admin API: the
//! part of administration that both sides of the unix socket share.
//!
//! Each command is declared once here ([`commands`]): its words, arguments,
//! help, example and the version it appeared in. The server binds each
//! declaration to a handler (`chorus_admin`), `chorusctl` builds its
//! command line from the same table (`chorus-ctl`), and the in-band
//! XEP-0133 commands (`chorus_admin::xep0133`) run the same handlers. This
//! crate holds
//! no handler and depends on nothing of the server, so the command-line
//! client stays a thin client.
//!
//! The API is `POST /api/<command words joined by '/'>` with a JSON object
//! of arguments as the body (an empty body means no arguments), answered
//! with JSON: `{"ok": <result>}` or `{"error": "..."}` ([`wire`]).

pub mod commands;
pub mod spec;
pub mod wire;

pub use commands::*;
pub use spec::{ArgSpec, CommandSpec, GroupSpec, HELP_MAX};
