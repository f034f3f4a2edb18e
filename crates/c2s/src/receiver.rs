//! The receiver actor: owns the read half, the TLS handshake and the XML
//! parser.
//!
//! It reads, feeds `chorus-xml`, and hands each event to c2s with a `call`,
//! waiting for c2s's [`Flow`] answer before it parses the next one. At most
//! one event is ever in flight, so a slow c2s stops the reads and the kernel's
//! TCP window pushes back on the peer: the lesson of ejabberd 18.01, which
//! merged its receiver because a receiver parsing at socket speed flooded a
//! slow c2s's mailbox.
//!
//! The answer also carries stream restarts. `Flow::Reset` (SASL success) and
//! `Flow::StartTls` reset the parser right after the element that caused
//! them, so anything the peer pipelined behind it is discarded, as RFC 6120
//! §5.4.3.3 requires for STARTTLS. For STARTTLS the receiver takes the write
//! half back from the socket actor (after `<proceed/>` is written, since the
//! socket handles messages in order), runs the handshake on the reunited
//! stream, keeps the TLS read half and hands the write half back.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;

use chorus_xml::{Limits, StreamErrorKind, StreamEvent, StreamParser, XmlError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::io::{AsyncReadExt, ReadHalf};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::c2s::C2sMsg;
use crate::framing::Framing;
use crate::socket::SocketMsg;
use crate::tls::{ChannelBindings, TlsSetup};

/// Bytes read per wakeup. On plain TCP the buffer lives on the stack only
/// while reading: an idle connection waits in `readable()` and holds none.
const READ_CHUNK: usize = 4096;

/// What c2s tells the receiver after each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Start a new stream (after SASL success): discard everything buffered,
    /// and apply the post-authentication stanza limit.
    Reset,
    /// Authenticated without a stream restart (XEP-0388 SASL2): apply the
    /// post-authentication stanza limit and go on parsing.
    Authenticated,
    /// `<proceed/>` was queued: hand over for the TLS handshake, then start a
    /// new stream.
    StartTls,
    /// The stream is over; read no more.
    Stop,
}

/// The read side, as it changes through STARTTLS.
pub enum Input {
    Plain(OwnedReadHalf),
    /// Direct TLS (XEP-0368): the whole stream until the handshake is done.
    Handshake(TcpStream),
    Tls(ReadHalf<TlsStream<TcpStream>>),
    /// XMPP over WebSocket (RFC 7395): one element per text message.
    Ws(crate::ws::WsRead),
    Gone,
}

pub enum ReceiverMsg {
    Read,
}

/// The stream state machine a receiver feeds: c2s for clients, and the
/// server-to-server and component streams, which reuse the receiver and the
/// socket with machines of their own.
pub trait StreamOwner: ractor::Message + Sized {
    /// One parser event; the reply paces the receiver.
    fn incoming(ev: Box<Result<StreamEvent, XmlError>>, reply: RpcReplyPort<Flow>) -> Self;
    /// TLS is up; the receiver waits for the reply before parsing on.
    fn tls_established(bindings: Box<ChannelBindings>, reply: RpcReplyPort<()>) -> Self;
    /// The peer closed the connection, or reading failed.
    fn peer_closed() -> Self;
}

impl StreamOwner for C2sMsg {
    fn incoming(ev: Box<Result<StreamEvent, XmlError>>, reply: RpcReplyPort<Flow>) -> Self {
        C2sMsg::Incoming(ev, reply)
    }
    fn tls_established(bindings: Box<ChannelBindings>, reply: RpcReplyPort<()>) -> Self {
        C2sMsg::TlsEstablished(bindings, reply)
    }
    fn peer_closed() -> Self {
        C2sMsg::PeerClosed
    }
}

/// The receiver of a stream owned by `M`'s actor.
pub struct ReceiverActor<M = C2sMsg>(PhantomData<fn() -> M>);

impl<M> Default for ReceiverActor<M> {
    fn default() -> Self {
        ReceiverActor(PhantomData)
    }
}

pub struct ReceiverArgs<M = C2sMsg> {
    pub input: Input,
    /// The stream's state machine (c2s, s2s-in, component).
    pub owner: ActorRef<M>,
    pub socket: ActorRef<SocketMsg>,
    pub limits: Limits,
    pub tls: Option<Arc<TlsSetup>>,
    pub handshake_timeout: std::time::Duration,
    /// How the stream is framed: what each parsed unit means.
    pub framing: Arc<dyn Framing>,
}

pub struct ReceiverState<M> {
    input: Input,
    parser: StreamParser,
    owner: ActorRef<M>,
    socket: ActorRef<SocketMsg>,
    tls: Option<Arc<TlsSetup>>,
    handshake_timeout: std::time::Duration,
    /// TLS reads need a buffer across the await (rustls decrypts into it).
    tls_buf: Vec<u8>,
    framing: Arc<dyn Framing>,
    /// The parser's stream header is our own (WebSocket): not the peer's.
    own_header: bool,
}

/// What the receiver feeds its parser before a WebSocket's messages: they
/// are elements of no stream, so they are parsed inside this one, and
/// `<open/>` and `<close/>` arrive as elements (`framing::WebSocket`).
const WS_STREAM: &[u8] =
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Reads what is available without holding a buffer across an await.
fn read_available(reader: &OwnedReadHalf, parser: &mut StreamParser) -> io::Result<usize> {
    let mut buf = [0u8; READ_CHUNK];
    let n = reader.try_read(&mut buf)?;
    parser.feed(&buf[..n]);
    Ok(n)
}

enum ReadResult {
    Data,
    Eof,
    Again,
    Failed,
    /// Input the stream refuses with a stream error (a WebSocket message
    /// that cannot carry XMPP).
    Invalid(XmlError),
}

impl<M: StreamOwner> ReceiverState<M> {
    /// Delivers one event to c2s and waits for its answer.
    async fn deliver(&mut self, ev: Result<StreamEvent, XmlError>) -> Flow {
        let res = self
            .owner
            .call(|reply| M::incoming(Box::new(ev), reply), None)
            .await;
        match res {
            Ok(ractor::rpc::CallResult::Success(flow)) => flow,
            _ => Flow::Stop,
        }
    }

    async fn read(&mut self) -> ReadResult {
        match &mut self.input {
            Input::Plain(r) => {
                if r.readable().await.is_err() {
                    return ReadResult::Failed;
                }
                match read_available(r, &mut self.parser) {
                    Ok(0) => ReadResult::Eof,
                    Ok(_) => ReadResult::Data,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadResult::Again,
                    Err(_) => ReadResult::Failed,
                }
            }
            Input::Tls(r) => {
                if self.tls_buf.len() < READ_CHUNK {
                    self.tls_buf.resize(READ_CHUNK, 0);
                }
                match r.read(&mut self.tls_buf).await {
                    Ok(0) => ReadResult::Eof,
                    Ok(n) => {
                        self.parser.feed(&self.tls_buf[..n]);
                        ReadResult::Data
                    }
                    Err(_) => ReadResult::Failed,
                }
            }
            // Boxed: rustls's handshake state is kilobytes, and inlined it
            // would size every idle receiver's task.
            Input::Handshake(_) => match Box::pin(self.handshake(true)).await {
                true => ReadResult::Again,
                false => ReadResult::Failed,
            },
            Input::Ws(r) => match futures_util::StreamExt::next(r).await {
                Some(Ok(crate::ws::WsMessage::Text(t))) => {
                    self.parser.feed(t.as_bytes());
                    ReadResult::Data
                }
                // RFC 7395 §3.2: XMPP goes in text messages only.
                Some(Ok(crate::ws::WsMessage::Binary(_))) => ReadResult::Invalid(XmlError {
                    kind: StreamErrorKind::BadFormat,
                    detail: "XMPP over WebSocket is sent in text messages (RFC 7395 section 3.2)"
                        .to_owned(),
                }),
                Some(Ok(crate::ws::WsMessage::Close(_))) | None => ReadResult::Eof,
                // Pings are answered by the WebSocket layer.
                Some(Ok(_)) => ReadResult::Again,
                // Larger than any stanza may be: the stream's own limit.
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                    ReadResult::Invalid(XmlError {
                        kind: StreamErrorKind::PolicyViolation,
                        detail: "WebSocket message too large".to_owned(),
                    })
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "WebSocket read failed");
                    ReadResult::Failed
                }
            },
            Input::Gone => ReadResult::Failed,
        }
    }

    /// A WebSocket's parser starts inside a stream of the receiver's own.
    fn open_own_stream(&mut self) {
        if matches!(self.input, Input::Ws(_)) {
            self.parser.feed(WS_STREAM);
            self.own_header = true;
        }
    }

    /// Runs the TLS handshake, direct or after STARTTLS. False when the
    /// connection must end.
    async fn handshake(&mut self, direct: bool) -> bool {
        let Some(tls) = self.tls.clone() else {
            return false;
        };
        let stream = match std::mem::replace(&mut self.input, Input::Gone) {
            Input::Handshake(s) => s,
            Input::Plain(r) => {
                let taken = self.socket.call(SocketMsg::TakeWriter, None).await;
                let Ok(ractor::rpc::CallResult::Success(Some(w))) = taken else {
                    return false;
                };
                match r.reunite(w) {
                    Ok(s) => s,
                    Err(_) => return false,
                }
            }
            _ => return false,
        };
        let config = if direct { &tls.direct } else { &tls.starttls };
        let acceptor = TlsAcceptor::from(config.clone());
        let stream =
            match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "TLS handshake failed");
                    return false;
                }
                Err(_) => {
                    tracing::info!("TLS handshake timed out");
                    return false;
                }
            };
        let bindings = tls.bindings(stream.get_ref().1);
        let (r, w) = tokio::io::split(stream);
        if self.socket.cast(SocketMsg::Upgrade(Box::new(w))).is_err() {
            return false;
        }
        self.input = Input::Tls(r);
        self.parser.reset();
        let told = self
            .owner
            .call(|reply| M::tls_established(Box::new(bindings), reply), None)
            .await;
        matches!(told, Ok(ractor::rpc::CallResult::Success(())))
    }
}

impl<M: StreamOwner> Actor for ReceiverActor<M> {
    type Msg = ReceiverMsg;
    type State = ReceiverState<M>;
    type Arguments = ReceiverArgs<M>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ReceiverArgs<M>,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.cast(ReceiverMsg::Read)?;
        let mut state = ReceiverState {
            input: args.input,
            parser: StreamParser::new(args.limits),
            owner: args.owner,
            socket: args.socket,
            tls: args.tls,
            handshake_timeout: args.handshake_timeout,
            tls_buf: Vec::new(),
            framing: args.framing,
            own_header: false,
        };
        state.open_own_stream();
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match state.read().await {
            ReadResult::Data => {}
            ReadResult::Again => {
                myself.cast(ReceiverMsg::Read)?;
                return Ok(());
            }
            ReadResult::Eof => {
                let _ = state.owner.cast(M::peer_closed());
                myself.stop(None);
                return Ok(());
            }
            ReadResult::Failed => {
                let _ = state.owner.cast(M::peer_closed());
                myself.stop(Some("read failed".into()));
                return Ok(());
            }
            ReadResult::Invalid(e) => {
                // c2s sends the stream error; the socket closes.
                state.deliver(Err(e)).await;
                return Ok(());
            }
        }
        loop {
            let ev = match state.parser.next_event() {
                Ok(None) => break,
                Ok(Some(StreamEvent::Header(_))) if state.own_header => {
                    state.own_header = false;
                    continue;
                }
                Ok(Some(ev)) => state.framing.inbound(ev),
                Err(e) => Err(e),
            };
            let failed = ev.is_err();
            match state.deliver(ev).await {
                Flow::Continue => {}
                Flow::Reset => {
                    state.parser.reset();
                    state.parser.set_authenticated(true);
                    state.open_own_stream();
                }
                Flow::Authenticated => state.parser.set_authenticated(true),
                Flow::StartTls => {
                    if !Box::pin(state.handshake(false)).await {
                        let _ = state.owner.cast(M::peer_closed());
                        myself.stop(Some("STARTTLS failed".into()));
                        return Ok(());
                    }
                    break;
                }
                Flow::Stop => return Ok(()),
            }
            if failed {
                // c2s has sent the stream error; the socket closes the connection.
                return Ok(());
            }
        }
        state.parser.release_idle();
        myself.cast(ReceiverMsg::Read)?;
        Ok(())
    }
}
