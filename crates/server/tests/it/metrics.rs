//! The monitoring endpoint over a real socket: `/metrics` parses with a
//! real OpenMetrics parser, has every family from the first scrape (known
//! labels at zero), and its counters move when stanzas flow; `/healthz` and
//! `/readyz` answer.
#![allow(clippy::unwrap_used)]

use crate::common::client::XmppClient;
use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

/// The sample of `family` with `labels`; panics when the family or the
/// sample is missing (every family is exposed from the start).
fn value(text: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, family, labels)
        .unwrap_or_else(|| panic!("no {family} {labels:?} sample in\n{text}"))
}

fn sample(text: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let exposition = openmetrics_parser::openmetrics::parse_openmetrics(text)
        .unwrap_or_else(|e| panic!("invalid OpenMetrics: {e:?}\n{text}"));
    let fam = exposition.families.get(family)?;
    for sample in fam.iter_samples() {
        let ok = labels.iter().all(|(k, v)| {
            sample
                .get_labelset()
                .ok()
                .and_then(|ls| ls.get_label_value(k).map(|x| x == *v))
                .unwrap_or(false)
        });
        if ok {
            return Some(match &sample.value {
                openmetrics_parser::OpenMetricsValue::Counter(c) => c.value.as_f64(),
                openmetrics_parser::OpenMetricsValue::Gauge(g) => g.as_f64(),
                other => panic!("unexpected {other:?}"),
            });
        }
    }
    None
}

async fn metrics_addr(server: &chorus_server::Server) -> std::net::SocketAddr {
    loop {
        if let Some(a) = *server.metrics_addr.lock().unwrap() {
            break a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_is_present_from_the_start_with_its_known_labels_at_zero() {
    let server = start(test_config("metrics-zero")).await;
    let (status, text) = get(metrics_addr(&server).await, "/metrics").await;
    assert_eq!(status, 200);
    let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("invalid OpenMetrics: {e:?}\n{text}"));
    for family in [
        "chorus_connections",
        "chorus_sessions",
        "chorus_stanzas_in",
        "chorus_stanzas_out",
        "chorus_stanza_size_bytes",
        "chorus_auth",
        "chorus_stream_errors",
        "chorus_actor_restarts",
        "chorus_mailbox_depth",
        "chorus_outbound_queue_drops",
        "chorus_csi_held",
        "chorus_csi_flushed",
        "chorus_module_panics",
    ] {
        assert!(
            exposition.families.contains_key(family),
            "{family} missing from\n{text}"
        );
    }
    for kind in ["message", "presence", "iq"] {
        assert_eq!(value(&text, "chorus_stanzas_in", &[("kind", kind)]), 0.0);
        assert_eq!(value(&text, "chorus_stanzas_out", &[("kind", kind)]), 0.0);
    }
    assert_eq!(value(&text, "chorus_stanzas_in", &[("kind", "other")]), 0.0);
    for mechanism in chorus_sasl::Mechanism::ALL {
        for result in ["success", "failure"] {
            assert_eq!(
                value(
                    &text,
                    "chorus_auth",
                    &[("mechanism", mechanism.name()), ("result", result)]
                ),
                0.0
            );
        }
    }
    for condition in chorus_proto::StreamError::CONDITIONS {
        assert_eq!(
            value(&text, "chorus_stream_errors", &[("condition", condition)]),
            0.0,
            "{condition}"
        );
    }
    let port = server.bound.iter().next().unwrap().key().clone();
    for supervisor in [
        "root".to_owned(),
        "root/modules".to_owned(),
        "root/listeners".to_owned(),
        format!("root/listeners/{port}"),
        format!("root/listeners/{port}/conns"),
    ] {
        assert_eq!(
            value(
                &text,
                "chorus_actor_restarts",
                &[("supervisor", &supervisor)]
            ),
            0.0,
            "{supervisor}"
        );
    }
    assert_eq!(
        value(&text, "chorus_connections", &[("listener", port.as_str())]),
        0.0
    );
    assert_eq!(value(&text, "chorus_outbound_queue_drops", &[]), 0.0);
    assert_eq!(value(&text, "chorus_module_panics", &[]), 0.0);

    // A restart shows under its supervisor.
    server
        .registry
        .kill("root/sessions", chorus_supervisor::StopMode::Kill)
        .unwrap();
    let mut restarts = 0.0;
    for _ in 0..200 {
        let (_, now) = get(metrics_addr(&server).await, "/metrics").await;
        restarts = value(&now, "chorus_actor_restarts", &[("supervisor", "root")]);
        if restarts == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(restarts, 1.0);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_traffic() {
    let server = start(test_config("metrics")).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let maddr = metrics_addr(&server).await;
    assert_eq!(get(maddr, "/healthz").await.0, 200);
    assert_eq!(get(maddr, "/readyz").await, (200, "ready\n".to_owned()));
    assert_eq!(get(maddr, "/nope").await.0, 404);

    let (_, before) = get(maddr, "/metrics").await;
    assert_eq!(value(&before, "chorus_sessions", &[]), 0.0);
    let addr = server.first_addr().unwrap();
    let (mut alice, _) = XmppClient::login(addr, "alice", "wonderland", Some("a")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    for i in 0..3 {
        alice
            .send(&format!(
                "<message to='bob@localhost/b' id='m{i}'><body>x</body></message>"
            ))
            .await;
        bob.expect("message").await;
    }
    let mut bad = XmppClient::connect(addr).await;
    bad.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='nowhere.example' version='1.0'>").await;
    bad.expect_stream_error().await;

    let (status, after) = get(maddr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(value(&after, "chorus_sessions", &[]), 2.0);
    assert!(value(&after, "chorus_stanzas_in", &[("kind", "message")]) >= 3.0);
    assert!(value(&after, "chorus_stanzas_out", &[("kind", "message")]) >= 3.0);
    assert_eq!(
        value(
            &after,
            "chorus_auth",
            &[("mechanism", "SCRAM-SHA-256-PLUS"), ("result", "success")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "chorus_stream_errors",
            &[("condition", "host-unknown")]
        ),
        1.0
    );
    // The rejected connection's gauge drops when its actors have stopped,
    // which may be just after the client read the close: poll.
    let port = server.bound.iter().next().unwrap().key().clone();
    let mut conns = f64::NAN;
    for _ in 0..200 {
        let (_, now) = get(maddr, "/metrics").await;
        conns = value(&now, "chorus_connections", &[("listener", port.as_str())]);
        if conns == 2.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(conns, 2.0);
    server.stop();
}
