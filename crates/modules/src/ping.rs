//! XEP-0199: XMPP Ping (version 2.0.1).
//!
//! - The server answers pings addressed to itself and, on an account's
//!   behalf, to a bare JID.
//! - Keepalive (§4.1): the `keepalive` actor, this module's supervised
//!   child under `modules` in the tree, sweeps the session table. A client
//!   silent for the ping interval gets a ping; one still silent after the
//!   ping timeout has lost its connection, and its session hears so
//!   (`SessionSink::connection_lost`): it ends with `connection-timeout`,
//!   or detaches if it is resumable (XEP-0198). Any stanza from the client
//!   counts as an answer (c2s touches the session on every element), so a
//!   busy client is never pinged. One sweeper for every session, as
//!   ejabberd's `mod_ping` is one process: a session costs two timestamps,
//!   not a timer.

use std::sync::Arc;
use std::time::Duration;

use chorus_proto::ns;
use chorus_router::SessionTable;
use chorus_supervisor::{ChildSpec, Restart, StartCtx};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::{ChildCtx, IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

pub struct Ping {
    /// Ping a client silent this long...
    pub interval: Duration,
    /// ...and give it this long to answer.
    pub timeout: Duration,
}

impl Ping {
    pub fn from_config(config: &chorus_config::Config) -> Ping {
        Ping {
            interval: config.c2s.ping_interval(),
            timeout: config.c2s.ping_timeout(),
        }
    }
}

static INFO: ModuleInfo = ModuleInfo {
    name: "ping",
    file: file!(),
    xeps: &[Xep {
        number: 199,
        name: "XMPP Ping",
        version: "2.0.1",
        support: Support::Complete,
        note: "",
    }],
    iqs: &[IqSpec::anyone("ping", ns::PING)],
    features: &[ns::PING],
    ..ModuleInfo::EMPTY
};

impl Module for Ping {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn children(&self, ctx: &ChildCtx) -> Vec<ChildSpec> {
        let args = KeepaliveArgs {
            sessions: ctx.services.sessions.clone(),
            interval: self.interval,
            timeout: self.timeout,
        };
        vec![ChildSpec::worker(
            "keepalive",
            Restart::Permanent,
            move |sctx: StartCtx| {
                let args = args.clone();
                async move {
                    let (a, _) =
                        Actor::spawn_linked(None, Keepalive, args, sctx.supervisor).await?;
                    Ok(a.get_cell())
                }
            },
        )]
    }

    fn handle<'a>(&'a self, _ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            if iq.attr("type") == Some("get") {
                IqReply::Result(None)
            } else {
                IqReply::Error(chorus_proto::StanzaErrorCondition::BadRequest)
            }
        })
    }
}

/// The keepalive sweeper (see the module docs).
pub struct Keepalive;

#[derive(Clone)]
pub struct KeepaliveArgs {
    sessions: Arc<SessionTable>,
    interval: Duration,
    timeout: Duration,
}

pub struct KeepaliveState {
    args: KeepaliveArgs,
    /// The sweep timer; its task ends with the state.
    timer: ractor::concurrency::JoinHandle<()>,
}

impl Drop for KeepaliveState {
    fn drop(&mut self) {
        self.timer.abort();
    }
}

pub enum KeepaliveMsg {
    Sweep,
}

impl KeepaliveArgs {
    /// Pings the silent, and gives up on those that never answered.
    fn sweep(&self) {
        for s in self.sessions.sessions() {
            if s.detached() {
                continue;
            }
            match s.pinged_ago() {
                Some(ago) if ago >= self.timeout => {
                    s.set_pinged(false);
                    tracing::info!(jid = %s.full, conn = s.conn_id, "no answer to the keepalive ping");
                    s.sink.connection_lost();
                }
                Some(_) => {}
                None if s.silent_for() >= self.interval => {
                    let ping = Element::new("iq", ns::JABBER_CLIENT)
                        .with_attr("type", "get")
                        .with_attr("id", format!("keepalive-{}", s.conn_id))
                        .with_attr("from", s.full.domain())
                        .with_attr("to", s.full.to_string())
                        .with_child(Element::new("ping", ns::PING));
                    s.set_pinged(true);
                    s.sink.deliver(ping);
                }
                None => {}
            }
        }
    }
}

impl Actor for Keepalive {
    type Msg = KeepaliveMsg;
    type State = KeepaliveState;
    type Arguments = KeepaliveArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: KeepaliveArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Half the shorter period: a late client is noticed within half a
        // period of its deadline.
        let tick = (args.interval.min(args.timeout) / 2).max(Duration::from_millis(100));
        let timer = myself.send_interval(tick, || KeepaliveMsg::Sweep);
        Ok(KeepaliveState { args, timer })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: KeepaliveMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            KeepaliveMsg::Sweep => state.args.sweep(),
        }
        Ok(())
    }
}
