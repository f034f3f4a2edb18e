//! The bound stream (RFC 6120 §8, RFC 6121): stanzas from the client are
//! checked, stamped and routed; stanzas routed to the session are
//! written to the client.

use super::*;

impl C2sState {
    /// Handles stanzas this session will never deliver as unacknowledged
    /// (offline storage or an error to the sender), in a task: `Drop`
    /// cannot await.
    pub(super) fn reroute(&self, owner: BareJid, stanzas: impl IntoIterator<Item = Element>) {
        let stanzas: Vec<Element> = stanzas.into_iter().collect();
        if stanzas.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let router = self.ctx.router.clone();
            let session = self.session.clone();
            rt.spawn(async move {
                for stanza in stanzas {
                    router
                        .unacknowledged(&owner, stanza, session.as_deref())
                        .await;
                }
            });
        }
    }

    /// One stanza taken from the inbox.
    pub(super) fn on_routed(&mut self, stanza: Element) {
        if let Some((to, inbox)) = &self.moved_to {
            // Resumed elsewhere: the session lives there now.
            if let Err(back) = forward(to, inbox, stanza) {
                if let Some(user) = self.user.clone() {
                    self.reroute(user, [back]);
                }
            }
        } else if !self.closing {
            if self.detached && stanza.name() == "message" {
                // Kept for a client that is not there: modules may tell it
                // another way (XEP-0357 push).
                if let Some(full) = &self.full {
                    let modules = &self.ctx.modules;
                    modules.detached_message(&self.ctx.router, full, self.conn_id, &stanza);
                }
            }
            self.deliver(stanza);
        } else {
            self.keep_unacked(stanza);
        }
    }

    /// A stanza from the bound client.
    pub(super) async fn on_stanza(&mut self, mut el: Element) -> Flow {
        let Some(full) = self.full.clone() else {
            return Flow::Continue;
        };
        if el.ns() == ns::SM {
            return self.on_sm(&el);
        }
        if el.ns() == ns::CSI {
            self.on_csi(&el);
            return Flow::Continue;
        }
        let Some(kind) = StanzaKind::of(&el) else {
            // §8.2-8.3: only message, presence and iq exist in jabber:client.
            self.ctx.metrics.stanzas_in.inc("other");
            return self.stream_error(StreamError::UnsupportedStanzaType, Some(el.name()));
        };
        self.ctx.metrics.stanzas_in.inc(kind.as_str());
        if let Some(sm) = self.sm_lock().as_mut() {
            sm.handled = sm.handled.wrapping_add(1);
        }
        // §8.1.2.1: the server stamps 'from'; a client may only claim itself.
        if let Some(claimed) = el.attr("from") {
            let ok = claimed
                .parse::<chorus_jid::Jid>()
                .is_ok_and(|j| j == *full.as_jid() || j == *full.bare().as_jid());
            if !ok {
                return self.stream_error(StreamError::InvalidFrom, None);
            }
        }
        el.set_attr("from", full.to_string());
        if kind == StanzaKind::Iq {
            // §8.2.3: id and type required, exactly one payload for get/set.
            // Violations are stanza errors, `bad-request` (§8.3.3.1: "does
            // not conform to the appropriate schema"), and the stream goes
            // on; a reply to an IQ without id carries no id either. A
            // `result` or `error` is never answered (`error_reply`).
            let typ = IqType::of(&el);
            let payloads = el.children().count();
            let bad = el.attr("id").is_none()
                || typ.is_none()
                || (typ.is_some_and(IqType::is_request) && payloads != 1);
            if bad {
                self.iq_error(&el, StanzaErrorCondition::BadRequest);
                return Flow::Continue;
            }
            // RFC 6121 Appendix E: we advertise <session><optional/>, and a
            // client that still establishes one (Strophe.js does, after
            // binding) gets an empty result, as RFC 3921 §3 had it.
            let to_server = el
                .attr("to")
                .is_none_or(|t| self.domain.as_deref() == Some(t));
            if typ == Some(IqType::Set)
                && to_server
                && el.get_child("session", ns::SESSION).is_some()
            {
                let r = self.iq_result(&el);
                self.send_element(&r);
                return Flow::Continue;
            }
        }
        if kind != StanzaKind::Presence && el.attr("to").is_none() {
            // §8.1.1.1: no 'to' means the account itself (bare JID).
            el.set_attr("to", full.bare().to_string());
        }
        // Features see what the client sent (carbons, avatar hashes).
        let ctx = self.ctx.clone();
        ctx.modules
            .user_sent(&ctx.router, &full, self.conn_id, &mut el)
            .await;
        if kind == StanzaKind::Presence {
            if el.attr("to").is_none() {
                self.on_broadcast_presence(&full, &el).await;
                return Flow::Continue;
            }
            if PresenceType::of(&el).is_none() && el.attr("type").is_some() {
                if let Some(e) =
                    error_reply(&el, &StanzaError::new(StanzaErrorCondition::BadRequest))
                {
                    self.send_element(&e);
                }
                return Flow::Continue;
            }
            self.on_addressed_presence(&full, el).await;
            return Flow::Continue;
        }
        if let Outcome::Reply(e) = self.ctx.router.route(el).await {
            self.reply(e);
        }
        Flow::Continue
    }

    /// An answer the router handed back for our client (an error, or the
    /// server's answer to an IQ): written at once.
    pub(super) fn reply(&mut self, answer: Element) {
        self.send_element(&answer);
    }

    /// Handles every stanza waiting in the inbox.
    pub(super) fn take_routed(&mut self) {
        for stanza in self.inbox.take() {
            self.on_routed(stanza);
        }
    }

    /// Presence without 'to' is broadcast presence (RFC 6121 §4.2-§4.5): it
    /// sets availability and priority, which message routing to the bare JID
    /// depends on, and the router broadcasts it from the roster.
    pub(super) async fn on_broadcast_presence(&mut self, full: &FullJid, el: &Element) {
        let Some(session) = self.ctx.router.sessions.get(full) else {
            return;
        };
        match PresenceType::of(el) {
            Some(PresenceType::Available) => {
                // §4.7.2.3: priority is an integer in -128..=127, default 0.
                let priority = el
                    .get_child("priority", ns::JABBER_CLIENT)
                    .and_then(|p| p.text().trim().parse::<i8>().ok())
                    .unwrap_or(0);
                let initial = !session.available();
                let mut kept = el.clone();
                kept.remove_attr("to");
                session.set_last_presence(Some(kept));
                session.set_presence(true, priority);
                // §4.2-§4.4: to subscribers and own resources; probes first time.
                self.ctx.router.broadcast(full, el, initial).await;
                // XEP-0160 §3: stored messages go out on the first available
                // presence with a non-negative priority (RFC 6121 §8.5.2.2.1),
                // after the echo of that presence (§4.2.2), which the
                // broadcast has just routed to this session.
                if initial && priority >= 0 {
                    self.take_routed();
                    self.deliver_stored(full).await;
                }
            }
            Some(PresenceType::Unavailable) => {
                let was = session.available();
                session.set_presence(false, 0);
                session.set_last_presence(None);
                if was {
                    self.ctx.router.broadcast(full, el, false).await;
                    // RFC 6121 §4.5.2 sends it to the user's other available
                    // resources (the broadcast did: this one is no longer
                    // available); the originating resource, still connected,
                    // gets its own unavailable presence reflected too, as an
                    // entity is implicitly subscribed to its own presence
                    // (§4.2.2) and as Prosody does, so a client can tell its
                    // presence change took effect.
                    let mut echo = el.clone();
                    echo.set_attr("from", full.to_string());
                    echo.set_attr("to", full.to_string());
                    self.take_routed();
                    self.send_element(&echo);
                }
                self.end_directed(full, was).await;
            }
            // An undefined type (§4.7.1).
            None => {
                if let Some(e) =
                    error_reply(el, &StanzaError::new(StanzaErrorCondition::BadRequest))
                {
                    self.send_element(&e);
                }
            }
            // Subscription states and probes need an addressee; nothing to do.
            Some(_) => {}
        }
    }

    /// §4.6.3: entities that got directed presence get unavailable too,
    /// but once: those the broadcast (when there was one) just reached are
    /// left out.
    pub(super) async fn end_directed(&mut self, full: &FullJid, broadcast: bool) {
        let directed = std::mem::take(&mut self.directed);
        let targets = if broadcast {
            beyond_broadcast(&self.ctx.storage, full, directed).await
        } else {
            directed.into_iter().collect()
        };
        for to in targets {
            let p = Element::new("presence", ns::JABBER_CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", full.to_string())
                .with_attr("to", to);
            let _ = self.ctx.router.route(p).await;
        }
    }

    /// Presence with a 'to': subscription management (RFC 6121 §3) or
    /// directed presence (§4.6).
    pub(super) async fn on_addressed_presence(&mut self, full: &FullJid, el: Element) {
        let kind = PresenceType::of(&el);
        let to = el.attr("to").unwrap_or_default().to_owned();
        match kind {
            Some(
                k @ (PresenceType::Subscribe
                | PresenceType::Subscribed
                | PresenceType::Unsubscribe
                | PresenceType::Unsubscribed),
            ) => {
                let contact = match to.parse::<chorus_jid::Jid>() {
                    Ok(j) if j.node().is_some() => j.bare(),
                    Ok(_) => return,
                    Err(e) => {
                        if let Some(r) = error_reply(&el, &StanzaError::from(&e)) {
                            self.send_element(&r);
                        }
                        return;
                    }
                };
                if let Some(e) = self
                    .ctx
                    .router
                    .subscription(&full.bare(), &contact, k, el)
                    .await
                {
                    self.reply(e);
                }
            }
            // §4.3: probes are the server's business, not the client's.
            Some(PresenceType::Probe) => {}
            _ => {
                match kind {
                    Some(PresenceType::Available) => {
                        self.directed.insert(to);
                    }
                    Some(PresenceType::Unavailable) => {
                        self.directed.remove(&to);
                    }
                    _ => {}
                }
                if let Outcome::Reply(e) = self.ctx.router.route(el).await {
                    self.reply(e);
                }
            }
        }
    }

    /// Delivers a routed stanza, holding back presence while the client
    /// says it is inactive (XEP-0352 §5): only the latest presence per
    /// sender is kept, and anything else (messages, IQs) goes out at once,
    /// after the held presence so that order is kept.
    pub(super) fn deliver(&mut self, stanza: Element) {
        if let Some(full) = &self.full {
            self.ctx
                .modules
                .user_received(&self.ctx.router, full, self.conn_id, &stanza);
        }
        if let Some(stanza) = self.csi_hold(stanza) {
            self.send_element(&stanza);
        }
    }

    /// The keepalive heard nothing from the client (XEP-0199 §4.1): a dead
    /// connection, though not necessarily a dead session (XEP-0198).
    pub(super) fn connection_lost(&mut self) {
        if self.full.is_none() || self.closing || self.detached {
            return;
        }
        if self.resumable() {
            self.detach();
        } else {
            self.stream_error(StreamError::ConnectionTimeout, Some("no answer to ping"));
        }
    }

    /// The session can take what was kept for it (XEP-0160 offline
    /// messages): the modules write it through this session.
    pub(super) async fn deliver_stored(&mut self, full: &FullJid) {
        let ctx = self.ctx.clone();
        ctx.modules
            .available(&ctx.router, full, self.conn_id, self)
            .await;
    }
}

/// Of the entities `full` sent directed presence to, those a broadcast of
/// its presence does not reach: not subscribed to it (no `from` or `both`
/// in its roster). RFC 6121 §4.6.3 asks that they be told it left; the
/// subscribers already are, by the broadcast. On a storage error, all.
pub(super) async fn beyond_broadcast(
    storage: &chorus_storage::Storage,
    full: &FullJid,
    directed: std::collections::HashSet<String>,
) -> Vec<String> {
    use chorus_storage::{RosterStore, Subscription};
    if directed.is_empty() {
        return Vec::new();
    }
    let user = full.bare();
    let Ok(roster) = storage
        .roster(user.node().unwrap_or_default(), user.domain())
        .await
    else {
        return directed.into_iter().collect();
    };
    directed
        .into_iter()
        .filter(|to| {
            let Ok(jid) = to.parse::<chorus_jid::Jid>() else {
                return true;
            };
            let contact = jid.bare();
            !roster.items.iter().any(|i| {
                i.jid == contact.as_str()
                    && matches!(i.subscription, Subscription::From | Subscription::Both)
            })
        })
        .collect()
}
