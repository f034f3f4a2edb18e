//! The real `chorus` binary as a child process: for tests that need the
//! server in its own process (the CLI, signals, and per-process figures such
//! as resident memory, which an in-process server would share with the test
//! and every other test running beside it).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::temp_dir;

pub struct Daemon {
    pub child: Child,
    /// The admin API's Unix socket.
    pub socket: std::path::PathBuf,
    /// The c2s listener's bound address.
    pub addr: std::net::SocketAddr,
    /// Every line the server logged, in order.
    pub logs: std::sync::mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// The server process's resident set size, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// Calls the admin API (as `chorusctl` does) and returns its JSON answer.
    /// A socket not there yet, or not yet accepting, is retried for a while:
    /// on a loaded machine the admin actor may start well after the c2s
    /// listener logged its address.
    pub fn admin(&self, api_path: &str, args: serde_json::Value) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match chorus_ctl::request(&self.socket, api_path, &args) {
                Ok(v) => return v,
                Err(chorus_ctl::CtlError::Unreachable { source, .. })
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("admin {api_path}: {e}"),
            }
        }
    }

    /// Registers `local@localhost` through the admin API.
    pub fn add_user(&self, local: &str, password: &str) {
        self.admin(
            "/api/user/add",
            serde_json::json!({ "jid": format!("{local}@localhost"), "password": password }),
        );
    }
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    try_rss_kib(pid).expect("VmRSS in /proc/<pid>/status")
}

/// `VmRSS` of a process, in KiB; None once it has exited.
pub fn try_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Starts the real binary on an ephemeral port and waits for its
/// "listening" log line. `extra` is appended to the configuration file.
pub fn spawn_daemon(tag: &str, extra: &str) -> Daemon {
    spawn_daemon_env(tag, extra, &[])
}

pub fn spawn_daemon_env(tag: &str, extra: &str, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
    let dir = temp_dir(tag);
    let socket = dir.join("chorus.sock");
    let config = dir.join("chorus.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndomains = ['localhost']\ndata_dir = '{}'\n\n[metrics]\naddress = '127.0.0.1:0'\n\n[[listeners]]\nkind = 'c2s'\naddress = '127.0.0.1:0'\n{extra}",
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .arg("--config")
        .arg(&config)
        .env("CHORUS_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (log_tx, logs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("address=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
            let _ = log_tx.send(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server logged its address")
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Daemon {
        child,
        socket,
        addr,
        logs,
    }
}
