//! XEP-0280 Message Carbons over real sockets: received and sent copies go
//! to the user's other resources that enabled carbons, never to those that
//! did not, and never for private or no-copy messages.
#![allow(clippy::unwrap_used)]

use crate::common::client::XmppClient;
use crate::common::*;

async fn enable(c: &mut XmppClient) {
    c.send("<iq type='set' id='cb'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await;
    let r = c.expect("iq").await;
    assert_eq!((r.attr("id"), r.attr("type")), (Some("cb"), Some("result")));
}

/// Pings and waits for the answer: everything sent before it has arrived.
async fn settle(c: &mut XmppClient, id: &str) -> Vec<chorus_xml::Element> {
    c.send(&format!(
        "<iq to='localhost' type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    let mut got = Vec::new();
    loop {
        let e = c.next_element().await;
        if e.name() == "iq" && e.attr("id") == Some(id) {
            return got;
        }
        if e.name() != "presence" {
            got.push(e);
        }
    }
}

fn forwarded<'a>(m: &'a chorus_xml::Element, dir: &str) -> &'a chorus_xml::Element {
    m.get_child(dir, "urn:xmpp:carbons:2")
        .and_then(|d| d.get_child("forwarded", "urn:xmpp:forward:0"))
        .and_then(|f| f.get_child("message", "jabber:client"))
        .unwrap_or_else(|| panic!("no {dir} carbon in {}", m.to_xml()))
}

#[tokio::test]
async fn received_and_sent_carbons_reach_only_enabled_resources() {
    let server = start(test_config("carbons")).await;
    add_user(&server, "alice", "wonderland").await;
    add_user(&server, "bob", "builder").await;
    let addr = server.first_addr().unwrap();
    let (mut a1, _) = XmppClient::login(addr, "alice", "wonderland", Some("a1")).await;
    let (mut a2, _) = XmppClient::login(addr, "alice", "wonderland", Some("a2")).await;
    let (mut a3, _) = XmppClient::login(addr, "alice", "wonderland", Some("a3")).await;
    let (mut bob, _) = XmppClient::login(addr, "bob", "builder", Some("b")).await;
    enable(&mut a1).await;
    enable(&mut a2).await;

    bob.send("<message to='alice@localhost/a1' type='chat' id='in1'><body>hi a1</body></message>")
        .await;
    settle(&mut bob, "s0").await;
    let got = settle(&mut a1, "s1").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("id"), Some("in1"));
    let got = settle(&mut a2, "s2").await;
    assert_eq!(got.len(), 1, "one received carbon");
    let c = &got[0];
    assert_eq!(
        (c.attr("from"), c.attr("to")),
        (Some("alice@localhost"), Some("alice@localhost/a2"))
    );
    let inner = forwarded(c, "received");
    assert_eq!(
        (inner.attr("id"), inner.attr("from")),
        (Some("in1"), Some("bob@localhost/b"))
    );
    assert!(
        settle(&mut a3, "s3").await.is_empty(),
        "carbons not enabled on a3"
    );

    a1.send("<message to='bob@localhost/b' type='chat' id='out1'><body>hi bob</body></message>")
        .await;
    // Once a1's ping is answered its c2s has routed the message and cast
    // the carbon, so a2's ping queues behind it.
    settle(&mut a1, "s3b").await;
    let got = settle(&mut a2, "s4").await;
    assert_eq!(got.len(), 1, "one sent carbon");
    let inner = forwarded(&got[0], "sent");
    assert_eq!(
        (inner.attr("id"), inner.attr("from")),
        (Some("out1"), Some("alice@localhost/a1"))
    );
    assert!(settle(&mut a3, "s5").await.is_empty());
    assert_eq!(settle(&mut bob, "s6").await[0].attr("id"), Some("out1"));

    // §7 and XEP-0334: private and no-copy messages are not copied.
    a1.send("<message to='bob@localhost/b' type='chat' id='p'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>").await;
    bob.send("<message to='alice@localhost/a1' type='chat' id='n'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>").await;
    settle(&mut bob, "s6b").await;
    settle(&mut bob, "s6b").await;
    settle(&mut a1, "s7").await;
    assert!(
        settle(&mut a2, "s8").await.is_empty(),
        "no carbons for private/no-copy"
    );

    // Disabling stops the copies.
    a2.send("<iq type='set' id='off'><disable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await;
    assert_eq!(a2.expect("iq").await.attr("type"), Some("result"));
    bob.send("<message to='alice@localhost/a1' type='chat' id='in2'><body>again</body></message>")
        .await;
    settle(&mut bob, "s8b").await;
    settle(&mut a1, "s9").await;
    assert!(settle(&mut a2, "s10").await.is_empty());
    server.stop();
}

#[tokio::test]
async fn carbons_are_advertised() {
    let server = start(test_config("carbons-disco")).await;
    add_user(&server, "alice", "wonderland").await;
    let (mut a, _) = XmppClient::login(
        server.first_addr().unwrap(),
        "alice",
        "wonderland",
        Some("a"),
    )
    .await;
    a.send("<iq to='localhost' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let r = a.expect("iq").await;
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert!(q
        .children()
        .any(|f| f.attr("var") == Some("urn:xmpp:carbons:2")));
    server.stop();
}
