//! Presence and subscriptions (RFC 6121 §3-§4), split as the RFC splits
//! them between the user's server and the contact's server.
//!
//! The user's half ([`Router::subscription`], [`Router::broadcast`])
//! updates the sender's roster and sends the stanza on through
//! [`Router::route`]; when the contact is local, routing hands it to the
//! contact's half ([`Router::inbound_subscription`], [`Router::probe`]),
//! which updates the recipient's roster and delivers. Answers the
//! contact's server gives on its own (`subscribed`, `unsubscribed`, probe
//! answers) travel back the same way. Nothing here assumes the other end is
//! local, so a remote contact works once server-to-server routes to it.
//! The state transitions follow RFC 6121 Appendix A; each roster change is
//! pushed to the account's interested resources (§2.1.6).

use std::sync::Arc;

use chorus_jid::{BareJid, FullJid, Jid};
use chorus_proto::{ns, PresenceType};
use chorus_storage::{RosterItem, RosterStore, Subscription};
use chorus_xml::Element;

use crate::route::Router;
use crate::table::Session;

/// A roster item as RFC 6121 §2.1.2 writes it.
pub fn item_element(item: &RosterItem) -> Element {
    let mut e = Element::new("item", ns::ROSTER)
        .with_attr("jid", item.jid.as_str())
        .with_attr(
            "subscription",
            match item.subscription {
                Subscription::None => "none",
                Subscription::To => "to",
                Subscription::From => "from",
                Subscription::Both => "both",
            },
        );
    if let Some(n) = &item.name {
        e.set_attr("name", n.as_str());
    }
    if item.ask {
        e.set_attr("ask", "subscribe");
    }
    if item.approved {
        // §3.4: pre-approval is shown to the user.
        e.set_attr("approved", "true");
    }
    for g in &item.groups {
        e.push(Element::new("group", ns::ROSTER).with_text(g.as_str()));
    }
    e
}

fn presence(kind: &str, from: &str, to: &str) -> Element {
    let mut p = Element::new("presence", ns::JABBER_CLIENT)
        .with_attr("from", from)
        .with_attr("to", to);
    if !kind.is_empty() {
        p.set_attr("type", kind);
    }
    p
}

fn new_item(jid: &BareJid) -> RosterItem {
    RosterItem {
        jid: jid.to_string(),
        name: None,
        subscription: Subscription::None,
        ask: false,
        approved: false,
        groups: Vec::new(),
    }
}

fn has_from(s: Subscription) -> bool {
    matches!(s, Subscription::From | Subscription::Both)
}

fn has_to(s: Subscription) -> bool {
    matches!(s, Subscription::To | Subscription::Both)
}

impl Router {
    /// Sends a roster push for `item` (or its removal) to every resource of
    /// `user` that asked for the roster.
    pub fn push_roster(&self, user: &BareJid, version: u64, item: Element) {
        self.hooks().roster_changed(self, user, version, &item);
        for s in self.sessions.resources(user) {
            if !s.interested() {
                continue;
            }
            let push = Element::new("iq", ns::JABBER_CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("push-{version}-{}", s.conn_id))
                .with_attr("from", user.to_string())
                .with_attr("to", s.full.to_string())
                .with_child(
                    Element::new("query", ns::ROSTER)
                        .with_attr("ver", version.to_string())
                        .with_child(item.clone()),
                );
            s.sink.deliver(push);
        }
    }

    /// Whether a block list stands between `a` and `b`, in either
    /// direction, for presence the router sends on its own (the hooks
    /// decide: XEP-0191 lives in the blocking module).
    pub async fn blocked_between(&self, a: &Jid, b: &Jid) -> bool {
        a.bare() != b.bare() && self.hooks().presence_blocked(self, a, b).await
    }

    /// Delivers `stanza` (presence from `from`) to every available resource
    /// of `to` that no block list separates from `from`, so an entry naming
    /// one resource of a contact hides presence from that resource alone.
    pub async fn to_available_unblocked(&self, from: &Jid, to: &BareJid, stanza: &Element) -> bool {
        let mut any = false;
        for s in self.available(to) {
            if !self.blocked_between(from, s.full.as_jid()).await {
                any |= s.sink.deliver(stanza.clone());
            }
        }
        any
    }

    /// Block lists for subscription stanzas, which the user's half checks
    /// before touching its roster: true when `stanza` must go no further
    /// between `user` and `contact`. The error for a JID the user blocked
    /// goes to the sending session (the stanza's full `from`, when it has
    /// one); from a JID the contact blocked, nothing is answered.
    async fn subscription_blocked(
        &self,
        user: &BareJid,
        contact: &BareJid,
        stanza: &Element,
    ) -> bool {
        let sender: Option<FullJid> = stanza.attr("from").and_then(|f| f.parse().ok());
        // Addressed as it will travel, so the error reads from the contact.
        let mut addressed = stanza.clone();
        addressed.set_attr(
            "from",
            sender
                .as_ref()
                .map_or_else(|| user.to_string(), ToString::to_string),
        );
        addressed.set_attr("to", contact.to_string());
        let Some(outcome) = self
            .hooks()
            .filter(self, chorus_proto::StanzaKind::Presence, &addressed)
            .await
        else {
            return false;
        };
        if let (crate::Outcome::Reply(e), Some(sender)) = (outcome, sender) {
            if let Some(s) = self.sessions.get(&sender) {
                s.sink.deliver(e);
            }
        }
        true
    }

    async fn item(&self, user: &BareJid, contact: &BareJid) -> Option<RosterItem> {
        let node = user.node()?;
        match self
            .storage
            .roster_item(node, user.domain(), &contact.to_string())
            .await
        {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "roster read failed");
                None
            }
        }
    }

    /// Stores `item` in `user`'s roster and pushes it.
    async fn save(&self, user: &BareJid, item: &RosterItem) {
        let Some(node) = user.node() else { return };
        match self
            .storage
            .put_roster_item(node, user.domain(), item)
            .await
        {
            Ok(version) => self.push_roster(user, version, item_element(item)),
            Err(e) => tracing::error!(error = %e, "roster write failed"),
        }
    }

    fn available(&self, user: &BareJid) -> Vec<Arc<Session>> {
        self.sessions
            .resources(user)
            .into_iter()
            .filter(|s| s.available())
            .collect()
    }

    /// Routes a presence the server generates on someone's behalf; an
    /// error about it goes nowhere (there is no client to show it to).
    async fn route_presence(&self, stanza: Element) {
        let _ = Box::pin(self.route(stanza)).await;
    }

    /// Sends the current presence of each of `from`'s available resources
    /// to `to` (§3.1.5: to a new subscriber; §4.3.2: answering a probe).
    async fn send_current_presence(&self, from: &BareJid, to: &str) {
        for s in self.available(from) {
            if let Some(mut p) = s.last_presence() {
                p.set_attr("from", s.full.to_string());
                p.set_attr("to", to);
                self.route_presence(p).await;
            }
        }
    }

    /// Unavailable presence from each of `from`'s available resources to
    /// `to` (§3.2.3, §3.3.3: a subscription ended).
    async fn send_unavailable(&self, from: &BareJid, to: &BareJid) {
        for s in self.available(from) {
            let p = presence("unavailable", &s.full.to_string(), &to.to_string());
            self.route_presence(p).await;
        }
    }

    /// A subscription presence (subscribe, subscribed, unsubscribe,
    /// unsubscribed) sent by `user` to `contact`: the user's server half of
    /// RFC 6121 §3 (§3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4). The stanza then
    /// travels like any other to the contact's server, this one's
    /// [`Router::inbound_subscription`] when the contact is local. Returns
    /// an error for the sending session when the contact's domain cannot be
    /// reached at all (no server-to-server), before the roster changes.
    pub async fn subscription(
        &self,
        user: &BareJid,
        contact: &BareJid,
        kind: PresenceType,
        stanza: Element,
    ) -> Option<Element> {
        if user == contact {
            // §4.2.2: a user is implicitly subscribed to its own presence,
            // and its own JID is no roster item (roster sets refuse it, so
            // one made here could never be removed): nothing to change.
            return None;
        }
        if self.routes.get(contact.domain()).is_none() && !self.routes.has_remote() {
            // RFC 6120 §8.3.3.15, before a roster shows a request that
            // cannot leave the server.
            return chorus_proto::error_reply(
                &stanza,
                &chorus_proto::StanzaError::new(
                    chorus_proto::StanzaErrorCondition::RemoteServerNotFound,
                ),
            );
        }
        // XEP-0191 §3.3: no subscription stanza crosses a block list.
        if self.subscription_blocked(user, contact, &stanza).await {
            return None;
        }
        // RFC 6121 §3.1.2: a request that "cannot be locally delivered ...
        // (e.g. ... the local contact does not exist)" gets "an appropriate
        // error stanza" and changes no roster; service-unavailable as for
        // the other stanzas to a user that does not exist (§8.5.1).
        if kind == PresenceType::Subscribe
            && self.is_local(contact.domain())
            && !self.storage_exists(contact).await
        {
            return chorus_proto::error_reply(
                &stanza,
                &chorus_proto::StanzaError::new(
                    chorus_proto::StanzaErrorCondition::ServiceUnavailable,
                ),
            );
        }
        // §3.1.2: subscription stanzas are stamped with the bare JIDs.
        let mut stanza = stanza;
        stanza.set_attr("from", user.to_string());
        stanza.set_attr("to", contact.to_string());
        let mut item = self.item(user, contact).await;
        match kind {
            PresenceType::Subscribe => {
                // §3.1.2: the user's roster shows the pending request.
                let mut i = item.take().unwrap_or_else(|| new_item(contact));
                if !has_to(i.subscription) && !i.ask {
                    i.ask = true;
                    self.save(user, &i).await;
                }
            }
            PresenceType::Subscribed => {
                // §3.1.4 with §3.4: approving a request, or pre-approving one.
                let pending = self.drop_pending(user, contact).await;
                let mut i = item.take().unwrap_or_else(|| new_item(contact));
                if has_from(i.subscription) {
                    return None;
                }
                if !pending {
                    if !i.approved {
                        i.approved = true;
                        self.save(user, &i).await;
                    }
                    return None;
                }
                i.subscription = match i.subscription {
                    Subscription::To => Subscription::Both,
                    _ => Subscription::From,
                };
                i.approved = false;
                self.save(user, &i).await;
                self.route_presence(stanza).await;
                // §3.1.5: the new subscriber gets our current presence.
                self.send_current_presence(user, &contact.to_string()).await;
                return None;
            }
            PresenceType::Unsubscribe => {
                if let Some(mut i) = item.take() {
                    if has_to(i.subscription) || i.ask {
                        i.subscription = match i.subscription {
                            Subscription::Both => Subscription::From,
                            Subscription::To => Subscription::None,
                            s => s,
                        };
                        i.ask = false;
                        self.save(user, &i).await;
                    }
                }
            }
            PresenceType::Unsubscribed => {
                // A.2.4: denies a pending request, if any.
                self.drop_pending(user, contact).await;
                if let Some(mut i) = item.take() {
                    if has_from(i.subscription) || i.approved {
                        let had_from = has_from(i.subscription);
                        i.subscription = match i.subscription {
                            Subscription::Both => Subscription::To,
                            Subscription::From => Subscription::None,
                            s => s,
                        };
                        i.approved = false;
                        self.save(user, &i).await;
                        if had_from {
                            // §3.2.3: the contact stops seeing us.
                            self.send_unavailable(user, contact).await;
                        }
                    }
                }
            }
            _ => return None,
        }
        self.route_presence(stanza).await;
        None
    }

    /// The contact's server half (RFC 6121 §3.1.3, §3.1.6, §3.2.3,
    /// §3.3.3): a subscription stanza from `user`, wherever it comes from,
    /// reached the local account `contact`. Delivers only what Appendix A.3
    /// delivers: a subscribed, unsubscribe or unsubscribed that changes
    /// nothing on the contact's side, or a request already pending, is not
    /// passed on. Answers the contact's server gives on its own
    /// (`subscribed` for a pre-approved or existing subscription,
    /// `unsubscribed` for no such contact) are routed back to the user.
    pub(crate) async fn inbound_subscription(
        &self,
        contact: &BareJid,
        user: &BareJid,
        kind: PresenceType,
        stanza: Element,
    ) {
        let Some(cnode) = contact.node() else {
            return;
        };
        if !self.storage_exists(contact).await {
            // §8.5.1: for a user that does not exist, a subscription
            // presence of any type is silently ignored (a local sender was
            // already answered by its own half, §3.1.2).
            return;
        }
        if kind != PresenceType::Subscribe {
            let Some(before) = self.apply_inbound(contact, user, kind).await else {
                // A.3.2-A.3.4: no state change, no delivery.
                return;
            };
            self.to_available_unblocked(user.as_jid(), contact, &stanza)
                .await;
            if kind == PresenceType::Unsubscribe && has_from(before) {
                // §3.3.3: the former subscriber stops seeing the contact.
                self.send_unavailable(contact, user).await;
            }
            return;
        }
        let mut i = self
            .item(contact, user)
            .await
            .unwrap_or_else(|| new_item(user));
        if has_from(i.subscription) {
            // §3.1.3: already subscribed: answer for the contact. The user's
            // side ignores the answer unless it was asking (A.3.2); if it
            // was, it now has the subscription, and with it the contact's
            // presence.
            let asking = self.user_asking(user, contact).await;
            let p = presence("subscribed", &contact.to_string(), &user.to_string());
            self.route_presence(p).await;
            if asking {
                self.send_current_presence(contact, &user.to_string()).await;
            }
            return;
        }
        if i.approved {
            // §3.4: pre-approved: subscribe at once, without asking.
            i.approved = false;
            i.subscription = match i.subscription {
                Subscription::To => Subscription::Both,
                _ => Subscription::From,
            };
            self.save(contact, &i).await;
            let p = presence("subscribed", &contact.to_string(), &user.to_string());
            self.route_presence(p).await;
            self.send_current_presence(contact, &user.to_string()).await;
            return;
        }
        // A.3.1: a request that is already pending is not delivered again.
        match self
            .storage
            .pending_subscription(cnode, contact.domain(), &user.to_string())
            .await
        {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot read pending subscription requests"),
        }
        // §3.1.3: remember the request and show it to the contact.
        if let Err(e) = self
            .storage
            .add_pending_subscription(cnode, contact.domain(), &user.to_string(), &stanza.to_xml())
            .await
        {
            tracing::error!(error = %e, "cannot store a subscription request");
        }
        self.to_available_unblocked(user.as_jid(), contact, &stanza)
            .await;
    }

    /// Whether `user` has a request to `contact` pending (the "Pending
    /// Out" of Appendix A), so that the `subscribed` answer subscribes it
    /// and the contact's presence must follow. Only a local user's roster
    /// can be read; a remote one is assumed to be asking (its server shows
    /// the presence or not; Prosody sends it the same way).
    async fn user_asking(&self, user: &BareJid, contact: &BareJid) -> bool {
        if !self.is_local(user.domain()) {
            return true;
        }
        self.item(user, contact).await.is_some_and(|i| i.ask)
    }

    /// A probe from `prober` reached the local account `contact` (RFC 6121
    /// §4.3.2): the contact's available resources answer with their last
    /// presence, if the prober is subscribed by the contact's roster; to
    /// anyone else nothing is revealed (the RFC's SHOULD of an
    /// `unsubscribed` answer is not taken: it would change the prober's
    /// roster on the strength of an unverified probe).
    pub(crate) async fn probe(&self, contact: &BareJid, prober: &Jid) {
        let subscribed = self
            .item(contact, &prober.bare())
            .await
            .is_some_and(|i| has_from(i.subscription));
        if !subscribed {
            return;
        }
        // Each answer is routed, so block lists apply (XEP-0191 §3.3).
        self.send_current_presence(contact, prober.as_str()).await;
    }

    /// Applies an inbound subscribed, unsubscribe or unsubscribed from
    /// `other` to `owner`'s side (Appendix A.3), pushing the changed item.
    /// Returns the subscription `owner` had if its state changed, `None` if
    /// nothing changed.
    async fn apply_inbound(
        &self,
        owner: &BareJid,
        other: &BareJid,
        kind: PresenceType,
    ) -> Option<Subscription> {
        // A.3.3: unsubscribe also withdraws a pending request ("None +
        // Pending In" becomes "None"), which needs no roster item.
        let withdrawn = kind == PresenceType::Unsubscribe && self.drop_pending(owner, other).await;
        let Some(mut i) = self.item(owner, other).await else {
            return withdrawn.then_some(Subscription::None);
        };
        let before = i.clone();
        match kind {
            PresenceType::Subscribed if i.ask => {
                i.ask = false;
                i.subscription = match i.subscription {
                    Subscription::From => Subscription::Both,
                    _ => Subscription::To,
                };
            }
            PresenceType::Unsubscribe => {
                i.subscription = match i.subscription {
                    Subscription::Both => Subscription::To,
                    Subscription::From => Subscription::None,
                    s => s,
                };
            }
            PresenceType::Unsubscribed => {
                i.ask = false;
                i.subscription = match i.subscription {
                    Subscription::Both => Subscription::From,
                    Subscription::To => Subscription::None,
                    s => s,
                };
            }
            _ => {}
        }
        if i == before {
            return withdrawn.then_some(before.subscription);
        }
        self.save(owner, &i).await;
        Some(before.subscription)
    }

    /// Forgets `other`'s pending request to `owner`; true if there was one.
    async fn drop_pending(&self, owner: &BareJid, other: &BareJid) -> bool {
        let Some(node) = owner.node() else {
            return false;
        };
        self.storage
            .remove_pending_subscription(node, owner.domain(), &other.to_string())
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot remove a pending subscription request");
                false
            })
    }

    /// RFC 6121 §2.5.2: before `item` leaves `user`'s roster, the contact
    /// learns that both subscriptions are over: `unsubscribe` if the user was
    /// subscribed or asking, `unsubscribed` if the contact was subscribed or
    /// asking, each handled as the contact's server handles it. The user's
    /// roster is the caller's: its removal push is the only one the user's
    /// resources see.
    pub async fn cancel_subscriptions(&self, user: &BareJid, contact: &BareJid, item: &RosterItem) {
        let (from, to) = (user.to_string(), contact.to_string());
        let pending_in = self.drop_pending(user, contact).await;
        // Past the user's block list: see Router::route_filtered.
        if has_to(item.subscription) || item.ask {
            let _ = Box::pin(self.route_filtered(presence("unsubscribe", &from, &to), false)).await;
        }
        if has_from(item.subscription) || pending_in {
            if has_from(item.subscription)
                && !self.blocked_between(user.as_jid(), contact.as_jid()).await
            {
                // §3.2.2: the contact stops seeing the user.
                self.send_unavailable(user, contact).await;
            }
            let _ =
                Box::pin(self.route_filtered(presence("unsubscribed", &from, &to), false)).await;
        }
    }

    async fn storage_exists(&self, bare: &BareJid) -> bool {
        use chorus_storage::AccountStore;
        match bare.node() {
            Some(n) => self
                .storage
                .account_exists(n, bare.domain())
                .await
                .unwrap_or(false),
            None => false,
        }
    }

    /// Broadcast presence from `from` (RFC 6121 §4.2, §4.4, §4.5): to every
    /// contact with a `from` or `both` subscription and to the user's
    /// available resources, the sender included; on initial presence also
    /// probes the contacts the user is subscribed to (answered locally from
    /// their last presence) and redelivers pending subscription requests.
    pub async fn broadcast(&self, from: &FullJid, stanza: &Element, initial: bool) {
        let user = from.bare();
        let Some(node) = user.node() else { return };
        let roster = match self.storage.roster(node, user.domain()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "roster read failed");
                return;
            }
        };
        for item in &roster.items {
            let Ok(contact) = item.jid.parse::<BareJid>() else {
                continue;
            };
            if has_from(item.subscription) {
                // §4.2.2, §4.4.2: to each subscriber, local or not.
                let mut p = stanza.clone();
                p.set_attr("from", from.to_string());
                p.set_attr("to", contact.to_string());
                self.route_presence(p).await;
            }
            if initial && has_to(item.subscription) {
                // §4.3.1: a probe, which the contact's server answers with
                // the contact's presence.
                let probe = presence("probe", &from.to_string(), &contact.to_string());
                self.route_presence(probe).await;
            }
        }
        // §4.2.2: every available resource of the user, the sender included
        // ("an entity is implicitly subscribed to its own presence"), also
        // for later broadcasts (§4.4.2). After unavailable presence the
        // sender is no longer available and is left out.
        for s in self.sessions.resources(&user) {
            if s.available() {
                let mut p = stanza.clone();
                p.set_attr("from", from.to_string());
                p.set_attr("to", s.full.to_string());
                s.sink.deliver(p);
            }
        }
        if initial {
            // Own other resources' presence to the new one (§4.2.3 for self).
            for s in self.sessions.resources(&user) {
                if s.full != *from {
                    if let Some(mut p) = s.last_presence() {
                        p.set_attr("from", s.full.to_string());
                        p.set_attr("to", from.to_string());
                        if let Some(me) = self.sessions.get(from) {
                            me.sink.deliver(p);
                        }
                    }
                }
            }
            // §3.1.3: requests that arrived while offline.
            if let Ok(pending) = self
                .storage
                .pending_subscriptions(node, user.domain())
                .await
            {
                if let Some(me) = self.sessions.get(from) {
                    for p in pending {
                        // XEP-0191 §3.3: not from a JID blocked since.
                        if let Ok(requester) = p.jid.parse::<chorus_jid::Jid>() {
                            if self.blocked_between(from.as_jid(), &requester).await {
                                continue;
                            }
                        }
                        if let Ok(mut el) = Element::from_xml(&p.stanza) {
                            el.set_attr("to", user.to_string());
                            me.sink.deliver(el);
                        }
                    }
                }
            }
        }
    }
}
