//! The supervisor's behaviour, one test per OTP scenario.
//!
//! Each test builds a small tree of trivial worker actors, breaks something (an error return, a
//! panic, a kill through the registry, a normal stop) and asserts the outcome OTP would give.
//! Conditions are polled with a deadline rather than slept for, and a `Children` call serves as
//! a barrier: the supervisor answers it only after handling the exit events queued before it.

#![allow(clippy::unwrap_used)]

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_restarts_only_the_failed_child() {
    let reg = Registry::new();
    let (sa, sb, sc) = (counter(), counter(), counter());
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![
            worker("a", Restart::Permanent, &sa),
            worker("b", Restart::Permanent, &sb),
            worker("c", Restart::Permanent, &sc),
        ],
    )
    .await
    .unwrap();
    let (a, b, c) = (
        live_id(&reg, "root/a").await,
        live_id(&reg, "root/b").await,
        live_id(&reg, "root/c").await,
    );

    send(&reg, "root/b", WorkerMsg::Panic);
    assert!(replaced(&reg, "root/b", b).await);
    children(&root).await;

    assert_eq!(id_of(&reg, "root/a"), Some(a));
    assert_eq!(id_of(&reg, "root/c"), Some(c));
    assert_eq!(
        (sa.load(SeqCst), sb.load(SeqCst), sc.load(SeqCst)),
        (1, 2, 1)
    );
    let stats = reg.stats("root/b").unwrap();
    assert_eq!(stats.restarts(), 1);
    assert!(stats.last_error().unwrap().contains("kaboom"));
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_restarts_all_children() {
    let reg = Registry::new();
    let (sa, sb, sc) = (counter(), counter(), counter());
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::new(Strategy::OneForAll),
        vec![
            worker("a", Restart::Permanent, &sa),
            worker("b", Restart::Permanent, &sb),
            worker("c", Restart::Permanent, &sc),
        ],
    )
    .await
    .unwrap();
    let (a, b, c) = (
        live_id(&reg, "root/a").await,
        live_id(&reg, "root/b").await,
        live_id(&reg, "root/c").await,
    );
    let old_a = reg.lookup("root/a").unwrap();

    send(&reg, "root/b", WorkerMsg::Fail);
    assert!(replaced(&reg, "root/b", b).await);
    children(&root).await;

    assert!(replaced(&reg, "root/a", a).await);
    assert!(replaced(&reg, "root/c", c).await);
    assert!(stopped(&old_a), "the old sibling must be gone");
    assert_eq!(
        (sa.load(SeqCst), sb.load(SeqCst), sc.load(SeqCst)),
        (2, 2, 2)
    );
    for path in ["root/a", "root/b", "root/c"] {
        assert_eq!(reg.stats(path).unwrap().restarts(), 1, "{path}");
    }
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_restarts_younger_siblings() {
    let reg = Registry::new();
    let (sa, sb, sc) = (counter(), counter(), counter());
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::new(Strategy::RestForOne),
        vec![
            worker("a", Restart::Permanent, &sa),
            worker("b", Restart::Permanent, &sb),
            worker("c", Restart::Permanent, &sc),
        ],
    )
    .await
    .unwrap();
    let (a, b, c) = (
        live_id(&reg, "root/a").await,
        live_id(&reg, "root/b").await,
        live_id(&reg, "root/c").await,
    );

    send(&reg, "root/b", WorkerMsg::Fail);
    assert!(replaced(&reg, "root/b", b).await);
    children(&root).await;

    assert!(replaced(&reg, "root/c", c).await);
    assert_eq!(id_of(&reg, "root/a"), Some(a));
    assert_eq!(
        (sa.load(SeqCst), sb.load(SeqCst), sc.load(SeqCst)),
        (1, 2, 2)
    );
    assert_eq!(children(&root).await, ["a", "b", "c"]);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_intensity_exceeded_escalates() {
    // Nested: the child supervisor allows 2 restarts; the third failure makes it give up,
    // and its parent (the root) restarts it.
    let reg = Registry::new();
    let sw = counter();
    let sub = ChildSpec::supervisor_with(
        "sub",
        Restart::Permanent,
        SupervisorOptions::default().intensity(2, Duration::from_secs(60)),
        vec![worker("w", Restart::Permanent, &sw)],
    );
    let (root, handle) = spawn_root("root", reg.clone(), SupervisorOptions::default(), vec![sub])
        .await
        .unwrap();
    let sub0 = live_id(&reg, "root/sub").await;
    for _ in 0..3 {
        let w = live_id(&reg, "root/sub/w").await;
        send(&reg, "root/sub/w", WorkerMsg::Fail);
        assert!(wait_until(|| id_of(&reg, "root/sub/w") != Some(w), WAIT).await);
    }
    assert!(replaced(&reg, "root/sub", sub0).await);
    live_id(&reg, "root/sub/w").await;
    children(&root).await;

    let stats = reg.stats("root/sub").unwrap();
    assert_eq!(stats.restarts(), 1);
    assert_eq!(
        stats.last_error().as_deref(),
        Some(REACHED_MAX_RESTART_INTENSITY)
    );
    // 1 first start + 2 restarts by the old sub + 1 start by the new sub.
    assert_eq!(sw.load(SeqCst), 4);
    assert_eq!(reg.stats("root/sub/w").unwrap().restarts(), 0);
    assert_eq!(root.get_status(), ActorStatus::Running);
    shut_down(&reg, root, handle).await;

    // At the root, escalation resolves the handle as Escalated.
    let reg = Registry::new();
    let sw = counter();
    let (_root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default().intensity(1, Duration::from_secs(60)),
        vec![worker("w", Restart::Permanent, &sw)],
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let w = live_id(&reg, "root/w").await;
        send(&reg, "root/w", WorkerMsg::Fail);
        assert!(wait_until(|| id_of(&reg, "root/w") != Some(w), WAIT).await);
    }
    let exit = tokio::time::timeout(WAIT, handle.wait()).await.unwrap();
    assert_eq!(
        exit,
        RootExit::Escalated(REACHED_MAX_RESTART_INTENSITY.into())
    );
    assert!(reg.is_empty(), "left over: {:?}", reg.paths_matching("**"));
    assert_eq!(sw.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_children_are_not_restarted() {
    let reg = Registry::new();
    let (st, sp) = (counter(), counter());
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default().intensity(0, Duration::from_secs(60)),
        vec![
            worker("t", Restart::Temporary, &st),
            worker("p", Restart::Permanent, &sp),
        ],
    )
    .await
    .unwrap();
    live_id(&reg, "root/t").await;

    send(&reg, "root/t", WorkerMsg::Fail);
    assert!(wait_until(|| reg.stats("root/t").is_none(), WAIT).await);
    assert_eq!(children(&root).await, ["p"]);
    assert_eq!(st.load(SeqCst), 1);
    // Intensity 0: had the exit counted as a restart, the root would have given up.
    assert_eq!(root.get_status(), ActorStatus::Running);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_restarted_only_on_abnormal_exit() {
    let reg = Registry::new();
    let (s1, s2, s3) = (counter(), counter(), counter());
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![
            worker("t1", Restart::Transient, &s1),
            worker("t2", Restart::Transient, &s2),
            worker("t3", Restart::Transient, &s3),
        ],
    )
    .await
    .unwrap();

    // Abnormal: restarted.
    let t1 = live_id(&reg, "root/t1").await;
    send(&reg, "root/t1", WorkerMsg::Fail);
    assert!(replaced(&reg, "root/t1", t1).await);
    // Normal stop: not restarted.
    let (c1, c2) = (
        reg.lookup("root/t1").unwrap(),
        reg.lookup("root/t2").unwrap(),
    );
    send(&reg, "root/t1", WorkerMsg::Stop(None));
    // `{shutdown, _}` is normal too; any other reason is not.
    send(
        &reg,
        "root/t2",
        WorkerMsg::Stop(Some("shutdown: idle".into())),
    );
    let t3 = live_id(&reg, "root/t3").await;
    send(
        &reg,
        "root/t3",
        WorkerMsg::Stop(Some("lost my socket".into())),
    );
    assert!(replaced(&reg, "root/t3", t3).await);
    assert!(wait_until(|| stopped(&c1) && stopped(&c2), WAIT).await);
    children(&root).await;

    assert!(reg.lookup("root/t1").is_none());
    assert!(reg.lookup("root/t2").is_none());
    assert_eq!(
        (s1.load(SeqCst), s2.load(SeqCst), s3.load(SeqCst)),
        (2, 1, 2)
    );
    // OTP keeps the spec of a transient child that ended normally.
    assert_eq!(children(&root).await, ["t1", "t2", "t3"]);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_counts_as_abnormal() {
    let reg = Registry::new();
    let st = counter();
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![worker("t", Restart::Transient, &st)],
    )
    .await
    .unwrap();
    let t = live_id(&reg, "root/t").await;

    reg.kill("root/t", StopMode::Kill).unwrap();
    assert!(replaced(&reg, "root/t", t).await);
    assert_eq!(st.load(SeqCst), 2);
    assert_eq!(
        reg.stats("root/t").unwrap().last_error().as_deref(),
        Some("killed")
    );

    // A graceful stop through the registry is a normal exit: a transient child stays down.
    reg.kill("root/t", StopMode::Stop).unwrap();
    assert!(wait_until(|| reg.stats("root/t").is_none(), WAIT).await);
    children(&root).await;
    assert_eq!(st.load(SeqCst), 2);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_children_start_and_stop() {
    let reg = Registry::new();
    let sd = counter();
    let (root, handle) = spawn_root("root", reg.clone(), SupervisorOptions::default(), vec![])
        .await
        .unwrap();

    let cell = start_child(&root, worker("dyn", Restart::Permanent, &sd))
        .await
        .unwrap();
    assert_eq!(id_of(&reg, "root/dyn"), Some(cell.get_id()));
    assert_eq!(children(&root).await, ["dyn"]);
    let dup = start_child(&root, worker("dyn", Restart::Permanent, &sd)).await;
    assert!(dup.unwrap_err().contains("already_present"));
    let bad = start_child(&root, worker("a/b", Restart::Permanent, &sd)).await;
    assert!(bad.is_err());

    root.cast(SupervisorMsg::TerminateChild("dyn".into()))
        .unwrap();
    assert!(children(&root).await.is_empty());
    assert!(stopped(&cell));
    assert!(reg.stats("root/dyn").is_none());
    // Terminated on purpose: a permanent child is not restarted.
    assert_eq!(sd.load(SeqCst), 1);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_member_exit_ends_the_group() {
    let reg = Registry::new();
    let sg = counter();
    // Intensity 0: a group ending must not count as a restart.
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default().intensity(0, Duration::from_secs(60)),
        vec![],
    )
    .await
    .unwrap();
    start_group(&root, group("conn-1", &sg)).await.unwrap();
    start_group(&root, group("conn-2", &sg)).await.unwrap();
    assert_eq!(reg.kind("root/conn-1"), Some(GROUP_KIND));
    assert!(
        reg.lookup("root/conn-1").is_none(),
        "a group node has no actor"
    );
    let socket = reg.lookup("root/conn-1/socket").unwrap();
    let c2s = reg.lookup("root/conn-1/c2s").unwrap();
    let dup = start_group(&root, group("conn-1", &sg)).await;
    assert!(dup.unwrap_err().contains("already_present"));

    send(&reg, "root/conn-1/receiver", WorkerMsg::Fail);
    assert!(wait_until(|| stopped(&socket) && stopped(&c2s), WAIT).await);
    assert_eq!(children(&root).await, ["conn-2"]);
    assert!(reg.paths_matching("root/conn-1/**").is_empty());
    assert_eq!(reg.paths_matching("root/conn-2/*").len(), 3);
    assert_eq!(sg.load(SeqCst), 2, "a group is never restarted");
    assert_eq!(root.get_status(), ActorStatus::Running);
    shut_down(&reg, root, handle).await;
}

/// A `conn-N`-like group whose socket and receiver are insignificant: only c2s ends it.
fn anchored_group(id: &str, starts: &Arc<AtomicUsize>) -> GroupSpec {
    let starts = Arc::clone(starts);
    GroupSpec::new(id, move |ctx: StartCtx| async move {
        starts.fetch_add(1, SeqCst);
        let mut members = PartialGroup::new();
        for member in ["socket", "receiver", "c2s"] {
            let cell = spawn_worker(&ctx).await?;
            members.push_member(
                chorus_supervisor::GroupMember::new(member, "worker", cell)
                    .significant(member == "c2s"),
            );
        }
        Ok(members.finish())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insignificant_member_exit_leaves_the_group_running() {
    let reg = Registry::new();
    let sg = counter();
    // Intensity 0: members leaving must not count as restarts either.
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default().intensity(0, Duration::from_secs(60)),
        vec![],
    )
    .await
    .unwrap();
    start_group(&root, anchored_group("conn-1", &sg))
        .await
        .unwrap();
    start_group(&root, anchored_group("conn-2", &sg))
        .await
        .unwrap();
    let socket = reg.lookup("root/conn-1/socket").unwrap();
    let c2s = reg.lookup("root/conn-1/c2s").unwrap();

    // An insignificant member fails, another is killed: the group stays, without them.
    send(&reg, "root/conn-1/receiver", WorkerMsg::Fail);
    reg.kill("root/conn-1/socket", StopMode::Kill).unwrap();
    assert!(wait_until(|| stopped(&socket), WAIT).await);
    assert_eq!(children(&root).await, ["conn-1", "conn-2"]);
    assert_eq!(reg.paths_matching("root/conn-1/*"), ["root/conn-1/c2s"]);
    assert_eq!(reg.kind("root/conn-1"), Some(GROUP_KIND));
    assert_eq!(c2s.get_status(), ActorStatus::Running);

    // The significant member's exit ends the group and kills who is left.
    let receiver2 = reg.lookup("root/conn-2/receiver").unwrap();
    let socket2 = reg.lookup("root/conn-2/socket").unwrap();
    send(&reg, "root/conn-2/c2s", WorkerMsg::Stop(None));
    assert!(wait_until(|| stopped(&receiver2) && stopped(&socket2), WAIT).await);
    assert_eq!(children(&root).await, ["conn-1"]);
    assert!(reg.paths_matching("root/conn-2/**").is_empty());

    // The last member leaving ends the group too, even a normal stop.
    send(&reg, "root/conn-1/c2s", WorkerMsg::Stop(None));
    assert!(wait_until(|| stopped(&c2s), WAIT).await);
    assert!(children(&root).await.is_empty());
    assert_eq!(reg.len(), 1);
    assert_eq!(sg.load(SeqCst), 2, "a group is never restarted");
    assert_eq!(root.get_status(), ActorStatus::Running);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_anchored_group_path_kills_every_member() {
    let reg = Registry::new();
    let sg = counter();
    let (root, handle) = spawn_root("root", reg.clone(), SupervisorOptions::default(), vec![])
        .await
        .unwrap();
    start_group(&root, anchored_group("conn-1", &sg))
        .await
        .unwrap();
    let members: Vec<ActorCell> = ["socket", "receiver", "c2s"]
        .iter()
        .map(|m| reg.lookup(&format!("root/conn-1/{m}")).unwrap())
        .collect();
    reg.kill("root/conn-1", StopMode::Kill).unwrap();
    assert!(wait_until(|| members.iter().all(stopped), WAIT).await);
    assert!(children(&root).await.is_empty());
    assert_eq!(reg.len(), 1);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_group_path_kills_members() {
    let reg = Registry::new();
    let sg = counter();
    let (root, handle) = spawn_root("root", reg.clone(), SupervisorOptions::default(), vec![])
        .await
        .unwrap();
    start_group(&root, group("conn-1", &sg)).await.unwrap();
    start_group(&root, group("conn-2", &sg)).await.unwrap();
    let members1: Vec<ActorCell> = ["socket", "receiver", "c2s"]
        .iter()
        .map(|m| reg.lookup(&format!("root/conn-1/{m}")).unwrap())
        .collect();
    let members2: Vec<ActorCell> = ["socket", "receiver", "c2s"]
        .iter()
        .map(|m| reg.lookup(&format!("root/conn-2/{m}")).unwrap())
        .collect();

    reg.kill("root/conn-1", StopMode::Kill).unwrap();
    assert!(wait_until(|| members1.iter().all(stopped), WAIT).await);
    assert_eq!(children(&root).await, ["conn-2"]);
    assert!(reg.paths_matching("root/conn-1/**").is_empty());
    assert!(members2
        .iter()
        .all(|m| m.get_status() == ActorStatus::Running));

    reg.kill("root/conn-2", StopMode::Stop).unwrap();
    assert!(wait_until(|| members2.iter().all(stopped), WAIT).await);
    assert!(children(&root).await.is_empty());
    assert_eq!(reg.len(), 1);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_group_start_kills_started_members() {
    let reg = Registry::new();
    let (root, handle) = spawn_root("root", reg.clone(), SupervisorOptions::default(), vec![])
        .await
        .unwrap();
    let started: Arc<Mutex<Vec<ActorCell>>> = Arc::default();
    let seen = Arc::clone(&started);
    let spec = GroupSpec::new("conn-1", move |ctx: StartCtx| async move {
        let mut members = PartialGroup::new();
        for member in ["socket", "receiver"] {
            let cell = spawn_worker(&ctx).await?;
            seen.lock().unwrap().push(cell.clone());
            members.push(member, "worker", cell);
        }
        Err(SpawnErr::StartupFailed("c2s refused to start".into()))
    });
    let err = start_group(&root, spec).await.unwrap_err();
    assert!(err.contains("c2s refused"), "{err}");
    let started = started.lock().unwrap().clone();
    assert_eq!(started.len(), 2);
    assert!(wait_until(|| started.iter().all(stopped), WAIT).await);
    assert!(children(&root).await.is_empty());
    assert_eq!(reg.len(), 1);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_supervisor_leaves_no_registry_entries() {
    let reg = Registry::new();
    let s = counter();
    let inner = ChildSpec::supervisor_with(
        "inner",
        Restart::Permanent,
        SupervisorOptions::default(),
        vec![worker("x", Restart::Permanent, &s)],
    );
    let sub = ChildSpec::supervisor_with(
        "sub",
        Restart::Temporary,
        SupervisorOptions::default(),
        vec![
            worker("w1", Restart::Permanent, &s),
            worker("w2", Restart::Permanent, &s),
            inner,
        ],
    );
    let (root, handle) = spawn_root("root", reg.clone(), SupervisorOptions::default(), vec![sub])
        .await
        .unwrap();
    live_id(&reg, "root/sub/inner/x").await;
    start_group(&sup_at(&reg, "root/sub"), group("conn-1", &s))
        .await
        .unwrap();
    let x = reg.lookup("root/sub/inner/x").unwrap();
    let socket = reg.lookup("root/sub/conn-1/socket").unwrap();
    assert_eq!(reg.paths_matching("root/sub/**").len(), 9);

    reg.kill("root/sub", StopMode::Kill).unwrap();
    assert!(
        wait_until(|| reg.len() == 1, WAIT).await,
        "left over: {:?}",
        reg.paths_matching("**")
    );
    assert!(wait_until(|| stopped(&x) && stopped(&socket), WAIT).await);
    assert!(children(&root).await.is_empty());
    shut_down(&reg, root, handle).await;

    // Killing the root itself: the handle reports it and nothing is left.
    let ss = counter();
    let reg = Registry::new();
    let (_root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![ChildSpec::supervisor_with(
            "sub",
            Restart::Permanent,
            SupervisorOptions::default(),
            vec![worker("w", Restart::Permanent, &ss)],
        )],
    )
    .await
    .unwrap();
    live_id(&reg, "root/sub/w").await;
    reg.kill("root", StopMode::Kill).unwrap();
    let exit = tokio::time::timeout(WAIT, handle.wait()).await.unwrap();
    assert_eq!(exit, RootExit::Escalated("killed".into()));
    assert!(
        wait_until(|| reg.is_empty(), WAIT).await,
        "left over: {:?}",
        reg.paths_matching("**")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_lists_tree_in_order() {
    let reg = Registry::new();
    let s = counter();
    let port = ChildSpec::supervisor_with(
        "port:c2s@127.0.0.1:5222",
        Restart::Permanent,
        SupervisorOptions::default(),
        vec![
            worker("acceptor", Restart::Permanent, &s),
            ChildSpec::supervisor_with(
                "conns",
                Restart::Permanent,
                SupervisorOptions::default(),
                vec![],
            ),
        ],
    );
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![
            worker("sessions", Restart::Permanent, &s),
            ChildSpec::supervisor_with(
                "listeners",
                Restart::Permanent,
                SupervisorOptions::default(),
                vec![port],
            ),
        ],
    )
    .await
    .unwrap();
    let port_path = "root/listeners/port:c2s@127.0.0.1:5222";
    let conns_path = format!("{port_path}/conns");
    let acceptor_path = format!("{port_path}/acceptor");
    let conns = {
        live_id(&reg, &conns_path).await;
        sup_at(&reg, &conns_path)
    };
    for n in 1..=10 {
        start_group(&conns, group(&format!("conn-{n}"), &s))
            .await
            .unwrap();
    }
    // A restarted child keeps its place (before `conns`), and shows its restart.
    let acceptor = live_id(&reg, &acceptor_path).await;
    send(&reg, &acceptor_path, WorkerMsg::Fail);
    assert!(replaced(&reg, &acceptor_path, acceptor).await);

    let tree = reg.snapshot("root", None).unwrap();
    let ids = |n: &chorus_supervisor::TreeNode| -> Vec<String> {
        n.children.iter().map(|c| c.id.clone()).collect()
    };
    assert_eq!(ids(&tree), ["sessions", "listeners"]);
    assert_eq!(
        ids(tree.find("root/listeners").unwrap()),
        ["port:c2s@127.0.0.1:5222"]
    );
    let port = tree.find(port_path).unwrap();
    assert_eq!(ids(port), ["acceptor", "conns"]);
    assert_eq!(port.kind, "supervisor");
    assert_eq!(port.children[0].restarts, 1);
    assert_eq!(port.children[0].status, "running");
    let conns_node = &port.children[1];
    let expected: Vec<String> = (1..=10).map(|n| format!("conn-{n}")).collect();
    assert_eq!(ids(conns_node), expected);
    let conn1 = &conns_node.children[0];
    assert_eq!(conn1.kind, GROUP_KIND);
    assert_eq!(conn1.path, format!("{conns_path}/conn-1"));
    assert_eq!(ids(conn1), ["socket", "receiver", "c2s"]);
    assert_eq!(tree.count(), reg.len());

    let text = tree.render(None);
    assert!(text.starts_with("root  supervisor  up "), "{text}");
    assert!(text.contains("├─ sessions  worker  up "), "{text}");
    assert!(text.contains("└─ listeners  supervisor  up "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("├─ acceptor  worker") && l.ends_with("restarts 1")),
        "{text}"
    );
    assert!(
        text.contains("\n         └─ conn-10  group(one_for_all)  up "),
        "{text}"
    );

    let shallow = reg.snapshot("root", Some(1)).unwrap();
    assert_eq!(shallow.count(), 3);
    let json = serde_json::to_value(&tree).unwrap();
    assert_eq!(json["children"][1]["id"], "listeners");
    assert_eq!(json["children"][0]["mailbox"], serde_json::Value::Null);

    assert_eq!(reg.paths_matching("root/**/conn-*").len(), 10);
    assert_eq!(reg.paths_matching("root/*/*/conns").len(), 1);
    assert_eq!(reg.paths_matching("**/socket").len(), 10);
    shut_down(&reg, root, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_shutdown_any_significant() {
    let reg = Registry::new();
    let (sm, ss) = (counter(), counter());
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default().auto_shutdown(AutoShutdown::AnySignificant),
        vec![
            worker("main", Restart::Permanent, &sm),
            worker("sig", Restart::Transient, &ss).significant(true),
        ],
    )
    .await
    .unwrap();
    let main = reg.lookup("root/main").unwrap();

    // An abnormal exit of a transient significant child is a restart, not a shutdown.
    let sig = live_id(&reg, "root/sig").await;
    send(&reg, "root/sig", WorkerMsg::Fail);
    assert!(replaced(&reg, "root/sig", sig).await);
    assert_eq!(root.get_status(), ActorStatus::Running);

    send(&reg, "root/sig", WorkerMsg::Stop(None));
    let exit = tokio::time::timeout(WAIT, handle.wait()).await.unwrap();
    assert_eq!(exit, RootExit::Normal);
    assert!(stopped(&main));
    assert!(reg.is_empty(), "left over: {:?}", reg.paths_matching("**"));
    assert_eq!(sm.load(SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_shutdown_all_significant() {
    let reg = Registry::new();
    let s = counter();
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default().auto_shutdown(AutoShutdown::AllSignificant),
        vec![
            worker("a", Restart::Temporary, &s).significant(true),
            worker("b", Restart::Temporary, &s).significant(true),
        ],
    )
    .await
    .unwrap();
    live_id(&reg, "root/b").await;
    let a = reg.lookup("root/a").unwrap();
    send(&reg, "root/a", WorkerMsg::Stop(None));
    // Once `a` is stopped its exit event is queued, so the Children call answers after it.
    assert!(wait_until(|| stopped(&a), WAIT).await);
    assert_eq!(children(&root).await, ["b"]);
    assert_eq!(root.get_status(), ActorStatus::Running);
    send(&reg, "root/b", WorkerMsg::Fail);
    let exit = tokio::time::timeout(WAIT, handle.wait()).await.unwrap();
    assert_eq!(exit, RootExit::Normal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_static_child_fails_supervisor_start() {
    let reg = Registry::new();
    let first: Arc<Mutex<Option<ActorCell>>> = Arc::default();
    let seen = Arc::clone(&first);
    let ok = ChildSpec::worker("ok", Restart::Permanent, move |ctx: StartCtx| {
        let seen = Arc::clone(&seen);
        async move {
            let cell = spawn_worker(&ctx).await?;
            *seen.lock().unwrap() = Some(cell.clone());
            Ok(cell)
        }
    });
    let bad = ChildSpec::worker("bad", Restart::Permanent, |_ctx: StartCtx| async {
        Err(SpawnErr::StartupFailed("no port".into()))
    });
    let result = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![ok, bad],
    )
    .await;
    assert!(result.is_err());
    let first = first.lock().unwrap().clone().unwrap();
    assert!(wait_until(|| stopped(&first), WAIT).await);
    assert!(reg.is_empty(), "left over: {:?}", reg.paths_matching("**"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_restart_is_retried() {
    let reg = Registry::new();
    let attempts = counter();
    let seen = Arc::clone(&attempts);
    // The second start (the first restart) fails; the retry succeeds.
    let flaky = ChildSpec::worker("flaky", Restart::Permanent, move |ctx: StartCtx| {
        let n = seen.fetch_add(1, SeqCst);
        async move {
            if n == 1 {
                Err(SpawnErr::StartupFailed("not yet".into()))
            } else {
                spawn_worker(&ctx).await
            }
        }
    });
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![flaky],
    )
    .await
    .unwrap();
    let old = live_id(&reg, "root/flaky").await;
    send(&reg, "root/flaky", WorkerMsg::Fail);
    assert!(replaced(&reg, "root/flaky", old).await);
    assert_eq!(attempts.load(SeqCst), 3);
    assert_eq!(reg.stats("root/flaky").unwrap().restarts(), 2);
    shut_down(&reg, root, handle).await;
}

/// Records its name when it stops gracefully.
struct Recorder;

impl Actor for Recorder {
    type Msg = ();
    type State = (String, Arc<Mutex<Vec<String>>>);
    type Arguments = (String, Arc<Mutex<Vec<String>>>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.1.lock().unwrap().push(state.0.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_children_in_reverse_start_order() {
    let reg = Registry::new();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = |id: &'static str| {
        let log = Arc::clone(&log);
        ChildSpec::worker(id, Restart::Permanent, move |ctx: StartCtx| {
            let args = (id.to_owned(), Arc::clone(&log));
            async move {
                let (r, _) = Actor::spawn_linked(None, Recorder, args, ctx.supervisor).await?;
                Ok(r.get_cell())
            }
        })
    };
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![recorder("first"), recorder("second"), recorder("third")],
    )
    .await
    .unwrap();
    shut_down(&reg, root, handle).await;
    assert_eq!(*log.lock().unwrap(), ["third", "second", "first"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_ctx_stats_are_the_registry_entry() {
    let reg = Registry::new();
    let counted = ChildSpec::worker("counted", Restart::Permanent, |ctx: StartCtx| async move {
        let stats = ctx.stats();
        stats.count_mailbox();
        stats.mailbox_inc();
        stats.mailbox_inc();
        stats.mailbox_dec();
        spawn_worker(&ctx).await
    });
    let (root, handle) = spawn_root(
        "root",
        reg.clone(),
        SupervisorOptions::default(),
        vec![counted],
    )
    .await
    .unwrap();
    let node = reg.snapshot("root/counted", None).unwrap();
    assert_eq!(node.mailbox, Some(1));
    assert_eq!(node.handled, 1);
    assert_eq!(node.status, "running");
    assert!(node.render(None).contains("mailbox 1  handled 1"));
    shut_down(&reg, root, handle).await;
}
