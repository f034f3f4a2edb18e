//! The command registry: every admin command declared once, as data, with
//! its arguments, help, an example and the version it appeared in. Each is
//! a named static (`ACTORS_TREE`) so that the server can bind a handler to
//! exactly that declaration, and [`COMMANDS`] lists them all in the order
//! `chorusctl --help` shows them.
//!
//! `chorusctl` builds its command line from this table and the admin server
//! dispatches on it, so the two cannot drift.

use crate::spec::{ArgSpec, CommandSpec};

/// Every command, in the order the command line lists them.
pub static COMMANDS: &[&CommandSpec] = &[
    &ACTORS_TREE,
    &ACTORS_KILL,
    &STATUS,
    &SESSIONS_LIST,
    &SESSIONS_COUNT,
    &SESSIONS_KICK,
    &ACTORS_INFO,
    &ACTORS_TOP,
    &STATS,
    &LOG_LEVEL,
    &CHAOS,
    &CONFIG_RELOAD,
    &CONFIG_CHECK,
    &USER_ADD,
    &USER_DEL,
    &MAM_PURGE,
    &USER_PASSWD,
    &IMPORT,
    &EXPORT,
    &USER_LIST,
];

pub static ACTORS_TREE: CommandSpec = CommandSpec {
    name: "actors tree",
    help: "Show the live supervision tree",
    example: "chorusctl actors tree --depth 4",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[
        ArgSpec {
            name: "depth",
            help: "Levels to show below the root",
            positional: false,
            required: false,
            switch: false,
            values: &[],
        },
        ArgSpec {
            name: "path",
            help: "Subtree to show (default: root)",
            positional: false,
            required: false,
            switch: false,
            values: &[],
        },
    ],
};

pub static ACTORS_KILL: CommandSpec = CommandSpec {
    name: "actors kill",
    help: "Kill or stop the actor at a tree path (its supervisor decides what happens next)",
    example: "chorusctl actors kill root/listeners/port:c2s@127.0.0.1:5222/acceptor",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[
        ArgSpec {
            name: "path",
            help: "Tree path of the actor",
            positional: true,
            required: true,
            switch: false,
            values: &[],
        },
        ArgSpec {
            name: "mode",
            help: "kill (abnormal, like exit(Pid, kill)) or stop (normal)",
            positional: false,
            required: false,
            switch: false,
            values: &["kill", "stop"],
        },
    ],
};

pub static STATUS: CommandSpec = CommandSpec {
    name: "status",
    help: "Version, uptime, listeners, sessions and the config hash",
    example: "chorusctl status",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[],
};

pub static SESSIONS_LIST: CommandSpec = CommandSpec {
    name: "sessions list",
    help: "Bound sessions (full JID, connection, priority, availability)",
    example: "chorusctl sessions list --jid alice@localhost",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[ArgSpec {
        name: "jid",
        help: "Only this account (bare JID)",
        positional: false,
        required: false,
        switch: false,
        values: &[],
    }],
};

pub static SESSIONS_COUNT: CommandSpec = CommandSpec {
    name: "sessions count",
    help: "How many sessions are bound",
    example: "chorusctl sessions count",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[],
};

pub static SESSIONS_KICK: CommandSpec = CommandSpec {
    name: "sessions kick",
    help: "End a session (full JID) or every session of an account (bare JID)",
    example: "chorusctl sessions kick alice@localhost/phone --reason 'maintenance'",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[
        JID_ARG,
        ArgSpec {
            name: "reason",
            help: "Text sent to the client with the stream error",
            positional: false,
            required: false,
            switch: false,
            values: &[],
        },
    ],
};

pub static ACTORS_INFO: CommandSpec = CommandSpec {
    name: "actors info",
    help: "One actor: kind, status, uptime, restarts, messages handled, mailbox depth, last error",
    example: "chorusctl actors info root/sessions",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[ArgSpec {
        name: "path",
        help: "Tree path of the actor",
        positional: true,
        required: true,
        switch: false,
        values: &[],
    }],
};

pub static ACTORS_TOP: CommandSpec = CommandSpec {
    name: "actors top",
    help: "Actors ranked by mailbox depth, messages handled or restarts",
    example: "chorusctl actors top --by restarts",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[
        ArgSpec {
            name: "by",
            help: "Ranking key",
            positional: false,
            required: false,
            switch: false,
            values: &["mailbox", "msgs", "restarts"],
        },
        ArgSpec {
            name: "limit",
            help: "How many to show (default 10)",
            positional: false,
            required: false,
            switch: false,
            values: &[],
        },
    ],
};

pub static STATS: CommandSpec = CommandSpec {
    name: "stats",
    help: "Traffic and resource figures: uptime, connections, sessions, stanzas, authentications, actors, memory",
    example: "chorusctl stats --json",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[],
};

pub static LOG_LEVEL: CommandSpec = CommandSpec {
    name: "log level",
    help: "Change the log filter of the running server (tracing EnvFilter syntax)",
    example: "chorusctl log level 'info,chorus_c2s=debug'",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[ArgSpec {
        name: "filter",
        help: "The new filter, e.g. debug or info,chorus_c2s=trace",
        positional: true,
        required: true,
        switch: false,
        values: &[],
    }],
};

pub static CHAOS: CommandSpec = CommandSpec {
    name: "chaos",
    help: "Kill random actors matching a path pattern on a schedule, then report what was killed, restarted and lost (needs admin.chaos = true)",
    example: "chorusctl chaos --kill 'root/listeners/*/conns/*/receiver' --every 1s --for 30s",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[
        ArgSpec {
            name: "kill",
            help: "Path pattern: '*' matches within one segment, '**' across",
            positional: false,
            required: true,
            switch: false,
            values: &[],
        },
        ArgSpec {
            name: "every",
            help: "Interval between kills (e.g. 500ms, 1s)",
            positional: false,
            required: true,
            switch: false,
            values: &[],
        },
        ArgSpec {
            name: "for",
            help: "How long to run (e.g. 30s, 5m); at most 1h",
            positional: false,
            required: true,
            switch: false,
            values: &[],
        },
    ],
};

pub static CONFIG_RELOAD: CommandSpec = CommandSpec {
    name: "config reload",
    help: "Reread the configuration file and apply limits, listeners and TLS certificates without dropping connections (as SIGHUP)",
    example: "chorusctl config reload",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[],
};

pub static CONFIG_CHECK: CommandSpec = CommandSpec {
    name: "config check",
    help: "Check a configuration file offline (no server needed): every effective value with its source, and the TLS certificate and key files it names",
    example: "chorusctl config check --file /etc/chorus/chorus.toml",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[ArgSpec {
        name: "file",
        help: "The file to check (default: --config, else the defaults alone)",
        positional: false,
        required: false,
        switch: false,
        values: &[],
    }],
};

pub static USER_ADD: CommandSpec = CommandSpec {
    name: "user add",
    help: "Register an account (password from a prompt, or --password-stdin)",
    example: "chorusctl user add alice@localhost",
    since: "0.1.0",
    read_only: false,
    password: true,
    args: &[JID_ARG, PASSWORD_STDIN],
};

pub static USER_DEL: CommandSpec = CommandSpec {
    name: "user del",
    help: "Delete an account and everything stored for it",
    example: "chorusctl user del alice@localhost",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[JID_ARG],
};

pub static MAM_PURGE: CommandSpec = CommandSpec {
    name: "mam purge",
    help: "Delete a user's whole message archive (XEP-0313); new messages are archived as before",
    example: "chorusctl mam purge alice@localhost",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[JID_ARG],
};

pub static USER_PASSWD: CommandSpec = CommandSpec {
    name: "user passwd",
    help: "Change an account's password (prompt, or --password-stdin)",
    example: "echo 'new secret' | chorusctl user passwd alice@localhost --password-stdin",
    since: "0.1.0",
    read_only: false,
    password: true,
    args: &[JID_ARG, PASSWORD_STDIN],
};

pub static IMPORT: CommandSpec = CommandSpec {
    name: "import",
    help: "Import accounts, rosters, vCards, private XML and offline messages from a XEP-0227 (PIEFXIS) file, \
           e.g. an ejabberd export_piefxis; existing accounts and hosts not in server.domains are skipped and reported. \
           The server opens the file itself, so give an absolute path it can read on this machine",
    example: "chorusctl import /var/backups/xmpp/20240101-120000.xml",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[ArgSpec {
        name: "file",
        help: "Absolute path of the XEP-0227 file, as the server sees it; <xi:include/>d host files are read from its directory",
        positional: true,
        required: true,
        switch: false,
        values: &[],
    }],
};

pub static EXPORT: CommandSpec = CommandSpec {
    name: "export",
    help: "Export every served domain to <dir>/<domain>.xml in XEP-0227 (PIEFXIS) format, with SCRAM credentials \
           (never passwords), rosters, vCards, private XML and offline messages; existing files are replaced. \
           The server writes the files itself (mode 0600), so give an absolute directory it can write on this machine",
    example: "chorusctl export /var/backups/chorus",
    since: "0.1.0",
    // It changes no server state, but it writes files: never on a GET.
    read_only: false,
    password: false,
    args: &[ArgSpec {
        name: "dir",
        help: "Absolute path of the directory, as the server sees it; created if missing",
        positional: true,
        required: true,
        switch: false,
        values: &[],
    }],
};

pub static USER_LIST: CommandSpec = CommandSpec {
    name: "user list",
    help: "List accounts, optionally of one domain",
    example: "chorusctl user list localhost",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[ArgSpec {
        name: "domain",
        help: "Only this domain",
        positional: true,
        required: false,
        switch: false,
        values: &[],
    }],
};

const JID_ARG: ArgSpec = ArgSpec {
    name: "jid",
    help: "The JID: user@domain (sessions kick also takes user@domain/resource)",
    positional: true,
    required: true,
    switch: false,
    values: &[],
};

const PASSWORD_STDIN: ArgSpec = ArgSpec {
    name: "password-stdin",
    help: "Read the password from one line of standard input instead of a prompt",
    positional: false,
    required: false,
    switch: true,
    values: &[],
};

/// Commands `chorusctl` runs itself, without a server.
pub const LOCAL: &[&str] = &["config check"];

/// Looks a command up by its words.
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_own_name_and_path() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len(), "a name is declared twice");
        let mut paths: Vec<String> = COMMANDS.iter().map(|c| c.http_path()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), COMMANDS.len(), "two commands share a path");
    }

    #[test]
    fn names_have_one_or_two_words() {
        // chorusctl nests subcommands one level deep: `user add`, `status`.
        for c in COMMANDS {
            let words = c.name.split(' ').count();
            assert!((1..=2).contains(&words), "{}", c.name);
            assert_eq!(find(c.name).map(|f| f.name), Some(c.name));
        }
    }

    #[test]
    fn local_commands_are_declared() {
        for name in LOCAL {
            assert!(find(name).is_some(), "{name}");
        }
    }
}
