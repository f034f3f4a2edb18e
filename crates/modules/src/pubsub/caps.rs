//! XEP-0115 Entity Capabilities (version 1.6), the server's side for PEP:
//! what each client wants notified (`<node>+notify` features, XEP-0163
//! §4.2) comes from its caps. A verification string seen before is looked
//! up; an unknown one is asked for once (disco#info to `node#ver`),
//! checked against its hash (§5.4) and cached for every later session
//! that presents it. A string that does not verify is used for that one
//! session only, never cached.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use chorus_proto::ns;
use chorus_xml::Element;
use dashmap::DashMap;
use sha1::Digest;

/// A client's caps as its presence announces them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CapsRef {
    pub hash: String,
    pub node: String,
    pub ver: String,
}

impl CapsRef {
    /// The `<c/>` of a presence, with the hash algorithm Chorus can check.
    pub fn of(presence: &Element) -> Option<CapsRef> {
        let c = presence.get_child("c", ns::CAPS)?;
        let hash = c.attr("hash")?.to_ascii_lowercase();
        if !matches!(hash.as_str(), "sha-1" | "sha-256") {
            return None;
        }
        Some(CapsRef {
            hash,
            node: c.attr("node").unwrap_or_default().to_owned(),
            ver: c.attr("ver")?.to_owned(),
        })
    }

    fn key(&self) -> (String, String) {
        (self.hash.clone(), self.ver.clone())
    }
}

/// What a client's disco#info says it supports.
#[derive(Debug, Default)]
pub struct Features(HashSet<String>);

impl Features {
    pub fn from_info(info: &Element) -> Features {
        Features(
            info.children()
                .filter(|f| f.is("feature", ns::DISCO_INFO))
                .filter_map(|f| f.attr("var"))
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The client asked for notifications of `node` (XEP-0163 §4.2).
    pub fn notify(&self, node: &str) -> bool {
        self.0.contains(&format!("{node}+notify"))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Kept on a session (`Session::mark`): its client's features.
#[derive(Clone)]
pub struct Interest(pub Arc<Features>);

/// Verified capabilities, shared by every session that presents them.
#[derive(Default)]
pub struct CapsCache {
    known: DashMap<(String, String), Arc<Features>>,
}

impl CapsCache {
    pub fn get(&self, caps: &CapsRef) -> Option<Arc<Features>> {
        self.known.get(&caps.key()).map(|f| f.clone())
    }

    /// Checks a disco#info answer against `caps`; caches it if it verifies.
    /// The features either way, for the session that answered.
    pub fn learn(&self, caps: &CapsRef, info: &Element) -> Arc<Features> {
        let features = Arc::new(Features::from_info(info));
        if verification_string(info)
            .is_some_and(|s| hash(&caps.hash, &s).is_some_and(|h| h == caps.ver))
        {
            self.known.insert(caps.key(), features.clone());
        } else {
            tracing::debug!(ver = %caps.ver, "capabilities do not match their hash; not cached");
        }
        features
    }
}

fn hash(algorithm: &str, s: &str) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match algorithm {
        "sha-1" => Some(b64.encode(sha1::Sha1::digest(s.as_bytes()))),
        "sha-256" => Some(b64.encode(sha2::Sha256::digest(s.as_bytes()))),
        _ => None,
    }
}

/// XEP-0115 §5.1 and §5.4: the string a disco#info answer hashes to, or
/// None when the answer is malformed (a duplicate identity or feature, two
/// forms of one FORM_TYPE, a FORM_TYPE that is not hidden).
pub fn verification_string(info: &Element) -> Option<String> {
    let mut identities = Vec::new();
    let mut features = Vec::new();
    let mut forms: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
    for child in info.children() {
        if child.is("identity", ns::DISCO_INFO) {
            identities.push(format!(
                "{}/{}/{}/{}",
                child.attr("category").unwrap_or_default(),
                child.attr("type").unwrap_or_default(),
                child.lang().unwrap_or_default(),
                child.attr("name").unwrap_or_default()
            ));
        } else if child.is("feature", ns::DISCO_INFO) {
            features.push(child.attr("var").unwrap_or_default().to_owned());
        } else if child.is("x", ns::DATA_FORMS) {
            let mut form_type = None;
            let mut fields = Vec::new();
            for f in child.children().filter(|f| f.is("field", ns::DATA_FORMS)) {
                let var = f.attr("var").unwrap_or_default().to_owned();
                let mut values: Vec<String> = f
                    .children()
                    .filter(|v| v.is("value", ns::DATA_FORMS))
                    .map(Element::text)
                    .collect();
                if var == "FORM_TYPE" {
                    if f.attr("type") != Some("hidden") || values.len() != 1 {
                        return None;
                    }
                    form_type = values.pop();
                } else {
                    values.sort();
                    fields.push((var, values));
                }
            }
            // A form without FORM_TYPE is ignored (§5.4 3.6).
            let Some(form_type) = form_type else { continue };
            fields.sort();
            if forms.insert(form_type, fields).is_some() {
                return None;
            }
        }
    }
    identities.sort();
    features.sort();
    let dup = |v: &[String]| v.windows(2).any(|w| w[0] == w[1]);
    if dup(&identities) || dup(&features) {
        return None;
    }
    let mut s = String::new();
    for i in &identities {
        s.push_str(i);
        s.push('<');
    }
    for f in &features {
        s.push_str(f);
        s.push('<');
    }
    for (form_type, fields) in &forms {
        s.push_str(form_type);
        s.push('<');
        for (var, values) in fields {
            s.push_str(var);
            s.push('<');
            for v in values {
                s.push_str(v);
                s.push('<');
            }
        }
    }
    Some(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// XEP-0115 §5.3, the complex example: identities in two languages and
    /// an extended form; its hash is given by the XEP.
    const COMPLEX: &str = "<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>\
        <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
        <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
        <feature var='http://jabber.org/protocol/caps'/>\
        <feature var='http://jabber.org/protocol/disco#info'/>\
        <feature var='http://jabber.org/protocol/disco#items'/>\
        <feature var='http://jabber.org/protocol/muc'/>\
        <x xmlns='jabber:x:data' type='result'>\
          <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
          <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
          <field var='os'><value>Mac</value></field>\
          <field var='os_version'><value>10.5.1</value></field>\
          <field var='software'><value>Psi</value></field>\
          <field var='software_version'><value>0.11</value></field>\
        </x></query>";

    #[test]
    fn the_xeps_complex_example_verifies() {
        let info = Element::from_xml(COMPLEX).unwrap();
        let s = verification_string(&info).unwrap();
        assert_eq!(hash("sha-1", &s).unwrap(), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
        let cache = CapsCache::default();
        let caps = CapsRef {
            hash: "sha-1".into(),
            node: "http://psi-im.org".into(),
            ver: "q07IKJEyjvHSyhy//CH0CxmKi8w=".into(),
        };
        let f = cache.learn(&caps, &info);
        assert_eq!(f.len(), 4);
        assert!(cache.get(&caps).is_some());
    }

    #[test]
    fn a_wrong_or_malformed_answer_is_not_cached() {
        let info = Element::from_xml(COMPLEX).unwrap();
        let cache = CapsCache::default();
        let caps = CapsRef {
            hash: "sha-1".into(),
            node: "n".into(),
            ver: "forged=".into(),
        };
        let f = cache.learn(&caps, &info);
        assert!(!f.is_empty());
        assert!(cache.get(&caps).is_none());
        let dup = Element::from_xml(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <feature var='a'/><feature var='a'/></query>",
        )
        .unwrap();
        assert!(verification_string(&dup).is_none());
    }

    #[test]
    fn notify_reads_the_plus_notify_feature() {
        let info = Element::from_xml(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <feature var='urn:xmpp:avatar:metadata+notify'/><feature var='urn:xmpp:avatar:data'/></query>",
        )
        .unwrap();
        let f = Features::from_info(&info);
        assert!(f.notify("urn:xmpp:avatar:metadata"));
        assert!(!f.notify("urn:xmpp:avatar:data"));
    }
}
