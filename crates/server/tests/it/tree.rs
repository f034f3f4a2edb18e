//! The supervision tree over real loopback sockets: killing parts of it ends
//! exactly what it should, and everything else keeps serving.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::*;
use chorus_config::{ListenerConfig, ListenerKind};
use chorus_supervisor::StopMode;
use tokio::io::AsyncWriteExt;

async fn killing_member_closes_only_its_connection(member: &str) {
    let server = start(test_config("kill")).await;
    let addr = server.first_addr().unwrap();
    let mut streams = Vec::new();
    for _ in 0..51 {
        streams.push(open_stream(addr).await);
    }
    let conns = conns_path(&server);
    // Connections were opened one after another, so the first is conn-1.
    let victim = format!("{conns}/conn-1/{member}");
    server.registry.kill(&victim, StopMode::Kill).unwrap();
    read_to_close(&mut streams[0]).await;
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .lookup(&format!("{conns}/conn-1"))
            .is_none()
            && server
                .registry
                .lookup(&format!("{conns}/conn-1/socket"))
                .is_none())
        .await,
        "the killed connection's group left the tree"
    );
    for (i, s) in streams.iter_mut().enumerate().skip(1) {
        s.write_all(b" ").await.unwrap();
        assert!(is_open(s).await, "connection {} survived", i + 1);
        assert!(server
            .registry
            .lookup(&format!("{conns}/conn-{}/c2s", i + 1))
            .is_some());
    }
    let _fresh = open_stream(addr).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_socket_closes_only_that_connection() {
    killing_member_closes_only_its_connection("socket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_receiver_closes_only_that_connection() {
    killing_member_closes_only_its_connection("receiver").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_c2s_closes_only_that_connection() {
    killing_member_closes_only_its_connection("c2s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_acceptor_keeps_connections() {
    let server = start(test_config("acceptor")).await;
    let addr = server.first_addr().unwrap();
    let mut before = open_stream(addr).await;
    let port = server.bound.iter().next().unwrap().key().clone();
    let acceptor = format!("root/listeners/{port}/acceptor");
    let old = server.registry.lookup(&acceptor).unwrap().get_id();
    server.registry.kill(&acceptor, StopMode::Kill).unwrap();
    let started = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .lookup(&acceptor)
            .is_some_and(|c| c.get_id() != old))
        .await,
        "acceptor restarted"
    );
    let _after = open_stream(addr).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "accepting again within 1 s"
    );
    before.write_all(b" ").await.unwrap();
    assert!(is_open(&mut before).await);
    let snap = server.registry.snapshot(&acceptor, None).unwrap();
    assert_eq!(snap.restarts, 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_conns_closes_that_ports_connections_only() {
    let mut cfg = test_config("conns");
    cfg.listeners.push(ListenerConfig {
        kind: ListenerKind::C2s,
        address: "127.0.0.2:0".parse().unwrap(),
    });
    let server = start(cfg).await;
    assert!(wait_until(Duration::from_secs(10), || server.bound.len() == 2).await);
    let a = server.bound_addr("port:c2s@127.0.0.1:0").unwrap();
    let b = server.bound_addr("port:c2s@127.0.0.2:0").unwrap();
    let mut on_a = vec![open_stream(a).await, open_stream(a).await];
    let mut on_b = open_stream(b).await;
    server
        .registry
        .kill("root/listeners/port:c2s@127.0.0.1:0/conns", StopMode::Kill)
        .unwrap();
    for s in &mut on_a {
        read_to_close(s).await;
    }
    on_b.write_all(b" ").await.unwrap();
    assert!(
        is_open(&mut on_b).await,
        "the other port's connection survived"
    );
    // The port keeps accepting on a restarted conns supervisor.
    let conns = "root/listeners/port:c2s@127.0.0.1:0/conns";
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .lookup(conns)
            .is_some())
        .await
    );
    let _again = open_stream(a).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_killed_past_intensity_escalates_to_the_port() {
    let server = start(test_config("escalate")).await;
    let addr = server.first_addr().unwrap();
    let port = server.bound.iter().next().unwrap().key().clone();
    let port_path = format!("root/listeners/{port}");
    let acceptor = format!("{port_path}/acceptor");
    let port_id = server.registry.lookup(&port_path).unwrap().get_id();
    // Eleven kills inside the one-second period: one more than intensity 10.
    for _ in 0..11 {
        assert!(
            wait_until(Duration::from_secs(10), || server
                .registry
                .lookup(&acceptor)
                .is_some())
            .await
        );
        let _ = server.registry.kill(&acceptor, StopMode::Kill);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        wait_until(Duration::from_secs(10), || server
            .registry
            .lookup(&port_path)
            .is_some_and(|c| c.get_id() != port_id))
        .await,
        "the port supervisor gave up and was restarted by listeners"
    );
    let snap = server.registry.snapshot(&port_path, None).unwrap();
    assert_eq!(snap.restarts, 1);
    // The restarted port serves again (same address: port 0 rebinds, so ask).
    assert!(wait_until(Duration::from_secs(10), || server.first_addr().is_some()).await);
    let addr2 = server.bound_addr(&port).unwrap();
    let _s = open_stream(addr2).await;
    let _ = addr;
    server.stop();
}
