//! Serialization from the tree, with correct escaping and minimal namespace
//! declarations: an element declares `xmlns` only when its namespace differs
//! from the one in scope, so `<message/>` inside a `jabber:client` stream is
//! written without any declaration.

use crate::element::{split_attr_key, Element, Node};

/// The namespaces in scope where an element is written.
#[derive(Clone, Copy, Debug)]
pub struct NsContext<'a> {
    /// The default namespace in scope (`jabber:client` for stanzas of a c2s stream).
    pub default_ns: &'a str,
    /// Prefixes declared by an ancestor, as (prefix, uri): `("stream", STREAM_NS)`.
    pub prefixes: &'a [(&'a str, &'a str)],
}

impl<'a> NsContext<'a> {
    /// No namespace in scope: the element declares everything it uses.
    pub const fn standalone() -> NsContext<'static> {
        NsContext {
            default_ns: "",
            prefixes: &[],
        }
    }

    /// The context of a top-level element in a stream whose header declared
    /// `xmlns=default_ns` and `xmlns:stream`.
    pub const fn stream(default_ns: &'a str) -> NsContext<'a> {
        NsContext {
            default_ns,
            prefixes: &[("stream", crate::STREAM_NS)],
        }
    }
}

pub(crate) fn write_element(el: &Element, out: &mut Vec<u8>, ctx: &NsContext<'_>) {
    out.push(b'<');
    let prefix = if el.ns() == ctx.default_ns {
        None
    } else {
        ctx.prefixes
            .iter()
            .find(|(_, uri)| *uri == el.ns())
            .map(|(p, _)| *p)
    };
    let declare_default = el.ns() != ctx.default_ns && prefix.is_none();
    if let Some(p) = prefix {
        out.extend_from_slice(p.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(el.name().as_bytes());
    if declare_default {
        out.extend_from_slice(b" xmlns='");
        escape_attr_into(el.ns(), out);
        out.push(b'\'');
    }
    let mut generated = 0usize;
    for (key, value) in el.attrs() {
        out.push(b' ');
        match split_attr_key(key) {
            (Some(uri), local) if uri != crate::XML_NS => {
                // Rare in XMPP; a fresh prefix per attribute keeps this simple.
                let p = format!("ns{generated}");
                generated += 1;
                out.extend_from_slice(b"xmlns:");
                out.extend_from_slice(p.as_bytes());
                out.extend_from_slice(b"='");
                escape_attr_into(uri, out);
                out.extend_from_slice(b"' ");
                out.extend_from_slice(p.as_bytes());
                out.push(b':');
                out.extend_from_slice(local.as_bytes());
            }
            _ => out.extend_from_slice(key.as_bytes()),
        }
        out.extend_from_slice(b"='");
        escape_attr_into(value, out);
        out.push(b'\'');
    }
    if el.nodes().is_empty() {
        out.extend_from_slice(b"/>");
        return;
    }
    out.push(b'>');
    let inner = NsContext {
        default_ns: if prefix.is_some() {
            ctx.default_ns
        } else {
            el.ns()
        },
        prefixes: ctx.prefixes,
    };
    for node in el.nodes() {
        match node {
            Node::Element(c) => write_element(c, out, &inner),
            Node::Text(t) => escape_text_into(t, out),
        }
    }
    out.extend_from_slice(b"</");
    if let Some(p) = prefix {
        out.extend_from_slice(p.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(el.name().as_bytes());
    out.push(b'>');
}

/// Escapes character data. `\r` is written as a reference so that it survives
/// the XML line-end normalization of whoever parses it.
pub fn escape_text(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    escape_text_into(s, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Escapes an attribute value for single quotes; whitespace other than space
/// is written as references so that attribute normalization keeps it.
pub fn escape_attr(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    escape_attr_into(s, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn escape_text_into(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |b| match b {
        b'&' => Some(&b"&amp;"[..]),
        b'<' => Some(&b"&lt;"[..]),
        b'>' => Some(&b"&gt;"[..]),
        b'\r' => Some(&b"&#13;"[..]),
        _ => None,
    })
}

fn escape_attr_into(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |b| match b {
        b'&' => Some(&b"&amp;"[..]),
        b'<' => Some(&b"&lt;"[..]),
        b'>' => Some(&b"&gt;"[..]),
        b'\'' => Some(&b"&apos;"[..]),
        b'"' => Some(&b"&quot;"[..]),
        b'\t' => Some(&b"&#9;"[..]),
        b'\n' => Some(&b"&#10;"[..]),
        b'\r' => Some(&b"&#13;"[..]),
        _ => None,
    })
}

#[inline]
fn escape_with(s: &str, out: &mut Vec<u8>, map: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(rep) = map(b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(rep);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Element, STREAM_NS};

    #[test]
    fn stanza_in_stream_context_declares_nothing() {
        let msg = Element::new("message", "jabber:client")
            .with_attr("to", "juliet@example.com")
            .with_child(Element::new("body", "jabber:client").with_text("a<b & 'c'"));
        let mut out = Vec::new();
        msg.write_to(&mut out, &NsContext::stream("jabber:client"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<message to='juliet@example.com'><body>a&lt;b &amp; 'c'</body></message>"
        );
    }

    #[test]
    fn child_namespace_declared_once() {
        let iq = Element::new("iq", "jabber:client").with_child(
            Element::new("query", "jabber:iq:roster")
                .with_child(Element::new("item", "jabber:iq:roster").with_attr("jid", "a@b")),
        );
        let mut out = Vec::new();
        iq.write_to(&mut out, &NsContext::stream("jabber:client"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<iq><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>"
        );
    }

    #[test]
    fn stream_elements_use_the_stream_prefix() {
        let f = Element::new("features", STREAM_NS)
            .with_child(Element::new("starttls", "urn:ietf:params:xml:ns:xmpp-tls"));
        let mut out = Vec::new();
        f.write_to(&mut out, &NsContext::stream("jabber:client"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
        );
    }

    #[test]
    fn attribute_escaping_covers_quotes_and_whitespace() {
        assert_eq!(
            escape_attr("a'b\"c\nd<&>"),
            "a&apos;b&quot;c&#10;d&lt;&amp;&gt;"
        );
        assert_eq!(escape_text("x\r\n>"), "x&#13;\n&gt;");
    }
}
