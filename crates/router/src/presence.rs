//! Presence and subscriptions between local accounts (RFC 6121 §3-§4).
//!
//! Both ends of every subscription are local (there is no server-to-server
//! yet), so the "user's server" and "contact's server" halves of each rule
//! run here one after the other: the outbound half updates the sender's
//! roster, the inbound half the recipient's. The state transitions follow
//! RFC 6121 Appendix A; each roster change is pushed to the account's
//! interested resources (§2.1.6).

use std::sync::Arc;

use chorus_jid::{BareJid, FullJid};
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

    /// Delivers to every available resource of an account.
    fn to_available(&self, user: &BareJid, stanza: &Element) -> bool {
        let mut any = false;
        for s in self.available(user) {
            any |= s.sink.deliver(stanza.clone());
        }
        any
    }

    /// Sends the current presence of each of `from`'s available resources
    /// to `to` (§3.1.5, §4.3.2: answering a probe or a new subscription).
    fn send_current_presence(&self, from: &BareJid, to: &str) {
        let Ok(to_bare) = to.parse::<chorus_jid::Jid>() else {
            return;
        };
        for s in self.available(from) {
            if let Some(mut p) = s.last_presence() {
                p.set_attr("from", s.full.to_string());
                p.set_attr("to", to);
                match FullJid::try_from(to_bare.clone()) {
                    Ok(full) => {
                        if let Some(target) = self.sessions.get(&full) {
                            target.sink.deliver(p);
                        }
                    }
                    Err(_) => {
                        self.to_available(&to_bare.bare(), &p);
                    }
                }
            }
        }
    }

    fn send_unavailable(&self, from: &BareJid, to: &BareJid) {
        for s in self.available(from) {
            let p = presence("unavailable", &s.full.to_string(), &to.to_string());
            self.to_available(to, &p);
        }
    }

    /// A subscription presence (subscribe, subscribed, unsubscribe,
    /// unsubscribed) sent by `user` to `contact`: RFC 6121 §3, user's server
    /// side, then contact's server side.
    pub async fn subscription(
        &self,
        user: &BareJid,
        contact: &BareJid,
        kind: PresenceType,
        stanza: Element,
    ) {
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
                let pending = match user.node() {
                    Some(node) => self
                        .storage
                        .remove_pending_subscription(node, user.domain(), &contact.to_string())
                        .await
                        .unwrap_or(false),
                    None => false,
                };
                let mut i = item.take().unwrap_or_else(|| new_item(contact));
                if has_from(i.subscription) {
                    return;
                }
                if !pending {
                    if !i.approved {
                        i.approved = true;
                        self.save(user, &i).await;
                    }
                    return;
                }
                i.subscription = match i.subscription {
                    Subscription::To => Subscription::Both,
                    _ => Subscription::From,
                };
                i.approved = false;
                self.save(user, &i).await;
                self.inbound(contact, user, kind, stanza).await;
                // §3.1.5: the new subscriber gets our current presence.
                self.send_current_presence(user, &contact.to_string());
                return;
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
                if let Some(node) = user.node() {
                    let _ = self
                        .storage
                        .remove_pending_subscription(node, user.domain(), &contact.to_string())
                        .await;
                }
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
                            self.send_unavailable(user, contact);
                        }
                    }
                }
            }
            _ => return,
        }
        self.inbound(contact, user, kind, stanza).await;
    }

    /// The contact's server half (RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3).
    async fn inbound(
        &self,
        contact: &BareJid,
        user: &BareJid,
        kind: PresenceType,
        stanza: Element,
    ) {
        let Some(cnode) = contact.node() else { return };
        if !self.storage_exists(contact).await {
            if kind == PresenceType::Subscribe {
                // §3.1.3: no such contact: answer unsubscribed on its behalf.
                let p = presence("unsubscribed", &contact.to_string(), &user.to_string());
                self.to_available(user, &p);
                Box::pin(self.subscription_inbound_only(user, contact, PresenceType::Unsubscribed))
                    .await;
            }
            return;
        }
        let mut item = self.item(contact, user).await;
        match kind {
            PresenceType::Subscribe => {
                let mut i = item.take().unwrap_or_else(|| new_item(user));
                if has_from(i.subscription) {
                    // §3.1.3: already subscribed: answer for the contact.
                    let p = presence("subscribed", &contact.to_string(), &user.to_string());
                    Box::pin(self.subscription_inbound_only(
                        user,
                        contact,
                        PresenceType::Subscribed,
                    ))
                    .await;
                    self.to_available(user, &p);
                    return;
                }
                if i.approved {
                    // §3.4: pre-approved: subscribe at once.
                    i.approved = false;
                    i.subscription = match i.subscription {
                        Subscription::To => Subscription::Both,
                        _ => Subscription::From,
                    };
                    self.save(contact, &i).await;
                    let p = presence("subscribed", &contact.to_string(), &user.to_string());
                    Box::pin(self.subscription_inbound_only(
                        user,
                        contact,
                        PresenceType::Subscribed,
                    ))
                    .await;
                    self.to_available(user, &p);
                    self.send_current_presence(contact, &user.to_string());
                    return;
                }
                // §3.1.3: remember the request and show it to the contact.
                if let Err(e) = self
                    .storage
                    .add_pending_subscription(
                        cnode,
                        contact.domain(),
                        &user.to_string(),
                        &stanza.to_xml(),
                    )
                    .await
                {
                    tracing::error!(error = %e, "cannot store a subscription request");
                }
                self.to_available(contact, &stanza);
            }
            _ => {
                Box::pin(self.subscription_inbound_only(contact, user, kind)).await;
                self.to_available(contact, &stanza);
                if kind == PresenceType::Subscribed {
                    // nothing more: the user's presence follows from §3.1.5.
                }
            }
        }
    }

    /// Applies an inbound subscribed / unsubscribe / unsubscribed from
    /// `other` to `owner`'s roster item (Appendix A.3).
    async fn subscription_inbound_only(
        &self,
        owner: &BareJid,
        other: &BareJid,
        kind: PresenceType,
    ) {
        let Some(mut i) = self.item(owner, other).await else {
            return;
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
                if let Some(node) = owner.node() {
                    let _ = self
                        .storage
                        .remove_pending_subscription(node, owner.domain(), &other.to_string())
                        .await;
                }
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
        if i != before {
            self.save(owner, &i).await;
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
    /// contact with a `from` or `both` subscription and to the user's other
    /// available resources; on initial presence also probes the contacts the
    /// user is subscribed to (answered locally from their last presence) and
    /// redelivers pending subscription requests.
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
            if has_from(item.subscription) && self.is_local(contact.domain()) {
                let mut p = stanza.clone();
                p.set_attr("from", from.to_string());
                p.set_attr("to", contact.to_string());
                self.to_available(&contact, &p);
            }
            if initial && has_to(item.subscription) {
                // §4.3: a probe, answered with the contact's presence.
                self.send_current_presence(&contact, &from.to_string());
            }
        }
        for s in self.sessions.resources(&user) {
            if s.full != *from && s.available() {
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
