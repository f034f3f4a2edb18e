//! What changed between two configurations, option by option, and which
//! of those changes a reload can apply. Both come from the declarations:
//! an option marked `reload` is one the running server really re-reads on
//! `chorusctl config reload`; every other change waits for a restart.

use std::fmt;

use crate::spec::all_options;
use crate::Config;

/// One option whose value differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The full key, `limits.max_depth`.
    pub key: &'static str,
    /// The value before, rendered as TOML.
    pub old: String,
    /// The value after, rendered as TOML.
    pub new: String,
    /// A reload applies it; otherwise it needs a restart.
    pub reloadable: bool,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.key, self.old, self.new)
    }
}

impl Config {
    /// Every option whose value differs between `old` and `new`, in
    /// declaration order.
    pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
        all_options()
            .filter_map(|o| {
                let (a, b) = ((o.get)(old), (o.get)(new));
                (a != b).then(|| Change {
                    key: o.key,
                    old: crate::spec::toml_inline(&a),
                    new: crate::spec::toml_inline(&b),
                    reloadable: o.reloadable,
                })
            })
            .collect()
    }

    /// This configuration with the reloadable options taken from `new`:
    /// what a running server uses after a reload. Restart-only options keep
    /// the values it started with, so the next reload still reports them.
    pub fn with_reloadable(&self, new: &Config) -> Config {
        let mut out = self.clone();
        for o in all_options().filter(|o| o.reloadable) {
            (o.take)(&mut out, new);
        }
        out
    }
}
