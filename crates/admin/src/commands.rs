//! The command registry: each command declared once, as data, with its
//! arguments, help, an example and the version it appeared in. `chorusctl`
//! builds its command line from this table and the admin server dispatches
//! on it, so the two cannot drift.

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
        format!("/api/{}", self.name.replace(' ', "/"))
    }
}

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
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
    },
    CommandSpec {
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
    },
    CommandSpec {
        name: "status",
        help: "Version, uptime, listeners, sessions and the config hash",
        example: "chorusctl status",
        since: "0.1.0",
        read_only: true,
        password: false,
        args: &[],
    },
    CommandSpec {
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
    },
    CommandSpec {
        name: "sessions count",
        help: "How many sessions are bound",
        example: "chorusctl sessions count",
        since: "0.1.0",
        read_only: true,
        password: false,
        args: &[],
    },
    CommandSpec {
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
    },
    CommandSpec {
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
    },
    CommandSpec {
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
    },
    CommandSpec {
        name: "stats",
        help: "Traffic and resource figures: uptime, connections, sessions, stanzas, authentications, actors, memory",
        example: "chorusctl stats --json",
        since: "0.1.0",
        read_only: true,
        password: false,
        args: &[],
    },
    CommandSpec {
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
    },
    CommandSpec {
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
    },
    CommandSpec {
        name: "config reload",
        help: "Reread the configuration file and apply limits, listeners and TLS certificates without dropping connections (as SIGHUP)",
        example: "chorusctl config reload",
        since: "0.1.0",
        read_only: false,
        password: false,
        args: &[],
    },
    CommandSpec {
        name: "config check",
        help: "Check a configuration file offline (no server needed) and print every effective value with its source",
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
    },
    CommandSpec {
        name: "user add",
        help: "Register an account (password from a prompt, or --password-stdin)",
        example: "chorusctl user add alice@localhost",
        since: "0.1.0",
        read_only: false,
        password: true,
        args: &[JID_ARG, PASSWORD_STDIN],
    },
    CommandSpec {
        name: "user del",
        help: "Delete an account and everything stored for it",
        example: "chorusctl user del alice@localhost",
        since: "0.1.0",
        read_only: false,
        password: false,
        args: &[JID_ARG],
    },
    CommandSpec {
        name: "mam purge",
        help: "Delete a user's whole message archive (XEP-0313); new messages are archived as before",
        example: "chorusctl mam purge alice@localhost",
        since: "0.1.0",
        read_only: false,
        password: false,
        args: &[JID_ARG],
    },
    CommandSpec {
        name: "user passwd",
        help: "Change an account's password (prompt, or --password-stdin)",
        example: "echo 'new secret' | chorusctl user passwd alice@localhost --password-stdin",
        since: "0.1.0",
        read_only: false,
        password: true,
        args: &[JID_ARG, PASSWORD_STDIN],
    },
    CommandSpec {
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
    },
    CommandSpec {
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
    },
    CommandSpec {
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
    },
];

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
    COMMANDS.iter().find(|c| c.name == name)
}
