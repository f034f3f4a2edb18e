//! The archive writer: archive copies leave the sender's actor and are
//! committed in batches, one transaction per batch (group commit, as
//! MongooseIM's asynchronous MAM writers do).
//!
//! - [`ArchiveQueue`] is shared by everyone and outlives the writer actor,
//!   as a session's inbox outlives its c2s: routing pushes each message's
//!   copies into it (in the sender's actor, in routing order) and goes on;
//!   an entry leaves the queue only once its batch is committed. A writer
//!   killed mid-batch loses nothing: the next one writes the same entries
//!   again, and storage skips what the dead one had already committed
//!   (`archive_append_batch` is idempotent).
//! - Backpressure, not memory: past `capacity` entries, pushing waits for
//!   the writer, so a sender slows to the database's pace and its TCP
//!   window pushes back on its client.
//! - Read-your-writes: a query first waits until everything pushed before
//!   it is committed ([`ArchiveQueue::flush`]), so a user sees the message
//!   they just sent, and a recipient the one it just got.
//! - A copy whose message then went nowhere (bounced) is cancelled in the
//!   queue; if the writer took it already, it is removed from the archive
//!   once committed.
//!
//! The `archive-writer` actor under `root/modules` only drives the queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chorus_jid::BareJid;
use chorus_storage::{ArchiveStore, ArchivedMessage, Storage};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::Notify;

/// An entry's fate, shared by the queue and the message's router hook.
const QUEUED: u8 = 0;
/// In a batch being written.
const TAKEN: u8 = 1;
/// The message went nowhere: not to be written.
const CANCELLED: u8 = 2;

/// Entries one transaction writes at most.
const BATCH: usize = 512;

/// How long a query waits for the archive to catch up before answering
/// with what is there (the database is down or far behind).
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// One archive copy on its way.
struct Entry {
    seq: u64,
    owner: BareJid,
    message: ArchivedMessage,
    state: Arc<AtomicU8>,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// The sequence number of the next entry pushed.
    next: u64,
}

/// The copies of one message, as pushed: what cancelling needs.
pub struct Pushed {
    copies: Vec<(BareJid, String, Arc<AtomicU8>)>,
    /// The last sequence number among them.
    last: u64,
}

/// The queue between routing and the writer (see the module docs).
pub struct ArchiveQueue {
    queue: Mutex<Queue>,
    capacity: usize,
    /// Everything with a sequence number below this is committed.
    committed: AtomicU64,
    /// Entries arrived.
    work: Notify,
    /// Entries left (room, and commits).
    progress: Notify,
}

impl ArchiveQueue {
    pub fn new(capacity: usize) -> ArchiveQueue {
        ArchiveQueue {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            committed: AtomicU64::new(0),
            work: Notify::new(),
            progress: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing under the lock can panic half-way through a change.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries waiting or being written.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a message's copies, waiting for room first.
    pub async fn push(&self, copies: Vec<(BareJid, ArchivedMessage)>) -> Pushed {
        loop {
            let notified = self.progress.notified();
            if self.lock().entries.len() < self.capacity {
                break;
            }
            notified.await;
        }
        let mut q = self.lock();
        let mut pushed = Pushed {
            copies: Vec::with_capacity(copies.len()),
            last: 0,
        };
        for (owner, message) in copies {
            let state = Arc::new(AtomicU8::new(QUEUED));
            pushed
                .copies
                .push((owner.clone(), message.stanza_id.clone(), state.clone()));
            let seq = q.next;
            q.next += 1;
            pushed.last = seq;
            q.entries.push_back(Entry {
                seq,
                owner,
                message,
                state,
            });
        }
        drop(q);
        self.work.notify_one();
        pushed
    }

    /// The message went nowhere: its copies are not written, or, if the
    /// writer took them already, removed once committed.
    pub async fn cancel(&self, pushed: Pushed, storage: &Storage) {
        let mut taken = Vec::new();
        for (owner, id, state) in pushed.copies {
            if state
                .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                taken.push((owner, id));
            }
        }
        if taken.is_empty() {
            return;
        }
        self.wait_for(pushed.last + 1).await;
        for (owner, id) in taken {
            let Some(node) = owner.node() else { continue };
            if let Err(e) = storage.archive_remove(node, owner.domain(), &id).await {
                tracing::error!(archive = %owner, error = %e, "cannot remove an undelivered message from the archive");
            }
        }
    }

    /// Waits until everything pushed so far is committed (read-your-writes
    /// for a query), or [`FLUSH_WAIT`] passed.
    pub async fn flush(&self) {
        let target = self.lock().next;
        self.wait_for(target).await;
    }

    async fn wait_for(&self, target: u64) {
        let wait = async {
            loop {
                let notified = self.progress.notified();
                if self.committed.load(Ordering::Acquire) >= target {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(FLUSH_WAIT, wait).await.is_err() {
            tracing::warn!("the archive is behind; a query answers with what is written");
        }
    }

    /// The next batch, marked taken (entries still in the queue); empty
    /// when there is nothing to write.
    fn take(&self) -> (Vec<(BareJid, ArchivedMessage)>, Option<u64>) {
        let q = self.lock();
        let mut batch = Vec::new();
        let mut last = None;
        for e in q.entries.iter().take(BATCH) {
            last = Some(e.seq);
            // A cancelled entry is skipped; a taken one (its writer died)
            // is written again.
            if e.state
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                || e.state.load(Ordering::Acquire) == TAKEN
            {
                batch.push((e.owner.clone(), e.message.clone()));
            }
        }
        (batch, last)
    }

    /// The batch up to `last` is committed: its entries leave.
    fn done(&self, last: u64) {
        let mut q = self.lock();
        while q.entries.front().is_some_and(|e| e.seq <= last) {
            q.entries.pop_front();
        }
        drop(q);
        self.committed.fetch_max(last + 1, Ordering::AcqRel);
        self.progress.notify_waiters();
    }

    /// Writes batches until the queue is empty.
    async fn drain(&self, storage: &Storage) {
        loop {
            let (batch, last) = self.take();
            let Some(last) = last else { return };
            let rows: Vec<(&str, &str, &ArchivedMessage)> = batch
                .iter()
                .filter_map(|(owner, m)| Some((owner.node()?, owner.domain(), m)))
                .collect();
            match storage.archive_append_batch(&rows).await {
                Ok(()) => self.done(last),
                Err(e) => {
                    // Kept in the queue; pushing waits once it is full.
                    tracing::error!(error = %e, entries = rows.len(), "archive batch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// The `archive-writer` actor: waits for work, drains the queue.
pub struct ArchiveWriter;

#[derive(Clone)]
pub struct WriterArgs {
    pub queue: Arc<ArchiveQueue>,
    pub storage: Arc<Storage>,
}

pub enum WriterMsg {
    Drain,
}

impl Actor for ArchiveWriter {
    type Msg = WriterMsg;
    type State = WriterArgs;
    type Arguments = WriterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: WriterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // What a killed predecessor left is written first.
        myself.cast(WriterMsg::Drain)?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: WriterMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let notified = state.queue.work.notified();
        state.queue.drain(&state.storage).await;
        // Waits here for the next push (a kill interrupts it, like the
        // acceptor's accept), then drains again.
        if state.queue.is_empty() {
            notified.await;
        }
        myself.cast(WriterMsg::Drain)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use chorus_storage::{AccountStore, ArchiveCursor, ArchiveQuery};

    use super::*;

    fn copy(owner: &str, id: &str) -> (BareJid, ArchivedMessage) {
        (
            owner.parse().unwrap(),
            ArchivedMessage {
                stanza_id: id.to_owned(),
                timestamp: SystemTime::now(),
                with: "peer@example.org".to_owned(),
                outgoing: true,
                stanza: "<message/>".to_owned(),
            },
        )
    }

    async fn storage() -> Storage {
        let s = Storage::connect("sqlite::memory:").await.unwrap();
        s.create_account("alice", "example.org", &[]).await.unwrap();
        s
    }

    async fn archived(s: &Storage) -> Vec<String> {
        let q = ArchiveQuery {
            with: None,
            start: None,
            end: None,
            before_id: None,
            after_id: None,
            ids: Vec::new(),
            cursor: ArchiveCursor::First,
            limit: 100,
        };
        s.archive_query("alice", "example.org", &q)
            .await
            .unwrap()
            .messages
            .into_iter()
            .map(|m| m.stanza_id)
            .collect()
    }

    #[tokio::test]
    async fn a_full_queue_makes_the_sender_wait_until_a_batch_is_written() {
        let q = Arc::new(ArchiveQueue::new(2));
        q.push(vec![copy("alice@example.org", "m1")]).await;
        q.push(vec![copy("alice@example.org", "m2")]).await;
        let third = {
            let q = q.clone();
            tokio::spawn(async move { q.push(vec![copy("alice@example.org", "m3")]).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "pushed past the capacity");
        let s = storage().await;
        q.drain(&s).await;
        third.await.unwrap();
        q.drain(&s).await;
        assert_eq!(archived(&s).await, ["m1", "m2", "m3"]);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_batch_taken_by_a_writer_that_died_is_written_once() {
        let q = ArchiveQueue::new(10);
        q.push(vec![copy("alice@example.org", "m1")]).await;
        let s = storage().await;
        // A writer takes the batch and commits it, then dies before the
        // entries leave the queue: the next one writes them again.
        let (batch, _) = q.take();
        let rows: Vec<(&str, &str, &ArchivedMessage)> = batch
            .iter()
            .map(|(o, m)| (o.node().unwrap(), o.domain(), m))
            .collect();
        s.archive_append_batch(&rows).await.unwrap();
        q.drain(&s).await;
        assert_eq!(archived(&s).await, ["m1"]);
        q.flush().await;
    }

    #[tokio::test]
    async fn a_cancelled_copy_is_never_written_and_a_taken_one_is_removed() {
        let q = ArchiveQueue::new(10);
        let s = storage().await;
        let early = q.push(vec![copy("alice@example.org", "gone")]).await;
        q.cancel(early, &s).await;
        let late = q.push(vec![copy("alice@example.org", "late")]).await;
        let kept = q.push(vec![copy("alice@example.org", "kept")]).await;
        drop(kept);
        // Taken by the writer before the bounce is known.
        let _ = q.take();
        let cancelling = q.cancel(late, &s);
        let draining = q.drain(&s);
        let ((), ()) = tokio::join!(cancelling, draining);
        assert_eq!(archived(&s).await, ["kept"]);
    }
}
