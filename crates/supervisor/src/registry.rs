//! The actor registry: our own index of live actors by tree path.
//!
//! ractor's global names are freed late and its lookup by id needs the `cluster` feature, so the
//! admin CLI (`actors tree`, `actors info`, `actors kill <path>`) and the chaos tests go through
//! this index instead. Supervisors are the only writers in normal operation: a supervisor
//! registers each child at `<own path>/<child id>` and removes the entry when the child exits.
//!
//! Entries live in one `BTreeMap` keyed by path, so a subtree is a range query and a snapshot of
//! tens of thousands of entries is a single pass under a read lock.
//!
//! Each entry records the *owner* that wrote it (a token unique to one supervisor incarnation).
//! A supervisor's `Drop` removes only the entries it owns: when a supervisor is killed and its
//! parent restarts it, the new incarnation may register its children before the old state is
//! dropped, and an owner-blind cleanup would erase them.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use ractor::ActorCell;

use crate::tree::TreeNode;

/// How [`Registry::kill`] ends an actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// ractor's kill signal: the actor's current work is cancelled, `post_stop` does not run,
    /// and its supervisor sees an abnormal exit (`"killed"`).
    Kill,
    /// A graceful stop without a reason: the actor finishes its current message, runs
    /// `post_stop`, and its supervisor sees a normal exit.
    Stop,
}

/// Errors from registry operations addressed by path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Nothing is registered at this path.
    #[error("no actor at path `{0}`")]
    NotFound(String),
    /// The path is registered but its actor is still being started, so there is no cell to signal.
    #[error("actor at path `{0}` is still starting")]
    NotRunning(String),
}

/// Lifecycle status of a registry entry, as shown in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The start function is running; there is no cell yet.
    Starting = 0,
    /// The actor is up.
    Running = 1,
    /// The actor exited and its supervisor is about to start it again.
    Restarting = 2,
    /// Its supervisor is shutting it down.
    Stopping = 3,
}

impl Status {
    /// The lowercase name used in snapshots and the rendered tree.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Stopping => "stopping",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Status::Starting,
            1 => Status::Running,
            2 => Status::Restarting,
            _ => Status::Stopping,
        }
    }
}

/// Counters shared between a registry entry and the actor it describes.
///
/// The actor gets its `Arc` from [`crate::StartCtx::stats`] (the supervisor creates the entry
/// before calling the start function) and updates the counters lock-free on its hot path; the
/// registry only reads them when a snapshot is taken.
#[derive(Debug)]
pub struct ActorStats {
    /// Mailbox depth gauge: senders increment, the actor decrements when it handles a message.
    /// Only meaningful once [`ActorStats::count_mailbox`] was called (see `mailbox_counted`).
    pub mailbox: AtomicI64,
    /// Whether this actor maintains `mailbox`; actors that don't count show no mailbox figure
    /// instead of a misleading zero.
    pub mailbox_counted: AtomicBool,
    /// Messages handled so far by this incarnation.
    pub handled: AtomicU64,
    /// How many times the supervisor restarted this child id (carried over to each new
    /// incarnation's stats by the supervisor, for the lifetime of that supervisor).
    pub restarts: AtomicU32,
    /// The reason of the last abnormal exit of this child id, written by the supervisor.
    pub last_error: Mutex<Option<String>>,
    /// When this incarnation's entry was created.
    pub started_at: Instant,
    /// A [`Status`] stored as its `u8` discriminant.
    pub status: AtomicU8,
}

impl Default for ActorStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ActorStats {
    /// Fresh stats for an actor that is starting.
    pub fn new() -> Self {
        Self {
            mailbox: AtomicI64::new(0),
            mailbox_counted: AtomicBool::new(false),
            handled: AtomicU64::new(0),
            restarts: AtomicU32::new(0),
            last_error: Mutex::new(None),
            started_at: Instant::now(),
            status: AtomicU8::new(Status::Starting as u8),
        }
    }

    /// Declares that this actor maintains the mailbox gauge.
    pub fn count_mailbox(&self) {
        self.mailbox_counted.store(true, Ordering::Relaxed);
    }

    /// The mailbox gauge, or `None` when the actor does not count it.
    pub fn mailbox(&self) -> Option<i64> {
        self.mailbox_counted
            .load(Ordering::Relaxed)
            .then(|| self.mailbox.load(Ordering::Relaxed))
    }

    /// Called by a sender after a successful send.
    pub fn mailbox_inc(&self) {
        self.mailbox.fetch_add(1, Ordering::Relaxed);
    }

    /// Called by the actor when it takes a message: one fewer queued, one more handled.
    pub fn mailbox_dec(&self) {
        self.mailbox.fetch_sub(1, Ordering::Relaxed);
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a handled message for actors that do not keep the mailbox gauge.
    pub fn handled_one(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Current lifecycle status.
    pub fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Relaxed))
    }

    /// Sets the lifecycle status.
    pub fn set_status(&self, status: Status) {
        self.status.store(status as u8, Ordering::Relaxed);
    }

    /// Restarts of this child id so far.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The last abnormal exit reason, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records an abnormal exit reason.
    pub fn set_last_error(&self, reason: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = reason;
    }
}

/// What a registry entry points at.
#[derive(Clone)]
pub(crate) enum Target {
    /// A live actor.
    Cell(ActorCell),
    /// A group node (no actor of its own); its members are the entries below it.
    Group,
    /// Reserved by a supervisor while the child's start function runs.
    Pending,
}

struct Entry {
    kind: &'static str,
    target: Target,
    stats: Arc<ActorStats>,
    /// Sort key among siblings: supervisors use the child's start sequence, so restarted
    /// children keep their place in the tree.
    order: u64,
    /// The supervisor incarnation that wrote the entry, or [`NO_OWNER`].
    owner: u64,
}

/// Owner of entries written through the public [`Registry::register`].
pub(crate) const NO_OWNER: u64 = 0;

struct Inner {
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Order keys for entries registered without an explicit one; starts high so that such
    /// entries sort after supervisor-managed siblings.
    next_order: AtomicU64,
}

/// The shared index of actors by path. Cheap to clone.
#[derive(Clone)]
pub struct Registry(Arc<Inner>);

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("entries", &self.len())
            .finish()
    }
}

/// The first key after every path that has `prefix` as a strict ancestor: `'/'` is followed by
/// `'0'` in ASCII, so `"a/b0"` bounds the range of `"a/b/..."`.
fn subtree_end(path: &str) -> String {
    format!("{path}0")
}

fn subtree_start(path: &str) -> String {
    format!("{path}/")
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            entries: RwLock::new(BTreeMap::new()),
            next_order: AtomicU64::new(1 << 62),
        }))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.0
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.0
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `cell` at `path` (`None` registers a group node, whose members are the
    /// entries below it). Re-registering a path keeps its place among its siblings and its
    /// restart count; the returned stats are fresh for the new incarnation.
    pub fn register(
        &self,
        path: &str,
        kind: &'static str,
        cell: Option<ActorCell>,
    ) -> Arc<ActorStats> {
        let target = match cell {
            Some(cell) => Target::Cell(cell),
            None => Target::Group,
        };
        let mut map = self.write();
        let (order, restarts, last_error) = match map.get(path) {
            Some(old) => (old.order, old.stats.restarts(), old.stats.last_error()),
            None => (self.0.next_order.fetch_add(1, Ordering::Relaxed), 0, None),
        };
        let stats = Arc::new(ActorStats::new());
        stats.restarts.store(restarts, Ordering::Relaxed);
        stats.set_last_error(last_error);
        stats.set_status(Status::Running);
        map.insert(
            path.to_owned(),
            Entry {
                kind,
                target,
                stats: Arc::clone(&stats),
                order,
                owner: NO_OWNER,
            },
        );
        stats
    }

    /// Inserts or replaces an entry on behalf of a supervisor.
    pub(crate) fn insert(
        &self,
        path: &str,
        kind: &'static str,
        target: Target,
        owner: u64,
        order: u64,
        stats: Arc<ActorStats>,
    ) {
        self.write().insert(
            path.to_owned(),
            Entry {
                kind,
                target,
                stats,
                order,
                owner,
            },
        );
    }

    /// Points an existing (pending) entry at its now-started actor. Does nothing if the entry
    /// was removed meanwhile, so a start that races with a subtree cleanup leaves no stale entry.
    pub(crate) fn attach(&self, path: &str, cell: ActorCell) -> bool {
        let mut map = self.write();
        match map.get_mut(path) {
            Some(entry) => {
                entry.target = Target::Cell(cell);
                entry.stats.set_status(Status::Running);
                true
            }
            None => false,
        }
    }

    /// Sets the status of the entry at `path`, if any.
    pub(crate) fn set_status(&self, path: &str, status: Status) {
        if let Some(entry) = self.read().get(path) {
            entry.stats.set_status(status);
        }
    }

    /// Removes the entry at `path` (not its subtree).
    pub fn unregister(&self, path: &str) {
        self.write().remove(path);
    }

    /// Removes `path` and every entry below it.
    pub fn unregister_subtree(&self, path: &str) {
        let mut map = self.write();
        map.remove(path);
        Self::remove_below(&mut map, path, None);
    }

    /// Removes every entry strictly below `path`.
    pub(crate) fn unregister_below(&self, path: &str) {
        Self::remove_below(&mut self.write(), path, None);
    }

    /// Removes the entries strictly below `path` that `owner` wrote.
    pub(crate) fn unregister_owned_below(&self, path: &str, owner: u64) {
        Self::remove_below(&mut self.write(), path, Some(owner));
    }

    fn remove_below(map: &mut BTreeMap<String, Entry>, path: &str, owner: Option<u64>) {
        let doomed: Vec<String> = map
            .range(subtree_start(path)..subtree_end(path))
            .filter(|(_, e)| owner.is_none_or(|o| e.owner == o))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            map.remove(&key);
        }
    }

    /// The live actor at `path`. Group nodes and entries still starting have none.
    pub fn lookup(&self, path: &str) -> Option<ActorCell> {
        match &self.read().get(path)?.target {
            Target::Cell(cell) => Some(cell.clone()),
            Target::Group | Target::Pending => None,
        }
    }

    /// The shared counters of the entry at `path`.
    pub fn stats(&self, path: &str) -> Option<Arc<ActorStats>> {
        self.read().get(path).map(|e| Arc::clone(&e.stats))
    }

    /// The kind recorded for `path` ("supervisor", "worker", "group(one_for_all)", ...).
    pub fn kind(&self, path: &str) -> Option<&'static str> {
        self.read().get(path).map(|e| e.kind)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the registry is empty.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Kills or stops the actor at `path`. For a group node, every actor below it is signalled,
    /// which ends the group. The signals are sent without waiting for the exits.
    pub fn kill(&self, path: &str, mode: StopMode) -> Result<(), RegistryError> {
        let cells: Vec<ActorCell> = {
            let map = self.read();
            let entry = map
                .get(path)
                .ok_or_else(|| RegistryError::NotFound(path.to_owned()))?;
            match &entry.target {
                Target::Cell(cell) => vec![cell.clone()],
                Target::Pending => return Err(RegistryError::NotRunning(path.to_owned())),
                Target::Group => map
                    .range(subtree_start(path)..subtree_end(path))
                    .filter_map(|(_, e)| match &e.target {
                        Target::Cell(cell) => Some(cell.clone()),
                        Target::Group | Target::Pending => None,
                    })
                    .collect(),
            }
        };
        for cell in cells {
            match mode {
                StopMode::Kill => cell.kill(),
                StopMode::Stop => cell.stop(None),
            }
        }
        Ok(())
    }

    /// Registered paths matching a glob: `*` matches within one path segment (`conn-*`),
    /// a `**` segment matches any number of segments (`root/**/acceptor`).
    pub fn paths_matching(&self, pattern: &str) -> Vec<String> {
        let pat: Vec<&str> = pattern.split('/').collect();
        // The literal leading segments narrow the scan to one subtree.
        let literal = pat.iter().take_while(|s| !s.contains('*')).count();
        let map = self.read();
        let matches = |path: &str| {
            let segs: Vec<&str> = path.split('/').collect();
            glob_match(&pat, &segs)
        };
        if literal == 0 {
            return map.keys().filter(|k| matches(k)).cloned().collect();
        }
        let prefix = pat[..literal].join("/");
        let mut out = Vec::new();
        if map.contains_key(&prefix) && matches(&prefix) {
            out.push(prefix.clone());
        }
        out.extend(
            map.range(subtree_start(&prefix)..subtree_end(&prefix))
                .map(|(k, _)| k)
                .filter(|k| matches(k))
                .cloned(),
        );
        out
    }

    /// A tree of the entry at `path` and its descendants, at most `depth` levels below it
    /// (`Some(0)` is the node alone, `None` is unlimited). Siblings come in start order.
    /// An entry whose parent entry is missing (a transient state during restarts) is shown
    /// under its nearest registered ancestor rather than hidden.
    pub fn snapshot(&self, path: &str, depth: Option<usize>) -> Option<TreeNode> {
        let map = self.read();
        let root = map.get(path)?;
        let now = Instant::now();

        struct Draft<'a> {
            path: &'a str,
            order: u64,
            node: Option<TreeNode>,
            children: Vec<usize>,
        }
        let mut nodes: Vec<Draft<'_>> = vec![Draft {
            path,
            order: root.order,
            node: Some(TreeNode::from_entry(path, root.kind, &root.stats, now)),
            children: Vec::new(),
        }];
        let mut index: HashMap<&str, usize> = HashMap::new();
        index.insert(path, 0);

        let prefix_len = path.len() + 1;
        for (key, entry) in map.range(subtree_start(path)..subtree_end(path)) {
            let rel_depth = key[prefix_len..].matches('/').count() + 1;
            if depth.is_some_and(|d| rel_depth > d) {
                continue;
            }
            // Ancestors are prefixes, hence sort earlier and are already indexed.
            let mut parent = 0;
            let mut cursor: &str = key;
            while let Some((up, _)) = cursor.rsplit_once('/') {
                if let Some(&i) = index.get(up) {
                    parent = i;
                    break;
                }
                cursor = up;
            }
            let i = nodes.len();
            nodes.push(Draft {
                path: key,
                order: entry.order,
                node: Some(TreeNode::from_entry(key, entry.kind, &entry.stats, now)),
                children: Vec::new(),
            });
            index.insert(key, i);
            nodes[parent].children.push(i);
        }
        drop(index);

        for i in 0..nodes.len() {
            let mut kids = std::mem::take(&mut nodes[i].children);
            kids.sort_by(|&a, &b| {
                nodes[a]
                    .order
                    .cmp(&nodes[b].order)
                    .then_with(|| natural_cmp(nodes[a].path, nodes[b].path))
            });
            nodes[i].children = kids;
        }

        fn assemble(nodes: &mut [Draft<'_>], i: usize) -> Option<TreeNode> {
            let mut node = nodes[i].node.take()?;
            let kids = std::mem::take(&mut nodes[i].children);
            node.children = kids
                .into_iter()
                .filter_map(|k| assemble(nodes, k))
                .collect();
            Some(node)
        }
        assemble(&mut nodes, 0)
    }
}

/// Segment-wise glob match; `**` segments may match zero or more path segments.
fn glob_match(pat: &[&str], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| glob_match(rest, &path[i..])),
        Some((p, rest)) => match path.split_first() {
            Some((s, path_rest)) => segment_match(p, s) && glob_match(rest, path_rest),
            None => false,
        },
    }
}

/// `*` matches any run of characters inside a segment.
fn segment_match(pat: &str, s: &str) -> bool {
    let mut parts = pat.split('*');
    let Some(first) = parts.next() else {
        return s.is_empty();
    };
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No '*' at all: the whole segment must be literal.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Compares strings treating runs of ASCII digits as numbers, so `conn-2` sorts before `conn-10`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> CmpOrdering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return CmpOrdering::Equal,
            (None, Some(_)) => return CmpOrdering::Less,
            (Some(_), None) => return CmpOrdering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                // Strip leading zeros, then a longer digit run is a bigger number.
                let trim = |n: &[u8]| -> usize { n.iter().take_while(|&&c| c == b'0').count() };
                let (na, nb) = (&na[trim(na)..], &nb[trim(nb)..]);
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != CmpOrdering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn segment_globs() {
        assert!(segment_match("conn-*", "conn-17"));
        assert!(segment_match("*", "anything"));
        assert!(segment_match("a*b*c", "aXXbYYc"));
        assert!(!segment_match("a*b*c", "aXXbYY"));
        assert!(segment_match("exact", "exact"));
        assert!(!segment_match("exact", "exactly"));
        assert!(segment_match("*ab", "ab"));
        assert!(!segment_match("ab*ab", "ab"));
    }

    #[test]
    fn path_globs() {
        let m = |p: &str, s: &str| {
            let p: Vec<&str> = p.split('/').collect();
            let s: Vec<&str> = s.split('/').collect();
            glob_match(&p, &s)
        };
        assert!(m("root/*/acceptor", "root/port:c2s/acceptor"));
        assert!(!m("root/*/acceptor", "root/listeners/port:c2s/acceptor"));
        assert!(m("root/**/acceptor", "root/listeners/port:c2s/acceptor"));
        assert!(m("root/**", "root"));
        assert!(m("**/socket", "root/conns/conn-1/socket"));
        assert!(!m("**/socket", "root/conns/conn-1/socket2"));
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("conn-2", "conn-10"), CmpOrdering::Less);
        assert_eq!(natural_cmp("conn-10", "conn-9"), CmpOrdering::Greater);
        assert_eq!(natural_cmp("a", "b"), CmpOrdering::Less);
        assert_eq!(natural_cmp("conn-007", "conn-7"), CmpOrdering::Equal);
    }

    #[test]
    fn subtree_removal_spares_siblings_with_common_prefix() {
        let r = Registry::new();
        for p in ["a", "a/b", "a/b/c", "a/b-c", "a/bc", "a/b0"] {
            r.register(p, "worker", None);
        }
        r.unregister_subtree("a/b");
        let mut left = r.paths_matching("**");
        left.sort();
        assert_eq!(left, vec!["a", "a/b-c", "a/b0", "a/bc"]);
    }

    #[test]
    fn owned_cleanup_only_removes_own_entries() {
        let r = Registry::new();
        let stats = || Arc::new(ActorStats::new());
        r.insert("s", "supervisor", Target::Pending, 1, 0, stats());
        r.insert("s/old", "worker", Target::Pending, 7, 0, stats());
        r.insert("s/new", "worker", Target::Pending, 8, 1, stats());
        r.unregister_owned_below("s", 7);
        assert!(r.stats("s/old").is_none());
        assert!(r.stats("s/new").is_some());
        assert!(r.stats("s").is_some());
    }

    #[test]
    fn snapshot_of_a_large_tree_is_complete_and_ordered() {
        let r = Registry::new();
        r.register("root", "supervisor", None);
        r.register("root/conns", "supervisor", None);
        for n in 1..=10_000 {
            let conn = format!("root/conns/conn-{n}");
            r.register(&conn, "group(one_for_all)", None);
            for m in ["socket", "receiver", "c2s"] {
                r.register(&format!("{conn}/{m}"), "worker", None);
            }
        }
        let started = Instant::now();
        let tree = r.snapshot("root", None).unwrap();
        eprintln!(
            "snapshot of {} entries took {:?}",
            r.len(),
            started.elapsed()
        );
        assert_eq!(tree.count(), r.len());
        let conns = &tree.children[0];
        assert_eq!(conns.children[9].id, "conn-10");
        assert_eq!(conns.children[9_999].id, "conn-10000");
        assert_eq!(conns.children[0].children[2].id, "c2s");
    }

    #[test]
    fn kill_unknown_path_is_not_found() {
        let r = Registry::new();
        assert_eq!(
            r.kill("nope", StopMode::Kill),
            Err(RegistryError::NotFound("nope".into()))
        );
    }
}
