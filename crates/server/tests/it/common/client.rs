//! A small raw-socket XMPP client for the integration tests: real TCP, real
//! TLS (rustls, accepting the server's self-signed dev certificate), real
//! SCRAM (chorus-sasl's client), server output parsed with chorus-xml.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine;
use chorus_sasl::{ChannelBindingType, Mechanism, ScramClient};
use chorus_xml::{Element, Limits, StreamEvent, StreamParser};
use rustls::pki_types::ServerName;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Accepts any certificate (the server's fresh self-signed one); shared
/// with the load generator.
pub fn tls_connector(alpn: Option<&[u8]>, tls12_only: bool) -> tokio_rustls::TlsConnector {
    chorus_bench::tls::connector(alpn, tls12_only).unwrap()
}

pub enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Gone,
}

pub struct XmppClient {
    pub io: Io,
    parser: StreamParser,
    pub domain: String,
}

pub const CLIENT_HEADER_FMT: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='";

fn parser() -> StreamParser {
    let mut p = StreamParser::new(Limits {
        max_stanza_bytes_preauth: 1 << 20,
        ..Limits::default()
    });
    p.set_authenticated(true);
    p
}

impl XmppClient {
    pub async fn connect(addr: std::net::SocketAddr) -> XmppClient {
        XmppClient {
            io: Io::Plain(TcpStream::connect(addr).await.unwrap()),
            parser: parser(),
            domain: "localhost".into(),
        }
    }

    /// [`XmppClient::connect`] from the local address `src`, so that a
    /// per-address limit counts this connection alone.
    pub async fn connect_from(addr: std::net::SocketAddr, src: std::net::IpAddr) -> XmppClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(src, 0)).unwrap();
        XmppClient {
            io: Io::Plain(socket.connect(addr).await.unwrap()),
            parser: parser(),
            domain: "localhost".into(),
        }
    }

    /// Direct TLS (XEP-0368) with ALPN xmpp-client.
    pub async fn connect_tls(addr: std::net::SocketAddr) -> XmppClient {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = tls_connector(Some(b"xmpp-client"), false)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"xmpp-client"[..]));
        XmppClient {
            io: Io::Tls(Box::new(tls)),
            parser: parser(),
            domain: "localhost".into(),
        }
    }

    pub async fn send(&mut self, s: &str) {
        match &mut self.io {
            Io::Plain(t) => t.write_all(s.as_bytes()).await.unwrap(),
            Io::Tls(t) => {
                t.write_all(s.as_bytes()).await.unwrap();
                t.flush().await.unwrap();
            }
            Io::Gone => panic!("no connection"),
        }
    }

    async fn read_some(&mut self) -> usize {
        let mut buf = [0u8; 8192];
        let n = match &mut self.io {
            Io::Plain(t) => t.read(&mut buf).await.unwrap_or(0),
            Io::Tls(t) => t.read(&mut buf).await.unwrap_or(0),
            Io::Gone => 0,
        };
        self.parser.feed(&buf[..n]);
        n
    }

    /// The next event from the server; None when it closed the connection.
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(ev) = self
                .parser
                .next_event()
                .expect("server sent well-formed XML")
            {
                return Some(ev);
            }
            let n = tokio::time::timeout_at(deadline, self.read_some())
                .await
                .expect("server answered in time");
            if n == 0 {
                return None;
            }
        }
    }

    /// The next top-level element, skipping stream headers.
    pub async fn next_element(&mut self) -> Element {
        loop {
            match self.next_event().await {
                Some(StreamEvent::Element(e)) => return e,
                Some(StreamEvent::Header(_)) => continue,
                other => panic!("expected an element, got {other:?}"),
            }
        }
    }

    /// The next element, which must be `name`. Presence stanzas in between
    /// (broadcasts from the user's own other resources and contacts) are
    /// skipped unless presence is what is expected.
    pub async fn expect(&mut self, name: &str) -> Element {
        loop {
            let e = self.next_element().await;
            if e.name() == "presence" && name != "presence" {
                continue;
            }
            assert_eq!(e.name(), name, "got {}", e.to_xml());
            return e;
        }
    }

    /// Reads until the server closes; returns the stream error condition
    /// if one came.
    pub async fn expect_stream_error(&mut self) -> String {
        loop {
            match self.next_event().await {
                Some(StreamEvent::Element(e)) if e.name() == "error" => {
                    let cond = e
                        .children()
                        .find(|c| {
                            c.ns() == "urn:ietf:params:xml:ns:xmpp-streams" && c.name() != "text"
                        })
                        .map(|c| c.name().to_owned())
                        .unwrap_or_default();
                    // Then </stream:stream> and the close.
                    loop {
                        match self.next_event().await {
                            Some(StreamEvent::End) | None => return cond,
                            _ => {}
                        }
                    }
                }
                Some(StreamEvent::End) | None => panic!("closed without a stream error"),
                _ => {}
            }
        }
    }

    /// Expects a new stream from the server (after a restart the test
    /// drives itself).
    pub fn reset_parser(&mut self) {
        self.parser.reset();
    }

    /// Sends a stream header and returns the features.
    pub async fn open(&mut self) -> Element {
        self.parser.reset();
        let header = format!("{CLIENT_HEADER_FMT}{}'>", self.domain);
        self.send(&header).await;
        match self.next_event().await {
            Some(StreamEvent::Header(_)) => {}
            other => panic!("expected the server's header, got {other:?}"),
        }
        self.expect("features").await
    }

    pub async fn starttls(&mut self) {
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        self.expect("proceed").await;
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            panic!("already TLS")
        };
        let tls = tls_connector(None, false)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        self.io = Io::Tls(Box::new(tls));
    }

    /// The DER certificate the server presented, once TLS is up.
    pub fn peer_cert(&self) -> Option<Vec<u8>> {
        let Io::Tls(t) = &self.io else { return None };
        Some(
            t.get_ref()
                .1
                .peer_certificates()?
                .first()?
                .as_ref()
                .to_vec(),
        )
    }

    /// Channel-binding data of the current TLS connection.
    pub fn binding(&self, ty: ChannelBindingType) -> Option<Vec<u8>> {
        let Io::Tls(t) = &self.io else { return None };
        let conn = t.get_ref().1;
        match ty {
            ChannelBindingType::TlsExporter => {
                let mut out = vec![0u8; 32];
                conn.export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None)
                    .ok()?;
                Some(out)
            }
            ChannelBindingType::TlsServerEndPoint => {
                let cert = conn.peer_certificates()?.first()?;
                Some(sha2::Sha256::digest(cert.as_ref()).to_vec())
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Runs a SCRAM exchange; Ok on success, Err(condition) on failure.
    pub async fn scram(
        &mut self,
        mech: Mechanism,
        user: &str,
        password: &str,
        cb: Option<ChannelBindingType>,
    ) -> Result<(), String> {
        self.scram_cached(mech, user, password, cb, None)
            .await
            .map(|_| ())
    }

    /// SCRAM with an optional cached salted password (benchmarks: the
    /// client's PBKDF2 must not be the bottleneck). Returns the salted
    /// password for the next login of an account with the same salt.
    pub async fn scram_cached(
        &mut self,
        mech: Mechanism,
        user: &str,
        password: &str,
        cb: Option<ChannelBindingType>,
        cached: Option<chorus_sasl::SaltedPassword>,
    ) -> Result<Option<chorus_sasl::SaltedPassword>, String> {
        let binding = cb.map(|t| (t, self.binding(t).expect("binding data")));
        let mut client = ScramClient::new(mech, user, password, binding).unwrap();
        if let Some(s) = cached {
            client = client.with_salted_password(s);
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let first = b64.encode(client.client_first());
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>{first}</auth>",
            mech.name()
        ))
        .await;
        let challenge = self.next_element().await;
        if challenge.name() == "failure" {
            return Err(failure_condition(&challenge));
        }
        assert_eq!(challenge.name(), "challenge", "{}", challenge.to_xml());
        let server_first = b64.decode(challenge.text()).unwrap();
        let Ok(fin) = client.handle_server_first(&server_first) else {
            return Err("client rejected server-first".into());
        };
        self.send(&format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            b64.encode(fin)
        ))
        .await;
        let outcome = self.next_element().await;
        if outcome.name() == "failure" {
            return Err(failure_condition(&outcome));
        }
        assert_eq!(outcome.name(), "success", "{}", outcome.to_xml());
        let server_final = b64.decode(outcome.text()).unwrap();
        client
            .handle_server_final(&server_final)
            .expect("server signature verifies");
        Ok(client.salted_password().cloned())
    }

    /// Binds a resource; returns the full JID or the stanza error condition.
    pub async fn bind(&mut self, resource: Option<&str>) -> Result<String, String> {
        let res = resource
            .map(|r| format!("<resource>{r}</resource>"))
            .unwrap_or_default();
        self.send(&format!(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{res}</bind></iq>"
        ))
        .await;
        let iq = self.expect("iq").await;
        if iq.attr("type") == Some("result") {
            Ok(iq
                .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
                .and_then(|b| b.get_child("jid", "urn:ietf:params:xml:ns:xmpp-bind"))
                .map(|j| j.text())
                .unwrap())
        } else {
            Err(stanza_error_condition(&iq))
        }
    }

    /// STARTTLS, SCRAM-SHA-256-PLUS (tls-exporter) and the stream restart:
    /// authenticated, not bound (XEP-0198 resumption starts here). Returns
    /// the post-authentication features too.
    pub async fn authenticate(
        addr: std::net::SocketAddr,
        user: &str,
        password: &str,
    ) -> (XmppClient, Element) {
        let mut c = XmppClient::connect(addr).await;
        c.open().await;
        c.starttls().await;
        c.open().await;
        c.scram(
            Mechanism::ScramSha256Plus,
            user,
            password,
            Some(ChannelBindingType::TlsExporter),
        )
        .await
        .expect("login succeeds");
        let features = c.open().await;
        (c, features)
    }

    /// Drops the connection without closing the stream, as a network
    /// failure would look to the server (it reads EOF).
    pub fn drop_connection(&mut self) {
        self.io = Io::Gone;
    }

    /// STARTTLS, SCRAM-SHA-256-PLUS (tls-exporter), bind, initial presence.
    pub async fn login(
        addr: std::net::SocketAddr,
        user: &str,
        password: &str,
        resource: Option<&str>,
    ) -> (XmppClient, String) {
        let mut c = XmppClient::connect(addr).await;
        c.open().await;
        c.starttls().await;
        c.open().await;
        c.scram(
            Mechanism::ScramSha256Plus,
            user,
            password,
            Some(ChannelBindingType::TlsExporter),
        )
        .await
        .expect("login succeeds");
        c.open().await;
        let jid = c.bind(resource).await.expect("bind succeeds");
        c.send("<presence/>").await;
        (c, jid)
    }
}

pub fn failure_condition(failure: &Element) -> String {
    failure
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_default()
}

pub fn stanza_error_condition(stanza: &Element) -> String {
    stanza
        .get_child("error", "jabber:client")
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        })
        .map(|c| c.name().to_owned())
        .unwrap_or_default()
}
