//! The session table: who is bound where, and how to reach them.

use std::sync::atomic::{AtomicBool, AtomicI8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chorus_jid::{BareJid, FullJid};
use chorus_xml::Element;
use dashmap::DashMap;

/// How routing reaches a session's actor without knowing its type.
pub trait SessionSink: Send + Sync + 'static {
    /// Queues a routed stanza for the session. False if the session is gone.
    fn deliver(&self, stanza: Element) -> bool;
    /// As [`deliver`](Self::deliver), but gives the stanza back when the
    /// session is gone, so that it can be routed as if it had not been there.
    fn try_deliver(&self, stanza: Element) -> Result<(), Element> {
        let copy = stanza.clone();
        if self.deliver(stanza) {
            Ok(())
        } else {
            Err(copy)
        }
    }
    /// Tells the session it was replaced by a new binding of its full JID
    /// (RFC 6120 §7.7.2.2): it ends its stream with `<conflict/>`.
    fn replaced(&self);
    /// A message went to offline storage while this session was (or was
    /// becoming) available: it reads offline storage again.
    fn offline_waiting(&self) {}
    /// An operator ends the session (`chorusctl sessions kick`).
    fn kick(&self, reason: String);
    /// The account was removed (by its user or an operator): the session
    /// ends with `<not-authorized/>` (XEP-0077 §3.2).
    fn account_removed(&self);
    /// The client stopped answering (XEP-0199 keepalive): its connection
    /// is dead, though the session may outlive it (XEP-0198).
    fn connection_lost(&self) {}
}

/// Milliseconds since the first call in this process: a clock for session
/// timestamps that fits an atomic.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One bound resource.
pub struct Session {
    pub full: FullJid,
    /// The connection that bound it: removal only removes our own entry,
    /// never the session that replaced us.
    pub conn_id: u64,
    /// Presence priority (RFC 6121 §4.7.2.3), -128..=127.
    priority: AtomicI8,
    /// Sent initial presence and not yet unavailable (RFC 6121 §4.2).
    available: AtomicBool,
    /// Requested the roster, so it gets roster pushes (RFC 6121 §2.1.6).
    interested: AtomicBool,
    /// Enabled message carbons (XEP-0280).
    carbons: AtomicBool,
    /// The last broadcast presence, to answer probes (RFC 6121 §4.3.2).
    last_presence: Mutex<Option<Element>>,
    /// When the client last sent anything (`now_ms`), for the keepalive.
    last_active: AtomicU64,
    /// When the keepalive pinged a silent client (`now_ms`), 0 for never
    /// since it last sent something.
    ping_sent: AtomicU64,
    /// The connection is gone and the session waits for a resumption
    /// (XEP-0198): nothing can reach the client.
    detached: AtomicBool,
    /// What feature modules keep on the session, one value per type
    /// (`Session::mark`, `Session::marked`); empty for most sessions.
    marks: Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>,
    pub sink: Box<dyn SessionSink>,
}

impl Session {
    pub fn new(full: FullJid, conn_id: u64, sink: Box<dyn SessionSink>) -> Self {
        Session {
            full,
            conn_id,
            priority: AtomicI8::new(0),
            available: AtomicBool::new(false),
            interested: AtomicBool::new(false),
            carbons: AtomicBool::new(false),
            last_presence: Mutex::new(None),
            last_active: AtomicU64::new(now_ms()),
            ping_sent: AtomicU64::new(0),
            detached: AtomicBool::new(false),
            marks: Mutex::new(Vec::new()),
            sink,
        }
    }

    /// Keeps `value` on the session for a feature module (replacing a value
    /// of the same type): the per-session data of modules that need it.
    pub fn mark<T: std::any::Any + Send + Sync>(&self, value: T) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.retain(|m| !m.is::<T>());
        marks.push(Box::new(value));
    }

    /// The value of type `T` kept on the session, if any.
    pub fn marked<T: std::any::Any + Clone>(&self) -> Option<T> {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.iter().find_map(|m| m.downcast_ref::<T>().cloned())
    }

    /// The client sent something: it is alive (XEP-0199 §4.1: any stanza
    /// will do).
    pub fn touch(&self) {
        self.last_active.store(now_ms(), Ordering::Relaxed);
        self.ping_sent.store(0, Ordering::Relaxed);
    }

    /// How long the client has been silent.
    pub fn silent_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_active.load(Ordering::Relaxed)))
    }

    /// How long ago the keepalive pinged the still silent client, if it did.
    pub fn pinged_ago(&self) -> Option<Duration> {
        match self.ping_sent.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }

    /// The keepalive pinged the client now; `false` forgets it (answered,
    /// or given up on).
    pub fn set_pinged(&self, pinged: bool) {
        let at = if pinged { now_ms().max(1) } else { 0 };
        self.ping_sent.store(at, Ordering::Relaxed);
    }

    pub fn detached(&self) -> bool {
        self.detached.load(Ordering::Relaxed)
    }

    pub fn set_detached(&self, detached: bool) {
        self.detached.store(detached, Ordering::Relaxed);
    }

    pub fn interested(&self) -> bool {
        self.interested.load(Ordering::Relaxed)
    }

    pub fn carbons(&self) -> bool {
        self.carbons.load(Ordering::Relaxed)
    }

    pub fn set_carbons(&self, enabled: bool) {
        self.carbons.store(enabled, Ordering::Relaxed);
    }

    pub fn set_interested(&self) {
        self.interested.store(true, Ordering::Relaxed);
    }

    /// The last available presence broadcast by this resource.
    pub fn last_presence(&self) -> Option<Element> {
        self.last_presence.lock().ok().and_then(|p| p.clone())
    }

    pub fn set_last_presence(&self, presence: Option<Element>) {
        if let Ok(mut p) = self.last_presence.lock() {
            *p = presence;
        }
    }

    pub fn priority(&self) -> i8 {
        self.priority.load(Ordering::Relaxed)
    }

    pub fn available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Records a broadcast presence: available with a priority, or not.
    pub fn set_presence(&self, available: bool, priority: i8) {
        self.priority.store(priority, Ordering::Relaxed);
        self.available.store(available, Ordering::Relaxed);
    }

    /// The same session on a new connection (XEP-0198 resumption): same
    /// JID, presence, roster interest and carbons, another connection and
    /// sink.
    pub fn moved(&self, conn_id: u64, sink: Box<dyn SessionSink>) -> Session {
        let s = Session::new(self.full.clone(), conn_id, sink);
        s.set_presence(self.available(), self.priority());
        s.interested.store(self.interested(), Ordering::Relaxed);
        s.set_carbons(self.carbons());
        s.set_last_presence(self.last_presence());
        // Modules' marks follow the session to its new connection.
        let marks = std::mem::take(&mut *self.marks.lock().unwrap_or_else(|p| p.into_inner()));
        *s.marks.lock().unwrap_or_else(|p| p.into_inner()) = marks;
        s
    }
}

/// Bound sessions by bare JID.
#[derive(Default)]
pub struct SessionTable {
    by_bare: DashMap<BareJid, Vec<Arc<Session>>>,
}

impl SessionTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every bound resource of an account.
    pub fn resources(&self, bare: &BareJid) -> Vec<Arc<Session>> {
        self.by_bare
            .get(bare)
            .map(|v| v.value().clone())
            .unwrap_or_default()
    }

    pub fn get(&self, full: &FullJid) -> Option<Arc<Session>> {
        self.by_bare
            .get(&full.bare())
            .and_then(|v| v.iter().find(|s| s.full == *full).cloned())
    }

    /// Inserts, returning the session it replaced (same full JID), if any.
    /// Only the sessions actor calls this, so checks and insert are serial.
    pub fn insert(&self, session: Arc<Session>) -> Option<Arc<Session>> {
        let mut entry = self.by_bare.entry(session.full.bare()).or_default();
        let old = entry
            .iter()
            .position(|s| s.full == session.full)
            .map(|i| entry.remove(i));
        entry.push(session);
        old
    }

    /// Puts `session` in the place of the entry for the same full JID bound
    /// by `old_conn_id` (a resumed session moving to its new connection).
    /// False, changing nothing, if that entry is gone or was replaced.
    pub fn swap(&self, session: Arc<Session>, old_conn_id: u64) -> bool {
        let Some(mut v) = self.by_bare.get_mut(&session.full.bare()) else {
            return false;
        };
        match v
            .iter_mut()
            .find(|s| s.full == session.full && s.conn_id == old_conn_id)
        {
            Some(slot) => {
                *slot = session;
                true
            }
            None => false,
        }
    }

    /// Removes `full` if it is still bound by `conn_id`.
    pub fn remove(&self, full: &FullJid, conn_id: u64) -> bool {
        let bare = full.bare();
        let mut removed = false;
        if let Some(mut v) = self.by_bare.get_mut(&bare) {
            let before = v.len();
            v.retain(|s| !(s.full == *full && s.conn_id == conn_id));
            removed = v.len() != before;
        }
        self.by_bare.remove_if(&bare, |_, v| v.is_empty());
        removed
    }

    /// Bound resources in all.
    pub fn len(&self) -> usize {
        self.by_bare.iter().map(|e| e.value().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_bare.is_empty()
    }

    /// Every bound session (the keepalive's sweep).
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.by_bare
            .iter()
            .flat_map(|e| e.value().clone())
            .collect()
    }

    /// Every bound full JID (admin listing).
    pub fn all(&self) -> Vec<FullJid> {
        let mut out: Vec<FullJid> = self
            .by_bare
            .iter()
            .flat_map(|e| e.value().iter().map(|s| s.full.clone()).collect::<Vec<_>>())
            .collect();
        out.sort();
        out
    }
}
