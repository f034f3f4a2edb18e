//! XEP-0092: Software Version (version 1.1). The server answers for itself
//! with its name and version.
//!
//! An account's software version is its client's to give: a query to a full
//! JID is routed to that client and never reaches this module. A query to an
//! account's bare JID is one the server must answer on the account's behalf
//! (RFC 6121 §8.5.2.1.3), and the server has nothing true to say about which
//! software a user runs, so it answers `service-unavailable`.

use chorus_proto::{ns, StanzaErrorCondition};
use chorus_xml::Element;
use futures_util::future::BoxFuture;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, Support, Xep};

pub struct Version;

/// The `<query/>` answering a version request.
///
/// There is deliberately no `<os/>`: as XEP-0092's security considerations
/// say, revealing the operating system (and with it, often, its patch
/// level) opens the host to attacks aimed at that system, and the element
/// is optional. Name and version are
/// already public through the XEP-0115 caps node and release notes.
fn version_query(software: (&str, &str)) -> Element {
    let (name, version) = software;
    Element::new("query", ns::VERSION)
        .with_child(Element::new("name", ns::VERSION).with_text(name))
        .with_child(Element::new("version", ns::VERSION).with_text(version))
}

static INFO: ModuleInfo = ModuleInfo {
    name: "version",
    file: file!(),
    xeps: &[Xep {
        number: 92,
        name: "Software Version",
        version: "1.1",
        support: Support::Complete,
        note: "The server's own version; no operating system (the XEP's security considerations).",
    }],
    iqs: &[IqSpec::anyone("query", ns::VERSION)],
    features: &[ns::VERSION],
    ..ModuleInfo::EMPTY
};

impl Module for Version {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            if ctx.account.is_some() {
                return IqReply::Error(StanzaErrorCondition::ServiceUnavailable);
            }
            // XEP-0092 defines only `get`; a `set` asks for something that
            // does not exist.
            if iq.attr("type") != Some("get") {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            IqReply::Result(Some(version_query(ctx.services.software)))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_query_carries_name_and_version_and_no_os() {
        let q = version_query(("Chorus", "1.2.3"));
        assert!(q.is("query", ns::VERSION));
        assert_eq!(q.get_child("name", ns::VERSION).unwrap().text(), "Chorus");
        assert_eq!(q.get_child("version", ns::VERSION).unwrap().text(), "1.2.3");
        assert!(q.get_child("os", ns::VERSION).is_none());
        assert_eq!(q.children().count(), 2);
    }
}
