//! `chorusctl`: talks to a running server's admin API over its unix socket.
//!
//! The command line is built at run time from `chorus_admin_api::COMMANDS`,
//! the same declarations the server binds its handlers to, so a command
//! added there appears here with its help and example. This is a thin
//! client: it links the declarations and the wire format, not the server
//! (no storage, router or modules). Exit codes, as ejabberdctl scripts
//! expect them to be stable: 0 ok, 1 command error, 2 usage error, 3 server
//! unreachable.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chorus_admin_api::{wire, CommandSpec, COMMANDS, CONFIG_CHECK};
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde_json::{Map, Value};

pub const EXIT_OK: i32 = 0;
pub const EXIT_COMMAND: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach the server at {path}: {source}")]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Command(String),
    #[error("{0}")]
    Usage(String),
}

impl CtlError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Unreachable { .. } => EXIT_UNREACHABLE,
            CtlError::Command(_) => EXIT_COMMAND,
            CtlError::Usage(_) => EXIT_USAGE,
        }
    }
}

/// The clap command tree: one subcommand per first word, nested per word.
pub fn cli() -> Command {
    let mut root = Command::new("chorusctl")
        .about("Administer a running Chorus XMPP server")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("socket")
                .long("socket")
                .global(true)
                .value_name("PATH")
                .help("Admin socket (default: admin.socket of --config, else data/chorus.sock)"),
        )
        .arg(
            Arg::new("config")
                .long("config")
                .global(true)
                .value_name("PATH")
                .help("Server config file, to find the admin socket"),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .global(true)
                .action(ArgAction::SetTrue)
                .help("Print the raw JSON result"),
        );
    let mut groups: Vec<(&str, Command)> = Vec::new();
    for spec in COMMANDS {
        let mut words = spec.name.split(' ');
        let group = words.next().unwrap_or(spec.name);
        let leaf = words.next();
        let cmd = leaf_command(leaf.unwrap_or(group), spec);
        match leaf {
            None => root = root.subcommand(cmd),
            Some(_) => match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, g)) => *g = g.clone().subcommand(cmd),
                None => groups.push((
                    group,
                    Command::new(group)
                        .about(chorus_admin_api::group(group).map_or("", |g| g.help))
                        .subcommand_required(true)
                        .arg_required_else_help(true)
                        .subcommand(cmd),
                )),
            },
        }
    }
    for (_, g) in groups {
        root = root.subcommand(g);
    }
    root
}

fn leaf_command(name: &'static str, spec: &'static CommandSpec) -> Command {
    let mut cmd = Command::new(name)
        .about(spec.help)
        .after_help(format!("Example: {}\nSince: {}", spec.example, spec.since));
    // `--help` shows the line and then the details; `-h` and the command
    // lists, the line alone.
    if !spec.details.is_empty() {
        cmd = cmd.long_about(format!("{}\n\n{}", spec.help, spec.details));
    }
    for a in spec.args {
        let mut arg = Arg::new(a.name).help(a.help).required(a.required);
        if !a.positional {
            arg = arg.long(a.name);
        }
        if a.switch {
            arg = arg.action(ArgAction::SetTrue);
        } else if !a.values.is_empty() {
            arg = arg.value_parser(a.values.to_vec());
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Finds the admin socket: `--socket`, else `admin.socket` of `--config`,
/// else the default in the default data directory.
pub fn socket_path(socket: Option<&str>, config: Option<&str>) -> Result<PathBuf, CtlError> {
    if let Some(s) = socket {
        return Ok(PathBuf::from(s));
    }
    let cfg = chorus_config::Config::load(config.map(Path::new))
        .map_err(|e| CtlError::Usage(format!("config: {e}")))?;
    Ok(cfg.admin_socket())
}

/// Sends one request and returns the `ok` value.
pub fn request(socket: &Path, api_path: &str, args: &Value) -> Result<Value, CtlError> {
    let unreachable = |source| CtlError::Unreachable {
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    // A chaos run, an import or an export answers when it is over (minutes
    // for a large import); everything else within seconds.
    let timeout = if ["/chaos", "/import", "/export"]
        .iter()
        .any(|p| api_path.ends_with(p))
    {
        None
    } else {
        Some(Duration::from_secs(30))
    };
    let _ = stream.set_read_timeout(timeout);
    let body = args.to_string();
    let req = format!(
        "POST {api_path} HTTP/1.1\r\nHost: chorus\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).map_err(unreachable)?;
    let mut resp = Vec::new();
    stream.read_to_end(&mut resp).map_err(unreachable)?;
    let text = String::from_utf8_lossy(&resp);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| CtlError::Command("malformed response from server".into()))?;
    let v: Value = serde_json::from_str(body)
        .map_err(|e| CtlError::Command(format!("malformed response from server: {e}")))?;
    wire::reply(&v).map_err(CtlError::Command)
}

/// Walks the matches down to the leaf command and its spec.
fn resolve(m: &ArgMatches) -> Option<(&'static CommandSpec, &ArgMatches)> {
    let (first, sub) = m.subcommand()?;
    if let Some(spec) = chorus_admin_api::find(first) {
        return Some((spec, sub));
    }
    let (second, leaf) = sub.subcommand()?;
    chorus_admin_api::find(&format!("{first} {second}")).map(|s| (s, leaf))
}

fn args_json(spec: &CommandSpec, m: &ArgMatches) -> Value {
    let mut map = Map::new();
    for a in spec.args {
        if a.switch {
            if m.get_flag(a.name) {
                map.insert(a.name.into(), Value::Bool(true));
            }
        } else if let Some(v) = m.get_one::<String>(a.name) {
            map.insert(a.name.into(), Value::String(v.clone()));
        }
    }
    Value::Object(map)
}

/// Reads the password for commands that need one: a line of standard input
/// with `--password-stdin`, else an interactive prompt without echo.
fn read_password(from_stdin: bool) -> Result<String, CtlError> {
    let line = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CtlError::Usage(format!("cannot read the password from stdin: {e}")))?;
        line
    } else {
        let first = rpassword::prompt_password("Password: ").map_err(|e| {
            CtlError::Usage(format!(
                "cannot prompt for a password: {e} (use --password-stdin)"
            ))
        })?;
        let again = rpassword::prompt_password("Again: ")
            .map_err(|e| CtlError::Usage(format!("cannot prompt for a password: {e}")))?;
        if first != again {
            return Err(CtlError::Usage("the passwords differ".into()));
        }
        first
    };
    let pw = line.trim_end_matches(['\r', '\n']).to_owned();
    if pw.is_empty() {
        return Err(CtlError::Usage("empty password".into()));
    }
    Ok(pw)
}

fn print_human(spec: &CommandSpec, result: &Value) {
    if let Some(text) = result.get("text").and_then(Value::as_str) {
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
        return;
    }
    match spec.name {
        "actors kill" => println!(
            "killed {}",
            result.get("killed").and_then(Value::as_str).unwrap_or("")
        ),
        "user add" | "user del" | "user passwd" => {
            let (verb, key) = match spec.name {
                "user add" => ("registered", "added"),
                "user del" => ("deleted", "deleted"),
                _ => ("changed the password of", "changed"),
            };
            println!(
                "{verb} {}",
                result.get(key).and_then(Value::as_str).unwrap_or("")
            );
        }
        _ => println!(
            "{}",
            serde_json::to_string_pretty(result).unwrap_or_default()
        ),
    }
}

/// `config check`: offline, every effective value with its source, then
/// the files it names (TLS certificates and keys) read as the server will.
fn config_check(file: Option<&Path>, json: bool) -> i32 {
    // The same load `explain` did; a valid file cannot fail here.
    let files = chorus_config::Config::load(file)
        .map(|c| c.file_problems())
        .unwrap_or_default();
    match chorus_config::Config::explain(file) {
        Ok(_) if !files.is_empty() => {
            eprintln!(
                "chorusctl: the configuration names files the server cannot use:\n{}",
                files.join("\n")
            );
            EXIT_COMMAND
        }
        Ok(rows) => {
            if json {
                let v: Vec<Value> = rows
                    .iter()
                    .map(|(k, v, src)| serde_json::json!({ "key": k, "value": v, "source": src }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                let width = rows
                    .iter()
                    .map(|r| r.0.len() + r.1.len() + 3)
                    .max()
                    .unwrap_or(0);
                for (k, v, src) in rows {
                    let kv = format!("{k} = {v}");
                    println!("{kv:<width$}  # {src}");
                }
                println!("configuration OK");
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("chorusctl: invalid configuration:\n{e}");
            EXIT_COMMAND
        }
    }
}

/// Runs chorusctl with the given argv; returns the exit code.
pub fn run<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = match cli().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => EXIT_USAGE,
            };
        }
    };
    let Some((spec, leaf)) = resolve(&matches) else {
        eprintln!("error: unknown command");
        return EXIT_USAGE;
    };
    let json = matches.get_flag("json");
    if spec.name == CONFIG_CHECK.name {
        let file = leaf
            .get_one::<String>("file")
            .or_else(|| matches.get_one::<String>("config"))
            .map(PathBuf::from);
        return config_check(file.as_deref(), json);
    }
    let mut args = args_json(spec, leaf);
    if spec.password {
        let from_stdin = leaf.get_flag("password-stdin");
        match read_password(from_stdin) {
            Ok(pw) => {
                if let Value::Object(map) = &mut args {
                    map.remove("password-stdin");
                    map.insert("password".into(), Value::String(pw));
                }
            }
            Err(e) => {
                eprintln!("chorusctl: {e}");
                return e.exit_code();
            }
        }
    }
    let result = socket_path(
        matches.get_one::<String>("socket").map(String::as_str),
        matches.get_one::<String>("config").map(String::as_str),
    )
    .and_then(|socket| request(&socket, &spec.http_path(), &args));
    match result {
        Ok(v) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print_human(spec, &v);
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("chorusctl: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        cli().debug_assert();
    }

    #[test]
    fn unknown_subcommand_is_a_usage_error() {
        assert_eq!(run(["chorusctl", "actors", "tre"]), EXIT_USAGE);
        assert_eq!(run(["chorusctl", "actorz"]), EXIT_USAGE);
    }

    #[test]
    fn unreachable_server_exits_3() {
        assert_eq!(
            run([
                "chorusctl",
                "--socket",
                "/nonexistent/chorus.sock",
                "actors",
                "tree"
            ]),
            EXIT_UNREACHABLE
        );
    }
}
