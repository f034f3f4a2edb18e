//! XEP-0313 (Message Archive Management, version 1.1.1) storage at scale:
//! how fast a 1M-message archive fills, and how long the queries a client
//! makes take on it, each next to a reference measured in the same run.
//!
//! Run on demand, in release:
//! `cargo run --release -p chorus-server --example mam_bench [MESSAGES] [--keep]`
//! (default 1000000). It creates a SQLite database in a temporary
//! directory, exactly as the server opens it (WAL, foreign keys, the
//! migrations), one account, and appends MESSAGES messages through
//! `ArchiveStore::archive_append_many` in transactions of 10000, spread
//! over 100 contacts with 3 resources each, one every 30 s. It then times,
//! over many repetitions on a warm cache:
//! - `SELECT 1` through the pool (the reference: one round trip to SQLite
//!   through sqlx, no table touched);
//! - a single-message append (one transaction with its commit);
//! - the first page, the last page (an empty RSM `<before/>`), a page in
//!   the middle by RSM `<after/>`, by the `after-id` field, and by `start`,
//!   and the first and last pages filtered by `with` (one contact: 1% of
//!   the archive), all with max=50 as a client asks;
//! - for contrast, an RSM `<count/>` of the whole archive, which the server
//!   only computes when a client asks for it with max=0.
//!
//! `--keep` leaves the database behind (its path is printed) to inspect
//! query plans with the sqlite3 shell.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chorus_storage::{
    AccountStore, ArchiveCursor, ArchiveQuery, ArchiveStore, ArchivedMessage, Storage,
};

const BATCH: usize = 10_000;
const PAGE: u32 = 50;
const CONTACTS: usize = 100;

fn stanza_id(i: usize) -> String {
    // Opaque like the server's random ids, and not in insertion order, so
    // the unique index on ids sees random inserts as it does in service.
    let h = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    format!("{h:016x}-{i:08x}")
}

fn message(i: usize, base: SystemTime) -> ArchivedMessage {
    let contact = i % CONTACTS;
    let outgoing = i % 2 == 0;
    let with = format!("contact{contact}@example.net/res{}", i % 3);
    let (from, to) = if outgoing {
        ("bench@localhost/phone".to_owned(), with.clone())
    } else {
        (with.clone(), "bench@localhost".to_owned())
    };
    ArchivedMessage {
        stanza_id: stanza_id(i),
        timestamp: base + Duration::from_secs(30 * i as u64),
        stanza: format!(
            "<message xmlns='jabber:client' from='{from}' to='{to}' type='chat' id='msg-{i}'>\
             <body>Message number {i}, a line of chat of ordinary length.</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='bench@localhost' id='{}'/></message>",
            stanza_id(i)
        ),
        with,
        outgoing,
    }
}

/// Median and 95th percentile of `runs` timings of `f`, in microseconds.
async fn time<F, Fut>(runs: usize, mut f: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // Warm-up, not counted.
    for i in 0..runs / 10 {
        f(i).await?;
    }
    let mut t = Vec::with_capacity(runs);
    for i in 0..runs {
        let start = Instant::now();
        f(i).await?;
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    Ok((t[runs / 2], t[runs * 95 / 100]))
}

fn report(name: &str, (median, p95): (f64, f64), reference: f64) {
    println!(
        "{name:<44} median {median:>9.1} us  p95 {p95:>9.1} us  = {:>6.1} x SELECT 1",
        median / reference
    );
}

fn query(cursor: ArchiveCursor) -> ArchiveQuery {
    ArchiveQuery {
        with: None,
        start: None,
        end: None,
        after_id: None,
        before_id: None,
        ids: Vec::new(),
        cursor,
        limit: PAGE,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut n = 1_000_000usize;
    let mut keep = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--keep" => keep = true,
            other => n = other.parse()?,
        }
    }
    anyhow::ensure!(n >= 2 * BATCH, "at least {} messages", 2 * BATCH);
    let dir = std::env::temp_dir().join(format!("chorus-mam-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("chorus.db");
    let storage = Storage::connect(&format!("sqlite://{}", path.display())).await?;
    storage.create_account("bench", "localhost", &[]).await?;
    // A second account with its own archive, so that every query has to
    // pick its account's rows out of a shared table.
    storage.create_account("other", "localhost", &[]).await?;
    let base = UNIX_EPOCH + Duration::from_secs(1_600_000_000);

    println!(
        "mam_bench: {n} messages for one account, SQLite at {}",
        path.display()
    );
    let start = Instant::now();
    let mut batch_times = Vec::new();
    for chunk in 0..n.div_ceil(BATCH) {
        let msgs: Vec<ArchivedMessage> = (chunk * BATCH..((chunk + 1) * BATCH).min(n))
            .map(|i| message(i, base))
            .collect();
        let t = Instant::now();
        storage
            .archive_append_many("bench", "localhost", &msgs)
            .await?;
        batch_times.push(t.elapsed());
    }
    let insert = start.elapsed();
    let other: Vec<ArchivedMessage> = (0..BATCH).map(|i| message(n + i, base)).collect();
    storage
        .archive_append_many("other", "localhost", &other)
        .await?;
    let first_batch = batch_times.first().copied().unwrap_or_default();
    let last_batch = batch_times.last().copied().unwrap_or_default();
    println!(
        "insert: {:.1} s, {:.0} messages/s (batches of {BATCH}: first {:.0} ms, last {:.0} ms)",
        insert.as_secs_f64(),
        n as f64 / insert.as_secs_f64(),
        first_batch.as_secs_f64() * 1e3,
        last_batch.as_secs_f64() * 1e3,
    );
    let size: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "database: {:.0} MiB (with WAL)",
        size as f64 / (1 << 20) as f64
    );

    let runs = 2_000;
    let s = &storage;
    let reference = time(runs, |_| async move {
        s.ping().await?;
        Ok(())
    })
    .await?;
    report("reference: SELECT 1", reference, reference.0);
    let r = reference.0;

    let mut next = n + BATCH;
    let append = time(200, |_| {
        next += 1;
        let m = message(next, base);
        async move {
            s.archive_append("other", "localhost", &m).await?;
            Ok(())
        }
    })
    .await?;
    report("append one message (own transaction)", append, r);

    let page = |q: ArchiveQuery| async move {
        let page = s.archive_query("bench", "localhost", &q).await?;
        anyhow::ensure!(page.messages.len() == PAGE as usize, "a full page");
        Ok(())
    };
    report(
        "first page (max=50)",
        time(runs, |_| page(query(ArchiveCursor::First))).await?,
        r,
    );
    report(
        "last page (<before/>)",
        time(runs, |_| page(query(ArchiveCursor::Last))).await?,
        r,
    );
    // Different places in the middle half, so the cache does not hold just
    // one page.
    let middle = |i: usize| n / 4 + (i * 7919) % (n / 2);
    report(
        "middle page by RSM <after/>",
        time(runs, |i| {
            page(query(ArchiveCursor::After(stanza_id(middle(i)))))
        })
        .await?,
        r,
    );
    report(
        "middle page by after-id",
        time(runs, |i| {
            page(ArchiveQuery {
                after_id: Some(stanza_id(middle(i))),
                ..query(ArchiveCursor::First)
            })
        })
        .await?,
        r,
    );
    report(
        "middle page backwards by RSM <before/>",
        time(runs, |i| {
            page(query(ArchiveCursor::Before(stanza_id(middle(i)))))
        })
        .await?,
        r,
    );
    report(
        "middle page by start",
        time(runs, |i| {
            page(ArchiveQuery {
                start: Some(base + Duration::from_secs(30 * middle(i) as u64)),
                ..query(ArchiveCursor::First)
            })
        })
        .await?,
        r,
    );
    report(
        "with=contact (1% of archive), first page",
        time(runs, |i| {
            page(ArchiveQuery {
                with: Some(format!("contact{}@example.net", i % CONTACTS)),
                ..query(ArchiveCursor::First)
            })
        })
        .await?,
        r,
    );
    report(
        "with=contact, last page",
        time(runs, |i| {
            page(ArchiveQuery {
                with: Some(format!("contact{}@example.net", i % CONTACTS)),
                ..query(ArchiveCursor::Last)
            })
        })
        .await?,
        r,
    );
    report(
        "with=contact/resource, middle by after-id",
        time(runs, |i| {
            // In the first half: a full page of that resource follows.
            let m = n / 4 + (i * 7919) % (n / 4);
            page(ArchiveQuery {
                with: Some(format!("contact{}@example.net/res{}", m % CONTACTS, m % 3)),
                after_id: Some(stanza_id(m)),
                ..query(ArchiveCursor::First)
            })
        })
        .await?,
        r,
    );
    let count = time(20, |_| async move {
        let c = s
            .archive_count("bench", "localhost", &query(ArchiveCursor::First))
            .await?;
        anyhow::ensure!(c == n as u64, "count {c}");
        Ok(())
    })
    .await?;
    report("for contrast: RSM count of the whole archive", count, r);

    storage.close().await;
    if keep {
        println!("kept {}", path.display());
    } else {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
