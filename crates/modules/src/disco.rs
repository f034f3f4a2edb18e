//! XEP-0030: Service Discovery (version 2.5) for the server and for
//! accounts, and the XEP-0115 (version 1.6) verification string of the
//! server's own capabilities, which c2s puts in the stream features.

use base64::Engine;
use chorus_jid::BareJid;
use chorus_proto::{ns, StanzaErrorCondition};
use chorus_xml::Element;
use futures_util::future::BoxFuture;
use sha1::Digest;

use crate::forms::{form_fields, form_type};
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
    caps_ver_with_forms(module_features, &[])
}

/// [`caps_ver`] with the server's XEP-0128 forms, which XEP-0115 §5.4
/// (step 3.6) appends: sorted by FORM_TYPE, each as its FORM_TYPE, then
/// its fields sorted by var, each var followed by its sorted values.
pub fn caps_ver_with_forms(module_features: &[&'static str], forms: &[Element]) -> String {
    let (category, typ, name) = SERVER_IDENTITY;
    let mut s = format!("{category}/{typ}//{name}<");
    for f in server_features(module_features) {
        s.push_str(f);
        s.push('<');
    }
    s.push_str(&forms_string(forms));
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
}

/// The part of the XEP-0115 §5.4 string that extended forms make.
fn forms_string(forms: &[Element]) -> String {
    let mut s = String::new();
    // (FORM_TYPE, [(var, values)]) per form.
    type Form = (String, Vec<(String, Vec<String>)>);
    let mut forms: Vec<Form> = forms
        .iter()
        .map(|x| (form_type(x).unwrap_or_default(), form_fields(x)))
        .collect();
    forms.sort();
    for (form_type, mut fields) in forms {
        s.push_str(&form_type);
        s.push('<');
        fields.sort();
        for (var, mut values) in fields {
            s.push_str(&var);
            s.push('<');
            values.sort();
            for v in values {
                s.push_str(&v);
                s.push('<');
            }
        }
    }
    s
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
            number: 128,
            name: "Service Discovery Extensions",
            version: "1.0",
            support: Support::Complete,
            note: "Data forms in the server's disco#info, from the modules (XEP-0157 contact addresses); they enter its XEP-0115 hash.",
        },
        Xep {
            number: 115,
            name: "Entity Capabilities",
            version: "1.6.0",
            support: Support::Complete,
            note: "The server advertises its own capabilities; for PEP it asks clients for theirs once per verification string, checks the hash and caches it (pubsub/caps.rs).",
        },
    ],
    iqs: &[
        IqSpec::anyone("query", ns::DISCO_INFO),
        IqSpec::anyone("query", ns::DISCO_ITEMS),
    ],
    // XEP-0115 §7: an entity that supports caps advertises the feature.
    features: &[ns::DISCO_INFO, ns::DISCO_ITEMS, ns::CAPS],
    absent_accounts: true,
    stream_features: &[StreamFeature {
        name: "c",
        ns: ns::CAPS,
    }],
    ..ModuleInfo::EMPTY
};

/// XEP-0115 node identifying the software: the project's address, as
/// declared once in the workspace manifest (`repository`).
pub const CAPS_NODE: &str = env!("CARGO_PKG_REPOSITORY");

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
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            }
            let Some(q) = iq.children().next() else {
                return IqReply::Error(StanzaErrorCondition::BadRequest);
            };
            match ctx.account {
                Some(account) => account_query(ctx, account, q).await,
                None => server_query(ctx, q),
            }
        })
    }
}

/// disco#info and disco#items of the server itself.
fn server_query(ctx: &IqCtx<'_>, q: &Element) -> IqReply {
    let node = q.attr("node");
    if q.ns() == ns::DISCO_ITEMS {
        if node.is_some() {
            return IqReply::Error(StanzaErrorCondition::ItemNotFound);
        }
        // The services hosted on domains of their own (route table).
        let mut items = Element::new("query", ns::DISCO_ITEMS);
        for (domain, name) in ctx.router.routes.services() {
            items.push(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", domain)
                    .with_attr("name", name),
            );
        }
        return IqReply::Result(Some(items));
    }
    let mut answer = info(SERVER_IDENTITY, &server_features(&ctx.services.features));
    // XEP-0128: extended information after identities and features.
    for form in &ctx.services.server_forms {
        answer.push(form.clone());
    }
    match node {
        None => {}
        // XEP-0115 §6.2: the node of the server's own advertised caps
        // (`node#ver`) answers with exactly what was hashed, node echoed.
        Some(n) if n == format!("{CAPS_NODE}#{}", ctx.services.caps_ver) => {
            answer.set_attr("node", n);
        }
        Some(_) => return IqReply::Error(StanzaErrorCondition::ItemNotFound),
    }
    IqReply::Result(Some(answer))
}

/// disco#info and disco#items of an account's bare JID, answered by the
/// server on its behalf (XEP-0030 §3.1). XEP-0030 §8: disco#info is
/// `service-unavailable` when the account does not exist or the requester
/// may not see its presence (no subscription), "no matter if the request
/// specifies a node or not", so it tells a stranger nothing; disco#items is
/// an empty result for an account that does not exist.
async fn account_query(ctx: &IqCtx<'_>, account: &BareJid, q: &Element) -> IqReply {
    let pep = ctx.services.account_features.contains(&ns::PUBSUB);
    if q.ns() == ns::DISCO_ITEMS {
        let mut items = Element::new("query", ns::DISCO_ITEMS);
        // XEP-0163 §6.2: the PEP nodes the requester may retrieve from.
        if pep && ctx.account_exists && q.attr("node").is_none() {
            for item in crate::pubsub::account_disco_items(ctx, account).await {
                items.push(item);
            }
        }
        return IqReply::Result(Some(items));
    }
    if !ctx.account_exists {
        return IqReply::Error(StanzaErrorCondition::ServiceUnavailable);
    }
    if let Some(node) = q.attr("node") {
        // A PEP node the requester may retrieve from answers by its own
        // access model (XEP-0060 §5.4), an open one to anybody.
        if pep {
            let answer = crate::pubsub::account_node_info(ctx, account, node).await;
            if !matches!(answer, IqReply::Error(StanzaErrorCondition::ItemNotFound)) {
                return answer;
            }
        }
    }
    if !ctx.may_see_presence_of(account).await {
        return IqReply::Error(StanzaErrorCondition::ServiceUnavailable);
    }
    if q.attr("node").is_some() {
        return IqReply::Error(StanzaErrorCondition::ItemNotFound);
    }
    // Identity account/registered, and what the server does on the
    // account's behalf (XEP-0313 §7 wants MAM advertised on the bare JID;
    // XEP-0163 §6.1 the pubsub/pep identity and features).
    let mut answer = info(
        ("account", "registered", ""),
        &ctx.services.account_features,
    );
    if pep {
        answer.push(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "pubsub")
                .with_attr("type", "pep"),
        );
    }
    IqReply::Result(Some(answer))
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

    /// XEP-0115 §5.3's complex example: its extended form, given with
    /// fields and values out of order, makes the string the XEP states.
    #[test]
    fn forms_are_hashed_as_xep_0115_says() {
        let field = |var: &str, values: &[&str]| {
            let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", var);
            for v in values {
                f.push(Element::new("value", ns::DATA_FORMS).with_text(*v));
            }
            f
        };
        let form = crate::forms::form_head("result", "urn:xmpp:dataforms:softwareinfo")
            .with_child(field("os", &["Mac"]))
            .with_child(field("ip_version", &["ipv6", "ipv4"]))
            .with_child(field("software_version", &["0.11"]))
            .with_child(field("software", &["Psi"]))
            .with_child(field("os_version", &["10.5.1"]));
        assert_eq!(
            forms_string(std::slice::from_ref(&form)),
            "urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<\
             software<Psi<software_version<0.11<"
        );
        // A form changes the server's hash.
        assert_ne!(
            caps_ver_with_forms(&[ns::PING], &[form]),
            caps_ver(&[ns::PING])
        );
    }

    #[test]
    fn caps_ver_is_stable_and_feature_sensitive() {
        let a = caps_ver(&[ns::PING]);
        assert_eq!(a, caps_ver(&[ns::PING]));
        assert_ne!(a, caps_ver(&[ns::PING, ns::VERSION]));
    }
}
