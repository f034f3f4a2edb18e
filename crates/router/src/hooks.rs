//! The seam between routing and the feature modules (ejabberd's
//! `ejabberd_hooks`, Prosody's `module:hook`): the points where routing
//! lets features act, without the router knowing any of them.
//!
//! The router holds one [`Hooks`] (the server installs the feature modules'
//! dispatcher with [`Router::set_hooks`](crate::Router::set_hooks)); until
//! then, and in unit tests, [`NoHooks`] lets everything through and keeps
//! nothing. Each point is named for when it runs:
//! - [`Hooks::filter`]: first thing in `route`, before any delivery rule
//!   (XEP-0191 block lists);
//! - [`Hooks::presence_blocked`]: for presence the router sends on its own
//!   account (probes answered, subscription side effects), which does not
//!   all pass through `filter`;
//! - [`Hooks::message_inbound`] and [`Hooks::message_routed`]: around the
//!   delivery of a message to a local account (XEP-0313 archiving and its
//!   stanza-id);
//! - [`Hooks::message_delivered`]: a message reached some of an account's
//!   resources (XEP-0280 carbons for the others);
//! - [`Hooks::offline_message`]: a message no resource can take
//!   (XEP-0160 offline storage);
//! - [`Hooks::roster_changed`]: an item of an account's roster changed;
//! - [`Hooks::account_removed`]: an account was deleted (by its user or an
//!   operator);
//! - [`Hooks::unacknowledged_kept`]: a stanza a session's client never
//!   acknowledged (XEP-0198) is safe elsewhere, and is not delivered again.

use std::any::Any;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::StanzaKind;
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::route::{Outcome, Router};
use crate::table::Session;

/// What hooks hand from [`Hooks::message_inbound`] to
/// [`Hooks::message_routed`] for the same message: each hook implementation
/// says whose state is whose (the `usize`), the router only carries it.
pub type HookState = Vec<(usize, Box<dyn Any + Send>)>;

/// The routing hooks; see the module docs for when each runs.
pub trait Hooks: Send + Sync + 'static {
    /// `Some` stops the stanza with that outcome.
    fn filter<'a>(
        &'a self,
        router: &'a Router,
        kind: StanzaKind,
        stanza: &'a Element,
    ) -> BoxFuture<'a, Option<Outcome>>;

    /// Whether presence must not flow between `a` and `b`, either way.
    fn presence_blocked<'a>(
        &'a self,
        router: &'a Router,
        a: &'a Jid,
        b: &'a Jid,
    ) -> BoxFuture<'a, bool>;

    /// A message about to be delivered to the local account `to`; may
    /// change it (a stanza-id).
    fn message_inbound<'a>(
        &'a self,
        router: &'a Router,
        to: &'a Jid,
        stanza: &'a mut Element,
    ) -> BoxFuture<'a, HookState>;

    /// What became of that message.
    fn message_routed<'a>(
        &'a self,
        router: &'a Router,
        state: HookState,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, ()>;

    /// The message reached `delivered_to`, resources of `owner`.
    fn message_delivered(
        &self,
        router: &Router,
        owner: &BareJid,
        delivered_to: &[FullJid],
        stanza: &Element,
    );

    /// No resource of `owner` (a local account) can take the message.
    fn offline_message<'a>(
        &'a self,
        router: &'a Router,
        owner: &'a BareJid,
        stanza: &'a Element,
    ) -> BoxFuture<'a, Outcome>;

    /// `item` (a roster `<item/>`, `subscription='remove'` when removed)
    /// changed in `user`'s roster, now at `version`.
    fn roster_changed(&self, router: &Router, user: &BareJid, version: u64, item: &Element);

    /// The local account `user` was removed (storage has deleted it).
    fn account_removed<'a>(&'a self, router: &'a Router, user: &'a BareJid) -> BoxFuture<'a, ()>;

    /// A stanza `session` sent its client, which never acknowledged it
    /// (XEP-0198), as the session ends: true when it is safe elsewhere and
    /// must not be delivered again (the client reads it from its archive).
    fn unacknowledged_kept(&self, router: &Router, session: &Session, stanza: &Element) -> bool;
}

/// No features: nothing is filtered, archived, copied or stored.
pub struct NoHooks;

impl Hooks for NoHooks {
    fn filter<'a>(
        &'a self,
        _: &'a Router,
        _: StanzaKind,
        _: &'a Element,
    ) -> BoxFuture<'a, Option<Outcome>> {
        Box::pin(async { None })
    }

    fn presence_blocked<'a>(
        &'a self,
        _: &'a Router,
        _: &'a Jid,
        _: &'a Jid,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }

    fn message_inbound<'a>(
        &'a self,
        _: &'a Router,
        _: &'a Jid,
        _: &'a mut Element,
    ) -> BoxFuture<'a, HookState> {
        Box::pin(async { Vec::new() })
    }

    fn message_routed<'a>(
        &'a self,
        _: &'a Router,
        _: HookState,
        _: &'a Outcome,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn message_delivered(&self, _: &Router, _: &BareJid, _: &[FullJid], _: &Element) {}

    fn offline_message<'a>(
        &'a self,
        _: &'a Router,
        _: &'a BareJid,
        stanza: &'a Element,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { crate::route::unavailable(stanza) })
    }

    fn roster_changed(&self, _: &Router, _: &BareJid, _: u64, _: &Element) {}

    fn account_removed<'a>(&'a self, _: &'a Router, _: &'a BareJid) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn unacknowledged_kept(&self, _: &Router, _: &Session, _: &Element) -> bool {
        false
    }
}
