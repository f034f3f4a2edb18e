//! Nothing is advertised that no module declares: the stream features of
//! every phase and the disco#info features of the server and of an
//! account, read over a real connection, are each in some module's
//! declaration (`chorus_server::xeps::declarations`), the source of
//! `docs/XEPS.md` and `chorus.doap`.
#![allow(clippy::unwrap_used)]

use chorus_sasl::{ChannelBindingType, Mechanism};
use chorus_xml::Element;

use crate::common::client::XmppClient;
use crate::common::*;

const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

fn declared_stream_feature(name: &str, ns: &str) -> bool {
    chorus_server::xeps::declarations()
        .iter()
        .flat_map(|i| i.stream_features)
        .any(|f| f.name == name && f.ns == ns)
}

fn declared_disco_feature(var: &str) -> bool {
    chorus_server::xeps::declarations()
        .iter()
        .any(|i| i.features.contains(&var) || i.account_features.contains(&var))
}

fn assert_features_declared(phase: &str, features: &Element) {
    let children: Vec<(&str, &str)> = features.children().map(|c| (c.name(), c.ns())).collect();
    assert!(!children.is_empty(), "{phase}: no features");
    for (name, ns) in children {
        assert!(
            declared_stream_feature(name, ns),
            "{phase}: <{name} xmlns='{ns}'/> is advertised but no module declares it"
        );
    }
}

async fn disco_features(c: &mut XmppClient, id: &str, to: &str) -> Vec<String> {
    c.send(&format!(
        "<iq type='get' id='{id}' to='{to}'><query xmlns='{NS_DISCO_INFO}'/></iq>"
    ))
    .await;
    let r = loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id) {
            break e;
        }
    };
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    r.get_child("query", NS_DISCO_INFO)
        .unwrap()
        .children()
        .filter(|f| f.name() == "feature")
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn every_advertised_feature_has_a_declaring_module() {
    let mut cfg = test_config("declared");
    // Registration on, so its stream feature is advertised too.
    cfg.register.enabled = true;
    let server = start(cfg).await;
    add_user(&server, "alice", "wonderland").await;
    let mut c = XmppClient::connect(server.first_addr().unwrap()).await;
    assert_features_declared("before TLS", &c.open().await);
    c.starttls().await;
    let after_tls = c.open().await;
    assert!(after_tls.children().any(|f| f.name() == "register"));
    assert_features_declared("after TLS", &after_tls);
    c.scram(
        Mechanism::ScramSha256Plus,
        "alice",
        "wonderland",
        Some(ChannelBindingType::TlsExporter),
    )
    .await
    .unwrap();
    assert_features_declared("authenticated", &c.open().await);
    c.bind(Some("r")).await.unwrap();

    for (id, to) in [("s", "localhost"), ("a", "alice@localhost")] {
        let features = disco_features(&mut c, id, to).await;
        assert!(!features.is_empty(), "{to}: no features");
        for var in features {
            assert!(
                declared_disco_feature(&var),
                "{to}: disco feature {var} is advertised but no module declares it"
            );
        }
    }
    server.stop();
}
