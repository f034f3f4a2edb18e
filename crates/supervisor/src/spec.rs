//! Child specifications and supervisor options: the data a supervisor is configured with.
//!
//! These mirror OTP's `child_spec()` and `sup_flags()` so that the ejabberd tree this server is
//! modelled on translates one to one. A child is started by a [`StartFn`] that spawns the actor
//! linked to the supervisor and returns its cell; the supervisor (not the start function)
//! records the child in the [`Registry`].
//!
//! A [`GroupSpec`] describes the per-connection `conn-<id>` node: several actors that live and
//! die together inside one supervisor, without a supervisor actor of their own.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, SpawnErr};

use crate::registry::{ActorStats, Registry};

/// When a child is restarted (OTP `restart`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted, whatever the exit reason.
    Permanent,
    /// Restarted only after an abnormal exit (a panic, an error, a kill, a non-shutdown reason).
    Transient,
    /// Never restarted; removed from the supervisor when it exits.
    Temporary,
}

/// Which children are restarted when one has to be (OTP `strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// All children: the others are stopped in reverse start order, then all start in order.
    OneForAll,
    /// The child that exited and every child started after it.
    RestForOne,
}

/// Whether the exit of significant children ends the supervisor (OTP 24 `auto_shutdown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoShutdown {
    /// Significant children have no effect on the supervisor.
    Never,
    /// The supervisor stops normally as soon as any significant child exits without restart.
    AnySignificant,
    /// The supervisor stops normally once no significant child is left running.
    AllSignificant,
}

/// Shutdown value meaning "wait as long as it takes" (OTP `infinity`), the default for
/// supervisors: their own children's shutdowns are bounded, so theirs is too.
pub const INFINITY: Duration = Duration::MAX;

/// Default graceful-stop time for workers before they are killed (OTP's 5000 ms).
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

/// What a start function gets to spawn its actor.
#[derive(Clone, Debug)]
pub struct StartCtx {
    /// The supervisor to link the new actor to (`Actor::spawn_linked(.., ctx.supervisor)`).
    pub supervisor: ActorCell,
    /// The path the child will be registered at; also the path prefix for its own children.
    pub path: String,
    /// The registry, for child supervisors and for actors that look others up.
    pub registry: Registry,
}

impl StartCtx {
    /// The stats shared with this child's registry entry. The supervisor creates the entry
    /// before calling the start function, so an actor can take these in `pre_start` and update
    /// its mailbox and handled counters. Outside a supervisor the stats are detached.
    pub fn stats(&self) -> Arc<ActorStats> {
        self.registry
            .stats(&self.path)
            .unwrap_or_else(|| Arc::new(ActorStats::new()))
    }
}

/// The future a start function returns.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// Spawns a child linked to `ctx.supervisor` and returns its cell. Called again on each restart.
pub type StartFn = Arc<dyn Fn(StartCtx) -> StartFuture + Send + Sync>;

/// How to start and supervise one child (OTP `child_spec()`).
#[derive(Clone)]
pub struct ChildSpec {
    /// Path segment, unique among the supervisor's children; must not contain `/`.
    pub id: String,
    /// "supervisor", "worker" or free text shown in the tree.
    pub kind: &'static str,
    /// Restart policy.
    pub restart: Restart,
    /// How long a graceful stop may take before the child is killed ([`INFINITY`] to wait).
    pub shutdown: Duration,
    /// Whether this child's exit can end the supervisor (see [`AutoShutdown`]). Only
    /// transient and temporary children may be significant, as in OTP.
    pub significant: bool,
    /// Spawns the actor.
    pub start: StartFn,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("significant", &self.significant)
            .finish_non_exhaustive()
    }
}

fn boxed_start<F, Fut>(start: F) -> StartFn
where
    F: Fn(StartCtx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
{
    Arc::new(move |ctx| -> StartFuture { Box::pin(start(ctx)) })
}

impl ChildSpec {
    /// A spec from an already boxed start function.
    pub fn new(
        id: impl Into<String>,
        kind: &'static str,
        restart: Restart,
        start: StartFn,
    ) -> Self {
        let shutdown = if kind == "supervisor" {
            INFINITY
        } else {
            DEFAULT_WORKER_SHUTDOWN
        };
        Self {
            id: id.into(),
            kind,
            restart,
            shutdown,
            significant: false,
            start,
        }
    }

    /// A worker child (default shutdown 5 s).
    pub fn worker<F, Fut>(id: impl Into<String>, restart: Restart, start: F) -> Self
    where
        F: Fn(StartCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        Self::new(id, "worker", restart, boxed_start(start))
    }

    /// A supervisor child (default shutdown [`INFINITY`]); `start` usually calls
    /// [`crate::spawn_supervisor`].
    pub fn supervisor<F, Fut>(id: impl Into<String>, restart: Restart, start: F) -> Self
    where
        F: Fn(StartCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        Self::new(id, "supervisor", restart, boxed_start(start))
    }

    /// A child supervisor with fixed options and children (restarted with fresh copies).
    pub fn supervisor_with(
        id: impl Into<String>,
        restart: Restart,
        options: SupervisorOptions,
        children: Vec<ChildSpec>,
    ) -> Self {
        Self::supervisor(id, restart, move |ctx| {
            crate::spawn_supervisor(ctx, options.clone(), children.clone())
        })
    }

    /// Sets the graceful-stop time.
    pub fn shutdown(mut self, shutdown: Duration) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Marks the child significant for [`AutoShutdown`].
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// Overrides the kind shown in the tree.
    pub fn kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }
}

/// Supervisor flags (OTP `sup_flags()`).
#[derive(Clone, Debug)]
pub struct SupervisorOptions {
    /// Restart strategy.
    pub strategy: Strategy,
    /// At most this many restarts within `period`; one more and the supervisor gives up,
    /// stops its children and exits abnormally, escalating to its parent.
    pub intensity: u32,
    /// The sliding window for `intensity`.
    pub period: Duration,
    /// Whether significant children end the supervisor.
    pub auto_shutdown: AutoShutdown,
}

impl Default for SupervisorOptions {
    /// one_for_one, 10 restarts per second, no auto shutdown (ejabberd_sup's flags).
    fn default() -> Self {
        Self {
            strategy: Strategy::OneForOne,
            intensity: 10,
            period: Duration::from_secs(1),
            auto_shutdown: AutoShutdown::Never,
        }
    }
}

impl SupervisorOptions {
    /// Default options with the given strategy.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            ..Self::default()
        }
    }

    /// Sets intensity and period.
    pub fn intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    /// Sets the auto-shutdown mode.
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Self {
        self.auto_shutdown = auto_shutdown;
        self
    }
}

/// One actor of a group.
#[derive(Clone, Debug)]
pub struct GroupMember {
    /// Path segment under the group node ("socket", "receiver", "c2s").
    pub id: String,
    /// Kind shown in the tree.
    pub kind: &'static str,
    /// The member, linked to the group's supervisor.
    pub cell: ActorCell,
    /// OTP's `significant`: the exit of a significant member ends the group (the others are
    /// killed); an insignificant member that exits only leaves it. Default true, which is
    /// plain one_for_all. A group whose members are all insignificant ends with its last one.
    pub significant: bool,
}

impl GroupMember {
    /// A significant member record.
    pub fn new(id: impl Into<String>, kind: &'static str, cell: ActorCell) -> Self {
        Self {
            id: id.into(),
            kind,
            cell,
            significant: true,
        }
    }

    /// Marks the member significant (its exit ends the group) or not (it just leaves).
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }
}

/// The future a group start function returns.
pub type GroupFuture = Pin<Box<dyn Future<Output = Result<Vec<GroupMember>, SpawnErr>> + Send>>;

/// Starts all members of a group. Called once: groups are never restarted.
pub type GroupStartFn = Box<dyn FnOnce(StartCtx) -> GroupFuture + Send>;

/// A group of actors that live and die together (the `conn-<id>` node), supervised
/// one_for_all + temporary by the supervisor it is started in: when a significant member (by
/// default every member) exits, for any reason, the others are killed and the group is
/// removed. An insignificant member ([`GroupMember::significant`]) that exits only leaves the
/// group, as an OTP child that is not `significant` under `auto_shutdown = any_significant`.
/// A group is never restarted and never counts toward restart intensity.
///
/// The start function gets a [`StartCtx`] whose `supervisor` is the hosting supervisor and
/// whose `path` is the group node's path. It must spawn every member linked to
/// `ctx.supervisor` and, **if it fails part-way, kill the members it already started**: the
/// supervisor does not know about them until the list is returned. [`PartialGroup`] does
/// that automatically on drop, so `?` is safe inside the start function.
pub struct GroupSpec {
    /// Path segment of the group node ("conn-17").
    pub id: String,
    /// Spawns the members.
    pub start: GroupStartFn,
}

impl fmt::Debug for GroupSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupSpec")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl GroupSpec {
    /// A group spec from a closure returning any `Send` future.
    pub fn new<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: FnOnce(StartCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<GroupMember>, SpawnErr>> + Send + 'static,
    {
        Self {
            id: id.into(),
            start: Box::new(move |ctx| -> GroupFuture { Box::pin(start(ctx)) }),
        }
    }
}

/// Members started so far by a group start function; kills them all when dropped unless
/// [`PartialGroup::finish`] handed them over, so an early return leaks no actor.
#[derive(Debug, Default)]
pub struct PartialGroup {
    members: Vec<GroupMember>,
}

impl PartialGroup {
    /// No members yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a started member (significant).
    pub fn push(&mut self, id: impl Into<String>, kind: &'static str, cell: ActorCell) {
        self.members.push(GroupMember::new(id, kind, cell));
    }

    /// Records a started member as built, e.g. an insignificant one.
    pub fn push_member(&mut self, member: GroupMember) {
        self.members.push(member);
    }

    /// The members started so far.
    pub fn members(&self) -> &[GroupMember] {
        &self.members
    }

    /// Hands the members over to the supervisor.
    pub fn finish(mut self) -> Vec<GroupMember> {
        std::mem::take(&mut self.members)
    }
}

impl Drop for PartialGroup {
    fn drop(&mut self) {
        for member in self.members.drain(..) {
            member.cell.kill();
        }
    }
}
