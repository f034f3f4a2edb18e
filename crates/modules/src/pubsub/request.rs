//! The XEP-0060 requests to a pubsub service, an account's PEP service (its
//! bare JID) or a hosted one (`pubsub.<domain>`): `pubsub` (publish,
//! retract, subscribe, unsubscribe, options, create, items, subscriptions,
//! affiliations) and `pubsub#owner` (configure, default, delete, purge,
//! subscriptions, affiliations). Error conditions and their `pubsub#errors`
//! children are those of XEP-0060 §§6-8, cited per case.
//!
//! Where the two kinds differ: in PEP the account owns every node, alone
//! publishes, and a publish creates its node (XEP-0163 §3); on a hosted
//! service owners are affiliations, who may publish is the node's publish
//! model, who may create is `pubsub.create_nodes`, nodes may be instant
//! (§8.1.1), and a publish to a missing node is `item-not-found`.

use chorus_jid::{BareJid, Jid};
use chorus_proto::{ns, IqType, StanzaError, StanzaErrorCondition as C};
use chorus_storage::{PubsubItem, PubsubStore, PubsubSubscription, StorageError};
use chorus_xml::Element;

use chorus_config::PubsubCreators;

use super::config::{
    form_fields, form_head, form_type, ConfigError, MaxItems, NodeConfig, PublishModel, SendLast,
};
use super::notify::{self, access, delivers, items_event, options_form, Denied};
use super::{Shared, Svc};
use crate::{IqCtx, IqReply};

/// An error with its `pubsub#errors` child (none when `app` is empty).
fn fail(condition: C, app: &str) -> IqReply {
    let mut e = StanzaError::new(condition);
    if !app.is_empty() {
        e = e.with_app(Element::new(app, ns::PUBSUB_ERRORS));
    }
    IqReply::failed(e)
}

/// `feature-not-implemented` with `<unsupported feature/>`.
fn unsupported(feature: &str) -> IqReply {
    IqReply::failed(
        StanzaError::new(C::FeatureNotImplemented)
            .with_app(Element::new("unsupported", ns::PUBSUB_ERRORS).with_attr("feature", feature)),
    )
}

fn internal(e: StorageError) -> IqReply {
    tracing::error!(error = %e, "pubsub storage failed");
    IqReply::Error(C::InternalServerError)
}

fn denied(d: Denied) -> IqReply {
    fail(d.0, d.1)
}

type Answer = Result<IqReply, IqReply>;

/// One request, with what every case needs.
struct Req<'a> {
    ctx: &'a IqCtx<'a>,
    shared: &'a Shared,
    iq: &'a Element,
    /// The service addressed.
    svc: &'a Svc,
    /// The requester's bare JID.
    who: BareJid,
}

pub async fn answer(ctx: &IqCtx<'_>, shared: &Shared, svc: &Svc, iq: &Element) -> IqReply {
    let Some(ps) = iq.children().next() else {
        return IqReply::Error(C::BadRequest);
    };
    let Some(action) = ps.children().next() else {
        return IqReply::Error(C::BadRequest);
    };
    let req = Req {
        ctx,
        shared,
        iq,
        svc,
        who: ctx.sender.bare(),
    };
    let set = IqType::of(iq) == Some(IqType::Set);
    let result = match (ps.ns() == ns::PUBSUB_OWNER, set, action.name()) {
        (false, true, "publish") => req.publish(ps, action).await,
        (false, true, "retract") => req.retract(action).await,
        (false, true, "subscribe") => req.subscribe(ps, action).await,
        (false, true, "unsubscribe") => req.unsubscribe(action).await,
        (false, true, "create") => req.create(ps, action).await,
        (false, false, "items") => req.items(ps, action).await,
        (false, false, "subscriptions") => req.own_subscriptions(action).await,
        (false, false, "affiliations") => req.own_affiliations(action).await,
        (false, false, "options") => req.get_options(action).await,
        (false, true, "options") => req.set_options(action).await,
        (false, false, "default") => {
            let mut form = options_form(true);
            form.set_attr("type", "form");
            Ok(IqReply::Result(Some(
                Element::new("pubsub", ns::PUBSUB)
                    .with_child(Element::new("default", ns::PUBSUB).with_child(form)),
            )))
        }
        (true, false, "configure") => req.get_configuration(action).await,
        (true, true, "configure") => req.configure(action).await,
        (true, false, "default") => Ok(IqReply::Result(Some(
            Element::new("pubsub", ns::PUBSUB_OWNER).with_child(
                Element::new("default", ns::PUBSUB_OWNER)
                    .with_child(svc.default_config().to_form()),
            ),
        ))),
        (true, true, "delete") => req.delete(action).await,
        (true, true, "purge") => req.purge(action).await,
        (true, false, "subscriptions") => req.node_subscriptions(action).await,
        (true, true, "subscriptions") => req.set_subscriptions(action).await,
        (true, false, "affiliations") => req.node_affiliations(action).await,
        (true, true, "affiliations") => req.set_affiliations(action).await,
        _ => Ok(IqReply::Error(C::BadRequest)),
    };
    result.unwrap_or_else(|e| e)
}

/// The node id a request names; XEP-0060 asks for `nodeid-required`.
fn node_of(action: &Element) -> Result<&str, IqReply> {
    match action.attr("node") {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(fail(C::BadRequest, "nodeid-required")),
    }
}

fn new_item_id() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        // No randomness: the clock, which is unique enough per account.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        return format!("{now:x}");
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Req<'_> {
    fn service(&self) -> &str {
        self.svc.jid()
    }

    /// The requester is the account of a PEP service.
    fn is_account(&self) -> bool {
        matches!(self.svc, Svc::Pep(owner) if *owner == self.who)
    }

    /// The requester owns the node: the account of a PEP service, an
    /// owner affiliation on a hosted one.
    async fn is_owner(&self, node: &str) -> Result<bool, IqReply> {
        match self.svc {
            Svc::Pep(_) => Ok(self.is_account()),
            Svc::Hosted(_) => {
                Ok(self.affiliation(node, &self.who).await?.as_deref() == Some("owner"))
            }
        }
    }

    /// Whose roster the presence and roster access models read.
    async fn node_owner(&self, node: &str) -> Result<Option<BareJid>, IqReply> {
        match self.svc {
            Svc::Pep(owner) => Ok(Some(owner.clone())),
            Svc::Hosted(_) => {
                let affs = self
                    .storage()
                    .pubsub_affiliations(self.service(), node)
                    .await
                    .map_err(internal)?;
                Ok(notify::first_owner(&affs))
            }
        }
    }

    fn storage(&self) -> &chorus_storage::Storage {
        &self.ctx.services.storage
    }

    /// The node's configuration; `item-not-found` when there is none.
    async fn node(&self, node: &str) -> Result<NodeConfig, IqReply> {
        match self.storage().pubsub_node(self.service(), node).await {
            Ok(Some(n)) => Ok(NodeConfig::from_stored(&n.config)),
            Ok(None) => Err(IqReply::Error(C::ItemNotFound)),
            Err(e) => Err(internal(e)),
        }
    }

    async fn affiliation(&self, node: &str, who: &BareJid) -> Result<Option<String>, IqReply> {
        let affs = self
            .storage()
            .pubsub_affiliations(self.service(), node)
            .await
            .map_err(internal)?;
        Ok(affs
            .into_iter()
            .find(|(j, _)| j == who.as_str())
            .map(|(_, a)| a))
    }

    /// The requester's subscriptions to the node (any of its JIDs).
    async fn subscriptions_of_requester(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<PubsubSubscription>, IqReply> {
        let all = self
            .storage()
            .pubsub_subscriptions(self.service(), node, None)
            .await
            .map_err(internal)?;
        Ok(all
            .into_iter()
            .filter(|s| s.jid.parse::<Jid>().is_ok_and(|j| j.bare() == self.who))
            .collect())
    }

    /// What the access model says about the requester (XEP-0060 §6.1.3,
    /// §6.5.9).
    async fn check_access(&self, node: &str, config: &NodeConfig) -> Result<(), IqReply> {
        if self.is_owner(node).await? {
            return Ok(());
        }
        let owner = self.node_owner(node).await?;
        let item = match &owner {
            Some(o) => notify::roster_item_of(self.storage(), o, &self.who).await,
            None => None,
        };
        // A hosted node without owners: itself as the owner, which no
        // roster names.
        let owner = owner.unwrap_or_else(|| self.who.clone());
        let aff = self.affiliation(node, &self.who).await?;
        let approved = self
            .subscriptions_of_requester(Some(node))
            .await?
            .iter()
            .any(|s| s.state == "subscribed");
        if owner == self.who && config.access_model != super::config::AccessModel::Open {
            return Err(fail(C::NotAuthorized, "presence-subscription-required"));
        }
        access(
            config,
            &owner,
            &self.who,
            item.as_ref(),
            aff.as_deref(),
            approved,
        )
        .map_err(denied)
    }

    /// The node's owner alone may do this (§8: `forbidden` for anyone
    /// else); checked once the node is known to exist.
    async fn owner_only(&self, node: &str) -> Result<(), IqReply> {
        if self.is_owner(node).await? {
            Ok(())
        } else {
            Err(IqReply::Error(C::Forbidden))
        }
    }

    async fn broadcast(&self, node: &str, config: &NodeConfig, event: &Element) {
        notify::broadcast(
            self.ctx.router,
            self.ctx.services,
            self.svc,
            node,
            config,
            event,
        )
        .await;
    }

    /// Creates a node with `config` and the requester as its owner, within
    /// the node limit (per account in PEP, per hosted service).
    async fn create_node(&self, node: &str, config: &NodeConfig) -> Result<(), IqReply> {
        let count = self
            .storage()
            .pubsub_nodes(self.service())
            .await
            .map_err(internal)?
            .len();
        let limit = match self.svc {
            Svc::Pep(_) => self.shared.options.max_nodes,
            Svc::Hosted(_) => self.shared.options.service_max_nodes,
        };
        if count >= limit as usize {
            return Err(fail(C::NotAllowed, "max-nodes-exceeded"));
        }
        let account = match self.svc {
            Svc::Pep(owner) => owner.node().map(|l| (l, owner.domain())),
            Svc::Hosted(_) => None,
        };
        match self
            .storage()
            .pubsub_create_node(
                self.service(),
                node,
                account,
                &config.to_stored(),
                self.who.as_str(),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(StorageError::AlreadyExists) => Err(IqReply::Error(C::Conflict)),
            Err(e) => Err(internal(e)),
        }
    }

    /// A configuration within the service's limits, or `not-acceptable`.
    fn acceptable(&self, config: NodeConfig) -> Result<NodeConfig, IqReply> {
        match config.max_items {
            MaxItems::Count(n) if n > self.shared.options.max_items => Err(IqReply::failed(
                StanzaError::new(C::NotAcceptable).with_text(format!(
                    "pubsub#max_items is at most {}",
                    self.shared.options.max_items
                )),
            )),
            _ => Ok(config),
        }
    }

    /// Whether the requester may publish to an existing node: in PEP the
    /// account (checked already); on a hosted service what the node's
    /// publish model says (§4.6), an outcast never (§7.1.3.1).
    async fn may_publish(&self, node: &str, config: &NodeConfig) -> Result<(), IqReply> {
        if matches!(self.svc, Svc::Pep(_)) {
            return Ok(());
        }
        let aff = self.affiliation(node, &self.who).await?;
        let allowed = match (aff.as_deref(), config.publish_model) {
            (Some("outcast"), _) => false,
            (Some("owner" | "publisher" | "publish-only"), _) => true,
            (_, PublishModel::Open) => true,
            (_, PublishModel::Subscribers) => self
                .subscriptions_of_requester(Some(node))
                .await?
                .iter()
                .any(|s| s.state == "subscribed"),
            (_, PublishModel::Publishers) => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(IqReply::Error(C::Forbidden))
        }
    }

    /// The subscription `options` names (§6.3.1): the node, and a JID that
    /// is the requester's.
    async fn options_target(
        &self,
        action: &Element,
    ) -> Result<(String, PubsubSubscription), IqReply> {
        let node = node_of(action)?.to_owned();
        let jid = match action.attr("jid").map(str::parse::<Jid>) {
            Some(Ok(j)) => j,
            Some(Err(_)) => return Err(fail(C::BadRequest, "invalid-jid")),
            None => return Err(fail(C::BadRequest, "jid-required")),
        };
        self.node(&node).await?;
        if jid.bare() != self.who && !self.is_owner(&node).await? {
            return Err(IqReply::Error(C::Forbidden));
        }
        let subs = self
            .storage()
            .pubsub_subscriptions(self.service(), Some(&node), Some(jid.as_str()))
            .await
            .map_err(internal)?;
        match subs.into_iter().next() {
            Some(sub) => Ok((node, sub)),
            None => Err(fail(C::UnexpectedRequest, "not-subscribed")),
        }
    }

    /// §6.3.2 a subscription's options, as a form.
    async fn get_options(&self, action: &Element) -> Answer {
        let (node, sub) = self.options_target(action).await?;
        let mut form = options_form(delivers(&sub.options));
        form.set_attr("type", "form");
        Ok(IqReply::Result(Some(
            Element::new("pubsub", ns::PUBSUB).with_child(
                Element::new("options", ns::PUBSUB)
                    .with_attr("node", node)
                    .with_attr("jid", sub.jid.as_str())
                    .with_child(form),
            ),
        )))
    }

    /// §6.3.5 the subscriber changes its options: `pubsub#deliver` is the
    /// one Chorus honours; any other field is `bad-request` with
    /// `<invalid-options/>` (§6.3.6.2).
    async fn set_options(&self, action: &Element) -> Answer {
        let (_, mut sub) = self.options_target(action).await?;
        let Some(x) = action.get_child("x", ns::DATA_FORMS) else {
            return Err(fail(C::BadRequest, "invalid-options"));
        };
        let mut deliver = delivers(&sub.options);
        for (var, values) in form_fields(x) {
            match (var.as_str(), values.first().map(String::as_str)) {
                ("pubsub#deliver", Some("1" | "true")) => deliver = true,
                ("pubsub#deliver", Some("0" | "false")) => deliver = false,
                _ => return Err(fail(C::BadRequest, "invalid-options")),
            }
        }
        let mut stored = options_form(deliver);
        stored.set_attr("type", "submit");
        sub.options = stored.to_xml();
        self.storage()
            .pubsub_set_subscription(self.service(), &sub)
            .await
            .map_err(internal)?;
        Ok(IqReply::Result(None))
    }

    /// XEP-0060 §7.1 publish, with XEP-0163 §3 auto-create and §7.1.5
    /// publish-options.
    async fn publish(&self, ps: &Element, action: &Element) -> Answer {
        if matches!(self.svc, Svc::Pep(_)) && !self.is_account() {
            // §7.1.3.1; in PEP only the account publishes.
            return Err(IqReply::Error(C::Forbidden));
        }
        let node = node_of(action)?;
        let mut items = action.children().filter(|c| c.is("item", ns::PUBSUB));
        let Some(item) = items.next() else {
            return Err(fail(C::BadRequest, "item-required"));
        };
        if items.next().is_some() {
            return Err(fail(C::BadRequest, "invalid-payload"));
        }
        let mut payloads = item.children();
        let payload = match (payloads.next(), payloads.next()) {
            (Some(p), None) => p,
            (None, _) => return Err(fail(C::BadRequest, "payload-required")),
            (Some(_), Some(_)) => return Err(fail(C::BadRequest, "invalid-payload")),
        };
        let payload_xml = payload.to_xml();
        if payload_xml.len() > self.shared.options.max_payload_bytes {
            return Err(fail(C::NotAcceptable, "payload-too-big"));
        }
        let options = match ps.get_child("publish-options", ns::PUBSUB) {
            Some(po) => match po.get_child("x", ns::DATA_FORMS) {
                Some(x) if form_type(x).as_deref() == Some(ns::PUBSUB_PUBLISH_OPTIONS) => Some(x),
                Some(_) => return Err(IqReply::Error(C::BadRequest)),
                None => None,
            },
            None => None,
        };
        let config = match self.storage().pubsub_node(self.service(), node).await {
            Ok(Some(n)) => {
                let config = NodeConfig::from_stored(&n.config);
                self.may_publish(node, &config).await?;
                if let Some(x) = options {
                    precondition(&config, x)?;
                }
                config
            }
            // §7.1.3.3: a hosted service does not create on publish.
            Ok(None) if matches!(self.svc, Svc::Hosted(_)) => {
                return Err(IqReply::Error(C::ItemNotFound));
            }
            Ok(None) => {
                // §7.1.5: created with the options as its configuration.
                let default = self.svc.default_config();
                let config = match options {
                    Some(x) => default.apply(x).map_err(|e| match e {
                        ConfigError::Invalid(f) | ConfigError::PreconditionNotMet(f) => {
                            precondition_failed(&f)
                        }
                    })?,
                    None => default,
                };
                let config = self.acceptable(config)?;
                match self.create_node(node, &config).await {
                    Ok(()) => config,
                    // Created meanwhile by another resource: publish to it.
                    Err(IqReply::Error(C::Conflict)) => {
                        let config = self.node(node).await?;
                        if let Some(x) = options {
                            precondition(&config, x)?;
                        }
                        config
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(internal(e)),
        };
        let id = match item.attr("id") {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => new_item_id(),
        };
        let stored = PubsubItem {
            id: id.clone(),
            publisher: self.who.as_str().to_owned(),
            payload: payload_xml,
        };
        if config.persist_items {
            let keep = config.max_items.resolve(self.shared.options.max_items);
            self.storage()
                .pubsub_publish(self.service(), node, &stored, Some(keep))
                .await
                .map_err(internal)?;
        }
        self.broadcast(node, &config, &items_event(node, &config, &[stored]))
            .await;
        if let Svc::Pep(owner) = self.svc {
            if node == super::avatar::METADATA {
                super::avatar::to_vcard(self.ctx.services, owner, payload).await;
            }
            if node == super::vcard4::NODE {
                super::vcard4::to_vcard_temp(self.ctx.services, owner, payload).await;
            }
        }
        // §7.1.2: the item id, which the publisher may not know.
        Ok(IqReply::Result(Some(
            Element::new("pubsub", ns::PUBSUB).with_child(
                Element::new("publish", ns::PUBSUB)
                    .with_attr("node", node)
                    .with_child(Element::new("item", ns::PUBSUB).with_attr("id", id)),
            ),
        )))
    }

    /// §7.2 retract.
    async fn retract(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        let Some(id) = action
            .get_child("item", ns::PUBSUB)
            .and_then(|i| i.attr("id"))
            .filter(|i| !i.is_empty())
        else {
            return Err(fail(C::BadRequest, "item-required"));
        };
        let config = self.node(node).await?;
        // §7.2.3.1: owners and publishers.
        let aff = self.affiliation(node, &self.who).await?;
        if !self.is_owner(node).await? && aff.as_deref() != Some("publisher") {
            return Err(IqReply::Error(C::Forbidden));
        }
        if !config.persist_items {
            return Err(unsupported("persistent-items"));
        }
        let removed = self
            .storage()
            .pubsub_retract(self.service(), node, id)
            .await
            .map_err(internal)?;
        if !removed {
            return Err(IqReply::Error(C::ItemNotFound));
        }
        // §7.2.2.1: only when asked, and unless the node says otherwise.
        let asked = matches!(action.attr("notify"), Some("1" | "true"));
        if asked && config.notify_retract {
            let event = Element::new("items", ns::PUBSUB_EVENT)
                .with_attr("node", node)
                .with_child(Element::new("retract", ns::PUBSUB_EVENT).with_attr("id", id));
            self.broadcast(node, &config, &event).await;
        }
        Ok(IqReply::Result(None))
    }

    /// §6.1 subscribe; §6.1.7 the last item follows the result.
    async fn subscribe(&self, ps: &Element, action: &Element) -> Answer {
        let node = node_of(action)?;
        let jid = match action.attr("jid").map(str::parse::<Jid>) {
            Some(Ok(j)) => j,
            _ => return Err(fail(C::BadRequest, "invalid-jid")),
        };
        if jid.bare() != self.who {
            return Err(fail(C::BadRequest, "invalid-jid"));
        }
        if ps.get_child("options", ns::PUBSUB).is_some() {
            return Err(unsupported("subscription-options"));
        }
        let config = self.node(node).await?;
        let existing = self.subscriptions_of_requester(Some(node)).await?;
        if existing
            .iter()
            .any(|s| s.jid == jid.as_str() && s.state == "pending")
        {
            return Err(fail(C::NotAuthorized, "pending-subscription"));
        }
        let aff = self.affiliation(node, &self.who).await?;
        let state = if config.access_model == super::config::AccessModel::Authorize
            && !self.is_owner(node).await?
            && !matches!(aff.as_deref(), Some("member" | "publisher"))
            && !existing
                .iter()
                .any(|s| s.jid == jid.as_str() && s.state == "subscribed")
        {
            if aff.as_deref() == Some("outcast") {
                return Err(IqReply::Error(C::Forbidden));
            }
            // Approved by the owner through §8.8.2 (subscriptions set).
            "pending"
        } else {
            self.check_access(node, &config).await?;
            "subscribed"
        };
        self.storage()
            .pubsub_set_subscription(
                self.service(),
                &PubsubSubscription {
                    node: node.to_owned(),
                    jid: jid.as_str().to_owned(),
                    subid: String::new(),
                    state: state.to_owned(),
                    options: String::new(),
                },
            )
            .await
            .map_err(internal)?;
        let payload = Element::new("pubsub", ns::PUBSUB).with_child(
            Element::new("subscription", ns::PUBSUB)
                .with_attr("node", node)
                .with_attr("jid", jid.as_str())
                .with_attr("subscription", state),
        );
        let reply = self.ctx.answer_in_order(self.iq, Some(payload));
        if state == "subscribed" && config.send_last_published_item != SendLast::Never {
            let last = self
                .storage()
                .pubsub_items(self.service(), node, &[], Some(1))
                .await
                .map_err(internal)?;
            if !last.is_empty() {
                let event = items_event(node, &config, &last);
                self.ctx
                    .router
                    .route(notify::event_message(self.service(), &jid, event))
                    .await;
            }
        }
        Ok(reply)
    }

    /// §6.2 unsubscribe.
    async fn unsubscribe(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        let jid = match action.attr("jid").map(str::parse::<Jid>) {
            Some(Ok(j)) => j,
            _ => return Err(fail(C::BadRequest, "invalid-jid")),
        };
        self.node(node).await?;
        if jid.bare() != self.who && !self.is_owner(node).await? {
            return Err(IqReply::Error(C::Forbidden));
        }
        let removed = self
            .storage()
            .pubsub_remove_subscription(self.service(), node, jid.as_str(), "")
            .await
            .map_err(internal)?;
        if !removed {
            return Err(fail(C::UnexpectedRequest, "not-subscribed"));
        }
        Ok(IqReply::Result(None))
    }

    /// §8.1 create, with §8.1.3 create-and-configure.
    async fn create(&self, ps: &Element, action: &Element) -> Answer {
        let node = match (self.svc, action.attr("node").filter(|n| !n.is_empty())) {
            (Svc::Pep(_), _) if !self.is_account() => return Err(IqReply::Error(C::Forbidden)),
            (Svc::Pep(_), None) => {
                // PEP has no instant nodes.
                return Err(fail(C::NotAcceptable, "nodeid-required"));
            }
            (Svc::Pep(_), Some(n)) => n.to_owned(),
            (Svc::Hosted(h), requested) => {
                let local = self.ctx.router.is_local(self.who.domain());
                if h.creators == PubsubCreators::Local && !local {
                    return Err(IqReply::Error(C::Forbidden));
                }
                // §8.1.2: an instant node gets a unique id.
                requested.map_or_else(new_item_id, str::to_owned)
            }
        };
        let instant = action.attr("node").is_none_or(str::is_empty);
        let mut config = self.svc.default_config();
        if let Some(x) = ps
            .get_child("configure", ns::PUBSUB)
            .and_then(|c| c.get_child("x", ns::DATA_FORMS))
        {
            config = config
                .apply(x)
                .map_err(|_| IqReply::Error(C::NotAcceptable))?;
        }
        let config = self.acceptable(config)?;
        self.create_node(&node, &config).await?;
        // §8.1.2: only an instant node's id is news to the requester.
        Ok(IqReply::Result(instant.then(|| {
            Element::new("pubsub", ns::PUBSUB)
                .with_child(Element::new("create", ns::PUBSUB).with_attr("node", node))
        })))
    }

    /// §6.5 retrieve items: all, the newest `max_items`, by id, or a page
    /// (§6.5.4, XEP-0059) in publication order.
    async fn items(&self, ps: &Element, action: &Element) -> Answer {
        let node = node_of(action)?;
        let config = self.node(node).await?;
        self.check_access(node, &config).await?;
        let ids: Vec<String> = action
            .children()
            .filter(|c| c.is("item", ns::PUBSUB))
            .filter_map(|c| c.attr("id"))
            .map(str::to_owned)
            .collect();
        let newest = match action.attr("max_items") {
            Some(m) => Some(
                m.parse::<u64>()
                    .map_err(|_| IqReply::Error(C::BadRequest))?,
            ),
            None => None,
        };
        let rsm = ps.get_child("set", ns::RSM);
        let mut items = self
            .storage()
            .pubsub_items(self.service(), node, &ids, newest)
            .await
            .map_err(internal)?;
        let page = match rsm {
            Some(set) if ids.is_empty() => {
                // `<max>` is capped at what a node can hold anyway.
                let all = items.len();
                Some(
                    crate::rsm::page(set, &mut items, all, |i| i.id.as_str())
                        .map_err(IqReply::Error)?,
                )
            }
            _ => None,
        };
        let mut el = Element::new("items", ns::PUBSUB).with_attr("node", node);
        for item in &items {
            let mut i = Element::new("item", ns::PUBSUB).with_attr("id", item.id.as_str());
            if config.itemreply_publisher {
                i.set_attr("publisher", item.publisher.as_str());
            }
            if let Ok(p) = Element::from_xml(&item.payload) {
                i.push(p);
            }
            el.push(i);
        }
        let mut answer = Element::new("pubsub", ns::PUBSUB).with_child(el);
        if let Some(page) = page {
            answer.push(page);
        }
        Ok(IqReply::Result(Some(answer)))
    }

    /// §5.6 the requester's subscriptions.
    async fn own_subscriptions(&self, action: &Element) -> Answer {
        let node = action.attr("node");
        let mut list = Element::new("subscriptions", ns::PUBSUB);
        if let Some(n) = node {
            list.set_attr("node", n);
        }
        for s in self.subscriptions_of_requester(node).await? {
            list.push(subscription_element(ns::PUBSUB, &s, node.is_none()));
        }
        Ok(IqReply::Result(Some(
            Element::new("pubsub", ns::PUBSUB).with_child(list),
        )))
    }

    /// §5.7 the requester's affiliations.
    async fn own_affiliations(&self, action: &Element) -> Answer {
        let node = action.attr("node");
        let mut list = Element::new("affiliations", ns::PUBSUB);
        if let Some(n) = node {
            list.set_attr("node", n);
        }
        let affs = self
            .storage()
            .pubsub_affiliations_of(self.service(), self.who.as_str())
            .await
            .map_err(internal)?;
        for (n, a) in affs.iter().filter(|(n, _)| node.is_none_or(|w| w == n)) {
            list.push(
                Element::new("affiliation", ns::PUBSUB)
                    .with_attr("node", n.as_str())
                    .with_attr("affiliation", a.as_str()),
            );
        }
        Ok(IqReply::Result(Some(
            Element::new("pubsub", ns::PUBSUB).with_child(list),
        )))
    }

    /// §8.2.1 the configuration form.
    async fn get_configuration(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        let config = self.node(node).await?;
        self.owner_only(node).await?;
        Ok(IqReply::Result(Some(
            Element::new("pubsub", ns::PUBSUB_OWNER).with_child(
                Element::new("configure", ns::PUBSUB_OWNER)
                    .with_attr("node", node)
                    .with_child(config.to_form()),
            ),
        )))
    }

    /// §8.2.4 configure; §8.2.5.3 notifies when `notify_config` is on.
    async fn configure(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        let config = self.node(node).await?;
        self.owner_only(node).await?;
        let Some(x) = action.get_child("x", ns::DATA_FORMS) else {
            return Err(IqReply::Error(C::BadRequest));
        };
        if x.attr("type") == Some("cancel") {
            return Ok(IqReply::Result(None));
        }
        let next = config.apply(x).map_err(|e| {
            let (ConfigError::Invalid(f) | ConfigError::PreconditionNotMet(f)) = e;
            IqReply::failed(
                StanzaError::new(C::NotAcceptable).with_text(format!("{f} cannot take that value")),
            )
        })?;
        let next = self.acceptable(next)?;
        self.storage()
            .pubsub_configure_node(self.service(), node, &next.to_stored())
            .await
            .map_err(internal)?;
        if next.persist_items {
            // A smaller max_items takes effect at once.
            let keep = next.max_items.resolve(self.shared.options.max_items);
            let items = self
                .storage()
                .pubsub_items(self.service(), node, &[], None)
                .await
                .map_err(internal)?;
            let excess = items
                .len()
                .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
            for old in &items[..excess] {
                self.storage()
                    .pubsub_retract(self.service(), node, &old.id)
                    .await
                    .map_err(internal)?;
            }
        }
        if next.notify_config {
            let mut event = Element::new("configuration", ns::PUBSUB_EVENT).with_attr("node", node);
            if next.deliver_payloads {
                let mut form = next.to_form();
                form.set_attr("type", "result");
                event.push(form);
            }
            self.broadcast(node, &next, &event).await;
        }
        Ok(IqReply::Result(None))
    }

    /// §8.4 delete, notifying with the optional redirect.
    async fn delete(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        let config = self.node(node).await?;
        self.owner_only(node).await?;
        // Who to tell is decided while the node still exists.
        let to = if config.notify_delete {
            notify::recipients(self.ctx.router, self.ctx.services, self.svc, node, &config).await
        } else {
            Vec::new()
        };
        self.storage()
            .pubsub_delete_node(self.service(), node)
            .await
            .map_err(internal)?;
        let mut event = Element::new("delete", ns::PUBSUB_EVENT).with_attr("node", node);
        if let Some(uri) = action
            .get_child("redirect", ns::PUBSUB_OWNER)
            .and_then(|r| r.attr("uri"))
        {
            event.push(Element::new("redirect", ns::PUBSUB_EVENT).with_attr("uri", uri));
        }
        for jid in to {
            self.ctx
                .router
                .route(notify::event_message(self.service(), &jid, event.clone()))
                .await;
        }
        Ok(IqReply::Result(None))
    }

    /// §8.5 purge.
    async fn purge(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        let config = self.node(node).await?;
        self.owner_only(node).await?;
        if !config.persist_items {
            return Err(unsupported("persistent-items"));
        }
        self.storage()
            .pubsub_purge(self.service(), node)
            .await
            .map_err(internal)?;
        let event = Element::new("purge", ns::PUBSUB_EVENT).with_attr("node", node);
        self.broadcast(node, &config, &event).await;
        Ok(IqReply::Result(None))
    }

    /// §8.8.1 the node's subscriptions, for its owner.
    async fn node_subscriptions(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        self.node(node).await?;
        self.owner_only(node).await?;
        let subs = self
            .storage()
            .pubsub_subscriptions(self.service(), Some(node), None)
            .await
            .map_err(internal)?;
        let mut list = Element::new("subscriptions", ns::PUBSUB_OWNER).with_attr("node", node);
        for s in &subs {
            list.push(subscription_element(ns::PUBSUB_OWNER, s, false));
        }
        Ok(IqReply::Result(Some(
            Element::new("pubsub", ns::PUBSUB_OWNER).with_child(list),
        )))
    }

    /// §8.8.2 the owner changes subscriptions (`none` removes one; setting
    /// a pending one to `subscribed` approves it). All or nothing: the
    /// entries are checked before any is applied (§8.8.2.4).
    async fn set_subscriptions(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        self.node(node).await?;
        self.owner_only(node).await?;
        let mut changes = Vec::new();
        for s in action
            .children()
            .filter(|c| c.is("subscription", ns::PUBSUB_OWNER))
        {
            let jid = s.attr("jid").and_then(|j| j.parse::<Jid>().ok());
            let state = s.attr("subscription");
            match (jid, state) {
                (Some(j), Some(st @ ("none" | "subscribed" | "pending" | "unconfigured"))) => {
                    changes.push((j, st.to_owned()))
                }
                _ => return Err(IqReply::Error(C::NotAcceptable)),
            }
        }
        for (jid, state) in changes {
            if state == "none" {
                self.storage()
                    .pubsub_remove_subscription(self.service(), node, jid.as_str(), "")
                    .await
                    .map_err(internal)?;
            } else {
                self.storage()
                    .pubsub_set_subscription(
                        self.service(),
                        &PubsubSubscription {
                            node: node.to_owned(),
                            jid: jid.as_str().to_owned(),
                            subid: String::new(),
                            state,
                            options: String::new(),
                        },
                    )
                    .await
                    .map_err(internal)?;
            }
        }
        Ok(IqReply::Result(None))
    }

    /// §8.9.1 the node's affiliations, for its owner.
    async fn node_affiliations(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        self.node(node).await?;
        self.owner_only(node).await?;
        let affs = self
            .storage()
            .pubsub_affiliations(self.service(), node)
            .await
            .map_err(internal)?;
        let mut list = Element::new("affiliations", ns::PUBSUB_OWNER).with_attr("node", node);
        for (jid, a) in &affs {
            list.push(
                Element::new("affiliation", ns::PUBSUB_OWNER)
                    .with_attr("jid", jid.as_str())
                    .with_attr("affiliation", a.as_str()),
            );
        }
        Ok(IqReply::Result(Some(
            Element::new("pubsub", ns::PUBSUB_OWNER).with_child(list),
        )))
    }

    /// §8.9.2 the owner changes affiliations (`none` removes one). The
    /// account stays the owner of its PEP nodes and a hosted node keeps at
    /// least one owner; a batch naming a JID twice is `bad-request`, any
    /// invalid entry `not-acceptable`, and nothing is applied then
    /// (§8.9.2.4).
    async fn set_affiliations(&self, action: &Element) -> Answer {
        let node = node_of(action)?;
        self.node(node).await?;
        self.owner_only(node).await?;
        let mut changes: Vec<(BareJid, String)> = Vec::new();
        for a in action
            .children()
            .filter(|c| c.is("affiliation", ns::PUBSUB_OWNER))
        {
            let jid = a
                .attr("jid")
                .and_then(|j| j.parse::<Jid>().ok())
                .map(|j| j.bare());
            let aff = a.attr("affiliation");
            let (Some(jid), Some(aff)) = (jid, aff) else {
                return Err(IqReply::Error(C::NotAcceptable));
            };
            let account = matches!(self.svc, Svc::Pep(owner) if *owner == jid);
            if !matches!(
                aff,
                "none" | "owner" | "publisher" | "publish-only" | "member" | "outcast"
            ) || account
            {
                return Err(IqReply::Error(C::NotAcceptable));
            }
            if changes.iter().any(|(j, _)| *j == jid) {
                return Err(IqReply::Error(C::BadRequest));
            }
            changes.push((jid, aff.to_owned()));
        }
        let current = self
            .storage()
            .pubsub_affiliations(self.service(), node)
            .await
            .map_err(internal)?;
        let owners_left = current
            .iter()
            .filter(|(j, a)| a == "owner" && !changes.iter().any(|(c, _)| c.as_str() == j))
            .count()
            + changes.iter().filter(|(_, a)| a == "owner").count();
        if owners_left == 0 {
            return Err(IqReply::failed(
                StanzaError::new(C::NotAcceptable).with_text("a node keeps at least one owner"),
            ));
        }
        for (jid, aff) in changes {
            let aff = (aff != "none").then_some(aff.as_str());
            self.storage()
                .pubsub_set_affiliation(self.service(), node, jid.as_str(), aff)
                .await
                .map_err(internal)?;
        }
        Ok(IqReply::Result(None))
    }
}

/// Checks publish-options preconditions on an existing node (§7.1.5).
fn precondition(config: &NodeConfig, x: &Element) -> Result<(), IqReply> {
    config.check_preconditions(x).map_err(|e| match e {
        ConfigError::Invalid(f) | ConfigError::PreconditionNotMet(f) => precondition_failed(&f),
    })
}

/// `conflict` with `<precondition-not-met/>`, naming the field. A field
/// Chorus does not know cannot be met either: the XEP wants such a publish
/// refused without naming a condition.
fn precondition_failed(field: &str) -> IqReply {
    IqReply::failed(
        StanzaError::new(C::Conflict)
            .with_app(Element::new("precondition-not-met", ns::PUBSUB_ERRORS))
            .with_text(format!("Field does not match: {field}")),
    )
}

fn subscription_element(namespace: &str, s: &PubsubSubscription, with_node: bool) -> Element {
    let mut e = Element::new("subscription", namespace)
        .with_attr("jid", s.jid.as_str())
        .with_attr("subscription", s.state.as_str());
    if with_node {
        e.set_attr("node", s.node.as_str());
    }
    if !s.subid.is_empty() {
        e.set_attr("subid", s.subid.as_str());
    }
    e
}

/// disco#items of an account (XEP-0163 §6.2): the nodes the requester may
/// retrieve from.
pub async fn account_disco_items(ctx: &IqCtx<'_>, account: &BareJid) -> Vec<Element> {
    disco_items(ctx, &Svc::Pep(account.clone())).await
}

/// disco#info of one of an account's nodes (XEP-0060 §5.4).
pub async fn account_node_info(ctx: &IqCtx<'_>, account: &BareJid, node: &str) -> IqReply {
    node_info(ctx, &Svc::Pep(account.clone()), node).await
}

/// The service's nodes the requester may retrieve from (XEP-0060 §5.2),
/// as disco#items.
pub async fn disco_items(ctx: &IqCtx<'_>, svc: &Svc) -> Vec<Element> {
    let storage = &ctx.services.storage;
    let nodes = match storage.pubsub_nodes(svc.jid()).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "pubsub nodes unreadable");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for n in nodes {
        let config = NodeConfig::from_stored(&n.config);
        if !visible(ctx, svc, &n.node, &config).await {
            continue;
        }
        let mut e = Element::new("item", ns::DISCO_ITEMS)
            .with_attr("jid", svc.jid())
            .with_attr("node", n.node.as_str());
        if !config.title.is_empty() {
            e.set_attr("name", config.title.as_str());
        }
        out.push(e);
    }
    out
}

/// Whether the requester may see the node (XEP-0163 §6.2): what its access
/// model says, judged against the node's owner (the account for PEP).
async fn visible(ctx: &IqCtx<'_>, svc: &Svc, node: &str, config: &NodeConfig) -> bool {
    let storage = &ctx.services.storage;
    let who = ctx.sender.bare();
    let affs = notify::affiliations(storage, svc.jid(), node).await;
    let owner = match svc {
        Svc::Pep(owner) => Some(owner.clone()),
        Svc::Hosted(_) => notify::first_owner(&affs),
    };
    match &owner {
        Some(owner) => {
            let item = notify::roster_item_of(storage, owner, &who).await;
            let aff = notify::affiliation_of(&affs, &who);
            access(config, owner, &who, item.as_ref(), aff, false).is_ok()
        }
        None => config.access_model == super::config::AccessModel::Open,
    }
}

/// The node's configuration if it exists and the requester may see it.
pub async fn visible_node(ctx: &IqCtx<'_>, svc: &Svc, node: &str) -> Option<NodeConfig> {
    let n = ctx
        .services
        .storage
        .pubsub_node(svc.jid(), node)
        .await
        .ok()
        .flatten()?;
    let config = NodeConfig::from_stored(&n.config);
    visible(ctx, svc, node, &config).await.then_some(config)
}

/// disco#info of a node (XEP-0060 §5.4): a leaf, with its metadata;
/// `item-not-found` for a node the requester may not see.
pub async fn node_info(ctx: &IqCtx<'_>, svc: &Svc, node: &str) -> IqReply {
    let Some(config) = visible_node(ctx, svc, node).await else {
        return IqReply::Error(C::ItemNotFound);
    };
    let affs = notify::affiliations(&ctx.services.storage, svc.jid(), node).await;
    let owners: Vec<String> = affs
        .into_iter()
        .filter(|(_, a)| a == "owner")
        .map(|(j, _)| j)
        .collect();
    let mut meta = form_head("result", "http://jabber.org/protocol/pubsub#meta-data");
    let fields: [(&str, Vec<String>); 6] = [
        (
            "pubsub#access_model",
            vec![config.access_model.as_str().to_owned()],
        ),
        (
            "pubsub#publish_model",
            vec![config.publish_model.as_str().to_owned()],
        ),
        ("pubsub#title", vec![config.title.clone()]),
        ("pubsub#description", vec![config.description.clone()]),
        ("pubsub#type", vec![config.payload_type.clone()]),
        ("pubsub#owner", owners),
    ];
    for (var, values) in fields {
        let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", var);
        for v in values {
            f.push(Element::new("value", ns::DATA_FORMS).with_text(v));
        }
        meta.push(f);
    }
    IqReply::Result(Some(
        Element::new("query", ns::DISCO_INFO)
            .with_attr("node", node)
            .with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "pubsub")
                    .with_attr("type", "leaf"),
            )
            .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::PUBSUB))
            .with_child(meta),
    ))
}
