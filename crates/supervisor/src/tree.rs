//! Tree snapshots of the registry: the data behind `chorusctl actors tree [--json]`.
//!
//! A [`TreeNode`] is a plain owned copy taken under the registry's read lock, so it can be
//! serialized, rendered or sent across the admin socket without holding anything live.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::registry::ActorStats;

/// One node of the supervision tree as seen at snapshot time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    /// Last path segment ("acceptor", "conn-17", ...).
    pub id: String,
    /// Full path from the root ("root/listeners/port:c2s@127.0.0.1:5222/acceptor").
    pub path: String,
    /// "supervisor", "worker", "group(one_for_all)" or free text given by the child spec.
    pub kind: String,
    /// "starting", "running", "restarting" or "stopping".
    pub status: String,
    /// Restarts of this child id by its supervisor.
    pub restarts: u32,
    /// Time since this incarnation's entry was created.
    pub uptime_ms: u64,
    /// Mailbox depth for actors that keep the gauge.
    pub mailbox: Option<i64>,
    /// Messages handled by this incarnation (0 for actors that don't count).
    pub handled: u64,
    /// The reason of the last abnormal exit of this child id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Children in start order.
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    pub(crate) fn from_entry(
        path: &str,
        kind: &str,
        stats: &Arc<ActorStats>,
        now: Instant,
    ) -> Self {
        let id = path.rsplit_once('/').map_or(path, |(_, id)| id);
        Self {
            id: id.to_owned(),
            path: path.to_owned(),
            kind: kind.to_owned(),
            status: stats.status().as_str().to_owned(),
            restarts: stats.restarts(),
            uptime_ms: u64::try_from(now.saturating_duration_since(stats.started_at).as_millis())
                .unwrap_or(u64::MAX),
            mailbox: stats.mailbox(),
            handled: stats.handled.load(std::sync::atomic::Ordering::Relaxed),
            last_error: stats.last_error(),
            children: Vec::new(),
        }
    }

    /// Number of nodes in this subtree, this one included.
    pub fn count(&self) -> usize {
        1 + self.children.iter().map(TreeNode::count).sum::<usize>()
    }

    /// Finds a descendant (or this node) by full path.
    pub fn find(&self, path: &str) -> Option<&TreeNode> {
        if self.path == path {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(path))
    }

    /// Renders the subtree as indented text, at most `depth` levels below this node:
    ///
    /// ```text
    /// root  supervisor  up 12s
    /// ├─ sessions  worker  up 12s
    /// └─ listeners  supervisor  up 12s
    ///    └─ acceptor  worker  up 12s  restarts 1
    /// ```
    pub fn render(&self, depth: Option<usize>) -> String {
        let mut out = String::new();
        self.render_line(&mut out);
        self.render_children(&mut out, "", depth);
        out
    }

    fn render_children(&self, out: &mut String, indent: &str, depth: Option<usize>) {
        if depth == Some(0) {
            return;
        }
        let below = depth.map(|d| d - 1);
        let last = self.children.len().saturating_sub(1);
        for (i, child) in self.children.iter().enumerate() {
            let (branch, cont) = if i == last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            out.push_str(indent);
            out.push_str(branch);
            child.render_line(out);
            child.render_children(out, &format!("{indent}{cont}"), below);
        }
    }

    fn render_line(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "{}  {}  up {}",
            self.id,
            self.kind,
            fmt_uptime(self.uptime_ms)
        );
        if self.status != "running" {
            let _ = write!(out, "  {}", self.status);
        }
        if self.restarts > 0 {
            let _ = write!(out, "  restarts {}", self.restarts);
        }
        if let Some(mailbox) = self.mailbox {
            let _ = write!(out, "  mailbox {mailbox}");
        }
        if self.handled > 0 {
            let _ = write!(out, "  handled {}", self.handled);
        }
        out.push('\n');
    }
}

/// Compact uptime: `12s`, `3m04s`, `2h03m`, `1d02h`.
fn fmt_uptime(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, kind: &str, children: Vec<TreeNode>) -> TreeNode {
        TreeNode {
            id: id.into(),
            path: id.into(),
            kind: kind.into(),
            status: "running".into(),
            restarts: 0,
            uptime_ms: 12_000,
            mailbox: None,
            handled: 0,
            last_error: None,
            children,
        }
    }

    #[test]
    fn renders_branches_and_depth() {
        let mut acceptor = node("acceptor", "worker", vec![]);
        acceptor.restarts = 1;
        let tree = node(
            "root",
            "supervisor",
            vec![
                node("sessions", "worker", vec![]),
                node(
                    "listeners",
                    "supervisor",
                    vec![acceptor, node("conns", "supervisor", vec![])],
                ),
            ],
        );
        assert_eq!(
            tree.render(None),
            "root  supervisor  up 12s\n\
             ├─ sessions  worker  up 12s\n\
             └─ listeners  supervisor  up 12s\n\
             \x20  ├─ acceptor  worker  up 12s  restarts 1\n\
             \x20  └─ conns  supervisor  up 12s\n"
        );
        assert_eq!(
            tree.render(Some(1)),
            "root  supervisor  up 12s\n\
             ├─ sessions  worker  up 12s\n\
             └─ listeners  supervisor  up 12s\n"
        );
    }

    #[test]
    fn uptime_formats() {
        assert_eq!(fmt_uptime(999), "0s");
        assert_eq!(fmt_uptime(64_000), "1m04s");
        assert_eq!(fmt_uptime(3_600_000 * 2 + 180_000), "2h03m");
        assert_eq!(fmt_uptime(86_400_000 + 7_200_000), "1d02h");
    }
}
