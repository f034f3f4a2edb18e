//! The generator's XMPP client: just enough of RFC 6120 to log in the way
//! everyday clients do (stream, optional STARTTLS, SASL PLAIN or
//! SCRAM-SHA-256, bind, presence), plus XEP-0077 registration for setup.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use chorus_sasl::{Mechanism, SaltedPassword, ScramClient};
use chorus_xml::{Element, Limits, StreamEvent, StreamParser};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// One step of a login may take this long before the run counts a failure.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    /// No TLS (the server must not require it).
    Plain,
    /// STARTTLS before authenticating.
    Starttls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mech {
    Plain,
    ScramSha1,
    ScramSha256,
}

/// How to reach and log in to the server under test.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub domain: String,
    pub security: Security,
    pub mech: Mech,
    pub password: String,
    pub prefix: String,
    /// Salted passwords per account, so SCRAM's PBKDF2 runs once per
    /// account and not once per login: the generator must not be the
    /// bottleneck (the issue allows it).
    pub scram_cache: Arc<Mutex<HashMap<String, SaltedPassword>>>,
    pub tls: tokio_rustls::TlsConnector,
}

impl Target {
    pub fn user(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }
}

/// Connects from one of several loopback source addresses: one source
/// address has only ~28k ephemeral ports towards one server port.
pub async fn connect(addr: SocketAddr, i: usize) -> Result<TcpStream> {
    if !addr.ip().is_loopback() {
        bail!("chorus-bench only targets loopback addresses, not {addr}");
    }
    let stream = match addr.ip() {
        IpAddr::V4(_) => {
            let sock = TcpSocket::new_v4()?;
            let src = std::net::Ipv4Addr::new(127, 0, 1, 1 + (i / 20_000) as u8);
            sock.bind(SocketAddr::new(src.into(), 0))?;
            sock.connect(addr).await?
        }
        IpAddr::V6(_) => TcpStream::connect(addr).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub fn parser() -> StreamParser {
    let mut p = StreamParser::new(Limits {
        max_stanza_bytes_preauth: 1 << 20,
        max_stanza_bytes: 1 << 22,
        ..Limits::default()
    });
    p.set_authenticated(true);
    p
}

/// Reads from `io` until the parser yields an event; `None` at EOF.
pub async fn next_event<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    parser: &mut StreamParser,
    buf: &mut [u8],
) -> Result<Option<StreamEvent>> {
    loop {
        if let Some(ev) = parser
            .next_event()
            .map_err(|e| anyhow!("server XML: {e}"))?
        {
            return Ok(Some(ev));
        }
        let n = io.read(buf).await?;
        if n == 0 {
            return Ok(None);
        }
        parser.feed(&buf[..n]);
    }
}

/// The next top-level element, with a timeout. A stream error or EOF is an
/// error.
async fn element<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    parser: &mut StreamParser,
    buf: &mut [u8],
) -> Result<Element> {
    loop {
        let ev = tokio::time::timeout(STEP_TIMEOUT, next_event(io, parser, buf))
            .await
            .context("timed out waiting for the server")??;
        match ev {
            Some(StreamEvent::Element(e)) if e.name() == "error" && e.ns().contains("streams") => {
                bail!("stream error: {}", e.to_xml())
            }
            Some(StreamEvent::Element(e)) => return Ok(e),
            Some(StreamEvent::Header(_)) => continue,
            Some(StreamEvent::End) | None => bail!("server closed the stream"),
        }
    }
}

/// Skips presence and other stanzas until an element named `name` arrives.
async fn expect<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    parser: &mut StreamParser,
    buf: &mut [u8],
    name: &str,
) -> Result<Element> {
    loop {
        let e = element(io, parser, buf).await?;
        if e.name() == name {
            return Ok(e);
        }
    }
}

async fn open<S: Stream + ?Sized>(
    io: &mut S,
    parser: &mut StreamParser,
    buf: &mut [u8],
    domain: &str,
) -> Result<Element> {
    parser.reset();
    io.write_all(
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='{domain}'>"
        )
        .as_bytes(),
    )
    .await?;
    io.flush().await?;
    expect(io, parser, buf, "features").await
}

async fn send<S: Stream + ?Sized>(io: &mut S, s: &str) -> Result<()> {
    io.write_all(s.as_bytes()).await?;
    io.flush().await?;
    Ok(())
}

/// A logged-in session, ready to be split into reader and writer.
pub struct Session {
    pub io: Box<dyn Stream>,
    pub parser: StreamParser,
    pub jid: String,
}

/// TCP, stream, STARTTLS when asked: the stream before authentication.
async fn pre_auth(t: &Target, i: usize) -> Result<(Box<dyn Stream>, StreamParser, Element)> {
    let mut tcp = connect(t.addr, i).await?;
    let mut parser = parser();
    let mut buf = vec![0u8; 4096];
    let features = open(&mut tcp, &mut parser, &mut buf, &t.domain).await?;
    if t.security == Security::Plain {
        return Ok((Box::new(tcp), parser, features));
    }
    if features
        .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
        .is_none()
    {
        bail!("server does not offer STARTTLS");
    }
    send(
        &mut tcp,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    )
    .await?;
    let proceed = element(&mut tcp, &mut parser, &mut buf).await?;
    if proceed.name() != "proceed" {
        bail!("STARTTLS refused: {}", proceed.to_xml());
    }
    let name = ServerName::try_from(t.domain.clone())?;
    let tls = tokio::time::timeout(STEP_TIMEOUT, t.tls.connect(name, tcp))
        .await
        .context("TLS handshake timed out")??;
    let mut io: Box<dyn Stream> = Box::new(tls);
    let features = open(&mut io, &mut parser, &mut buf, &t.domain).await?;
    Ok((io, parser, features))
}

/// Logs user `i` in and binds `resource`; sends initial presence if asked.
pub async fn login(t: &Target, i: usize, resource: &str, presence: bool) -> Result<Session> {
    let (mut io, mut parser, _features) = pre_auth(t, i).await?;
    let mut buf = vec![0u8; 4096];
    let user = t.user(i);
    let b64 = base64::engine::general_purpose::STANDARD;
    match t.mech {
        Mech::Plain => {
            let payload = b64.encode(format!("\0{user}\0{}", t.password));
            send(
                &mut io,
                &format!(
                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>"
                ),
            )
            .await?;
            let outcome = element(&mut io, &mut parser, &mut buf).await?;
            if outcome.name() != "success" {
                bail!("PLAIN failed for {user}: {}", outcome.to_xml());
            }
        }
        Mech::ScramSha1 | Mech::ScramSha256 => {
            let mechanism = if t.mech == Mech::ScramSha1 {
                Mechanism::ScramSha1
            } else {
                Mechanism::ScramSha256
            };
            let cached = t
                .scram_cache
                .lock()
                .ok()
                .and_then(|c| c.get(&user).cloned());
            let mut client = ScramClient::new(mechanism, &user, &t.password, None)?;
            if let Some(s) = cached {
                client = client.with_salted_password(s);
            }
            send(
                &mut io,
                &format!(
                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>{}</auth>",
                    mechanism.name(),
                    b64.encode(client.client_first())
                ),
            )
            .await?;
            let challenge = element(&mut io, &mut parser, &mut buf).await?;
            if challenge.name() != "challenge" {
                bail!("SCRAM failed for {user}: {}", challenge.to_xml());
            }
            let fin = client.handle_server_first(&b64.decode(challenge.text())?)?;
            send(
                &mut io,
                &format!(
                    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
                    b64.encode(fin)
                ),
            )
            .await?;
            let outcome = element(&mut io, &mut parser, &mut buf).await?;
            if outcome.name() != "success" {
                bail!("SCRAM failed for {user}: {}", outcome.to_xml());
            }
            client.handle_server_final(&b64.decode(outcome.text())?)?;
            if let (Some(s), Ok(mut cache)) = (client.salted_password(), t.scram_cache.lock()) {
                cache.insert(user.clone(), s.clone());
            }
        }
    }
    open(&mut io, &mut parser, &mut buf, &t.domain).await?;
    send(
        &mut io,
        &format!(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        ),
    )
    .await?;
    let iq = expect(&mut io, &mut parser, &mut buf, "iq").await?;
    let jid = iq
        .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .and_then(|b| b.get_child("jid", "urn:ietf:params:xml:ns:xmpp-bind"))
        .map(|j| j.text())
        .ok_or_else(|| anyhow!("bind failed for {user}: {}", iq.to_xml()))?;
    if presence {
        send(&mut io, "<presence/>").await?;
    }
    Ok(Session { io, parser, jid })
}

/// Registers user `i` in band (XEP-0077); an existing account is fine.
pub async fn register(t: &Target, i: usize) -> Result<()> {
    let (mut io, mut parser, _) = pre_auth(t, i).await?;
    let mut buf = vec![0u8; 4096];
    send(
        &mut io,
        &format!(
            "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>\
             <username>{}</username><password>{}</password></query></iq>",
            t.user(i),
            t.password
        ),
    )
    .await?;
    let iq = expect(&mut io, &mut parser, &mut buf, "iq").await?;
    let _ = send(&mut io, "</stream:stream>").await;
    match iq.attr("type") {
        Some("result") => Ok(()),
        _ if iq.to_xml().contains("conflict") => Ok(()),
        _ => bail!("registering {} failed: {}", t.user(i), iq.to_xml()),
    }
}

pub fn tls_connector() -> Result<tokio_rustls::TlsConnector> {
    Ok(chorus_bench::tls::connector(None, false)?)
}
