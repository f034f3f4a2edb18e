//! The receiver actor: owns the read half and the XML parser.
//!
//! It reads, feeds `chorus-xml`, and hands each event to c2s with a `call`,
//! waiting for c2s's [`Flow`] answer before it parses the next one. At most
//! one event is ever in flight, so a slow c2s stops the reads and the kernel's
//! TCP window pushes back on the peer: the lesson of ejabberd 18.01, which
//! merged its receiver because a receiver parsing at socket speed flooded a
//! slow c2s's mailbox.
//!
//! The answer also carries stream restarts: `Flow::Reset` resets the parser
//! right after the element that caused it (`<starttls/>`, SASL success), so
//! anything the peer pipelined behind it is discarded, as RFC 6120 §5.4.3.3
//! requires for STARTTLS.

use std::io;

use chorus_xml::{Limits, StreamEvent, StreamParser, XmlError};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::tcp::OwnedReadHalf;

use crate::c2s::C2sMsg;

/// Bytes read per wakeup. The buffer lives on the stack only while reading:
/// an idle connection waits in `readable()` and holds no read buffer at all.
const READ_CHUNK: usize = 4096;

/// What c2s tells the receiver after each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Start a new stream: discard everything buffered.
    Reset,
    /// Authenticated: apply the post-auth stanza limit.
    Authenticated,
    /// The stream is over; read no more.
    Stop,
}

pub enum ReceiverMsg {
    Read,
}

pub struct ReceiverActor;

pub struct ReceiverArgs {
    pub reader: OwnedReadHalf,
    pub c2s: ActorRef<C2sMsg>,
    pub limits: Limits,
}

pub struct ReceiverState {
    reader: OwnedReadHalf,
    parser: StreamParser,
    c2s: ActorRef<C2sMsg>,
}

/// Reads what is available without holding a buffer across an await.
fn read_available(reader: &OwnedReadHalf, parser: &mut StreamParser) -> io::Result<usize> {
    let mut buf = [0u8; READ_CHUNK];
    let n = reader.try_read(&mut buf)?;
    parser.feed(&buf[..n]);
    Ok(n)
}

impl ReceiverState {
    /// Delivers one event to c2s and waits for its answer.
    async fn deliver(&mut self, ev: Result<StreamEvent, XmlError>) -> Flow {
        let res = self
            .c2s
            .call(|reply| C2sMsg::Incoming(Box::new(ev), reply), None)
            .await;
        match res {
            Ok(ractor::rpc::CallResult::Success(flow)) => flow,
            _ => Flow::Stop,
        }
    }
}

impl Actor for ReceiverActor {
    type Msg = ReceiverMsg;
    type State = ReceiverState;
    type Arguments = ReceiverArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ReceiverArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.cast(ReceiverMsg::Read)?;
        Ok(ReceiverState {
            reader: args.reader,
            parser: StreamParser::new(args.limits),
            c2s: args.c2s,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.reader.readable().await.is_err() {
            let _ = state.c2s.cast(C2sMsg::PeerClosed);
            myself.stop(Some("read failed".into()));
            return Ok(());
        }
        match read_available(&state.reader, &mut state.parser) {
            Ok(0) => {
                let _ = state.c2s.cast(C2sMsg::PeerClosed);
                myself.stop(None);
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                myself.cast(ReceiverMsg::Read)?;
                return Ok(());
            }
            Err(_) => {
                let _ = state.c2s.cast(C2sMsg::PeerClosed);
                myself.stop(Some("read failed".into()));
                return Ok(());
            }
        }
        loop {
            let ev = match state.parser.next_event() {
                Ok(None) => break,
                Ok(Some(ev)) => Ok(ev),
                Err(e) => Err(e),
            };
            let failed = ev.is_err();
            match state.deliver(ev).await {
                Flow::Continue => {}
                Flow::Reset => state.parser.reset(),
                Flow::Authenticated => state.parser.set_authenticated(true),
                Flow::Stop => return Ok(()),
            }
            if failed {
                // c2s has sent the stream error; the socket closes the connection.
                return Ok(());
            }
        }
        myself.cast(ReceiverMsg::Read)?;
        Ok(())
    }
}
