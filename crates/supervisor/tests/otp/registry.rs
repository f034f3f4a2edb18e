//! The registry behind tree paths: a killed supervisor leaves no entries behind, and snapshots
//! list children in start order, a restarted child keeping its place.

use super::*;

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
