//! Live configuration reload (SIGHUP, `chorusctl config reload`): re-reads
//! the configuration file and applies what can change without dropping a
//! connection. Parser limits and TLS certificates apply to connections
//! opened from then on; listeners added or removed are started or stopped
//! under `listeners`. Anything else that changed is reported as needing a
//! restart. An invalid file changes nothing and reports the error (with
//! the loader's did-you-mean).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chorus_c2s::C2sContext;
use chorus_config::Config;
use chorus_listener::{port_spec, BoundAddrs};
use chorus_supervisor::{Registry, SupervisorMsg, SupervisorOptions};
use ractor::ActorRef;

pub struct Reloader {
    pub(crate) path: Option<PathBuf>,
    pub(crate) current: Mutex<Config>,
    pub(crate) c2s: Arc<C2sContext>,
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
        let new = Config::load(Some(path)).map_err(|e| e.to_string())?;
        let old = self
            .current
            .lock()
            .map_err(|_| "configuration state poisoned")?
            .clone();
        let tls = crate::tls_setup(&new).map_err(|e| e.to_string())?;
        let mut applied = vec!["TLS certificates reread".to_owned()];
        if new.limits != old.limits {
            applied.push("limits".to_owned());
        }
        self.c2s.reload(new.limits.xml(), Some(Arc::new(tls)));

        let old_ids: BTreeSet<String> = old.listeners.iter().map(|l| l.actor_id()).collect();
        let new_ids: BTreeSet<String> = new.listeners.iter().map(|l| l.actor_id()).collect();
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
            for l in new
                .listeners
                .iter()
                .filter(|l| !old_ids.contains(&l.actor_id()))
            {
                let spec = port_spec(
                    l.clone(),
                    self.c2s.clone(),
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
        let sections = [
            ("server", old.server != new.server),
            ("c2s", old.c2s != new.c2s),
            ("sasl", old.sasl != new.sasl),
            ("storage", old.storage != new.storage),
            ("admin", old.admin != new.admin),
            ("supervision", old.supervision != new.supervision),
            ("offline", old.offline != new.offline),
            ("metrics", old.metrics != new.metrics),
            ("register", old.register != new.register),
        ];
        let restart: Vec<&str> = sections
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(name, _)| *name)
            .collect();
        if let Ok(mut cur) = self.current.lock() {
            *cur = new;
        }
        let mut summary = format!("applied: {}", applied.join(", "));
        if !restart.is_empty() {
            summary.push_str(&format!(
                "\nchanged but only applied after a restart: [{}]",
                restart.join("], [")
            ));
        }
        tracing::info!(%summary, "configuration reloaded");
        Ok(summary)
    }
}
