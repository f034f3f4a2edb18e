//! `chorus-bench compare`: the same scenarios against Chorus, ejabberd,
//! Prosody and the raw TCP relay, one after another on this machine, each
//! server pinned to core 0 and the generator to core 1 (with `taskset`,
//! where there are two cores). Results go into docs/BENCHMARKS.md between
//! two markers, so the rest of the document stays hand-written.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::scenarios::{self, Endpoint};
use crate::stats;
use crate::xmpp::{self, Mech, Security, Target};

#[derive(clap::Args)]
pub struct CompareArgs {
    /// Session counts to measure at.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    sessions: Vec<usize>,
    /// Servers to run (those not installed are skipped with a note).
    #[arg(long, value_delimiter = ',', default_value = "chorus,ejabberd,prosody")]
    servers: Vec<String>,
    /// Seconds per messages run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Total msgs/s of the fixed-rate latency run.
    #[arg(long, default_value_t = 5000.0)]
    latency_rate: f64,
    /// Users and roster size of the presence run (once per server).
    #[arg(long, default_value_t = 1000)]
    presence_users: usize,
    #[arg(long, default_value_t = 20)]
    roster: usize,
    /// Items each user publishes in the PEP run (same users and rosters).
    #[arg(long, default_value_t = 5)]
    pep_items: usize,
    /// Also run with STARTTLS and SCRAM (connect and messages at the
    /// smallest size).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls: bool,
    /// The chorus binary (default: next to this one; build with --release).
    #[arg(long)]
    chorus_bin: Option<PathBuf>,
    /// Config templates for the peers.
    #[arg(long, default_value = "bench/peers")]
    peers: PathBuf,
    /// The document to write; the table replaces what is between the markers.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// Archive every message on every server: Chorus's shipped default
    /// (`mam.default_pref = "always"`), ejabberd's and Prosody's `mod_mam`
    /// with the same policy. `false` turns archiving off on all three.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    archive: bool,
    /// Seconds the sessions are held before the server's RSS is read.
    #[arg(long, default_value_t = 10)]
    hold: u64,
    /// Room sizes of the group chat run (XEP-0045), on a fresh server
    /// per peer; empty skips it.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    muc_sizes: Vec<usize>,
    /// Occupants that send in each room, and messages each sends.
    #[arg(long, default_value_t = 20)]
    muc_senders: usize,
    #[arg(long, default_value_t = 5)]
    muc_messages: usize,
    /// Only the group chat run, written to its own table.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    muc_only: bool,
}

impl CompareArgs {
    fn archiving(&self) -> &'static str {
        if self.archive {
            "on"
        } else {
            "off"
        }
    }
}

/// The markers around one run's tables; one pair per archiving setting, so
/// that a run with archiving on and one with it off stand side by side.
fn markers(args: &CompareArgs) -> (String, String) {
    let a = args.archiving();
    let what = if args.muc_only { " muc" } else { "" };
    (
        format!("<!-- chorus-bench compare{what}, archiving {a}: begin -->"),
        format!("<!-- chorus-bench compare{what}, archiving {a}: end -->"),
    )
}
const PASSWORD: &str = "bench-password";

/// Registers accounts 0..n in band, `concurrency` at a time.
pub async fn register_all(t: &Target, n: usize, concurrency: usize) -> Result<()> {
    let sem = Arc::new(Semaphore::new(concurrency.clamp(1, 50)));
    let mut tasks = Vec::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let r = xmpp::register(&t, i).await;
            drop(permit);
            r
        }));
    }
    let mut failed = 0;
    let mut first = None;
    for task in tasks {
        if let Err(e) = task.await? {
            failed += 1;
            first.get_or_insert(e);
        }
    }
    if let Some(e) = first {
        bail!("{failed} of {n} registrations failed; first: {e:#}");
    }
    Ok(())
}

/// A server under test, started by us in its own temporary directory.
struct Running {
    name: String,
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
    stop: Option<Vec<String>>,
}

impl Running {
    /// RSS of every process of this server: those whose command line names
    /// its directory (wrappers such as su and sh excepted).
    fn rss_kib(&self) -> Option<u64> {
        let marker = self.dir.to_string_lossy().into_owned();
        let mut total = 0;
        let mut found = false;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !cmd.contains(&marker) || pid == std::process::id() {
                continue;
            }
            if matches!(comm.trim(), "su" | "sh" | "bash" | "taskset" | "dash") {
                continue;
            }
            if let Some(kib) = stats::rss_kib(pid) {
                total += kib;
                found = true;
            }
        }
        found.then_some(total)
    }

    fn stop(mut self) {
        if let Some(cmd) = self.stop.take() {
            let _ = Command::new(&cmd[0])
                .args(&cmd[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        } else {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Anything left of it (a detached beam) goes too: only processes
        // started from our own directory.
        if self.rss_kib().is_some() {
            let _ = Command::new("pkill")
                .arg("-KILL")
                .arg("-f")
                .arg(self.dir.to_string_lossy().as_ref())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn installed(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pinned(cmd: &str) -> Command {
    // Two cores: the server gets core 0, the generator core 1.
    if cores() >= 2 && installed("taskset") {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

/// Cores on this machine (not just those this process may use, which
/// pinning narrows).
fn cores() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(1)
        .max(1)
}

fn render(template: &Path, vars: &[(&str, String)], out: &Path) -> Result<()> {
    let mut s = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    std::fs::write(out, s)?;
    Ok(())
}

fn self_signed(dir: &Path) -> Result<()> {
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success();
    if !ok {
        bail!("openssl could not make a certificate");
    }
    let pem = std::fs::read_to_string(dir.join("cert.pem"))?
        + &std::fs::read_to_string(dir.join("key.pem"))?;
    std::fs::write(dir.join("both.pem"), pem)?;
    Ok(())
}

async fn wait_port(addr: SocketAddr, child: &mut Child, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("exited with {status} before listening on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("not listening on {addr} after {limit:?}")
}

async fn start(name: &str, args: &CompareArgs, n: usize) -> Result<Running> {
    let dir = std::env::temp_dir().join(format!("chorus-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let d = dir.to_string_lossy().into_owned();
    let (port, mut child, stop) = match name {
        "chorus" => {
            let port = free_port()?;
            let cfg = dir.join("chorus.toml");
            let pref = if args.archive { "always" } else { "never" };
            render(
                &args.peers.join("chorus.toml"),
                &[
                    ("DIR", d.clone()),
                    ("PORT", port.to_string()),
                    ("MAM", pref.to_owned()),
                    ("MUC_LOG", args.archive.to_string()),
                ],
                &cfg,
            )?;
            let bin = match &args.chorus_bin {
                Some(b) => b.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .ok_or_else(|| anyhow!("no exe dir"))?
                    .join("chorus"),
            };
            let child = pinned(&bin.to_string_lossy())
                .arg("--config")
                .arg(&cfg)
                .env("CHORUS_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("chorus.log"))?)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            (port, child, None)
        }
        "ejabberd" => {
            let port = free_port()?;
            self_signed(&dir)?;
            std::fs::create_dir_all(dir.join("db"))?;
            std::fs::create_dir_all(dir.join("logs"))?;
            // mod_mam archiving every message, as Chorus does by default.
            let mam = if args.archive {
                "mod_mam:\n    default: always"
            } else {
                ""
            };
            render(
                &args.peers.join("ejabberd.yml"),
                &[
                    ("DIR", d.clone()),
                    ("PORT", port.to_string()),
                    ("MAM", mam.to_owned()),
                    ("MUC_MAM", args.archive.to_string()),
                ],
                &dir.join("ejabberd.yml"),
            )?;
            // ejabberdctl runs ejabberd as its own user when started by root.
            let _ = Command::new("chown")
                .arg("-R")
                .arg("ejabberd:")
                .arg(&dir)
                .status();
            let node = format!("bench{}@localhost", std::process::id());
            let base = |c: &mut Command| {
                c.arg("--config-dir")
                    .arg(&dir)
                    .arg("--config")
                    .arg(dir.join("ejabberd.yml"))
                    .arg("--spool")
                    .arg(dir.join("db"))
                    .arg("--logs")
                    .arg(dir.join("logs"))
                    .arg("--node")
                    .arg(&node);
            };
            // As the ejabberd user without su: su goes through PAM, which
            // resets the open-file limit to 1024 and makes ejabberd refuse
            // connections past ~1000 ("too many open files").
            let as_ejabberd = |c: &mut Command| {
                c.args([
                    "--reuid=ejabberd",
                    "--regid=ejabberd",
                    "--init-groups",
                    "ejabberdctl",
                ])
                .env("HOME", "/var/lib/ejabberd");
            };
            let mut c = pinned("setpriv");
            as_ejabberd(&mut c);
            base(&mut c);
            // Enough Erlang ports for every session.
            c.env("ERL_MAX_PORTS", (n * 2 + 1024).to_string());
            let child = c
                .arg("foreground")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("stderr.log"))?)
                .spawn()?;
            let stop = vec![
                "setpriv".to_owned(),
                "--reuid=ejabberd".to_owned(),
                "--regid=ejabberd".to_owned(),
                "--init-groups".to_owned(),
                "ejabberdctl".to_owned(),
                "--config-dir".to_owned(),
                d.clone(),
                "--node".to_owned(),
                node,
                "stop".to_owned(),
            ];
            (port, child, Some(stop))
        }
        "prosody" => {
            let port = free_port()?;
            self_signed(&dir)?;
            std::fs::create_dir_all(dir.join("data"))?;
            let cfg = dir.join("prosody.cfg.lua");
            let mam = if args.archive { "\"mam\";" } else { "" };
            let muc_mam = if args.archive { "\"muc_mam\";" } else { "" };
            render(
                &args.peers.join("prosody.cfg.lua"),
                &[
                    ("DIR", d.clone()),
                    ("PORT", port.to_string()),
                    ("MAM", mam.to_owned()),
                    ("MUC_MAM", muc_mam.to_owned()),
                ],
                &cfg,
            )?;
            let child = pinned("prosody")
                .arg("--config")
                .arg(&cfg)
                .arg("-F")
                .stdout(std::fs::File::create(dir.join("stdout.log"))?)
                .stderr(std::fs::File::create(dir.join("stderr.log"))?)
                .spawn()?;
            (port, child, None)
        }
        "relay" => {
            let port = free_port()?;
            let exe = std::env::current_exe()?;
            let child = pinned(&exe.to_string_lossy())
                .arg("relay")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                // The marker that finds its RSS.
                .env("CHORUS_BENCH_DIR", &dir)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            (port, child, None)
        }
        other => bail!("unknown server {other}"),
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    if let Err(e) = wait_port(addr, &mut child, Duration::from_secs(60)).await {
        let _ = child.kill();
        bail!("{name}: {e} (logs in {})", dir.display());
    }
    // The port answers before the server is fully up (ejabberd).
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(Running {
        name: name.to_owned(),
        addr,
        dir,
        child,
        stop,
    })
}

fn target(r: &Running, security: Security, mech: Mech) -> Result<Target> {
    Ok(Target {
        addr: r.addr,
        domain: "localhost".into(),
        security,
        mech,
        password: PASSWORD.into(),
        prefix: "bench".into(),
        scram_cache: Arc::new(Mutex::new(HashMap::new())),
        tls: xmpp::tls_connector()?,
    })
}

/// One server's figures at one session count.
#[derive(Clone, Debug, Default, Serialize)]
struct Row {
    kib_per_session: Option<f64>,
    rss_mib: Option<f64>,
    logins_per_sec: Option<f64>,
    login_p99_ms: Option<f64>,
    tls_kib_per_session: Option<f64>,
    tls_logins_per_sec: Option<f64>,
    msgs_per_sec: Option<f64>,
    tls_msgs_per_sec: Option<f64>,
    lost: Option<u64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    fanout_per_sec: Option<f64>,
    pep_per_sec: Option<f64>,
    pep_p99_ms: Option<f64>,
    notes: Vec<String>,
}

/// Runs `$measure` (with the server as `$r`) on a freshly started
/// `$name`, stops it, and notes a failure among the skipped runs.
macro_rules! on_fresh {
    ($name:expr, $args:expr, $n:expr, $what:expr, $skipped:expr, |$r:ident| $measure:expr) => {{
        let result = match start($name, $args, $n).await {
            Ok($r) => {
                let result = $measure.await;
                $r.stop();
                result
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!("{} ({}): {e:#}", $name, $what);
            $skipped.push(format!("{} {} runs (failed: {e})", $name, $what));
        }
    }};
}

/// Whether the server `name` can be started here (the relay always can).
fn server_installed(name: &str) -> bool {
    installed(match name {
        "ejabberd" => "ejabberdctl",
        "prosody" => "prosody",
        _ => "true",
    })
}

pub async fn run(args: CompareArgs) -> Result<()> {
    if cores() >= 2 && installed("taskset") {
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status();
    }
    let max_n = args.sessions.iter().copied().max().unwrap_or(1000);
    let mut rows: BTreeMap<(usize, String), Row> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut muc_rows: BTreeMap<(usize, String), MucRow> = BTreeMap::new();
    if args.muc_only {
        for name in &args.servers {
            run_muc(name, &args, &mut muc_rows, &mut skipped).await;
        }
        let table = render_muc_table(&args, &muc_rows, &skipped);
        println!("{table}");
        write_doc(&args, &table)?;
        eprintln!("wrote {}", args.out.display());
        return Ok(());
    }
    let mut servers = args.servers.clone();
    servers.push("relay".into());
    for name in &servers {
        if !server_installed(name) {
            skipped.push(format!("{name} (not installed)"));
            continue;
        }
        eprintln!("== {name}");
        let r = match start(name, &args, max_n).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e:#}");
                skipped.push(format!("{name} (did not start: {e})"));
                continue;
            }
        };
        let result = measure(&r, &args, &mut rows).await;
        r.stop();
        if let Err(e) = result {
            eprintln!("{name}: {e:#}");
            skipped.push(format!("{name} (failed: {e})"));
            continue;
        }
        if name != "relay" {
            on_fresh!(name, &args, max_n, "fan-out", skipped, |r| measure_fanout(
                &r, &args, &mut rows
            ));
        }
        if name != "relay" {
            run_muc(name, &args, &mut muc_rows, &mut skipped).await;
        }
        if args.tls && name != "relay" {
            // A fresh server: sessions must not reuse what the plaintext
            // runs freed, or the memory figure understates them.
            on_fresh!(name, &args, max_n, "TLS", skipped, |r| measure_tls(
                &r, &args, &mut rows
            ));
        }
    }
    let mut table = render_table(&args, &rows, &skipped);
    if !args.muc_sizes.is_empty() {
        table.push('\n');
        table.push_str(&render_muc_table(&args, &muc_rows, &[]));
    }
    println!("{table}");
    write_doc(&args, &table)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

async fn measure(
    r: &Running,
    args: &CompareArgs,
    rows: &mut BTreeMap<(usize, String), Row>,
) -> Result<()> {
    let relay = r.name == "relay";
    let max_n = args.sessions.iter().copied().max().unwrap_or(1000);
    let min_n = args.sessions.iter().copied().min().unwrap_or(1000);
    let plain = target(r, Security::Plain, Mech::Plain)?;
    if !relay {
        let t0 = Instant::now();
        register_all(&plain, max_n.max(args.presence_users), 50).await?;
        eprintln!(
            "  registered {} accounts in {:.1}s",
            max_n,
            t0.elapsed().as_secs_f64()
        );
    }
    let ep_plain = if relay {
        Endpoint::Relay(r.addr)
    } else {
        Endpoint::Xmpp(plain.clone())
    };
    let rss = || r.rss_kib();
    let mut sizes = args.sessions.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if !relay {
        // Memory first, every size before any message run, so that nothing
        // but sessions grows between two readings. A warm-up at the
        // smallest size brings the allocators and caches (the Erlang VM's
        // especially) to their working size; then each size is held and
        // read at steady state, and KiB per session is the slope from the
        // size before: what one more session costs, whatever the runtime
        // keeps. The smallest size has no slope of its own: its sessions
        // reuse what the warm-up's freed, so against the warmed baseline
        // they would look nearly free.
        let warm =
            scenarios::connect(&ep_plain, min_n, 0.0, 200, Duration::from_secs(2), &|| None).await;
        eprintln!("  warm-up {min_n}: {} ok", warm.ok);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (mut prev_n, mut prev_rss) = (0usize, None);
        for &n in &sizes {
            let mut row = Row::default();
            let c =
                scenarios::connect(&ep_plain, n, 0.0, 200, Duration::from_secs(args.hold), &rss)
                    .await;
            eprintln!("  connect plain {n}: {c:?}");
            row.kib_per_session = match (prev_rss, c.rss_after_kib) {
                (Some(b), Some(a)) if c.ok > prev_n => {
                    Some((a as f64 - b as f64) / (c.ok - prev_n) as f64)
                }
                _ => None,
            };
            (prev_n, prev_rss) = (c.ok, c.rss_after_kib);
            row.rss_mib = c.rss_after_kib.map(|k| k as f64 / 1024.0);
            row.logins_per_sec = Some(c.logins_per_sec);
            row.login_p99_ms = Some(c.login_p99_ms);
            if c.failures > 0 {
                row.notes.push(format!(
                    "{} login failures: {:?}",
                    c.failures,
                    c.errors.first()
                ));
            }
            rows.insert((n, r.name.clone()), row);
        }
    }
    for &n in &sizes {
        let mut row = rows.remove(&(n, r.name.clone())).unwrap_or_default();
        // The row keeps what was measured even if a later run fails (a
        // server that stops answering at this size): its connect figures
        // still belong in the table.
        let result: Result<()> = async {
            let m = scenarios::messages(
                &ep_plain,
                n / 2,
                0.0,
                4,
                Duration::from_secs(args.secs),
                200,
                32,
            )
            .await?;
            eprintln!("  messages {n}: {m:?}");
            row.msgs_per_sec = Some(m.delivered_per_sec);
            row.lost = Some(m.lost);
            let l = scenarios::messages(
                &ep_plain,
                n / 2,
                args.latency_rate,
                4,
                Duration::from_secs(args.secs),
                200,
                32,
            )
            .await?;
            eprintln!("  latency {n}: {l:?}");
            row.p50_ms = Some(l.latency_p50_ms);
            row.p99_ms = Some(l.latency_p99_ms);
            row.max_ms = Some(l.latency_max_ms);
            if l.lost > 0 || m.lost > 0 {
                row.notes.push(format!(
                    "lost {} (throughput run) and {} (latency run)",
                    m.lost, l.lost
                ));
            }
            Ok(())
        }
        .await;
        rows.insert((n, r.name.clone()), row);
        if let Err(e) = result {
            return Err(e.context(format!("at {n} sessions")));
        }
    }
    Ok(())
}

/// Presence and PEP fan-out at the smallest size, on a freshly started
/// server: a peer saturated by the fixed-rate latency run may still be
/// working through its backlog for minutes, and would fail the logins.
async fn measure_fanout(
    r: &Running,
    args: &CompareArgs,
    rows: &mut BTreeMap<(usize, String), Row>,
) -> Result<()> {
    let n = args.sessions.iter().copied().min().unwrap_or(1000);
    let plain = target(r, Security::Plain, Mech::Plain)?;
    register_all(&plain, args.presence_users, 50).await?;
    let row = rows.entry((n, r.name.clone())).or_default();
    let p = scenarios::presence(&plain, args.presence_users, args.roster, 200).await?;
    eprintln!("  presence: {p:?}");
    row.fanout_per_sec = Some(p.fanout_per_sec);
    if p.delivered < p.expected_deliveries {
        row.notes.push(format!(
            "presence: {} of {} deliveries",
            p.delivered, p.expected_deliveries
        ));
    }
    let pep = scenarios::pep(
        &plain,
        args.presence_users,
        args.roster,
        args.pep_items,
        200,
    )
    .await?;
    eprintln!("  pep: {pep:?}");
    row.pep_per_sec = Some(pep.notifications_per_sec);
    row.pep_p99_ms = Some(pep.latency.p99_ms);
    if pep.delivered < pep.expected_notifications {
        row.notes.push(format!(
            "PEP: {} of {} notifications ({} publishes refused{})",
            pep.delivered,
            pep.expected_notifications,
            pep.publish_errors,
            pep.first_publish_error
                .as_deref()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

/// One server's group chat figures at one room size.
#[derive(Clone, Debug, Default)]
struct MucRow {
    per_sec: Option<f64>,
    p99_ms: Option<f64>,
    join_secs: Option<f64>,
    notes: Vec<String>,
}

/// The group chat runs of one server, on a fresh one, if it is installed.
async fn run_muc(
    name: &str,
    args: &CompareArgs,
    rows: &mut BTreeMap<(usize, String), MucRow>,
    skipped: &mut Vec<String>,
) {
    let Some(largest) = args.muc_sizes.iter().copied().max() else {
        return;
    };
    if !server_installed(name) {
        if args.muc_only {
            skipped.push(format!("{name} (not installed)"));
        }
        return;
    }
    eprintln!("== {name} (muc)");
    on_fresh!(name, args, largest, "group chat", skipped, |r| measure_muc(
        &r, args, rows
    ));
}

/// A room of each size in turn, on one server.
async fn measure_muc(
    r: &Running,
    args: &CompareArgs,
    rows: &mut BTreeMap<(usize, String), MucRow>,
) -> Result<()> {
    let largest = args.muc_sizes.iter().copied().max().unwrap_or(0);
    let plain = target(r, Security::Plain, Mech::Plain)?;
    register_all(&plain, largest, 50).await?;
    for &n in &args.muc_sizes {
        let m = scenarios::muc(&plain, n, args.muc_senders, args.muc_messages, 200).await?;
        eprintln!("  muc {n}: {m:?}");
        let row = rows.entry((n, r.name.clone())).or_default();
        row.per_sec = Some(m.deliveries_per_sec);
        row.p99_ms = Some(m.latency.p99_ms);
        row.join_secs = Some(m.join_secs);
        if m.delivered < m.expected_deliveries {
            row.notes.push(format!(
                "{} of {} deliveries",
                m.delivered, m.expected_deliveries
            ));
        }
    }
    Ok(())
}

fn render_muc_table(
    args: &CompareArgs,
    rows: &BTreeMap<(usize, String), MucRow>,
    skipped: &[String],
) -> String {
    let mut s = format!(
        "Group chat (XEP-0045), measured by `chorus-bench compare` on {} ({} cores); server on core 0, \
         generator on core 1; plaintext with SASL PLAIN. One room per size on a fresh server: every occupant \
         joins (the first creates an instant room), then {} occupants each send {} messages, each \
         delivered to every occupant, the sender included. Room archiving {} on all three servers \
         (Chorus `muc.logging_default`, ejabberd `default_room_options: mam`, Prosody `muc_mam`). \
         Rooms of up to 2000 occupants on all three: Chorus's and ejabberd's shipped limit is 200 \
         (`muc.max_occupants`, `max_users`), ejabberd's presence broadcast limit (`max_users_presence`) \
         1000. Latency from the send to each delivery.\n\n",
        chrono_free_date(),
        cores(),
        args.muc_senders,
        args.muc_messages,
        args.archiving()
    );
    s.push_str(
        "| occupants | server | deliveries/s | p99 ms | joining s |\n|---|---|---|---|---|\n",
    );
    let sizes: std::collections::BTreeSet<usize> = rows.keys().map(|k| k.0).collect();
    for n in &sizes {
        for ((_, name), r) in rows.iter().filter(|(k, _)| k.0 == *n) {
            s.push_str(&format!(
                "| {n} | {name} | {} | {} | {} |\n",
                fmt(r.per_sec, 0),
                fmt(r.p99_ms, 1),
                fmt(r.join_secs, 1)
            ));
        }
    }
    s.push_str("\nRatios (Chorus ÷ other; deliveries/s: higher is better; p99 and joining: lower is better):\n\n");
    s.push_str("| occupants | against | deliveries/s | p99 | joining |\n|---|---|---|---|---|\n");
    for n in &sizes {
        let Some(c) = rows.get(&(*n, "chorus".to_owned())) else {
            continue;
        };
        for ((_, name), o) in rows.iter().filter(|(k, _)| k.0 == *n && k.1 != "chorus") {
            s.push_str(&format!(
                "| {n} | {name} | {} | {} | {} |\n",
                ratio(c.per_sec, o.per_sec),
                ratio(c.p99_ms, o.p99_ms),
                ratio(c.join_secs, o.join_secs)
            ));
        }
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|((n, name), r)| r.notes.iter().map(move |x| format!("- {name} at {n}: {x}")))
        .chain(skipped.iter().map(|x| format!("- skipped: {x}")))
        .collect();
    if !notes.is_empty() {
        s.push_str("\nNotes from the run:\n\n");
        s.push_str(&notes.join("\n"));
        s.push('\n');
    }
    s
}

/// STARTTLS and SCRAM at the smallest size, on a freshly started server.
async fn measure_tls(
    r: &Running,
    args: &CompareArgs,
    rows: &mut BTreeMap<(usize, String), Row>,
) -> Result<()> {
    let n = args.sessions.iter().copied().min().unwrap_or(1000);
    let plain = target(r, Security::Plain, Mech::Plain)?;
    register_all(&plain, n, 50).await?;
    let mut t = target(r, Security::Starttls, Mech::ScramSha256)?;
    let row = rows.entry((n, r.name.clone())).or_default();
    if r.name == "prosody" {
        // Prosody 0.12 stores SCRAM-SHA-1 keys only.
        t.mech = Mech::ScramSha1;
        row.notes
            .push("TLS runs with SCRAM-SHA-1 (Prosody 0.12 has no SCRAM-SHA-256)".into());
    }
    let ep = Endpoint::Xmpp(t);
    // A first pass fills the client's SCRAM cache (PBKDF2 once per
    // account), unmeasured; the server's memory is read around the second.
    // The baseline is read before the warm-up: the measured sessions reuse
    // what the warm-up's freed, which a baseline read after it would hide.
    let baseline = r.rss_kib();
    let warm = scenarios::connect(&ep, n, 0.0, 200, Duration::from_secs(1), &|| None).await;
    let rss = || r.rss_kib();
    let mut c = scenarios::connect(&ep, n, 0.0, 200, Duration::from_secs(5), &rss).await;
    c.rss_before_kib = baseline;
    c.kib_per_session = match (baseline, c.rss_after_kib) {
        (Some(b), Some(a)) if c.ok > 0 => Some((a as f64 - b as f64) / c.ok as f64),
        _ => None,
    };
    eprintln!(
        "  connect tls {n}: {c:?} (warm-up failures {})",
        warm.failures
    );
    row.tls_kib_per_session = c.kib_per_session;
    row.tls_logins_per_sec = Some(c.logins_per_sec);
    if c.failures > 0 {
        row.notes.push(format!(
            "{} TLS login failures: {:?}",
            c.failures,
            c.errors.first()
        ));
    }
    let m =
        scenarios::messages(&ep, n / 2, 0.0, 4, Duration::from_secs(args.secs), 200, 32).await?;
    eprintln!("  messages tls {n}: {m:?}");
    row.tls_msgs_per_sec = Some(m.delivered_per_sec);
    Ok(())
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a / b < 0.01 => format!("{:.4}", a / b),
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn render_table(
    args: &CompareArgs,
    rows: &BTreeMap<(usize, String), Row>,
    skipped: &[String],
) -> String {
    let mut s = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    s.push_str(&format!(
        "Measured by `chorus-bench compare` on {} ({} cores, {cpu}); server on core 0, generator on core 1. \
         Archiving {} on all three servers. KiB/session: the slope of RSS from the next smaller held size ({} s after the logins, after a warm-up), so none for the smallest. \
         Plaintext with SASL PLAIN unless marked TLS (STARTTLS + SCRAM-SHA-256). Messages: closed loop, 4 in flight per direction, {} s; \
         latency at a fixed {} msgs/s in total. Presence: {} users, roster {}. \
         PEP: the same users and rosters, each asking for one node in its caps, each publishing {} items; \
         latency from publish to notification.\n\n",
        chrono_free_date(),
        cores(),
        args.archiving(),
        args.hold,
        args.secs,
        args.latency_rate,
        args.presence_users,
        args.roster,
        args.pep_items
    ));
    let ns: Vec<usize> = {
        let mut v: Vec<usize> = rows.keys().map(|k| k.0).collect();
        v.dedup();
        v
    };
    s.push_str("| sessions | server | KiB/session | RSS MiB | logins/s | login p99 ms | TLS KiB/session | TLS logins/s | msgs/s | TLS msgs/s | lost | p50 ms | p99 ms | max ms | presence fan-out/s | PEP notifications/s | PEP p99 ms |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for n in &ns {
        for ((rn, name), r) in rows.iter().filter(|(k, _)| k.0 == *n) {
            s.push_str(&format!(
                "| {rn} | {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                fmt(r.kib_per_session, 1),
                fmt(r.rss_mib, 1),
                fmt(r.logins_per_sec, 0),
                fmt(r.login_p99_ms, 1),
                fmt(r.tls_kib_per_session, 1),
                fmt(r.tls_logins_per_sec, 0),
                fmt(r.msgs_per_sec, 0),
                fmt(r.tls_msgs_per_sec, 0),
                r.lost.map_or("–".into(), |l| l.to_string()),
                fmt(r.p50_ms, 2),
                fmt(r.p99_ms, 2),
                fmt(r.max_ms, 1),
                fmt(r.fanout_per_sec, 0),
                fmt(r.pep_per_sec, 0),
                fmt(r.pep_p99_ms, 1),
            ));
        }
    }
    s.push_str("\nRatios (Chorus ÷ other; memory and latency: lower is better, the targets are ≤ 0.33; throughput: higher is better, targets ≥ 3 against ejabberd and ≥ 0.70 against the relay):\n\n");
    s.push_str("| sessions | against | memory/session | logins/s | msgs/s | p99 latency | presence fan-out | PEP notifications/s | PEP p99 |\n|---|---|---|---|---|---|---|---|---|\n");
    for n in &ns {
        let Some(c) = rows.get(&(*n, "chorus".to_owned())) else {
            continue;
        };
        for ((_, name), o) in rows.iter().filter(|(k, _)| k.0 == *n && k.1 != "chorus") {
            s.push_str(&format!(
                "| {n} | {name} | {} | {} | {} | {} | {} | {} | {} |\n",
                ratio(c.kib_per_session, o.kib_per_session),
                ratio(c.logins_per_sec, o.logins_per_sec),
                ratio(c.msgs_per_sec, o.msgs_per_sec),
                ratio(c.p99_ms, o.p99_ms),
                ratio(c.fanout_per_sec, o.fanout_per_sec),
                ratio(c.pep_per_sec, o.pep_per_sec),
                ratio(c.pep_p99_ms, o.pep_p99_ms),
            ));
        }
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|((n, name), r)| r.notes.iter().map(move |x| format!("- {name} at {n}: {x}")))
        .chain(skipped.iter().map(|x| format!("- skipped: {x}")))
        .collect();
    if !notes.is_empty() {
        s.push_str("\nNotes from the run:\n\n");
        s.push_str(&notes.join("\n"));
        s.push('\n');
    }
    s
}

/// Today's date from the system clock, as YYYY-MM-DD (no date crate needed).
fn chrono_free_date() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn write_doc(args: &CompareArgs, table: &str) -> Result<()> {
    let path = &args.out;
    let (begin, end) = markers(args);
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{begin}\n{table}{end}");
    let new = match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{section}{}", &doc[..b], &doc[e + end.len()..]),
        _ => format!("{doc}\n### Archiving {}\n\n{section}\n", args.archiving()),
    };
    std::fs::write(path, new)?;
    Ok(())
}
