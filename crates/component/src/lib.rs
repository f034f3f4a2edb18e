//! External components (XEP-0114, Jabber Component Protocol 1.6): a
//! gateway or a bot that runs as a process of its own, connects to a
//! `component` listener, proves it knows a shared secret with
//! `<handshake/>`, and from then on serves a domain of its own.
//!
//! - [`route`]: the component's domain in the route table. One
//!   [`ComponentService`] per `[[components]]` entry, added at start
//!   through [`Component::hosted`]; it forwards what is routed to the
//!   domain to the connection that completed the handshake, and answers
//!   `service-unavailable` while none has (RFC 6120 §8.3.3.19).
//! - [`conn`]: the `component` listener kind: each accepted connection is
//!   a group `conn-<id>` of `socket`, `receiver` (both from `chorus-c2s`)
//!   and `component`, the stream state machine.
//! - [`stream`]: that state machine (XEP-0114 §3): the stream header, the
//!   handshake, then the stanzas the component sends, checked and routed.
//!
//! The route table is the one registry: a connection finds its domain's
//! service there ([`chorus_router::Service::as_any`]), so the listener needs
//! nothing but the shared connection context.

pub mod conn;
pub mod route;
pub mod stream;

pub use conn::ComponentConnections;
pub use route::ComponentService;
pub use stream::{shutdown_all, ComponentMsg, StreamFailure};

use std::sync::Arc;

use chorus_modules::{ChildCtx, Module, ModuleInfo, Support, Xep};

/// The content namespace of a component stream (XEP-0114 §3).
pub const NS_COMPONENT: &str = "jabber:component:accept";

/// XEP-0114 as a feature module: its declaration (for `docs/XEPS.md`) and
/// the components' domains, which the server adds to the route table at
/// start like any hosted service.
pub struct Component {
    services: Vec<Arc<ComponentService>>,
}

static INFO: ModuleInfo = ModuleInfo {
    name: "component",
    file: file!(),
    xeps: &[Xep {
        number: 114,
        name: "Jabber Component Protocol",
        version: "1.6",
        support: Support::Complete,
        note: "The component listener kind and [[components]]; a second connection for \
               a connected domain is refused with conflict.",
    }],
    ..ModuleInfo::EMPTY
};

impl Component {
    /// One service per configured component.
    pub fn from_config(config: &chorus_config::Config) -> Component {
        Component {
            services: config
                .components
                .iter()
                .map(|c| Arc::new(ComponentService::new(&c.domain, &c.secret)))
                .collect(),
        }
    }
}

impl Module for Component {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn hosted(&self, _ctx: &ChildCtx) -> Vec<(String, Arc<dyn chorus_router::Service>)> {
        self.services
            .iter()
            .map(|s| {
                let service: Arc<dyn chorus_router::Service> = s.clone();
                (s.domain().to_owned(), service)
            })
            .collect()
    }
}
