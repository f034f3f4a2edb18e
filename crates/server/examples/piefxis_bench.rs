//! How long a XEP-0227 version 1.1 (PIEFXIS) import of many accounts with
//! plaintext passwords takes, and the export and re-import after it.
//!
//! Run on demand, in release (PBKDF2 is the cost being measured):
//! `cargo run --release -p chorus-server --example piefxis_bench [ACCOUNTS]`
//! (default 20000). It writes a generated file with ACCOUNTS users (a
//! password, two roster items and a vCard each) to a temporary directory,
//! starts a server in-process on loopback with its data there, imports the
//! file through the admin socket as `chorusctl import` does, checks a
//! password against the stored keys, exports, imports the export into a
//! second server, and removes everything it wrote.
//!
//! `PIEFXIS_BENCH_DB_A` and `PIEFXIS_BENCH_DB_B`, if set, are storage URLs
//! (two empty PostgreSQL databases, say) for the two servers instead of
//! SQLite files in the temporary directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chorus_sasl::{ScramCredentials, ScramHash};
use chorus_storage::AccountStore;
use serde_json::{json, Value};

fn generate(path: &Path, n: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='localhost'>"
    )?;
    for i in 0..n {
        writeln!(
            out,
            "<user name='user{i}' password='secret-{i}'>\
             <query xmlns='jabber:iq:roster'>\
             <item jid='user{}@localhost' name='Next' subscription='both'><group>Friends</group></item>\
             <item jid='someone{i}@example.net' subscription='to'/></query>\
             <vCard xmlns='vcard-temp'><FN>User {i}</FN><NICKNAME>u{i}</NICKNAME></vCard></user>",
            (i + 1) % n
        )?;
    }
    writeln!(out, "</host>\n</server-data>")?;
    out.flush()?;
    Ok(())
}

async fn start(dir: PathBuf, db: &str) -> anyhow::Result<chorus_server::Server> {
    let mut cfg = chorus_config::Config::default();
    cfg.server.data_dir = dir;
    cfg.storage.url = std::env::var(db).unwrap_or_default();
    cfg.listeners[0].address = "127.0.0.1:0".parse()?;
    cfg.metrics.address = "127.0.0.1:0".into();
    let server = chorus_server::Server::start(cfg).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.admin_socket.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(server)
}

/// One admin command, as chorusctl sends it.
async fn admin(socket: &Path, path: &'static str, args: Value) -> anyhow::Result<Value> {
    let socket = socket.to_owned();
    let v =
        tokio::task::spawn_blocking(move || chorus_ctl::request(&socket, path, &args)).await??;
    Ok(v)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let base = std::env::temp_dir().join(format!("chorus-piefxis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let result = run(&base, n).await;
    let _ = std::fs::remove_dir_all(&base);
    result
}

async fn run(base: &Path, n: usize) -> anyhow::Result<()> {
    let file = base.join("import.xml");
    let t = Instant::now();
    generate(&file, n)?;
    println!(
        "generated {n} accounts ({} MB) in {:.2} s",
        std::fs::metadata(&file)?.len() / 1_000_000,
        t.elapsed().as_secs_f64()
    );
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());

    let a = start(base.join("a"), "PIEFXIS_BENCH_DB_A").await?;
    let t = Instant::now();
    let report = admin(
        &a.admin_socket,
        "/api/import",
        json!({ "file": file.display().to_string() }),
    )
    .await?;
    let took = t.elapsed();
    print!("{}", report["text"].as_str().unwrap_or_default());
    println!(
        "IMPORT {n} accounts with plaintext passwords: {:.2} s wall, {:.0} accounts/s, {cores} cores",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    anyhow::ensure!(
        report["imported"]["accounts"] == json!(n),
        "not every account was imported: {report}"
    );

    // The derived keys are right: re-derive one from its password.
    let probe = n / 2;
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        let stored = a
            .storage
            .credentials(&format!("user{probe}"), "localhost", hash.name())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no {} credentials", hash.name()))?;
        let again = ScramCredentials::derive_with_salt(
            &format!("secret-{probe}"),
            hash,
            &stored.salt,
            stored.iterations,
        )?;
        anyhow::ensure!(
            again.stored_key == stored.stored_key && again.server_key == stored.server_key,
            "{} keys do not match the password",
            hash.name()
        );
    }

    let out = base.join("export");
    let t = Instant::now();
    admin(
        &a.admin_socket,
        "/api/export",
        json!({ "dir": out.display().to_string() }),
    )
    .await?;
    println!("EXPORT {n} accounts: {:.2} s", t.elapsed().as_secs_f64());

    let b = start(base.join("b"), "PIEFXIS_BENCH_DB_B").await?;
    let t = Instant::now();
    let report = admin(
        &b.admin_socket,
        "/api/import",
        json!({ "file": out.join("localhost.xml").display().to_string() }),
    )
    .await?;
    println!(
        "RE-IMPORT {n} accounts with SCRAM credentials: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    anyhow::ensure!(
        report["imported"]["accounts"] == json!(n),
        "re-import incomplete: {report}"
    );
    Ok(())
}
