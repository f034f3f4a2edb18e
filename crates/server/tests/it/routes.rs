//! The route table over real sockets: a throwaway service hosted on a
//! subdomain receives messages, presence and IQs from a client and answers
//! through the same router (including an IQ of its own whose answer it
//! awaits), and a stanza for another domain reaches the remote destination.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_router::{Destination, Outcome, Router, Service};
use chorus_xml::Element;

use crate::common::client::{stanza_error_condition, XmppClient};
use crate::common::*;

const NS_ECHO: &str = "urn:example:echo";
const NS_PING: &str = "urn:xmpp:ping";

/// Records what reaches it; echoes messages, answers presence with its
/// own, answers `<echo/>` IQs, and for `<ask/>` pings the asker first and
/// reports whether the pong came back.
struct Echo {
    seen: Mutex<Vec<Element>>,
    /// For work that outlives a `handle` call (weak: the router owns us).
    router: std::sync::Weak<Router>,
}

impl Service for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    fn handle<'a>(
        &'a self,
        router: &'a Router,
        stanza: Element,
    ) -> futures_util::future::BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.seen.lock().unwrap().push(stanza.clone());
            let from = stanza.attr("from").unwrap_or_default().to_owned();
            let to = stanza.attr("to").unwrap_or_default().to_owned();
            match stanza.name() {
                "message" => {
                    let body = stanza
                        .get_child("body", "jabber:client")
                        .map(|b| b.text())
                        .unwrap_or_default();
                    let echo = Element::new("message", "jabber:client")
                        .with_attr("from", to)
                        .with_attr("to", from)
                        .with_attr("type", "chat")
                        .with_child(
                            Element::new("body", "jabber:client")
                                .with_text(format!("echo: {body}")),
                        );
                    router.send(echo).await;
                }
                "presence" => {
                    let mut p = Element::new("presence", "jabber:client")
                        .with_attr("from", to)
                        .with_attr("to", from);
                    if stanza.attr("type") == Some("unavailable") {
                        p.set_attr("type", "unavailable");
                    }
                    router.send(p).await;
                }
                "iq" if stanza.attr("type") == Some("get") => {
                    let mut answer = Element::new("iq", "jabber:client")
                        .with_attr("type", "result")
                        .with_attr("id", stanza.attr("id").unwrap_or_default())
                        .with_attr("from", to.as_str())
                        .with_attr("to", from.as_str());
                    if stanza.get_child("ask", NS_ECHO).is_some() {
                        let ping = Element::new("iq", "jabber:client")
                            .with_attr("type", "get")
                            .with_attr("from", to.as_str())
                            .with_attr("to", from.as_str())
                            .with_child(Element::new("ping", NS_PING));
                        // Not awaited here: this runs in the asker's c2s,
                        // which must be free to pass the pong on.
                        let Some(router) = self.router.upgrade() else {
                            return Outcome::Dropped;
                        };
                        tokio::spawn(async move {
                            let pong = router.request(ping, Duration::from_secs(5)).await;
                            let verdict = match pong {
                                Ok(r) => r.attr("type").unwrap_or_default().to_owned(),
                                Err(e) => e.to_string(),
                            };
                            answer.push(Element::new("pong", NS_ECHO).with_text(verdict));
                            router.send(answer).await;
                        });
                        return Outcome::Delivered;
                    } else {
                        answer.push(Element::new("echo", NS_ECHO));
                    }
                    // Answered by routing, like any origin.
                    router.send(answer).await;
                }
                _ => {}
            }
            Outcome::Delivered
        })
    }
}

async fn alice(tag: &str) -> (chorus_server::Server, XmppClient) {
    let server = start(test_config(tag)).await;
    add_user(&server, "alice", "wonderland").await;
    let (c, _) = XmppClient::login(
        server.first_addr().unwrap(),
        "alice",
        "wonderland",
        Some("r"),
    )
    .await;
    (server, c)
}

#[tokio::test]
async fn a_hosted_service_gets_messages_presence_and_iqs_and_answers_through_the_router() {
    let (server, mut c) = alice("routes-service").await;
    let echo = Arc::new(Echo {
        seen: Mutex::default(),
        router: Arc::downgrade(&server.router),
    });
    server
        .router
        .routes
        .add("echo.localhost", Destination::Service(echo.clone()))
        .unwrap();

    c.send("<message to='echo.localhost' type='chat' id='m1'><body>hi</body></message>")
        .await;
    let m = c.expect("message").await;
    assert_eq!(m.attr("from"), Some("echo.localhost"));
    assert_eq!(m.attr("to"), Some("alice@localhost/r"));
    assert_eq!(
        m.get_child("body", "jabber:client").unwrap().text(),
        "echo: hi"
    );

    c.send("<presence to='echo.localhost'/>").await;
    let p = c.expect("presence").await;
    assert_eq!(p.attr("from"), Some("echo.localhost"));
    assert_eq!(p.attr("type"), None);

    c.send("<iq type='get' id='e1' to='echo.localhost'><echo xmlns='urn:example:echo'/></iq>")
        .await;
    let r = c.expect("iq").await;
    assert_eq!(r.attr("id"), Some("e1"));
    assert_eq!(r.attr("type"), Some("result"));
    assert!(r.get_child("echo", NS_ECHO).is_some(), "{}", r.to_xml());

    // The service pings the client and awaits the answer before its own.
    c.send("<iq type='get' id='e2' to='echo.localhost'><ask xmlns='urn:example:echo'/></iq>")
        .await;
    let ping = c.expect("iq").await;
    assert_eq!(ping.attr("type"), Some("get"));
    assert_eq!(ping.attr("from"), Some("echo.localhost"));
    assert!(ping.get_child("ping", NS_PING).is_some());
    let id = ping.attr("id").unwrap().to_owned();
    c.send(&format!(
        "<iq type='result' id='{id}' to='echo.localhost'/>"
    ))
    .await;
    let r = c.expect("iq").await;
    assert_eq!(r.attr("id"), Some("e2"));
    assert_eq!(
        r.get_child("pong", NS_ECHO).map(|p| p.text()).as_deref(),
        Some("result"),
        "{}",
        r.to_xml()
    );

    // Every stanza arrived with the sender stamped, in order.
    let seen: Vec<(String, Option<String>)> = echo
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.name().to_owned(), e.attr("from").map(str::to_owned)))
        .collect();
    let me = Some("alice@localhost/r".to_owned());
    assert_eq!(
        seen,
        vec![
            ("message".to_owned(), me.clone()),
            ("presence".to_owned(), me.clone()),
            ("iq".to_owned(), me.clone()),
            ("iq".to_owned(), me),
        ]
    );

    // Once the route is gone, the domain is remote like any other.
    assert!(server.router.routes.remove("echo.localhost").is_some());
    c.send("<iq type='get' id='e3' to='echo.localhost'><echo xmlns='urn:example:echo'/></iq>")
        .await;
    let r = c.expect("iq").await;
    assert_eq!(stanza_error_condition(&r), "remote-server-not-found");
}

/// Records what reaches the remote destination.
#[derive(Default)]
struct Remote {
    seen: Mutex<Vec<Element>>,
}

impl Service for Remote {
    fn name(&self) -> &str {
        "test-remote"
    }

    fn handle<'a>(
        &'a self,
        _router: &'a Router,
        stanza: Element,
    ) -> futures_util::future::BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.seen.lock().unwrap().push(stanza);
            Outcome::Delivered
        })
    }
}

#[tokio::test]
async fn a_stanza_for_another_domain_reaches_the_remote_destination() {
    let (server, mut c) = alice("routes-remote").await;
    // Without server-to-server: remote-server-not-found (RFC 6120 §8.3.3.15).
    c.send("<message to='juliet@some.other.domain' type='chat' id='r1'><body>x</body></message>")
        .await;
    let e = c.expect("message").await;
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(stanza_error_condition(&e), "remote-server-not-found");

    let remote = Arc::new(Remote::default());
    server.router.routes.set_remote(remote.clone());
    c.send("<message to='juliet@some.other.domain' type='chat' id='r2'><body>y</body></message>")
        .await;
    c.send("<iq type='get' id='r3' to='some.other.domain'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert!(
        wait_until(Duration::from_secs(10), || remote
            .seen
            .lock()
            .unwrap()
            .len()
            == 2)
        .await,
        "the remote destination got {:?}",
        remote.seen.lock().unwrap()
    );
    let seen = remote.seen.lock().unwrap().clone();
    assert_eq!(seen[0].attr("id"), Some("r2"));
    assert_eq!(seen[0].attr("to"), Some("juliet@some.other.domain"));
    assert_eq!(seen[0].attr("from"), Some("alice@localhost/r"));
    assert_eq!(seen[1].attr("id"), Some("r3"));
    // The local domain still routes locally.
    assert!(server.router.is_local("localhost"));
    assert!(!server.router.is_local("some.other.domain"));
}

#[tokio::test]
async fn a_domain_cannot_be_routed_twice() {
    let (server, _c) = alice("routes-twice").await;
    let err = server
        .router
        .routes
        .add(
            "localhost",
            Destination::Service(Arc::new(Remote::default())),
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "the domain localhost is already routed");
}
