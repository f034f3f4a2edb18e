//! XEP-0227 export: one `<server-data/>` file per served domain, written
//! from storage account by account to a temporary name (mode 0600, since
//! it holds SCRAM keys) and renamed into place, so that an existing export
//! is replaced whole or not at all.

use std::path::Path;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chorus_sasl::ScramHash;
use chorus_storage::{
    AccountStore, OfflineStore, PrivateStore, PubsubStore, RosterStore, Storage, VcardStore,
};
use chorus_xml::{escape_attr, Element, NsContext};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::report::Skip;
use super::{
    absolute, DELAY_NS, PIE_NS, PRIVATE_NS, PUBSUB_NS, PUBSUB_OWNER_NS, ROSTER_NS, SCRAM_NS,
};
use crate::{AdminContext, CommandError};

/// What an export wrote for one domain.
#[derive(Debug, Default)]
struct ExportCounts {
    accounts: u64,
    roster_items: u64,
    vcards: u64,
    private: u64,
    offline: u64,
    pep_nodes: u64,
    pep_items: u64,
    skipped: Vec<Skip>,
}

/// `export`: one XEP-0227 file per served domain in `dir`.
pub async fn export(ctx: &AdminContext, dir: &str) -> Result<Value, CommandError> {
    let started = Instant::now();
    let dir = absolute(dir, "directory")?;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| CommandError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    let mut text = String::new();
    let mut total = ExportCounts::default();
    for domain in &ctx.domains {
        // Domains come from the validated configuration; a separator or a
        // leading dot would still make a path that escapes `dir`.
        if domain.contains('/') || domain.starts_with('.') || domain.is_empty() {
            return Err(CommandError::Failed(format!(
                "cannot name a file after domain '{domain}'"
            )));
        }
        let path = dir.join(format!("{domain}.xml"));
        let counts = export_domain(&ctx.storage, domain, &path)
            .await
            .map_err(|e| CommandError::Failed(format!("{}: {e}", path.display())))?;
        text.push_str(&format!(
            "{}: {} accounts, {} roster items, {} vCards, {} private XML, {} offline messages, \
             {} PEP nodes with {} items\n",
            path.display(),
            counts.accounts,
            counts.roster_items,
            counts.vcards,
            counts.private,
            counts.offline,
            counts.pep_nodes,
            counts.pep_items
        ));
        for s in &counts.skipped {
            text.push_str(&format!("  skipped {}: {}: {}\n", s.jid, s.what, s.reason));
        }
        files.push(json!({
            "domain": domain,
            "path": path.display().to_string(),
            "accounts": counts.accounts,
            "roster_items": counts.roster_items,
            "vcards": counts.vcards,
            "private": counts.private,
            "offline": counts.offline,
            "pep_nodes": counts.pep_nodes,
            "pep_items": counts.pep_items,
            "skipped": counts.skipped.iter().map(|s| json!({
                "jid": s.jid, "what": s.what, "reason": s.reason,
            })).collect::<Vec<_>>(),
        }));
        total.accounts += counts.accounts;
    }
    let elapsed = started.elapsed();
    text.push_str(&format!(
        "exported {} accounts in {:.2} s\n",
        total.accounts,
        elapsed.as_secs_f64()
    ));
    tracing::info!(dir = %dir.display(), accounts = total.accounts, "XEP-0227 export done");
    Ok(json!({
        "dir": dir.display().to_string(),
        "files": files,
        "accounts": total.accounts,
        "elapsed_ms": elapsed.as_millis() as u64,
        "text": text,
    }))
}

/// Writes `path` for one domain: to a temporary file first, renamed into
/// place once complete, so a reader never sees half an export.
async fn export_domain(
    storage: &Storage,
    domain: &str,
    path: &Path,
) -> Result<ExportCounts, String> {
    let tmp = path.with_extension("xml.partial");
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        // SCRAM keys allow offline guessing and ServerKey impersonating the
        // server: the export is as secret as the database.
        .mode(0o600)
        .open(&tmp)
        .await
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let mut out = tokio::io::BufWriter::new(file);
    let result = write_domain(storage, domain, &mut out).await;
    let counts = match result {
        Ok(c) => c,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let io = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    out.flush().await.map_err(io)?;
    out.get_ref().sync_all().await.map_err(io)?;
    drop(out);
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| format!("cannot rename {} into place: {e}", tmp.display()))?;
    Ok(counts)
}

async fn write_domain(
    storage: &Storage,
    domain: &str,
    out: &mut tokio::io::BufWriter<tokio::fs::File>,
) -> Result<ExportCounts, String> {
    let io = |e: std::io::Error| format!("write failed: {e}");
    let db = |e: chorus_storage::StorageError| format!("storage: {e}");
    out.write_all(
        format!(
            "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='{PIE_NS}'>\n<host jid='{}'>\n",
            escape_attr(domain)
        )
        .as_bytes(),
    )
    .await
    .map_err(io)?;
    let mut counts = ExportCounts::default();
    let accounts = storage.list_accounts(Some(domain)).await.map_err(db)?;
    let ctx = NsContext {
        default_ns: PIE_NS,
        prefixes: &[],
    };
    let mut buf = Vec::new();
    for (localpart, d) in accounts {
        let user = export_user(storage, &localpart, &d, &mut counts)
            .await
            .map_err(db)?;
        buf.clear();
        user.write_to(&mut buf, &ctx);
        buf.push(b'\n');
        out.write_all(&buf).await.map_err(io)?;
        counts.accounts += 1;
    }
    out.write_all(b"</host>\n</server-data>\n")
        .await
        .map_err(io)?;
    Ok(counts)
}

/// One account as a `<user/>` element.
async fn export_user(
    storage: &Storage,
    localpart: &str,
    domain: &str,
    counts: &mut ExportCounts,
) -> Result<Element, chorus_storage::StorageError> {
    let who = format!("{localpart}@{domain}");
    // Independent reads, so concurrent: each goes to its own pooled
    // connection, and an export of many accounts is latency-bound.
    let (sha1, sha256, roster, vcard, fragments, messages) = tokio::try_join!(
        storage.credentials(localpart, domain, ScramHash::Sha1.name()),
        storage.credentials(localpart, domain, ScramHash::Sha256.name()),
        storage.roster(localpart, domain),
        storage.vcard(localpart, domain),
        storage.private_fragments(localpart, domain),
        storage.offline_messages(localpart, domain, u32::MAX),
    )?;
    let mut user = Element::new("user", PIE_NS).with_attr("name", localpart);
    for c in [sha1, sha256].into_iter().flatten() {
        let text = |name: &str, value: String| Element::new(name, SCRAM_NS).with_text(value);
        user.push(
            Element::new("scram-credentials", SCRAM_NS)
                .with_attr("mechanism", format!("SCRAM-{}", c.hash))
                .with_child(text("iter-count", c.iterations.to_string()))
                .with_child(text("salt", B64.encode(&c.salt)))
                .with_child(text("server-key", B64.encode(&c.server_key)))
                .with_child(text("stored-key", B64.encode(&c.stored_key))),
        );
    }
    if !roster.items.is_empty() {
        let mut query = Element::new("query", ROSTER_NS);
        for item in roster.items {
            let mut el = Element::new("item", ROSTER_NS).with_attr("jid", item.jid);
            if let Some(name) = item.name {
                el.set_attr("name", name);
            }
            el.set_attr("subscription", item.subscription.as_str());
            if item.ask {
                el.set_attr("ask", "subscribe");
            }
            if item.approved {
                el.set_attr("approved", "true");
            }
            for g in item.groups {
                el.push(Element::new("group", ROSTER_NS).with_text(g));
            }
            query.push(el);
            counts.roster_items += 1;
        }
        user.push(query);
    }
    if let Some(xml) = vcard {
        match Element::from_xml(&xml) {
            Ok(card) => {
                user.push(card);
                counts.vcards += 1;
            }
            Err(e) => counts.skipped.push(Skip {
                jid: who.clone(),
                what: "vCard".into(),
                reason: format!("stored vCard does not parse: {e}"),
            }),
        }
    }
    if !fragments.is_empty() {
        let mut query = Element::new("query", PRIVATE_NS);
        for f in fragments {
            match Element::from_xml(&f.xml) {
                Ok(el) => {
                    query.push(el);
                    counts.private += 1;
                }
                Err(e) => counts.skipped.push(Skip {
                    jid: who.clone(),
                    what: format!("private XML {{{}}}{}", f.namespace, f.name),
                    reason: format!("stored fragment does not parse: {e}"),
                }),
            }
        }
        user.push(query);
    }
    export_pep(storage, &who, &mut user, counts).await?;
    if !messages.is_empty() {
        let mut list = Element::new("offline-messages", PIE_NS);
        for m in messages {
            match Element::from_xml(&m.stanza) {
                Ok(mut msg) => {
                    // The time it was stored, as ejabberd writes it; an
                    // import takes it back from here.
                    msg.push(
                        Element::new("delay", DELAY_NS)
                            .with_attr("from", domain)
                            .with_attr(
                                "stamp",
                                humantime::format_rfc3339_micros(m.stored_at).to_string(),
                            ),
                    );
                    list.push(msg);
                    counts.offline += 1;
                }
                Err(e) => counts.skipped.push(Skip {
                    jid: who.clone(),
                    what: format!("offline message {}", m.id),
                    reason: format!("stored stanza does not parse: {e}"),
                }),
            }
        }
        user.push(list);
    }
    Ok(user)
}

/// XEP-0227's PEP section: every node's configuration (a submit form),
/// affiliations and subscriptions under `pubsub#owner`, and its items,
/// oldest first, under `pubsub`.
async fn export_pep(
    storage: &Storage,
    who: &str,
    user: &mut Element,
    counts: &mut ExportCounts,
) -> Result<(), chorus_storage::StorageError> {
    let nodes = storage.pubsub_nodes(who).await?;
    if nodes.is_empty() {
        return Ok(());
    }
    let mut owner = Element::new("pubsub", PUBSUB_OWNER_NS);
    let mut published = Element::new("pubsub", PUBSUB_NS);
    for n in nodes {
        let (affiliations, subscriptions, items) = tokio::try_join!(
            storage.pubsub_affiliations(who, &n.node),
            storage.pubsub_subscriptions(who, Some(&n.node), None),
            storage.pubsub_items(who, &n.node, &[], None),
        )?;
        owner.push(
            Element::new("configure", PUBSUB_OWNER_NS)
                .with_attr("node", n.node.as_str())
                .with_child(chorus_modules::pep_config_form(&n.config)),
        );
        let others: Vec<_> = affiliations.iter().filter(|(j, _)| j != who).collect();
        if !others.is_empty() {
            let mut list =
                Element::new("affiliations", PUBSUB_OWNER_NS).with_attr("node", n.node.as_str());
            for (jid, affiliation) in others {
                list.push(
                    Element::new("affiliation", PUBSUB_OWNER_NS)
                        .with_attr("jid", jid.as_str())
                        .with_attr("affiliation", affiliation.as_str()),
                );
            }
            owner.push(list);
        }
        if !subscriptions.is_empty() {
            let mut list =
                Element::new("subscriptions", PUBSUB_OWNER_NS).with_attr("node", n.node.as_str());
            for sub in subscriptions {
                let mut el = Element::new("subscription", PUBSUB_OWNER_NS)
                    .with_attr("jid", sub.jid)
                    .with_attr("subscription", sub.state);
                if !sub.subid.is_empty() {
                    el.set_attr("subid", sub.subid);
                }
                list.push(el);
            }
            owner.push(list);
        }
        let mut list = Element::new("items", PUBSUB_NS).with_attr("node", n.node.as_str());
        for item in items {
            let Ok(payload) = Element::from_xml(&item.payload) else {
                counts.skipped.push(Skip {
                    jid: who.to_owned(),
                    what: format!("PEP item {}/{}", n.node, item.id),
                    reason: "stored payload does not parse".into(),
                });
                continue;
            };
            list.push(
                Element::new("item", PUBSUB_NS)
                    .with_attr("id", item.id)
                    .with_attr("publisher", item.publisher)
                    .with_child(payload),
            );
            counts.pep_items += 1;
        }
        published.push(list);
        counts.pep_nodes += 1;
    }
    user.push(owner);
    user.push(published);
    Ok(())
}
