//! A read-through cache for what routing reads on every message: each
//! account's block list (XEP-0191) and archiving preferences (XEP-0441).
//! Without it a chat message cost four database queries and the database
//! worker, not routing, bounded throughput.
//!
//! This process's writes invalidate entries (a generation counter keeps a
//! load that raced a write from caching the old value). Another server
//! sharing a PostgreSQL database is not seen, so entries also expire after
//! [`TTL`]: a change made elsewhere takes effect within that time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::ArchivePrefs;

/// How long an entry is trusted without a local write.
pub const TTL: Duration = Duration::from_secs(60);
/// Entries kept per kind before the cache starts over, bounding memory on
/// servers with many accounts.
const CAPACITY: usize = 100_000;

type Key = (String, String);

#[derive(Debug, Default)]
struct Map<V> {
    entries: RwLock<HashMap<Key, (Instant, V)>>,
}

impl<V: Clone> Map<V> {
    fn get(&self, key: &Key) -> Option<V> {
        let map = self.entries.read().ok()?;
        let (at, v) = map.get(key)?;
        (at.elapsed() < TTL).then(|| v.clone())
    }

    fn put(&self, key: Key, v: V) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(key, (Instant::now(), v));
        }
    }

    fn remove(&self, key: &Key) {
        if let Ok(mut map) = self.entries.write() {
            map.remove(key);
        }
    }

    fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct AccountCache {
    /// Bumped by every invalidation, before and after the write it covers.
    generation: AtomicU64,
    /// Sorted block-list entries.
    blocks: Map<Arc<Vec<String>>>,
    prefs: Map<Option<ArchivePrefs>>,
}

fn key(localpart: &str, domain: &str) -> Key {
    (localpart.to_owned(), domain.to_owned())
}

impl AccountCache {
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn blocks(&self, localpart: &str, domain: &str) -> Option<Arc<Vec<String>>> {
        self.blocks.get(&key(localpart, domain))
    }

    /// Caches a list loaded at `generation`, unless a write happened since.
    pub(crate) fn put_blocks(
        &self,
        localpart: &str,
        domain: &str,
        generation: u64,
        list: Arc<Vec<String>>,
    ) {
        if self.generation() == generation {
            self.blocks.put(key(localpart, domain), list);
        }
    }

    pub(crate) fn prefs(&self, localpart: &str, domain: &str) -> Option<Option<ArchivePrefs>> {
        self.prefs.get(&key(localpart, domain))
    }

    pub(crate) fn put_prefs(
        &self,
        localpart: &str,
        domain: &str,
        generation: u64,
        prefs: Option<ArchivePrefs>,
    ) {
        if self.generation() == generation {
            self.prefs.put(key(localpart, domain), prefs);
        }
    }

    /// Forgets one account's entries; call before and after writing them.
    pub(crate) fn invalidate(&self, localpart: &str, domain: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let k = key(localpart, domain);
        self.blocks.remove(&k);
        self.prefs.remove(&k);
    }

    /// Forgets everything (bulk imports).
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.blocks.clear();
        self.prefs.clear();
    }
}
