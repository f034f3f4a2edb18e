//! The shape of a command declaration: [`CommandSpec`] and its
//! [`ArgSpec`]s. Plain data with `'static` strings, so that the whole
//! registry is a set of statics built at compile time and costs nothing to
//! share between the server, `chorusctl` and, later, XEP-0133.

use crate::wire;

/// One argument of a command.
#[derive(Debug)]
pub struct ArgSpec {
    pub name: &'static str,
    pub help: &'static str,
    /// Positional (`<path>`) rather than a flag (`--depth N`).
    pub positional: bool,
    pub required: bool,
    /// A boolean switch (`--json`); otherwise it takes a value.
    pub switch: bool,
    /// Values allowed, if restricted.
    pub values: &'static [&'static str],
}

/// One command.
#[derive(Debug)]
pub struct CommandSpec {
    /// Words, space-separated: `actors tree`.
    pub name: &'static str,
    pub help: &'static str,
    pub example: &'static str,
    pub since: &'static str,
    pub args: &'static [ArgSpec],
    /// Changes nothing; `--json` prints the raw result.
    pub read_only: bool,
    /// Needs a password, which `chorusctl` reads from a prompt or, with
    /// `--password-stdin`, one line of standard input: never from argv.
    pub password: bool,
}

impl CommandSpec {
    /// The API path: `/api/actors/tree`.
    pub fn http_path(&self) -> String {
        format!("{}{}", wire::API_PREFIX, self.name.replace(' ', "/"))
    }
}
