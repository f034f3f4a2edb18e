//! The documents generated from the declarations: the annotated
//! `config/chorus.toml` (every key with its doc and default) and the
//! reference `docs/CONFIG.md` (a table per section). Both are checked in;
//! the tests below fail when either differs from what the declarations
//! give, and `CHORUS_BLESS=1 cargo test -p chorus-config` rewrites them.

use std::fmt::Write as _;

use crate::spec::{OptionSpec, Section};
use crate::{Config, RULES, SECTIONS};

const TOML_HEADER: &str = "\
# Chorus configuration. Every key is shown with its default.
# Any key can be overridden from the environment: CHORUS_<SECTION>__<KEY>,
# e.g. CHORUS_SERVER__DATA_DIR=/var/lib/chorus. Unknown keys are errors.
# Keys marked \"reloadable\" take effect on `chorusctl config reload` (or
# SIGHUP); a change to any other key needs a restart. docs/CONFIG.md has
# the same reference as tables.
#
# Generated from the declarations in crates/config/src/lib.rs: change those,
# then run `CHORUS_BLESS=1 cargo test -p chorus-config`.
";

/// The annotated configuration file: each section with its doc, each key
/// with its doc lines, bounds and reloadability as comments, set to its
/// default.
pub fn annotated_toml() -> String {
    let defaults = Config::default();
    let mut out = String::from(TOML_HEADER);
    for section in SECTIONS {
        out.push('\n');
        if !section.table {
            for o in section.options {
                toml_tables(&mut out, o, &defaults);
            }
            continue;
        }
        comment(&mut out, section.doc_lines());
        let _ = writeln!(out, "[{}]", section.name);
        // TOML ends a section's plain keys at its first [[table]], so arrays
        // of tables come last whatever their place in the declaration.
        for o in section.options.iter().filter(|o| !o.tables) {
            comment(&mut out, o.doc_lines());
            if let Some(facts) = facts(o) {
                comment(&mut out, [facts.as_str()]);
            }
            let _ = writeln!(out, "{} = {}", o.name, o.value_toml(&defaults));
        }
        for o in section.options.iter().filter(|o| o.tables) {
            toml_tables(&mut out, o, &defaults);
        }
    }
    out
}

/// An array of tables: its doc, then one `[[key]]` per element, or the
/// declared example commented out when there is none by default.
fn toml_tables(out: &mut String, o: &OptionSpec, config: &Config) {
    comment(out, o.doc_lines());
    let value = (o.get)(config);
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    match (items.is_empty(), o.example) {
        (true, Some(example)) => {
            let facts = facts(o).map(|f| format!("{f} ")).unwrap_or_default();
            comment(out, [format!("{facts}For example:").as_str()]);
            comment(out, example.lines());
        }
        _ => {
            if let Some(facts) = facts(o) {
                comment(out, [facts.as_str()]);
            }
        }
    }
    for item in items {
        let _ = writeln!(out, "[[{}]]", o.key);
        let Some(fields) = item.as_object() else {
            continue;
        };
        let mut keys: Vec<&String> = fields.keys().collect();
        // Declared order first (kind before address), anything else sorted.
        keys.sort_by_key(|k| {
            let at = o.fields.iter().position(|f| f == k);
            (at.unwrap_or(usize::MAX), k.as_str())
        });
        for k in keys {
            let _ = writeln!(
                out,
                "{} = {}",
                crate::spec::toml_key(k),
                crate::spec::toml_inline(&fields[k])
            );
        }
    }
}

/// `At least 4; reloadable; formerly `header_timeout_secs`.`, or nothing
/// to say.
fn facts(o: &OptionSpec) -> Option<String> {
    let mut facts = Vec::new();
    if let Some(b) = o.bounds_text() {
        facts.push(b);
    }
    if o.reloadable {
        facts.push("reloadable".to_owned());
    }
    for alias in o.aliases {
        facts.push(format!(
            "formerly `{alias}` (still accepted, with a warning)"
        ));
    }
    let text = facts.join("; ");
    let mut chars = text.chars();
    let first = chars.next()?;
    Some(format!("{}{}.", first.to_uppercase(), chars.as_str()))
}

fn comment<'a>(out: &mut String, lines: impl IntoIterator<Item = &'a str>) {
    for line in lines {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
}

const MD_HEADER: &str = "\
# Configuration reference

<!-- Generated from the option declarations in crates/config/src/lib.rs by
     `CHORUS_BLESS=1 cargo test -p chorus-config`; edit those, not this. -->

Chorus reads one TOML file, given as `chorus --config PATH`;
`config/chorus.toml` shows every key below with its default and its
description. Any key can also be set from the environment as
`CHORUS_<SECTION>__<KEY>` (`CHORUS_STORAGE__URL=postgres://...`), which
wins over the file; only variables with a double underscore are
configuration. `chorusctl config check --file PATH` prints every effective
value with where it came from.

The loader is strict: an unknown key is an error that names the closest
valid key, a value of the wrong type is an error that names the key, and a
deprecated name still works but logs a warning with its replacement. Every
problem in a file is reported at once, one per line.

**Bounds** are checked at start and on reload: safety limits have floors,
so a configuration can tighten them, never disable them.

**Reloadable** options take effect on `chorusctl config reload` (or
`systemctl reload chorus`, which sends SIGHUP): parser limits and TLS
certificates for connections opened from then on, listeners started or
stopped. A change to any other option is reported by the reload as needing
a restart, and takes effect at the next start.
";

/// The reference: a table per section (key, type, default, bounds,
/// reloadable, description), the rules between options, the deprecated
/// names.
pub fn reference_markdown() -> String {
    let mut out = String::from(MD_HEADER);
    for section in SECTIONS {
        md_section(&mut out, section);
    }
    out.push_str("\n## Rules between options\n\n");
    for rule in RULES {
        let _ = writeln!(out, "- {rule}");
    }
    let renamed: Vec<(&str, &OptionSpec)> = crate::spec::all_options()
        .flat_map(|o| o.aliases.iter().map(move |a| (*a, o)))
        .collect();
    if !renamed.is_empty() {
        out.push_str(
            "\n## Deprecated names\n\n\
             Still accepted, with a warning at start and on reload.\n\n\
             | Old key | Use instead |\n|---|---|\n",
        );
        for (alias, o) in renamed {
            let section = o.key.rsplit_once('.').map(|(s, _)| s).unwrap_or("");
            let _ = writeln!(out, "| `{section}.{alias}` | `{}` |", o.key);
        }
    }
    out
}

fn md_section(out: &mut String, section: &Section) {
    if section.table {
        let _ = writeln!(out, "\n## `[{}]`\n", section.name);
        let _ = writeln!(out, "{}\n", one_paragraph(section.doc_lines()));
    } else {
        let _ = writeln!(out, "\n## `[[{}]]`\n", section.name);
    }
    out.push_str("| Key | Type | Default | Bounds | Reloadable | Description |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for o in section.options {
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} | {} |",
            o.key,
            cell(o.type_name),
            cell(&o.default_toml()),
            o.bounds_text().unwrap_or_default(),
            if o.reloadable { "yes" } else { "no" },
            cell(&one_paragraph(o.doc_lines())),
        );
    }
    for o in section.options {
        if let Some(example) = o.example {
            let _ = writeln!(out, "\nExample of `{}`:\n\n```toml\n{example}\n```", o.key);
        }
    }
}

/// Doc lines as one line of text: the alignment that helps in a comment
/// block means nothing in a table cell.
fn one_paragraph<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A table cell: a `|` would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Compares a checked-in file with what the declarations generate;
    /// with `CHORUS_BLESS=1` rewrites it instead.
    fn check_generated(relative: &str, generated: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(relative);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == generated {
            return;
        }
        if std::env::var("CHORUS_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, generated).unwrap();
            return;
        }
        panic!(
            "{relative} is out of date with the option declarations; \
             run `CHORUS_BLESS=1 cargo test -p chorus-config` to regenerate it.\n{}",
            line_diff(&current, generated)
        );
    }

    /// The lines that differ, between the common head and tail, as a
    /// unified-diff-like hunk (`-` checked in, `+` generated).
    fn line_diff(old: &str, new: &str) -> String {
        let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
        let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let tail = a[head..]
            .iter()
            .rev()
            .zip(b[head..].iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        let mut out = format!("@@ line {} @@\n", head + 1);
        for l in &a[head..a.len() - tail] {
            let _ = writeln!(out, "-{l}");
        }
        for l in &b[head..b.len() - tail] {
            let _ = writeln!(out, "+{l}");
        }
        out
    }

    #[test]
    fn shipped_config_matches_declarations() {
        check_generated("config/chorus.toml", &annotated_toml());
    }

    #[test]
    fn config_reference_matches_declarations() {
        check_generated("docs/CONFIG.md", &reference_markdown());
    }

    #[test]
    fn the_annotated_file_is_the_defaults() {
        assert_eq!(
            Config::from_toml(&annotated_toml()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn line_diff_shows_only_the_changed_lines() {
        assert_eq!(
            line_diff("a\nb\nc\nd\n", "a\nB\nc\nd\n"),
            "@@ line 2 @@\n-b\n+B\n"
        );
    }
}
