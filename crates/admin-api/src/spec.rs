//! The shape of a command declaration: [`CommandSpec`] and its
//! [`ArgSpec`]s. Plain data with `'static` strings, so that the whole
//! registry is a set of statics built at compile time and costs nothing to
//! share between the server, `chorusctl` and XEP-0133.

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

/// The longest one-line help, so that a command list stays one line per
/// command on a 100-column terminal.
pub const HELP_MAX: usize = 84;

/// A group of commands, the first word they share (`user` of `user add`):
/// its one-line help in `chorusctl --help`.
#[derive(Debug)]
pub struct GroupSpec {
    pub name: &'static str,
    pub help: &'static str,
}

/// One command.
#[derive(Debug)]
pub struct CommandSpec {
    /// Words, space-separated: `actors tree`.
    pub name: &'static str,
    /// One line, shown in command lists (`chorusctl --help`): at most
    /// [`HELP_MAX`] characters, no final period.
    pub help: &'static str,
    /// What a command's own help adds after `help` (`chorusctl import
    /// --help`); empty when the line says it all.
    pub details: &'static str,
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
