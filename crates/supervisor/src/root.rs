//! The root of the tree and how the process learns that it ended.
//!
//! ractor's `JoinHandle` of an actor carries no exit reason, so the root supervisor is linked
//! to a tiny watcher actor that receives the root's exit event like any parent would, removes
//! the root's registry entries, and hands the outcome to [`RootHandle::wait`]. The server's
//! `main` maps [`RootExit::Escalated`] to a non-zero exit code so that systemd restarts it:
//! the last step of OTP-style escalation.

use std::fmt;

use ractor::{Actor, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::registry::{ActorStats, Registry, Target};
use crate::spec::{ChildSpec, SupervisorOptions};
use crate::supervisor::{is_normal_exit, Supervisor, SupervisorArgs, SupervisorMsg};

/// How the root supervisor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootExit {
    /// Stopped on request or by auto-shutdown: exit code 0.
    Normal,
    /// Gave up (restart intensity reached, killed, crashed): exit non-zero.
    Escalated(String),
}

impl RootExit {
    /// Whether the process should exit successfully.
    pub fn is_normal(&self) -> bool {
        matches!(self, RootExit::Normal)
    }
}

impl fmt::Display for RootExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootExit::Normal => f.write_str("normal"),
            RootExit::Escalated(reason) => write!(f, "escalated: {reason}"),
        }
    }
}

/// Resolves when the root supervisor has exited.
#[derive(Debug)]
pub struct RootHandle {
    exit: oneshot::Receiver<RootExit>,
}

impl RootHandle {
    /// Waits for the root to exit and says how it ended.
    pub async fn wait(self) -> RootExit {
        self.exit
            .await
            .unwrap_or_else(|_| RootExit::Escalated("root watcher lost".to_owned()))
    }
}

/// Receives the root's exit event; the root's parent in ractor's tree.
struct RootWatcher;

struct WatcherState {
    exit: Option<oneshot::Sender<RootExit>>,
    registry: Registry,
    path: String,
}

impl Actor for RootWatcher {
    type Msg = ();
    type State = WatcherState;
    type Arguments = WatcherState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let exit = match event {
            SupervisionEvent::ActorTerminated(_, last_state, reason) => {
                // The root's Drop cleanup runs before the handle resolves.
                drop(last_state);
                if is_normal_exit(reason.as_deref()) {
                    RootExit::Normal
                } else {
                    RootExit::Escalated(reason.unwrap_or_default())
                }
            }
            SupervisionEvent::ActorFailed(_, err) => RootExit::Escalated(err.to_string()),
            _ => return Ok(()),
        };
        state.registry.unregister_subtree(&state.path);
        match &exit {
            RootExit::Normal => info!(path = %state.path, "root supervisor stopped"),
            RootExit::Escalated(reason) => {
                error!(path = %state.path, reason, "root supervisor exited abnormally")
            }
        }
        if let Some(tx) = state.exit.take() {
            // Nobody waiting is fine: the outcome was logged.
            let _ = tx.send(exit);
        }
        myself.stop(None);
        Ok(())
    }
}

/// Spawns the root supervisor at `path` (normally `"root"`), registers it, and returns its
/// ref with a handle that resolves when it exits.
pub async fn spawn_root(
    path: &str,
    registry: Registry,
    options: SupervisorOptions,
    children: Vec<ChildSpec>,
) -> Result<(ActorRef<SupervisorMsg>, RootHandle), SpawnErr> {
    let (tx, rx) = oneshot::channel();
    let watcher_state = WatcherState {
        exit: Some(tx),
        registry: registry.clone(),
        path: path.to_owned(),
    };
    let (watcher, _) = Actor::spawn(None, RootWatcher, watcher_state).await?;

    // Registered before the children so the tree has its root while they start.
    registry.insert(
        path,
        "supervisor",
        Target::Pending,
        crate::registry::NO_OWNER,
        0,
        std::sync::Arc::new(ActorStats::new()),
    );
    let args = SupervisorArgs {
        path: path.to_owned(),
        registry: registry.clone(),
        options,
        children,
    };
    match Actor::spawn_linked(None, Supervisor, args, watcher.get_cell()).await {
        Ok((root, _)) => {
            registry.attach(path, root.get_cell());
            Ok((root, RootHandle { exit: rx }))
        }
        Err(err) => {
            registry.unregister_subtree(path);
            watcher.stop(None);
            Err(err)
        }
    }
}
