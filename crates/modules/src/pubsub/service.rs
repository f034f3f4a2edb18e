//! The hosted publish-subscribe service (XEP-0060) on
//! `<pubsub.service_subdomain>.<domain>` for each served domain: a
//! destination of its own in the route table, answering the pubsub
//! requests (`request.rs`, shared with PEP), disco#info and disco#items
//! (XEP-0030, XEP-0060 §5) and pings; anything else addressed to it gets
//! `service-unavailable` (RFC 6120 §8.4).

use std::sync::Arc;

use chorus_jid::{FullJid, Jid};
use chorus_proto::{error_reply, ns, IqType, StanzaError, StanzaErrorCondition as C, StanzaKind};
use chorus_router::{Outcome, Router, Service};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use super::{request, Hosted, Shared, Svc};
use crate::{ChildCtx, IqCtx, IqReply, Module, ModuleInfo, Services};

/// What the service advertises (XEP-0060 §10): its own set, not PEP's.
const FEATURES: &[&str] = &[
    ns::DISCO_INFO,
    ns::DISCO_ITEMS,
    ns::PING,
    ns::PUBSUB,
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#instant-nodes",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#manage-subscriptions",
    "http://jabber.org/protocol/pubsub#member-affiliation",
    "http://jabber.org/protocol/pubsub#meta-data",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#outcast-affiliation",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-only-affiliation",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#publisher-affiliation",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-affiliations",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-default-sub",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
    "http://jabber.org/protocol/pubsub#subscribe",
    "http://jabber.org/protocol/pubsub#subscription-options",
];

static INFO: ModuleInfo = ModuleInfo {
    name: "pubsub",
    file: file!(),
    ..ModuleInfo::EMPTY
};

/// The module that hosts the services.
pub struct PubsubService {
    shared: Arc<Shared>,
}

impl PubsubService {
    pub fn new(shared: Arc<Shared>) -> PubsubService {
        PubsubService { shared }
    }
}

impl Module for PubsubService {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn hosted(&self, ctx: &ChildCtx) -> Vec<(String, Arc<dyn Service>)> {
        self.shared
            .options
            .services
            .iter()
            .map(|domain| {
                let service: Arc<dyn Service> = Arc::new(HostedService {
                    svc: Svc::Hosted(Hosted {
                        jid: domain.clone(),
                        creators: self.shared.options.creators,
                    }),
                    shared: self.shared.clone(),
                    services: ctx.services.clone(),
                });
                (domain.clone(), service)
            })
            .collect()
    }
}

/// One service, on one domain.
struct HostedService {
    svc: Svc,
    shared: Arc<Shared>,
    services: Arc<Services>,
}

impl Service for HostedService {
    fn name(&self) -> &str {
        "pubsub"
    }

    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let request = StanzaKind::of(&stanza) == Some(StanzaKind::Iq)
                && IqType::of(&stanza).is_some_and(IqType::is_request);
            if !request {
                // Presence and answers need nothing; a message gets the
                // RFC's error unless it is one (no error loops).
                if stanza.name() == "message" && stanza.attr("type") != Some("error") {
                    if let Some(e) = error_reply(&stanza, &StanzaError::new(C::ServiceUnavailable))
                    {
                        return Outcome::Reply(e);
                    }
                }
                return Outcome::Dropped;
            }
            let Some(sender) = stanza.attr("from").and_then(|f| f.parse::<Jid>().ok()) else {
                return Outcome::Dropped;
            };
            let user: Option<FullJid> = FullJid::try_from(sender.clone())
                .ok()
                .filter(|f| self.services.sessions.get(f).is_some());
            let ctx = IqCtx {
                sender: &sender,
                user: user.as_ref(),
                domain: self.svc.jid(),
                account: None,
                account_exists: true,
                router,
                services: &self.services,
            };
            let reply = self.answer(&ctx, &stanza).await;
            match reply.into_stanza(&stanza) {
                Some(answer) => Outcome::Reply(answer),
                None => Outcome::Delivered,
            }
        })
    }
}

impl HostedService {
    async fn answer(&self, ctx: &IqCtx<'_>, iq: &Element) -> IqReply {
        let mut payloads = iq.children();
        let (Some(payload), None) = (payloads.next(), payloads.next()) else {
            return IqReply::Error(C::BadRequest);
        };
        let get = IqType::of(iq) == Some(IqType::Get);
        match (payload.ns(), payload.name(), get) {
            (ns::PUBSUB | ns::PUBSUB_OWNER, "pubsub", _) => {
                request::answer(ctx, &self.shared, &self.svc, iq).await
            }
            (ns::DISCO_INFO, "query", true) => match payload.attr("node") {
                Some(node) => request::node_info(ctx, &self.svc, node).await,
                None => IqReply::Result(Some(self.info())),
            },
            (ns::DISCO_ITEMS, "query", true) => self.items(ctx, payload.attr("node")).await,
            (ns::PING, "ping", true) => IqReply::Result(None),
            _ => IqReply::Error(C::ServiceUnavailable),
        }
    }

    /// XEP-0060 §5.1: a pubsub service.
    fn info(&self) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "pubsub")
                .with_attr("type", "service")
                .with_attr("name", "Publish-Subscribe"),
        );
        for f in FEATURES {
            q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
        }
        q
    }

    /// XEP-0060 §5.2 the nodes the requester may see; §5.5 a node's items
    /// (by id, as the XEP's example lists them).
    async fn items(&self, ctx: &IqCtx<'_>, node: Option<&str>) -> IqReply {
        let mut q = Element::new("query", ns::DISCO_ITEMS);
        let Some(node) = node else {
            for item in request::disco_items(ctx, &self.svc).await {
                q.push(item);
            }
            return IqReply::Result(Some(q));
        };
        if request::visible_node(ctx, &self.svc, node).await.is_none() {
            return IqReply::Error(C::ItemNotFound);
        }
        q.set_attr("node", node);
        use chorus_storage::PubsubStore;
        let items = match self
            .services
            .storage
            .pubsub_items(self.svc.jid(), node, &[], None)
            .await
        {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(error = %e, "pubsub items unreadable");
                return IqReply::Error(C::InternalServerError);
            }
        };
        for item in items {
            q.push(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", self.svc.jid())
                    .with_attr("name", item.id),
            );
        }
        IqReply::Result(Some(q))
    }
}
