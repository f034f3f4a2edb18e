//! What Chorus implements, as the modules declare it: `docs/XEPS.md` and
//! `chorus.doap` (the DOAP description xmpp.org uses to list servers and
//! what they support) are rendered from the [`ModuleInfo`] declarations,
//! never written by hand. Tests fail when either file is out of date
//! (`CHORUS_BLESS=1 cargo test -p chorus-server --lib xeps` rewrites them),
//! or when a XEP is declared by more than one module file.

use std::collections::BTreeMap;
use std::fmt::Write;

use chorus_modules::{ModuleInfo, Support};

/// Every declaration: the running modules' and those of features outside
/// them (XEP-0227 is an admin command).
pub fn declarations() -> Vec<&'static ModuleInfo> {
    let mut all = crate::modules(&chorus_config::Config::default(), Vec::new()).infos();
    all.push(&chorus_admin::piefxis::INFO);
    // Runs only with an HTTP listener, which the default has not.
    all.push(&chorus_modules::upload::INFO);
    all
}

/// The RFCs the server implements, with what is left out.
const RFCS: &[(u32, &str, &str)] = &[
    (
        6120,
        "XMPP: Core",
        "Client streams; no server-to-server streams yet.",
    ),
    (6121, "XMPP: Instant Messaging and Presence", ""),
    (7622, "XMPP: Address Format", ""),
    (
        7395,
        "XMPP over WebSocket",
        "On the `http` and `https` listeners, `/xmpp-websocket`; no see-other-host.",
    ),
    (5802, "SCRAM SASL mechanisms", "SCRAM-SHA-1(-PLUS)."),
    (7677, "SCRAM-SHA-256 and SCRAM-SHA-256-PLUS", ""),
    (9266, "Channel Bindings for TLS 1.3", "tls-exporter."),
];

/// What operators look for and do not find yet: each answers with the
/// proper XMPP error (`service-unavailable`, `feature-not-implemented`).
const MISSING: &[(&str, &str)] = &[
    (
        "XEP-0198 on server-to-server streams",
        "stanzas written to a stream that then breaks are not resent",
    ),
    (
        "XEP-0288 (Bidirectional Server-to-Server Connections)",
        "each direction has its own stream",
    ),
];

/// One XEP and the declaration it comes from.
struct Row {
    info: &'static ModuleInfo,
    xep: &'static chorus_modules::Xep,
}

fn rows() -> BTreeMap<u16, Vec<Row>> {
    let mut by_number: BTreeMap<u16, Vec<Row>> = BTreeMap::new();
    for info in declarations() {
        for xep in info.xeps {
            by_number
                .entry(xep.number)
                .or_default()
                .push(Row { info, xep });
        }
    }
    by_number
}

/// `docs/XEPS.md`.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# What Chorus implements\n\n");
    out.push_str(
        "Generated from the modules' declarations (`ModuleInfo`); do not edit by\n\
         hand. `CHORUS_BLESS=1 cargo test -p chorus-server --lib xeps` rewrites it\n\
         (and `chorus.doap`) after a module's declaration changed.\n\n",
    );
    out.push_str("## RFCs\n\n| RFC | Title | Notes |\n|---|---|---|\n");
    for (n, title, note) in RFCS {
        let _ = writeln!(out, "| {n} | {title} | {note} |");
    }
    out.push_str(
        "\n## XEPs\n\n| XEP | Name | Version | Status | Module | File | Notes |\n|---|---|---|---|---|---|---|\n",
    );
    for rows in rows().values() {
        for r in rows {
            let _ = writeln!(
                out,
                "| [{:04}](https://xmpp.org/extensions/xep-{:04}.html) | {} | {} | {} | `{}` | `{}` | {} |",
                r.xep.number,
                r.xep.number,
                r.xep.name,
                r.xep.version,
                r.xep.support.as_str(),
                r.info.name,
                r.info.file,
                r.xep.note
            );
        }
    }
    out.push_str("\n## Not there yet\n\n");
    for (spec, what) in MISSING {
        let _ = writeln!(out, "- {spec}: {what}");
    }
    out
}

/// `chorus.doap`: DOAP with the XMPP extensions of
/// <https://linkmauve.fr/ns/xmpp-doap#>, which xmpp.org reads.
pub fn doap() -> String {
    let mut out = String::new();
    out.push_str(
        "<?xml version='1.0' encoding='UTF-8'?>\n\
         <!-- Generated from the modules' declarations; see docs/XEPS.md. -->\n\
         <rdf:RDF xmlns='http://usefulinc.com/ns/doap#'\n\
         \x20        xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'\n\
         \x20        xmlns:xmpp='https://linkmauve.fr/ns/xmpp-doap#'>\n\
         \x20 <Project>\n\
         \x20   <name>Chorus</name>\n\
         \x20   <shortdesc xml:lang='en'>An XMPP server in Rust, built as an OTP-style actor system</shortdesc>\n\
         \x20   <programming-language>Rust</programming-language>\n\
         \x20   <license rdf:resource='https://www.gnu.org/licenses/agpl-3.0.html'/>\n\
         \x20   <category rdf:resource='https://linkmauve.fr/ns/xmpp-doap#category-server'/>\n\
         \x20   <os>Linux</os>\n",
    );
    for (n, _, _) in RFCS {
        let _ = writeln!(
            out,
            "    <implements rdf:resource='https://xmpp.org/rfcs/rfc{n}.html'/>"
        );
    }
    for rows in rows().values() {
        for r in rows {
            let _ = write!(
                out,
                "    <implements>\n\
                 \x20     <xmpp:SupportedXep>\n\
                 \x20       <xmpp:xep rdf:resource='https://xmpp.org/extensions/xep-{:04}.html'/>\n\
                 \x20       <xmpp:status>{}</xmpp:status>\n\
                 \x20       <xmpp:version>{}</xmpp:version>\n",
                r.xep.number,
                r.xep.support.as_str(),
                r.xep.version
            );
            if !r.xep.note.is_empty() {
                let _ = writeln!(
                    out,
                    "        <xmpp:note xml:lang='en'>{}</xmpp:note>",
                    chorus_xml::escape_text(r.xep.note)
                );
            }
            out.push_str("      </xmpp:SupportedXep>\n    </implements>\n");
        }
    }
    out.push_str("  </Project>\n</rdf:RDF>\n");
    out
}

/// The XEPs declared by more than one module file (must be none).
pub fn declared_twice() -> Vec<(u16, Vec<&'static str>)> {
    rows()
        .into_iter()
        .filter_map(|(n, rows)| {
            let mut files: Vec<&str> = rows.iter().map(|r| r.info.file).collect();
            files.sort_unstable();
            files.dedup();
            (files.len() > 1 || rows.len() > 1).then_some((n, files))
        })
        .collect()
}

/// Whether any declaration claims complete support.
pub fn any_complete() -> bool {
    declarations()
        .iter()
        .flat_map(|i| i.xeps)
        .any(|x| x.support == Support::Complete)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The repository root (the server crate is `crates/server`).
    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Compares a generated file with the one in the repository, or
    /// rewrites it with `CHORUS_BLESS=1`.
    fn check(path: &str, generated: &str) {
        let file = root().join(path);
        if std::env::var("CHORUS_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&file, generated).unwrap();
            return;
        }
        let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
        if on_disk != generated {
            let first = on_disk
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .map_or_else(
                    || "the line counts".to_owned(),
                    |n| format!("line {}", n + 1),
                );
            panic!(
                "{path} is out of date (first difference at {first}); \
                 run `CHORUS_BLESS=1 cargo test -p chorus-server --lib xeps` and commit it"
            );
        }
    }

    #[test]
    fn xeps_md_is_generated_from_the_declarations() {
        check("docs/XEPS.md", &markdown());
    }

    #[test]
    fn doap_is_generated_from_the_declarations() {
        check("chorus.doap", &doap());
    }

    #[test]
    fn each_xep_has_exactly_one_module_file() {
        assert_eq!(declared_twice(), Vec::<(u16, Vec<&str>)>::new());
        assert!(any_complete());
    }

    #[test]
    fn each_declaration_names_a_real_file() {
        for info in declarations() {
            assert!(
                root().join(info.file).is_file(),
                "{}: {} does not exist",
                info.name,
                info.file
            );
        }
    }

    #[test]
    fn the_doap_is_well_formed_xml() {
        let doap = doap();
        let body = doap.split_once("-->\n").map(|(_, b)| b).unwrap();
        let parsed = chorus_xml::Element::from_xml(body).unwrap();
        assert_eq!(parsed.name(), "RDF");
        let project = parsed.children().next().unwrap();
        assert!(project
            .children()
            .any(|c| c.name() == "implements" && c.children().next().is_some()));
    }
}
