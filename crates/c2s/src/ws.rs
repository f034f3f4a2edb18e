//! XMPP over WebSocket (RFC 7395) under the c2s actors: the message halves
//! the receiver reads and the socket writes, one element per message, and
//! the connection group of an upgraded HTTP connection.
//!
//! The halves are boxed trait objects, so that this crate knows WebSocket
//! messages (`tungstenite`) but not the HTTP server that did the upgrade.

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use chorus_supervisor::{GroupSpec, StartCtx};
use futures_util::{Sink, SinkExt, Stream};

use crate::conn::{start_members, C2sContext, Transport};
use crate::receiver::Input;
use crate::socket::Writer;
use crate::tls::ChannelBindings;

pub use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// The read half of a WebSocket connection.
pub type WsRead = Pin<Box<dyn Stream<Item = Result<WsMessage, WsError>> + Send>>;
/// The write half of a WebSocket connection.
pub type WsWrite = Pin<Box<dyn Sink<WsMessage, Error = WsError> + Send>>;

fn io_err(e: WsError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes `bytes` as one text message per send (`ends` delimits them; all
/// of it as one message when empty), then flushes.
pub(crate) async fn write_messages(
    w: &mut WsWrite,
    bytes: &[u8],
    ends: &[usize],
) -> io::Result<()> {
    let whole = [bytes.len()];
    let ends = if ends.is_empty() { &whole[..] } else { ends };
    let mut start = 0;
    for &end in ends {
        let Some(part) = bytes.get(start..end) else {
            break;
        };
        // Our serializer writes UTF-8; lossy only to never panic.
        let text = String::from_utf8_lossy(part).into_owned();
        w.feed(WsMessage::text(text)).await.map_err(io_err)?;
        start = end;
    }
    w.flush().await.map_err(io_err)
}

/// Ends the WebSocket with a close frame (RFC 6455 §5.5.1), after the
/// `<close/>` the stream already sent (RFC 7395 §3.6). Not the sink's own
/// close, which waits for the peer's close frame on the read half: the
/// connection goes when the group's members do.
pub(crate) async fn close(w: &mut WsWrite) -> io::Result<()> {
    w.send(WsMessage::Close(None)).await.map_err(io_err)
}

/// The `conn-<id>` group of a WebSocket connection: socket, receiver and c2s
/// as for TCP, framed by RFC 7395. `tls` is set when the HTTP connection
/// was TLS (or a trusted proxy's), and the stream starts encrypted.
pub fn websocket_group(
    id: u64,
    peer: Option<std::net::IpAddr>,
    read: WsRead,
    write: WsWrite,
    tls: Option<ChannelBindings>,
    ctx: Arc<C2sContext>,
) -> GroupSpec {
    GroupSpec::new(format!("conn-{id}"), move |sctx: StartCtx| async move {
        let transport = Transport {
            peer,
            input: Input::Ws(read),
            writer: Writer::Ws(write),
            framing: Arc::new(crate::framing::WebSocket),
            tls,
            messages: true,
            // The HTTP listener counted this connection.
            slot: None,
            over_limit: false,
        };
        start_members(id, sctx, transport, ctx).await
    })
}
