//! OTP-style supervision for Chorus on top of ractor.
//!
//! ractor gives actors, links and exit events, but no restart strategies, intensity or child
//! specs, and its default supervisor behaviour is to die with any child. This crate adds what
//! ejabberd gets from OTP's `supervisor`, which the server's tree is modelled on:
//!
//! - [`Supervisor`]: one_for_one / one_for_all / rest_for_one, permanent / transient /
//!   temporary children, intensity and period with escalation to the parent, OTP 24
//!   auto-shutdown on significant children, dynamic children;
//! - groups ([`GroupSpec`]): the per-connection `conn-<id>` node, a one_for_all + temporary set
//!   of actors kept inside the `conns` supervisor instead of costing a supervisor actor each
//!   (a member may be insignificant: its exit leaves the group running);
//! - [`Registry`]: our own index of actors by tree path (ractor's names are global and freed
//!   late), with [`TreeNode`] snapshots, kill by path and glob matching for the admin CLI and
//!   the chaos tests;
//! - [`spawn_root`] / [`RootHandle`]: the top of the tree and its exit reason, which `main`
//!   turns into the process exit code.
//!
//! **Architecture Invariant:** cleanup never lives only in `post_stop`. When an actor exits,
//! ractor kills its descendants without running their `post_stop`; only `Drop` of their state
//! and their supervisor's exit handling run. Registry entries are removed by both.
//!
//! **Architecture Invariant:** actors in the tree carry no ractor name; the registry path is
//! their identity.

mod registry;
mod root;
mod spec;
mod supervisor;
mod tree;

pub use registry::{ActorStats, Registry, RegistryError, Status, StopMode};
pub use root::{spawn_root, RootExit, RootHandle};
pub use spec::{
    AutoShutdown, ChildSpec, GroupFuture, GroupMember, GroupSpec, GroupStartFn, PartialGroup,
    Restart, StartCtx, StartFn, StartFuture, Strategy, SupervisorOptions, DEFAULT_WORKER_SHUTDOWN,
    INFINITY,
};
pub use supervisor::{
    is_normal_exit, spawn_supervisor, Supervisor, SupervisorArgs, SupervisorMsg, SupervisorState,
    GROUP_KIND, GROUP_SHUTDOWN, REACHED_MAX_RESTART_INTENSITY, SHUTDOWN,
};
pub use tree::TreeNode;
