//! Feature modules, one file per XEP (Prosody's `mod_*.lua`, ejabberd's
//! `mod_*.erl`), and the API they are written against.
//!
//! A module declares what it is once, as data ([`ModuleInfo`]): the XEPs it
//! implements, the IQ payloads it answers and who may send them, the disco
//! features it adds to the server and to accounts, and the stream features
//! it offers. `docs/XEPS.md`, `chorus.doap`, disco#info, the XEP-0115 hash
//! and the stream features are all derived from these declarations, so
//! nothing is advertised that no module declares.
//!
//! [`Modules`] is the list the server runs. It is the router's handler for
//! the local server itself ([`Modules::server`]): an IQ addressed to a
//! hosted domain, or on an account's behalf to its bare JID (RFC 6121
//! §8.5.2.1.3), is dispatched by payload, whatever its origin. Payloads no
//! module claims get `service-unavailable` (RFC 6120 §8.4); a request IQ
//! with no payload or two gets `bad-request` (§8.2.3); a handler that panics
//! is caught: the sender gets `internal-server-error`, the connection stays
//! up, and the panic is logged and counted.

mod avatar;
mod blocking;
mod carbons;
mod disco;
mod last;
mod mam;
mod offline;
mod ping;
mod private;
pub mod register;
mod roster;
mod time;
mod vcard;
mod version;

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{error_reply, ns, IqType, StanzaError, StanzaErrorCondition, StanzaKind};
use chorus_router::{HookState, Hooks, NoHooks, Outcome, Router, Service, Session, SessionTable};
use chorus_storage::Storage;
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

pub use disco::caps_ver;

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
pub struct HookSet(u32);

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
    /// How many hooks there are (bits in use).
    const COUNT: usize = 13;

    /// Both sets.
    pub const fn and(self, other: HookSet) -> HookSet {
        HookSet(self.0 | other.0)
    }

    pub const fn has(self, hook: HookSet) -> bool {
        self.0 & hook.0 == hook.0
    }

    /// The bit's index, for the per-hook lists.
    fn index(self) -> usize {
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
    /// The XEP-0115 verification string of the server's features.
    pub caps_ver: String,
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
    /// The handler answered itself, by routing its answer (with
    /// [`result_iq`]) behind stanzas that must reach the requester first
    /// (XEP-0313 results); nothing more to send.
    Delivered,
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

    /// Before any routing rule: `Some(outcome)` stops the stanza.
    fn filter<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
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

    /// Supervised actors the module runs, started under the `modules`
    /// node of the tree (ids unique across modules).
    fn children(&self, ctx: &ChildCtx) -> Vec<chorus_supervisor::ChildSpec> {
        let _ = ctx;
        Vec::new()
    }

    /// A resource was bound: the session exists.
    fn session_bound(&self, ctx: &SessionCtx<'_>) {
        let _ = ctx;
    }

    /// The session ended, however it ended.
    fn session_closed(&self, ctx: &SessionCtx<'_>) {
        let _ = ctx;
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

/// The registered modules.
pub struct Modules {
    modules: Vec<Box<dyn Module>>,
    /// For each hook, the modules that declare it, in order.
    by_hook: [Vec<usize>; HookSet::COUNT],
    /// Handler panics caught since start (a metric).
    panics: AtomicU64,
    /// Set by [`Modules::install`]; hooks do nothing before.
    services: OnceLock<Arc<Services>>,
}

impl Modules {
    /// Every module Chorus ships, with its options from `config`. Order
    /// matters where hooks chain: blocking filters before anything else
    /// sees a stanza.
    pub fn standard(config: &chorus_config::Config) -> Modules {
        Modules::with(Self::standard_list(config))
    }

    /// [`Modules::standard`] as a list, for a server that adds its own
    /// (the client stream's declarations).
    pub fn standard_list(config: &chorus_config::Config) -> Vec<Box<dyn Module>> {
        vec![
            Box::new(blocking::Blocking::default()),
            Box::new(ping::Ping::from_config(config)),
            Box::new(disco::Disco),
            Box::new(roster::Roster),
            Box::new(carbons::Carbons),
            Box::new(register::Register::new(
                register::RegisterPolicy::from_config(config),
            )),
            Box::new(version::Version),
            Box::new(time::Time),
            Box::new(last::Last::default()),
            Box::new(private::Private),
            Box::new(vcard::Vcard),
            Box::new(avatar::Avatar),
            Box::new(mam::Mam {
                options: mam::ArchiveOptions::from_config(config),
            }),
            Box::new(offline::Offline {
                quota: config.offline.quota,
            }),
        ]
    }

    pub fn with(modules: Vec<Box<dyn Module>>) -> Modules {
        let by_hook = std::array::from_fn(|bit| {
            let hook = HookSet(1 << bit);
            (0..modules.len())
                .filter(|&i| modules[i].info().hooks.has(hook))
                .collect()
        });
        Modules {
            modules,
            by_hook,
            panics: AtomicU64::new(0),
            services: OnceLock::new(),
        }
    }

    /// Every module's declaration, in registration order.
    pub fn infos(&self) -> Vec<&'static ModuleInfo> {
        self.modules.iter().map(|m| m.info()).collect()
    }

    /// Every feature the server advertises, sorted and deduplicated.
    pub fn features(&self) -> Vec<&'static str> {
        let mut f: Vec<&'static str> = self
            .modules
            .iter()
            .flat_map(|m| m.info().features.iter().copied())
            .collect();
        f.sort_unstable();
        f.dedup();
        f
    }

    /// Every feature accounts advertise, sorted and deduplicated.
    pub fn account_features(&self) -> Vec<&'static str> {
        let mut f: Vec<&'static str> = self
            .modules
            .iter()
            .flat_map(|m| m.info().account_features.iter().copied())
            .collect();
        f.sort_unstable();
        f.dedup();
        f
    }

    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    fn find(&self, payload: &Element) -> Option<(&dyn Module, Scope)> {
        self.modules.iter().find_map(|m| {
            m.info()
                .iqs
                .iter()
                .find(|s| payload.is(s.name, s.ns))
                .map(|s| (m.as_ref(), s.scope))
        })
    }

    /// Answers a request IQ for the server or an account. Returns the reply
    /// (already addressed), or None for IQs needing no answer (results and
    /// errors) and for handlers that answered themselves
    /// ([`IqReply::Delivered`]).
    pub async fn dispatch(&self, ctx: &IqCtx<'_>, iq: &Element) -> Option<Element> {
        if !IqType::of(iq).is_some_and(IqType::is_request) {
            return None;
        }
        let Some(payload) = iq.children().next() else {
            return error_reply(iq, &StanzaError::new(StanzaErrorCondition::BadRequest));
        };
        let Some((module, scope)) = self.find(payload) else {
            return error_reply(
                iq,
                &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
            );
        };
        if ctx.account.is_some() && !ctx.account_exists && !module.info().absent_accounts {
            // RFC 6121 §8.5.1: no such user.
            return error_reply(
                iq,
                &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
            );
        }
        if scope == Scope::LocalUser && ctx.user.is_none() {
            return error_reply(iq, &StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        // modules/ contract: a bug in one handler must not take the
        // connection, let alone the server, with it.
        let outcome = AssertUnwindSafe(module.handle(ctx, iq))
            .catch_unwind()
            .await;
        let reply = match outcome {
            Ok(r) => r,
            Err(panic) => {
                self.panics.fetch_add(1, Ordering::Relaxed);
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(module = module.info().name, panic = %msg, "module handler panicked");
                IqReply::Error(StanzaErrorCondition::InternalServerError)
            }
        };
        match reply {
            IqReply::Result(payload) => Some(result_iq(iq, payload)),
            IqReply::Error(cond) => error_reply(iq, &StanzaError::new(cond)),
            IqReply::Delivered => None,
        }
    }

    /// Makes the modules the router's handler for the local server itself
    /// and its hooks. Once per router.
    pub fn install(
        self: &Arc<Self>,
        router: &Router,
        services: Arc<Services>,
    ) -> Result<(), InstallError> {
        self.services
            .set(services.clone())
            .map_err(|_| InstallError::AlreadyInstalled)?;
        router
            .set_server(Arc::new(LocalServer {
                modules: self.clone(),
                services,
            }))
            .map_err(|_| InstallError::AlreadyInstalled)?;
        router
            .set_hooks(self.clone())
            .map_err(|_| InstallError::AlreadyInstalled)
    }

    fn session_ctx<'a>(
        &'a self,
        router: &'a Router,
        full: &'a FullJid,
        conn_id: u64,
    ) -> Option<SessionCtx<'a>> {
        Some(SessionCtx {
            full,
            conn_id,
            router,
            services: self.services.get()?,
        })
    }

    /// Every stream feature the modules offer on this stream, in module
    /// order.
    pub fn stream_features(&self, ctx: &StreamCtx<'_>) -> Vec<Element> {
        let mut out = Vec::new();
        for m in &self.modules {
            m.stream_features(ctx, &mut out);
        }
        out
    }

    /// The first module that takes a pre-authentication IQ answers it;
    /// `None` when no module does.
    pub async fn preauth_iq(&self, ctx: &PreauthCtx<'_>, iq: &Element) -> Option<Option<Element>> {
        for m in &self.modules {
            if let Some(f) = m.preauth_iq(ctx, iq) {
                return Some(f.await);
            }
        }
        None
    }

    /// Every module's supervised children.
    pub fn children(&self, ctx: &ChildCtx) -> Vec<chorus_supervisor::ChildSpec> {
        self.modules.iter().flat_map(|m| m.children(ctx)).collect()
    }

    /// Runs [`Module::user_sent`] of every module, in order.
    pub async fn user_sent(
        &self,
        router: &Router,
        full: &FullJid,
        conn_id: u64,
        stanza: &mut Element,
    ) {
        let Some(ctx) = self.session_ctx(router, full, conn_id) else {
            return;
        };
        for (_, m) in self.with_hook(HookSet::USER_SENT) {
            if let Some(f) = m.user_sent(&ctx, stanza) {
                f.await;
            }
        }
    }

    /// Runs [`Module::user_received`] of every module.
    pub fn user_received(&self, router: &Router, full: &FullJid, conn_id: u64, stanza: &Element) {
        if let Some(ctx) = self.session_ctx(router, full, conn_id) {
            for (_, m) in self.with_hook(HookSet::USER_RECEIVED) {
                m.user_received(&ctx, stanza);
            }
        }
    }

    /// Runs [`Module::session_bound`] of every module.
    pub fn session_bound(&self, router: &Router, full: &FullJid, conn_id: u64) {
        if let Some(ctx) = self.session_ctx(router, full, conn_id) {
            for (_, m) in self.with_hook(HookSet::SESSION_BOUND) {
                m.session_bound(&ctx);
            }
        }
    }

    /// Runs [`Module::session_closed`] of every module.
    pub fn session_closed(&self, router: &Router, full: &FullJid, conn_id: u64) {
        if let Some(ctx) = self.session_ctx(router, full, conn_id) {
            for (_, m) in self.with_hook(HookSet::SESSION_CLOSED) {
                m.session_closed(&ctx);
            }
        }
    }

    /// Runs [`Module::available`] of every module, in order.
    pub async fn available(
        &self,
        router: &Router,
        full: &FullJid,
        conn_id: u64,
        link: &mut dyn ClientLink,
    ) {
        let Some(ctx) = self.session_ctx(router, full, conn_id) else {
            return;
        };
        for (_, m) in self.with_hook(HookSet::AVAILABLE) {
            if let Some(f) = m.available(&ctx, link) {
                f.await;
            }
        }
    }

    /// The modules that declared `hook`, in order.
    fn with_hook(&self, hook: HookSet) -> impl Iterator<Item = (usize, &dyn Module)> {
        self.by_hook[hook.index()]
            .iter()
            .map(|&i| (i, self.modules[i].as_ref()))
    }

    fn hook_ctx<'a>(&'a self, router: &'a Router) -> Option<HookCtx<'a>> {
        Some(HookCtx {
            router,
            services: self.services.get()?,
        })
    }
}

/// Why [`Modules::install`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the router already has modules installed")]
    AlreadyInstalled,
}

/// The modules are the router's hooks: each hook runs the modules that
/// implement it, in order.
impl Hooks for Modules {
    fn filter<'a>(
        &'a self,
        router: &'a Router,
        kind: StanzaKind,
        stanza: &'a Element,
    ) -> BoxFuture<'a, Option<Outcome>> {
        Box::pin(async move {
            let ctx = self.hook_ctx(router)?;
            for (_, m) in self.with_hook(HookSet::FILTER) {
                if let Some(f) = m.filter(&ctx, kind, stanza) {
                    if let Some(outcome) = f.await {
                        return Some(outcome);
                    }
                }
            }
            None
        })
    }

    fn presence_blocked<'a>(
        &'a self,
        router: &'a Router,
        a: &'a Jid,
        b: &'a Jid,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Some(ctx) = self.hook_ctx(router) else {
                return false;
            };
            for (_, m) in self.with_hook(HookSet::PRESENCE_BLOCKED) {
                if let Some(f) = m.presence_blocked(&ctx, a, b) {
                    if f.await {
                        return true;
                    }
                }
            }
            false
        })
    }

    fn message_inbound<'a>(
        &'a self,
        router: &'a Router,
        to: &'a Jid,
        stanza: &'a mut Element,
    ) -> BoxFuture<'a, HookState> {
        Box::pin(async move {
            let mut state: HookState = Vec::new();
            let Some(ctx) = self.hook_ctx(router) else {
                return state;
            };
            for (i, m) in self.with_hook(HookSet::MESSAGE_INBOUND) {
                if let Some(f) = m.message_inbound(&ctx, to, stanza) {
                    if let Some(s) = f.await {
                        state.push(Box::new((i, s)));
                    }
                }
            }
            state
        })
    }

    fn message_routed<'a>(
        &'a self,
        router: &'a Router,
        state: HookState,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(ctx) = self.hook_ctx(router) else {
                return;
            };
            for s in state {
                let Ok(pair) = s.downcast::<(usize, Box<dyn Any + Send>)>() else {
                    continue;
                };
                let (i, s) = *pair;
                if let Some(m) = self.modules.get(i) {
                    m.message_routed(&ctx, s, outcome).await;
                }
            }
        })
    }

    fn message_delivered(
        &self,
        router: &Router,
        owner: &BareJid,
        delivered_to: &[FullJid],
        stanza: &Element,
    ) {
        if let Some(ctx) = self.hook_ctx(router) {
            for (_, m) in self.with_hook(HookSet::MESSAGE_DELIVERED) {
                m.message_delivered(&ctx, owner, delivered_to, stanza);
            }
        }
    }

    fn offline_message<'a>(
        &'a self,
        router: &'a Router,
        owner: &'a BareJid,
        stanza: &'a Element,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Some(ctx) = self.hook_ctx(router) {
                for (_, m) in self.with_hook(HookSet::OFFLINE_MESSAGE) {
                    if let Some(f) = m.offline_message(&ctx, owner, stanza) {
                        return f.await;
                    }
                }
            }
            // Nobody keeps messages: as for a recipient that is not there.
            NoHooks.offline_message(router, owner, stanza).await
        })
    }

    fn roster_changed(&self, router: &Router, user: &BareJid, version: u64, item: &Element) {
        if let Some(ctx) = self.hook_ctx(router) {
            for (_, m) in self.with_hook(HookSet::ROSTER_CHANGED) {
                m.roster_changed(&ctx, user, version, item);
            }
        }
    }

    fn unacknowledged_kept(&self, router: &Router, session: &Session, stanza: &Element) -> bool {
        self.hook_ctx(router).is_some_and(|ctx| {
            self.with_hook(HookSet::UNACKNOWLEDGED_KEPT)
                .any(|(_, m)| m.unacknowledged_kept(&ctx, session, stanza))
        })
    }

    fn account_removed<'a>(&'a self, router: &'a Router, user: &'a BareJid) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(ctx) = self.hook_ctx(router) else {
                return;
            };
            for (_, m) in self.with_hook(HookSet::ACCOUNT_REMOVED) {
                if let Some(f) = m.account_removed(&ctx, user) {
                    f.await;
                }
            }
        })
    }
}

/// What is addressed to a hosted domain itself, or on an account's behalf
/// to its bare JID: IQs go to the modules; a message to the server is not
/// processed (`service-unavailable`, RFC 6121 §8.5.2.1.1 for accounts and
/// RFC 6120 §8.4 for the server); presence to it is ignored.
struct LocalServer {
    modules: Arc<Modules>,
    services: Arc<Services>,
}

impl Service for LocalServer {
    fn name(&self) -> &str {
        "server"
    }

    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match StanzaKind::of(&stanza) {
                Some(StanzaKind::Iq) => {
                    let Some(sender) = stanza.attr("from").and_then(|f| f.parse::<Jid>().ok())
                    else {
                        return Outcome::Dropped;
                    };
                    let Some(to) = stanza.attr("to").and_then(|t| t.parse::<Jid>().ok()) else {
                        return Outcome::Dropped;
                    };
                    let user = FullJid::try_from(sender.clone())
                        .ok()
                        .filter(|f| router.is_local(f.domain()));
                    let account = to.node().is_some().then(|| to.bare());
                    let account_exists = match &account {
                        Some(a) => {
                            !router.sessions.resources(a).is_empty()
                                || router.account_exists(a).await
                        }
                        None => true,
                    };
                    let ctx = IqCtx {
                        sender: &sender,
                        user: user.as_ref(),
                        domain: to.domain(),
                        account: account.as_ref(),
                        account_exists,
                        router,
                        services: &self.services,
                    };
                    match self.modules.dispatch(&ctx, &stanza).await {
                        Some(reply) => Outcome::Reply(reply),
                        None => Outcome::Delivered,
                    }
                }
                Some(StanzaKind::Message) => match error_reply(
                    &stanza,
                    &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
                ) {
                    Some(e) => Outcome::Reply(e),
                    None => Outcome::Dropped,
                },
                _ => Outcome::Dropped,
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Panicky;

    static PANICKY: ModuleInfo = ModuleInfo {
        name: "panicky",
        file: file!(),
        iqs: &[IqSpec::anyone("boom", "urn:example:boom")],
        ..ModuleInfo::EMPTY
    };

    impl Module for Panicky {
        fn info(&self) -> &'static ModuleInfo {
            &PANICKY
        }
        fn handle<'a>(&'a self, _: &'a IqCtx<'a>, _: &'a Element) -> BoxFuture<'a, IqReply> {
            Box::pin(async { panic!("module bug") })
        }
    }

    async fn services() -> (Router, Services) {
        let storage = Arc::new(Storage::connect("sqlite::memory:").await.unwrap());
        let sessions: Arc<SessionTable> = Arc::default();
        let router = Router::new(sessions.clone(), vec!["localhost".into()], storage.clone());
        let services = Services {
            storage,
            sessions,
            started: Instant::now(),
            software: ("Chorus", "test"),
            features: Vec::new(),
            account_features: Vec::new(),
            sasl_iterations: 4096,
            caps_ver: String::new(),
        };
        (router, services)
    }

    fn iq(payload: Element) -> Element {
        Element::new("iq", ns::JABBER_CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "1")
            .with_attr("to", "localhost")
            .with_attr("from", "a@localhost/r")
            .with_child(payload)
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_server_error_and_is_counted() {
        let (router, s) = services().await;
        let m = Modules::with(vec![Box::new(Panicky)]);
        let from: FullJid = "a@localhost/r".parse().unwrap();
        let sender = from.as_jid().clone();
        let ctx = IqCtx {
            sender: &sender,
            user: Some(&from),
            domain: "localhost",
            account: None,
            account_exists: true,
            router: &router,
            services: &s,
        };
        let r = m
            .dispatch(&ctx, &iq(Element::new("boom", "urn:example:boom")))
            .await
            .unwrap();
        assert_eq!(r.attr("type"), Some("error"));
        let err = r.get_child("error", ns::JABBER_CLIENT).unwrap();
        assert!(err
            .get_child("internal-server-error", ns::STANZAS)
            .is_some());
        assert_eq!(m.panics(), 1);
    }

    #[tokio::test]
    async fn unknown_payload_is_service_unavailable() {
        let (router, s) = services().await;
        let m = Modules::standard(&chorus_config::Config::default());
        let from: FullJid = "a@localhost/r".parse().unwrap();
        let sender = from.as_jid().clone();
        let ctx = IqCtx {
            sender: &sender,
            user: Some(&from),
            domain: "localhost",
            account: None,
            account_exists: true,
            router: &router,
            services: &s,
        };
        let r = m
            .dispatch(&ctx, &iq(Element::new("query", "urn:example:nope")))
            .await
            .unwrap();
        let err = r.get_child("error", ns::JABBER_CLIENT).unwrap();
        assert!(err.get_child("service-unavailable", ns::STANZAS).is_some());
        assert_eq!(
            (r.attr("to"), r.attr("from")),
            (Some("a@localhost/r"), Some("localhost"))
        );
    }

    #[tokio::test]
    async fn account_payloads_from_a_non_local_sender_are_forbidden() {
        let (router, s) = services().await;
        let m = Modules::standard(&chorus_config::Config::default());
        let sender: Jid = "eve@elsewhere.example/x".parse().unwrap();
        let ctx = IqCtx {
            sender: &sender,
            user: None,
            domain: "localhost",
            account: None,
            account_exists: true,
            router: &router,
            services: &s,
        };
        let r = m
            .dispatch(&ctx, &iq(Element::new("query", ns::ROSTER)))
            .await
            .unwrap();
        let err = r.get_child("error", ns::JABBER_CLIENT).unwrap();
        assert!(err.get_child("forbidden", ns::STANZAS).is_some());
    }

    #[test]
    fn every_declared_iq_payload_has_one_module() {
        let m = Modules::standard(&chorus_config::Config::default());
        let mut seen = std::collections::HashSet::new();
        for info in m.infos() {
            for iq in info.iqs {
                assert!(
                    seen.insert((iq.name, iq.ns)),
                    "{} {} declared twice",
                    iq.name,
                    iq.ns
                );
            }
        }
    }
}
