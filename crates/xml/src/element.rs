//! The element tree: what a stanza is between the parser and the serializer.
//!
//! Names are stored resolved: an element carries its local name and its
//! namespace URI, never a prefix. Attributes in no namespace (nearly all of
//! them in XMPP) are keyed by their local name; `xml:lang` and friends are keyed
//! `xml:local`; any other namespaced attribute is keyed in Clark notation,
//! `{uri}local`, so that the serializer can declare a prefix for it.

use std::borrow::Cow;

use crate::serialize::{self, NsContext};
use crate::XML_NS;

/// Names and namespaces that occur in nearly every stanza are shared statics
/// rather than one heap string per element: it halves the allocations of a
/// parse and the memory of stored stanzas.
fn intern(s: &str) -> Cow<'static, str> {
    // A `match` rather than a search of a list: it compiles to a dispatch
    // on length and bytes, where a linear search compared against every
    // entry (a visible share of a parse).
    let common: &'static str = match s {
        "" => "",
        "jabber:client" => "jabber:client",
        "jabber:server" => "jabber:server",
        "http://etherx.jabber.org/streams" => "http://etherx.jabber.org/streams",
        "urn:ietf:params:xml:ns:xmpp-stanzas" => "urn:ietf:params:xml:ns:xmpp-stanzas",
        "jabber:iq:roster" => "jabber:iq:roster",
        "http://jabber.org/protocol/caps" => "http://jabber.org/protocol/caps",
        "http://jabber.org/protocol/chatstates" => "http://jabber.org/protocol/chatstates",
        "urn:xmpp:delay" => "urn:xmpp:delay",
        "urn:xmpp:forward:0" => "urn:xmpp:forward:0",
        "urn:xmpp:mam:2" => "urn:xmpp:mam:2",
        "urn:xmpp:sid:0" => "urn:xmpp:sid:0",
        "urn:xmpp:sm:3" => "urn:xmpp:sm:3",
        "urn:xmpp:carbons:2" => "urn:xmpp:carbons:2",
        "vcard-temp:x:update" => "vcard-temp:x:update",
        "message" => "message",
        "presence" => "presence",
        "iq" => "iq",
        "body" => "body",
        "query" => "query",
        "item" => "item",
        "group" => "group",
        "show" => "show",
        "status" => "status",
        "priority" => "priority",
        "error" => "error",
        "thread" => "thread",
        "subject" => "subject",
        "c" => "c",
        "x" => "x",
        "result" => "result",
        "forwarded" => "forwarded",
        "delay" => "delay",
        "stanza-id" => "stanza-id",
        "origin-id" => "origin-id",
        "active" => "active",
        "photo" => "photo",
        _ => return Cow::Owned(s.to_owned()),
    };
    Cow::Borrowed(common)
}

/// [`intern`] for attribute names: the ones nearly every stanza carries.
fn intern_key(s: &str) -> Cow<'static, str> {
    let common: &'static str = match s {
        "to" => "to",
        "from" => "from",
        "id" => "id",
        "type" => "type",
        "xml:lang" => "xml:lang",
        "jid" => "jid",
        "name" => "name",
        "subscription" => "subscription",
        "ask" => "ask",
        "node" => "node",
        "ver" => "ver",
        "hash" => "hash",
        "stamp" => "stamp",
        "by" => "by",
        "queryid" => "queryid",
        "var" => "var",
        "category" => "category",
        "code" => "code",
        "h" => "h",
        _ => return Cow::Owned(s.to_owned()),
    };
    Cow::Borrowed(common)
}

/// A child of an element: another element or character data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An XML element with resolved namespaces.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Element {
    name: Cow<'static, str>,
    ns: Cow<'static, str>,
    /// In document order; keys as described in the module docs.
    attrs: Vec<(Cow<'static, str>, String)>,
    children: Vec<Node>,
}

impl Element {
    /// An empty element `name` in namespace `ns` (`""` for no namespace).
    pub fn new(name: impl AsRef<str>, ns: impl AsRef<str>) -> Self {
        Element {
            name: intern(name.as_ref()),
            ns: intern(ns.as_ref()),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder form of [`Element::set_attr`].
    #[must_use]
    pub fn with_attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(key, value);
        self
    }

    /// Builder form of [`Element::push`].
    #[must_use]
    pub fn with_child(mut self, child: Element) -> Self {
        self.push(child);
        self
    }

    /// Builder form of [`Element::push_text`].
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.push_text(text);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// True when this element is `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `xml:lang` attribute, if any.
    pub fn lang(&self) -> Option<&str> {
        self.attr("xml:lang")
    }

    /// Sets or replaces an attribute, keeping its position when replaced.
    pub fn set_attr(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((Cow::Owned(key), value)),
        }
    }

    /// Appends an attribute the caller knows is not present yet.
    pub(crate) fn push_attr_unchecked(&mut self, key: &str, value: String) {
        self.attrs.push((intern_key(key), value));
    }

    /// Removes an attribute and returns its value.
    pub fn remove_attr(&mut self, key: &str) -> Option<String> {
        let idx = self.attrs.iter().position(|(k, _)| k == key)?;
        Some(self.attrs.remove(idx).1)
    }

    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    pub fn push(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    /// Appends character data, merging with a preceding text node.
    pub fn push_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        if let Some(Node::Text(prev)) = self.children.last_mut() {
            prev.push_str(&text);
        } else {
            self.children.push(Node::Text(text));
        }
    }

    /// [`Element::push_text`] for a borrowed piece: the parser appends each
    /// text run and entity without a string of its own.
    pub(crate) fn append_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Node::Text(prev)) = self.children.last_mut() {
            prev.push_str(text);
        } else {
            self.children.push(Node::Text(text.to_owned()));
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    pub fn nodes_mut(&mut self) -> &mut Vec<Node> {
        &mut self.children
    }

    /// Child elements, skipping text.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn children_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Moves this element and every descendant qualified by `from` into
    /// `to`: a stanza changes content namespace between streams (RFC 6120
    /// §4.8.3: `jabber:server` on a server-to-server stream, `jabber:client`
    /// on a client's), its unqualified children with it.
    pub fn rename_ns(&mut self, from: &str, to: &str) {
        if self.ns == from {
            self.ns = intern(to);
        }
        for child in self.children_mut() {
            child.rename_ns(from, to);
        }
    }

    /// The first child element `name` in namespace `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }

    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children_mut().find(|c| c.is(name, ns))
    }

    /// Removes every child element matching `pred`; returns how many went.
    pub fn remove_children(&mut self, mut pred: impl FnMut(&Element) -> bool) -> usize {
        let before = self.children.len();
        self.children.retain(|n| match n {
            Node::Element(e) => !pred(e),
            Node::Text(_) => true,
        });
        before - self.children.len()
    }

    /// The concatenated character data of the direct text children.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// Serializes as a top-level element of a stream whose default namespace
    /// is `ctx.default_ns`: elements in that namespace need no declaration.
    pub fn write_to(&self, out: &mut Vec<u8>, ctx: &NsContext<'_>) {
        serialize::write_element(self, out, ctx);
    }

    /// Serializes standalone, declaring every namespace it uses.
    pub fn to_xml(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out, &NsContext::standalone());
        // The serializer only writes UTF-8 from `&str` inputs.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Parses one element serialized by [`Element::to_xml`] (or any
    /// standalone element: stored stanzas, private XML, vCards), with the
    /// same restrictions and limits as stream input. Unprefixed elements
    /// without a declaration are in `jabber:client`, as in a client stream.
    pub fn from_xml(xml: &str) -> Result<Element, crate::XmlError> {
        use crate::{Limits, StreamEvent, StreamParser};
        let mut p = StreamParser::new(Limits {
            max_stanza_bytes_preauth: xml.len().max(1024) + 1,
            ..Limits::default()
        });
        p.feed(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
        );
        p.feed(xml.as_bytes());
        let mut found = None;
        loop {
            match p.next_event()? {
                Some(StreamEvent::Element(e)) if found.is_none() => found = Some(e),
                Some(StreamEvent::Header(_)) => {}
                Some(_) => {
                    return Err(crate::XmlError::new(
                        crate::StreamErrorKind::BadFormat,
                        "more than one element",
                    ))
                }
                None => break,
            }
        }
        // Bytes that never completed an element ("<a/><b>"): not one element.
        if p.buffered() > 0 {
            return Err(crate::XmlError::new(
                crate::StreamErrorKind::NotWellFormed,
                "trailing data",
            ));
        }
        found.ok_or_else(|| {
            crate::XmlError::new(crate::StreamErrorKind::NotWellFormed, "incomplete element")
        })
    }

    /// Approximate heap bytes held by the tree, for size accounting.
    pub fn heap_size(&self) -> usize {
        let mut n = self.name.len() + self.ns.len();
        for (k, v) in &self.attrs {
            n += k.len() + v.len();
        }
        for c in &self.children {
            n += match c {
                Node::Element(e) => e.heap_size() + std::mem::size_of::<Node>(),
                Node::Text(t) => t.len() + std::mem::size_of::<Node>(),
            };
        }
        n
    }
}

/// Splits an attribute key into (namespace, local name) per the module docs.
pub(crate) fn split_attr_key(key: &str) -> (Option<&str>, &str) {
    if let Some(local) = key.strip_prefix("xml:") {
        return (Some(XML_NS), local);
    }
    if let Some(rest) = key.strip_prefix('{') {
        // The local name cannot contain '}', a URI may: split at the last.
        if let Some(end) = rest.rfind('}') {
            return (Some(&rest[..end]), &rest[end + 1..]);
        }
    }
    (None, key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn set_attr_replaces_in_place() {
        let mut e = Element::new("message", "jabber:client")
            .with_attr("to", "a@b")
            .with_attr("id", "1");
        e.set_attr("to", "c@d");
        assert_eq!(
            e.attrs().collect::<Vec<_>>(),
            vec![("to", "c@d"), ("id", "1")]
        );
        assert_eq!(e.remove_attr("id").as_deref(), Some("1"));
        assert_eq!(e.attr("id"), None);
    }

    #[test]
    fn text_merges_adjacent_nodes() {
        let e = Element::new("body", "jabber:client")
            .with_text("a")
            .with_text("b");
        assert_eq!(e.nodes().len(), 1);
        assert_eq!(e.text(), "ab");
    }

    #[test]
    fn from_xml_round_trips_to_xml() {
        let e = Element::new("message", "jabber:client")
            .with_attr("to", "a@b")
            .with_child(Element::new("body", "jabber:client").with_text("<hi>"))
            .with_child(Element::new("x", "urn:x"));
        assert_eq!(Element::from_xml(&e.to_xml()).unwrap(), e);
        assert!(Element::from_xml("<a><b></a>").is_err());
        assert!(Element::from_xml("<a/><b/>").is_err());
        assert!(Element::from_xml("<a>").is_err());
        assert!(Element::from_xml("<a/><b>").is_err());
    }

    #[test]
    fn attr_keys_split() {
        assert_eq!(split_attr_key("xml:lang"), (Some(XML_NS), "lang"));
        assert_eq!(split_attr_key("{urn:x}y"), (Some("urn:x"), "y"));
        assert_eq!(split_attr_key("id"), (None, "id"));
    }
}
