//! Starting and stopping: auto-shutdown on significant children, a failing static child failing
//! its supervisor's start, failed restarts retried, children stopped in reverse start order, and
//! the figures a child records through its start context showing in its registry entry.

use super::*;

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
