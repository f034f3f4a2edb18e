//! The import pipeline: a first pass that checks the whole document and
//! imports nothing if it is malformed, then a second in which a reading
//! thread parses users into batches, this task derives their keys on every
//! core and writes each batch in one transaction while later ones derive.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chorus_jid::Jid;
use chorus_storage::{ImportOutcome, ImportStore, ImportedAccount, Storage};
use serde_json::Value;

use super::absolute;
use super::reader::{read_document, Piece, ReadError, ReadLimits};
use super::report::{import_result, HostReport, Report, Skip};
use super::user::{finish_credentials, parse_user, Parsed};
use crate::{AdminContext, CommandError};

/// Accounts per batch: one transaction, and one split of the PBKDF2 work.
const BATCH_ACCOUNTS: usize = 256;
/// A batch is also cut at this many bytes of parsed XML, so that a file of
/// huge accounts cannot pile up memory in the batches in flight.
const BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Batches waiting between the reading thread and the writer.
const BATCHES_IN_FLIGHT: usize = 2;
/// Batches whose keys are derived at the same time.
const DERIVING: usize = 2;

/// Derives keys for a whole batch on every core.
async fn derive_batch(
    batch: Vec<Parsed>,
    iterations: u32,
) -> Result<Vec<(ImportedAccount, Vec<Skip>)>, CommandError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = batch.len().div_ceil(workers).max(1);
    let mut parts: Vec<Vec<Parsed>> = Vec::new();
    let mut rest = batch.into_iter().peekable();
    while rest.peek().is_some() {
        parts.push(rest.by_ref().take(per).collect());
    }
    let handles: Vec<_> = parts
        .into_iter()
        .map(|part| {
            tokio::task::spawn_blocking(move || {
                part.into_iter()
                    .map(|p| finish_credentials(p, iterations))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.extend(
            h.await
                .map_err(|e| CommandError::Failed(format!("key derivation failed: {e}")))?,
        );
    }
    Ok(out)
}

type WriteResult = Result<(Vec<ImportedAccount>, Vec<ImportOutcome>), chorus_storage::StorageError>;

/// Counts a written batch into the report.
fn record(report: &mut Report, written: (Vec<ImportedAccount>, Vec<ImportOutcome>)) {
    let (accounts, outcomes) = written;
    for (a, outcome) in accounts.iter().zip(outcomes) {
        match outcome {
            ImportOutcome::Created => {
                report.accounts += 1;
                report.roster_items += a.roster.len() as u64;
                report.vcards += u64::from(a.vcard.is_some());
                report.private += a.private.len() as u64;
                report.offline += a.offline.len() as u64;
                report.pep_nodes += a.pep.len() as u64;
                report.pep_items += a.pep.iter().map(|n| n.items.len() as u64).sum::<u64>();
            }
            ImportOutcome::AlreadyExists => report.skip(
                format!("{}@{}", a.localpart, a.domain),
                "account",
                "already exists",
            ),
        }
    }
}

/// The reading thread of the second pass: parses users into batches for
/// the writer and reports what it skipped itself.
fn produce(
    path: &Path,
    domains: &[String],
    tx: &tokio::sync::mpsc::Sender<Vec<Parsed>>,
) -> Result<Report, ReadError> {
    let mut report = Report::default();
    // The current host: its index in report.hosts, and whether it is served.
    let mut current: Option<(usize, bool)> = None;
    let mut batch: Vec<Parsed> = Vec::new();
    let mut bytes = 0usize;
    let send = |batch: Vec<Parsed>| tx.blocking_send(batch).map_err(|_| ReadError::Cancelled);
    read_document(path, ReadLimits::default(), &mut |piece| {
        match piece {
            Piece::Host { jid } => {
                let raw = jid.unwrap_or_default();
                let (domain, served, reason) = match Jid::domain_jid(&raw) {
                    Ok(j) if domains.iter().any(|d| d == j.domain()) => {
                        (j.domain().to_owned(), true, None)
                    }
                    Ok(j) => (
                        j.domain().to_owned(),
                        false,
                        Some(format!(
                            "not served here (server.domains: {})",
                            domains.join(", ")
                        )),
                    ),
                    Err(e) => (raw, false, Some(format!("invalid host JID: {e}"))),
                };
                report.hosts.push(HostReport {
                    domain,
                    imported: served,
                    accounts: 0,
                    reason,
                });
                current = Some((report.hosts.len() - 1, served));
            }
            Piece::User(user) => {
                let Some((i, served)) = current else {
                    return Ok(());
                };
                report.hosts[i].accounts += 1;
                if !served {
                    return Ok(());
                }
                let domain = report.hosts[i].domain.clone();
                if let Some(parsed) = parse_user(&user, &domain, &mut report) {
                    bytes += parsed.size;
                    batch.push(parsed);
                    if batch.len() >= BATCH_ACCOUNTS || bytes >= BATCH_BYTES {
                        bytes = 0;
                        send(std::mem::take(&mut batch))?;
                    }
                }
            }
            Piece::Unknown { what } => {
                let host = current.map_or(String::new(), |(i, _)| report.hosts[i].domain.clone());
                report.skip(host, what, "not part of XEP-0227's format");
            }
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        send(batch)?;
    }
    // Skipped hosts are one entry each, however many accounts they hold.
    for h in report.hosts.clone() {
        if let (false, Some(reason)) = (h.imported, h.reason) {
            report.skip(h.domain, format!("host ({} accounts)", h.accounts), reason);
        }
    }
    Ok(report)
}

/// `import`: reads a XEP-0227 file the server can open at `file`.
pub async fn import(ctx: &AdminContext, file: &str) -> Result<Value, CommandError> {
    let started = Instant::now();
    let path = absolute(file, "file")?;
    // First pass: the whole document must read, or nothing is imported.
    let check = path.clone();
    let users = tokio::task::spawn_blocking(move || {
        let mut users = 0u64;
        read_document(&check, ReadLimits::default(), &mut |piece| {
            if matches!(piece, Piece::User(_)) {
                users += 1;
            }
            Ok(())
        })
        .map(|()| users)
    })
    .await
    .map_err(|e| CommandError::Failed(format!("reading failed: {e}")))?
    .map_err(|e| match e {
        ReadError::Io { .. } => {
            CommandError::BadArgs(format!("cannot read {e}; nothing was imported"))
        }
        other => CommandError::BadArgs(format!(
            "not a valid XEP-0227 file: {other}; nothing was imported"
        )),
    })?;
    tracing::info!(file = %path.display(), users, "importing XEP-0227 file");

    // Second pass: the reading thread parses batches; this task derives
    // their keys on every core and writes each batch in one transaction
    // while later ones are derived.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Parsed>>(BATCHES_IN_FLIGHT);
    let domains = ctx.domains.clone();
    let read_path = path.clone();
    let producer = tokio::task::spawn_blocking(move || produce(&read_path, &domains, &tx));
    let storage: Arc<Storage> = ctx.storage.clone();
    let mut report = Report::default();
    let mut writing: Option<tokio::task::JoinHandle<WriteResult>> = None;
    let mut deriving: VecDeque<tokio::task::JoinHandle<DeriveResult>> = VecDeque::new();
    let outcome: Result<(), CommandError> = async {
        while let Some(batch) = rx.recv().await {
            // Accounts that exist are left out before PBKDF2 is spent on
            // them; one that appears meanwhile is caught by the write.
            let mut names: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for p in &batch {
                names
                    .entry(p.account.domain.as_str())
                    .or_default()
                    .push(p.account.localpart.clone());
            }
            let mut existing = HashSet::new();
            for (domain, localparts) in names {
                for l in storage
                    .existing_accounts(domain, &localparts)
                    .await
                    .map_err(|e| CommandError::Failed(format!("storage: {e}")))?
                {
                    existing.insert((l, domain.to_owned()));
                }
            }
            let mut todo = Vec::with_capacity(batch.len());
            for parsed in batch {
                let key = (
                    parsed.account.localpart.clone(),
                    parsed.account.domain.clone(),
                );
                if existing.contains(&key) {
                    report.skip(parsed.jid(), "account", "already exists");
                } else {
                    todo.push(parsed);
                }
            }
            // Two batches derive at once, so that the cores one batch's
            // slowest part leaves idle work on the next; the older one is
            // then written while the newer one and the next still derive.
            deriving.push_back(tokio::spawn(derive_batch(todo, ctx.sasl_iterations)));
            if deriving.len() >= DERIVING {
                if let Some(oldest) = deriving.pop_front() {
                    let derived = join_derive(oldest).await?;
                    write_next(&storage, derived, &mut writing, &mut report).await?;
                }
            }
        }
        while let Some(oldest) = deriving.pop_front() {
            let derived = join_derive(oldest).await?;
            write_next(&storage, derived, &mut writing, &mut report).await?;
        }
        if let Some(previous) = writing.take() {
            record(&mut report, join_write(previous).await?);
        }
        Ok(())
    }
    .await;
    // Closing the channel stops the reader if the writer gave up, and
    // derivations still running are of no use then.
    rx.close();
    for d in deriving.drain(..) {
        d.abort();
    }
    // A batch still being written when the import failed counts if it
    // committed.
    if let Some(w) = writing.take() {
        if let Ok(done) = join_write(w).await {
            record(&mut report, done);
        }
    }
    let produced = producer
        .await
        .map_err(|e| CommandError::Failed(format!("reading failed: {e}")))?;
    if let Err(e) = outcome {
        tracing::error!(file = %path.display(), error = %e, imported = report.accounts, "XEP-0227 import failed");
        return Err(CommandError::Failed(format!(
            "{e}; {} accounts were imported before the failure",
            report.accounts
        )));
    }
    let produced = produced.map_err(|e| {
        CommandError::Failed(format!(
            "{e}; {} accounts were imported before the failure",
            report.accounts
        ))
    })?;
    // The reader's notes first: they are about the file, in its order.
    let mut full = produced;
    full.merge(report);
    let elapsed = started.elapsed();
    tracing::info!(
        file = %path.display(),
        accounts = full.accounts,
        skipped = full.skipped_total,
        elapsed_ms = elapsed.as_millis() as u64,
        "XEP-0227 import done"
    );
    Ok(import_result(&path, &full, elapsed))
}

type DeriveResult = Result<Vec<(ImportedAccount, Vec<Skip>)>, CommandError>;

async fn join_derive(
    handle: tokio::task::JoinHandle<DeriveResult>,
) -> Result<Vec<(ImportedAccount, Vec<Skip>)>, CommandError> {
    handle
        .await
        .map_err(|e| CommandError::Failed(format!("key derivation failed: {e}")))?
}

/// Waits for the batch being written, then starts writing `derived`.
async fn write_next(
    storage: &Arc<Storage>,
    derived: Vec<(ImportedAccount, Vec<Skip>)>,
    writing: &mut Option<tokio::task::JoinHandle<WriteResult>>,
    report: &mut Report,
) -> Result<(), CommandError> {
    let mut accounts = Vec::with_capacity(derived.len());
    for (account, notes) in derived {
        for n in notes {
            report.skip(n.jid, n.what, n.reason);
        }
        accounts.push(account);
    }
    if let Some(previous) = writing.take() {
        record(report, join_write(previous).await?);
    }
    let storage = storage.clone();
    *writing = Some(tokio::spawn(async move {
        let outcomes = storage.import_accounts(&accounts).await?;
        Ok((accounts, outcomes))
    }));
    Ok(())
}

async fn join_write(
    handle: tokio::task::JoinHandle<WriteResult>,
) -> Result<(Vec<ImportedAccount>, Vec<ImportOutcome>), CommandError> {
    handle
        .await
        .map_err(|e| CommandError::Failed(format!("writing failed: {e}")))?
        .map_err(|e| CommandError::Failed(format!("storage: {e}")))
}
