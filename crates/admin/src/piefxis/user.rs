//! One `<user/>` of a XEP-0227 document turned into an account: its
//! credentials (a plaintext password, or version 1.1's SCRAM keys), roster,
//! vCard, private XML and offline messages. Each part is checked as the
//! server checks what a client sends, and whatever does not fit is noted
//! in the report rather than failing the import.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chorus_jid::BareJid;
use chorus_sasl::{ScramCredentials, ScramHash};
use chorus_storage::{
    ImportedAccount, ImportedOffline, ImportedPepNode, PrivateFragment, PubsubItem,
    PubsubSubscription, RosterItem, StoredCredentials, Subscription,
};
use chorus_xml::{Element, Node};

use super::report::{Report, Skip};
use super::{
    describe, is_pie, CLIENT_NS, DELAY_NS, LEGACY_DELAY_NS, PRIVATE_NS, PUBSUB_NS, PUBSUB_OWNER_NS,
    ROSTER_NS, SCRAM_NS, VCARD_NS,
};

/// The largest vCard stored, as the vcard-temp module enforces for clients
/// (`chorus_modules` keeps its constant private).
const MAX_VCARD_BYTES: usize = 64 * 1024;

/// An account read from the file, before its keys are derived.
pub(super) struct Parsed {
    pub(super) account: ImportedAccount,
    /// The plaintext password, if the file had one.
    pub(super) password: Option<String>,
    /// Approximate memory held, for cutting batches.
    pub(super) size: usize,
}

impl Parsed {
    pub(super) fn jid(&self) -> String {
        format!("{}@{}", self.account.localpart, self.account.domain)
    }
}

/// Turns one `<user/>` into an account, noting whatever is skipped.
pub(super) fn parse_user(user: &Element, domain: &str, report: &mut Report) -> Option<Parsed> {
    let Some(name) = user.attr("name") else {
        report.skip(format!("@{domain}"), "account", "<user/> without a name");
        return None;
    };
    let jid = match BareJid::new(Some(name), domain) {
        Ok(j) => j,
        Err(e) => {
            report.skip(
                format!("{name}@{domain}"),
                "account",
                format!("invalid username: {e}"),
            );
            return None;
        }
    };
    let who = jid.to_string();
    let mut account = ImportedAccount {
        localpart: jid.node().unwrap_or_default().to_owned(),
        domain: jid.domain().to_owned(),
        credentials: Vec::new(),
        roster: Vec::new(),
        vcard: None,
        private: Vec::new(),
        offline: Vec::new(),
        pep: Vec::new(),
    };
    for child in user.children() {
        match (child.ns(), child.name()) {
            (SCRAM_NS, "scram-credentials") => match scram_credentials(child) {
                Ok(c) if account.credentials.iter().any(|have| have.hash == c.hash) => report.skip(
                    who.as_str(),
                    format!("SCRAM-{} credentials", c.hash),
                    "listed twice; the first are kept",
                ),
                Ok(c) => account.credentials.push(c),
                Err(reason) => report.skip(who.as_str(), "SCRAM credentials", reason),
            },
            (ROSTER_NS, "query") => roster(child, &who, &mut account.roster, report),
            (VCARD_NS, "vCard") => {
                let xml = child.to_xml();
                if account.vcard.is_some() {
                    report.skip(who.as_str(), "vCard", "a second vCard; the first is kept");
                } else if xml.len() > MAX_VCARD_BYTES {
                    report.skip(
                        who.as_str(),
                        "vCard",
                        format!(
                            "{} bytes, more than the {MAX_VCARD_BYTES} allowed",
                            xml.len()
                        ),
                    );
                } else if child.children().next().is_some() {
                    account.vcard = Some(xml);
                }
            }
            (PRIVATE_NS, "query") => private(child, &who, &mut account.private, report),
            (PUBSUB_OWNER_NS, "pubsub") => pep_owner(child, &who, &mut account.pep, report),
            (PUBSUB_NS, "pubsub") => pep_items(child, &who, &mut account.pep, report),
            (ns, "offline-messages") if is_pie(ns) => {
                offline(child, &who, jid.domain(), &mut account.offline, report)
            }
            _ => report.skip(
                who.as_str(),
                describe(child),
                "not supported by this server",
            ),
        }
    }
    let mut password = user
        .attr("password")
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    // MongooseIM (and ejabberd_auth_http) serialize SCRAM into the password
    // field; taken as a password it would lock the user out.
    if password
        .as_deref()
        .is_some_and(|p| p.starts_with("==SCRAM==,") || p.starts_with("==MULTI_SCRAM==,"))
    {
        password = None;
        report.skip(
            who.as_str(),
            "password",
            "serialized SCRAM (MongooseIM's format), not a password",
        );
    }
    Some(Parsed {
        account,
        password,
        size: user.heap_size(),
    })
}

/// XEP-0227 1.1 `<scram-credentials/>`, for the hashes this server offers.
fn scram_credentials(el: &Element) -> Result<StoredCredentials, String> {
    let mechanism = el.attr("mechanism").unwrap_or_default();
    let hash = match mechanism {
        "SCRAM-SHA-1" => ScramHash::Sha1,
        "SCRAM-SHA-256" => ScramHash::Sha256,
        other => {
            return Err(format!(
                "mechanism '{other}' is not offered here (SCRAM-SHA-1 and SCRAM-SHA-256 are)"
            ))
        }
    };
    let text = |name: &str| -> Result<String, String> {
        el.get_child(name, SCRAM_NS)
            .map(|c| c.text().trim().to_owned())
            .ok_or_else(|| format!("{mechanism}: no <{name}/>"))
    };
    let iterations: u32 = text("iter-count")?
        .parse()
        .map_err(|_| format!("{mechanism}: <iter-count/> is not a number"))?;
    if iterations == 0 {
        return Err(format!("{mechanism}: <iter-count/> is 0"));
    }
    let decode = |name: &str| -> Result<Vec<u8>, String> {
        B64.decode(text(name)?)
            .map_err(|_| format!("{mechanism}: <{name}/> is not base64"))
    };
    let mut salt = decode("salt")?;
    let mut server_key = decode("server-key")?;
    let mut stored_key = decode("stored-key")?;
    let len = hash.output_len();
    if server_key.len() != len || stored_key.len() != len {
        // ejabberd (checked with 23.01) base64-encodes values it already
        // keeps base64-encoded: decode once more, and take it only if the
        // keys then have exactly the hash's length.
        let again = |v: &[u8]| B64.decode(v).ok();
        match (again(&salt), again(&server_key), again(&stored_key)) {
            (Some(s), Some(k), Some(t)) if k.len() == len && t.len() == len => {
                salt = s;
                server_key = k;
                stored_key = t;
            }
            _ => return Err(format!("{mechanism}: the keys are not {len} bytes long")),
        }
    }
    if salt.is_empty() {
        return Err(format!("{mechanism}: empty salt"));
    }
    Ok(StoredCredentials {
        hash: hash.name().to_owned(),
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

/// The items of a `jabber:iq:roster` query.
fn roster(query: &Element, who: &str, out: &mut Vec<RosterItem>, report: &mut Report) {
    for item in query.children() {
        if !item.is("item", ROSTER_NS) {
            report.skip(who, describe(item), "not a roster item");
            continue;
        }
        let raw = item.attr("jid").unwrap_or_default();
        let what = || format!("roster item {raw}");
        let jid = match raw.parse::<BareJid>() {
            Ok(j) => j.to_string(),
            Err(e) => {
                report.skip(who, what(), format!("not a bare JID: {e}"));
                continue;
            }
        };
        let raw_subscription = item.attr("subscription").unwrap_or("none");
        let Some(subscription) = Subscription::parse(raw_subscription) else {
            report.skip(who, what(), format!("subscription '{raw_subscription}'"));
            continue;
        };
        if out.iter().any(|i| i.jid == jid) {
            report.skip(who, what(), "listed twice; the first is kept");
            continue;
        }
        let mut groups: Vec<String> = Vec::new();
        for g in item.children().filter(|g| g.is("group", ROSTER_NS)) {
            let name = g.text();
            // Duplicates would be refused by storage; an empty name means
            // no group in RFC 6121 terms.
            if !name.is_empty() && !groups.contains(&name) {
                groups.push(name);
            }
        }
        out.push(RosterItem {
            jid,
            name: item
                .attr("name")
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            subscription,
            ask: item.attr("ask") == Some("subscribe"),
            approved: matches!(item.attr("approved"), Some("true" | "1")),
            groups,
        });
    }
}

/// XEP-0049 refuses the same namespaces for clients (see the private
/// module): none, vcard-temp, and the reserved `jabber:` and
/// `http://jabber.org/` prefixes.
fn private_refused(ns: &str) -> bool {
    ns.is_empty()
        || ns == VCARD_NS
        || ns.starts_with("jabber:")
        || ns.starts_with("http://jabber.org/")
}

/// The fragments of a `jabber:iq:private` query.
fn private(query: &Element, who: &str, out: &mut Vec<PrivateFragment>, report: &mut Report) {
    for fragment in query.children() {
        if private_refused(fragment.ns()) {
            report.skip(
                who,
                format!("private XML {}", describe(fragment)),
                "reserved namespace",
            );
            continue;
        }
        if out
            .iter()
            .any(|f| f.name == fragment.name() && f.namespace == fragment.ns())
        {
            report.skip(
                who,
                format!("private XML {}", describe(fragment)),
                "listed twice; the first is kept",
            );
            continue;
        }
        out.push(PrivateFragment {
            name: fragment.name().to_owned(),
            namespace: fragment.ns().to_owned(),
            xml: fragment.to_xml(),
        });
    }
}

/// The node `name` among `nodes`, added with the PEP defaults if new (a
/// node with items but no configuration, which XEP-0227 forbids, is taken
/// all the same).
fn pep_node<'a>(nodes: &'a mut Vec<ImportedPepNode>, name: &str) -> &'a mut ImportedPepNode {
    let i = match nodes.iter().position(|n| n.node == name) {
        Some(i) => i,
        None => {
            nodes.push(ImportedPepNode {
                node: name.to_owned(),
                config: chorus_modules::pep_config_from_form(&Element::new("x", "jabber:x:data")),
                affiliations: Vec::new(),
                subscriptions: Vec::new(),
                items: Vec::new(),
            });
            nodes.len() - 1
        }
    };
    &mut nodes[i]
}

/// XEP-0227's `<pubsub xmlns='…#owner'>`: each node's `<configure/>` form,
/// and (as Prosody writes them) its `<affiliations/>` and
/// `<subscriptions/>`; Prosody's `subscribed=` is read as `subscription=`.
fn pep_owner(el: &Element, who: &str, nodes: &mut Vec<ImportedPepNode>, report: &mut Report) {
    for child in el.children() {
        let Some(name) = child.attr("node").filter(|n| !n.is_empty()) else {
            report.skip(who, format!("PEP {}", describe(child)), "no node");
            continue;
        };
        match child.name() {
            "configure" => {
                let form = child
                    .get_child("x", "jabber:x:data")
                    .cloned()
                    .unwrap_or_else(|| Element::new("x", "jabber:x:data"));
                pep_node(nodes, name).config = chorus_modules::pep_config_from_form(&form);
            }
            "affiliations" => {
                for a in child.children() {
                    let (Some(jid), Some(aff)) = (a.attr("jid"), a.attr("affiliation")) else {
                        continue;
                    };
                    let Ok(jid) = jid.parse::<BareJid>() else {
                        report.skip(who, format!("PEP affiliation of {jid:?}"), "not a JID");
                        continue;
                    };
                    if !matches!(
                        aff,
                        "owner" | "publisher" | "publish-only" | "member" | "outcast"
                    ) {
                        continue;
                    }
                    let node = pep_node(nodes, name);
                    if !node.affiliations.iter().any(|(j, _)| j == jid.as_str()) {
                        node.affiliations
                            .push((jid.as_str().to_owned(), aff.to_owned()));
                    }
                }
            }
            "subscriptions" => {
                for sub in child.children() {
                    let state = sub.attr("subscription").or(sub.attr("subscribed"));
                    let (Some(jid), Some(state @ ("subscribed" | "pending" | "unconfigured"))) =
                        (sub.attr("jid"), state)
                    else {
                        continue;
                    };
                    let Ok(jid) = jid.parse::<chorus_jid::Jid>() else {
                        report.skip(who, format!("PEP subscription of {jid:?}"), "not a JID");
                        continue;
                    };
                    let subid = sub.attr("subid").unwrap_or_default().to_owned();
                    let node = pep_node(nodes, name);
                    if !node
                        .subscriptions
                        .iter()
                        .any(|s| s.jid == jid.as_str() && s.subid == subid)
                    {
                        node.subscriptions.push(PubsubSubscription {
                            node: name.to_owned(),
                            jid: jid.as_str().to_owned(),
                            subid,
                            state: state.to_owned(),
                            options: String::new(),
                        });
                    }
                }
            }
            _ => report.skip(
                who,
                format!("PEP {}", describe(child)),
                "not supported by this server",
            ),
        }
    }
}

/// XEP-0227's `<pubsub xmlns='…/pubsub'>`: each node's `<items/>`, oldest
/// first; an item keeps its first payload, as Prosody reads them.
fn pep_items(el: &Element, who: &str, nodes: &mut Vec<ImportedPepNode>, report: &mut Report) {
    let service = who.to_owned();
    for items in el.children().filter(|c| c.name() == "items") {
        let Some(name) = items.attr("node").filter(|n| !n.is_empty()) else {
            report.skip(who, "PEP items", "no node");
            continue;
        };
        for item in items.children().filter(|c| c.name() == "item") {
            let Some(id) = item.attr("id").filter(|i| !i.is_empty()) else {
                report.skip(who, format!("an item of PEP node {name}"), "no id");
                continue;
            };
            let Some(payload) = item.children().next() else {
                report.skip(who, format!("PEP item {name}/{id}"), "no payload");
                continue;
            };
            let node = pep_node(nodes, name);
            // A later item with the same id replaces the earlier one.
            node.items.retain(|i| i.id != id);
            node.items.push(PubsubItem {
                id: id.to_owned(),
                publisher: item
                    .attr("publisher")
                    .map_or_else(|| service.clone(), str::to_owned),
                payload: payload.to_xml(),
            });
        }
    }
}

/// The messages of `<offline-messages/>`, in `jabber:client`, each with the
/// time the exporting server stored it taken from (and removed with) the
/// delay that server added, so that delivery stamps it once, with that time.
fn offline(
    list: &Element,
    who: &str,
    domain: &str,
    out: &mut Vec<ImportedOffline>,
    report: &mut Report,
) {
    for child in list.children() {
        if child.name() != "message" {
            report.skip(who, format!("offline {}", describe(child)), "not a message");
            continue;
        }
        // Written in the host's namespace, jabber:server or none: a stanza
        // as a client stream would carry it.
        let mut message = if child.ns() == CLIENT_NS {
            child.clone()
        } else {
            rehome(child, child.ns())
        };
        let mut stored_at = None;
        let ours = |e: &Element| {
            e.attr("from")
                .is_none_or(|f| f.eq_ignore_ascii_case(domain))
        };
        for d in message.children() {
            if d.is("delay", DELAY_NS) && ours(d) {
                stored_at = stored_at.or_else(|| d.attr("stamp").and_then(parse_stamp));
            } else if d.is("x", LEGACY_DELAY_NS) && ours(d) {
                stored_at = stored_at.or_else(|| d.attr("stamp").and_then(parse_legacy_stamp));
            }
        }
        message.remove_children(|d| {
            (d.is("delay", DELAY_NS) || d.is("x", LEGACY_DELAY_NS)) && ours(d)
        });
        out.push(ImportedOffline {
            stored_at: stored_at.unwrap_or_else(SystemTime::now),
            stanza: message.to_xml(),
        });
    }
}

/// `el` and its descendants in namespace `from`, moved to `jabber:client`.
fn rehome(el: &Element, from: &str) -> Element {
    let ns = if el.ns() == from { CLIENT_NS } else { el.ns() };
    let mut out = Element::new(el.name(), ns);
    for (k, v) in el.attrs() {
        out.set_attr(k, v);
    }
    for node in el.nodes() {
        match node {
            Node::Element(c) => out.push(rehome(c, from)),
            Node::Text(t) => out.push_text(t.clone()),
        }
    }
    out
}

/// A XEP-0082 DateTime: `2024-01-31T12:00:00[.frac](Z|±hh:mm)`.
fn parse_stamp(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if s.ends_with('Z') || s.ends_with("+00:00") || s.ends_with("-00:00") {
        let utc = s
            .strip_suffix("-00:00")
            .map_or(s.to_owned(), |b| format!("{b}Z"));
        return humantime::parse_rfc3339(&utc).ok();
    }
    // An offset: local = UTC + offset.
    let (base, offset) = s.split_at(s.len().checked_sub(6)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let secs = h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
    let local = humantime::parse_rfc3339(&format!("{base}Z")).ok()?;
    let shift = Duration::from_secs(secs);
    if sign > 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

/// A XEP-0091 stamp: `20240131T12:00:00`, always UTC.
fn parse_legacy_stamp(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if s.len() != 17 || !s.is_char_boundary(8) {
        return None;
    }
    let (date, time) = s.split_at(8);
    let (y, rest) = date.split_at(4);
    let (mo, d) = rest.split_at(2);
    humantime::parse_rfc3339(&format!("{y}-{mo}-{d}{time}Z")).ok()
}

/// Derives the keys a parsed account still needs: both hashes from its
/// password unless the file gave credentials for that hash.
pub(super) fn finish_credentials(
    mut parsed: Parsed,
    iterations: u32,
) -> (ImportedAccount, Vec<Skip>) {
    let mut notes = Vec::new();
    if let Some(password) = parsed.password.take() {
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            if parsed
                .account
                .credentials
                .iter()
                .any(|c| c.hash == hash.name())
            {
                continue;
            }
            match ScramCredentials::derive(&password, hash, iterations) {
                Ok(c) => parsed
                    .account
                    .credentials
                    .push(chorus_modules::register::stored(c)),
                Err(e) => {
                    notes.push(Skip {
                        jid: parsed.jid(),
                        what: "password".into(),
                        reason: format!("unusable ({e})"),
                    });
                    break;
                }
            }
        }
    }
    if parsed.account.credentials.is_empty() {
        notes.push(Skip {
            jid: parsed.jid(),
            what: "credentials".into(),
            reason: "none usable: the account cannot log in until `chorusctl user passwd`".into(),
        });
    }
    // Stable order whatever the file's: SHA-1, then SHA-256.
    parsed
        .account
        .credentials
        .sort_by(|a, b| a.hash.cmp(&b.hash));
    (parsed.account, notes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn users_become_accounts() {
        let user = Element::from_xml(
            "<user xmlns='urn:xmpp:pie:0' name='Alice' password='pw'>\
             <query xmlns='jabber:iq:roster'>\
               <item jid='Bob@Example.com' name='Bob' subscription='both' ask='subscribe' approved='true'>\
                 <group>A</group><group>A</group><group>B</group></item>\
               <item jid='x@y/z'/><item jid='bob@example.com'/><item jid='c@d' subscription='remove'/>\
             </query>\
             <vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>\
             <query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/><x xmlns='jabber:iq:last'/></query>\
             <offline-messages>\
               <message from='b@example.com' to='alice@localhost'><body>hi</body>\
                 <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2024-01-02T03:04:05.678901Z'>Offline storage</delay>\
                 <delay xmlns='urn:xmpp:delay' from='muc.example' stamp='2020-01-01T00:00:00Z'/></message>\
               <message xmlns='jabber:client'><body>2</body>\
                 <x xmlns='jabber:x:delay' stamp='20240102T03:04:06'/></message>\
               <presence/>\
             </offline-messages>\
             <query xmlns='jabber:iq:privacy'/>\
             </user>",
        )
        .unwrap();
        let mut report = Report::default();
        let p = parse_user(&user, "localhost", &mut report).unwrap();
        let a = &p.account;
        assert_eq!(
            (a.localpart.as_str(), a.domain.as_str()),
            ("alice", "localhost")
        );
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert_eq!(a.roster.len(), 1);
        assert_eq!(a.roster[0].jid, "bob@example.com");
        assert_eq!(a.roster[0].groups, vec!["A", "B"]);
        assert!(a.roster[0].ask && a.roster[0].approved);
        assert_eq!(a.roster[0].subscription, Subscription::Both);
        assert_eq!(
            a.vcard.as_deref(),
            Some("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
        );
        assert_eq!(a.private.len(), 1);
        assert_eq!(a.offline.len(), 2);
        assert_eq!(
            a.offline[0].stored_at,
            humantime::parse_rfc3339("2024-01-02T03:04:05.678901Z").unwrap()
        );
        // Our delay is gone, a third party's stays; the stanza is a client one.
        assert_eq!(
            a.offline[0].stanza,
            "<message xmlns='jabber:client' from='b@example.com' to='alice@localhost'><body>hi</body>\
             <delay xmlns='urn:xmpp:delay' from='muc.example' stamp='2020-01-01T00:00:00Z'/></message>"
        );
        assert_eq!(
            a.offline[1].stored_at,
            humantime::parse_rfc3339("2024-01-02T03:04:06Z").unwrap()
        );
        assert_eq!(
            a.offline[1].stanza,
            "<message xmlns='jabber:client'><body>2</body></message>"
        );
        let reasons: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.what, s.reason))
            .collect();
        assert_eq!(report.skipped_total, 6, "{reasons:?}");
        assert!(reasons
            .iter()
            .any(|r| r.starts_with("roster item x@y/z: not a bare JID")));
        assert!(reasons.iter().any(|r| r.contains("listed twice")));
        assert!(reasons.iter().any(|r| r.contains("subscription 'remove'")));
        assert!(reasons.iter().any(|r| r.contains("reserved namespace")));
        assert!(reasons.iter().any(|r| r.starts_with("offline <presence")));
        assert!(reasons.iter().any(|r| r.contains("jabber:iq:privacy")));

        let mut report = Report::default();
        let bad = Element::from_xml("<user xmlns='urn:xmpp:pie:0' name='a b'/>").unwrap();
        assert!(parse_user(&bad, "localhost", &mut report).is_none());
        assert!(report.skipped[0].reason.contains("invalid username"));

        let mut report = Report::default();
        let mongoose = Element::from_xml(
            "<user xmlns='urn:xmpp:pie:0' name='m' password='==SCRAM==,a,b,c,4096'/>",
        )
        .unwrap();
        let p = parse_user(&mongoose, "localhost", &mut report).unwrap();
        assert!(p.password.is_none());
        assert!(report.skipped[0].reason.contains("MongooseIM"));
    }

    #[test]
    fn scram_credentials_plain_and_as_ejabberd_writes_them() {
        let derived = ScramCredentials::derive("pencil", ScramHash::Sha1, 4096).unwrap();
        let el = |enc: &dyn Fn(&[u8]) -> String, mech: &str| {
            Element::from_xml(&format!(
                "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mech}'>\
                 <iter-count>4096</iter-count><salt>{}</salt><server-key>{}</server-key>\
                 <stored-key>{}</stored-key></scram-credentials>",
                enc(&derived.salt),
                enc(&derived.server_key),
                enc(&derived.stored_key)
            ))
            .unwrap()
        };
        let once = |b: &[u8]| B64.encode(b);
        let twice = |b: &[u8]| B64.encode(B64.encode(b));
        for enc in [&once as &dyn Fn(&[u8]) -> String, &twice] {
            let c = scram_credentials(&el(enc, "SCRAM-SHA-1")).unwrap();
            assert_eq!(c.hash, "SHA-1");
            assert_eq!(c.salt, derived.salt);
            assert_eq!(c.stored_key, derived.stored_key);
            assert_eq!(c.server_key, derived.server_key);
            assert_eq!(c.iterations, 4096);
        }
        // SHA-1 keys under a SHA-256 label have the wrong length.
        assert!(scram_credentials(&el(&once, "SCRAM-SHA-256"))
            .unwrap_err()
            .contains("not 32 bytes"));
        assert!(scram_credentials(&el(&once, "SCRAM-SHA-512"))
            .unwrap_err()
            .contains("not offered"));
    }

    #[test]
    fn stamps() {
        let utc = humantime::parse_rfc3339("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(parse_stamp("2024-01-02T03:04:05Z"), Some(utc));
        assert_eq!(parse_stamp("2024-01-02T05:04:05+02:00"), Some(utc));
        assert_eq!(parse_stamp("2024-01-02T01:04:05-02:00"), Some(utc));
        assert_eq!(parse_stamp("2024-01-02T03:04:05-00:00"), Some(utc));
        assert_eq!(parse_stamp("yesterday"), None);
        assert_eq!(parse_legacy_stamp("20240102T03:04:05"), Some(utc));
        assert_eq!(parse_legacy_stamp("2024-01-02"), None);
    }
}
