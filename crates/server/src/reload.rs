//! Live configuration reload (SIGHUP, `chorusctl config reload`): re-reads
//! the configuration file and applies what can change without dropping a
//! connection. Which options those are is declared with each option in
//! `chorus-config` (`reload` there) and must match what this file applies:
//! parser limits and TLS certificates for connections opened from then on,
//! and listeners added or removed, started or stopped under `listeners`.
//! Every other change is reported, by key, as needing a restart, and the
//! server keeps running with the value it started with, so the next reload
//! reports it again. An invalid file changes nothing and reports every
//! problem (with the loader's did-you-mean).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chorus_c2s::C2sContext;
use chorus_config::{Change, Config};
use chorus_listener::{address_key, port_spec, BoundAddrs};
use chorus_supervisor::{Registry, SupervisorMsg, SupervisorOptions};
use ractor::ActorRef;

pub struct Reloader {
    pub(crate) path: Option<PathBuf>,
    /// The configuration the server runs with: as started, plus the
    /// reloadable options of each reload since.
    pub(crate) current: Mutex<Config>,
    pub(crate) c2s: Arc<C2sContext>,
    pub(crate) s2s: Arc<chorus_s2s::S2sContext>,
    pub(crate) registry: Registry,
    pub(crate) bound: BoundAddrs,
    pub(crate) options: SupervisorOptions,
    /// Serializes reloads (a SIGHUP during a `config reload`).
    pub(crate) lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Applies the file; returns a summary of what changed.
    pub async fn reload(&self) -> Result<String, String> {
        let _one = self.lock.lock().await;
        let path = self
            .path
            .as_ref()
            .ok_or("the server was started without a configuration file")?;
        let (new, warnings) = Config::load_with_warnings(Some(path)).map_err(|e| e.to_string())?;
        let old = self
            .current
            .lock()
            .map_err(|_| "configuration state poisoned")?
            .clone();
        let changes = Config::diff(&old, &new);
        // Everything below reads `running`, never `new`: a restart-only
        // option such as server.domains (which names the development
        // certificate) keeps the value the server started with.
        let running = old.with_reloadable(&new);
        let tls = crate::tls_setup(&running).map_err(|e| e.to_string())?;
        // Certificate files are reread even when their paths are unchanged,
        // so a renewed certificate is picked up.
        let mut applied = vec!["TLS certificates reread".to_owned()];
        self.c2s.reload(running.limits.xml(), Some(Arc::new(tls)));

        let old_ids: BTreeSet<String> = old.listeners.iter().map(|l| l.actor_id()).collect();
        let new_ids: BTreeSet<String> = running.listeners.iter().map(|l| l.actor_id()).collect();
        if old_ids != new_ids {
            let sup: ActorRef<SupervisorMsg> = self
                .registry
                .lookup("root/listeners")
                .ok_or("the listeners supervisor is restarting; try again")?
                .into();
            for gone in old_ids.difference(&new_ids) {
                let _ = sup.cast(SupervisorMsg::TerminateChild(gone.clone()));
                self.bound.remove(gone);
                applied.push(format!("listener {gone} stopped"));
            }
            for (i, l) in running
                .listeners
                .iter()
                .enumerate()
                .filter(|(_, l)| !old_ids.contains(&l.actor_id()))
            {
                // Bound here, as at start, so that an address in use is
                // reported with its key rather than as a start failure.
                let key = address_key(i);
                let listener = chorus_listener::bind(l.address, &key)
                    .await
                    .map_err(|e| e.to_string())?;
                let spec = port_spec(
                    l.clone(),
                    key,
                    Some(listener),
                    crate::connections(&self.c2s, &self.s2s, l.kind).map_err(|e| e.to_string())?,
                    self.bound.clone(),
                    self.options.clone(),
                );
                let started = sup
                    .call(|reply| SupervisorMsg::StartChild(spec, Some(reply)), None)
                    .await;
                match started {
                    Ok(ractor::rpc::CallResult::Success(Ok(_))) => {
                        applied.push(format!("listener {} started", l.actor_id()))
                    }
                    other => {
                        return Err(format!("cannot start listener {}: {other:?}", l.actor_id()))
                    }
                }
            }
        }
        for c in &changes {
            tracing::info!(
                key = c.key,
                old = %c.old,
                new = %c.new,
                reloadable = c.reloadable,
                "configuration option changed"
            );
        }
        if let Ok(mut cur) = self.current.lock() {
            *cur = running;
        }
        let summary = summary(&applied, &changes, &warnings);
        tracing::info!(%summary, "configuration reloaded");
        Ok(summary)
    }
}

impl Reloader {
    /// Rereads the certificates with the running configuration (a new
    /// ACME one on disk) and swaps them into every listener, for
    /// connections opened from then on.
    pub async fn reload_certificates(&self) -> Result<(), String> {
        let _one = self.lock.lock().await;
        let running = self
            .current
            .lock()
            .map_err(|_| "configuration state poisoned")?
            .clone();
        let tls = crate::tls_setup(&running).map_err(|e| e.to_string())?;
        self.c2s.set_tls(Arc::new(tls));
        Ok(())
    }
}

/// What `config reload` prints: what was done, then the options that
/// changed by key, split into those that took effect and those that need a
/// restart, then the loader's warnings.
fn summary(applied: &[String], changes: &[Change], warnings: &[String]) -> String {
    let keys = |reloadable: bool| -> Vec<&str> {
        changes
            .iter()
            .filter(|c| c.reloadable == reloadable)
            .map(|c| c.key)
            .collect()
    };
    let (took, restart) = (keys(true), keys(false));
    let mut out = format!("applied: {}", applied.join(", "));
    if !took.is_empty() {
        out.push_str(&format!("\nchanged, took effect: {}", took.join(", ")));
    }
    if !restart.is_empty() {
        out.push_str(&format!(
            "\nchanged, needs a restart: {}",
            restart.join(", ")
        ));
    }
    if changes.is_empty() {
        out.push_str("\nno option changed");
    }
    for w in warnings {
        out.push_str(&format!("\nwarning: {w}"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn summary_splits_changes_by_key_into_applied_and_restart_needed() {
        let old = Config::default();
        let new = Config::from_toml(
            "[limits]\nmax_depth = 32\nmax_outbound_stanzas = 2000\n\
             [c2s]\nping_interval_secs = 60\n[mam]\ndefault_pref = 'roster'\n",
        )
        .unwrap();
        let applied = ["TLS certificates reread".to_owned()];
        assert_eq!(
            summary(&applied, &Config::diff(&old, &new), &["careful".to_owned()]),
            "applied: TLS certificates reread\n\
             changed, took effect: limits.max_depth\n\
             changed, needs a restart: limits.max_outbound_stanzas, c2s.ping_interval_secs, \
             mam.default_pref\n\
             warning: careful"
        );
        assert_eq!(
            summary(&applied, &[], &[]),
            "applied: TLS certificates reread\nno option changed"
        );
    }
}
