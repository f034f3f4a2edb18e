//! Opening an outgoing stream up to authentication: resolution, TCP,
//! the stream header, STARTTLS (RFC 6120 §5) or direct TLS (XEP-0368),
//! and the features of the encrypted stream. Sequential code: nothing else
//! happens on a stream before TLS.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use chorus_proto::{ns, StanzaErrorCondition};
use chorus_xml::{escape_attr, Element, StreamEvent, StreamParser};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::resolve::Target;
use crate::S2sContext;

/// An outgoing stream ready to authenticate.
pub struct Conn {
    pub read: Box<dyn AsyncRead + Send + Unpin>,
    pub write: Box<dyn AsyncWrite + Send + Unpin>,
    /// Past the remote's header and features.
    pub parser: StreamParser,
    /// The remote's stream id.
    pub stream_id: String,
    pub features: Element,
    /// The remote's header declared the dialback namespace.
    pub dialback_declared: bool,
    /// The remote's certificate verifies for its domain.
    pub verified: bool,
    /// The TLS version, or empty without TLS.
    pub tls: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no address of the domain answered: {0}")]
    Unreachable(String),
    #[error("timed out")]
    Timeout,
    #[error("the remote server offers no TLS, and s2s.require_tls is on")]
    NoTls,
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("stream error from the remote: {0}")]
    Remote(String),
    #[error("the remote server broke the protocol: {0}")]
    Protocol(String),
    #[error("connection lost: {0}")]
    Io(#[from] io::Error),
}

impl ConnectError {
    /// The condition the waiting stanzas bounce with (RFC 6120 §8.3.3).
    pub fn condition(&self) -> StanzaErrorCondition {
        match self {
            ConnectError::Timeout => StanzaErrorCondition::RemoteServerTimeout,
            _ => StanzaErrorCondition::RemoteServerNotFound,
        }
    }

    pub fn text(&self) -> &'static str {
        match self {
            ConnectError::NoTls => "the remote server does not offer TLS",
            ConnectError::Tls(_) => "TLS with the remote server failed",
            _ => "",
        }
    }
}

/// The initiating entity's header (RFC 6120 §4.7), dialback declared.
pub fn header(local: &str, remote: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
         from='{}' to='{}' version='1.0'>",
        escape_attr(local),
        escape_attr(remote)
    )
}

enum Net {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Net {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Net::Plain(s) => s.write_all(bytes).await,
            Net::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Net::Plain(s) => s.read(buf).await,
            Net::Tls(s) => s.read(buf).await,
        }
    }
}

/// Tries every target of `remote` in order.
pub async fn connect(
    ctx: &Arc<S2sContext>,
    local: &str,
    remote: &str,
) -> Result<Conn, ConnectError> {
    let targets = match ctx.hosts.get(remote) {
        Some(addr) => vec![Target {
            host: remote.to_owned(),
            port: addr.port(),
            direct_tls: false,
            addr: Some(*addr),
        }],
        None => ctx.resolver.targets(&crate::ascii(remote)).await,
    };
    let mut last = ConnectError::Unreachable(remote.to_owned());
    for target in targets {
        match attempt(ctx, local, remote, &target).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                tracing::debug!(remote, host = %target.host, port = target.port, error = %e, "s2s target failed");
                last = e;
            }
        }
    }
    Err(last)
}

async fn tcp(target: &Target) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<SocketAddr> = match target.addr {
        Some(a) => vec![a],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| ConnectError::Unreachable(format!("{}: {e}", target.host)))?
            .collect(),
    };
    let mut last = ConnectError::Unreachable(target.host.clone());
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = ConnectError::Unreachable(format!("{addr}: {e}")),
        }
    }
    Err(last)
}

async fn tls(
    ctx: &S2sContext,
    local: &str,
    remote: &str,
    tcp: TcpStream,
    direct: bool,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let cert = ctx.c2s.tls().map(|t| t.certified_key(local));
    let config = crate::verify::client_config(cert, direct)
        .ok_or_else(|| ConnectError::Tls("no TLS client configuration".to_owned()))?;
    let name = rustls::pki_types::ServerName::try_from(crate::ascii(remote))
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls(e.to_string()))
}

async fn next_event(net: &mut Net, parser: &mut StreamParser) -> Result<StreamEvent, ConnectError> {
    let mut buf = [0u8; 4096];
    loop {
        match parser.next_event() {
            Ok(Some(StreamEvent::Element(el))) if el.is("error", ns::STREAM) => {
                let condition = el
                    .children()
                    .next()
                    .map(|c| c.name().to_owned())
                    .unwrap_or_default();
                return Err(ConnectError::Remote(condition));
            }
            Ok(Some(ev)) => return Ok(ev),
            Ok(None) => {}
            Err(e) => return Err(ConnectError::Protocol(e.detail)),
        }
        let n = net.read(&mut buf).await?;
        if n == 0 {
            return Err(ConnectError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        parser.feed(&buf[..n]);
    }
}

/// Sends our header and reads the remote's header and features:
/// (stream id, dialback declared, features).
async fn open(
    net: &mut Net,
    parser: &mut StreamParser,
    local: &str,
    remote: &str,
) -> Result<(String, bool, Element), ConnectError> {
    net.write(header(local, remote).as_bytes()).await?;
    let (id, db) = match next_event(net, parser).await? {
        StreamEvent::Header(h) => {
            if h.ns != ns::STREAM || h.default_ns != ns::JABBER_SERVER {
                return Err(ConnectError::Protocol(
                    "not a jabber:server stream".to_owned(),
                ));
            }
            let db = h
                .prefixes
                .iter()
                .any(|(p, uri)| p == "db" && uri == crate::dialback::NS);
            (h.attr("id").unwrap_or_default().to_owned(), db)
        }
        _ => {
            return Err(ConnectError::Protocol(
                "expected a stream header".to_owned(),
            ))
        }
    };
    match next_event(net, parser).await? {
        StreamEvent::Element(f) if f.is("features", ns::STREAM) => Ok((id, db, f)),
        _ => Err(ConnectError::Protocol(
            "expected stream features".to_owned(),
        )),
    }
}

async fn attempt(
    ctx: &Arc<S2sContext>,
    local: &str,
    remote: &str,
    target: &Target,
) -> Result<Conn, ConnectError> {
    let stream = tcp(target).await?;
    let mut parser = StreamParser::new(ctx.c2s.limits());
    parser.set_authenticated(true);
    let mut net = if target.direct_tls {
        Net::Tls(Box::new(tls(ctx, local, remote, stream, true).await?))
    } else {
        Net::Plain(stream)
    };
    let (mut id, mut db, mut features) = open(&mut net, &mut parser, local, remote).await?;
    if let Net::Plain(_) = net {
        if features.get_child("starttls", ns::TLS).is_some() {
            net.write(format!("<starttls xmlns='{}'/>", ns::TLS).as_bytes())
                .await?;
            match next_event(&mut net, &mut parser).await? {
                StreamEvent::Element(p) if p.is("proceed", ns::TLS) => {}
                _ => return Err(ConnectError::Tls("STARTTLS refused".to_owned())),
            }
            let Net::Plain(stream) = net else {
                return Err(ConnectError::Tls("unexpected state".to_owned()));
            };
            net = Net::Tls(Box::new(tls(ctx, local, remote, stream, false).await?));
            parser.reset();
            (id, db, features) = open(&mut net, &mut parser, local, remote).await?;
        } else if !ctx.config().plaintext_ok(remote) {
            return Err(ConnectError::NoTls);
        }
    }
    let (verified, tls_version, read, write): (
        bool,
        String,
        Box<dyn AsyncRead + Send + Unpin>,
        Box<dyn AsyncWrite + Send + Unpin>,
    ) = match net {
        Net::Plain(s) => {
            let (r, w) = s.into_split();
            (false, String::new(), Box::new(r), Box::new(w))
        }
        Net::Tls(s) => {
            let conn = s.get_ref().1;
            let chain: Vec<_> = conn
                .peer_certificates()
                .map(|c| c.to_vec())
                .unwrap_or_default();
            let verified = ctx.verifier.verifies(&chain, &crate::ascii(remote));
            let version = conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            let (r, w) = tokio::io::split(*s);
            (verified, version, Box::new(r), Box::new(w))
        }
    };
    if id.is_empty() {
        return Err(ConnectError::Protocol(
            "the stream header has no id".to_owned(),
        ));
    }
    Ok(Conn {
        read,
        write,
        parser,
        stream_id: id,
        features,
        dialback_declared: db,
        verified,
        tls: tls_version,
    })
}
