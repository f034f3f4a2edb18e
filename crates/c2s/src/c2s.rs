//! The c2s actor: the stream state machine of one client connection
//! (RFC 6120 §4).
//!
//! At this stage it opens the stream (validating the header), advertises the
//! features, and ends the stream with the right error for every hostile input
//! the parser reports. Stanzas before authentication get `not-authorized`
//! (RFC 6120 §4.9.3.12). TLS, SASL and resource binding come in the next
//! increment; until then no feature is advertised and nothing is faked.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use chorus_proto::{ns, StreamError};
use chorus_xml::{Element, NsContext, StreamEvent, StreamHeader, XmlError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::conn::C2sContext;
use crate::receiver::Flow;
use crate::socket::SocketHandle;

pub enum C2sMsg {
    /// One parser event from the receiver; the reply paces the receiver.
    Incoming(Box<Result<StreamEvent, XmlError>>, RpcReplyPort<Flow>),
    /// The peer closed the TCP connection.
    PeerClosed,
    /// The stream header deadline passed.
    HeaderTimeout,
}

pub struct C2sActor;

pub struct C2sArgs {
    pub conn_id: u64,
    pub socket: SocketHandle,
    pub ctx: Arc<C2sContext>,
}

pub struct C2sState {
    conn_id: u64,
    socket: SocketHandle,
    ctx: Arc<C2sContext>,
    /// Our stream header has been sent (an error must follow a header,
    /// RFC 6120 §4.9.1.2).
    header_sent: bool,
    /// The peer's header arrived.
    header_received: bool,
    /// The stream is closing; ignore further input.
    closing: bool,
    /// The domain the peer addressed.
    domain: Option<String>,
}

/// A random stream id (RFC 6120 §4.7.3): unpredictable, not secret.
fn stream_id() -> String {
    let a = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let b = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{a:016x}{b:016x}")
}

impl C2sState {
    fn send(&self, bytes: Vec<u8>) {
        // On overflow the socket is already closing the connection.
        let _ = self.socket.send(bytes);
    }

    fn send_element(&self, el: &Element) {
        let mut out = Vec::with_capacity(256);
        el.write_to(&mut out, &NsContext::stream(ns::JABBER_CLIENT));
        self.send(out);
    }

    fn send_header(&mut self, from: &str) {
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{}' from='{}' version='1.0' xml:lang='en'>",
            ns::JABBER_CLIENT,
            ns::STREAM,
            stream_id(),
            chorus_xml::escape_attr(from),
        );
        self.send(header.into_bytes());
        self.header_sent = true;
    }

    /// Sends a stream error and closes the stream (RFC 6120 §4.9.1.1).
    fn stream_error(&mut self, err: StreamError, text: Option<&str>) -> Flow {
        if self.closing {
            return Flow::Stop;
        }
        tracing::info!(
            conn = self.conn_id,
            condition = err.as_str(),
            text,
            "stream error"
        );
        if !self.header_sent {
            let from = self
                .domain
                .clone()
                .unwrap_or_else(|| self.ctx.domains.first().cloned().unwrap_or_default());
            self.send_header(&from);
        }
        self.send_element(&err.to_element(text));
        self.close();
        Flow::Stop
    }

    fn close(&mut self) {
        self.closing = true;
        self.send(b"</stream:stream>".to_vec());
        self.socket.close();
    }

    fn on_header(&mut self, h: &StreamHeader) -> Flow {
        self.header_received = true;
        // RFC 6120 §4.8.1: the stream element must be in the streams namespace.
        if h.name != "stream" || h.ns != ns::STREAM {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("expected stream:stream"),
            );
        }
        // §4.8.2: a c2s stream's content namespace is jabber:client.
        if h.default_ns != ns::JABBER_CLIENT {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("expected jabber:client"),
            );
        }
        let to = h
            .attr("to")
            .map(|t| t.trim_end_matches('.').to_ascii_lowercase());
        match to {
            Some(d) if self.ctx.domains.contains(&d) => self.domain = Some(d),
            // §4.9.3.6: a 'to' we do not serve (or none at all).
            _ => return self.stream_error(StreamError::HostUnknown, None),
        }
        // §4.7.5: no version means pre-1.0; a major version above ours is unsupported.
        let supported = h
            .attr("version")
            .and_then(|v| v.split_once('.'))
            .and_then(|(major, _)| major.parse::<u32>().ok())
            .is_some_and(|major| major == 1);
        if !supported {
            return self.stream_error(
                StreamError::UnsupportedVersion,
                Some("version 1.0 is required"),
            );
        }
        let domain = self.domain.clone().unwrap_or_default();
        self.send_header(&domain);
        // No stream features are negotiable yet (TLS, SASL and bind land in
        // the next increment): an empty list, never a faked one.
        self.send_element(&Element::new("features", ns::STREAM));
        Flow::Continue
    }
}

impl Actor for C2sActor {
    type Msg = C2sMsg;
    type State = C2sState;
    type Arguments = C2sArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: C2sArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_after(args.ctx.header_timeout, || C2sMsg::HeaderTimeout);
        Ok(C2sState {
            conn_id: args.conn_id,
            socket: args.socket,
            ctx: args.ctx,
            header_sent: false,
            header_received: false,
            closing: false,
            domain: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            C2sMsg::Incoming(ev, reply) => {
                let flow = if state.closing {
                    Flow::Stop
                } else {
                    match *ev {
                        Ok(StreamEvent::Header(h)) => state.on_header(&h),
                        Ok(StreamEvent::Element(_)) => state
                            .stream_error(StreamError::NotAuthorized, Some("authenticate first")),
                        Ok(StreamEvent::End) => {
                            state.close();
                            Flow::Stop
                        }
                        Err(e) => state.stream_error(StreamError::from(e.kind), Some(&e.detail)),
                    }
                };
                let _ = reply.send(flow);
            }
            C2sMsg::PeerClosed => {
                state.closing = true;
                state.socket.close();
            }
            C2sMsg::HeaderTimeout => {
                if !state.header_received {
                    state.stream_error(StreamError::ConnectionTimeout, None);
                }
            }
        }
        Ok(())
    }
}
