//! The socket actor: the only writer of a connection's TCP stream.
//!
//! ractor mailboxes are unbounded, so the bound lives in [`SocketHandle`]:
//! every sender counts the stanzas and bytes it queues in a shared
//! [`OutboundGauge`], and the socket actor uncounts them once written. A peer
//! that stops reading fills the gauge; the next send past the limit marks the
//! queue overflowed, the socket drops what is queued and ends the connection
//! with `policy-violation`, as ejabberd's `max_fsm_queue` does. Every write
//! has a deadline so that a peer that never reads cannot pin the actor.
//!
//! Bytes queue in the gauge's pending buffer, not in the mailbox: a send
//! that finds the buffer empty casts one `Flush`, and the actor writes
//! everything pending with one write. Under load many stanzas then cost one
//! syscall (the per-stanza write was most of the message path's kernel
//! time). Order holds: bytes queued before a control message (STARTTLS
//! hand-over, sync, close) always have a `Flush` ahead of it in the mailbox.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chorus_proto::StreamError;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::framing::Framing;

/// The write side of a connection, as it changes through STARTTLS.
pub enum Writer {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
    /// XMPP over WebSocket (RFC 7395): one text message per element.
    Ws(crate::ws::WsWrite),
    /// Handed to the receiver for a TLS handshake, or not yet there (direct
    /// TLS before its handshake): writes are dropped.
    Detached,
}

/// Queue accounting shared by every sender and the socket actor.
#[derive(Debug)]
pub struct OutboundGauge {
    stanzas: AtomicUsize,
    bytes: AtomicUsize,
    overflowed: AtomicBool,
    max_stanzas: usize,
    max_bytes: usize,
    /// Queued bytes not yet taken by the socket actor, and how many stanzas
    /// they hold.
    pending: Mutex<Pending>,
    /// Keep where each send ends: a message-based transport (WebSocket)
    /// writes each as a message of its own.
    messages: bool,
}

/// What the senders queued for the socket actor.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    sends: usize,
    /// Where each send ends in `bytes`, when the gauge keeps messages.
    ends: Vec<usize>,
}

impl OutboundGauge {
    pub fn new(max_stanzas: usize, max_bytes: usize) -> Self {
        OutboundGauge {
            stanzas: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
            max_stanzas,
            max_bytes,
            pending: Mutex::new(Pending::default()),
            messages: false,
        }
    }

    /// A gauge that keeps each send a message of its own (WebSocket).
    pub fn messages(mut self) -> Self {
        self.messages = true;
        self
    }

    /// Stanzas queued and not yet written.
    pub fn queued(&self) -> usize {
        self.stanzas.load(Ordering::Relaxed)
    }

    /// The queue overflowed: the connection ended with `policy-violation`.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    fn done(&self, stanzas: usize, len: usize) {
        self.stanzas.fetch_sub(stanzas, Ordering::Relaxed);
        self.bytes.fetch_sub(len, Ordering::Relaxed);
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Nothing under the lock can panic half-way through a change.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends to the pending bytes; true when they were empty (the socket
    /// actor must be woken).
    fn push(&self, bytes: Vec<u8>) -> bool {
        let mut p = self.pending();
        let was_empty = p.sends == 0;
        if p.bytes.is_empty() {
            p.bytes = bytes;
        } else {
            p.bytes.extend_from_slice(&bytes);
        }
        p.sends += 1;
        if self.messages {
            let end = p.bytes.len();
            p.ends.push(end);
        }
        was_empty
    }

    /// Takes everything pending and uncounts it: the bytes, and where each
    /// send ends when the gauge keeps messages.
    fn take(&self) -> (Vec<u8>, Vec<usize>) {
        let p = std::mem::take(&mut *self.pending());
        self.done(p.sends, p.bytes.len());
        (p.bytes, p.ends)
    }
}

pub enum SocketMsg {
    /// Write what is pending in the gauge.
    Flush,
    /// STARTTLS: give the plain write half back (after everything queued
    /// before it, `<proceed/>` included, has been written).
    TakeWriter(RpcReplyPort<Option<OwnedWriteHalf>>),
    /// TLS is up: write through it from now on.
    Upgrade(Box<WriteHalf<TlsStream<TcpStream>>>),
    /// The queue overflowed: write `policy-violation` and close.
    Overflow,
    /// Flush and close the connection (after a closing `</stream:stream>`).
    Close,
    /// Answered once everything queued before it has been written (or the
    /// connection failed): "delete offline messages only after they are
    /// written" needs to know.
    Sync(RpcReplyPort<bool>),
}

/// Why a send did not queue.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// This send overflowed the queue: the connection is now being closed.
    OverflowNow,
    /// The queue overflowed earlier; the connection is being closed.
    Overflow,
    /// The socket actor is gone.
    Closed,
}

/// A cheap, cloneable way to queue bytes on one connection.
#[derive(Clone)]
pub struct SocketHandle {
    actor: ActorRef<SocketMsg>,
    gauge: Arc<OutboundGauge>,
}

impl SocketHandle {
    /// The socket actor (the receiver talks to it directly for STARTTLS).
    pub fn actor(&self) -> &ActorRef<SocketMsg> {
        &self.actor
    }

    pub fn new(actor: ActorRef<SocketMsg>, gauge: Arc<OutboundGauge>) -> Self {
        SocketHandle { actor, gauge }
    }

    pub fn gauge(&self) -> &Arc<OutboundGauge> {
        &self.gauge
    }

    /// Queues bytes for writing, enforcing the outbound limits.
    pub fn send(&self, bytes: Vec<u8>) -> Result<(), SendError> {
        let g = &self.gauge;
        if g.overflowed.load(Ordering::Relaxed) {
            return Err(SendError::Overflow);
        }
        let len = bytes.len();
        let stanzas = g.stanzas.fetch_add(1, Ordering::Relaxed) + 1;
        let total = g.bytes.fetch_add(len, Ordering::Relaxed) + len;
        if stanzas > g.max_stanzas || total > g.max_bytes {
            g.done(1, len);
            if !g.overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    stanzas,
                    bytes = total,
                    "outbound queue overflow; closing connection"
                );
                let _ = self.actor.cast(SocketMsg::Overflow);
                return Err(SendError::OverflowNow);
            }
            return Err(SendError::Overflow);
        }
        if g.push(bytes) {
            self.actor.cast(SocketMsg::Flush).map_err(|_| {
                let _ = g.take();
                SendError::Closed
            })?;
        }
        Ok(())
    }

    /// Waits until everything queued so far has been written. False if the
    /// connection failed or overflowed meanwhile.
    pub async fn sync(&self) -> bool {
        matches!(
            self.actor.call(SocketMsg::Sync, None).await,
            Ok(ractor::rpc::CallResult::Success(true))
        )
    }

    /// Asks the socket to flush what is queued and close.
    pub fn close(&self) {
        let _ = self.actor.cast(SocketMsg::Close);
    }
}

pub struct SocketActor;

pub struct SocketArgs {
    pub writer: Writer,
    /// How long one write may stall before the connection is declared dead.
    pub write_timeout: Duration,
    pub gauge: Arc<OutboundGauge>,
    /// How the stream error is framed if the queue overflows.
    pub framing: Arc<dyn Framing>,
    /// The connection's place in its listener's per-address count, held
    /// while the connection is (the socket ends with it).
    pub slot: Option<chorus_listener::IpSlot>,
}

pub struct SocketState {
    /// Dropping the state (normal exit, kill, or group shutdown) drops the
    /// write half, which is what closes our side of the connection.
    writer: Writer,
    gauge: Arc<OutboundGauge>,
    /// Serializes the overflow error when it happens: holding it
    /// pre-serialized cost every idle connection a few hundred bytes.
    framing: Arc<dyn Framing>,
    write_timeout: Duration,
    _slot: Option<chorus_listener::IpSlot>,
}

impl SocketState {
    /// Writes `bytes`; on a WebSocket, as one message per send, which
    /// `ends` delimits (all of it as one message when empty).
    async fn write(&mut self, bytes: &[u8], ends: &[usize]) -> bool {
        let io = async {
            match &mut self.writer {
                Writer::Plain(w) => w.write_all(bytes).await,
                Writer::Tls(w) => {
                    w.write_all(bytes).await?;
                    w.flush().await
                }
                Writer::Ws(w) => crate::ws::write_messages(w, bytes, ends).await,
                Writer::Detached => Ok(()),
            }
        };
        matches!(
            tokio::time::timeout(self.write_timeout, io).await,
            Ok(Ok(()))
        )
    }

    async fn shutdown(&mut self) {
        let io = async {
            match &mut self.writer {
                Writer::Plain(w) => w.shutdown().await,
                Writer::Tls(w) => w.shutdown().await,
                Writer::Ws(w) => crate::ws::close(w).await,
                Writer::Detached => Ok(()),
            }
        };
        let _ = tokio::time::timeout(self.write_timeout, io).await;
    }
}

impl Actor for SocketActor {
    type Msg = SocketMsg;
    type State = SocketState;
    type Arguments = SocketArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SocketArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SocketState {
            writer: args.writer,
            gauge: args.gauge,
            framing: args.framing,
            _slot: args.slot,
            write_timeout: args.write_timeout,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SocketMsg::Flush => {
                let (bytes, ends) = state.gauge.take();
                if bytes.is_empty() || state.gauge.overflowed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if !state.write(&bytes, &ends).await {
                    myself.stop(Some("write failed".into()));
                }
            }
            SocketMsg::TakeWriter(reply) => {
                let writer = match std::mem::replace(&mut state.writer, Writer::Detached) {
                    Writer::Plain(w) => Some(w),
                    other => {
                        state.writer = other;
                        None
                    }
                };
                let _ = reply.send(writer);
            }
            SocketMsg::Upgrade(w) => state.writer = Writer::Tls(*w),
            SocketMsg::Sync(reply) => {
                let ok = !matches!(state.writer, Writer::Detached)
                    && !state.gauge.overflowed.load(Ordering::Relaxed);
                let _ = reply.send(ok);
            }
            SocketMsg::Overflow => {
                // What is queued will not be written.
                let _ = state.gauge.take();
                let mut err = Vec::new();
                state.framing.element(
                    &StreamError::PolicyViolation.to_element(Some("outbound queue overflow")),
                    &mut err,
                );
                let error_end = err.len();
                state.framing.footer(&mut err);
                let end = err.len();
                state.write(&err, &[error_end, end]).await;
                state.shutdown().await;
                myself.stop(Some("outbound queue overflow".into()));
            }
            SocketMsg::Close => {
                state.shutdown().await;
                myself.stop(None);
            }
        }
        Ok(())
    }
}
