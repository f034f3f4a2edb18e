//! `chorusctl chaos`: kills random actors whose tree path matches a
//! pattern, on a schedule, and reports what happened: each kill, whether
//! and how fast its supervisor brought it back, and which sessions did not
//! survive. Refused unless `admin.chaos = true`. Every kill is logged.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use chorus_supervisor::StopMode;
use serde_json::{json, Value};

use crate::{AdminContext, CommandError};

/// A chaos run may not outlast this: a forgotten run must end by itself.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

fn random_index(len: usize) -> usize {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (r % len as u64) as usize
}

pub fn parse_duration(name: &str, v: &str) -> Result<Duration, CommandError> {
    humantime::parse_duration(v).map_err(|e| CommandError::BadArgs(format!("--{name} '{v}': {e}")))
}

/// Runs the schedule and returns the report.
pub async fn run(
    ctx: &AdminContext,
    pattern: &str,
    every: Duration,
    total: Duration,
) -> Result<Value, CommandError> {
    if !ctx.chaos_allowed {
        return Err(CommandError::Failed(
            "chaos is disabled: set admin.chaos = true in the configuration".into(),
        ));
    }
    if every < Duration::from_millis(10) || total > MAX_DURATION || total < every {
        return Err(CommandError::BadArgs(
            "--every must be at least 10ms and no longer than --for, which is at most 1h".into(),
        ));
    }
    let sessions_before: BTreeSet<String> = ctx
        .sessions
        .all()
        .into_iter()
        .map(|j| j.to_string())
        .collect();
    let started = Instant::now();
    let mut kills = Vec::new();
    // A fixed schedule: kill n happens at n * every, however long watching
    // the previous restart took.
    let rounds = (total.as_nanos() / every.as_nanos()) as u64;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    for _ in 0..rounds {
        ticks.tick().await;
        let candidates = ctx.registry.paths_matching(pattern);
        if candidates.is_empty() {
            kills.push(json!({ "at_ms": started.elapsed().as_millis() as u64, "path": null }));
            continue;
        }
        let path = candidates[random_index(candidates.len())].clone();
        let old = ctx.registry.lookup(&path).map(|c| c.get_id());
        let at = started.elapsed();
        if ctx.registry.kill(&path, StopMode::Kill).is_err() {
            continue;
        }
        tracing::warn!(path = %path, "chaos: killed");
        // Watch for the supervisor to bring it back, until the next kill.
        let watch = Instant::now();
        let mut restart_ms = None;
        while watch.elapsed() < every.saturating_sub(Duration::from_millis(5)) {
            if ctx
                .registry
                .lookup(&path)
                .is_some_and(|c| Some(c.get_id()) != old)
            {
                restart_ms = Some(watch.elapsed().as_secs_f64() * 1e3);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        kills.push(json!({
            "at_ms": at.as_millis() as u64,
            "path": path,
            "restarted": restart_ms.is_some(),
            "restart_ms": restart_ms,
        }));
    }
    let sessions_after: BTreeSet<String> = ctx
        .sessions
        .all()
        .into_iter()
        .map(|j| j.to_string())
        .collect();
    let lost: Vec<&String> = sessions_before.difference(&sessions_after).collect();
    let killed = kills.iter().filter(|k| !k["path"].is_null()).count();
    let restarted = kills.iter().filter(|k| k["restarted"] == true).count();
    let mut text = format!(
        "chaos on '{pattern}' every {every:?} for {total:?}: {killed} killed, {restarted} restarted, {} sessions lost\n",
        lost.len()
    );
    for k in &kills {
        match k["path"].as_str() {
            Some(p) => text.push_str(&format!(
                "{:>8} ms  {p}  {}\n",
                k["at_ms"],
                match k["restart_ms"].as_f64() {
                    Some(ms) => format!("restarted in {ms:.1} ms"),
                    None => "not restarted".to_owned(),
                }
            )),
            None => text.push_str(&format!("{:>8} ms  (nothing matched)\n", k["at_ms"])),
        }
    }
    for s in &lost {
        text.push_str(&format!("lost session: {s}\n"));
    }
    Ok(json!({
        "killed": killed,
        "restarted": restarted,
        "kills": kills,
        "sessions_lost": lost,
        "text": text,
    }))
}
