//! The module API: what a feature module declares ([`ModuleInfo`]), what
//! its handlers and hooks get (the contexts), and the [`Module`] trait it
//! implements. `registry.rs` runs the modules.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{ns, StanzaError, StanzaErrorCondition, StanzaKind};
use chorus_router::{Outcome, Router, Session, SessionTable};
use chorus_storage::Storage;
use chorus_xml::Element;
use futures_util::future::BoxFuture;

/// How completely a module implements a XEP (the DOAP `xmpp:status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    Complete,
    /// Some of it: the note says what is left out.
    Partial,
}

impl Support {
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Complete => "complete",
            Support::Partial => "partial",
        }
    }
}

/// One XEP a module implements.
#[derive(Debug)]
pub struct Xep {
    pub number: u16,
    pub name: &'static str,
    /// The version of the XEP the code follows.
    pub version: &'static str,
    pub support: Support,
    /// What is left out, or how it is used; empty when there is nothing to say.
    pub note: &'static str,
}

/// Who may send an IQ payload to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Any entity (ping, disco, version, time).
    Anyone,
    /// Only a local account's own session: the payload manages the
    /// account's data (roster, archive, blocking...). Others get
    /// `forbidden`.
    LocalUser,
}

/// An IQ payload a module answers.
#[derive(Debug)]
pub struct IqSpec {
    pub name: &'static str,
    pub ns: &'static str,
    pub scope: Scope,
}

impl IqSpec {
    pub const fn anyone(name: &'static str, ns: &'static str) -> IqSpec {
        IqSpec {
            name,
            ns,
            scope: Scope::Anyone,
        }
    }

    pub const fn local(name: &'static str, ns: &'static str) -> IqSpec {
        IqSpec {
            name,
            ns,
            scope: Scope::LocalUser,
        }
    }
}

/// A stream feature a module may offer, as (element name, namespace).
#[derive(Debug)]
pub struct StreamFeature {
    pub name: &'static str,
    pub ns: &'static str,
}

/// The hooks a module implements, declared with it: each hook runs only
/// the modules that declare it, so a stanza does not pay a call per module
/// for hooks nobody uses. A hook implemented but not declared never runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookSet(pub(crate) u32);

impl HookSet {
    pub const NONE: HookSet = HookSet(0);
    pub const FILTER: HookSet = HookSet(1);
    pub const PRESENCE_BLOCKED: HookSet = HookSet(1 << 1);
    /// `message_inbound`, and `message_routed` for what it returned.
    pub const MESSAGE_INBOUND: HookSet = HookSet(1 << 2);
    pub const MESSAGE_DELIVERED: HookSet = HookSet(1 << 3);
    pub const OFFLINE_MESSAGE: HookSet = HookSet(1 << 4);
    pub const ROSTER_CHANGED: HookSet = HookSet(1 << 5);
    pub const ACCOUNT_REMOVED: HookSet = HookSet(1 << 6);
    pub const UNACKNOWLEDGED_KEPT: HookSet = HookSet(1 << 7);
    pub const USER_SENT: HookSet = HookSet(1 << 8);
    pub const USER_RECEIVED: HookSet = HookSet(1 << 9);
    pub const SESSION_BOUND: HookSet = HookSet(1 << 10);
    pub const SESSION_CLOSED: HookSet = HookSet(1 << 11);
    pub const AVAILABLE: HookSet = HookSet(1 << 12);
    /// `detached_message`: a message reached a session whose connection is
    /// gone while it waits for resumption (XEP-0198).
    pub const DETACHED_MESSAGE: HookSet = HookSet(1 << 13);
    /// How many hooks there are (bits in use).
    pub(crate) const COUNT: usize = 14;

    /// Both sets.
    pub const fn and(self, other: HookSet) -> HookSet {
        HookSet(self.0 | other.0)
    }

    pub const fn has(self, hook: HookSet) -> bool {
        self.0 & hook.0 == hook.0
    }

    /// The bit's index, for the per-hook lists.
    pub(crate) fn index(self) -> usize {
        self.0.trailing_zeros() as usize
    }
}

/// What a module is, declared once.
#[derive(Debug)]
pub struct ModuleInfo {
    /// For logs and the tree: `ping`, `mam`.
    pub name: &'static str,
    /// The source file, for `docs/XEPS.md` (`file!()`).
    pub file: &'static str,
    pub xeps: &'static [Xep],
    pub iqs: &'static [IqSpec],
    /// Features of the server's disco#info (XEP-0030).
    pub features: &'static [&'static str],
    /// Features of disco#info to an account's bare JID: what the server
    /// does on every account's behalf (XEP-0313 archives).
    pub account_features: &'static [&'static str],
    /// Stream features the module offers (the elements come from
    /// [`Module::stream_features`]; this is what may appear).
    pub stream_features: &'static [StreamFeature],
    /// Its IQs to an account's bare JID reach it even when the account
    /// does not exist, and it answers that case itself (XEP-0030's empty
    /// disco#items); every other module's get `service-unavailable` there
    /// (RFC 6121 §8.5.1).
    pub absent_accounts: bool,
    /// The hooks it implements (see [`HookSet`]).
    pub hooks: HookSet,
}

impl ModuleInfo {
    /// An empty declaration, for `..ModuleInfo::EMPTY`.
    pub const EMPTY: ModuleInfo = ModuleInfo {
        name: "",
        file: "",
        xeps: &[],
        iqs: &[],
        features: &[],
        account_features: &[],
        stream_features: &[],
        absent_accounts: false,
        hooks: HookSet::NONE,
    };
}

/// Who asked, and where the IQ went.
pub struct IqCtx<'a> {
    /// The sender, as the router received it.
    pub sender: &'a Jid,
    /// The sender when it is a session of a local account: always set for
    /// [`Scope::LocalUser`] payloads.
    pub user: Option<&'a FullJid>,
    /// The server domain the IQ was addressed to (or the account's domain).
    pub domain: &'a str,
    /// Set when the IQ is addressed to an account's bare JID rather than to
    /// the server.
    pub account: Option<&'a BareJid>,
    /// That account exists (always true without one).
    pub account_exists: bool,
    pub router: &'a Router,
    pub services: &'a Services,
}

impl IqCtx<'_> {
    /// The local session that asked, for payloads about its own account;
    /// `forbidden` for any other sender (the dispatcher already refuses
    /// them for [`Scope::LocalUser`] payloads).
    pub fn me(&self) -> Result<&FullJid, StanzaErrorCondition> {
        self.user.ok_or(StanzaErrorCondition::Forbidden)
    }

    /// Whether the sender may see `account`'s presence: the account itself,
    /// or a contact it shares its presence with (`from` or `both`, RFC 6121
    /// §3). What XEP-0030 §8 and XEP-0012 make a condition for answering
    /// about an account. False on a storage error (fail closed).
    pub async fn may_see_presence_of(&self, account: &BareJid) -> bool {
        use chorus_storage::{RosterStore, Subscription};
        let sender = self.sender.bare();
        if sender == *account {
            return true;
        }
        let Some(node) = account.node() else {
            return false;
        };
        match self
            .services
            .storage
            .roster_item(node, account.domain(), sender.as_str())
            .await
        {
            Ok(Some(item)) => matches!(item.subscription, Subscription::From | Subscription::Both),
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %e, "roster read failed; presence authorization refused");
                false
            }
        }
    }

    /// The `result` to `iq`, queued behind what was routed to the
    /// requesting session before it (roster pushes before the roster set's
    /// result, archive results before the `<fin/>`), rather than written
    /// ahead of them.
    pub fn answer_in_order(&self, iq: &Element, payload: Option<Element>) -> IqReply {
        match self.user.and_then(|me| self.services.sessions.get(me)) {
            Some(session) => {
                session.sink.deliver(result_iq(iq, payload));
                IqReply::Delivered
            }
            None => IqReply::Result(payload),
        }
    }

    /// The IQ is addressed to the sender's own bare JID (a client's IQ
    /// without 'to' is).
    pub fn is_own_account(&self) -> bool {
        match (self.user, self.account) {
            (Some(u), Some(a)) => u.bare() == *a,
            _ => false,
        }
    }
}

/// What modules may use besides the router: storage, the session table,
/// server facts.
pub struct Services {
    pub storage: Arc<Storage>,
    pub sessions: Arc<SessionTable>,
    pub started: Instant,
    /// Software name and version for XEP-0092.
    pub software: (&'static str, &'static str),
    /// Every module feature ([`Modules::features`]), for disco#info.
    pub features: Vec<&'static str>,
    /// Every module feature of accounts ([`Modules::account_features`]),
    /// for disco#info to a bare JID.
    pub account_features: Vec<&'static str>,
    /// PBKDF2 iterations for credentials derived from a new password.
    pub sasl_iterations: u32,
    /// The XEP-0115 verification string of the server's features and
    /// forms.
    pub caps_ver: String,
    /// XEP-0128 extended information in the server's disco#info
    /// ([`Modules::server_info_forms`]): XEP-0157 contact addresses.
    pub server_forms: Vec<Element>,
}

/// A client stream at the point where it offers its features (RFC 6120
/// §4.3.2).
pub struct StreamCtx<'a> {
    /// The hosted domain the client addressed.
    pub domain: &'a str,
    /// TLS is up.
    pub tls: bool,
    /// Negotiation may go on past TLS: TLS is up, or it is not required.
    pub secure: bool,
    pub authenticated: bool,
    pub services: &'a Services,
}

/// A stream before authentication, for the IQs a module answers there
/// (XEP-0077 account creation).
pub struct PreauthCtx<'a> {
    /// The hosted domain the client addressed.
    pub domain: &'a str,
    /// The client's address, for per-address limits.
    pub peer: Option<std::net::IpAddr>,
    /// The connection, for logs.
    pub conn_id: u64,
    pub services: &'a Services,
}

/// What a module's supervised children start with.
#[derive(Clone)]
pub struct ChildCtx {
    pub router: Arc<Router>,
    pub services: Arc<Services>,
}

/// A handler's answer.
pub enum IqReply {
    /// `type='result'` with an optional payload.
    Result(Option<Element>),
    Error(StanzaErrorCondition),
    /// An error with more than its condition: an application-specific
    /// child (XEP-0060's `pubsub#errors`), a type or a text.
    Failed(Box<StanzaError>),
    /// The handler answered itself, by routing its answer (with
    /// [`result_iq`]) behind stanzas that must reach the requester first
    /// (XEP-0313 results); nothing more to send.
    Delivered,
}

impl IqReply {
    /// [`IqReply::Failed`] with `error`.
    pub fn failed(error: StanzaError) -> IqReply {
        IqReply::Failed(Box::new(error))
    }

    /// The answer to `iq`; None when the handler delivered it itself.
    pub fn into_stanza(self, iq: &Element) -> Option<Element> {
        match self {
            IqReply::Result(payload) => Some(result_iq(iq, payload)),
            IqReply::Error(cond) => chorus_proto::error_reply(iq, &StanzaError::new(cond)),
            IqReply::Failed(err) => chorus_proto::error_reply(iq, &err),
            IqReply::Delivered => None,
        }
    }
}

/// The `type='result'` answer to `iq`, addressed back to its sender.
pub fn result_iq(iq: &Element, payload: Option<Element>) -> Element {
    let mut r = Element::new("iq", ns::JABBER_CLIENT).with_attr("type", "result");
    if let Some(id) = iq.attr("id") {
        r.set_attr("id", id);
    }
    if let Some(to) = iq.attr("to") {
        r.set_attr("from", to);
    }
    if let Some(from) = iq.attr("from") {
        r.set_attr("to", from);
    }
    if let Some(p) = payload {
        r.push(p);
    }
    r
}

/// What a routing hook gets: the router it runs in and the services.
/// Two references: hooks may take it by value and keep it in their future.
#[derive(Clone, Copy)]
pub struct HookCtx<'a> {
    pub router: &'a Router,
    pub services: &'a Services,
}

/// What a session hook gets: whose session it is, and the rest. Session
/// hooks run in the session's own c2s actor.
pub struct SessionCtx<'a> {
    pub full: &'a FullJid,
    /// The connection the session is on (`conn-<id>` in the tree).
    pub conn_id: u64,
    pub router: &'a Router,
    pub services: &'a Services,
}

/// The way to a session's own client, for hooks that write to it. c2s
/// implements it, so what goes through it is counted and kept like any
/// stanza (XEP-0198).
pub trait ClientLink: Send {
    /// Queues a stanza for the client.
    fn send(&mut self, stanza: &Element);
    /// Resolves once everything queued so far has been written to the
    /// connection, or is kept until the client acknowledges it (XEP-0198):
    /// true then; false when it will never be written.
    fn flushed(&mut self) -> BoxFuture<'_, bool>;
}

/// One feature module: its declaration, its IQ handler, and the hooks it
/// implements. Every hook has a default that does nothing, so a module
/// implements only what its feature needs; an async hook that does nothing
/// returns `None` rather than a future, which costs nothing per stanza.
/// Hooks run in the task of the stanza's sender, in module order.
pub trait Module: Send + Sync {
    /// What the module is: declared once, as data.
    fn info(&self) -> &'static ModuleInfo;

    /// Handles one request IQ (`get` or `set`) with one of the payloads of
    /// [`ModuleInfo::iqs`], its scope already checked.
    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        let _ = (ctx, iq);
        Box::pin(async { IqReply::Error(StanzaErrorCondition::ServiceUnavailable) })
    }

    /// A disco#info or disco#items query to the server itself for `node`
    /// (XEP-0030 §3.2, §4.2): `Some` answers it, for a node this module
    /// owns (XEP-0050's command list and commands). The disco module
    /// answers the server's other nodes; no module knows another's.
    fn disco_node<'a>(
        &'a self,
        ctx: &'a IqCtx<'a>,
        query: &'a Element,
        node: &'a str,
    ) -> Option<BoxFuture<'a, IqReply>> {
        let _ = (ctx, query, node);
        None
    }

    /// Before any routing rule: `Some(outcome)` stops the stanza. Runs for
    /// every stanza, so its context comes by value: the future the module
    /// returns is the router's, with no wrapper around it.
    fn filter<'a>(
        &'a self,
        ctx: HookCtx<'a>,
        kind: StanzaKind,
        stanza: &'a Element,
    ) -> Option<BoxFuture<'a, Option<Outcome>>> {
        let _ = (ctx, kind, stanza);
        None
    }

    /// Whether presence must not flow between `a` and `b`.
    fn presence_blocked<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        a: &'a Jid,
        b: &'a Jid,
    ) -> Option<BoxFuture<'a, bool>> {
        let _ = (ctx, a, b);
        None
    }

    /// A message about to be delivered to the local account `to`; may
    /// change it. What it returns comes back in
    /// [`Module::message_routed`].
    fn message_inbound<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        to: &'a Jid,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, Option<Box<dyn Any + Send>>>> {
        let _ = (ctx, to, stanza);
        None
    }

    /// What became of a message this module saw in
    /// [`Module::message_inbound`].
    fn message_routed<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        state: Box<dyn Any + Send>,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, ()> {
        let _ = (ctx, state, outcome);
        Box::pin(async {})
    }

    /// A message reached `delivered_to`, resources of `owner`.
    fn message_delivered(
        &self,
        ctx: &HookCtx<'_>,
        owner: &BareJid,
        delivered_to: &[FullJid],
        stanza: &Element,
    ) {
        let _ = (ctx, owner, delivered_to, stanza);
    }

    /// No resource of the local account `owner` can take the message: the
    /// first module that answers decides what becomes of it.
    fn offline_message<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        owner: &'a BareJid,
        stanza: &'a Element,
    ) -> Option<BoxFuture<'a, Outcome>> {
        let _ = (ctx, owner, stanza);
        None
    }

    /// An item of `user`'s roster changed (`subscription='remove'` when
    /// it was removed).
    fn roster_changed(&self, ctx: &HookCtx<'_>, user: &BareJid, version: u64, item: &Element) {
        let _ = (ctx, user, version, item);
    }

    /// The account `user` was removed (by its user or an operator): drop
    /// what the module keeps for it beyond what storage deletes with it.
    fn account_removed<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        user: &'a BareJid,
    ) -> Option<BoxFuture<'a, ()>> {
        let _ = (ctx, user);
        None
    }

    /// A stanza `session`'s client never acknowledged (XEP-0198), as the
    /// session ends: true when this module keeps it where the client will
    /// find it, so it is not delivered again.
    fn unacknowledged_kept(&self, ctx: &HookCtx<'_>, session: &Session, stanza: &Element) -> bool {
        let _ = (ctx, session, stanza);
        false
    }

    /// A stanza the session's client sent, `from` stamped, before the
    /// server acts on it; the hook may change it.
    fn user_sent<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, ()>> {
        let _ = (ctx, stanza);
        None
    }

    /// A stanza routed to the session, as it is written to its client.
    fn user_received(&self, ctx: &SessionCtx<'_>, stanza: &Element) {
        let _ = (ctx, stanza);
    }

    /// The stream features this module offers on a client stream now
    /// (each must be declared in [`ModuleInfo::stream_features`]).
    fn stream_features(&self, ctx: &StreamCtx<'_>, out: &mut Vec<Element>) {
        let _ = (ctx, out);
    }

    /// An IQ on a stream before authentication: `Some` takes it, and the
    /// future gives the answer (if any) to write to the client.
    fn preauth_iq<'a>(
        &'a self,
        ctx: &'a PreauthCtx<'a>,
        iq: &'a Element,
    ) -> Option<BoxFuture<'a, Option<Element>>> {
        let _ = (ctx, iq);
        None
    }

    /// The server is about to stop (after its streams closed): finish what
    /// must not be lost (the archive writes what is queued).
    fn stopping<'a>(&'a self) -> Option<BoxFuture<'a, ()>> {
        None
    }

    /// Services the module hosts on domains of their own
    /// (`pubsub.<domain>`), added to the route table at start; a domain
    /// that is taken fails the start.
    fn hosted(&self, ctx: &ChildCtx) -> Vec<(String, Arc<dyn chorus_router::Service>)> {
        let _ = ctx;
        Vec::new()
    }

    /// Supervised actors the module runs, started under the `modules`
    /// node of the tree (ids unique across modules).
    fn children(&self, ctx: &ChildCtx) -> Vec<chorus_supervisor::ChildSpec> {
        let _ = ctx;
        Vec::new()
    }

    /// The rooms of a multi-user chat module, for operators
    /// (`chorusctl muc`); only the muc module has any.
    fn muc_rooms(&self) -> Option<crate::MucRooms> {
        None
    }

    /// A resource was bound: the session exists.
    fn session_bound(&self, ctx: &SessionCtx<'_>) {
        let _ = ctx;
    }

    /// The session ended, however it ended.
    fn session_closed(&self, ctx: &SessionCtx<'_>) {
        let _ = ctx;
    }

    /// A message was routed to the session while it is detached (XEP-0198:
    /// its connection is gone and it waits for the client to resume); the
    /// session keeps it for the client. Runs in the session's c2s actor,
    /// so it must not wait: a module that has I/O to do spawns it.
    fn detached_message(&self, ctx: &SessionCtx<'_>, stanza: &Element) {
        let _ = (ctx, stanza);
    }

    /// XEP-0128 extended information the module adds to the server's
    /// disco#info: data forms of type `result`, each with a FORM_TYPE.
    /// Asked once, at start; they enter the server's XEP-0115 hash.
    fn server_info_forms(&self, out: &mut Vec<Element>) {
        let _ = out;
    }

    /// The session can take what was kept for its account: at its initial
    /// presence with a non-negative priority (RFC 6121 §8.5.2.2.1), and
    /// again when a message was kept while it was becoming available.
    fn available<'a>(
        &'a self,
        ctx: &'a SessionCtx<'a>,
        link: &'a mut dyn ClientLink,
    ) -> Option<BoxFuture<'a, ()>> {
        let _ = (ctx, link);
        None
    }
}
