//! Server-wide counters, cheap to bump from any actor (atomics and a
//! `DashMap` for labelled families), rendered as OpenMetrics text for
//! `/metrics`. Gauges that the server can compute on demand (connections,
//! sessions, restarts, mailboxes) are passed in at render time rather than
//! mirrored here, so they cannot drift.
//!
//! Every family is exposed from the first scrape, its counters at zero:
//! labelled families start with every label value the protocol crates
//! define (each stream error condition, each SASL mechanism with either
//! result, each stanza kind). A family that appeared only after its first
//! increment made `rate()` and alerts on it blind until then, and a
//! dashboard could not tell "none yet" from "not scraped".

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use chorus_proto::{StanzaKind, StreamError};
use chorus_sasl::Mechanism;
use dashmap::DashMap;

/// Upper bounds of the stanza size histogram, in bytes.
const SIZE_BUCKETS: [u64; 6] = [256, 1024, 4096, 16384, 65536, 262144];

/// A counter family with one label.
#[derive(Default)]
pub struct Family(DashMap<String, AtomicU64>);

impl Family {
    /// A family whose `labels` are exposed at zero before any increment.
    pub fn with_labels<I, S>(labels: I) -> Family
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Family(
            labels
                .into_iter()
                .map(|l| (l.into(), AtomicU64::new(0)))
                .collect(),
        )
    }

    pub fn inc(&self, label: &str) {
        if let Some(c) = self.0.get(label) {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.0
            .entry(label.to_owned())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, label: &str) -> u64 {
        self.0
            .get(label)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    fn sorted(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .0
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        v.sort();
        v
    }
}

/// Every counter the server keeps.
pub struct Metrics {
    /// Stanzas received from clients, by kind (message, presence, iq).
    pub stanzas_in: Family,
    /// Stanzas written to clients, by kind.
    pub stanzas_out: Family,
    /// Outbound stanza sizes: cumulative bucket counts, sum and count.
    size_buckets: [AtomicU64; SIZE_BUCKETS.len()],
    size_sum: AtomicU64,
    size_count: AtomicU64,
    /// SASL outcomes, labelled `mechanism/result`.
    pub auth: Family,
    /// Stream errors sent, by condition.
    pub stream_errors: Family,
    /// Connections closed because their outbound queue overflowed.
    pub outbound_drops: AtomicU64,
    /// Presences held back for inactive clients (XEP-0352), and released.
    pub csi_held: AtomicU64,
    pub csi_flushed: AtomicU64,
    /// Requests answered by the `http`/`https` listeners, by status code.
    pub http_requests: Family,
    /// Bytes of files stored by HTTP File Upload (XEP-0363).
    pub upload_bytes: AtomicU64,
    /// Stanzas for remote domains bounced to their senders (federation).
    pub s2s_bounced: AtomicU64,
}

/// The `kind` label of stanzas from a client that are none of the three
/// kinds (answered with `unsupported-stanza-type`).
pub const OTHER_STANZA: &str = "other";

impl Default for Metrics {
    fn default() -> Self {
        let kinds = || StanzaKind::ALL.into_iter().map(StanzaKind::as_str);
        Metrics {
            stanzas_in: Family::with_labels(kinds().chain([OTHER_STANZA])),
            stanzas_out: Family::with_labels(kinds()),
            size_buckets: Default::default(),
            size_sum: AtomicU64::new(0),
            size_count: AtomicU64::new(0),
            auth: Family::with_labels(Mechanism::ALL.into_iter().flat_map(|m| {
                ["success", "failure"].map(|result| format!("{}/{result}", m.name()))
            })),
            stream_errors: Family::with_labels(StreamError::CONDITIONS),
            outbound_drops: AtomicU64::new(0),
            csi_held: AtomicU64::new(0),
            csi_flushed: AtomicU64::new(0),
            // The statuses the listeners answer, so that each series
            // exists (at 0) before its first request.
            http_requests: Family::with_labels(
                [
                    "101", "200", "201", "204", "206", "400", "403", "404", "405", "409", "411",
                    "413", "416", "426", "500", "503",
                ]
                .map(str::to_owned),
            ),
            upload_bytes: AtomicU64::new(0),
            s2s_bounced: AtomicU64::new(0),
        }
    }
}

/// Values computed by the server at scrape time.
pub struct Snapshot {
    /// Open connections by listener id.
    pub connections: Vec<(String, u64)>,
    pub sessions: u64,
    /// Restarts of each supervisor's children, by supervisor path: every
    /// supervisor in the tree, 0 included.
    pub restarts: Vec<(String, u64)>,
    /// The deepest counted mailboxes, by actor path.
    pub mailboxes: Vec<(String, i64)>,
    pub module_panics: u64,
    /// Server-to-server streams by direction (`in`, `out`).
    pub s2s_streams: Vec<(String, i64)>,
    /// Stanzas waiting for remote domains.
    pub s2s_queued: u64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn observe_size(&self, bytes: usize) {
        let b = bytes as u64;
        for (i, le) in SIZE_BUCKETS.iter().enumerate() {
            if b <= *le {
                self.size_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.size_sum.fetch_add(b, Ordering::Relaxed);
        self.size_count.fetch_add(1, Ordering::Relaxed);
    }

    /// The OpenMetrics text exposition (`application/openmetrics-text;
    /// version=1.0.0`), ending with `# EOF`.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut o = String::new();
        // Every family is written, with its descriptors, even before it
        // has a sample (only the mailbox gauge can have none).
        let gauge =
            |o: &mut String, name: &str, help: &str, label: &str, rows: &[(String, i64)]| {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
                for (l, v) in rows {
                    let _ = writeln!(o, "{name}{{{label}=\"{}\"}} {v}", escape(l));
                }
            };
        let counter =
            |o: &mut String, name: &str, help: &str, label: &str, rows: &[(String, u64)]| {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
                for (l, v) in rows {
                    let _ = writeln!(o, "{name}_total{{{label}=\"{}\"}} {v}", escape(l));
                }
            };
        let conns: Vec<(String, i64)> = snap
            .connections
            .iter()
            .map(|(l, v)| (l.clone(), *v as i64))
            .collect();
        gauge(
            &mut o,
            "chorus_connections",
            "Open client connections.",
            "listener",
            &conns,
        );
        let _ = writeln!(
            o,
            "# HELP chorus_sessions Bound client sessions.\n# TYPE chorus_sessions gauge\nchorus_sessions {}",
            snap.sessions
        );
        counter(
            &mut o,
            "chorus_stanzas_in",
            "Stanzas received from clients.",
            "kind",
            &self.stanzas_in.sorted(),
        );
        counter(
            &mut o,
            "chorus_stanzas_out",
            "Stanzas written to clients.",
            "kind",
            &self.stanzas_out.sorted(),
        );
        let _ = writeln!(
            o,
            "# HELP chorus_stanza_size_bytes Size of stanzas written to clients.\n# TYPE chorus_stanza_size_bytes histogram"
        );
        for (i, le) in SIZE_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "chorus_stanza_size_bytes_bucket{{le=\"{le}\"}} {}",
                self.size_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.size_count.load(Ordering::Relaxed);
        let _ = writeln!(o, "chorus_stanza_size_bytes_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            o,
            "chorus_stanza_size_bytes_sum {}",
            self.size_sum.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "chorus_stanza_size_bytes_count {count}");
        let _ = writeln!(
            o,
            "# HELP chorus_auth SASL authentications by mechanism and result.\n# TYPE chorus_auth counter"
        );
        for (l, v) in &self.auth.sorted() {
            let (mech, result) = l.split_once('/').unwrap_or((l.as_str(), ""));
            let _ = writeln!(
                o,
                "chorus_auth_total{{mechanism=\"{}\",result=\"{}\"}} {v}",
                escape(mech),
                escape(result)
            );
        }
        counter(
            &mut o,
            "chorus_stream_errors",
            "Stream errors sent, by condition.",
            "condition",
            &self.stream_errors.sorted(),
        );
        counter(
            &mut o,
            "chorus_http_requests",
            "Requests answered by the http and https listeners, by status.",
            "status",
            &self.http_requests.sorted(),
        );
        let _ = writeln!(
            o,
            "# HELP chorus_upload_stored_bytes Bytes of files stored by HTTP File Upload.\n# TYPE chorus_upload_stored_bytes counter\nchorus_upload_stored_bytes_total {}",
            self.upload_bytes.load(Ordering::Relaxed)
        );
        gauge(
            &mut o,
            "chorus_s2s_streams",
            "Server-to-server streams, by direction.",
            "direction",
            &snap.s2s_streams,
        );
        let _ = writeln!(
            o,
            "# HELP chorus_s2s_queued_stanzas Stanzas waiting for remote domains.\n# TYPE chorus_s2s_queued_stanzas gauge\nchorus_s2s_queued_stanzas {}",
            snap.s2s_queued
        );
        let _ = writeln!(
            o,
            "# HELP chorus_s2s_bounced_stanzas Stanzas for remote domains bounced to their senders.\n# TYPE chorus_s2s_bounced_stanzas counter\nchorus_s2s_bounced_stanzas_total {}",
            self.s2s_bounced.load(Ordering::Relaxed)
        );
        counter(
            &mut o,
            "chorus_actor_restarts",
            "Child restarts, by supervisor.",
            "supervisor",
            &snap.restarts,
        );
        let _ = writeln!(
            o,
            "# HELP chorus_outbound_queue_drops Connections closed on outbound queue overflow.\n# TYPE chorus_outbound_queue_drops counter\nchorus_outbound_queue_drops_total {}",
            self.outbound_drops.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP chorus_csi_held Presences held back for inactive clients (XEP-0352).\n# TYPE chorus_csi_held counter\nchorus_csi_held_total {}",
            self.csi_held.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP chorus_csi_flushed Held presences released to clients.\n# TYPE chorus_csi_flushed counter\nchorus_csi_flushed_total {}",
            self.csi_flushed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP chorus_module_panics Panics caught in module handlers.\n# TYPE chorus_module_panics counter\nchorus_module_panics_total {}",
            snap.module_panics
        );
        // Last: the one family that may have no sample (no actor counts
        // its mailbox), and some parsers (the openmetrics-parser crate)
        // reject a family without samples when another family follows it,
        // although OpenMetrics allows it.
        gauge(
            &mut o,
            "chorus_mailbox_depth",
            "Deepest counted actor mailboxes.",
            "actor",
            &snap.mailboxes,
        );
        o.push_str("# EOF\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_registry_exposes_every_known_label_at_zero() {
        let text = Metrics::default().render(&Snapshot {
            connections: vec![],
            sessions: 0,
            restarts: vec![("root".into(), 0)],
            mailboxes: vec![],
            module_panics: 0,
            s2s_streams: vec![("in".into(), 0), ("out".into(), 0)],
            s2s_queued: 0,
        });
        for line in [
            "chorus_stanzas_in_total{kind=\"other\"} 0",
            "chorus_stanzas_out_total{kind=\"presence\"} 0",
            "chorus_auth_total{mechanism=\"SCRAM-SHA-256-PLUS\",result=\"failure\"} 0",
            "chorus_auth_total{mechanism=\"PLAIN\",result=\"success\"} 0",
            "chorus_stream_errors_total{condition=\"see-other-host\"} 0",
            "chorus_actor_restarts_total{supervisor=\"root\"} 0",
            "# TYPE chorus_connections gauge",
            "# TYPE chorus_mailbox_depth gauge",
            "chorus_s2s_streams{direction=\"out\"} 0",
            "chorus_s2s_queued_stanzas 0",
            "chorus_s2s_bounced_stanzas_total 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // The family that may be empty comes last, just before the end.
        assert!(text.ends_with(
            "# HELP chorus_mailbox_depth Deepest counted actor mailboxes.\n\
             # TYPE chorus_mailbox_depth gauge\n# EOF\n"
        ));
    }

    #[test]
    fn render_ends_with_eof_and_counts() {
        let m = Metrics::default();
        m.stanzas_in.inc("message");
        m.stanzas_in.inc("message");
        m.observe_size(300);
        let text = m.render(&Snapshot {
            connections: vec![("port:c2s@127.0.0.1:5222".into(), 3)],
            sessions: 2,
            restarts: vec![],
            mailboxes: vec![],
            module_panics: 0,
            s2s_streams: vec![("in".into(), 0), ("out".into(), 0)],
            s2s_queued: 0,
        });
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("chorus_stanzas_in_total{kind=\"message\"} 2"));
        assert!(text.contains("chorus_stanza_size_bytes_bucket{le=\"256\"} 0"));
        assert!(text.contains("chorus_stanza_size_bytes_bucket{le=\"1024\"} 1"));
        assert!(text.contains("chorus_connections{listener=\"port:c2s@127.0.0.1:5222\"} 3"));
    }
}
