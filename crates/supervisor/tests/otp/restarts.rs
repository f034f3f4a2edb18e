//! Restarts as OTP gives them: one_for_one, one_for_all and rest_for_one, the restart intensity
//! escalating to the parent, permanent, transient and temporary children, and a kill counted as
//! an abnormal exit.

use super::*;

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
