//! The supervisor actor: OTP restart strategies, intensity and auto-shutdown on top of ractor.
//!
//! ractor only links children to parents and reports their exits; its default
//! `handle_supervisor_evt` stops the parent on any child exit. This actor overrides it and does
//! what `supervisor.erl` does:
//!
//! - static children start in order in `pre_start`; one failing fails the supervisor's start;
//! - on a child exit, the restart policy and the exit reason decide whether to restart, and the
//!   strategy decides which siblings go down with it (stopped in reverse start order, each with
//!   its shutdown time, then killed) and come back (in start order);
//! - more than `intensity` restarts within `period` stop every child and end the supervisor
//!   abnormally with `reached_max_restart_intensity`, which its parent counts in turn;
//! - significant children can end the supervisor normally (`auto_shutdown`);
//! - groups (`conn-<id>`) are one_for_all + temporary sets of members kept in this supervisor,
//!   saving a supervisor actor per connection; a member marked insignificant leaves its group
//!   without ending it.
//!
//! Children are tracked by `ActorId`; a child the supervisor stops on purpose is forgotten
//! before it is stopped, so its exit event is recognised as stale and ignored. Restarts happen
//! immediately, never after a sleep inside the actor.
//!
//! The registry entries of the children belong to this supervisor incarnation: it writes them,
//! removes them on exits, and its state's `Drop` removes whatever is left, which is the only
//! cleanup that runs when the supervisor itself is killed (ractor then skips `post_stop`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use tracing::{debug, error, info, warn};

use crate::registry::{ActorStats, Registry, Status, Target};
use crate::spec::{
    AutoShutdown, ChildSpec, GroupMember, GroupSpec, Restart, StartCtx, Strategy, SupervisorOptions,
};

/// Kind shown for group nodes in the registry and the tree.
pub const GROUP_KIND: &str = "group(one_for_all)";

/// Exit reason of a supervisor that gave up after too many restarts (abnormal for its parent).
pub const REACHED_MAX_RESTART_INTENSITY: &str = "reached_max_restart_intensity";

/// Exit reason the supervisor gives the children it stops, and its own reason when it
/// shuts down because of significant children (normal for its parent).
pub const SHUTDOWN: &str = "shutdown";

/// How long group members get to stop gracefully before they are killed, when a group is
/// terminated or its supervisor shuts down. Groups carry no shutdown time of their own.
pub const GROUP_SHUTDOWN: Duration = Duration::from_secs(5);

/// How long to wait for an actor to disappear after a kill before giving up on it: a kill
/// cancels at the next await point, so only an actor stuck in blocking code takes longer.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Source of owner tokens; 0 is [`crate::registry::NO_OWNER`].
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Whether an exit reason is a normal exit in the OTP sense: no reason, `normal`, `shutdown`
/// or anything starting with `shutdown` (OTP's `{shutdown, Term}`), and ractor's `Drained`
/// (a drain is a graceful stop asked for by someone). Everything else, including ractor's
/// `killed` and every `ActorFailed`, is abnormal.
pub fn is_normal_exit(reason: Option<&str>) -> bool {
    match reason {
        None => true,
        Some(r) => r == "normal" || r.starts_with(SHUTDOWN) || r == "Drained",
    }
}

/// The supervisor actor. Spawn it with [`crate::spawn_supervisor`] or [`crate::spawn_root`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervisor;

/// Start arguments of a [`Supervisor`].
#[derive(Debug)]
pub struct SupervisorArgs {
    /// This supervisor's own path; children go at `<path>/<id>`.
    pub path: String,
    /// Where children are registered.
    pub registry: Registry,
    /// Strategy, intensity, auto-shutdown.
    pub options: SupervisorOptions,
    /// Static children, started in order.
    pub children: Vec<ChildSpec>,
}

/// Requests to a supervisor.
pub enum SupervisorMsg {
    /// Adds and starts a child (like OTP `start_child/2`). Replies with its cell, or an error
    /// if the id is taken or invalid or the start failed; the spec is dropped on failure.
    StartChild(ChildSpec, Option<RpcReplyPort<Result<ActorCell, String>>>),
    /// Starts a group (`conn-<id>`); see [`GroupSpec`].
    StartGroup(GroupSpec, Option<RpcReplyPort<Result<(), String>>>),
    /// Stops a child (shutdown time, then kill) or a group, and forgets its spec.
    TerminateChild(String),
    /// Ids of the current children, groups included, in start order.
    Children(RpcReplyPort<Vec<String>>),
    /// Internal: try again to restart a child whose restart failed (OTP `try_again_restart`).
    /// Sent by the supervisor to itself so other requests interleave with the retries.
    #[doc(hidden)]
    RetryRestart(u64),
}

impl std::fmt::Debug for SupervisorMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StartChild(spec, _) => write!(f, "StartChild({})", spec.id),
            Self::StartGroup(spec, _) => write!(f, "StartGroup({})", spec.id),
            Self::TerminateChild(id) => write!(f, "TerminateChild({id})"),
            Self::Children(_) => write!(f, "Children"),
            Self::RetryRestart(seq) => write!(f, "RetryRestart({seq})"),
        }
    }
}

struct ChildSlot {
    spec: ChildSpec,
    /// `None` while the child is not running (exited transient, failed restart pending retry).
    cell: Option<ActorCell>,
    restarts: u32,
    last_error: Option<String>,
}

struct GroupSlot {
    id: String,
    members: Vec<GroupMember>,
}

enum Slot {
    Child(ChildSlot),
    Group(GroupSlot),
}

impl Slot {
    fn id(&self) -> &str {
        match self {
            Slot::Child(c) => &c.spec.id,
            Slot::Group(g) => &g.id,
        }
    }
}

/// State of a running [`Supervisor`]. Opaque; public only because `Actor::State` is.
pub struct SupervisorState {
    path: String,
    registry: Registry,
    options: SupervisorOptions,
    /// Owner token of the registry entries this incarnation writes.
    token: u64,
    next_seq: u64,
    /// Children and groups by start sequence: iteration order is start order, and a restarted
    /// child keeps its sequence and so its place.
    slots: BTreeMap<u64, Slot>,
    /// Child and group ids to their sequence.
    ids: HashMap<String, u64>,
    /// Live actors (children and group members) to the sequence of their slot. An actor not
    /// in here is one we stopped on purpose, or an old incarnation: its exit is ignored.
    actors: HashMap<ActorId, u64>,
    /// Times of recent restarts, for intensity.
    restart_log: VecDeque<Instant>,
    /// Set once the supervisor is ending; later exits and requests are ignored.
    stopping: bool,
}

impl Drop for SupervisorState {
    fn drop(&mut self) {
        // The only cleanup guaranteed to run when this supervisor is killed: ractor kills the
        // children too, and nobody else would remove their entries.
        self.registry.unregister_owned_below(&self.path, self.token);
    }
}

fn valid_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        Err("child id is empty".to_owned())
    } else if id.contains('/') {
        Err(format!("child id `{id}` contains '/'"))
    } else {
        Ok(())
    }
}

fn validate_spec(spec: &ChildSpec) -> Result<(), String> {
    valid_id(&spec.id)?;
    if spec.significant && spec.restart == Restart::Permanent {
        return Err(format!(
            "child `{}`: a permanent child cannot be significant",
            spec.id
        ));
    }
    Ok(())
}

/// Runs a start function so that a panic in it is a failed start, not a crashed supervisor.
async fn guarded_start<T, F, Fut>(start: F) -> Result<T, String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, SpawnErr>> + Send + 'static,
    T: Send + 'static,
{
    let future = match std::panic::catch_unwind(AssertUnwindSafe(start)) {
        Ok(future) => future,
        Err(_) => return Err("start function panicked".to_owned()),
    };
    // A separate task catches panics inside the future; the future is 'static and only
    // spawns actors linked to this supervisor, so running it elsewhere changes nothing else.
    match tokio::spawn(future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.to_string()),
        Err(join) if join.is_panic() => Err("start function panicked".to_owned()),
        Err(join) => Err(join.to_string()),
    }
}

/// Stops `cell` gracefully, killing it if it outlives `shutdown`.
async fn shutdown_cell(path: &str, cell: &ActorCell, shutdown: Duration) {
    // OTP's brutal_kill: a zero shutdown time means kill at once, as
    // declared, which is nothing to warn about.
    if shutdown.is_zero() {
        cell.kill();
    } else {
        cell.stop(Some(SHUTDOWN.to_owned()));
        if cell.wait(Some(shutdown)).await.is_ok() {
            return;
        }
        warn!(path, ?shutdown, "child did not stop in time; killing it");
        cell.kill();
    }
    if cell.wait(Some(KILL_WAIT)).await.is_err() {
        error!(path, "child did not exit after kill");
    }
}

/// Kills actors that are still running after `deadline`.
async fn reap_after(cells: Vec<ActorCell>, deadline: Instant) {
    for cell in cells {
        let left = deadline.saturating_duration_since(Instant::now());
        if cell.wait(Some(left)).await.is_err() {
            cell.kill();
        }
    }
}

impl SupervisorState {
    fn child_path(&self, id: &str) -> String {
        format!("{}/{}", self.path, id)
    }

    fn alloc_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Starts the child in slot `seq` (which must be a child that is not running) and records
    /// it. On failure the slot stays, not running, with its entry marked restarting.
    async fn start_slot(&mut self, myself: &ActorCell, seq: u64) -> Result<(), String> {
        let Some(Slot::Child(child)) = self.slots.get(&seq) else {
            return Err(format!("no child with sequence {seq}"));
        };
        let path = format!("{}/{}", self.path, child.spec.id);
        let stats = Arc::new(ActorStats::new());
        stats.restarts.store(child.restarts, Ordering::Relaxed);
        stats.set_last_error(child.last_error.clone());
        // The entry exists before the start function runs, so the actor can pick up its
        // stats in pre_start (StartCtx::stats) and child supervisors have a parent node.
        self.registry.insert(
            &path,
            child.spec.kind,
            Target::Pending,
            self.token,
            seq,
            stats,
        );
        let start = Arc::clone(&child.spec.start);
        let ctx = StartCtx {
            supervisor: myself.clone(),
            path: path.clone(),
            registry: self.registry.clone(),
        };
        match guarded_start(move || start(ctx)).await {
            Ok(cell) => {
                self.registry.attach(&path, cell.clone());
                self.actors.insert(cell.get_id(), seq);
                if let Some(Slot::Child(child)) = self.slots.get_mut(&seq) {
                    child.cell = Some(cell);
                }
                debug!(path, "child started");
                Ok(())
            }
            Err(err) => {
                self.registry.set_status(&path, Status::Restarting);
                if let Some(stats) = self.registry.stats(&path) {
                    stats.set_last_error(Some(err.clone()));
                }
                if let Some(Slot::Child(child)) = self.slots.get_mut(&seq) {
                    child.last_error = Some(err.clone());
                }
                warn!(path, error = %err, "child failed to start");
                Err(err)
            }
        }
    }

    /// Removes a slot and its registry subtree.
    fn forget(&mut self, seq: u64) -> Option<Slot> {
        let slot = self.slots.remove(&seq)?;
        self.ids.remove(slot.id());
        self.registry
            .unregister_subtree(&self.child_path(slot.id()));
        Some(slot)
    }

    /// Stops the slots in `seqs` in reverse order. Children are stopped one by one with their
    /// shutdown time; groups get a stop and share one [`GROUP_SHUTDOWN`] deadline, awaited
    /// before the next older child goes down. Temporary children and groups are forgotten;
    /// others (when `keep` is set) stay as not-running specs so they can be started again.
    async fn stop_slots(&mut self, seqs: &[u64], keep: bool) {
        let mut groups: Vec<ActorCell> = Vec::new();
        for &seq in seqs.iter().rev() {
            match self.slots.get_mut(&seq) {
                None => {}
                Some(Slot::Group(_)) => {
                    if let Some(Slot::Group(group)) = self.forget(seq) {
                        for member in group.members {
                            self.actors.remove(&member.cell.get_id());
                            member.cell.stop(Some(SHUTDOWN.to_owned()));
                            groups.push(member.cell);
                        }
                    }
                }
                Some(Slot::Child(child)) => {
                    let cell = child.cell.take();
                    let shutdown = child.spec.shutdown;
                    let temporary = child.spec.restart == Restart::Temporary;
                    let path = format!("{}/{}", self.path, child.spec.id);
                    if !groups.is_empty() {
                        reap_after(std::mem::take(&mut groups), Instant::now() + GROUP_SHUTDOWN)
                            .await;
                    }
                    if let Some(cell) = cell {
                        self.actors.remove(&cell.get_id());
                        self.registry.set_status(&path, Status::Stopping);
                        shutdown_cell(&path, &cell, shutdown).await;
                    }
                    if temporary || !keep {
                        self.forget(seq);
                    } else {
                        self.registry.unregister_below(&path);
                        self.registry.set_status(&path, Status::Restarting);
                    }
                }
            }
        }
        if !groups.is_empty() {
            reap_after(groups, Instant::now() + GROUP_SHUTDOWN).await;
        }
    }

    /// Stops every child in reverse start order and forgets them all.
    async fn stop_all(&mut self) {
        let seqs: Vec<u64> = self.slots.keys().copied().collect();
        self.stop_slots(&seqs, false).await;
    }

    /// Records a restart; true when the intensity is exceeded.
    fn restart_exceeds_intensity(&mut self) -> bool {
        let now = Instant::now();
        self.restart_log.push_back(now);
        while let Some(&oldest) = self.restart_log.front() {
            if now.duration_since(oldest) > self.options.period {
                self.restart_log.pop_front();
            } else {
                break;
            }
        }
        self.restart_log.len() > self.options.intensity as usize
    }

    /// Applies the strategy after the child at `seq` stopped (it is already not running).
    async fn restart(&mut self, myself: &ActorRef<SupervisorMsg>, seq: u64) {
        let affected: Vec<u64> = match self.options.strategy {
            Strategy::OneForOne => vec![seq],
            Strategy::OneForAll => self.slots.keys().copied().collect(),
            Strategy::RestForOne => self.slots.range(seq..).map(|(&s, _)| s).collect(),
        };
        let others: Vec<u64> = affected.iter().copied().filter(|&s| s != seq).collect();
        self.stop_slots(&others, true).await;

        let cell = myself.get_cell();
        for s in affected {
            let (id, restarts) = match self.slots.get_mut(&s) {
                Some(Slot::Child(child)) if child.cell.is_none() => {
                    child.restarts = child.restarts.saturating_add(1);
                    (child.spec.id.clone(), child.restarts)
                }
                _ => continue,
            };
            info!(path = %self.child_path(&id), restarts, "restarting child");
            if self.start_slot(&cell, s).await.is_err() {
                // Younger children stay down; the retry restarts them per the strategy.
                if myself.cast(SupervisorMsg::RetryRestart(s)).is_err() {
                    debug!(path = %self.path, "supervisor is exiting; restart retry dropped");
                }
                return;
            }
        }
    }

    /// Gives up: stops every child and exits abnormally so the parent escalates further.
    async fn escalate(&mut self, myself: &ActorRef<SupervisorMsg>) {
        error!(
            path = %self.path,
            intensity = self.options.intensity,
            period = ?self.options.period,
            "reached max restart intensity; shutting down and escalating"
        );
        self.stopping = true;
        self.stop_all().await;
        myself.stop(Some(REACHED_MAX_RESTART_INTENSITY.to_owned()));
    }

    /// Whether the exit of a significant child that is not restarted ends this supervisor.
    fn auto_shutdown_due(&self) -> bool {
        match self.options.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self.slots.values().any(
                |slot| matches!(slot, Slot::Child(c) if c.spec.significant && c.cell.is_some()),
            ),
        }
    }

    async fn child_exited(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: ActorId,
        reason: Option<String>,
        abnormal: bool,
    ) {
        if self.stopping {
            return;
        }
        let Some(seq) = self.actors.remove(&id) else {
            // Stopped on purpose, or an earlier incarnation.
            return;
        };
        let reason_text = reason.as_deref().unwrap_or("normal");
        let child = match self.slots.get_mut(&seq) {
            None => return,
            Some(Slot::Group(_)) => {
                self.group_member_exited(seq, id, reason_text);
                return;
            }
            Some(Slot::Child(child)) => child,
        };
        child.cell = None;
        let path = format!("{}/{}", self.path, child.spec.id);
        if abnormal {
            warn!(path, reason = reason_text, "child exited abnormally");
            child.last_error = Some(reason_text.to_owned());
            if let Some(stats) = self.registry.stats(&path) {
                stats.set_last_error(Some(reason_text.to_owned()));
            }
        } else {
            info!(path, reason = reason_text, "child exited");
        }
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if !restart {
            let significant = child.spec.significant;
            if child.spec.restart == Restart::Temporary {
                self.forget(seq);
            } else {
                // OTP keeps the spec of a transient child that ended normally; it comes back
                // if a one_for_all or rest_for_one restart sweeps over it.
                self.registry.unregister_subtree(&path);
            }
            if significant && self.auto_shutdown_due() {
                info!(path = %self.path, child = path, "significant child exited; shutting down");
                self.stopping = true;
                self.stop_all().await;
                myself.stop(Some(SHUTDOWN.to_owned()));
            }
            return;
        }
        // A dead child supervisor's subtree entries must go before a new incarnation
        // registers its own.
        self.registry.unregister_below(&path);
        self.registry.set_status(&path, Status::Restarting);
        if self.restart_exceeds_intensity() {
            self.escalate(myself).await;
            return;
        }
        self.restart(myself, seq).await;
    }

    /// A group member exited. A significant one ends the group; an insignificant one only
    /// leaves it (its registry entry goes), unless it was the last member.
    fn group_member_exited(&mut self, seq: u64, exited: ActorId, reason: &str) {
        let path = {
            let Some(Slot::Group(group)) = self.slots.get_mut(&seq) else {
                return;
            };
            let Some(i) = group.members.iter().position(|m| m.cell.get_id() == exited) else {
                return;
            };
            if group.members[i].significant || group.members.len() == 1 {
                self.end_group(seq, exited, reason);
                return;
            }
            let member = group.members.remove(i);
            format!("{}/{}/{}", self.path, group.id, member.id)
        };
        self.registry.unregister_subtree(&path);
        debug!(
            path,
            reason, "insignificant group member exited; group goes on"
        );
    }

    /// A significant group member exited: the rest of the group is killed and the group
    /// forgotten.
    fn end_group(&mut self, seq: u64, exited: ActorId, reason: &str) {
        let Some(Slot::Group(group)) = self.forget(seq) else {
            return;
        };
        let mut member_id = "";
        for member in &group.members {
            let id = member.cell.get_id();
            if id == exited {
                member_id = &member.id;
            } else {
                self.actors.remove(&id);
                member.cell.kill();
            }
        }
        debug!(
            path = %self.child_path(&group.id),
            member = member_id,
            reason,
            "group member exited; group ended"
        );
    }

    async fn start_child(
        &mut self,
        myself: &ActorCell,
        spec: ChildSpec,
    ) -> Result<ActorCell, String> {
        if self.stopping {
            return Err("supervisor is shutting down".to_owned());
        }
        validate_spec(&spec)?;
        if self.ids.contains_key(&spec.id) {
            return Err(format!("already_present: {}", spec.id));
        }
        let seq = self.alloc_seq();
        let id = spec.id.clone();
        self.ids.insert(id.clone(), seq);
        self.slots.insert(
            seq,
            Slot::Child(ChildSlot {
                spec,
                cell: None,
                restarts: 0,
                last_error: None,
            }),
        );
        if let Err(err) = self.start_slot(myself, seq).await {
            self.forget(seq);
            return Err(format!("child `{id}` failed to start: {err}"));
        }
        match self.slots.get(&seq) {
            Some(Slot::Child(ChildSlot {
                cell: Some(cell), ..
            })) => Ok(cell.clone()),
            _ => Err(format!("child `{id}` exited during start")),
        }
    }

    async fn start_group(&mut self, myself: &ActorCell, spec: GroupSpec) -> Result<(), String> {
        if self.stopping {
            return Err("supervisor is shutting down".to_owned());
        }
        valid_id(&spec.id)?;
        if self.ids.contains_key(&spec.id) {
            return Err(format!("already_present: {}", spec.id));
        }
        let seq = self.alloc_seq();
        let path = self.child_path(&spec.id);
        let stats = Arc::new(ActorStats::new());
        stats.set_status(Status::Running);
        self.registry
            .insert(&path, GROUP_KIND, Target::Group, self.token, seq, stats);
        let ctx = StartCtx {
            supervisor: myself.clone(),
            path: path.clone(),
            registry: self.registry.clone(),
        };
        let start = spec.start;
        let members = match guarded_start(move || start(ctx)).await {
            Ok(members) => members,
            Err(err) => {
                self.registry.unregister_subtree(&path);
                return Err(format!("group `{}` failed to start: {err}", spec.id));
            }
        };
        let mut seen = HashSet::new();
        let problem = if members.is_empty() {
            Some("a group needs at least one member".to_owned())
        } else {
            members.iter().find_map(|m| match valid_id(&m.id) {
                Err(e) => Some(e),
                Ok(()) if !seen.insert(m.id.as_str()) => {
                    Some(format!("duplicate member `{}`", m.id))
                }
                Ok(()) => None,
            })
        };
        if let Some(problem) = problem {
            for member in &members {
                member.cell.kill();
            }
            self.registry.unregister_subtree(&path);
            return Err(format!("group `{}`: {problem}", spec.id));
        }
        for (i, member) in members.iter().enumerate() {
            let stats = Arc::new(ActorStats::new());
            stats.set_status(Status::Running);
            self.registry.insert(
                &format!("{path}/{}", member.id),
                member.kind,
                Target::Cell(member.cell.clone()),
                self.token,
                i as u64,
                stats,
            );
            // A member that already died has its exit queued behind this handler; it finds
            // the group recorded here and ends it.
            self.actors.insert(member.cell.get_id(), seq);
        }
        self.ids.insert(spec.id.clone(), seq);
        self.slots.insert(
            seq,
            Slot::Group(GroupSlot {
                id: spec.id,
                members,
            }),
        );
        Ok(())
    }

    /// Stops and forgets one child or group. A group gets a stop now and a kill after
    /// [`GROUP_SHUTDOWN`] from a background task, so a large `conns` supervisor is not held up.
    async fn terminate_child(&mut self, id: &str) {
        let Some(&seq) = self.ids.get(id) else {
            debug!(path = %self.path, child = id, "terminate: no such child");
            return;
        };
        if matches!(self.slots.get(&seq), Some(Slot::Group(_))) {
            if let Some(Slot::Group(group)) = self.forget(seq) {
                let mut cells = Vec::with_capacity(group.members.len());
                for member in group.members {
                    self.actors.remove(&member.cell.get_id());
                    member.cell.stop(Some(SHUTDOWN.to_owned()));
                    cells.push(member.cell);
                }
                tokio::spawn(reap_after(cells, Instant::now() + GROUP_SHUTDOWN));
            }
            return;
        }
        info!(path = %self.child_path(id), "terminating child");
        self.stop_slots(&[seq], false).await;
    }

    fn children(&self) -> Vec<String> {
        self.slots.values().map(|s| s.id().to_owned()).collect()
    }
}

fn reply<T>(port: Option<RpcReplyPort<T>>, value: T) {
    if let Some(port) = port {
        // The caller may have timed out and gone; nothing to do then.
        let _ = port.send(value);
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = SupervisorState {
            path: args.path,
            registry: args.registry,
            options: args.options,
            token: NEXT_TOKEN.fetch_add(1, Ordering::Relaxed),
            next_seq: 0,
            slots: BTreeMap::new(),
            ids: HashMap::new(),
            actors: HashMap::new(),
            restart_log: VecDeque::new(),
            stopping: false,
        };
        let cell = myself.get_cell();
        for spec in args.children {
            let id = spec.id.clone();
            let problem = match validate_spec(&spec) {
                Err(e) => Some(e),
                Ok(()) if state.ids.contains_key(&id) => Some(format!("duplicate child id `{id}`")),
                Ok(()) => None,
            };
            if let Some(problem) = problem {
                state.stopping = true;
                state.stop_all().await;
                return Err(format!("{}: {problem}", state.path).into());
            }
            let seq = state.alloc_seq();
            state.ids.insert(id.clone(), seq);
            state.slots.insert(
                seq,
                Slot::Child(ChildSlot {
                    spec,
                    cell: None,
                    restarts: 0,
                    last_error: None,
                }),
            );
            if let Err(err) = state.start_slot(&cell, seq).await {
                // As OTP: a static child that cannot start fails the supervisor's start.
                state.stopping = true;
                state.stop_all().await;
                return Err(format!("{}: child `{id}` failed to start: {err}", state.path).into());
            }
        }
        debug!(path = %state.path, children = state.slots.len(), "supervisor started");
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Graceful stop: children go down in reverse start order with their shutdown times.
        // (A kill skips this; ractor then kills the children and Drop clears the registry.)
        state.stopping = true;
        state.stop_all().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartChild(spec, port) => {
                let result = state.start_child(&myself.get_cell(), spec).await;
                reply(port, result);
            }
            SupervisorMsg::StartGroup(spec, port) => {
                let result = state.start_group(&myself.get_cell(), spec).await;
                reply(port, result);
            }
            SupervisorMsg::TerminateChild(id) => {
                if !state.stopping {
                    state.terminate_child(&id).await;
                }
            }
            SupervisorMsg::Children(port) => {
                let _ = port.send(state.children());
            }
            SupervisorMsg::RetryRestart(seq) => {
                let pending = matches!(
                    state.slots.get(&seq),
                    Some(Slot::Child(ChildSlot { cell: None, .. }))
                );
                if state.stopping || !pending {
                    return Ok(());
                }
                if state.restart_exceeds_intensity() {
                    state.escalate(&myself).await;
                } else {
                    state.restart(&myself, seq).await;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, last_state, reason) => {
                // Dropping the child's final state now runs its Drop cleanup (a child
                // supervisor's registry entries) before any restart registers new ones.
                drop(last_state);
                let abnormal = !is_normal_exit(reason.as_deref());
                state
                    .child_exited(&myself, cell.get_id(), reason, abnormal)
                    .await;
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                state
                    .child_exited(&myself, cell.get_id(), Some(err.to_string()), true)
                    .await;
            }
            // Starts and process-group changes need no action.
            _ => {}
        }
        Ok(())
    }
}

/// Spawns a supervisor linked to `ctx.supervisor` at `ctx.path`: the usual body of a child
/// supervisor's start function.
pub async fn spawn_supervisor(
    ctx: StartCtx,
    options: SupervisorOptions,
    children: Vec<ChildSpec>,
) -> Result<ActorCell, SpawnErr> {
    let args = SupervisorArgs {
        path: ctx.path,
        registry: ctx.registry,
        options,
        children,
    };
    let (sup, _join) = Actor::spawn_linked(None, Supervisor, args, ctx.supervisor).await?;
    Ok(sup.get_cell())
}
