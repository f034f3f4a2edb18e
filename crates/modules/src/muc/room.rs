//! A room and its actor.
//!
//! Everything a room is lives in [`Room`], which the service keeps and the
//! room's actor only borrows: its state, the stanzas waiting for it (the
//! inbox) and what it still owes storage. The actor takes one stanza at a
//! time and, in one step with no await in it, changes the state, delivers
//! what the stanza causes to the occupants' sessions and removes it from
//! the inbox. A kill lands between two such steps (ractor cancels an actor
//! at an await), so a room whose actor is killed and restarted has lost no
//! stanza it took, delivered nothing twice and left no occupant: the new
//! actor goes on with the next stanza in the inbox.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chorus_jid::{BareJid, FullJid};
use chorus_router::Router;
use chorus_storage::{ArchivedMessage, MucStore, StoredRoom};
use chorus_supervisor::{ActorStats, ChildSpec, Restart, SupervisorMsg};
use chorus_xml::Element;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::state::{Affiliation, RoomState};
use super::{proto, Shared};
use crate::Services;

/// What reaches a room.
pub enum Input {
    /// A stanza addressed to the room or to an occupant.
    Stanza(Element),
    /// A session in the room ended without leaving it (its client is gone,
    /// RFC 6121 §4.6 is not going to come): it leaves.
    Gone(FullJid),
    /// A moderator's retraction (XEP-0425) of a message the service found.
    Moderate(Box<Retraction>),
    /// An occupant's retraction of its own message (XEP-0424), checked by
    /// the service against the original's occupant-id.
    Retract(Box<Retraction>),
    /// An operator's request, and where its outcome goes.
    Admin(
        super::ops::AdminOp,
        tokio::sync::oneshot::Sender<Result<(), super::ops::MucAdminError>>,
    ),
}

/// A retraction the service checked: the request, the stanza-id it
/// names, and that message as archived or kept.
pub struct Retraction {
    pub stanza: Element,
    pub id: String,
    pub original: Element,
}

/// One room, as the service keeps it.
pub struct Room {
    pub jid: BareJid,
    /// The service the room is on.
    pub service: String,
    inner: Mutex<Inner>,
}

pub struct Inner {
    pub inbox: VecDeque<Input>,
    /// None for a room that does not exist (yet).
    pub state: Option<RoomState>,
    /// Stanzas for somewhere other than a local session, routed after the
    /// step that made them.
    pub routed: VecDeque<Element>,
    /// Messages for the room's archive, written after the step that took
    /// them (and by an archive query first, for read-your-writes).
    pub archive: VecDeque<ArchivedMessage>,
    /// Archived messages to replace (stanza-id, tombstone), written after
    /// the archive queue.
    pub tombstones: VecDeque<(String, String)>,
    /// Bumped on every change to the persistent part.
    pub version: u64,
    /// The version storage has: whatever is newer is written next.
    pub saved: u64,
    /// The room is to be removed from storage.
    pub delete: bool,
    /// An actor runs for the room (or its supervisor will restart it).
    pub running: bool,
    /// The service forgot the room: a stanza that finds it here goes to
    /// a new one.
    pub gone: bool,
    /// The owners, as the service's index has them.
    pub owners: Vec<BareJid>,
    /// Storage has the room.
    pub persisted: bool,
}

impl Room {
    pub fn new(jid: BareJid, service: String, state: Option<RoomState>) -> Room {
        let owners = state
            .as_ref()
            .map(|s| s.with_affiliation(Affiliation::Owner))
            .unwrap_or_default();
        // Only a stored room exists before its first stanza.
        let persisted = state.is_some();
        Room {
            jid,
            service,
            inner: Mutex::new(Inner {
                inbox: VecDeque::new(),
                state,
                routed: VecDeque::new(),
                archive: VecDeque::new(),
                tombstones: VecDeque::new(),
                version: 0,
                saved: 0,
                delete: false,
                running: false,
                gone: false,
                persisted,
                owners,
            }),
        }
    }

    /// The lock on the room. A panic while it was held left the state as
    /// the panicking step did; the step is counted as done.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tree id of the room's actor: its JID.
    pub fn actor_id(&self) -> String {
        self.jid.to_string()
    }

    /// Queues `input`, starting the room's actor if none runs. Gives it
    /// back when the room is gone: the caller looks it up again.
    pub fn push_or_return(
        self: &Arc<Room>,
        shared: &Arc<Shared>,
        input: Input,
    ) -> Result<(), Input> {
        let mut inner = self.lock();
        if inner.gone {
            return Err(input);
        }
        inner.inbox.push_back(input);
        if inner.running {
            drop(inner);
            let actor = shared.actor(&self.actor_id());
            // A dead actor is being restarted; it reads the inbox.
            if let Some(actor) = actor {
                let _ = actor.cast(RoomMsg::Wake);
            }
        } else {
            inner.running = true;
            drop(inner);
            shared.start_room(self.clone());
        }
        Ok(())
    }
}

/// Messages to a room's actor.
pub enum RoomMsg {
    /// The inbox has something.
    Wake,
    /// Check whether an empty persistent room has been idle long enough.
    Idle(u64),
}

/// What the actor needs.
#[derive(Clone)]
pub struct RoomArgs {
    pub room: Arc<Room>,
    pub shared: Arc<Shared>,
    pub router: Arc<Router>,
    pub services: Arc<Services>,
}

pub struct RoomActor;

/// The actor's own state: the idle timer's generation, and the counters
/// the tree shows.
pub struct ActorState {
    args: RoomArgs,
    idle_generation: u64,
    stats: Arc<ActorStats>,
}

/// Stanzas one wake handles before yielding to the runtime.
const BATCH: usize = 64;

impl Actor for RoomActor {
    type Msg = RoomMsg;
    type State = ActorState;
    type Arguments = (RoomArgs, Arc<ActorStats>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (args, stats): (RoomArgs, Arc<ActorStats>),
    ) -> Result<Self::State, ActorProcessingErr> {
        args.shared
            .actors
            .insert(args.room.actor_id(), myself.clone());
        // A restarted actor picks up where the last one stopped.
        myself.cast(RoomMsg::Wake)?;
        Ok(ActorState {
            args,
            idle_generation: 0,
            stats,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let id = state.args.room.actor_id();
        state
            .args
            .shared
            .actors
            .remove_if(&id, |_, a| a.get_id() == myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RoomMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RoomMsg::Wake => drain(&myself, state).await,
            RoomMsg::Idle(generation) if generation == state.idle_generation => {
                let args = &state.args;
                let mut inner = args.room.lock();
                let empty = inner.inbox.is_empty()
                    && inner.routed.is_empty()
                    && inner.archive.is_empty()
                    && inner.tombstones.is_empty()
                    && inner.saved == inner.version
                    && !inner.delete
                    && inner.state.as_ref().is_none_or(|s| s.occupants.is_empty());
                if empty {
                    retire(&args.shared, &args.room, &mut inner);
                }
            }
            RoomMsg::Idle(_) => {}
        }
        Ok(())
    }
}

/// Takes the inbox, one stanza a step, until it is empty.
async fn drain(myself: &ActorRef<RoomMsg>, state: &mut ActorState) {
    /// What the actor does after a batch.
    enum Next {
        More,
        Idle,
        Done,
    }
    loop {
        flush(&state.args).await;
        let next = {
            let args = &state.args;
            let mut inner = args.room.lock();
            for _ in 0..BATCH {
                let Some(input) = inner.inbox.pop_front() else {
                    break;
                };
                step(args, &mut inner, input);
                state.stats.handled_one();
            }
            let owes = !inner.routed.is_empty()
                || !inner.archive.is_empty()
                || !inner.tombstones.is_empty()
                || inner.saved != inner.version
                || inner.delete;
            if !inner.inbox.is_empty() || owes {
                Next::More
            } else {
                // Idle: a room that does not exist, or a temporary one left
                // empty, goes now; an empty persistent one after
                // `muc.idle_secs`.
                match inner.state.as_ref() {
                    None => {
                        retire(&args.shared, &args.room, &mut inner);
                        Next::Done
                    }
                    Some(s) if s.destroyed => {
                        retire(&args.shared, &args.room, &mut inner);
                        Next::Done
                    }
                    Some(s) if s.occupants.is_empty() => Next::Idle,
                    Some(_) => Next::Done,
                }
            }
        };
        match next {
            Next::More => tokio::task::yield_now().await,
            Next::Idle => {
                state.idle_generation += 1;
                let generation = state.idle_generation;
                let after = Duration::from_secs(state.args.shared.options.idle_secs);
                myself.send_after(after, move || RoomMsg::Idle(generation));
                return;
            }
            Next::Done => return,
        }
    }
}

/// One stanza, in one step: no await from here to the inbox's next.
fn step(args: &RoomArgs, inner: &mut Inner, input: Input) {
    let mut out = proto::Out::default();
    {
        let mut ctx = proto::Ctx {
            room: &args.room.jid,
            shared: &args.shared,
            out: &mut out,
        };
        match input {
            Input::Stanza(stanza) => proto::handle(&mut ctx, &mut inner.state, stanza),
            Input::Gone(full) => proto::gone(&mut ctx, &mut inner.state, &full),
            Input::Moderate(r) => {
                proto::moderate(&mut ctx, &mut inner.state, &r.stanza, &r.id, &r.original)
            }
            Input::Retract(r) => {
                let r = *r;
                proto::retract(&mut ctx, &mut inner.state, r.stanza, &r.id, &r.original)
            }
            Input::Admin(op, reply) => {
                let _ = reply.send(super::ops::step(&mut ctx, &mut inner.state, op));
            }
        }
    }
    inner.archive.extend(out.archive);
    inner.tombstones.extend(out.tombstones);
    if out.changed {
        inner.version += 1;
    }
    if out.delete {
        inner.delete = true;
    }
    if out.changed || out.delete {
        let owners = match inner.state.as_ref() {
            Some(s) if !s.destroyed => s.with_affiliation(Affiliation::Owner),
            _ => Vec::new(),
        };
        args.shared
            .index_owners(&args.room.jid, &inner.owners, &owners);
        inner.owners = owners;
    }
    for stanza in out.stanzas {
        if let Some(stanza) = deliver_local(&args.services, stanza) {
            inner.routed.push_back(stanza);
        }
    }
}

/// Hands `stanza` to the local session it is for, now; gives it back when
/// it is for anyone else.
fn deliver_local(services: &Services, stanza: Element) -> Option<Element> {
    let to = stanza.attr("to").and_then(|t| t.parse::<FullJid>().ok());
    let Some(session) = to.and_then(|to| services.sessions.get(&to)) else {
        return Some(stanza);
    };
    session.sink.try_deliver(stanza).err()
}

/// Writes what storage is owed, and routes what could not be delivered
/// locally. A write is repeated until it succeeds: it is the whole room,
/// so repeating it does no harm.
async fn flush(args: &RoomArgs) {
    // The archive first: an entry leaves the queue once written, and a
    // repeated write (after a kill) is a no-op.
    loop {
        let Some(next) = args.room.lock().archive.front().cloned() else {
            break;
        };
        if let Err(e) = args
            .services
            .storage
            .muc_archive_append(args.room.jid.as_str(), &next)
            .await
        {
            tracing::error!(room = %args.room.jid, error = %e, "room archive write failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let mut inner = args.room.lock();
        if inner
            .archive
            .front()
            .is_some_and(|m| m.stanza_id == next.stanza_id)
        {
            inner.archive.pop_front();
        }
    }
    // Then the tombstones, which replace what the archive has.
    loop {
        let Some((id, stanza)) = args.room.lock().tombstones.front().cloned() else {
            break;
        };
        if let Err(e) = args
            .services
            .storage
            .muc_archive_replace(args.room.jid.as_str(), &id, &stanza)
            .await
        {
            tracing::error!(room = %args.room.jid, error = %e, "room archive tombstone failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        args.room.lock().tombstones.pop_front();
    }
    loop {
        let (next, write) = {
            let mut inner = args.room.lock();
            // Taken off the queue only once routed: a kill while routing
            // sends it again rather than never.
            let next = inner.routed.front().cloned();
            let write = if inner.delete {
                Some(None)
            } else if inner.saved != inner.version {
                let persisted = inner.persisted;
                let version = inner.version;
                match inner.state.as_ref() {
                    // A temporary room storage never had: nothing to write.
                    Some(s) if !persisted && (!s.config.persistent || s.destroyed) => {
                        inner.saved = version;
                        None
                    }
                    other => other.map(|s| {
                        Some((
                            inner.version,
                            s.config.persistent && !s.destroyed,
                            StoredRoom {
                                jid: args.room.jid.to_string(),
                                service: args.room.service.clone(),
                                name: s.config.name.clone(),
                                public: s.config.public,
                                state: s.to_stored(args.shared.options.max_occupants),
                            },
                        ))
                    }),
                }
            } else {
                None
            };
            (next, write)
        };
        if let Some(stanza) = next {
            args.router.send(stanza).await;
            args.room.lock().routed.pop_front();
            continue;
        }
        match write {
            None => return,
            Some(None) => {
                if let Err(e) = args
                    .services
                    .storage
                    .muc_delete_room(args.room.jid.as_str())
                    .await
                {
                    tracing::error!(room = %args.room.jid, error = %e, "room deletion failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                let mut inner = args.room.lock();
                inner.delete = false;
                inner.persisted = false;
                // A room created again in its place since (a join, an
                // operator) is written on the next turn.
                if inner.state.as_ref().is_none_or(|s| s.destroyed) {
                    inner.saved = inner.version;
                }
            }
            Some(Some((version, persistent, stored))) => {
                let done = if persistent {
                    args.services.storage.muc_save_room(&stored).await
                } else {
                    // A room made temporary is no longer kept.
                    args.services
                        .storage
                        .muc_delete_room(&stored.jid)
                        .await
                        .map(|_| ())
                };
                if let Err(e) = done {
                    tracing::error!(room = %args.room.jid, error = %e, "room write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                let mut inner = args.room.lock();
                inner.saved = version;
                inner.persisted = persistent;
            }
        }
    }
}

/// The room has nothing left to do: the service forgets it and its actor
/// is stopped (its spec goes with it, so the next stanza for the room
/// starts a fresh one).
fn retire(shared: &Arc<Shared>, room: &Arc<Room>, inner: &mut Inner) {
    inner.gone = true;
    shared.index_owners(&room.jid, &inner.owners, &[]);
    inner.owners.clear();
    inner.running = false;
    shared
        .rooms
        .remove_if(&room.jid, |_, r| Arc::ptr_eq(r, room));
    if let Some(sup) = shared.supervisor() {
        let _ = sup.cast(SupervisorMsg::TerminateChild(room.actor_id()));
    }
}

/// The spec of a room's actor: transient, so a kill or a crash brings it
/// back on the same [`Room`], and a stop on purpose does not.
pub fn spec(args: RoomArgs) -> ChildSpec {
    ChildSpec::worker(
        args.room.actor_id(),
        Restart::Transient,
        move |sctx: chorus_supervisor::StartCtx| {
            let args = (args.clone(), sctx.stats());
            async move {
                let (a, _) = Actor::spawn_linked(None, RoomActor, args, sctx.supervisor).await?;
                Ok(a.get_cell())
            }
        },
    )
    .kind("room")
}
