//! What an import did, counted as it goes: accounts and their parts
//! imported, hosts seen, and everything skipped with the reason, listed up
//! to a bound and counted beyond it; then rendered as the command's JSON
//! result and its human-readable text.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

/// Skipped entries listed one by one in the report; the rest are counted.
const MAX_LISTED: usize = 1000;
/// Skipped entries in the human-readable text.
const MAX_LISTED_TEXT: usize = 50;

/// One skipped thing, for the report.
#[derive(Debug, Clone)]
pub(super) struct Skip {
    /// The account or host it belonged to.
    pub(super) jid: String,
    /// What was skipped: `account`, `roster item x@y`, `host`...
    pub(super) what: String,
    pub(super) reason: String,
}

/// A host as the import saw it.
#[derive(Debug, Clone)]
pub(super) struct HostReport {
    pub(super) domain: String,
    pub(super) imported: bool,
    pub(super) accounts: u64,
    pub(super) reason: Option<String>,
}

/// What an import did, counted as it goes.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) accounts: u64,
    pub(super) roster_items: u64,
    pub(super) vcards: u64,
    pub(super) private: u64,
    pub(super) offline: u64,
    pub(super) pep_nodes: u64,
    pub(super) pep_items: u64,
    pub(super) hosts: Vec<HostReport>,
    pub(super) skipped: Vec<Skip>,
    pub(super) skipped_total: u64,
}

impl Report {
    pub(super) fn skip(
        &mut self,
        jid: impl Into<String>,
        what: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.skipped_total += 1;
        if self.skipped.len() < MAX_LISTED {
            self.skipped.push(Skip {
                jid: jid.into(),
                what: what.into(),
                reason: reason.into(),
            });
        }
    }

    pub(super) fn merge(&mut self, other: Report) {
        self.accounts += other.accounts;
        self.roster_items += other.roster_items;
        self.vcards += other.vcards;
        self.private += other.private;
        self.offline += other.offline;
        self.pep_nodes += other.pep_nodes;
        self.pep_items += other.pep_items;
        self.hosts.extend(other.hosts);
        // Entries beyond the other's list were counted but not kept.
        let unlisted = other
            .skipped_total
            .saturating_sub(other.skipped.len() as u64);
        for s in other.skipped {
            self.skip(s.jid, s.what, s.reason);
        }
        self.skipped_total += unlisted;
    }
}

/// The command's result: counts, hosts, what was skipped, and the text.
pub(super) fn import_result(path: &Path, r: &Report, elapsed: Duration) -> Value {
    let mut text = format!(
        "imported {} in {:.2} s\n  accounts          {}\n  roster items      {}\n  vCards            {}\n  private XML       {}\n  offline messages  {}\n  PEP nodes         {} ({} items)\n",
        path.display(),
        elapsed.as_secs_f64(),
        r.accounts,
        r.roster_items,
        r.vcards,
        r.private,
        r.offline,
        r.pep_nodes,
        r.pep_items
    );
    if r.skipped_total > 0 {
        text.push_str(&format!("skipped {}:\n", r.skipped_total));
        for s in r.skipped.iter().take(MAX_LISTED_TEXT) {
            text.push_str(&format!("  {}: {}: {}\n", s.jid, s.what, s.reason));
        }
        let listed = r.skipped.len().min(MAX_LISTED_TEXT) as u64;
        if r.skipped_total > listed {
            text.push_str(&format!(
                "  ... and {} more (--json lists the first {MAX_LISTED})\n",
                r.skipped_total - listed
            ));
        }
    }
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &r.skipped {
        *reasons.entry(s.reason.as_str()).or_default() += 1;
    }
    json!({
        "file": path.display().to_string(),
        "elapsed_ms": elapsed.as_millis() as u64,
        "imported": {
            "accounts": r.accounts,
            "roster_items": r.roster_items,
            "vcards": r.vcards,
            "private": r.private,
            "offline": r.offline,
            "pep_nodes": r.pep_nodes,
            "pep_items": r.pep_items,
        },
        "hosts": r.hosts.iter().map(|h| json!({
            "domain": h.domain,
            "imported": h.imported,
            "accounts": h.accounts,
            "reason": h.reason,
        })).collect::<Vec<_>>(),
        "skipped": r.skipped.iter().map(|s| json!({
            "jid": s.jid,
            "what": s.what,
            "reason": s.reason,
        })).collect::<Vec<_>>(),
        "skipped_total": r.skipped_total,
        "skipped_omitted": r.skipped_total.saturating_sub(r.skipped.len() as u64),
        "text": text,
    })
}
