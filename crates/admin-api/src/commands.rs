//! The command registry: every admin command declared once, as data, with
//! its arguments, help, an example and the version it appeared in. Each is
//! a named static (`ACTORS_TREE`) so that the server can bind a handler to
//! exactly that declaration, and [`COMMANDS`] lists them all in the order
//! `chorusctl --help` shows them. The XEP-0133 ad-hoc commands
//! (`chorus_admin::adhoc`) run the same handlers.
//!
//! `chorusctl` builds its command line from this table and the admin server
//! dispatches on it, so the two cannot drift.

use crate::spec::{ArgSpec, CommandSpec, GroupSpec};

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
    &MUC_LIST,
    &MUC_INFO,
    &MUC_CREATE,
    &MUC_DESTROY,
    &USER_DISABLE,
    &USER_ENABLE,
    &USER_ROSTER,
    &USER_LASTLOGIN,
    &USER_COUNT,
    &USER_INFO,
    &USER_CLIENTS,
    &USER_REVOKE,
    &ANNOUNCE,
    &MOTD_SET,
    &MOTD_SHOW,
    &MOTD_DELETE,
    &CERT_LIST,
    &S2S_LIST,
    &S2S_CLOSE,
];

/// The groups of two-word commands, in the order the command line lists
/// them, each with its one-line help.
pub static GROUPS: &[GroupSpec] = &[
    GroupSpec {
        name: "actors",
        help: "Watch the supervision tree, and kill or stop actors in it",
    },
    GroupSpec {
        name: "sessions",
        help: "List, count and end client sessions",
    },
    GroupSpec {
        name: "log",
        help: "Change what the running server logs",
    },
    GroupSpec {
        name: "config",
        help: "Check a configuration file, or reload the server's",
    },
    GroupSpec {
        name: "user",
        help: "Accounts: add, delete, disable, change a password, list, inspect",
    },
    GroupSpec {
        name: "mam",
        help: "Message archives (XEP-0313)",
    },
    GroupSpec {
        name: "muc",
        help: "Group chat rooms (XEP-0045): list, inspect, create, destroy",
    },
    GroupSpec {
        name: "motd",
        help: "The message of the day each user is sent at login (XEP-0133)",
    },
    GroupSpec {
        name: "s2s",
        help: "Federation: the server-to-server streams, and closing them",
    },
    GroupSpec {
        name: "cert",
        help: "TLS certificates: what each listener serves, from where, until when",
    },
];

pub static ACTORS_TREE: CommandSpec = CommandSpec {
    name: "actors tree",
    help: "Show the live supervision tree",
    details: "",
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
    details: "",
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
    details: "",
    example: "chorusctl status",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[],
};

pub static SESSIONS_LIST: CommandSpec = CommandSpec {
    name: "sessions list",
    help: "Bound sessions (full JID, connection, priority, availability)",
    details: "",
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
    details: "",
    example: "chorusctl sessions count",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[],
};

pub static SESSIONS_KICK: CommandSpec = CommandSpec {
    name: "sessions kick",
    help: "End a session (full JID) or every session of an account (bare JID)",
    details: "",
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
    help: "One actor: kind, status, uptime, restarts, messages, mailbox depth, last error",
    details: "",
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
    details: "",
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
    help: "Traffic and resources: connections, sessions, stanzas, logins, actors, memory",
    details: "Uptime, open connections, bound sessions, stanzas in and out, authentications, live actors and resident memory.",
    example: "chorusctl stats --json",
    since: "0.1.0",
    read_only: true,
    password: false,
    args: &[],
};

pub static LOG_LEVEL: CommandSpec = CommandSpec {
    name: "log level",
    help: "Change the log filter of the running server (tracing EnvFilter syntax)",
    details: "",
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
    help: "Kill random actors on a schedule, then report what restarted and what was lost",
    details: "Kills actors matching a path pattern every --every for --for, then reports what was killed, \
              how fast each supervisor restarted it, and which sessions were lost. Needs admin.chaos = true.",
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
    help: "Reread the configuration file and apply what can change live (as SIGHUP)",
    details: "Applies limits, listeners and TLS certificates without dropping connections, and names every \
              option that changed and whether it needs a restart. An invalid file changes nothing.",
    example: "chorusctl config reload",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[],
};

pub static CONFIG_CHECK: CommandSpec = CommandSpec {
    name: "config check",
    help: "Check a configuration file offline, without a server",
    details: "Prints every effective value with its source (default, file or environment) and reads the TLS \
              certificate and key files the file names; exit status 1 with every problem listed.",
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
    details: "",
    example: "chorusctl user add alice@localhost",
    since: "0.1.0",
    read_only: false,
    password: true,
    args: &[JID_ARG, PASSWORD_STDIN],
};

pub static USER_DEL: CommandSpec = CommandSpec {
    name: "user del",
    help: "Delete an account and everything stored for it",
    details: "",
    example: "chorusctl user del alice@localhost",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[JID_ARG],
};

pub static MAM_PURGE: CommandSpec = CommandSpec {
    name: "mam purge",
    help: "Delete a user's whole message archive (XEP-0313); new messages are still archived",
    details: "",
    example: "chorusctl mam purge alice@localhost",
    since: "0.1.0",
    read_only: false,
    password: false,
    args: &[JID_ARG],
};

pub static USER_PASSWD: CommandSpec = CommandSpec {
    name: "user passwd",
    help: "Change an account's password (prompt, or --password-stdin)",
    details: "",
    example: "echo 'new secret' | chorusctl user passwd alice@localhost --password-stdin",
    since: "0.1.0",
    read_only: false,
    password: true,
    args: &[JID_ARG, PASSWORD_STDIN],
};

pub static IMPORT: CommandSpec = CommandSpec {
    name: "import",
    help: "Import accounts and their data from a XEP-0227 (PIEFXIS) file",
    details: "Accounts, rosters, vCards, private XML and offline messages, e.g. from an ejabberd \
              export_piefxis; existing accounts and hosts not in server.domains are skipped and reported. \
              The server opens the file itself, so give an absolute path it can read on this machine.",
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
    help: "Export every served domain to XEP-0227 (PIEFXIS) files",
    details: "Writes <dir>/<domain>.xml with SCRAM credentials (never passwords), rosters, vCards, private \
              XML and offline messages; existing files are replaced. The server writes the files itself \
              (mode 0600), so give an absolute directory it can write on this machine.",
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
    details: "",
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

pub static MUC_LIST: CommandSpec = CommandSpec {
    name: "muc list",
    help: "List the rooms, live and stored, of every MUC service or of one",
    details: "A live room has an actor in the tree (root/modules/muc/<room>); a stored one is a \
              persistent room nobody is in.",
    example: "chorusctl muc list conference.localhost",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[ArgSpec {
        name: "service",
        help: "Only this MUC service (conference.<domain>)",
        positional: true,
        required: false,
        switch: false,
        values: &[],
    }],
};

pub static MUC_INFO: CommandSpec = CommandSpec {
    name: "muc info",
    help: "Show a room: configuration, affiliations, occupants with their roles",
    details: "",
    example: "chorusctl muc info tea@conference.localhost",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[ROOM_ARG],
};

pub static MUC_CREATE: CommandSpec = CommandSpec {
    name: "muc create",
    help: "Create a persistent room with the default configuration, owned by an account",
    details: "The owner configures it further from a client (XEP-0045 §10.2).",
    example: "chorusctl muc create tea@conference.localhost alice@localhost",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[
        ROOM_ARG,
        ArgSpec {
            name: "owner",
            help: "The owner's JID",
            positional: true,
            required: true,
            switch: false,
            values: &[],
        },
    ],
};

pub static MUC_DESTROY: CommandSpec = CommandSpec {
    name: "muc destroy",
    help: "Destroy a room: its occupants are sent out, and it is gone from storage",
    details: "",
    example: "chorusctl muc destroy tea@conference.localhost --reason 'Moved to cake@'",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[
        ROOM_ARG,
        ArgSpec {
            name: "reason",
            help: "What the occupants are told",
            positional: false,
            required: false,
            switch: false,
            values: &[],
        },
    ],
};

pub static USER_DISABLE: CommandSpec = CommandSpec {
    name: "user disable",
    help: "Disable an account: its sessions end and it cannot log in; its data stays",
    details:
        "The account's sessions end at once with a policy-violation stream error carrying the \
              reason; `user enable` lets it log in again.",
    example: "chorusctl user disable mallory@localhost --reason 'spam'",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[
        JID_ARG,
        ArgSpec {
            name: "reason",
            help: "Why, kept with the account and sent to its sessions",
            positional: false,
            required: false,
            switch: false,
            values: &[],
        },
    ],
};

pub static USER_ENABLE: CommandSpec = CommandSpec {
    name: "user enable",
    help: "Re-enable a disabled account",
    details: "",
    example: "chorusctl user enable mallory@localhost",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[JID_ARG],
};

pub static USER_ROSTER: CommandSpec = CommandSpec {
    name: "user roster",
    help: "Show an account's roster: contacts, names, subscriptions, groups",
    details: "",
    example: "chorusctl user roster alice@localhost",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[JID_ARG],
};

pub static USER_LASTLOGIN: CommandSpec = CommandSpec {
    name: "user lastlogin",
    help: "Whether an account is online, and when it last went offline",
    details: "The time is the last logout the server recorded (XEP-0012), as ejabberd's \
              get-user-lastlogin answers.",
    example: "chorusctl user lastlogin alice@localhost",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[JID_ARG],
};

pub static USER_INFO: CommandSpec = CommandSpec {
    name: "user info",
    help: "Show one account: disabled or not, online resources, last logout, clients",
    details: "The clients are those that named themselves at login (XEP-0388 user agents), \
              with their FAST tokens' expiry, as `user clients` lists them.",
    example: "chorusctl user info alice@localhost",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[JID_ARG],
};

pub static USER_CLIENTS: CommandSpec = CommandSpec {
    name: "user clients",
    help: "List the clients an account logs in with, and their FAST tokens",
    details: "The clients that named themselves at login (XEP-0388 user agents): software, \
              device, first and last login, and when their FAST token (XEP-0484) expires.",
    example: "chorusctl user clients alice@localhost",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[JID_ARG],
};

pub static USER_REVOKE: CommandSpec = CommandSpec {
    name: "user revoke",
    help: "Revoke the FAST tokens of one client of an account, or of all of them",
    details: "The client then logs in with the password again. A password change revokes \
              every token of the account as well.",
    example: "chorusctl user revoke alice@localhost --client 0f4a6f4e-client-one",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[
        JID_ARG,
        ArgSpec {
            name: "client",
            help: "The client's id, as `user clients` lists it; all clients without it",
            positional: false,
            required: false,
            switch: false,
            values: &[],
        },
    ],
};

pub static USER_COUNT: CommandSpec = CommandSpec {
    name: "user count",
    help: "How many accounts exist, optionally in one domain",
    details: "",
    example: "chorusctl user count localhost",
    since: "0.2.0",
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

pub static ANNOUNCE: CommandSpec = CommandSpec {
    name: "announce",
    help: "Send a message from the server to every online session",
    details:
        "A headline message from the domain to each bound session of that domain, or of every \
              served domain.",
    example: "chorusctl announce 'Restarting at 22:00 UTC' --subject Maintenance",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[
        TEXT_ARG,
        ArgSpec {
            name: "subject",
            help: "A subject line",
            positional: false,
            required: false,
            switch: false,
            values: &[],
        },
        DOMAIN_FLAG,
    ],
};

pub static MOTD_SET: CommandSpec = CommandSpec {
    name: "motd set",
    help: "Set the message of the day, sent to online users now and to each user at login",
    details: "",
    example: "chorusctl motd set 'Welcome! Tea is at five.' --domain localhost",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[
        TEXT_ARG,
        DOMAIN_FLAG,
        ArgSpec {
            name: "quiet",
            help: "Only store it: online users get it at their next login (a correction)",
            positional: false,
            required: false,
            switch: true,
            values: &[],
        },
    ],
};

pub static MOTD_SHOW: CommandSpec = CommandSpec {
    name: "motd show",
    help: "Show the message of the day",
    details: "",
    example: "chorusctl motd show",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[DOMAIN_FLAG],
};

pub static MOTD_DELETE: CommandSpec = CommandSpec {
    name: "motd delete",
    help: "Delete the message of the day",
    details: "",
    example: "chorusctl motd delete",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[DOMAIN_FLAG],
};

pub static CERT_LIST: CommandSpec = CommandSpec {
    name: "cert list",
    help: "List the certificates in use: names, issuer, expiry and source",
    details: "Each certificate the TLS listeners serve now, once: configured in [tls], \
              obtained by ACME ([acme]) or the generated development one; the SNI names it \
              is chosen for, and whether it is the default.",
    example: "chorusctl cert list",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[],
};

pub static S2S_LIST: CommandSpec = CommandSpec {
    name: "s2s list",
    help: "List the server-to-server streams: direction, domains, authentication, TLS, queue",
    details: "Outgoing streams (one per local and remote domain, under root/s2s) with the \
              stanzas waiting for them, and incoming ones (under the s2s listener) with each \
              remote domain they authenticated: by certificate (SASL EXTERNAL, XEP-0178) or \
              by dialback (XEP-0220).",
    example: "chorusctl s2s list",
    since: "0.2.0",
    read_only: true,
    password: false,
    args: &[],
};

pub static S2S_CLOSE: CommandSpec = CommandSpec {
    name: "s2s close",
    help: "Close every stream with a remote domain (queued stanzas wait for the next one)",
    details: "Ends the incoming and outgoing streams with DOMAIN. Stanzas still queued for it \
              stay queued and go out on a new stream; a domain to keep out belongs in \
              s2s.deny_domains.",
    example: "chorusctl s2s close example.net",
    since: "0.2.0",
    read_only: false,
    password: false,
    args: &[REMOTE_DOMAIN_ARG],
};

const REMOTE_DOMAIN_ARG: ArgSpec = ArgSpec {
    name: "domain",
    help: "The remote domain",
    positional: true,
    required: true,
    switch: false,
    values: &[],
};

const TEXT_ARG: ArgSpec = ArgSpec {
    name: "text",
    help: "The text (quote it; newlines are kept)",
    positional: true,
    required: true,
    switch: false,
    values: &[],
};

const DOMAIN_FLAG: ArgSpec = ArgSpec {
    name: "domain",
    help: "Only this served domain (default: every one)",
    positional: false,
    required: false,
    switch: false,
    values: &[],
};

const ROOM_ARG: ArgSpec = ArgSpec {
    name: "room",
    help: "The room's JID: name@conference.<domain>",
    positional: true,
    required: true,
    switch: false,
    values: &[],
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

/// Looks a group up by its word.
pub fn group(name: &str) -> Option<&'static GroupSpec> {
    GROUPS.iter().find(|g| g.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HELP_MAX;

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

    /// A help that is one line, short enough for a command list, and
    /// written like the others (capital first, no final period).
    fn one_line(what: &str, help: &str) {
        assert!(!help.is_empty(), "{what} has no help");
        assert!(!help.contains('\n'), "{what}: one line");
        assert!(
            help.chars().count() <= HELP_MAX,
            "{what}: {} characters, at most {HELP_MAX}: {help}",
            help.chars().count()
        );
        assert!(
            help.starts_with(|c: char| c.is_uppercase()) && !help.ends_with('.'),
            "{what}: {help}"
        );
    }

    #[test]
    fn every_command_and_group_has_a_one_line_help() {
        for c in COMMANDS {
            one_line(c.name, c.help);
            assert!(
                c.details.is_empty() || c.details.ends_with('.'),
                "{}: details are sentences",
                c.name
            );
        }
        for g in GROUPS {
            one_line(g.name, g.help);
            assert!(
                COMMANDS
                    .iter()
                    .any(|c| c.name.starts_with(&format!("{} ", g.name))),
                "group {} has no command",
                g.name
            );
        }
        for c in COMMANDS {
            if let Some((first, _)) = c.name.split_once(' ') {
                assert!(group(first).is_some(), "{} has no GroupSpec", c.name);
                assert!(find(first).is_none(), "{first} is a command and a group");
            }
        }
    }

    #[test]
    fn local_commands_are_declared() {
        for name in LOCAL {
            assert!(find(name).is_some(), "{name}");
        }
    }
}
