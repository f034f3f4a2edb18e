//! The registered modules ([`Modules`]): dispatch of IQs to the module
//! that declared the payload, the router's local server handler, and the
//! router's hooks fanned out to the modules that declare each.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{error_reply, IqType, StanzaError, StanzaErrorCondition, StanzaKind};
use chorus_router::{HookState, Hooks, NoHooks, Outcome, Router, Service, Session};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::api::*;
use crate::{
    avatar, blocking, carbons, contact, disco, extdisco, last, mam, muc, offline, ping, private,
    pubsub, push, register, roster, time, vcard, version,
};

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
        let pubsub = pubsub::Shared::from_config(config);
        let mut modules: Vec<Box<dyn Module>> = vec![
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
            Box::new(private::Private {
                pep: config.pubsub.pep.then(|| pubsub.clone()),
            }),
            Box::new(vcard::Vcard {
                pep: config.pubsub.pep.then(|| pubsub.clone()),
            }),
            Box::new(avatar::Avatar),
            Box::new(mam::Mam::from_config(config)),
            Box::new(offline::Offline {
                quota: config.offline.quota,
            }),
            Box::new(contact::Contact::from_config(config)),
            Box::new(extdisco::Extdisco::from_config(config)),
        ];
        if config.push.enabled {
            modules.push(Box::new(push::Push::from_config(config)));
        }
        if config.pubsub.pep {
            modules.push(Box::new(pubsub::Pep::new(pubsub.clone())));
        }
        if config.pubsub.service {
            modules.push(Box::new(pubsub::PubsubService::new(pubsub)));
        }
        if config.muc.enabled {
            modules.push(Box::new(muc::Muc::from_config(config)));
        }
        if let Some(opts) = crate::upload::UploadOptions::from_config(config) {
            modules.push(Box::new(crate::upload::Upload::new(opts)));
        }
        modules
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

    /// The multi-user chat rooms, when the muc module runs.
    pub fn muc_rooms(&self) -> Option<crate::MucRooms> {
        self.modules.iter().find_map(|m| m.muc_rooms())
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
        // A disco query for a node of the server goes to the module that
        // owns the node, if one does (XEP-0050's commands); else to disco.
        let (module, handler) = match self.disco_node(ctx, payload) {
            Some(found) => found,
            None => (module, module.handle(ctx, iq)),
        };
        // modules/ contract: a bug in one handler must not take the
        // connection, let alone the server, with it.
        let outcome = AssertUnwindSafe(handler).catch_unwind().await;
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
        reply.into_stanza(iq)
    }

    /// The module that answers a disco query to the server for the node it
    /// names, and its answer, if a module owns that node.
    fn disco_node<'a>(
        &'a self,
        ctx: &'a IqCtx<'a>,
        payload: &'a Element,
    ) -> Option<(&'a dyn Module, BoxFuture<'a, IqReply>)> {
        if ctx.account.is_some()
            || !(payload.is("query", chorus_proto::ns::DISCO_INFO)
                || payload.is("query", chorus_proto::ns::DISCO_ITEMS))
        {
            return None;
        }
        let node = payload.attr("node")?;
        self.modules
            .iter()
            .find_map(|m| Some((m.as_ref(), m.disco_node(ctx, payload, node)?)))
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

    /// Runs [`Module::stopping`] of every module.
    pub async fn stopping(&self) {
        for m in &self.modules {
            if let Some(f) = m.stopping() {
                f.await;
            }
        }
    }

    /// Every module's supervised children.
    pub fn children(&self, ctx: &ChildCtx) -> Vec<chorus_supervisor::ChildSpec> {
        self.modules.iter().flat_map(|m| m.children(ctx)).collect()
    }

    /// Every service the modules host on domains of their own, for the
    /// route table.
    pub fn hosted(&self, ctx: &ChildCtx) -> Vec<(String, Arc<dyn Service>)> {
        self.modules.iter().flat_map(|m| m.hosted(ctx)).collect()
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

    /// Runs [`Module::detached_message`] of every module that declares it.
    pub fn detached_message(
        &self,
        router: &Router,
        full: &FullJid,
        conn_id: u64,
        stanza: &Element,
    ) {
        if let Some(ctx) = self.session_ctx(router, full, conn_id) {
            for (_, m) in self.with_hook(HookSet::DETACHED_MESSAGE) {
                m.detached_message(&ctx, stanza);
            }
        }
    }

    /// Every module's XEP-0128 forms for the server's disco#info, in
    /// module order.
    pub fn server_info_forms(&self) -> Vec<Element> {
        let mut out = Vec::new();
        for m in &self.modules {
            m.server_info_forms(&mut out);
        }
        out
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
        let Some(ctx) = self.hook_ctx(router) else {
            return Box::pin(std::future::ready(None));
        };
        // One filter (block lists, as shipped): its own future, unwrapped.
        if let [only] = self.by_hook[HookSet::FILTER.index()][..] {
            return self.modules[only]
                .filter(ctx, kind, stanza)
                .unwrap_or_else(|| Box::pin(std::future::ready(None)));
        }
        Box::pin(async move {
            for (_, m) in self.with_hook(HookSet::FILTER) {
                if let Some(f) = m.filter(ctx, kind, stanza) {
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
                        state.push((i, s));
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
            for (i, s) in state {
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
    use std::time::Instant;

    use chorus_proto::ns;
    use chorus_router::SessionTable;
    use chorus_storage::Storage;

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
            server_forms: Vec::new(),
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
