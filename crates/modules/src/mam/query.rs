//! XEP-0313: Message Archive Management, the query side, with XEP-0059
//! Result Set Management paging and XEP-0441 preferences. What gets
//! archived, and the `<stanza-id/>` on delivered messages, is the parent
//! module's (`mam/mod.rs`).
//!
//! Only the account's own resources may touch its archive: anything else,
//! another user's bare JID or the server's, is `forbidden` (§8.1).
//!
//! - A query (`<query/>` set) pushes each result as a `<message/>` with a
//!   `<result/>` holding the XEP-0297 `<forwarded/>` original and its
//!   XEP-0203 `<delay/>`, then answers with `<fin/>`. The results go through
//!   the requesting session's sink, and so does the answer, behind them:
//!   c2s writes what a handler returns at once, ahead of anything queued in
//!   its mailbox, and §4 wants the results first.
//! - Filters: `with`, `start`, `end`, and the `#extended` `before-id`,
//!   `after-id` and `ids`; paging: RSM `<max/>`, `<after/>`, `<before/>`
//!   (empty: the last page), `<flip-page/>`. `complete='true'` marks the last
//!   page in the paging direction. A `<max/>` above the configured page size
//!   is capped to it, and a page stops early (not complete) once its
//!   results would queue more than the configured bytes, so that a page of
//!   large messages cannot trip the connection's outbound limit. `<max>0`
//!   answers only the `<count/>` (XEP-0059 §2.6); other pages carry no count,
//!   which would cost a scan of the archive (XEP-0313 §4.3.2 makes it
//!   optional). An RSM `<index/>` is `feature-not-implemented`, and so is a
//!   form field this module does not know (§4.1.5), `include-groupchat`
//!   included (not advertised).
//! - A `<query/>` get returns the form; `<metadata/>` the first and last
//!   message (§5); `<prefs/>` get and set the preferences (XEP-0441), the
//!   server's default while the user set none.

use std::time::{Duration, SystemTime};

use chorus_jid::{BareJid, Jid};
use chorus_proto::{ns, StanzaErrorCondition};
use chorus_storage::{
    ArchiveCursor, ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore,
    ArchivedMessage, StorageError,
};
use chorus_xml::Element;

use super::ArchiveOptions;
use crate::{result_iq, IqCtx, IqReply};

/// Advertised with `urn:xmpp:mam:2`: `before-id`, `after-id`, `ids`,
/// flipped pages and metadata (§7).
pub const MAM_EXTENDED: &str = "urn:xmpp:mam:2#extended";
/// XEP-0122: the `<validate/>` that marks `ids` as open to any value.
const XDATA_VALIDATE: &str = "http://jabber.org/protocol/xdata-validate";
/// Ids one query may name in `ids`: each is a lookup.
const MAX_IDS: usize = 1000;
/// What a result costs in the outbound queue beyond the stored stanza:
/// the `<message><result><forwarded><delay/>` wrapping.
const RESULT_OVERHEAD: usize = 320;

fn db_error(e: StorageError) -> StanzaErrorCondition {
    match e {
        // A cursor or an id field naming a message not in the archive
        // (§4.1.2, §4.3.2).
        StorageError::NotFound => StanzaErrorCondition::ItemNotFound,
        e => {
            tracing::error!(error = %e, "archive storage failed");
            StanzaErrorCondition::InternalServerError
        }
    }
}

pub(super) async fn answer(
    ctx: &IqCtx<'_>,
    options: &ArchiveOptions,
    iq: &Element,
) -> Result<IqReply, StanzaErrorCondition> {
    // §8.1: nobody else's archive, and no server archive.
    if !ctx.is_own_account() {
        return Err(StanzaErrorCondition::Forbidden);
    }
    let owner = ctx.me()?.bare();
    let payload = iq
        .children()
        .next()
        .ok_or(StanzaErrorCondition::BadRequest)?;
    match (payload.name(), iq.attr("type")) {
        ("query", Some("get")) => Ok(IqReply::Result(Some(query_form()))),
        ("query", Some("set")) => query(ctx, options, &owner, iq, payload).await,
        ("metadata", Some("get")) => metadata(ctx, &owner).await,
        ("prefs", Some("get")) => prefs_get(ctx, options, &owner).await,
        ("prefs", Some("set")) => prefs_set(ctx, &owner, payload).await,
        _ => Err(StanzaErrorCondition::BadRequest),
    }
}

/// The account's localpart and domain, for storage.
fn parts(owner: &BareJid) -> Result<(&str, &str), StanzaErrorCondition> {
    let node = owner.node().ok_or(StanzaErrorCondition::Forbidden)?;
    Ok((node, owner.domain()))
}

/// §4.1.5: the fields a query may use.
pub(crate) fn query_form() -> Element {
    let field = |var: &str, typ: &str| {
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", var)
            .with_attr("type", typ)
    };
    Element::new("query", ns::MAM).with_child(
        Element::new("x", ns::DATA_FORMS)
            .with_attr("type", "form")
            .with_child(
                field("FORM_TYPE", "hidden")
                    .with_child(Element::new("value", ns::DATA_FORMS).with_text(ns::MAM)),
            )
            .with_child(field("with", "jid-single"))
            .with_child(field("start", "text-single"))
            .with_child(field("end", "text-single"))
            .with_child(field("before-id", "text-single"))
            .with_child(field("after-id", "text-single"))
            .with_child(
                field("ids", "list-multi").with_child(
                    Element::new("validate", XDATA_VALIDATE)
                        .with_attr("datatype", "xs:string")
                        .with_child(Element::new("open", XDATA_VALIDATE)),
                ),
            ),
    )
}

/// A XEP-0082 DateTime, `CCYY-MM-DDThh:mm:ss[.sss]TZD` with `TZD` either
/// `Z` or `+hh:mm`/`-hh:mm`.
pub(crate) fn parse_datetime(s: &str) -> Option<SystemTime> {
    let (local, offset_secs): (&str, i64) = if let Some(rest) = s.strip_suffix('Z') {
        (rest, 0)
    } else {
        let split = s.len().checked_sub(6)?;
        let (rest, tz) = (s.get(..split)?, s.get(split..)?.as_bytes());
        let digit = |b: u8| b.is_ascii_digit().then(|| i64::from(b - b'0'));
        let sign = match tz[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        if tz[3] != b':' {
            return None;
        }
        let hours = digit(tz[1])? * 10 + digit(tz[2])?;
        let minutes = digit(tz[4])? * 10 + digit(tz[5])?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (rest, sign * (hours * 3600 + minutes * 60))
    };
    // humantime also takes a space for the 'T' and no zone at all; the
    // profile does not.
    if local.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    // Local time at +hh:mm is that much ahead of UTC.
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    if offset_secs >= 0 {
        t.checked_sub(shift)
    } else {
        t.checked_add(shift)
    }
}

fn stamp(t: SystemTime) -> String {
    // Microseconds: archive places are unique to the microsecond, so a
    // stamp given back as 'start' or 'end' selects exactly.
    humantime::format_rfc3339_micros(t).to_string()
}

/// A parsed query request.
struct Request {
    query: ArchiveQuery,
    /// `<flip-page/>`: the page's results in reverse order.
    flip: bool,
    /// `<max>0</max>`: only the count.
    count_only: bool,
}

/// The data form's fields and the RSM set of a query.
fn parse_request(q: &Element, max_page: u32) -> Result<Request, StanzaErrorCondition> {
    // §5.1.3: 'node' queries a pubsub node's archive (XEP-0442); an
    // account has no nodes.
    if q.attr("node").is_some() {
        return Err(StanzaErrorCondition::ItemNotFound);
    }
    let mut query = ArchiveQuery {
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        cursor: ArchiveCursor::First,
        limit: max_page,
    };
    if let Some(x) = q.get_child("x", ns::DATA_FORMS) {
        if !matches!(x.attr("type"), None | Some("submit")) {
            return Err(StanzaErrorCondition::BadRequest);
        }
        for field in x.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
            let values: Vec<String> = field
                .children()
                .filter(|c| c.is("value", ns::DATA_FORMS))
                .map(Element::text)
                .filter(|v| !v.is_empty())
                .collect();
            let single = || -> Result<Option<&str>, StanzaErrorCondition> {
                match values.as_slice() {
                    [] => Ok(None),
                    [v] => Ok(Some(v.as_str())),
                    _ => Err(StanzaErrorCondition::BadRequest),
                }
            };
            match field.attr("var").unwrap_or_default() {
                "FORM_TYPE" => {
                    if single()? != Some(ns::MAM) {
                        return Err(StanzaErrorCondition::BadRequest);
                    }
                }
                "with" => {
                    query.with = single()?
                        .map(|w| w.parse::<Jid>().map(|j| j.to_string()))
                        .transpose()
                        .map_err(|_| StanzaErrorCondition::JidMalformed)?;
                }
                "start" => {
                    query.start = single()?
                        .map(|v| parse_datetime(v).ok_or(StanzaErrorCondition::BadRequest))
                        .transpose()?;
                }
                "end" => {
                    query.end = single()?
                        .map(|v| parse_datetime(v).ok_or(StanzaErrorCondition::BadRequest))
                        .transpose()?;
                }
                "after-id" => query.after_id = single()?.map(str::to_owned),
                "before-id" => query.before_id = single()?.map(str::to_owned),
                "ids" => {
                    if values.len() > MAX_IDS {
                        return Err(StanzaErrorCondition::PolicyViolation);
                    }
                    query.ids = values.clone();
                }
                // §4.1.5: a field we do not know, include-groupchat (not
                // advertised) among them.
                _ => return Err(StanzaErrorCondition::FeatureNotImplemented),
            }
        }
    }
    let flip = q.get_child("flip-page", ns::MAM).is_some();
    let mut count_only = false;
    if let Some(set) = q.get_child("set", ns::RSM) {
        if set.get_child("index", ns::RSM).is_some() {
            return Err(StanzaErrorCondition::FeatureNotImplemented);
        }
        if let Some(max) = set.get_child("max", ns::RSM) {
            let max: u32 = max
                .text()
                .trim()
                .parse()
                .map_err(|_| StanzaErrorCondition::BadRequest)?;
            count_only = max == 0;
            query.limit = max.min(max_page);
        }
        // RSM leaves both at once undefined; §4.3.2 points to the id fields.
        match (
            set.get_child("after", ns::RSM),
            set.get_child("before", ns::RSM),
        ) {
            (Some(_), Some(_)) => return Err(StanzaErrorCondition::BadRequest),
            (Some(after), None) => {
                let id = after.text();
                if id.is_empty() {
                    return Err(StanzaErrorCondition::BadRequest);
                }
                query.cursor = ArchiveCursor::After(id);
            }
            (None, Some(before)) => {
                let id = before.text();
                query.cursor = if id.is_empty() {
                    ArchiveCursor::Last
                } else {
                    ArchiveCursor::Before(id)
                };
            }
            (None, None) => {}
        }
    }
    Ok(Request {
        query,
        flip,
        count_only,
    })
}

/// The `<message/>` carrying one result (§4.2).
fn result_message(
    to: &str,
    owner: &BareJid,
    queryid: Option<&str>,
    m: &ArchivedMessage,
) -> Option<Element> {
    let original = match Element::from_xml(&m.stanza) {
        Ok(e) => e,
        Err(e) => {
            // We stored it, so this is corruption: skip that one result.
            tracing::error!(id = %m.stanza_id, error = %e, "unreadable archived message skipped");
            return None;
        }
    };
    let mut result = Element::new("result", ns::MAM).with_attr("id", m.stanza_id.as_str());
    if let Some(q) = queryid {
        result.set_attr("queryid", q);
    }
    // §8.2: clients check that results come from the archive they asked.
    Some(
        Element::new("message", ns::JABBER_CLIENT)
            .with_attr("to", to)
            .with_attr("from", owner.to_string())
            .with_child(
                result.with_child(
                    Element::new("forwarded", ns::FORWARD)
                        .with_child(
                            Element::new("delay", ns::DELAY).with_attr("stamp", stamp(m.timestamp)),
                        )
                        .with_child(original),
                ),
            ),
    )
}

/// Cuts the page to `budget` bytes of results, keeping the messages next to
/// where paging started (the oldest going forward, the newest going
/// backward). Returns whether it cut anything.
fn fit_budget(page: &mut ArchivePage, backward: bool, budget: usize) -> bool {
    let mut sizes: Vec<usize> = page.messages.iter().map(|m| m.stanza.len()).collect();
    if backward {
        sizes.reverse();
    }
    let mut used = 0;
    let mut keep = 0;
    for size in sizes {
        let cost = size + RESULT_OVERHEAD;
        // Always at least one result, or paging could never advance.
        if keep > 0 && used + cost > budget {
            break;
        }
        used += cost;
        keep += 1;
    }
    let n = page.messages.len();
    if keep == n {
        return false;
    }
    if backward {
        page.messages.drain(..n - keep);
    } else {
        page.messages.truncate(keep);
    }
    true
}

async fn query(
    ctx: &IqCtx<'_>,
    options: &ArchiveOptions,
    owner: &BareJid,
    iq: &Element,
    q: &Element,
) -> Result<IqReply, StanzaErrorCondition> {
    let me = ctx.me()?;
    run_query(ctx.services, Archive::Account(owner), me, options, iq, q).await?;
    Ok(IqReply::Delivered)
}

/// An archive a query reads: an account's, or a room's (XEP-0045 rooms
/// keep theirs in the muc module's store, paged the same way).
#[derive(Clone, Copy)]
pub(crate) enum Archive<'a> {
    Account(&'a BareJid),
    Room(&'a BareJid),
}

impl Archive<'_> {
    fn jid(&self) -> &BareJid {
        match self {
            Archive::Account(j) | Archive::Room(j) => j,
        }
    }

    async fn page(
        &self,
        storage: &chorus_storage::Storage,
        q: &ArchiveQuery,
    ) -> Result<ArchivePage, StanzaErrorCondition> {
        use chorus_storage::MucStore;
        match self {
            Archive::Account(owner) => {
                let (node, domain) = parts(owner)?;
                storage.archive_query(node, domain, q).await
            }
            Archive::Room(room) => storage.muc_archive_query(room.as_str(), q).await,
        }
        .map_err(db_error)
    }

    async fn count(
        &self,
        storage: &chorus_storage::Storage,
        q: &ArchiveQuery,
    ) -> Result<u64, StanzaErrorCondition> {
        use chorus_storage::MucStore;
        match self {
            Archive::Account(owner) => {
                let (node, domain) = parts(owner)?;
                storage.archive_count(node, domain, q).await
            }
            Archive::Room(room) => storage.muc_archive_count(room.as_str(), q).await,
        }
        .map_err(db_error)
    }
}

/// The XEP-0313 §4 query `q` (in `iq`) of `archive`, its results and then
/// its answer delivered to the requesting session `me`.
pub(crate) async fn run_query(
    services: &crate::Services,
    archive: Archive<'_>,
    me: &chorus_jid::FullJid,
    options: &ArchiveOptions,
    iq: &Element,
    q: &Element,
) -> Result<(), StanzaErrorCondition> {
    let owner = archive.jid();
    let request = parse_request(q, options.max_page)?;
    let storage = &services.storage;
    let queryid = q.attr("queryid");
    let mut fin = Element::new("fin", ns::MAM);
    if let Some(id) = queryid {
        // Not in §4's examples; echoing it costs nothing and lets a client
        // match the answer to its query without the IQ id.
        fin.set_attr("queryid", id);
    }

    let session = services.sessions.get(me);
    if request.count_only {
        let count = archive.count(storage, &request.query).await?;
        if count == 0 {
            fin.set_attr("complete", "true");
        }
        let set = Element::new("set", ns::RSM)
            .with_child(Element::new("count", ns::RSM).with_text(count.to_string()));
        if let Some(session) = session {
            session
                .sink
                .deliver(result_iq(iq, Some(fin.with_child(set))));
        }
        return Ok(());
    }

    let mut page = archive.page(storage, &request.query).await?;
    let backward = matches!(
        request.query.cursor,
        ArchiveCursor::Before(_) | ArchiveCursor::Last
    );
    if fit_budget(&mut page, backward, options.max_page_bytes) {
        page.complete = false;
    }
    if page.complete {
        fin.set_attr("complete", "true");
    }
    let mut set = Element::new("set", ns::RSM);
    if let (Some(first), Some(last)) = (page.messages.first(), page.messages.last()) {
        set.push(Element::new("first", ns::RSM).with_text(first.stanza_id.as_str()));
        set.push(Element::new("last", ns::RSM).with_text(last.stanza_id.as_str()));
    }
    fin.push(set);

    let to = me.to_string();
    let mut results: Vec<Element> = page
        .messages
        .iter()
        .filter_map(|m| result_message(&to, owner, queryid, m))
        .collect();
    if request.flip {
        results.reverse();
    }
    let answer = result_iq(iq, Some(fin));
    // The results, then the answer, all through the session's mailbox: see
    // the module docs.
    let Some(session) = session else {
        // The requester is gone; nobody reads the results.
        return Ok(());
    };
    for r in results {
        session.sink.deliver(r);
    }
    session.sink.deliver(answer);
    Ok(())
}

async fn metadata(ctx: &IqCtx<'_>, owner: &BareJid) -> Result<IqReply, StanzaErrorCondition> {
    let md = archive_metadata(ctx.services, Archive::Account(owner)).await?;
    Ok(IqReply::Result(Some(md)))
}

/// §5: the first and last message of `archive`.
pub(crate) async fn archive_metadata(
    services: &crate::Services,
    archive: Archive<'_>,
) -> Result<Element, StanzaErrorCondition> {
    let storage = &services.storage;
    let one = |cursor| ArchiveQuery {
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        cursor,
        limit: 1,
    };
    let mut md = Element::new("metadata", ns::MAM);
    let first = archive.page(storage, &one(ArchiveCursor::First)).await?;
    let last = archive.page(storage, &one(ArchiveCursor::Last)).await?;
    // An empty archive: an empty <metadata/>.
    if let (Some(f), Some(l)) = (first.messages.first(), last.messages.first()) {
        for (name, m) in [("start", f), ("end", l)] {
            md.push(
                Element::new(name, ns::MAM)
                    .with_attr("id", m.stanza_id.as_str())
                    .with_attr("timestamp", stamp(m.timestamp)),
            );
        }
    }
    Ok(md)
}

fn prefs_element(prefs: &ArchivePrefs) -> Element {
    let list = |name: &str, jids: &[String]| {
        let mut e = Element::new(name, ns::MAM);
        for j in jids {
            e.push(Element::new("jid", ns::MAM).with_text(j.as_str()));
        }
        e
    };
    Element::new("prefs", ns::MAM)
        .with_attr("default", prefs.default.as_str())
        .with_child(list("always", &prefs.always))
        .with_child(list("never", &prefs.never))
}

async fn prefs_get(
    ctx: &IqCtx<'_>,
    options: &ArchiveOptions,
    owner: &BareJid,
) -> Result<IqReply, StanzaErrorCondition> {
    let (node, domain) = parts(owner)?;
    let prefs = ctx
        .services
        .storage
        .archive_prefs(node, domain)
        .await
        .map_err(db_error)?
        .unwrap_or_else(|| ArchivePrefs {
            default: options.default,
            always: Vec::new(),
            never: Vec::new(),
        });
    Ok(IqReply::Result(Some(prefs_element(&prefs))))
}

/// The JIDs of an `<always/>` or `<never/>` list, normalized.
fn jid_list(prefs: &Element, name: &str) -> Result<Vec<String>, StanzaErrorCondition> {
    let Some(list) = prefs.get_child(name, ns::MAM) else {
        return Ok(Vec::new());
    };
    list.children()
        .filter(|c| c.is("jid", ns::MAM))
        .map(|j| {
            j.text()
                .trim()
                .parse::<Jid>()
                .map(|j| j.to_string())
                .map_err(|_| StanzaErrorCondition::JidMalformed)
        })
        .collect()
}

async fn prefs_set(
    ctx: &IqCtx<'_>,
    owner: &BareJid,
    payload: &Element,
) -> Result<IqReply, StanzaErrorCondition> {
    let (node, domain) = parts(owner)?;
    let default = payload
        .attr("default")
        .and_then(ArchiveDefault::parse)
        .ok_or(StanzaErrorCondition::BadRequest)?;
    let prefs = ArchivePrefs {
        default,
        always: jid_list(payload, "always")?,
        never: jid_list(payload, "never")?,
    };
    let storage = &ctx.services.storage;
    match storage.set_archive_prefs(node, domain, &prefs).await {
        Ok(()) => {}
        // A JID on both lists.
        Err(StorageError::InvalidInput(_)) => return Err(StanzaErrorCondition::BadRequest),
        Err(e) => return Err(db_error(e)),
    }
    // XEP-0441 §3: the answer is the preferences as now stored.
    let stored = storage
        .archive_prefs(node, domain)
        .await
        .map_err(db_error)?
        .unwrap_or(prefs);
    Ok(IqReply::Result(Some(prefs_element(&stored))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn datetimes_follow_xep_0082() {
        let t = |s| parse_datetime(s);
        let base = UNIX_EPOCH + Duration::from_secs(1_275_868_800);
        assert_eq!(t("2010-06-07T00:00:00Z"), Some(base));
        assert_eq!(
            t("2010-06-07T00:00:00.250Z"),
            Some(base + Duration::from_millis(250))
        );
        assert_eq!(t("2010-06-07T02:30:00+02:30"), Some(base));
        assert_eq!(t("2010-06-06T22:00:00-02:00"), Some(base));
        for bad in [
            "2010-06-07T00:00:00",
            "2010-06-07 00:00:00Z",
            "2010-06-07T00:00:00+0200",
            "2010-06-07T00:00:00+24:00",
            "2010-06-07",
            "yesterday",
            "",
            "Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
        // What we send parses back exactly.
        let now = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(t(&stamp(now)), Some(now));
    }

    fn q(children: &[Element]) -> Element {
        let mut q = Element::new("query", ns::MAM);
        for c in children {
            q.push(c.clone());
        }
        q
    }

    fn x(fields: &[(&str, &[&str])]) -> Element {
        let mut x = Element::new("x", ns::DATA_FORMS).with_attr("type", "submit");
        for (var, values) in fields {
            let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", *var);
            for v in *values {
                f.push(Element::new("value", ns::DATA_FORMS).with_text(*v));
            }
            x.push(f);
        }
        x
    }

    fn rsm(children: &[(&str, &str)]) -> Element {
        let mut s = Element::new("set", ns::RSM);
        for (n, t) in children {
            s.push(Element::new(*n, ns::RSM).with_text(*t));
        }
        s
    }

    #[test]
    fn requests_parse_forms_and_rsm() {
        let r = parse_request(
            &q(&[
                x(&[
                    ("FORM_TYPE", &[ns::MAM]),
                    ("with", &["Juliet@Capulet.lit/Balcony"]),
                    ("start", &["2010-06-07T00:00:00Z"]),
                    ("after-id", &["a"]),
                    ("before-id", &[]),
                    ("ids", &["1", "2"]),
                ]),
                rsm(&[("max", "500"), ("before", "")]),
                Element::new("flip-page", ns::MAM),
            ]),
            100,
        )
        .unwrap();
        assert_eq!(r.query.with.as_deref(), Some("juliet@capulet.lit/Balcony"));
        assert!(r.query.start.is_some() && r.query.end.is_none());
        assert_eq!(r.query.after_id.as_deref(), Some("a"));
        assert_eq!(r.query.before_id, None);
        assert_eq!(r.query.ids, ["1", "2"]);
        assert_eq!(r.query.limit, 100, "capped");
        assert_eq!(r.query.cursor, ArchiveCursor::Last);
        assert!(r.flip && !r.count_only);

        let r = parse_request(&q(&[rsm(&[("max", "0")])]), 100).unwrap();
        assert!(r.count_only);
        let r = parse_request(&q(&[rsm(&[("max", "7"), ("after", "x")])]), 100).unwrap();
        assert_eq!(
            (r.query.limit, r.query.cursor),
            (7, ArchiveCursor::After("x".into()))
        );
    }

    #[test]
    fn bad_requests_are_refused_with_the_right_condition() {
        use StanzaErrorCondition as C;
        let cases: Vec<(Element, C)> = vec![
            (
                q(&[x(&[("FORM_TYPE", &["urn:xmpp:mam:1"])])]),
                C::BadRequest,
            ),
            (
                q(&[x(&[("include-groupchat", &["true"])])]),
                C::FeatureNotImplemented,
            ),
            (q(&[x(&[("start", &["yesterday"])])]), C::BadRequest),
            (q(&[x(&[("with", &["a@b", "c@d"])])]), C::BadRequest),
            (q(&[x(&[("with", &["@bad"])])]), C::JidMalformed),
            (q(&[rsm(&[("max", "-1")])]), C::BadRequest),
            (q(&[rsm(&[("index", "3")])]), C::FeatureNotImplemented),
            (q(&[rsm(&[("after", "a"), ("before", "b")])]), C::BadRequest),
            (q(&[rsm(&[("after", "")])]), C::BadRequest),
            (
                q(&[]).with_attr("node", "urn:xmpp:microblog:0"),
                C::ItemNotFound,
            ),
        ];
        for (query, cond) in cases {
            assert_eq!(
                parse_request(&query, 100).err(),
                Some(cond),
                "{}",
                query.to_xml()
            );
        }
    }

    fn page(sizes: &[usize]) -> ArchivePage {
        ArchivePage {
            messages: sizes
                .iter()
                .enumerate()
                .map(|(i, n)| ArchivedMessage {
                    stanza_id: i.to_string(),
                    timestamp: UNIX_EPOCH,
                    with: "a@b".into(),
                    outgoing: false,
                    stanza: "x".repeat(*n),
                })
                .collect(),
            complete: true,
        }
    }

    fn ids(p: &ArchivePage) -> Vec<&str> {
        p.messages.iter().map(|m| m.stanza_id.as_str()).collect()
    }

    #[test]
    fn the_byte_budget_keeps_the_results_where_paging_started() {
        let cost = 1000 - RESULT_OVERHEAD;
        let mut p = page(&[cost; 5]);
        assert!(fit_budget(&mut p, false, 2500));
        assert_eq!(ids(&p), ["0", "1"]);
        let mut p = page(&[cost; 5]);
        assert!(fit_budget(&mut p, true, 2500));
        assert_eq!(ids(&p), ["3", "4"]);
        let mut p = page(&[cost; 5]);
        assert!(!fit_budget(&mut p, false, 5000));
        assert_eq!(p.messages.len(), 5);
        // One result even past the budget, or paging would stall.
        let mut p = page(&[10_000, 10]);
        assert!(fit_budget(&mut p, false, 100));
        assert_eq!(ids(&p), ["0"]);
    }
}
