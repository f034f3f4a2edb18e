//! chorus-bench: a load generator that speaks real XMPP, and a side-by-side
//! comparison of Chorus, ejabberd, Prosody and a raw TCP relay.
//!
//! Loopback only; every run is bounded in count and time. See
//! docs/BENCHMARKS.md for how to read the figures.

mod compare;
mod relay;
mod scenarios;
mod stats;
mod xmpp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use scenarios::Endpoint;
use xmpp::{Mech, Security, Target};

#[derive(Parser)]
#[command(name = "chorus-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct TargetArgs {
    /// The server's c2s address (loopback only).
    #[arg(long, default_value = "127.0.0.1:5222")]
    addr: SocketAddr,
    /// The XMPP domain the accounts live on.
    #[arg(long, default_value = "localhost")]
    domain: String,
    #[arg(long, value_enum, default_value = "plain")]
    security: Security,
    #[arg(long, value_enum, default_value = "plain")]
    mech: Mech,
    /// Accounts are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "bench")]
    prefix: String,
    #[arg(long, default_value = "bench-password")]
    password: String,
    /// Register the accounts in band (XEP-0077) first; existing ones are fine.
    #[arg(long)]
    register: bool,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Talk to the raw TCP relay at `addr` instead of an XMPP server.
    #[arg(long)]
    relay: bool,
}

impl TargetArgs {
    fn target(&self) -> Result<Target> {
        Ok(Target {
            addr: self.addr,
            domain: self.domain.clone(),
            security: self.security,
            mech: self.mech,
            password: self.password.clone(),
            prefix: self.prefix.clone(),
            scram_cache: Arc::new(Mutex::new(HashMap::new())),
            tls: xmpp::tls_connector()?,
        })
    }

    async fn endpoint(&self, accounts: usize) -> Result<Endpoint> {
        if !self.addr.ip().is_loopback() {
            bail!(
                "chorus-bench only targets loopback addresses, not {}",
                self.addr
            );
        }
        if self.relay {
            return Ok(Endpoint::Relay(self.addr));
        }
        let t = self.target()?;
        if self.register {
            compare::register_all(&t, accounts, self.concurrency).await?;
        }
        Ok(Endpoint::Xmpp(t))
    }
}

#[derive(Subcommand)]
enum Command {
    /// N sessions at a rate, held, then closed: logins/s, login latency,
    /// server memory per session.
    Connect {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Logins started per second (0: as fast as --concurrency allows).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Seconds the sessions are held before the server's RSS is read.
        #[arg(long, default_value_t = 5)]
        hold: u64,
        /// The server's pid, for its RSS from /proc.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Pairs exchanging chat messages: delivered msgs/s, end-to-end
    /// latency, losses.
    Messages {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 500)]
        pairs: usize,
        /// Total messages per second (0: closed loop, as fast as --window allows).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Messages in flight per direction in the closed loop.
        #[arg(long, default_value_t = 4)]
        window: u64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Padding in each body, bytes.
        #[arg(long, default_value_t = 32)]
        body: usize,
    },
    /// Users with rosters of R contacts change presence: fan-out rate.
    Presence {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 500)]
        users: usize,
        #[arg(long, default_value_t = 20)]
        roster: usize,
    },
    /// Users with rosters of R contacts who asked for a PEP node
    /// (`+notify` in their caps) each publish items: notifications
    /// delivered per second, publish-to-notification latency.
    Pep {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 200)]
        users: usize,
        #[arg(long, default_value_t = 20)]
        roster: usize,
        /// Items each user publishes.
        #[arg(long, default_value_t = 5)]
        items: usize,
    },
    /// Occupants of one group chat room (XEP-0045) and a few senders:
    /// messages delivered per second, send-to-delivery latency.
    Muc {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 100)]
        occupants: usize,
        /// Occupants that send.
        #[arg(long, default_value_t = 20)]
        senders: usize,
        /// Messages each sender sends.
        #[arg(long, default_value_t = 5)]
        messages: usize,
    },
    /// The raw TCP relay (reference ceiling for `messages --relay`).
    Relay {
        #[arg(long, default_value = "127.0.0.1:5299")]
        listen: SocketAddr,
    },
    /// Runs the scenarios against Chorus, ejabberd, Prosody (when
    /// installed) and the relay, one after another, and writes the table
    /// into docs/BENCHMARKS.md.
    Compare(compare::CompareArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Connect {
            target,
            sessions,
            rate,
            hold,
            pid,
        } => {
            let ep = target.endpoint(sessions).await?;
            let r = scenarios::connect(
                &ep,
                sessions,
                rate,
                target.concurrency,
                Duration::from_secs(hold),
                &|| pid.and_then(stats::rss_kib),
            )
            .await;
            stats::report(&r);
        }
        Command::Messages {
            target,
            pairs,
            rate,
            window,
            secs,
            body,
        } => {
            let ep = target.endpoint(pairs * 2).await?;
            let r = scenarios::messages(
                &ep,
                pairs,
                rate,
                window.max(1),
                Duration::from_secs(secs.min(3600)),
                target.concurrency,
                body,
            )
            .await?;
            stats::report(&r);
        }
        Command::Presence {
            target,
            users,
            roster,
        } => {
            if target.relay {
                bail!("the relay has no presence");
            }
            let ep = target.endpoint(users).await?;
            let Endpoint::Xmpp(t) = ep else {
                bail!("presence needs an XMPP server");
            };
            let r = scenarios::presence(&t, users, roster, target.concurrency).await?;
            stats::report(&r);
        }
        Command::Pep {
            target,
            users,
            roster,
            items,
        } => {
            if target.relay {
                bail!("the relay has no PEP");
            }
            let ep = target.endpoint(users).await?;
            let Endpoint::Xmpp(t) = ep else {
                bail!("pep needs an XMPP server");
            };
            let r = scenarios::pep(&t, users, roster, items, target.concurrency).await?;
            stats::report(&r);
        }
        Command::Muc {
            target,
            occupants,
            senders,
            messages,
        } => {
            if target.relay {
                bail!("the relay has no rooms");
            }
            let ep = target.endpoint(occupants).await?;
            let Endpoint::Xmpp(t) = ep else {
                bail!("muc needs an XMPP server");
            };
            let r = scenarios::muc(&t, occupants, senders, messages, target.concurrency).await?;
            stats::report(&r);
        }
        Command::Relay { listen } => relay::serve(listen).await?,
        Command::Compare(args) => compare::run(args).await?,
    }
    Ok(())
}
