//! XEP-0357: Push Notifications (version 0.4.1), the user's server side.
//!
//! A mobile client that cannot stay connected registers its app server
//! (`<enable jid='…' node='…'/>`, §5), with a publish-options form that
//! usually carries the app's secret; the registration is stored per
//! account, keyed by (app server, node), so it holds while the account is
//! offline and across restarts. `<disable/>` (§6) removes one node, or
//! every node of an app server.
//!
//! When a message the user would miss arrives, the server publishes a
//! notification to each registration (§7): an IQ set from the user's bare
//! JID to the app server, a pubsub publish of `<notification/>` with the
//! `urn:xmpp:push:summary` form and the stored publish-options. "Would
//! miss" means (Prosody's mod_cloud_notify draws the same line):
//! - a chat or normal message with a body, or an encrypted payload (OMEMO,
//!   XEP-0380, OpenPGP), whose body is at most a fallback text;
//! - that went to offline storage (seen through `message_routed`, whose
//!   outcome says so), or reached a session that is detached (XEP-0198:
//!   its connection is gone and it waits for resumption; the c2s actor
//!   runs the `detached_message` hook).
//!
//! Group chat messages, headlines, chat states and carbon copies are not
//! notified; nor is a message kept offline when a detached session
//! finally ends (it was notified when it reached that session).
//!
//! The app server belongs to the app's developer, so by default the
//! summary says only that a message came (`message-count`): no sender and
//! no text unless `push.include_sender` / `push.include_body` say so, and
//! never the text of an encrypted message. Each registration has a token
//! bucket (`push.burst`, `push.rate_per_minute`): a flood wakes the device
//! once, and what is dropped is counted in the log.
//!
//! A message costs no storage read, and no task, when nothing would be
//! sent: the module remembers, per account, whether storage held any
//! registration at its last read (forgotten when the account enables,
//! disables, loses a registration to an app server's `cancel`, or is
//! removed), and when it held some, their buckets: if every one is empty,
//! the message is dropped before the read.
//!
//! What `<enable/>` stores is bounded (see [`MAX_NODE`], [`MAX_KEY`],
//! [`MAX_OPTIONS`]): past a bound the answer is `not-acceptable`, the
//! condition RFC 6120 §8.3.3.9 gives a request that "does not meet criteria
//! defined by the recipient or server" (RFC 6121 §2.3.3 uses it the same
//! way for a roster item's over-long name); XEP-0357 names no error for it.
//!
//! The app server answers each notification. An error of type `cancel`
//! means the registration is dead (the app was uninstalled, the token
//! revoked: §9 leaves this to the server), so it is removed; `wait` and a
//! timeout keep it. The answer is matched to its notification by the
//! router (`Router::request`: a random id, and the answer must come from
//! the app server).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chorus_jid::{BareJid, Jid};
use chorus_proto::{ns, ErrorType, StanzaError, StanzaErrorCondition};
use chorus_router::{IqError, Outcome};
use chorus_storage::{PushRegistration, PushStore, StorageError};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::bucket::Bucket;
use crate::forms::{form_head, form_type};
use crate::{
    ChildCtx, HookCtx, HookSet, IqCtx, IqReply, IqSpec, Module, ModuleInfo, SessionCtx, Support,
    Xep,
};

/// Payloads whose presence makes a message encrypted: OMEMO (legacy and
/// XEP-0384 0.8), XEP-0380's marker, XEP-0027 and XEP-0373 OpenPGP.
const ENCRYPTED: &[(&str, &str)] = &[
    ("encrypted", "eu.siacs.conversations.axolotl"),
    ("encrypted", "urn:xmpp:omemo:2"),
    ("encryption", "urn:xmpp:eme:0"),
    ("x", "jabber:x:encrypted"),
    ("openpgp", "urn:xmpp:openpgp:0"),
];

/// Accounts remembered before a sweep forgets the idle ones (an idle
/// bucket is full again, as a new one is; an account known to have no
/// registration is read again when next needed). A sweep goes over them all
/// at once, and the next comes only when as many more were added: the cost
/// per message stays constant.
const ACCOUNTS_KEPT: usize = 4096;

/// The longest `node` accepted, in bytes: XEP-0357 sets no bound, and app
/// servers use short tokens. The node is part of the stored key.
pub const MAX_NODE: usize = 1024;
/// The longest app server JID and node together, in bytes: with the
/// account they make the registration's key, which PostgreSQL keeps in a
/// B-tree index whose entries cannot exceed 2704 bytes. A JID alone may be
/// up to 3071 bytes (RFC 7622 §3.1: three parts of at most 1023), so the
/// JID parser's bound is not enough.
pub const MAX_KEY: usize = 2048;
/// The longest publish-options form accepted, serialized, in bytes: it is
/// stored and sent back with every notification.
pub const MAX_OPTIONS: usize = 4096;

static INFO: ModuleInfo = ModuleInfo {
    name: "push",
    file: file!(),
    xeps: &[Xep {
        number: 357,
        name: "Push Notifications",
        version: "0.4.1",
        support: Support::Complete,
        note: "Chat and normal messages with a body or an encrypted payload, kept offline or reaching a detached (XEP-0198) session; no body or sender unless configured, never an encrypted message's text; per-registration throttle; a registration is removed when its app server answers an error of type cancel. Group chat messages are not notified.",
    }],
    iqs: &[
        IqSpec::local("enable", ns::PUSH),
        IqSpec::local("disable", ns::PUSH),
    ],
    // §5: advertised on the account's bare JID.
    account_features: &[ns::PUSH],
    hooks: HookSet::MESSAGE_INBOUND
        .and(HookSet::DETACHED_MESSAGE)
        .and(HookSet::ACCOUNT_REMOVED),
    ..ModuleInfo::EMPTY
};

/// What a notification says about its message: only what the
/// configuration lets the app server see.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Summary {
    /// `last-message-sender`, when `include_sender`.
    sender: Option<String>,
    /// `last-message-body`, when `include_body` and the message is not
    /// encrypted.
    body: Option<String>,
}

/// One registration's throttle.
struct Throttle {
    bucket: Bucket,
    used: Instant,
    /// Notifications dropped since the bucket last let one through.
    dropped: u64,
}

impl Throttle {
    fn new(burst: u32) -> Throttle {
        Throttle {
            bucket: Bucket::full(burst),
            used: Instant::now(),
            dropped: 0,
        }
    }

    /// Whether a token is there to take, without taking it.
    fn ready(&self, burst: u32, refill: Duration) -> bool {
        let mut bucket = self.bucket;
        bucket.take(burst, refill)
    }

    /// Takes a token; false (and counted) when there is none.
    fn take(&mut self, owner: &BareJid, service: &str, burst: u32, refill: Duration) -> bool {
        self.used = Instant::now();
        if self.bucket.take(burst, refill) {
            if self.dropped > 0 {
                tracing::info!(account = %owner, service, dropped = self.dropped, "push notifications were throttled");
                self.dropped = 0;
            }
            true
        } else {
            self.drop_one(owner, service);
            false
        }
    }

    /// Counts a notification the bucket refused.
    fn drop_one(&mut self, owner: &BareJid, service: &str) {
        self.used = Instant::now();
        if self.dropped == 0 {
            tracing::info!(account = %owner, service, "push notifications throttled; dropping until the bucket refills");
        }
        self.dropped += 1;
    }
}

/// What the module remembers of one account.
#[derive(Default)]
struct Account {
    /// What storage held at the last read, if nothing changed since: None
    /// until read and after a change; `Some(false)`: no registration, so a
    /// message is neither read for nor notified; `Some(true)`: some, each
    /// with its throttle in `throttles`.
    registrations: Option<bool>,
    /// By (app server, node).
    throttles: HashMap<(String, String), Throttle>,
}

/// The accounts remembered, under one lock.
struct Accounts {
    by_jid: HashMap<BareJid, Account>,
    /// Counts the changes to any account's registrations: a read that began
    /// before a change does not record what it found as current.
    epoch: u64,
    /// The number of accounts at which the next one added sweeps.
    sweep_at: usize,
}

impl Accounts {
    /// Forgets, in one pass, the accounts whose buckets are all full again
    /// (and those with none), once there are `sweep_at`; the next sweep
    /// waits until as many again were added.
    fn make_room(&mut self, full_after: Duration) {
        if self.by_jid.len() < self.sweep_at {
            return;
        }
        self.by_jid
            .retain(|_, a| a.throttles.values().any(|t| t.used.elapsed() < full_after));
        self.sweep_at = (self.by_jid.len() * 2).max(ACCOUNTS_KEPT);
    }
}

/// What the module and its tasks share.
struct Shared {
    include_body: bool,
    include_sender: bool,
    max_registrations: u32,
    burst: u32,
    refill: Duration,
    timeout: Duration,
    accounts: Mutex<Accounts>,
    /// The router and services, from `children` at start: notifications
    /// are sent from tasks of their own, which need owned handles.
    ctx: OnceLock<ChildCtx>,
}

pub struct Push {
    shared: Arc<Shared>,
}

impl Push {
    pub fn from_config(config: &chorus_config::Config) -> Push {
        let p = &config.push;
        Push {
            shared: Arc::new(Shared {
                include_body: p.include_body,
                include_sender: p.include_sender,
                max_registrations: p.max_registrations_per_account,
                burst: p.burst,
                refill: p.refill(),
                timeout: p.answer_timeout(),
                accounts: Mutex::new(Accounts {
                    by_jid: HashMap::new(),
                    epoch: 0,
                    sweep_at: ACCOUNTS_KEPT,
                }),
                ctx: OnceLock::new(),
            }),
        }
    }
}

/// Whether `stanza` is a message worth waking a device for, and what the
/// notification may say about it (see the module docs).
fn summary(stanza: &Element, include_body: bool, include_sender: bool) -> Option<Summary> {
    if stanza.name() != "message" || !matches!(stanza.attr("type"), None | Some("chat" | "normal"))
    {
        return None;
    }
    let encrypted = ENCRYPTED
        .iter()
        .any(|(name, ns)| stanza.get_child(name, ns).is_some());
    let body = stanza
        .get_child("body", ns::JABBER_CLIENT)
        .map(Element::text)
        .filter(|b| !b.trim().is_empty());
    if body.is_none() && !encrypted {
        return None;
    }
    let sender = stanza
        .attr("from")
        .and_then(|f| f.parse::<Jid>().ok())
        .map(|j| j.bare().to_string());
    Some(Summary {
        sender: sender.filter(|_| include_sender),
        // An encrypted message's body is a fallback ("I sent you an OMEMO
        // encrypted message"): it tells the app server nothing true.
        body: body.filter(|_| include_body && !encrypted),
    })
}

/// The §7 publish for one registration.
fn notification(owner: &BareJid, reg: &PushRegistration, summary: &Summary) -> Element {
    let field = |var: &str, value: &str| {
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", var)
            .with_child(Element::new("value", ns::DATA_FORMS).with_text(value))
    };
    // Always one: the XEP leaves open what to count, and a count of what
    // waits would tell the app server how busy the user is.
    let mut form = form_head("form", ns::PUSH_SUMMARY).with_child(field("message-count", "1"));
    if let Some(sender) = &summary.sender {
        form.push(field("last-message-sender", sender));
    }
    if let Some(body) = &summary.body {
        form.push(field("last-message-body", body));
    }
    let mut publish = Element::new("publish", ns::PUBSUB).with_child(
        Element::new("item", ns::PUBSUB)
            .with_child(Element::new("notification", ns::PUSH).with_child(form)),
    );
    if !reg.node.is_empty() {
        publish.set_attr("node", reg.node.as_str());
    }
    let mut pubsub = Element::new("pubsub", ns::PUBSUB).with_child(publish);
    if !reg.options.is_empty() {
        match Element::from_xml(&reg.options) {
            Ok(options) => {
                pubsub.push(Element::new("publish-options", ns::PUBSUB).with_child(options))
            }
            // Stored by us, so this is corruption: notify without it.
            Err(e) => {
                tracing::error!(account = %owner, error = %e, "unreadable push publish-options")
            }
        }
    }
    Element::new("iq", ns::JABBER_CLIENT)
        .with_attr("type", "set")
        .with_attr("from", owner.as_str())
        .with_attr("to", reg.service.as_str())
        .with_child(pubsub)
}

/// What the app server's answer says about the registration.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// Dead: remove it (the condition, for the log).
    Remove(StanzaErrorCondition),
}

fn verdict(answer: &Element) -> Verdict {
    if answer.attr("type") != Some("error") {
        return Verdict::Keep;
    }
    let Some(error) = answer
        .get_child("error", ns::JABBER_CLIENT)
        .and_then(StanzaError::parse)
    else {
        return Verdict::Keep;
    };
    match (error.kind, error.condition) {
        // Our own server could not reach the app server's (no
        // server-to-server route, for now): not the app server's verdict on
        // the registration.
        (
            _,
            StanzaErrorCondition::RemoteServerNotFound | StanzaErrorCondition::RemoteServerTimeout,
        ) => Verdict::Keep,
        (ErrorType::Cancel, condition) => Verdict::Remove(condition),
        _ => Verdict::Keep,
    }
}

impl Shared {
    fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a message to `owner` is worth a read of its registrations:
    /// the epoch the read starts at, or None when nothing would be sent
    /// (no registration, or every bucket empty: the drop is counted).
    fn gate(&self, owner: &BareJid) -> Option<u64> {
        let mut accounts = self.accounts();
        let epoch = accounts.epoch;
        let Some(account) = accounts.by_jid.get_mut(owner) else {
            return Some(epoch);
        };
        match account.registrations {
            None => Some(epoch),
            Some(false) => None,
            Some(true) => {
                if account.throttles.is_empty()
                    || account
                        .throttles
                        .values()
                        .any(|t| t.ready(self.burst, self.refill))
                {
                    return Some(epoch);
                }
                for ((service, _), t) in account.throttles.iter_mut() {
                    t.drop_one(owner, service);
                }
                None
            }
        }
    }

    /// Records what a read begun at `epoch` found (unless a change came
    /// since), and takes a token from each registration's bucket: the ones
    /// to notify.
    fn admit(
        &self,
        owner: &BareJid,
        epoch: u64,
        registrations: Vec<PushRegistration>,
    ) -> Vec<PushRegistration> {
        let mut accounts = self.accounts();
        let current = accounts.epoch == epoch;
        if !accounts.by_jid.contains_key(owner) {
            if registrations.is_empty() && !current {
                return registrations;
            }
            accounts.make_room(self.refill * self.burst);
        }
        let account = accounts.by_jid.entry(owner.clone()).or_default();
        if current {
            account.registrations = Some(!registrations.is_empty());
            // The buckets of registrations gone since go with them.
            account.throttles.retain(|(service, node), _| {
                registrations
                    .iter()
                    .any(|r| r.service == *service && r.node == *node)
            });
        }
        registrations
            .into_iter()
            .filter(|reg| {
                account
                    .throttles
                    .entry((reg.service.clone(), reg.node.clone()))
                    .or_insert_with(|| Throttle::new(self.burst))
                    .take(owner, &reg.service, self.burst, self.refill)
            })
            .collect()
    }

    /// `owner`'s registrations changed in storage: read them again.
    fn changed(&self, owner: &BareJid) {
        let mut accounts = self.accounts();
        accounts.epoch += 1;
        if let Some(account) = accounts.by_jid.get_mut(owner) {
            account.registrations = None;
        }
    }

    /// `owner` was removed, and its registrations with it.
    fn removed(&self, owner: &BareJid) {
        let mut accounts = self.accounts();
        accounts.epoch += 1;
        accounts.by_jid.remove(owner);
    }

    /// Notifies every registration of `owner`, in a task of its own; no
    /// task when nothing would be sent.
    fn spawn_notify(self: &Arc<Self>, owner: BareJid, summary: Summary) {
        let Some(ctx) = self.ctx.get().cloned() else {
            return;
        };
        let Some(epoch) = self.gate(&owner) else {
            return;
        };
        let shared = self.clone();
        tokio::spawn(async move { shared.notify(&ctx, owner, summary, epoch).await });
    }

    async fn notify(self: Arc<Self>, ctx: &ChildCtx, owner: BareJid, summary: Summary, epoch: u64) {
        let Some(node) = owner.node() else {
            return;
        };
        let storage = &ctx.services.storage;
        let registrations = match storage.push_registrations(node, owner.domain()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(account = %owner, error = %e, "cannot read push registrations");
                return;
            }
        };
        for reg in self.admit(&owner, epoch, registrations) {
            let iq = notification(&owner, &reg, &summary);
            let (shared, ctx, owner) = (self.clone(), ctx.clone(), owner.clone());
            // One task per notification: a slow app server holds up no
            // other registration.
            tokio::spawn(async move {
                let answer = ctx.router.request(iq, shared.timeout).await;
                shared.answered(&ctx, &owner, &reg, answer).await;
            });
        }
    }

    /// Acts on the app server's answer (see the module docs).
    async fn answered(
        &self,
        ctx: &ChildCtx,
        owner: &BareJid,
        reg: &PushRegistration,
        answer: Result<Element, IqError>,
    ) {
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(account = %owner, service = %reg.service, error = %e, "push notification unanswered; registration kept");
                return;
            }
        };
        match verdict(&answer) {
            Verdict::Keep => {
                if answer.attr("type") == Some("error") {
                    tracing::info!(account = %owner, service = %reg.service, "push notification refused for now; registration kept");
                }
            }
            Verdict::Remove(condition) => {
                let Some(node) = owner.node() else {
                    return;
                };
                let removed = ctx
                    .services
                    .storage
                    .push_disable(node, owner.domain(), &reg.service, Some(&reg.node))
                    .await;
                self.changed(owner);
                match removed {
                    Ok(_) => {
                        tracing::info!(account = %owner, service = %reg.service, condition = condition.as_str(), "app server refused a push notification; registration removed")
                    }
                    Err(e) => {
                        tracing::error!(account = %owner, error = %e, "cannot remove a push registration")
                    }
                }
            }
        }
    }
}

impl Push {
    /// §5: stores the registration, replacing one for the same app server
    /// and node.
    async fn enable(&self, ctx: &IqCtx<'_>, owner: &BareJid, el: &Element) -> IqReply {
        let service = match service_jid(el) {
            Ok(j) => j,
            Err(c) => return IqReply::Error(c),
        };
        // Notifying oneself would loop through one's own sessions.
        if service.bare() == *owner {
            return IqReply::Error(StanzaErrorCondition::BadRequest);
        }
        let service = service.to_string();
        let node = el.attr("node").unwrap_or_default();
        if node.len() > MAX_NODE {
            return too_long(&format!("the node is longer than {MAX_NODE} bytes"));
        }
        if service.len() + node.len() > MAX_KEY {
            return too_long(&format!(
                "the jid and node together are longer than {MAX_KEY} bytes"
            ));
        }
        let options = match el.get_child("x", ns::DATA_FORMS) {
            None => String::new(),
            Some(x) => {
                if form_type(x).is_some_and(|t| t != ns::PUBSUB_PUBLISH_OPTIONS) {
                    return IqReply::Error(StanzaErrorCondition::BadRequest);
                }
                x.to_xml()
            }
        };
        if options.len() > MAX_OPTIONS {
            return too_long(&format!(
                "the publish-options are longer than {MAX_OPTIONS} bytes"
            ));
        }
        let reg = PushRegistration {
            service,
            node: node.to_owned(),
            options,
        };
        let Some(local) = owner.node() else {
            return IqReply::Error(StanzaErrorCondition::BadRequest);
        };
        let storage = &ctx.services.storage;
        let max = self.shared.max_registrations;
        match storage.push_enable(local, owner.domain(), &reg, max).await {
            Ok(evicted) => {
                self.shared.changed(owner);
                tracing::info!(account = %owner, service = %reg.service, "push notifications enabled");
                for old in evicted {
                    tracing::info!(account = %owner, service = %old.service, "oldest push registration removed: too many");
                }
                IqReply::Result(None)
            }
            Err(StorageError::NotFound) => IqReply::Error(StanzaErrorCondition::ItemNotFound),
            Err(e) => {
                tracing::error!(account = %owner, error = %e, "cannot store a push registration");
                IqReply::Error(StanzaErrorCondition::InternalServerError)
            }
        }
    }

    /// §6: removes one node's registration, or every node's of the app
    /// server when no node is named.
    async fn disable(&self, ctx: &IqCtx<'_>, owner: &BareJid, el: &Element) -> IqReply {
        let service = match service_jid(el) {
            Ok(j) => j,
            Err(c) => return IqReply::Error(c),
        };
        let Some(local) = owner.node() else {
            return IqReply::Error(StanzaErrorCondition::BadRequest);
        };
        let storage = &ctx.services.storage;
        let service = service.to_string();
        match storage
            .push_disable(local, owner.domain(), &service, el.attr("node"))
            .await
        {
            Ok(n) => {
                if n > 0 {
                    self.shared.changed(owner);
                }
                tracing::info!(account = %owner, service = %service, removed = n, "push notifications disabled");
                IqReply::Result(None)
            }
            Err(e) => {
                tracing::error!(account = %owner, error = %e, "cannot remove a push registration");
                IqReply::Error(StanzaErrorCondition::InternalServerError)
            }
        }
    }
}

/// `not-acceptable` (modify), with what was too long (see the module docs).
fn too_long(text: &str) -> IqReply {
    IqReply::failed(StanzaError::new(StanzaErrorCondition::NotAcceptable).with_text(text))
}

/// The `jid` attribute both requests MUST have (§5, §6).
fn service_jid(el: &Element) -> Result<Jid, StanzaErrorCondition> {
    let raw = el.attr("jid").ok_or(StanzaErrorCondition::BadRequest)?;
    raw.parse::<Jid>()
        .map_err(|_| StanzaErrorCondition::JidMalformed)
}

impl Module for Push {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn children(&self, ctx: &ChildCtx) -> Vec<chorus_supervisor::ChildSpec> {
        // No actor: only the handles its tasks need.
        let _ = self.shared.ctx.set(ctx.clone());
        Vec::new()
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            let me = match ctx.me() {
                Ok(me) => me.bare(),
                Err(c) => return IqReply::Error(c),
            };
            // About the sender's own account: addressed to it or to the
            // server, never to another account.
            if ctx.account.is_some() && !ctx.is_own_account() {
                return IqReply::Error(StanzaErrorCondition::Forbidden);
            }
            if iq.attr("type") != Some("set") {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            if let Some(el) = iq.get_child("enable", ns::PUSH) {
                self.enable(ctx, &me, el).await
            } else if let Some(el) = iq.get_child("disable", ns::PUSH) {
                self.disable(ctx, &me, el).await
            } else {
                IqReply::Error(StanzaErrorCondition::BadRequest)
            }
        })
    }

    /// Marks what may go offline, to be notified once `message_routed`
    /// knows it did.
    fn message_inbound<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        to: &'a Jid,
        stanza: &'a mut Element,
    ) -> Option<BoxFuture<'a, Option<Box<dyn std::any::Any + Send>>>> {
        let _ = ctx;
        let s = summary(stanza, self.shared.include_body, self.shared.include_sender)?;
        let state: Box<dyn std::any::Any + Send> = Box::new((to.bare(), s));
        Some(Box::pin(std::future::ready(Some(state))))
    }

    fn message_routed<'a>(
        &'a self,
        ctx: &'a HookCtx<'a>,
        state: Box<dyn std::any::Any + Send>,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, ()> {
        let _ = ctx;
        if *outcome == Outcome::Stored {
            if let Ok(marked) = state.downcast::<(BareJid, Summary)>() {
                let (owner, summary) = *marked;
                self.shared.spawn_notify(owner, summary);
            }
        }
        Box::pin(std::future::ready(()))
    }

    /// What the module remembers of the account goes with it (storage
    /// deletes its registrations).
    fn account_removed<'a>(
        &'a self,
        _ctx: &'a HookCtx<'a>,
        user: &'a BareJid,
    ) -> Option<BoxFuture<'a, ()>> {
        self.shared.removed(user);
        None
    }

    fn detached_message(&self, ctx: &SessionCtx<'_>, stanza: &Element) {
        if let Some(s) = summary(stanza, self.shared.include_body, self.shared.include_sender) {
            self.shared.spawn_notify(ctx.full.bare(), s);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::forms::form_fields;

    fn msg(typ: Option<&str>) -> Element {
        let mut m = Element::new("message", ns::JABBER_CLIENT)
            .with_attr("from", "romeo@example.net/orchard")
            .with_attr("to", "juliet@example.org");
        if let Some(t) = typ {
            m.set_attr("type", t);
        }
        m
    }

    fn body(text: &str) -> Element {
        Element::new("body", ns::JABBER_CLIENT).with_text(text)
    }

    #[test]
    fn only_chat_and_normal_with_a_body_or_encrypted_are_notified() {
        for t in [None, Some("chat"), Some("normal")] {
            assert!(summary(&msg(t).with_child(body("hi")), false, false).is_some());
        }
        for t in ["groupchat", "headline", "error"] {
            assert!(summary(&msg(Some(t)).with_child(body("hi")), false, false).is_none());
        }
        // A chat state alone, an empty body.
        let state = Element::new("composing", "http://jabber.org/protocol/chatstates");
        assert!(summary(&msg(Some("chat")).with_child(state), false, false).is_none());
        assert!(summary(&msg(Some("chat")).with_child(body(" ")), false, false).is_none());
        let omemo = Element::new("encrypted", "eu.siacs.conversations.axolotl");
        assert!(summary(&msg(Some("chat")).with_child(omemo), true, true).is_some());
    }

    #[test]
    fn the_summary_says_only_what_is_configured() {
        let m = msg(Some("chat")).with_child(body("secret plans"));
        assert_eq!(
            summary(&m, false, false),
            Some(Summary {
                sender: None,
                body: None
            })
        );
        assert_eq!(
            summary(&m, true, true),
            Some(Summary {
                sender: Some("romeo@example.net".into()),
                body: Some("secret plans".into())
            })
        );
        // Never the fallback text of an encrypted message.
        let eme = msg(Some("chat"))
            .with_child(body("I sent you an OMEMO encrypted message"))
            .with_child(Element::new("encryption", "urn:xmpp:eme:0"));
        assert_eq!(summary(&eme, true, false).unwrap().body, None);
    }

    #[test]
    fn the_notification_is_a_publish_with_the_summary_and_the_options() {
        let owner: BareJid = "juliet@example.org".parse().unwrap();
        let options = form_head("submit", ns::PUBSUB_PUBLISH_OPTIONS);
        let reg = PushRegistration {
            service: "push.example.net".into(),
            node: "n1".into(),
            options: options.to_xml(),
        };
        let iq = notification(
            &owner,
            &reg,
            &Summary {
                sender: Some("romeo@example.net".into()),
                body: None,
            },
        );
        assert_eq!(
            (iq.attr("type"), iq.attr("from"), iq.attr("to")),
            (
                Some("set"),
                Some("juliet@example.org"),
                Some("push.example.net")
            )
        );
        let pubsub = iq.get_child("pubsub", ns::PUBSUB).unwrap();
        let publish = pubsub.get_child("publish", ns::PUBSUB).unwrap();
        assert_eq!(publish.attr("node"), Some("n1"));
        let x = publish
            .get_child("item", ns::PUBSUB)
            .and_then(|i| i.get_child("notification", ns::PUSH))
            .and_then(|n| n.get_child("x", ns::DATA_FORMS))
            .unwrap();
        assert_eq!(form_type(x).as_deref(), Some(ns::PUSH_SUMMARY));
        assert_eq!(
            form_fields(x),
            vec![
                ("message-count".to_owned(), vec!["1".to_owned()]),
                (
                    "last-message-sender".to_owned(),
                    vec!["romeo@example.net".to_owned()]
                ),
            ]
        );
        let po = pubsub.get_child("publish-options", ns::PUBSUB).unwrap();
        assert_eq!(
            po.children().next().map(|x| x.to_xml()),
            Some(options.to_xml())
        );
    }

    fn shared(burst: u32) -> Shared {
        Shared {
            include_body: false,
            include_sender: false,
            max_registrations: 5,
            burst,
            refill: Duration::from_secs(3600),
            timeout: Duration::from_secs(1),
            accounts: Mutex::new(Accounts {
                by_jid: HashMap::new(),
                epoch: 0,
                sweep_at: ACCOUNTS_KEPT,
            }),
            ctx: OnceLock::new(),
        }
    }

    fn reg(node: &str) -> PushRegistration {
        PushRegistration {
            service: "push.example.net".into(),
            node: node.into(),
            options: String::new(),
        }
    }

    #[test]
    fn an_account_without_registrations_is_read_once_until_it_changes() {
        let s = shared(3);
        let juliet: BareJid = "juliet@example.org".parse().unwrap();
        let epoch = s.gate(&juliet).unwrap();
        assert!(s.admit(&juliet, epoch, Vec::new()).is_empty());
        // Known to have none: no read, no task.
        assert_eq!(s.gate(&juliet), None);
        // Enabling (or any change) makes it read again.
        s.changed(&juliet);
        let epoch = s.gate(&juliet).unwrap();
        assert_eq!(s.admit(&juliet, epoch, vec![reg("n1")]), vec![reg("n1")]);
        assert!(s.gate(&juliet).is_some());
        // Removing the account forgets it.
        s.removed(&juliet);
        assert!(s.accounts().by_jid.is_empty());
    }

    #[test]
    fn a_read_begun_before_a_change_is_not_taken_as_current() {
        let s = shared(3);
        let juliet: BareJid = "juliet@example.org".parse().unwrap();
        let epoch = s.gate(&juliet).unwrap();
        // The account enables while the read is under way; the read saw
        // storage before it.
        s.changed(&juliet);
        assert!(s.admit(&juliet, epoch, Vec::new()).is_empty());
        assert!(s.gate(&juliet).is_some());
    }

    #[test]
    fn empty_buckets_drop_a_message_before_the_read() {
        let s = shared(2);
        let juliet: BareJid = "juliet@example.org".parse().unwrap();
        for _ in 0..2 {
            let epoch = s.gate(&juliet).unwrap();
            assert_eq!(s.admit(&juliet, epoch, vec![reg("n1"), reg("n2")]).len(), 2);
        }
        // Both buckets are empty: nothing to read for.
        assert_eq!(s.gate(&juliet), None);
        let accounts = s.accounts();
        let account = &accounts.by_jid[&juliet];
        assert!(account.throttles.values().all(|t| t.dropped == 1));
        drop(accounts);
        // A registration gone from storage takes its bucket with it.
        s.changed(&juliet);
        let epoch = s.gate(&juliet).unwrap();
        assert!(s.admit(&juliet, epoch, vec![reg("n1")]).is_empty());
        assert_eq!(s.accounts().by_jid[&juliet].throttles.len(), 1);
    }

    #[test]
    fn idle_accounts_are_swept_in_one_pass_and_busy_ones_kept() {
        let s = shared(1);
        let busy: BareJid = "busy@example.org".parse().unwrap();
        let epoch = s.gate(&busy).unwrap();
        s.admit(&busy, epoch, vec![reg("n")]);
        for i in 0..ACCOUNTS_KEPT * 3 {
            let jid: BareJid = format!("u{i}@example.org").parse().unwrap();
            let epoch = s.gate(&jid).unwrap();
            s.admit(&jid, epoch, Vec::new());
            assert!(s.accounts().by_jid.len() <= ACCOUNTS_KEPT);
        }
        let accounts = s.accounts();
        // The account whose bucket is not full again survived every sweep.
        assert!(accounts.by_jid.contains_key(&busy));
        assert_eq!(accounts.sweep_at, ACCOUNTS_KEPT);
    }

    #[test]
    fn only_an_app_servers_cancel_removes_the_registration() {
        let answer = |kind: &str, cond: &str| {
            Element::new("iq", ns::JABBER_CLIENT)
                .with_attr("type", "error")
                .with_child(
                    Element::new("error", ns::JABBER_CLIENT)
                        .with_attr("type", kind)
                        .with_child(Element::new(cond, ns::STANZAS)),
                )
        };
        assert_eq!(
            verdict(&answer("cancel", "item-not-found")),
            Verdict::Remove(StanzaErrorCondition::ItemNotFound)
        );
        assert_eq!(
            verdict(&answer("wait", "resource-constraint")),
            Verdict::Keep
        );
        assert_eq!(
            verdict(&answer("cancel", "remote-server-not-found")),
            Verdict::Keep
        );
        let result = Element::new("iq", ns::JABBER_CLIENT).with_attr("type", "result");
        assert_eq!(verdict(&result), Verdict::Keep);
    }
}
