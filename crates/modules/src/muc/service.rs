//! A MUC service's destination in the route table (XEP-0045 §6): the
//! service answers disco and pings itself, lists its public rooms (RSM
//! paged, XEP-0059), and queues everything addressed to a room or an
//! occupant in that room's inbox.

use std::sync::Arc;

use chorus_jid::{BareJid, Jid};
use chorus_proto::{error_reply, ns, IqType, StanzaError, StanzaErrorCondition as C, StanzaKind};
use chorus_router::{Outcome, Router, Service};
use chorus_storage::MucStore;
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use super::room::{Input, Retraction, Room};
use super::state::{Affiliation, Role, MODERATE, MUC, OCCUPANT_ID, RETRACT};
use super::Shared;
use crate::{result_iq, Services};

/// The service's own disco#info features (§6.2).
const FEATURES: &[&str] = &[
    MUC,
    ns::DISCO_INFO,
    ns::DISCO_ITEMS,
    ns::PING,
    ns::RSM,
    super::state::OCCUPANT_ID,
];

/// Rooms one disco#items page lists when the requester does not say.
const DEFAULT_PAGE: usize = 100;

pub struct MucService {
    domain: String,
    shared: Arc<Shared>,
    services: Arc<Services>,
}

impl MucService {
    pub fn new(domain: String, shared: Arc<Shared>, services: Arc<Services>) -> MucService {
        MucService {
            domain,
            shared,
            services,
        }
    }

    async fn room(&self, jid: &BareJid) -> Result<Arc<Room>, C> {
        self.shared.room(&self.services, jid).await
    }

    async fn to_room(&self, jid: BareJid, stanza: Element) -> Outcome {
        match self
            .shared
            .deliver(&self.services, &jid, Input::Stanza(stanza))
            .await
        {
            Ok(()) => Outcome::Delivered,
            Err((cond, Input::Stanza(stanza))) => reply(&stanza, cond),
            Err(_) => Outcome::Dropped,
        }
    }

    /// What is addressed to the service itself.
    async fn to_service(&self, stanza: Element) -> Outcome {
        let request = StanzaKind::of(&stanza) == Some(StanzaKind::Iq)
            && IqType::of(&stanza).is_some_and(IqType::is_request);
        if !request {
            if stanza.name() == "message" && stanza.attr("type") != Some("error") {
                return reply(&stanza, C::ServiceUnavailable);
            }
            return Outcome::Dropped;
        }
        let mut payloads = stanza.children();
        let (Some(payload), None) = (payloads.next(), payloads.next()) else {
            return reply(&stanza, C::BadRequest);
        };
        let get = IqType::of(&stanza) == Some(IqType::Get);
        match (payload.ns(), payload.name(), get) {
            (ns::DISCO_INFO, "query", true) if payload.attr("node").is_none() => {
                Outcome::Reply(result_iq(&stanza, Some(self.info())))
            }
            (ns::DISCO_ITEMS, "query", true) if payload.attr("node").is_none() => {
                match self.items(payload).await {
                    Ok(q) => Outcome::Reply(result_iq(&stanza, Some(q))),
                    Err(cond) => reply(&stanza, cond),
                }
            }
            (ns::DISCO_INFO | ns::DISCO_ITEMS, "query", true) => reply(&stanza, C::ItemNotFound),
            (ns::PING, "ping", true) => Outcome::Reply(result_iq(&stanza, None)),
            _ => reply(&stanza, C::ServiceUnavailable),
        }
    }

    /// §6.2: a MUC service.
    fn info(&self) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "conference")
                .with_attr("type", "text")
                .with_attr("name", "Chat rooms"),
        );
        for f in FEATURES {
            q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
        }
        q
    }

    /// §6.3: the public rooms, stored and live, by JID, in XEP-0059 pages.
    async fn items(&self, query: &Element) -> Result<Element, C> {
        let mut rooms: std::collections::BTreeMap<String, String> = self
            .services
            .storage
            .muc_rooms(&self.domain, true)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "room list unreadable");
                C::InternalServerError
            })?
            .into_iter()
            .map(|r| (r.jid, r.name))
            .collect();
        // Live rooms say what they are now, stored or not.
        for room in self.shared.live() {
            if room.service != self.domain {
                continue;
            }
            let inner = room.lock();
            match inner.state.as_ref() {
                Some(s) if s.config.public && !s.locked && !s.destroyed => {
                    rooms.insert(room.jid.to_string(), s.config.name.clone());
                }
                Some(_) => {
                    rooms.remove(room.jid.as_str());
                }
                None => {}
            }
        }
        let mut page: Vec<(String, String)> = rooms.into_iter().collect();
        // XEP-0059 §2.6: a list longer than a page is paged even for a
        // requester that did not ask, and says so with its `<set/>`.
        let asked = query
            .get_child("set", ns::RSM)
            .cloned()
            .or_else(|| (page.len() > DEFAULT_PAGE).then(|| Element::new("set", ns::RSM)));
        let set = match asked {
            Some(set) => Some(crate::rsm::page(&set, &mut page, DEFAULT_PAGE, |r| {
                r.0.as_str()
            })?),
            None => None,
        };
        let mut q = Element::new("query", ns::DISCO_ITEMS);
        for (jid, name) in &page {
            let name = if name.is_empty() {
                jid.split('@').next().unwrap_or_default()
            } else {
                name.as_str()
            };
            q.push(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", jid.as_str())
                    .with_attr("name", name),
            );
        }
        if let Some(set) = set {
            q.push(set);
        }
        Ok(q)
    }
}

/// An XEP-0313 query to a room: answered here, where storage may be
/// awaited, rather than in the room's steps.
fn is_archive_query(stanza: &Element) -> bool {
    stanza.name() == "iq"
        && IqType::of(stanza).is_some_and(IqType::is_request)
        && stanza.children().count() == 1
        && (stanza.get_child("query", ns::MAM).is_some()
            || (IqType::of(stanza) == Some(IqType::Get)
                && stanza.get_child("metadata", ns::MAM).is_some()))
}

impl MucService {
    /// XEP-0313 on the room's JID: who may enter may read (an outcast may
    /// not, nor a non-member of a members-only room); what the room has
    /// yet to write is written first, so a sender finds its own message.
    async fn archive_query(&self, jid: BareJid, stanza: Element) -> Outcome {
        let Some(from) = stanza
            .attr("from")
            .and_then(|f| f.parse::<chorus_jid::FullJid>().ok())
        else {
            return reply(&stanza, C::BadRequest);
        };
        let room = match self.room(&jid).await {
            Ok(r) => r,
            Err(cond) => return reply(&stanza, cond),
        };
        let pending = {
            let inner = room.lock();
            let Some(state) = inner.state.as_ref().filter(|s| {
                !s.destroyed && (!s.locked || s.affiliation(&from.bare()) == Affiliation::Owner)
            }) else {
                return reply(&stanza, C::ItemNotFound);
            };
            let aff = state.affiliation(&from.bare());
            if aff == Affiliation::Outcast
                || (state.config.members_only && aff < Affiliation::Member)
            {
                return reply(&stanza, C::Forbidden);
            }
            (
                inner.archive.iter().cloned().collect::<Vec<_>>(),
                inner.tombstones.iter().cloned().collect::<Vec<_>>(),
            )
        };
        let (pending, tombstones) = pending;
        if IqType::of(&stanza) == Some(IqType::Get) && stanza.get_child("query", ns::MAM).is_some()
        {
            return Outcome::Reply(result_iq(&stanza, Some(crate::mam::query_form())));
        }
        for m in &pending {
            // Repeating the room's own write is harmless (see room.rs).
            if let Err(e) = self
                .services
                .storage
                .muc_archive_append(jid.as_str(), m)
                .await
            {
                tracing::error!(room = %jid, error = %e, "room archive write failed");
                return reply(&stanza, C::InternalServerError);
            }
        }
        // And the retractions, so a retracted message does not come back.
        for (id, tombstone) in &tombstones {
            if let Err(e) = self
                .services
                .storage
                .muc_archive_replace(jid.as_str(), id, tombstone)
                .await
            {
                tracing::error!(room = %jid, error = %e, "room archive tombstone failed");
                return reply(&stanza, C::InternalServerError);
            }
        }
        let Some(q) = stanza.get_child("query", ns::MAM) else {
            // XEP-0313 §5: the archive's first and last message.
            return match crate::mam::archive_metadata(
                &self.services,
                crate::mam::Archive::Room(&jid),
            )
            .await
            {
                Ok(md) => Outcome::Reply(result_iq(&stanza, Some(md))),
                Err(cond) => reply(&stanza, cond),
            };
        };
        match crate::mam::run_query(
            &self.services,
            crate::mam::Archive::Room(&jid),
            &from,
            &self.shared.options.archive,
            &stanza,
            q,
        )
        .await
        {
            Ok(()) => Outcome::Delivered,
            Err(cond) => reply(&stanza, cond),
        }
    }
}

/// The stanza-id a retraction names: a moderator's (XEP-0425, an IQ set
/// with `<moderate/>`) or an occupant's own (XEP-0424, a groupchat
/// message with `<retract/>`).
fn retraction_target(stanza: &Element) -> Option<&str> {
    match stanza.name() {
        "iq" if IqType::of(stanza) == Some(IqType::Set) => {
            stanza.get_child("moderate", MODERATE)?.attr("id")
        }
        "message" if stanza.attr("type") == Some("groupchat") => {
            stanza.get_child("retract", RETRACT)?.attr("id")
        }
        _ => None,
    }
}

impl MucService {
    /// A retraction names a message of the room's: found here, where the
    /// archive may be awaited (or in the history the room keeps), and an
    /// occupant's own retraction checked against the original's
    /// occupant-id; then it is a step of the room.
    async fn retraction(&self, jid: BareJid, stanza: Element) -> Outcome {
        let Some(id) = retraction_target(&stanza).map(str::to_owned) else {
            return Outcome::Dropped;
        };
        let moderation = stanza.name() == "iq";
        if moderation
            && stanza
                .get_child("moderate", MODERATE)
                .and_then(|m| m.get_child("retract", RETRACT))
                .is_none()
        {
            // XEP-0425 defines retraction as the one moderation action.
            return reply(&stanza, C::FeatureNotImplemented);
        }
        let Some(from) = stanza
            .attr("from")
            .and_then(|f| f.parse::<chorus_jid::FullJid>().ok())
        else {
            return reply(&stanza, C::BadRequest);
        };
        let room = match self.room(&jid).await {
            Ok(r) => r,
            Err(cond) => return reply(&stanza, cond),
        };
        let (mine, kept) = {
            let inner = room.lock();
            let Some(state) = inner.state.as_ref().filter(|s| !s.destroyed && !s.locked) else {
                return reply(&stanza, C::ItemNotFound);
            };
            let Some(i) = state.by_full(&from) else {
                return reply(&stanza, C::NotAcceptable);
            };
            if moderation && state.occupants[i].role != Role::Moderator {
                return reply(&stanza, C::Forbidden);
            }
            let kept = state
                .history
                .iter()
                .find(|h| {
                    h.message
                        .children()
                        .any(|c| c.is("stanza-id", ns::SID) && c.attr("id") == Some(id.as_str()))
                })
                .map(|h| h.message.clone());
            (state.occupants[i].id.clone(), kept)
        };
        let original = match kept {
            Some(m) => m,
            None => match self.archived(&jid, &id).await {
                Ok(Some(m)) => m,
                Ok(None) => return reply(&stanza, C::ItemNotFound),
                Err(cond) => return reply(&stanza, cond),
            },
        };
        let input = if moderation {
            Input::Moderate(Box::new(Retraction {
                stanza,
                id,
                original,
            }))
        } else {
            let theirs = original
                .get_child("occupant-id", OCCUPANT_ID)
                .and_then(|o| o.attr("id"));
            if theirs != Some(mine.as_str()) {
                return reply(&stanza, C::Forbidden);
            }
            Input::Retract(Box::new(Retraction {
                stanza,
                id,
                original,
            }))
        };
        match self.shared.deliver(&self.services, &jid, input).await {
            Ok(()) => Outcome::Delivered,
            Err((cond, Input::Moderate(r) | Input::Retract(r))) => reply(&r.stanza, cond),
            Err(_) => Outcome::Dropped,
        }
    }

    /// The archived message `id` of the room, as the room broadcast it.
    async fn archived(&self, jid: &BareJid, id: &str) -> Result<Option<Element>, C> {
        let query = chorus_storage::ArchiveQuery {
            with: None,
            start: None,
            end: None,
            after_id: None,
            before_id: None,
            ids: vec![id.to_owned()],
            cursor: chorus_storage::ArchiveCursor::First,
            limit: 1,
        };
        match self
            .services
            .storage
            .muc_archive_query(jid.as_str(), &query)
            .await
        {
            Ok(page) => Ok(page
                .messages
                .first()
                .and_then(|m| Element::from_xml(&m.stanza).ok())),
            Err(chorus_storage::StorageError::NotFound) => Ok(None),
            Err(e) => {
                tracing::error!(room = %jid, error = %e, "room archive unreadable");
                Err(C::InternalServerError)
            }
        }
    }
}

fn reply(stanza: &Element, cond: C) -> Outcome {
    match error_reply(stanza, &StanzaError::new(cond)) {
        Some(e) => Outcome::Reply(e),
        None => Outcome::Dropped,
    }
}

impl Service for MucService {
    fn name(&self) -> &str {
        "Chat rooms"
    }

    fn handle<'a>(&'a self, _router: &'a Router, stanza: Element) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(to) = stanza.attr("to").and_then(|t| t.parse::<Jid>().ok()) else {
                return Outcome::Dropped;
            };
            if to.node().is_none() {
                return self.to_service(stanza).await;
            }
            if to.resource().is_none() && is_archive_query(&stanza) {
                return self.archive_query(to.bare(), stanza).await;
            }
            if to.resource().is_none() && retraction_target(&stanza).is_some() {
                return self.retraction(to.bare(), stanza).await;
            }
            self.to_room(to.bare(), stanza).await
        })
    }
}
