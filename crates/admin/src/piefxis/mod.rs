//! XEP-0227 version 1.1, Portable Import/Export Format for XMPP-IM Servers
//! (PIEFXIS): `chorusctl import <file>` and `chorusctl export <dir>`.
//!
//! Both run inside the server, which opens the paths itself: chorusctl and
//! the server share the machine, and the server holds the storage.
//!
//! # Import
//!
//! What is read from each `<user/>`: the account (a plaintext `password`
//! attribute is turned into SCRAM-SHA-1 and SCRAM-SHA-256 keys; the
//! `<scram-credentials xmlns='urn:xmpp:pie:0#scram'/>` of version 1.1 are
//! kept as they are for the hashes this server offers), the roster
//! (`jabber:iq:roster`), the vCard (`vcard-temp`), private XML
//! (`jabber:iq:private`) and `<offline-messages/>`. Everything else, hosts
//! not in `server.domains`, and accounts that exist already are skipped and
//! listed in the report; existing accounts are never overwritten.
//!
//! ## Reading without a second parser, and without the whole tree
//!
//! Everything goes through chorus-xml's hardened [`StreamParser`], which
//! turns a stream header and then one complete top-level element at a time
//! into events, with every limit enforced while bytes arrive. A PIEFXIS
//! document nests one level deeper than a stream (`server-data` > `host` >
//! `user`), so a host, which may hold every account of a server, must not
//! be parsed as one element unless it is small. Instead the reader takes
//! the document apart at
//! the two outer levels, always with a fresh parser over a slice of the
//! file, and knows where each event ended from what the parser still
//! buffers:
//!
//! - The root start tag is parsed as a stream header.
//! - Each child of `<server-data/>` is first tried whole, as an element
//!   under the root's start tag (`ReadLimits::small_child`, 1 MiB): that covers
//!   `<xi:include/>` and small hosts. A host too large for that has its own
//!   start tag parsed as a stream header, and a second parser then reads its
//!   `<user/>` children one by one as stanzas, after a synthetic header that
//!   repeats the host's start tag with the namespace declarations inherited
//!   from `<server-data/>` (which the host's raw tag, parsed out of context,
//!   would not see).
//! - A host file whose root is `<host/>` (what ejabberd's `export_piefxis`
//!   writes next to a `<server-data/>` of `<xi:include/>`s) is one stream.
//!
//! So memory is bounded by one `<user/>` (`ReadLimits::user`, 16 MiB of
//! XML) and the few batches in flight (each cut at `BATCH_BYTES`), whatever
//! the file's size. `<xi:include href='...'/>` is followed for relative
//! paths below the including file's directory, one level deep.
//!
//! ## All or nothing for malformed files
//!
//! Accounts are written in batches, one transaction each, so a syntax error
//! after the first batch would leave a partial import. The file is therefore
//! read twice: a first pass checks the whole document (includes too) and
//! imports nothing if it is malformed; parsing costs little next to PBKDF2.
//!
//! ## Speed
//!
//! The cost of an import with plaintext passwords is PBKDF2: two hashes of
//! `sasl.iterations` rounds per account. The reading thread hands batches
//! of accounts to the command's task, which splits each batch's key
//! derivation over every core (`spawn_blocking`), keeps two batches
//! deriving so that no core waits for a batch's slowest part, and writes
//! each derived batch in one transaction ([`ImportStore::import_accounts`])
//! while the next ones derive. Accounts that exist already are found a
//! batch at a time ([`ImportStore::existing_accounts`]) before any key is
//! derived for them.
//!
//! # Export
//!
//! One file per served domain, `<dir>/<domain>.xml`, each a complete
//! `<server-data/>` with one `<host/>`, written to a temporary name (mode
//! 0600: it holds SCRAM keys) and renamed into place, so an existing export
//! is replaced whole or not at all. Credentials are exported as
//! `<scram-credentials/>` (we never have the password), offline messages
//! with a XEP-0203 delay from the domain holding the time they were stored,
//! which an import turns back into that time. So import(export(x))
//! reproduces x, and exporting that again gives the same bytes.
//!
//! # Where things are
//!
//! - `reader.rs`: the document taken apart into hosts and users, with the
//!   hardened parser, includes and every limit;
//! - `user.rs`: one `<user/>` turned into an account: credentials, roster,
//!   vCard, private XML and offline messages, each checked as a client's
//!   would be;
//! - `import.rs`: the two passes and the write pipeline (batches, key
//!   derivation on every core, one transaction per batch);
//! - `report.rs`: what an import did and skipped, as JSON and text;
//! - `export.rs`: the files written from storage.
//!
//! [`StreamParser`]: chorus_xml::StreamParser
//! [`ImportStore::import_accounts`]: chorus_storage::ImportStore::import_accounts
//! [`ImportStore::existing_accounts`]: chorus_storage::ImportStore::existing_accounts

/// XEP-0227 as a declaration, for `docs/XEPS.md` (it is an admin command,
/// not a module that stanzas reach).
pub static INFO: chorus_modules::ModuleInfo = chorus_modules::ModuleInfo {
    name: "piefxis",
    file: file!(),
    xeps: &[chorus_modules::Xep {
        number: 227,
        name: "Portable Import/Export Format for XMPP-IM Servers",
        version: "1.1",
        support: chorus_modules::Support::Partial,
        note: "Accounts (plaintext or SCRAM), rosters, vCards, private XML, offline messages and PEP nodes with their items; no MAM data.",
    }],
    ..chorus_modules::ModuleInfo::EMPTY
};

use std::path::PathBuf;

use chorus_xml::Element;

use crate::CommandError;

mod export;
mod import;
mod reader;
mod report;
mod user;

pub use export::export;
pub use import::import;
pub use reader::{read_document, Piece, ReadError, ReadLimits, Visit};

/// The namespace of XEP-0227 (since version 1.0).
pub const PIE_NS: &str = "urn:xmpp:pie:0";
/// The namespace of drafts before 1.0, which old ejabberd versions wrote.
const PIE_NS_DRAFT: &str = "http://www.xmpp.org/extensions/xep-0227.html#ns";
/// XEP-0227 1.1 §3.1: SCRAM credentials instead of a password.
const SCRAM_NS: &str = "urn:xmpp:pie:0#scram";
const XINCLUDE_NS: &str = "http://www.w3.org/2001/XInclude";
const ROSTER_NS: &str = "jabber:iq:roster";
const VCARD_NS: &str = "vcard-temp";
const PRIVATE_NS: &str = "jabber:iq:private";
/// XEP-0227 §4.x: a user's PEP items, and their nodes' configuration,
/// affiliations and subscriptions.
const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";
const PUBSUB_OWNER_NS: &str = "http://jabber.org/protocol/pubsub#owner";
const CLIENT_NS: &str = "jabber:client";
const DELAY_NS: &str = "urn:xmpp:delay";
/// XEP-0091 legacy delay, which older servers add next to XEP-0203's.
const LEGACY_DELAY_NS: &str = "jabber:x:delay";

fn is_pie(ns: &str) -> bool {
    ns == PIE_NS || ns == PIE_NS_DRAFT
}

/// A short description of an element for the report: `<query xmlns='x'>`.
fn describe(e: &Element) -> String {
    if e.ns().is_empty() {
        format!("<{}>", e.name())
    } else {
        format!("<{} xmlns='{}'>", e.name(), e.ns())
    }
}

/// The server resolves paths itself, in its own working directory, which is
/// not the operator's: only absolute paths say the same thing to both.
fn absolute(raw: &str, what: &str) -> Result<PathBuf, CommandError> {
    let path = PathBuf::from(raw);
    if raw.is_empty() || !path.is_absolute() {
        return Err(CommandError::BadArgs(format!(
            "the {what} must be an absolute path ('{raw}' is not): the server opens it, \
             from its own working directory"
        )));
    }
    Ok(path)
}
