//! `chorus`: the XMPP server daemon.
//!
//! Exit status: 0 after a requested shutdown (SIGTERM, SIGINT), 1 when the
//! supervision tree gave up (restart intensity exceeded up to the root: a
//! supervisor such as systemd should restart the process), 2 for a bad
//! configuration or start failure.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chorus_config::Config;
use chorus_server::Server;
use chorus_supervisor::RootExit;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(name = "chorus", version, about = "Chorus XMPP server")]
struct Args {
    /// Configuration file (TOML). Without it, the embedded defaults apply.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log format: human or json.
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHORUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `chorusctl log level` swaps the filter at run time.
    macro_rules! install {
        ($builder:expr) => {{
            let b = $builder;
            let handle = b.reload_handle();
            chorus_admin::set_log_reloader(Box::new(move |spec: &str| {
                let f = tracing_subscriber::EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
                handle.reload(f).map_err(|e| e.to_string())
            }));
            b.init();
        }};
    }
    if format == "json" {
        install!(builder.json().with_filter_reloading());
    } else {
        install!(builder.with_filter_reloading());
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, warnings) =
        Config::load_with_warnings(args.config.as_deref()).context("invalid configuration")?;
    // A deprecated name works, and says so once at each start.
    for warning in &warnings {
        tracing::warn!(%warning, "configuration");
    }
    let config_grace = config.server.shutdown_grace_secs;
    let listeners = config.listeners.len();
    let mut server = Server::start_from(config, args.config.clone())
        .await
        .context("cannot start")?;
    let exit = server.take_exit();
    // READY once every listener is bound (Type=notify in the unit).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.bound.len() < listeners && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    chorus_server::notify::notify("READY=1");
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    // SIGHUP rereads the configuration, like `chorusctl config reload`.
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let reloader = server.reloader.clone();
    let reloads = tokio::spawn(async move {
        while hup.recv().await.is_some() {
            chorus_server::notify::notify("RELOADING=1");
            match reloader.reload().await {
                Ok(summary) => tracing::info!(%summary, "SIGHUP: configuration reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: configuration not reloaded; the old one stays")
                }
            }
            chorus_server::notify::notify("READY=1");
        }
    });
    let grace = std::time::Duration::from_secs(config_grace);
    let server = std::sync::Arc::new(server);
    let drainer = server.clone();
    let stopper = tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        chorus_server::notify::notify("STOPPING=1");
        drainer.shutdown(grace).await;
    });
    let exit = match exit {
        Some(h) => h.wait().await,
        None => RootExit::Normal,
    };
    stopper.abort();
    reloads.abort();
    Ok(match exit {
        RootExit::Normal => ExitCode::SUCCESS,
        RootExit::Escalated(reason) => {
            tracing::error!(%reason, "supervision tree gave up; exiting non-zero");
            ExitCode::from(1)
        }
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(&args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chorus: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chorus: {e:#}");
            ExitCode::from(2)
        }
    }
}
