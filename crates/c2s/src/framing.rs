//! The transport seam: how one XML stream is framed on a connection.
//!
//! The per-connection actors (receiver, c2s, socket) never write stream
//! headers, footers or serialized elements themselves: they ask the
//! connection's [`Framing`], and they hand every unit the peer sent through
//! [`Framing::inbound`]. RFC 6120 over TCP or TLS is [`XmlStream`]: one
//! long XML document opened by `<stream:stream>`. Other framings slot in
//! without touching the state machines: XMPP over WebSocket (RFC 7395)
//! sends `<open/>` and `<close/>` in the framing namespace and one
//! complete element per message, each declaring its own namespace; BOSH
//! (XEP-0206) wraps elements in `<body/>` requests. The content namespace
//! is the framing's too (`jabber:client` for clients, `jabber:server` for
//! server-to-server, `jabber:component:accept` for components), so an s2s
//! stream can reuse the receiver and socket with its own state machine.

use chorus_proto::ns;
use chorus_xml::{escape_attr, Element, NsContext, StreamEvent, StreamHeader, XmlError};

/// The server's side of a stream header.
pub struct OutHeader<'a> {
    /// The domain the server answers as.
    pub from: &'a str,
    /// The stream id (RFC 6120 §4.7.3).
    pub id: &'a str,
    /// The peer's domain, when it named itself (RFC 6120 §4.7.2: server
    /// streams answer with it); client streams leave it out.
    pub to: Option<&'a str>,
}

/// How a stream is framed on its connection (see the module docs).
pub trait Framing: Send + Sync + 'static {
    /// The namespace stanzas are qualified by on this stream.
    fn content_ns(&self) -> &'static str;
    /// Appends the server's stream header (or what stands for it).
    fn header(&self, header: &OutHeader<'_>, out: &mut Vec<u8>);
    /// Appends what ends the stream.
    fn footer(&self, out: &mut Vec<u8>);
    /// Appends one top-level element (a stanza or a nonza).
    fn element(&self, el: &Element, out: &mut Vec<u8>);
    /// What a unit the peer sent means to the stream: the parser's own
    /// events here; a framing whose open and close are elements maps
    /// them to [`StreamEvent::Header`] and [`StreamEvent::End`].
    fn inbound(&self, ev: StreamEvent) -> Result<StreamEvent, XmlError> {
        Ok(ev)
    }
    /// Whether a peer's stream header opens a stream of this framing
    /// (RFC 6120 §4.8.1-§4.8.2: the streams namespace, and the content
    /// namespace as the default).
    fn accepts(&self, h: &StreamHeader) -> Result<(), &'static str>;
    /// Whether STARTTLS may be offered: not where the transport below
    /// (HTTP) already decided about TLS.
    fn starttls(&self) -> bool {
        true
    }
}

/// The framing namespace of XMPP over WebSocket (RFC 7395 §3.3).
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// XMPP over WebSocket (RFC 7395): `<open/>` and `<close/>` in the framing
/// namespace stand for the stream's header and end, and every message is
/// one complete element that declares its own namespaces (§3.3.3), the
/// stream-level ones (`<stream:features/>`, `<stream:error/>`) with the
/// `stream` prefix, as clients (Strophe.js among them) look for it.
///
/// Inbound, the receiver parses the messages inside a stream header of its
/// own, so `<open/>` and `<close/>` arrive as elements and
/// [`Framing::inbound`] turns them into the header and the end.
pub struct WebSocket;

impl Framing for WebSocket {
    fn content_ns(&self) -> &'static str {
        ns::JABBER_CLIENT
    }

    fn header(&self, h: &OutHeader<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<open xmlns='");
        out.extend_from_slice(NS_FRAMING.as_bytes());
        out.extend_from_slice(b"' id='");
        out.extend_from_slice(escape_attr(h.id).as_bytes());
        out.extend_from_slice(b"' from='");
        out.extend_from_slice(escape_attr(h.from).as_bytes());
        out.extend_from_slice(b"' version='1.0' xml:lang='en'/>");
    }

    fn footer(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<close xmlns='");
        out.extend_from_slice(NS_FRAMING.as_bytes());
        out.extend_from_slice(b"'/>");
    }

    fn element(&self, el: &Element, out: &mut Vec<u8>) {
        if el.ns() == ns::STREAM {
            // `<stream:features` + the prefix's declaration + the rest.
            let start = out.len();
            el.write_to(out, &NsContext::stream(""));
            let name_end = start + "<stream:".len() + el.name().len();
            let decl = format!(" xmlns:stream='{}'", ns::STREAM);
            out.splice(name_end..name_end, decl.into_bytes());
        } else {
            el.write_to(out, &NsContext::standalone());
        }
    }

    fn inbound(&self, ev: StreamEvent) -> Result<StreamEvent, XmlError> {
        match ev {
            StreamEvent::Element(el) if el.is("open", NS_FRAMING) => {
                Ok(StreamEvent::Header(StreamHeader {
                    name: "open".to_owned(),
                    ns: NS_FRAMING.to_owned(),
                    default_ns: String::new(),
                    prefixes: Vec::new(),
                    attrs: el
                        .attrs()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                }))
            }
            StreamEvent::Element(el) if el.is("close", NS_FRAMING) => Ok(StreamEvent::End),
            other => Ok(other),
        }
    }

    fn accepts(&self, h: &StreamHeader) -> Result<(), &'static str> {
        if h.name != "open" || h.ns != NS_FRAMING {
            return Err("expected <open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
        }
        Ok(())
    }

    fn starttls(&self) -> bool {
        false
    }
}

/// RFC 6120 §4 over TCP or TLS: one XML document per direction.
pub struct XmlStream {
    content_ns: &'static str,
    /// Further prefixes the header declares (`db` for dialback), as
    /// written in the header and as the serializer uses them: dialback
    /// elements go out as `<db:result/>`, the form every server reads
    /// (XEP-0220 §2.1: some accept no other).
    prefixes: &'static str,
    ns_prefixes: &'static [(&'static str, &'static str)],
}

/// The namespace of server dialback (XEP-0220), declared on s2s stream
/// headers with the `db` prefix: servers (Prosody among them) read the
/// declaration as "dialback spoken here" (XEP-0220 §2.1).
pub const NS_DIALBACK: &str = "jabber:server:dialback";

impl XmlStream {
    /// A client stream (`jabber:client`).
    pub const fn client() -> XmlStream {
        XmlStream {
            content_ns: ns::JABBER_CLIENT,
            prefixes: "",
            ns_prefixes: &[("stream", ns::STREAM)],
        }
    }

    /// A server-to-server stream (`jabber:server`, with `db` declared).
    pub const fn server() -> XmlStream {
        XmlStream {
            content_ns: "jabber:server",
            prefixes: " xmlns:db='jabber:server:dialback'",
            ns_prefixes: &[("stream", ns::STREAM), ("db", NS_DIALBACK)],
        }
    }

    /// An external component's stream (XEP-0114 `jabber:component:accept`).
    pub const fn component() -> XmlStream {
        XmlStream {
            content_ns: "jabber:component:accept",
            prefixes: "",
            ns_prefixes: &[("stream", ns::STREAM)],
        }
    }
}

impl Framing for XmlStream {
    fn content_ns(&self) -> &'static str {
        self.content_ns
    }

    fn header(&self, h: &OutHeader<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='");
        out.extend_from_slice(self.content_ns.as_bytes());
        out.extend_from_slice(b"' xmlns:stream='");
        out.extend_from_slice(ns::STREAM.as_bytes());
        out.extend_from_slice(b"'");
        out.extend_from_slice(self.prefixes.as_bytes());
        out.extend_from_slice(b" id='");
        out.extend_from_slice(escape_attr(h.id).as_bytes());
        out.extend_from_slice(b"' from='");
        out.extend_from_slice(escape_attr(h.from).as_bytes());
        if let Some(to) = h.to {
            out.extend_from_slice(b"' to='");
            out.extend_from_slice(escape_attr(to).as_bytes());
        }
        out.extend_from_slice(b"' version='1.0' xml:lang='en'>");
    }

    fn footer(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"</stream:stream>");
    }

    fn element(&self, el: &Element, out: &mut Vec<u8>) {
        el.write_to(
            out,
            &NsContext {
                default_ns: self.content_ns,
                prefixes: self.ns_prefixes,
            },
        );
    }

    fn accepts(&self, h: &StreamHeader) -> Result<(), &'static str> {
        if h.name != "stream" || h.ns != ns::STREAM {
            return Err("expected stream:stream");
        }
        if h.default_ns != self.content_ns {
            return Err(match self.content_ns {
                ns::JABBER_CLIENT => "expected jabber:client",
                "jabber:server" => "expected jabber:server",
                "jabber:component:accept" => "expected jabber:component:accept",
                _ => "unexpected content namespace",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn websocket_messages_declare_their_namespaces() {
        let f = WebSocket;
        let mut out = Vec::new();
        f.header(
            &OutHeader {
                from: "example.org",
                id: "i1",
                to: None,
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='i1' from='example.org' \
             version='1.0' xml:lang='en'/>"
        );
        let mut out = Vec::new();
        f.element(
            &Element::new("features", ns::STREAM).with_child(Element::new("bind", ns::BIND)),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
        );
        let mut out = Vec::new();
        f.element(&Element::new("message", ns::JABBER_CLIENT), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<message xmlns='jabber:client'/>"
        );
        let open = Element::new("open", NS_FRAMING).with_attr("to", "example.org");
        let StreamEvent::Header(h) = f.inbound(StreamEvent::Element(open)).unwrap() else {
            panic!()
        };
        assert!(f.accepts(&h).is_ok());
        assert_eq!(h.attr("to"), Some("example.org"));
        let close = Element::new("close", NS_FRAMING);
        assert!(matches!(
            f.inbound(StreamEvent::Element(close)).unwrap(),
            StreamEvent::End
        ));
    }

    #[test]
    fn a_client_stream_is_framed_as_rfc_6120_writes_it() {
        let f = XmlStream::client();
        let mut out = Vec::new();
        f.header(
            &OutHeader {
                from: "example.org",
                id: "a'b",
                to: None,
            },
            &mut out,
        );
        f.element(
            &Element::new("message", ns::JABBER_CLIENT).with_attr("to", "x@example.org"),
            &mut out,
        );
        f.footer(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' id='a&apos;b' \
             from='example.org' version='1.0' xml:lang='en'>\
             <message to='x@example.org'/></stream:stream>"
        );
    }

    #[test]
    fn only_a_client_header_opens_a_client_stream() {
        let mut p = chorus_xml::StreamParser::new(chorus_xml::Limits::default());
        p.feed(
            b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
        );
        let Some(StreamEvent::Header(h)) = p.next_event().unwrap() else {
            panic!("no header")
        };
        assert_eq!(
            XmlStream::client().accepts(&h),
            Err("expected jabber:client")
        );
    }
}
