//! The supervisor's behaviour, one test per OTP scenario.
//!
//! Each test builds a small tree of trivial worker actors, breaks something (an error return, a
//! panic, a kill through the registry, a normal stop) and asserts the outcome OTP would give.
//! Conditions are polled with a deadline rather than slept for, and a `Children` call serves as
//! a barrier: the supervisor answers it only after handling the exit events queued before it.
//!
//! One test binary; the workers and helpers are here, the scenarios in `restarts.rs` (strategies,
//! intensity, restart types), `groups.rs` (dynamic children and connection-like groups),
//! `registry.rs` (what the registry holds after kills, tree snapshots) and `lifecycle.rs`
//! (auto-shutdown, start failures, shutdown order, start statistics).

#![allow(clippy::unwrap_used)]

mod groups;
mod lifecycle;
mod registry;
mod restarts;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_supervisor::{
    spawn_root, AutoShutdown, ChildSpec, GroupSpec, PartialGroup, Registry, Restart, RootExit,
    StartCtx, StopMode, Strategy, SupervisorMsg, SupervisorOptions, GROUP_KIND,
    REACHED_MAX_RESTART_INTENSITY,
};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, SpawnErr};

const WAIT: Duration = Duration::from_secs(5);

/// A worker that fails, panics or stops on request.
struct Worker;

#[derive(Debug)]
enum WorkerMsg {
    /// Return an error from the handler (ActorFailed).
    Fail,
    /// Panic in the handler (ActorFailed with the panic message).
    Panic,
    /// Stop with this reason (ActorTerminated).
    Stop(Option<String>),
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Fail => Err("boom".into()),
            WorkerMsg::Panic => panic!("kaboom"),
            WorkerMsg::Stop(reason) => {
                myself.stop(reason);
                Ok(())
            }
        }
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

async fn spawn_worker(ctx: &StartCtx) -> Result<ActorCell, SpawnErr> {
    let (worker, _) = Actor::spawn_linked(None, Worker, (), ctx.supervisor.clone()).await?;
    Ok(worker.get_cell())
}

/// A worker child that counts its starts.
fn worker(id: &str, restart: Restart, starts: &Arc<AtomicUsize>) -> ChildSpec {
    let starts = Arc::clone(starts);
    ChildSpec::worker(id, restart, move |ctx: StartCtx| {
        let starts = Arc::clone(&starts);
        async move {
            starts.fetch_add(1, SeqCst);
            spawn_worker(&ctx).await
        }
    })
}

/// A `conn-N`-like group of socket, receiver and c2s workers.
fn group(id: &str, starts: &Arc<AtomicUsize>) -> GroupSpec {
    let starts = Arc::clone(starts);
    GroupSpec::new(id, move |ctx: StartCtx| async move {
        starts.fetch_add(1, SeqCst);
        let mut members = PartialGroup::new();
        for member in ["socket", "receiver", "c2s"] {
            members.push(member, "worker", spawn_worker(&ctx).await?);
        }
        Ok(members.finish())
    })
}

async fn wait_until(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn id_of(reg: &Registry, path: &str) -> Option<ActorId> {
    reg.lookup(path).map(|c| c.get_id())
}

/// Waits for a live actor at `path` and returns its id.
async fn live_id(reg: &Registry, path: &str) -> ActorId {
    assert!(
        wait_until(|| reg.lookup(path).is_some(), WAIT).await,
        "no actor at {path}"
    );
    id_of(reg, path).unwrap()
}

/// Waits until the actor at `path` is a different one than `old`.
async fn replaced(reg: &Registry, path: &str, old: ActorId) -> bool {
    wait_until(|| id_of(reg, path).is_some_and(|id| id != old), WAIT).await
}

fn send(reg: &Registry, path: &str, msg: WorkerMsg) {
    reg.lookup(path)
        .unwrap_or_else(|| panic!("no actor at {path}"))
        .send_message(msg)
        .unwrap();
}

fn sup_at(reg: &Registry, path: &str) -> ActorRef<SupervisorMsg> {
    ActorRef::from(reg.lookup(path).unwrap())
}

async fn children(sup: &ActorRef<SupervisorMsg>) -> Vec<String> {
    match sup.call(SupervisorMsg::Children, Some(WAIT)).await.unwrap() {
        CallResult::Success(ids) => ids,
        other => panic!("Children call failed: {other:?}"),
    }
}

async fn start_child(sup: &ActorRef<SupervisorMsg>, spec: ChildSpec) -> Result<ActorCell, String> {
    match sup
        .call(
            |port| SupervisorMsg::StartChild(spec, Some(port)),
            Some(WAIT),
        )
        .await
        .unwrap()
    {
        CallResult::Success(result) => result,
        other => panic!("StartChild call failed: {other:?}"),
    }
}

async fn start_group(sup: &ActorRef<SupervisorMsg>, spec: GroupSpec) -> Result<(), String> {
    match sup
        .call(
            |port| SupervisorMsg::StartGroup(spec, Some(port)),
            Some(WAIT),
        )
        .await
        .unwrap()
    {
        CallResult::Success(result) => result,
        other => panic!("StartGroup call failed: {other:?}"),
    }
}

fn stopped(cell: &ActorCell) -> bool {
    cell.get_status() == ActorStatus::Stopped
}

/// Stops the root and checks that it ends normally and leaves an empty registry.
async fn shut_down(
    reg: &Registry,
    root: ActorRef<SupervisorMsg>,
    handle: chorus_supervisor::RootHandle,
) {
    root.stop(None);
    let exit = tokio::time::timeout(WAIT, handle.wait()).await.unwrap();
    assert_eq!(exit, RootExit::Normal);
    assert!(reg.is_empty(), "left over: {:?}", reg.paths_matching("**"));
}
