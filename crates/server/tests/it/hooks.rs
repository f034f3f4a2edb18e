//! The feature-module API over real sockets: a throwaway module added to a
//! running server sees each hook fire at its point (filter, stanzas sent
//! and received, message delivered, roster changed, session bound and
//! closed, account removed), and its supervised child runs under
//! `root/modules`, where a kill restarts it.
#![allow(clippy::unwrap_used)]

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_modules::{ChildCtx, HookCtx, HookSet, Module, ModuleInfo, SessionCtx};
use chorus_proto::StanzaKind;
use chorus_router::Outcome;
use chorus_supervisor::{ChildSpec, Restart, StartCtx};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::common::client::XmppClient;
use crate::common::*;

type Log = Arc<Mutex<Vec<String>>>;

/// Writes one line per hook call.
struct Recorder {
    log: Log,
}

static RECORDER: ModuleInfo = ModuleInfo {
    name: "recorder",
    file: file!(),
    hooks: HookSet::FILTER
        .and(HookSet::MESSAGE_INBOUND)
        .and(HookSet::MESSAGE_DELIVERED)
        .and(HookSet::ROSTER_CHANGED)
        .and(HookSet::ACCOUNT_REMOVED)
        .and(HookSet::USER_SENT)
        .and(HookSet::USER_RECEIVED)
        .and(HookSet::SESSION_BOUND)
        .and(HookSet::SESSION_CLOSED),
    ..ModuleInfo::EMPTY
};

impl Recorder {
    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

impl Module for Recorder {
    fn info(&self) -> &'static ModuleInfo {
        &RECORDER
    }

    fn filter<'a>(
        &'a self,
        _: HookCtx<'a>,
        kind: StanzaKind,
        stanza: &'a Element,
    ) -> Option<BoxFuture<'a, Option<Outcome>>> {
        if stanza.attr("id") == Some("m1") {
            self.note(format!("filter {}", kind.as_str()));
        }
        None
    }

    fn message_inbound<'a>(
        &'a self,
        _: &'a HookCtx<'a>,
        to: &'a Jid,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, Option<Box<dyn Any + Send>>>> {
        if stanza.attr("id") != Some("m1") {
            return None;
        }
        self.note(format!("inbound {to}"));
        Some(Box::pin(async {
            Some(Box::new("token") as Box<dyn Any + Send>)
        }))
    }

    fn message_routed<'a>(
        &'a self,
        _: &'a HookCtx<'a>,
        state: Box<dyn Any + Send>,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, ()> {
        let token = state.downcast::<&str>().map(|t| *t).unwrap_or("lost");
        self.note(format!("routed {token} {outcome:?}"));
        Box::pin(async {})
    }

    fn message_delivered(&self, _: &HookCtx<'_>, owner: &BareJid, to: &[FullJid], s: &Element) {
        if s.attr("id") == Some("m1") {
            self.note(format!("delivered {owner} {}", to.len()));
        }
    }

    fn roster_changed(&self, _: &HookCtx<'_>, user: &BareJid, _: u64, item: &Element) {
        self.note(format!(
            "roster {user} {}",
            item.attr("jid").unwrap_or_default()
        ));
    }

    fn account_removed<'a>(
        &'a self,
        _: &'a HookCtx<'a>,
        user: &'a BareJid,
    ) -> Option<BoxFuture<'a, ()>> {
        self.note(format!("removed {user}"));
        None
    }

    fn user_sent<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, ()>> {
        if stanza.attr("id") == Some("m1") {
            self.note(format!("sent {} {}", ctx.full, stanza.name()));
            // A hook may change the stanza before the server acts on it.
            stanza.push(Element::new("seen", "urn:example:recorder"));
        }
        None
    }

    fn user_received(&self, ctx: &SessionCtx<'_>, stanza: &Element) {
        if stanza.attr("id") == Some("m1") {
            self.note(format!("received {} {}", ctx.full, stanza.name()));
        }
    }

    fn session_bound(&self, ctx: &SessionCtx<'_>) {
        self.note(format!("bound {}", ctx.full));
    }

    fn session_closed(&self, ctx: &SessionCtx<'_>) {
        self.note(format!("closed {}", ctx.full));
    }

    fn children(&self, _: &ChildCtx) -> Vec<ChildSpec> {
        vec![ChildSpec::worker(
            "recorder",
            Restart::Permanent,
            |sctx: StartCtx| async move {
                let (a, _) = Actor::spawn_linked(None, Idle, (), sctx.supervisor).await?;
                Ok(a.get_cell())
            },
        )]
    }
}

/// An actor that only exists, to be seen in the tree.
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn lines(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

async fn wait_for(log: &Log, line: &str) {
    let found = wait_until(Duration::from_secs(10), || {
        log.lock().unwrap().iter().any(|l| l == line)
    })
    .await;
    assert!(found, "no `{line}` in {:?}", lines(log));
}

#[tokio::test]
async fn every_hook_fires_where_it_should_and_module_children_are_supervised() {
    let log: Log = Arc::default();
    let server = chorus_server::Server::start_with(
        test_config("hooks"),
        None,
        vec![Box::new(Recorder { log: log.clone() })],
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(10), || server.first_addr().is_some()).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    wait_for(&log, "bound alice@localhost/a").await;
    wait_for(&log, "bound bob@localhost/b").await;

    alice
        .send("<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
        .await;
    let m = bob.expect("message").await;
    assert!(
        m.get_child("seen", "urn:example:recorder").is_some(),
        "user_sent changed the stanza: {}",
        m.to_xml()
    );
    wait_for(&log, "received bob@localhost/b message").await;
    wait_for(&log, "routed token Delivered").await;
    // In the sender's actor, in this order; bob's actor takes it from there
    // (at its own pace, so "received" is checked apart).
    let sender_side: Vec<String> = lines(&log)
        .into_iter()
        .filter(|l| !l.starts_with("bound") && !l.starts_with("received"))
        .collect();
    assert_eq!(
        sender_side,
        vec![
            "sent alice@localhost/a message",
            "filter message",
            "inbound bob@localhost",
            "delivered bob@localhost 1",
            "routed token Delivered",
        ]
    );

    alice
        .send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>")
        .await;
    wait_for(&log, "roster alice@localhost carol@localhost").await;

    // XEP-0077 §3.2: the account goes, and with it the session.
    alice
        .send("<iq type='set' id='u1'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await;
    wait_for(&log, "removed alice@localhost").await;
    wait_for(&log, "closed alice@localhost/a").await;

    // The module's child is in the tree, and a kill restarts it.
    let path = "root/modules/recorder";
    assert!(server.registry.lookup(path).is_some(), "no {path}");
    let before = server.registry.lookup(path).unwrap().get_id();
    server.registry.lookup(path).unwrap().kill();
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .lookup(path)
            .is_some_and(|c| c.get_id() != before))
        .await,
        "{path} was not restarted"
    );
    assert!(server.registry.lookup("root/modules/keepalive").is_some());
    server.stop();
}
