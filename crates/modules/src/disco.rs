//! XEP-0030: Service Discovery (version 2.5) for the server and for
//! accounts, and the XEP-0115 (version 1.6) verification string of the
//! server's own capabilities, which c2s puts in the stream features.

use base64::Engine;
use chorus_proto::ns;
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use sha1::Digest;

use crate::{IqCtx, IqReply, IqSpec, Module, ModuleInfo, StreamCtx, StreamFeature, Support, Xep};

pub struct Disco;

/// The server's identity (XEP-0030 registry: server/im).
const SERVER_IDENTITY: (&str, &str, &str) = ("server", "im", "Chorus");

fn info(identity: (&str, &str, &str), features: &[&str]) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO);
    let (category, typ, name) = identity;
    let mut id = Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", category)
        .with_attr("type", typ);
    if !name.is_empty() {
        id.set_attr("name", name);
    }
    q.push(id);
    for f in features {
        q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
    }
    q
}

/// Features of the server itself: what the modules declare, plus disco.
fn server_features(module_features: &[&'static str]) -> Vec<&'static str> {
    let mut f: Vec<&'static str> = module_features.to_vec();
    f.push(ns::DISCO_INFO);
    f.push(ns::DISCO_ITEMS);
    f.sort_unstable();
    f.dedup();
    f
}

/// XEP-0115 §5.1: `category/type/lang/name<` for each identity, then
/// `feature<` for each feature, both sorted; SHA-1; base64.
pub fn caps_ver(module_features: &[&'static str]) -> String {
    let (category, typ, name) = SERVER_IDENTITY;
    let mut s = format!("{category}/{typ}//{name}<");
    for f in server_features(module_features) {
        s.push_str(f);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
}

static INFO: ModuleInfo = ModuleInfo {
    name: "disco",
    file: file!(),
    xeps: &[
        Xep {
            number: 30,
            name: "Service Discovery",
            version: "2.5rc3",
            support: Support::Complete,
            note: "",
        },
        Xep {
            number: 115,
            name: "Entity Capabilities",
            version: "1.6.0",
            support: Support::Partial,
            note: "The server advertises its own capabilities; it does not yet query or cache clients' (needed for PEP).",
        },
    ],
    iqs: &[
        IqSpec::anyone("query", ns::DISCO_INFO),
        IqSpec::anyone("query", ns::DISCO_ITEMS),
    ],
    features: &[ns::DISCO_INFO, ns::DISCO_ITEMS],
    stream_features: &[StreamFeature {
        name: "c",
        ns: ns::CAPS,
    }],
    ..ModuleInfo::EMPTY
};

/// XEP-0115 node identifying the software.
pub const CAPS_NODE: &str = "https://chorus.invalid/caps";

impl Module for Disco {
    fn info(&self) -> &'static ModuleInfo {
        &INFO
    }

    /// XEP-0115 §6.3: the server's own capabilities, in every feature list.
    fn stream_features(&self, ctx: &StreamCtx<'_>, out: &mut Vec<Element>) {
        out.push(
            Element::new("c", ns::CAPS)
                .with_attr("hash", "sha-1")
                .with_attr("node", CAPS_NODE)
                .with_attr("ver", ctx.services.caps_ver.as_str()),
        );
    }

    fn handle<'a>(&'a self, ctx: &'a IqCtx<'a>, iq: &'a Element) -> BoxFuture<'a, IqReply> {
        Box::pin(async move {
            if iq.attr("type") != Some("get") {
                return IqReply::Error(chorus_proto::StanzaErrorCondition::BadRequest);
            }
            let Some(q) = iq.children().next() else {
                return IqReply::Error(chorus_proto::StanzaErrorCondition::BadRequest);
            };
            // Nodes are not used by the server or accounts yet.
            if q.attr("node").is_some() {
                return IqReply::Error(chorus_proto::StanzaErrorCondition::ItemNotFound);
            }
            if q.ns() == ns::DISCO_ITEMS {
                // No components or account items are hosted yet.
                return IqReply::Result(Some(Element::new("query", ns::DISCO_ITEMS)));
            }
            match ctx.account {
                // XEP-0030 §... accounts: identity account/registered, and
                // what the server does on the account's behalf (XEP-0313
                // §7 wants MAM advertised on the bare JID).
                Some(_) => IqReply::Result(Some(info(
                    ("account", "registered", ""),
                    &ctx.services.account_features,
                ))),
                None => IqReply::Result(Some(info(
                    SERVER_IDENTITY,
                    &server_features(&ctx.services.features),
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0115 §5.2's example, rebuilt with our formula.
    #[test]
    fn caps_ver_matches_the_xep_example() {
        let s = "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<";
        let ver =
            base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()));
        assert_eq!(ver, "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    #[test]
    fn caps_ver_is_stable_and_feature_sensitive() {
        let a = caps_ver(&[ns::PING]);
        assert_eq!(a, caps_ver(&[ns::PING]));
        assert_ne!(a, caps_ver(&[ns::PING, ns::VERSION]));
    }
}
