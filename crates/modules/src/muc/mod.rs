//! Multi-user chat (XEP-0045, version 1.35): a group chat service on
//! `<subdomain>.<domain>` for each served domain and each of
//! `muc.subdomains`, every room a supervised actor.
//!
//! - `service.rs` is the service's destination in the route table: it
//!   answers what is addressed to the service itself (disco, the room
//!   list) and queues the rest in the room it is for.
//! - `room.rs` is a room and its actor, and why killing the actor loses
//!   nothing: the state and the inbox belong to the [`room::Room`], which
//!   outlives its actors.
//! - `proto.rs` (occupants: presence and messages) and `admin.rs` (roles,
//!   affiliations, configuration, destruction, disco of a room) are the
//!   protocol, as steps that change a room and say what to send.
//! - `state.rs` is what a room is, and how its persistent part is stored.
//!
//! The tree: `root/modules/muc` is a one_for_one supervisor whose children
//! are the live rooms, one actor each, named by the room's JID. A room's
//! actor starts with the first stanza for it and stops when a temporary
//! room empties or a persistent one has been empty for `muc.idle_secs`.

mod admin;
mod ops;
mod proto;
mod room;
mod service;
mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_config::MucCreators;
use chorus_jid::{BareJid, FullJid};
use chorus_supervisor::{ChildSpec, Restart, StartCtx, Strategy, SupervisorMsg, SupervisorOptions};
use dashmap::DashMap;
use ractor::{ActorCell, ActorRef};

use crate::{ChildCtx, HookSet, Module, ModuleInfo, Services, SessionCtx, Support, Xep};
use chorus_proto::StanzaErrorCondition as C;
use chorus_storage::MucStore;
pub use ops::{MucAdminError, MucRooms, RoomDetails, RoomSummary};
use room::{Input, Room, RoomArgs, RoomMsg};
use state::RoomState;

/// The limits and policy from `[muc]`.
#[derive(Clone, Debug)]
pub struct MucOptions {
    /// The services' domains.
    pub services: Vec<String>,
    /// The served domains: whose accounts are local.
    pub domains: Vec<String>,
    pub creators: MucCreators,
    pub max_rooms_per_user: u32,
    pub max_occupants: u32,
    pub history_size: u32,
    pub message_burst: u32,
    pub message_rate_per_minute: u32,
    pub idle_secs: u64,
    pub logging_default: bool,
    /// Paging limits of room archive queries, as for accounts' (`[mam]`).
    pub archive: crate::mam::ArchiveOptions,
}

impl MucOptions {
    pub fn from_config(config: &chorus_config::Config) -> MucOptions {
        let m = &config.muc;
        let services = if m.enabled {
            m.subdomains
                .iter()
                .flat_map(|sub| {
                    config
                        .server
                        .domains
                        .iter()
                        .map(move |d| format!("{sub}.{d}"))
                })
                .collect()
        } else {
            Vec::new()
        };
        MucOptions {
            services,
            domains: config.server.domains.clone(),
            creators: m.create_rooms,
            max_rooms_per_user: m.max_rooms_per_user,
            max_occupants: m.max_occupants,
            history_size: m.history_size,
            message_burst: m.message_burst,
            message_rate_per_minute: m.message_rate_per_minute,
            idle_secs: m.idle_secs,
            logging_default: m.logging_default,
            archive: crate::mam::ArchiveOptions::from_config(config),
        }
    }

    /// Whether `jid` is an account of this server.
    pub fn is_local(&self, jid: &BareJid) -> bool {
        jid.node().is_some() && self.domains.iter().any(|d| d == jid.domain())
    }
}

/// What the module, its services and its rooms share.
pub struct Shared {
    pub options: MucOptions,
    /// The live rooms, by JID.
    pub rooms: DashMap<BareJid, Arc<Room>>,
    /// Their running actors, by tree id.
    actors: DashMap<String, ActorRef<RoomMsg>>,
    /// The rooms each session is in, so that a session that ends leaves
    /// them.
    pub joined: DashMap<FullJid, Vec<BareJid>>,
    /// The rooms in memory each account owns.
    owned: DashMap<BareJid, std::collections::HashSet<BareJid>>,
    /// The `muc` supervisor, once started.
    supervisor: Mutex<Option<ActorCell>>,
    /// What room actors start with.
    ctx: Mutex<Option<ChildCtx>>,
}

impl Shared {
    pub fn new(options: MucOptions) -> Arc<Shared> {
        Arc::new(Shared {
            options,
            rooms: DashMap::new(),
            actors: DashMap::new(),
            joined: DashMap::new(),
            owned: DashMap::new(),
            supervisor: Mutex::new(None),
            ctx: Mutex::new(None),
        })
    }

    fn supervisor(&self) -> Option<ActorRef<SupervisorMsg>> {
        self.supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(ActorRef::from)
    }

    fn actor(&self, id: &str) -> Option<ActorRef<RoomMsg>> {
        self.actors.get(id).map(|a| a.clone())
    }

    /// Asks the supervisor for the room's actor. Without a supervisor yet
    /// (or a restarted one), the supervisor's start picks the room up.
    fn start_room(self: &Arc<Shared>, room: Arc<Room>) {
        let Some(sup) = self.supervisor() else {
            return;
        };
        let Some(ctx) = self.ctx.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        let spec = room::spec(RoomArgs {
            room,
            shared: self.clone(),
            router: ctx.router,
            services: ctx.services,
        });
        if sup.cast(SupervisorMsg::StartChild(spec, None)).is_err() {
            tracing::error!("muc supervisor unreachable; room waits for its restart");
        }
    }

    /// The room for `jid`, loaded from storage if it is persistent and not
    /// in memory; a room that does not exist yet when it is neither.
    async fn room(&self, services: &Services, jid: &BareJid) -> Result<Arc<Room>, C> {
        if let Some(r) = self.rooms.get(jid) {
            return Ok(r.clone());
        }
        let stored = services.storage.muc_room(jid.as_str()).await.map_err(|e| {
            tracing::error!(room = %jid, error = %e, "room unreadable");
            C::InternalServerError
        })?;
        let state = match stored {
            Some(s) => match RoomState::from_stored(&s.state, self.options.max_occupants) {
                Some(state) => Some(state),
                None => {
                    tracing::error!(room = %jid, "stored room unreadable");
                    return Err(C::InternalServerError);
                }
            },
            None => None,
        };
        let room = Arc::new(Room::new(jid.clone(), jid.domain().to_owned(), state));
        let live = self
            .rooms
            .entry(jid.clone())
            .or_insert(room.clone())
            .value()
            .clone();
        if Arc::ptr_eq(&live, &room) {
            let owners = room.lock().owners.clone();
            self.index_owners(jid, &[], &owners);
        }
        Ok(live)
    }

    /// Queues `input` in the room `jid`; gives it back with the condition
    /// to answer when the room cannot be had.
    async fn deliver(
        self: &Arc<Shared>,
        services: &Services,
        jid: &BareJid,
        mut input: Input,
    ) -> Result<(), (C, Input)> {
        // A room retiring as the input arrives is looked up again.
        for _ in 0..8 {
            let room = match self.room(services, jid).await {
                Ok(r) => r,
                Err(cond) => return Err((cond, input)),
            };
            match room.push_or_return(self, input) {
                Ok(()) => return Ok(()),
                Err(back) => {
                    self.rooms.remove_if(jid, |_, r| Arc::ptr_eq(r, &room));
                    input = back;
                }
            }
        }
        tracing::error!(room = %jid, "room kept retiring; input refused");
        Err((C::ResourceConstraint, input))
    }

    /// The live rooms, taken out of the map before any is locked: a room
    /// retiring removes itself from the map with its lock held, so
    /// locking rooms while iterating the map would invert that order.
    fn live(&self) -> Vec<Arc<Room>> {
        self.rooms.iter().map(|r| r.value().clone()).collect()
    }

    /// Records that `full` is in `room` (or no longer is).
    pub fn set_joined(&self, full: &FullJid, room: &BareJid, joined: bool) {
        if joined {
            let mut rooms = self.joined.entry(full.clone()).or_default();
            if !rooms.contains(room) {
                rooms.push(room.clone());
            }
        } else {
            let empty = match self.joined.get_mut(full) {
                Some(mut rooms) => {
                    rooms.retain(|r| r != room);
                    rooms.is_empty()
                }
                None => false,
            };
            if empty {
                self.joined.remove_if(full, |_, rooms| rooms.is_empty());
            }
        }
    }

    /// Rooms in memory that `owner` owns, for `muc.max_rooms_per_user`.
    pub fn owned_by(&self, owner: &BareJid) -> u32 {
        self.owned
            .get(owner)
            .map_or(0, |r| u32::try_from(r.len()).unwrap_or(u32::MAX))
    }

    /// `room`'s owners went from `old` to `new`.
    pub fn index_owners(&self, room: &BareJid, old: &[BareJid], new: &[BareJid]) {
        for o in old.iter().filter(|o| !new.contains(o)) {
            let empty = self.owned.get_mut(o).is_some_and(|mut rooms| {
                rooms.remove(room);
                rooms.is_empty()
            });
            if empty {
                self.owned.remove_if(o, |_, rooms| rooms.is_empty());
            }
        }
        for o in new.iter().filter(|o| !old.contains(o)) {
            self.owned
                .entry(o.clone())
                .or_default()
                .insert(room.clone());
        }
    }

    /// The `muc` supervisor's spec: its (re)start takes over the rooms
    /// whose actors went down with a previous one.
    fn supervisor_spec(self: &Arc<Shared>) -> ChildSpec {
        let shared = self.clone();
        ChildSpec::supervisor("muc", Restart::Permanent, move |c: StartCtx| {
            let shared = shared.clone();
            async move {
                // A room is cheap to restart and rooms are many: a burst
                // of failing rooms must not take the others down.
                let options = SupervisorOptions::new(Strategy::OneForOne)
                    .intensity(1000, Duration::from_secs(10));
                let cell = chorus_supervisor::spawn_supervisor(c, options, Vec::new()).await?;
                *shared.supervisor.lock().unwrap_or_else(|p| p.into_inner()) = Some(cell.clone());
                let rooms: Vec<Arc<Room>> =
                    shared.rooms.iter().map(|r| r.value().clone()).collect();
                for room in rooms {
                    let take = {
                        let mut inner = room.lock();
                        let take = !inner.gone;
                        inner.running = take;
                        take
                    };
                    if take {
                        shared.start_room(room);
                    }
                }
                Ok(cell)
            }
        })
    }
}

static INFO: ModuleInfo = ModuleInfo {
    name: "muc",
    file: file!(),
    xeps: &[
        Xep {
            number: 45,
            name: "Multi-User Chat",
            version: "1.35.1",
            support: Support::Partial,
            note: "Rooms as supervised actors on conference.<domain>: joining with history and passwords, members-only, moderated, semi-anonymous and non-anonymous rooms, nick changes, several resources under one nick, private messages, mediated invitations, voice requests, every role and affiliation change with list deltas, the owner's configuration form, destruction, persistent rooms, nick registration (`muc#register`, §7.10) and the reserved-nick query (§7.12), room archives (XEP-0313). No occupants from other servers until federation; archived messages carry no real JIDs, even for moderators (§6.1.2 of XEP-0313).",
        },
        Xep {
            number: 410,
            name: "MUC Self-Ping (Schrödinger's Chat)",
            version: "1.0.1",
            support: Support::Complete,
            note: "The room answers for its occupants (`muc#self-ping-optimization`).",
        },
        Xep {
            number: 424,
            name: "Message Retraction",
            version: "0.4.2",
            support: Support::Partial,
            note: "In rooms: the room lets an occupant retract only its own messages (by occupant-id), tells everyone and keeps a tombstone in the room's archive. Retractions between accounts pass through untouched; accounts' archives keep the original.",
        },
        Xep {
            number: 425,
            name: "Moderated Message Retraction",
            version: "0.3.0",
            support: Support::Complete,
            note: "Moderators retract any message of the room; tombstones in the room's archive.",
        },
        Xep {
            number: 421,
            name: "Occupant identifiers for semi-anonymous MUCs",
            version: "0.2.0",
            support: Support::Complete,
            note: "",
        },
    ],
    hooks: HookSet::SESSION_CLOSED,
    ..ModuleInfo::EMPTY
};

/// The module.
pub struct Muc {
    shared: Arc<Shared>,
}

impl Muc {
    pub fn from_config(config: &chorus_config::Config) -> Muc {
        Muc {
            shared: Shared::new(MucOptions::from_config(config)),
        }
    }
}

impl Module for Muc {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn children(&self, ctx: &ChildCtx) -> Vec<ChildSpec> {
        *self.shared.ctx.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx.clone());
        vec![self.shared.supervisor_spec()]
    }

    fn hosted(&self, ctx: &ChildCtx) -> Vec<(String, Arc<dyn chorus_router::Service>)> {
        self.shared
            .options
            .services
            .iter()
            .map(|domain| {
                let s: Arc<dyn chorus_router::Service> = Arc::new(service::MucService::new(
                    domain.clone(),
                    self.shared.clone(),
                    ctx.services.clone(),
                ));
                (domain.clone(), s)
            })
            .collect()
    }

    fn muc_rooms(&self) -> Option<MucRooms> {
        Some(MucRooms {
            shared: self.shared.clone(),
        })
    }

    /// The rooms finish what they owe storage (their state and archive),
    /// for a few seconds at most.
    fn stopping<'a>(&'a self) -> Option<futures_util::future::BoxFuture<'a, ()>> {
        Some(Box::pin(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while tokio::time::Instant::now() < deadline {
                let owing = self.shared.live().iter().any(|r| {
                    let inner = r.lock();
                    !inner.archive.is_empty()
                        || !inner.tombstones.is_empty()
                        || inner.saved != inner.version
                        || inner.delete
                });
                if !owing {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tracing::warn!("rooms still owe storage writes at shutdown");
        }))
    }

    /// A session that ends without leaving its rooms leaves them now
    /// (XEP-0045 §7.14 from the server's side), with status 333.
    fn session_closed(&self, ctx: &SessionCtx<'_>) {
        let Some((_, rooms)) = self.shared.joined.remove(ctx.full) else {
            return;
        };
        for jid in rooms {
            if let Some(room) = self.shared.rooms.get(&jid).map(|r| r.clone()) {
                // A room that retired has nobody left to tell.
                let _ = room.push_or_return(&self.shared, Input::Gone(ctx.full.clone()));
            }
        }
    }
}
