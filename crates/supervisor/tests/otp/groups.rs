//! Dynamic children and groups (a `conn-N` of socket, receiver and c2s): a member's exit ends
//! its group unless the member is insignificant, killing a group's path kills every member, and a
//! group that fails to start leaves nothing running.

use super::*;

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
