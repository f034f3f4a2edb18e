//! What operators do to rooms (`chorusctl muc`): list, inspect, create and
//! destroy. Creating and destroying go through the room's inbox like any
//! stanza, so they are steps of the room like any other; reading takes a
//! snapshot under the room's lock, or reads storage for a room not in
//! memory.

use std::sync::Arc;

use chorus_jid::BareJid;
use chorus_storage::MucStore;
use chorus_xml::Element;

use super::room::Input;
use super::state::{Affiliation, RoomState, MUC_OWNER};
use super::Shared;
use crate::Services;

/// Why an operation on a room failed.
#[derive(Debug, thiserror::Error)]
pub enum MucAdminError {
    #[error("{0} is not a room of a MUC service here")]
    NotARoom(String),
    #[error("there is no room {0}")]
    NoSuchRoom(String),
    #[error("the room {0} exists already")]
    Exists(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("the room did not answer")]
    NoAnswer,
}

/// What an operator asks of a room, as a step of the room.
pub enum AdminOp {
    /// A persistent room owned by `owner`.
    Create { owner: BareJid },
    /// §10.9, with the operator's reason.
    Destroy { reason: Option<String> },
}

/// One room, listed.
#[derive(Clone, Debug)]
pub struct RoomSummary {
    pub jid: String,
    pub name: String,
    pub occupants: usize,
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    /// Its actor runs (the room is in memory).
    pub live: bool,
}

/// One room, inspected.
#[derive(Clone, Debug)]
pub struct RoomDetails {
    pub summary: RoomSummary,
    pub subject: String,
    /// The configuration as its form's fields and values.
    pub config: Vec<(String, Vec<String>)>,
    /// (JID, affiliation)
    pub affiliations: Vec<(String, String)>,
    /// (nick, real JIDs of its sessions, role, affiliation)
    pub occupants: Vec<(String, Vec<String>, String, String)>,
}

/// The rooms of the muc module, for operators.
#[derive(Clone)]
pub struct MucRooms {
    pub(super) shared: Arc<Shared>,
}

fn summary(jid: &str, state: &RoomState, live: bool) -> RoomSummary {
    RoomSummary {
        jid: jid.to_owned(),
        name: state.config.name.clone(),
        occupants: state.occupants.len(),
        persistent: state.config.persistent,
        public: state.config.public,
        members_only: state.config.members_only,
        live,
    }
}

impl MucRooms {
    /// The services' domains.
    pub fn services(&self) -> &[String] {
        &self.shared.options.services
    }

    fn services_ctx(&self) -> Result<Arc<Services>, MucAdminError> {
        self.shared
            .ctx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.services.clone())
            .ok_or(MucAdminError::NoAnswer)
    }

    /// `raw` as the JID of a room of one of the services.
    fn room_jid(&self, raw: &str) -> Result<BareJid, MucAdminError> {
        let jid: BareJid = raw
            .parse()
            .map_err(|_| MucAdminError::NotARoom(raw.to_owned()))?;
        if jid.node().is_none() || !self.services().iter().any(|s| s == jid.domain()) {
            return Err(MucAdminError::NotARoom(raw.to_owned()));
        }
        Ok(jid)
    }

    /// Every room, live or stored, of one service or all, by JID.
    pub async fn list(&self, service: Option<&str>) -> Result<Vec<RoomSummary>, MucAdminError> {
        let services = self.services_ctx()?;
        let mut rooms = std::collections::BTreeMap::new();
        for s in self
            .services()
            .iter()
            .filter(|s| service.is_none_or(|w| w == *s))
        {
            let stored = services
                .storage
                .muc_rooms(s, false)
                .await
                .map_err(|e| MucAdminError::Storage(e.to_string()))?;
            for r in stored {
                let max = self.shared.options.max_occupants;
                if let Some(state) = RoomState::from_stored(&r.state, max) {
                    rooms.insert(r.jid.clone(), summary(&r.jid, &state, false));
                }
            }
        }
        for room in self.shared.live() {
            if service.is_some_and(|w| w != room.service) {
                continue;
            }
            let inner = room.lock();
            match inner.state.as_ref() {
                Some(state) if !state.destroyed => {
                    rooms.insert(
                        room.jid.to_string(),
                        summary(room.jid.as_str(), state, true),
                    );
                }
                // Destroyed, its row not deleted yet: gone all the same.
                Some(_) => {
                    rooms.remove(room.jid.as_str());
                }
                None => {}
            }
        }
        Ok(rooms.into_values().collect())
    }

    /// One room, live or stored.
    pub async fn info(&self, raw: &str) -> Result<RoomDetails, MucAdminError> {
        let jid = self.room_jid(raw)?;
        let live = self.shared.rooms.get(&jid).map(|r| r.clone());
        if let Some(room) = live {
            let inner = room.lock();
            match inner.state.as_ref() {
                Some(state) if !state.destroyed => return Ok(details(&jid, state, true)),
                Some(_) => return Err(MucAdminError::NoSuchRoom(jid.to_string())),
                None => {}
            }
        }
        let services = self.services_ctx()?;
        let stored = services
            .storage
            .muc_room(jid.as_str())
            .await
            .map_err(|e| MucAdminError::Storage(e.to_string()))?
            .ok_or_else(|| MucAdminError::NoSuchRoom(jid.to_string()))?;
        let state = RoomState::from_stored(&stored.state, self.shared.options.max_occupants)
            .ok_or_else(|| MucAdminError::Storage("the stored room is unreadable".into()))?;
        Ok(details(&jid, &state, false))
    }

    /// A persistent room owned by `owner`, configured with the defaults.
    pub async fn create(&self, raw: &str, owner: &str) -> Result<(), MucAdminError> {
        let jid = self.room_jid(raw)?;
        let owner: BareJid = owner
            .parse()
            .map_err(|_| MucAdminError::NotARoom(owner.to_owned()))?;
        self.run(jid, AdminOp::Create { owner }).await
    }

    /// Destroys a room (XEP-0045 §10.9): its occupants are sent out with
    /// the reason, and it is gone from storage.
    pub async fn destroy(&self, raw: &str, reason: Option<String>) -> Result<(), MucAdminError> {
        let jid = self.room_jid(raw)?;
        self.run(jid, AdminOp::Destroy { reason }).await
    }

    async fn run(&self, jid: BareJid, op: AdminOp) -> Result<(), MucAdminError> {
        let services = self.services_ctx()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared
            .deliver(&services, &jid, Input::Admin(op, tx))
            .await
            .map_err(|_| MucAdminError::NoAnswer)?;
        rx.await.map_err(|_| MucAdminError::NoAnswer)?
    }
}

fn details(jid: &BareJid, state: &RoomState, live: bool) -> RoomDetails {
    let form = state.config.to_form("submit", &[], &[], 0);
    RoomDetails {
        summary: summary(jid.as_str(), state, live),
        subject: state
            .subject
            .as_ref()
            .map(|s| s.0.clone())
            .unwrap_or_default(),
        config: crate::forms::form_fields(&form),
        affiliations: state
            .affiliations
            .iter()
            .map(|(j, e)| (j.to_string(), e.affiliation.as_str().to_owned()))
            .collect(),
        occupants: state
            .occupants
            .iter()
            .map(|o| {
                (
                    o.nick.clone(),
                    o.sessions.iter().map(|s| s.full.to_string()).collect(),
                    o.role.as_str().to_owned(),
                    state.affiliation(&o.bare).as_str().to_owned(),
                )
            })
            .collect(),
    }
}

/// An operator's request, as a step of the room.
pub fn step(
    ctx: &mut super::proto::Ctx<'_>,
    slot: &mut Option<RoomState>,
    op: AdminOp,
) -> Result<(), MucAdminError> {
    match op {
        AdminOp::Create { owner } => {
            if slot.as_ref().is_some_and(|s| !s.destroyed) {
                return Err(MucAdminError::Exists(ctx.room.to_string()));
            }
            let opts = &ctx.shared.options;
            let mut config = super::state::RoomConfig::new(opts.max_occupants);
            config.persistent = true;
            config.logging = opts.logging_default;
            let mut state = RoomState::new(config);
            state.set_affiliation(owner, Affiliation::Owner, String::new());
            *slot = Some(state);
            ctx.out.changed = true;
            Ok(())
        }
        AdminOp::Destroy { reason } => {
            let Some(state) = slot.as_mut().filter(|s| !s.destroyed) else {
                return Err(MucAdminError::NoSuchRoom(ctx.room.to_string()));
            };
            let mut d = Element::new("destroy", MUC_OWNER);
            if let Some(r) = reason {
                d.push(Element::new("reason", MUC_OWNER).with_text(r));
            }
            super::admin::destroy(ctx, state, &d);
            Ok(())
        }
    }
}
