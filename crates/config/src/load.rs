//! Loading: the file and the `CHORUS_` environment, merged by figment, then
//! checked key by key against the declarations in [`crate::SECTIONS`].
//!
//! figment alone stops at the first problem and words it in Rust terms
//! (`invalid type: found string "abc", expected u64 for key
//! "default.c2s.ping_interval_secs"`). Checking each key against its spec
//! instead finds every unknown key (with a did-you-mean), every value of the
//! wrong type (`c2s.ping_interval_secs: expected an unsigned integer, found
//! a string "abc"`), maps deprecated names to their replacements with a
//! warning, and only then builds the [`Config`] and checks bounds and
//! cross-field rules. All problems are reported together, one per line.

use std::path::Path;

use figment::error::{Actual, Kind};
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

use crate::spec::{all_options, OptionSpec};
use crate::{Config, ConfigError, SECTIONS};

/// A configuration that passed every check, with what the loader has to
/// say about how it was written.
pub(crate) struct Resolved {
    pub config: Config,
    /// Deprecated names used, one sentence each.
    pub warnings: Vec<String>,
    /// (declared key, the deprecated key it was set under).
    pub renamed: Vec<(&'static str, String)>,
}

impl Config {
    /// Loads defaults, then `path` if given, then `CHORUS_*` variables.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_warnings(path).map(|(config, _)| config)
    }

    /// Like [`Config::load`], and returns the warnings too (a deprecated
    /// name used): the server logs them at start and a reload reports them.
    pub fn load_with_warnings(path: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
        let r = resolve(&figment(path)?)?;
        Ok((r.config, r.warnings))
    }

    /// Parses a TOML string over the defaults (tests and `config check`).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_toml_with_warnings(text).map(|(config, _)| config)
    }

    /// Like [`Config::from_toml`], with the warnings.
    pub fn from_toml_with_warnings(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let r = resolve(&Figment::from(Toml::string(text)))?;
        Ok((r.config, r.warnings))
    }

    /// Every effective value with where it came from (`chorusctl config
    /// check`): `default`, `file PATH` or `env VAR`, in declaration order.
    /// Loads like [`Config::load`], so an invalid file gives the same error.
    pub fn explain(path: Option<&Path>) -> Result<Vec<(String, String, String)>, ConfigError> {
        let fig = figment(path)?;
        let resolved = resolve(&fig)?;
        let rows = all_options()
            .map(|o| {
                let value = (o.get)(&resolved.config).to_string();
                let renamed = resolved.renamed.iter().find(|(key, _)| *key == o.key);
                let source = match renamed {
                    // Said here too, as `config check` prints no warnings.
                    Some((_, old)) => format!("{} (as deprecated {old})", source_of(&fig, old)),
                    None => source_of(&fig, o.key),
                };
                (o.key.to_owned(), value, source)
            })
            .collect();
        Ok(rows)
    }

    /// Bounds, then the cross-field rules; every problem, one per line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.bound_problems();
        problems.extend(self.rule_problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Each declared `min`/`max` against the value.
    fn bound_problems(&self) -> Vec<String> {
        all_options()
            .filter(|o| o.min.is_some() || o.max.is_some())
            .filter_map(|o| {
                // Bounds are declared on integers only (a test checks it).
                let v = (o.get)(self).as_u64()?;
                match (o.min, o.max) {
                    (Some(min), _) if v < min => {
                        Some(format!("{} = {v} is below the minimum {min}", o.key))
                    }
                    (_, Some(max)) if v > max => {
                        Some(format!("{} = {v} is above the maximum {max}", o.key))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

/// The file, if any, under the `CHORUS_` variables. No defaults: what is
/// absent takes its declared default when the [`Config`] is built, so the
/// figment holds exactly what the operator wrote.
fn figment(path: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut fig = Figment::new();
    if let Some(p) = path {
        if !p.exists() {
            return Err(ConfigError::Invalid(vec![format!(
                "config file {} does not exist",
                p.display()
            )]));
        }
        fig = fig.merge(Toml::file(p));
    }
    // Every key lives in a section, so a configuration variable always
    // has a double underscore (CHORUS_SERVER__DATA_DIR). Others sharing
    // the prefix (CHORUS_LOG, test harness variables) are not config.
    Ok(fig.merge(
        Env::prefixed("CHORUS_")
            .filter(|k| k.as_str().contains("__"))
            .split("__"),
    ))
}

/// Checks what the operator wrote against the declarations and builds the
/// configuration.
pub(crate) fn resolve(fig: &Figment) -> Result<Resolved, ConfigError> {
    // Only syntax errors (and unreadable files) fail here: any TOML is a
    // dictionary.
    let mut user: Dict = fig
        .extract()
        .map_err(|e| ConfigError::Invalid(e.into_iter().map(|e| e.to_string()).collect()))?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut renamed = Vec::new();
    // Only keys that passed their check; a rejected one takes its default,
    // so the rest of the file can still be checked.
    let mut clean = Dict::new();
    for section in SECTIONS {
        let Some(value) = user.remove(section.name) else {
            continue;
        };
        if !section.table {
            for spec in section.options {
                match (spec.check)(&value) {
                    Ok(()) => {
                        clean.insert(section.name.to_owned(), value.clone());
                    }
                    Err(e) => problems.extend(value_problems(spec, e)),
                }
            }
            continue;
        }
        let Value::Dict(tag, mut entries) = value else {
            problems.push(format!(
                "{name}: expected a table ([{name}]), found {}",
                describe_actual(&value.to_actual()),
                name = section.name
            ));
            continue;
        };
        let mut checked = Dict::new();
        for spec in section.options {
            let mut found = entries.remove(spec.name);
            for alias in spec.aliases {
                let Some(v) = entries.remove(*alias) else {
                    continue;
                };
                let old = format!("{}.{alias}", section.name);
                if found.is_some() {
                    warnings.push(format!(
                        "`{old}` is a deprecated name of `{}`, which is set too; `{old}` is ignored",
                        spec.key
                    ));
                } else {
                    warnings.push(format!(
                        "`{old}` is deprecated: rename it to `{}`",
                        spec.key
                    ));
                    renamed.push((spec.key, old));
                    found = Some(v);
                }
            }
            let Some(v) = found else {
                continue;
            };
            match (spec.check)(&v) {
                Ok(()) => {
                    checked.insert(spec.name.to_owned(), v);
                }
                Err(e) => problems.extend(value_problems(spec, e)),
            }
        }
        let names: Vec<&str> = section.options.iter().map(|o| o.name).collect();
        for unknown in entries.keys() {
            problems.push(unknown_key(
                &format!("{}.{unknown}", section.name),
                unknown,
                &names,
            ));
        }
        clean.insert(section.name.to_owned(), Value::Dict(tag, checked));
    }
    let names: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
    for unknown in user.keys() {
        problems.push(unknown_key(unknown, unknown, &names));
    }
    // Every value passed its own check above, so this cannot fail on a
    // value; it fills in the defaults.
    let config: Config = Value::from(clean)
        .deserialize()
        .map_err(|e| ConfigError::Invalid(e.into_iter().map(|e| e.to_string()).collect()))?;
    if problems.is_empty() {
        if let Err(ConfigError::Invalid(p)) = config.validate() {
            problems = p;
        }
    } else {
        // Cross-field rules would judge a default standing in for a
        // rejected value, and report a problem the operator did not make;
        // they wait until every value is valid on its own. Bounds concern
        // one value each and are checked now.
        problems.extend(config.bound_problems());
    }
    if problems.is_empty() {
        Ok(Resolved {
            config,
            warnings,
            renamed,
        })
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Where `key` was set: `file PATH`, `env CHORUS_...` or `default`.
fn source_of(fig: &Figment, key: &str) -> String {
    let Some(meta) = fig.find_metadata(key) else {
        return "default".to_owned();
    };
    match &meta.source {
        Some(figment::Source::File(p)) => format!("file {}", p.display()),
        Some(figment::Source::Code(_)) => "default".to_owned(),
        Some(figment::Source::Custom(c)) => c.clone(),
        Some(other) => other.to_string(),
        None if meta.name.contains("environment") => {
            format!("env CHORUS_{}", key.replace('.', "__").to_uppercase())
        }
        None => "default".to_owned(),
    }
}

/// One line per problem with a value: the full key (with `[i]` into a list
/// of tables), what was expected in an operator's words, what was found.
fn value_problems(spec: &OptionSpec, err: Box<figment::Error>) -> Vec<String> {
    err.into_iter()
        .map(|e| {
            let mut at = spec.key.to_owned();
            for seg in &e.path {
                if seg.bytes().all(|b| b.is_ascii_digit()) {
                    at.push_str(&format!("[{seg}]"));
                } else {
                    at.push('.');
                    at.push_str(seg);
                }
            }
            // Deeper than the option itself (a key inside a listener), only
            // serde's wording is available; it is made plain.
            let nested = !e.path.is_empty();
            match &e.kind {
                Kind::InvalidType(found, expected) | Kind::InvalidValue(found, expected) => {
                    let expected = if nested {
                        plain_expected(expected)
                    } else {
                        spec.expected
                    };
                    format!(
                        "{at}: expected {expected}, found {}",
                        describe_actual(found)
                    )
                }
                Kind::UnknownVariant(found, choices) => {
                    let hint = suggest(found, choices)
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    let expected = if nested {
                        let quoted: Vec<String> =
                            choices.iter().map(|c| format!("{c:?}")).collect();
                        format!("one of {}", quoted.join(", "))
                    } else {
                        spec.expected.to_owned()
                    };
                    format!("{at}: unknown value {found:?}{hint}; expected {expected}")
                }
                Kind::UnknownField(field, expected) => {
                    let key = if e.path.last() == Some(field) {
                        at
                    } else {
                        format!("{at}.{field}")
                    };
                    unknown_key(&key, field, expected)
                }
                Kind::MissingField(field) => format!("{at}: missing key `{field}`"),
                Kind::Message(m) => format!("{at}: {m}"),
                Kind::InvalidLength(n, expected) => {
                    format!("{at}: expected {expected}, found {n} items")
                }
                other => format!("{at}: {other}"),
            }
        })
        .collect()
}

/// `unknown key `server.domian`: did you mean `domains`?`, or the list of
/// valid keys when nothing is close.
fn unknown_key(key: &str, word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates) {
        Some(s) => format!("unknown key `{key}`: did you mean `{s}`?"),
        None => format!(
            "unknown key `{key}`; valid keys here: {}",
            candidates.join(", ")
        ),
    }
}

/// serde's "expected" for a value nested in an option, without Rust type
/// names.
fn plain_expected(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "an unsigned integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        other => other,
    }
}

/// What was found, as an operator would say it.
fn describe_actual(found: &Actual) -> String {
    match found {
        Actual::Str(s) => format!("a string {s:?}"),
        Actual::Char(c) => format!("a string {:?}", c.to_string()),
        Actual::Unsigned(n) => format!("the number {n}"),
        Actual::Signed(n) => format!("the number {n}"),
        Actual::Float(n) => format!("the number {n}"),
        Actual::Bool(b) => b.to_string(),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "a table".to_owned(),
        Actual::Unit | Actual::Option => "nothing".to_owned(),
        other => other.to_string(),
    }
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
