//! Feature modules, one file per XEP (Prosody's `mod_*.lua`, ejabberd's
//! `mod_*.erl`). Each module declares, in one place, the IQ payloads it
//! handles, the disco features it adds, and its handler.
//!
//! [`Modules`] dispatches an IQ addressed to the server or, on an account's
//! behalf, to its bare JID (RFC 6121 §8.5.2.1.3), by payload. Payloads no
//! module claims get `service-unavailable` (RFC 6120 §8.4); a request IQ with
//! no payload or two gets `bad-request` (§8.2.3, checked by c2s); a handler
//! that panics is caught: the sender gets `internal-server-error`, the
//! connection stays up, and the panic is logged and counted.

pub mod avatar;
mod blocking;
mod carbons;
mod disco;
mod last;
mod mam;
mod ping;
mod private;
pub mod register;
mod roster;
mod time;
mod vcard;
mod version;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chorus_jid::{BareJid, FullJid};
use chorus_proto::{error_reply, ns, IqType, StanzaError, StanzaErrorCondition};
use chorus_router::{Router, SessionTable};
use chorus_storage::Storage;
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

pub use disco::caps_ver;

/// Who asked, and where the IQ went.
pub struct IqCtx<'a> {
    /// The sending session.
    pub from: &'a FullJid,
    /// The server domain the IQ was addressed to (or the account's domain).
    pub domain: &'a str,
    /// Set when the IQ is addressed to an account's bare JID rather than to
    /// the server; the sender's own account when there was no 'to'.
    pub account: Option<&'a BareJid>,
    pub services: &'a Services,
}

impl IqCtx<'_> {
    /// The IQ is about the sender's own account (no 'to', or its own bare JID).
    pub fn is_own_account(&self) -> bool {
        self.account.is_some_and(|a| *a == self.from.bare())
    }
}

/// What modules may use: storage, the session table, server facts.
pub struct Services {
    pub storage: Arc<Storage>,
    pub sessions: Arc<SessionTable>,
    /// For roster pushes and subscription stanzas.
    pub router: Arc<Router>,
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
}

/// A handler's answer.
pub enum IqReply {
    /// `type='result'` with an optional payload.
    Result(Option<Element>),
    Error(StanzaErrorCondition),
    /// The handler answered itself, through the requesting session's sink
    /// (with [`result_iq`]), so that its answer queues behind stanzas that
    /// must reach the client first (XEP-0313 results); nothing more to send.
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

/// One feature module.
pub trait Module: Send + Sync {
    /// For logs: `ping`, `disco`.
    fn name(&self) -> &'static str;
    /// IQ payloads handled, as (element name, namespace).
    fn payloads(&self) -> &'static [(&'static str, &'static str)];
    /// Features advertised in the server's disco#info (XEP-0030).
    fn features(&self) -> &'static [&'static str];
    /// Features advertised in disco#info to an account's bare JID, for
    /// services the server provides on every account's behalf (XEP-0313
    /// archives).
    fn account_features(&self) -> &'static [&'static str] {
        &[]
    }
    /// Handles one request IQ (`get` or `set`) with one of [`Module::payloads`].
    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply>;
}

/// The registered modules.
pub struct Modules {
    modules: Vec<Box<dyn Module>>,
    /// Handler panics caught since start (a metric).
    panics: AtomicU64,
}

impl Modules {
    /// Every module Chorus ships.
    pub fn standard() -> Modules {
        Modules::with(vec![
            Box::new(ping::Ping),
            Box::new(disco::Disco),
            Box::new(roster::Roster),
            Box::new(carbons::Carbons),
            Box::new(register::Register),
            Box::new(version::Version),
            Box::new(time::Time),
            Box::new(last::Last),
            Box::new(private::Private),
            Box::new(vcard::Vcard),
            Box::new(blocking::Blocking::default()),
            Box::new(mam::Mam),
        ])
    }

    pub fn with(modules: Vec<Box<dyn Module>>) -> Modules {
        Modules {
            modules,
            panics: AtomicU64::new(0),
        }
    }

    /// Every feature the server advertises, sorted and deduplicated.
    pub fn features(&self) -> Vec<&'static str> {
        let mut f: Vec<&'static str> = self
            .modules
            .iter()
            .flat_map(|m| m.features().iter().copied())
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
            .flat_map(|m| m.account_features().iter().copied())
            .collect();
        f.sort_unstable();
        f.dedup();
        f
    }

    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    fn find(&self, payload: &Element) -> Option<&dyn Module> {
        self.modules
            .iter()
            .find(|m| m.payloads().iter().any(|(n, s)| payload.is(n, s)))
            .map(|m| m.as_ref())
    }

    /// Answers a request IQ for the server or an account. Returns the reply
    /// to send back (already addressed), or None for IQs needing no answer
    /// (results and errors) and for handlers that answered themselves
    /// ([`IqReply::Delivered`]).
    pub async fn dispatch(&self, ctx: &IqCtx<'_>, iq: &Element) -> Option<Element> {
        if !IqType::of(iq).is_some_and(IqType::is_request) {
            return None;
        }
        let Some(payload) = iq.children().next() else {
            return error_reply(iq, &StanzaError::new(StanzaErrorCondition::BadRequest));
        };
        let Some(module) = self.find(payload) else {
            return error_reply(
                iq,
                &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
            );
        };
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
                tracing::error!(module = module.name(), panic = %msg, "module handler panicked");
                IqReply::Error(StanzaErrorCondition::InternalServerError)
            }
        };
        match reply {
            IqReply::Result(payload) => Some(result_iq(iq, payload)),
            IqReply::Error(cond) => error_reply(iq, &StanzaError::new(cond)),
            IqReply::Delivered => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Panicky;

    impl Module for Panicky {
        fn name(&self) -> &'static str {
            "panicky"
        }
        fn payloads(&self) -> &'static [(&'static str, &'static str)] {
            &[("boom", "urn:example:boom")]
        }
        fn features(&self) -> &'static [&'static str] {
            &[]
        }
        fn handle<'a>(&'a self, _: &'a IqCtx<'a>, _: &'a Element) -> BoxFuture<'a, IqReply> {
            Box::pin(async { panic!("module bug") })
        }
    }

    async fn services() -> Services {
        let dir = std::env::temp_dir().join(format!("chorus-modules-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let storage = Arc::new(Storage::connect("sqlite::memory:").await.unwrap());
        let sessions: Arc<SessionTable> = Arc::default();
        Services {
            router: Arc::new(Router::new(
                sessions.clone(),
                vec!["localhost".into()],
                storage.clone(),
                10,
            )),
            storage,
            sessions,
            started: Instant::now(),
            software: ("Chorus", "test"),
            features: Vec::new(),
            account_features: Vec::new(),
            sasl_iterations: 4096,
        }
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
        let s = services().await;
        let m = Modules::with(vec![Box::new(Panicky)]);
        let from: FullJid = "a@localhost/r".parse().unwrap();
        let ctx = IqCtx {
            from: &from,
            domain: "localhost",
            account: None,
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
        let s = services().await;
        let m = Modules::standard();
        let from: FullJid = "a@localhost/r".parse().unwrap();
        let ctx = IqCtx {
            from: &from,
            domain: "localhost",
            account: None,
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
}
