//! XEP-0227 version 1.1 (PIEFXIS) import and export through the real
//! binaries: `chorusctl import` of a file exported by a real ejabberd
//! (tests/fixtures/ejabberd), logins with the original passwords and the
//! roster, vCard, private XML and offline messages they find; export,
//! import into a fresh server and export again, byte for byte; and a
//! malformed file that imports nothing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::client::XmppClient;
use crate::common::temp_dir;
use chorus_sasl::{Mechanism, ScramCredentials, ScramHash};
use chorus_xml::Element;
use serde_json::Value;

struct Daemon {
    child: Child,
    socket: PathBuf,
    addr: std::net::SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary serving `domains` on an ephemeral port and waits
/// for its "listening" log line (as binary.rs does, with domains).
fn spawn_daemon(tag: &str, domains: &[&str]) -> Daemon {
    let dir = temp_dir(tag);
    let socket = dir.join("chorus.sock");
    let config = dir.join("chorus.toml");
    let domains = domains
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &config,
        format!(
            "[server]\ndomains = [{domains}]\ndata_dir = '{}'\n\n[metrics]\naddress = '127.0.0.1:0'\n\n[[listeners]]\nkind = 'c2s'\naddress = '127.0.0.1:0'\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .arg("--config")
        .arg(&config)
        .env("CHORUS_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("address=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server logged its address")
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Daemon {
        child,
        socket,
        addr,
    }
}

fn chorusctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::common::chorusctl_bin())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `chorusctl <args> --json`, which must succeed.
fn chorusctl_json(socket: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = chorusctl(socket, &all);
    assert_eq!(code, 0, "chorusctl {args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The main file of the ejabberd export, which includes one file per host.
fn ejabberd_export() -> String {
    fixture("ejabberd/20261124-092839.xml")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// A logged-in, bound client of `user@domain` that has not sent presence
/// yet (so that no broadcast comes between the IQs and their answers).
async fn login(
    addr: std::net::SocketAddr,
    domain: &str,
    user: &str,
    password: &str,
    mech: Mechanism,
) -> XmppClient {
    let mut c = XmppClient::connect(addr).await;
    c.domain = domain.to_owned();
    c.open().await;
    c.starttls().await;
    c.open().await;
    c.scram(mech, user, password, None)
        .await
        .unwrap_or_else(|e| panic!("{user}@{domain} logs in with {}: {e}", mech.name()));
    c.open().await;
    c.bind(Some("import")).await.unwrap();
    c
}

async fn iq_get(c: &mut XmppClient, id: &str, payload: &str) -> Element {
    c.send(&format!("<iq type='get' id='{id}'>{payload}</iq>"))
        .await;
    let iq = c.expect("iq").await;
    assert_eq!(iq.attr("type"), Some("result"), "{}", iq.to_xml());
    assert_eq!(iq.attr("id"), Some(id));
    iq
}

/// The roster as `jid -> (name, subscription, ask, groups)`.
async fn roster(c: &mut XmppClient) -> BTreeMap<String, (String, String, String, Vec<String>)> {
    let iq = iq_get(c, "roster", "<query xmlns='jabber:iq:roster'/>").await;
    let query = iq.get_child("query", "jabber:iq:roster").unwrap();
    query
        .children()
        .map(|i| {
            (
                i.attr("jid").unwrap().to_owned(),
                (
                    i.attr("name").unwrap_or_default().to_owned(),
                    i.attr("subscription").unwrap_or_default().to_owned(),
                    i.attr("ask").unwrap_or_default().to_owned(),
                    i.children().map(|g| g.text()).collect(),
                ),
            )
        })
        .collect()
}

async fn vcard(c: &mut XmppClient) -> Element {
    let iq = iq_get(c, "vcard", "<vCard xmlns='vcard-temp'/>").await;
    iq.get_child("vCard", "vcard-temp").unwrap().clone()
}

fn item(name: &str, sub: &str, groups: &[&str]) -> (String, String, String, Vec<String>) {
    (
        name.to_owned(),
        sub.to_owned(),
        String::new(),
        groups.iter().map(|g| g.to_string()).collect(),
    )
}

/// What the fixture's ejabberd held for alice (see tests/fixtures/README.md).
fn alice_roster() -> BTreeMap<String, (String, String, String, Vec<String>)> {
    BTreeMap::from([
        (
            "bob@localhost".to_owned(),
            item("Bob", "both", &["Friends", "Work"]),
        ),
        (
            "dave@example.org".to_owned(),
            item("Dave from example.org", "to", &["Remote"]),
        ),
        (
            "romeo@montague.net".to_owned(),
            item("Romeo 'R' Montague", "none", &[]),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_export_imports_and_its_users_log_in_with_their_passwords() {
    let d = spawn_daemon("pie-ejabberd", &["localhost", "example.org"]);
    let file = ejabberd_export();
    let report = chorusctl_json(&d.socket, &["import", &file]);
    assert_eq!(
        report["imported"],
        serde_json::json!({
            "accounts": 5, "roster_items": 5, "vcards": 3, "private": 1, "offline": 3,
            // ejabberd's export carries no PEP.
            "pep_nodes": 0, "pep_items": 0
        }),
        "{report:#}"
    );
    assert_eq!(report["skipped_total"], 0, "{report:#}");
    let (_, users, _) = chorusctl(&d.socket, &["user", "list"]);
    assert_eq!(
        users.lines().collect::<Vec<_>>(),
        vec![
            "dave@example.org",
            "erin@example.org",
            "alice@localhost",
            "bob@localhost",
            "carol@localhost"
        ]
    );

    // localhost kept SCRAM-SHA-1 keys in ejabberd: imported as they were,
    // they accept the original passwords (bob's has XML specials in it).
    let mut alice = login(
        d.addr,
        "localhost",
        "alice",
        "alice-Secret1",
        Mechanism::ScramSha1,
    )
    .await;
    assert_eq!(roster(&mut alice).await, alice_roster());
    let card = vcard(&mut alice).await;
    assert_eq!(
        card.get_child("FN", "vcard-temp").unwrap().text(),
        "Alice Liddell"
    );
    assert_eq!(
        card.get_child("N", "vcard-temp")
            .unwrap()
            .get_child("FAMILY", "vcard-temp")
            .unwrap()
            .text(),
        "Liddell"
    );
    assert_eq!(
        card.get_child("URL", "vcard-temp").unwrap().text(),
        "https://example.com/?a=1&b=2"
    );
    let iq = iq_get(
        &mut alice,
        "private",
        "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>",
    )
    .await;
    let conference = iq
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("storage", "storage:bookmarks"))
        .and_then(|s| s.get_child("conference", "storage:bookmarks"))
        .unwrap();
    assert_eq!(conference.attr("jid"), Some("room@conference.localhost"));
    // Only SHA-1 came from ejabberd and its password is not known here.
    let mut c = XmppClient::connect(d.addr).await;
    c.open().await;
    c.starttls().await;
    c.open().await;
    assert_eq!(
        c.scram(Mechanism::ScramSha256, "alice", "alice-Secret1", None)
            .await
            .unwrap_err(),
        "not-authorized"
    );
    let mut bob = login(
        d.addr,
        "localhost",
        "bob",
        "b0b pass & <more>",
        Mechanism::ScramSha1,
    )
    .await;
    let bob_roster = roster(&mut bob).await;
    assert_eq!(
        bob_roster.get("alice@localhost"),
        Some(&item("Alice", "both", &["Friends"]))
    );

    // example.org kept plaintext passwords: both hashes were derived, so
    // SCRAM-SHA-256 works too, with SASLprep'd non-ASCII passwords.
    let mut erin = login(
        d.addr,
        "example.org",
        "erin",
        "érin-Sécret5",
        Mechanism::ScramSha256,
    )
    .await;
    assert_eq!(
        vcard(&mut erin)
            .await
            .get_child("FN", "vcard-temp")
            .unwrap()
            .text(),
        "Érin Ünïcode"
    );
    let mut dave = login(
        d.addr,
        "example.org",
        "dave",
        "dave-Secret4",
        Mechanism::ScramSha1,
    )
    .await;
    assert_eq!(
        roster(&mut dave).await,
        BTreeMap::from([("alice@localhost".to_owned(), item("Alice", "from", &[]))])
    );

    // Offline messages arrive once, stamped with the time ejabberd stored them.
    let mut carol = login(
        d.addr,
        "localhost",
        "carol",
        "carol-Secret3",
        Mechanism::ScramSha1,
    )
    .await;
    carol.send("<presence/>").await;
    let first = carol.expect("message").await;
    assert_eq!(first.attr("from"), Some("alice@localhost"));
    assert_eq!(
        first.get_child("body", "jabber:client").unwrap().text(),
        "Hi Carol, are you there? <3 & more"
    );
    let delays: Vec<&Element> = first
        .children()
        .filter(|c| c.is("delay", "urn:xmpp:delay"))
        .collect();
    assert_eq!(delays.len(), 1, "{}", first.to_xml());
    assert_eq!(delays[0].attr("stamp"), Some("2026-11-24T09:28:34Z"));
    assert_eq!(delays[0].attr("from"), Some("localhost"));
    let second = carol.expect("message").await;
    assert_eq!(
        second.get_child("body", "jabber:client").unwrap().text(),
        "Second offline message"
    );

    // Importing again changes nothing and says why.
    let (code, out, err) = chorusctl(&d.socket, &["import", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("accounts          0"), "{out}");
    assert!(out.contains("skipped 5:"), "{out}");
    assert!(
        out.contains("alice@localhost: account: already exists"),
        "{out}"
    );
    let mut alice2 = login(
        d.addr,
        "localhost",
        "alice",
        "alice-Secret1",
        Mechanism::ScramSha1,
    )
    .await;
    assert_eq!(roster(&mut alice2).await, alice_roster());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_not_served_are_skipped_and_reported() {
    let d = spawn_daemon("pie-skip", &["localhost"]);
    let (code, out, err) = chorusctl(&d.socket, &["import", &ejabberd_export()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("accounts          3"), "{out}");
    assert!(
        out.contains("example.org: host (2 accounts): not served here (server.domains: localhost)"),
        "{out}"
    );
    let (_, users, _) = chorusctl(&d.socket, &["user", "list"]);
    assert_eq!(users.lines().count(), 3, "{users}");
    // A host file alone (the root is <host/>) reads too.
    let host = fixture("ejabberd/20261124-092839_localhost.xml")
        .canonicalize()
        .unwrap();
    let v = chorusctl_json(&d.socket, &["import", &host.display().to_string()]);
    assert_eq!(v["imported"]["accounts"], 0);
    assert_eq!(v["skipped_total"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_a_fresh_server_round_trips() {
    let a = spawn_daemon("pie-export-a", &["localhost", "example.org"]);
    chorusctl_json(&a.socket, &["import", &ejabberd_export()]);
    let dir_a = temp_dir("pie-export-files-a");
    let v = chorusctl_json(&a.socket, &["export", &dir_a.display().to_string()]);
    assert_eq!(v["accounts"], 5, "{v:#}");
    let localhost = dir_a.join("localhost.xml");
    let example = dir_a.join("example.org.xml");
    for f in [&localhost, &example] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    let text = std::fs::read_to_string(&localhost).unwrap();
    assert!(
        text.starts_with("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='localhost'>\n<user name='alice'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count>"),
        "{text}"
    );
    // Never a password: none was ever stored.
    assert!(!text.contains("password="), "{text}");
    assert!(
        std::fs::read_to_string(&example)
            .unwrap()
            .contains("mechanism='SCRAM-SHA-256'"),
        "derived keys are exported"
    );

    let b = spawn_daemon("pie-export-b", &["localhost", "example.org"]);
    for f in [&localhost, &example] {
        let v = chorusctl_json(&b.socket, &["import", &f.display().to_string()]);
        assert_eq!(v["skipped_total"], 0, "{v:#}");
    }
    assert_eq!(
        chorusctl(&b.socket, &["user", "list"]).1,
        chorusctl(&a.socket, &["user", "list"]).1
    );
    // The same accounts, credentials, rosters, vCards, private XML and
    // offline messages: exporting again gives the same bytes.
    let dir_b = temp_dir("pie-export-files-b");
    chorusctl_json(&b.socket, &["export", &dir_b.display().to_string()]);
    for name in ["localhost.xml", "example.org.xml"] {
        assert_eq!(
            std::fs::read_to_string(dir_b.join(name)).unwrap(),
            std::fs::read_to_string(dir_a.join(name)).unwrap(),
            "{name}"
        );
    }
    // And they work: the original passwords, the roster, the vCard.
    let mut alice = login(
        b.addr,
        "localhost",
        "alice",
        "alice-Secret1",
        Mechanism::ScramSha1,
    )
    .await;
    assert_eq!(roster(&mut alice).await, alice_roster());
    assert_eq!(
        vcard(&mut alice)
            .await
            .get_child("NICKNAME", "vcard-temp")
            .unwrap()
            .text(),
        "ally"
    );
    login(
        b.addr,
        "example.org",
        "erin",
        "érin-Sécret5",
        Mechanism::ScramSha256,
    )
    .await;
    // Exporting over an existing export replaces it.
    chorusctl_json(&b.socket, &["export", &dir_b.display().to_string()]);
    let leftovers: Vec<_> = std::fs::read_dir(&dir_b)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".xml") || n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A host of `n` users with SCRAM credentials (no key derivation, so the
/// debug build stays fast) and padded vCards, large enough to be streamed.
fn many_users(n: usize) -> String {
    let c = ScramCredentials::derive("pencil", ScramHash::Sha1, 4096).unwrap();
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let scram = format!(
        "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
         <iter-count>4096</iter-count><salt>{}</salt><server-key>{}</server-key>\
         <stored-key>{}</stored-key></scram-credentials>",
        b64(&c.salt),
        b64(&c.server_key),
        b64(&c.stored_key)
    );
    let pad = "x".repeat(1200);
    let mut out = String::from(
        "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='localhost'>\n",
    );
    for i in 0..n {
        out.push_str(&format!(
            "<user name='user{i:05}'>{scram}<vCard xmlns='vcard-temp'><FN>User {i}</FN><DESC>{pad}</DESC></vCard>\
             <query xmlns='jabber:iq:roster'><item jid='user{:05}@localhost' subscription='both'><group>g</group></item></query></user>\n",
            (i + 1) % n
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_file_is_refused_and_imports_nothing() {
    let d = spawn_daemon("pie-malformed", &["localhost"]);
    let dir = temp_dir("pie-malformed-files");

    // 1000 good users (several batches, more than a megabyte: streamed),
    // then a broken one: the first pass finds it before anything is written.
    let mut broken = many_users(1000);
    broken.push_str("<user name='bad'><vCard xmlns='vcard-temp'><FN>oops</vCard></user>\n</host>\n</server-data>\n");
    let path = dir.join("broken.xml");
    std::fs::write(&path, &broken).unwrap();
    let (code, out, err) = chorusctl(&d.socket, &["import", &path.display().to_string()]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("not a valid XEP-0227 file"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    assert!(err.contains("not-well-formed"), "{err}");
    assert!(err.contains("at byte"), "{err}");
    assert_eq!(chorusctl(&d.socket, &["user", "list"]).1.trim(), "");

    for (doc, needle) in [
        ("", "no root element"),
        ("<html><body/></html>", "not a XEP-0227 document"),
        (
            "<server-data xmlns='urn:xmpp:pie:0'><!-- note --></server-data>",
            "restricted-xml",
        ),
        (
            "<!DOCTYPE lol [<!ENTITY a 'aaaa'>]><server-data xmlns='urn:xmpp:pie:0'/>",
            "restricted-xml",
        ),
    ] {
        std::fs::write(&path, doc).unwrap();
        let (code, _, err) = chorusctl(&d.socket, &["import", &path.display().to_string()]);
        assert_eq!(code, 1, "{doc}");
        assert!(err.contains(needle), "{doc}: {err}");
    }
    let (code, _, err) = chorusctl(&d.socket, &["import", "relative.xml"]);
    assert_eq!(code, 1);
    assert!(err.contains("absolute path"), "{err}");
    let (code, _, err) = chorusctl(&d.socket, &["import", "/nonexistent/x.xml"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");

    // The same file without the broken user imports whole.
    let good = many_users(1000) + "</host>\n</server-data>\n";
    std::fs::write(&path, good).unwrap();
    let v = chorusctl_json(&d.socket, &["import", &path.display().to_string()]);
    assert_eq!(v["imported"]["accounts"], 1000, "{v:#}");
    assert_eq!(v["imported"]["roster_items"], 1000);
    let mut c = login(
        d.addr,
        "localhost",
        "user00999",
        "pencil",
        Mechanism::ScramSha1,
    )
    .await;
    assert_eq!(
        roster(&mut c).await,
        BTreeMap::from([("user00000@localhost".to_owned(), item("", "both", &["g"]))])
    );
    assert_eq!(
        chorusctl(&d.socket, &["user", "list"]).1.lines().count(),
        1000
    );
}

#[test]
fn help_says_the_server_opens_the_paths() {
    let out = Command::new(crate::common::chorusctl_bin())
        .args(["import", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("The server opens the file itself"), "{text}");
    assert!(text.contains("XEP-0227"), "{text}");
    let out = Command::new(crate::common::chorusctl_bin())
        .args(["export", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("The server writes the files itself"),
        "{text}"
    );
}

/// A user with PEP data as Prosody's mod_storage_xep0227 writes it
/// (XEP-0227 1.1): node configurations, affiliations and subscriptions
/// (Prosody's `subscribed=` attribute) under `pubsub#owner`, items under
/// `pubsub`, one of them for a node with no configuration.
fn prosody_pep_export() -> String {
    let c = ScramCredentials::derive("pencil", ScramHash::Sha1, 4096).unwrap();
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    format!(
        "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>\
         <user name='romeo'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
         <iter-count>4096</iter-count><salt>{}</salt><server-key>{}</server-key><stored-key>{}</stored-key></scram-credentials>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>\
         <configure node='urn:xmpp:bookmarks:1'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>\
         <field var='pubsub#access_model' type='list-single'><value>whitelist</value></field>\
         <field var='pubsub#max_items' type='text-single'><value>max</value></field>\
         <field var='pubsub#persist_items' type='boolean'><value>1</value></field>\
         <field var='pubsub#send_last_published_item' type='list-single'><value>never</value></field>\
         <field var='pubsub#notification_type' type='list-single'><value>headline</value></field>\
         </x></configure>\
         <affiliations node='urn:xmpp:bookmarks:1'><affiliation jid='romeo@localhost' affiliation='owner'/></affiliations>\
         <configure node='http://jabber.org/protocol/nick'><x xmlns='jabber:x:data' type='submit'>\
         <field var='pubsub#access_model'><value>open</value></field></x></configure>\
         <subscriptions node='http://jabber.org/protocol/nick'><subscription jid='juliet@capulet.lit' subscribed='subscribed'/></subscriptions>\
         </pubsub>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <items node='urn:xmpp:bookmarks:1'><item id='orchard@conference.localhost'>\
         <conference xmlns='urn:xmpp:bookmarks:1' name='The Orchard' autojoin='true'><nick>Romeo</nick></conference></item></items>\
         <items node='http://jabber.org/protocol/nick'><item id='current'><nick xmlns='http://jabber.org/protocol/nick'>Romy</nick></item></items>\
         <items node='urn:xmpp:avatar:metadata'><item id='h1'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></items>\
         </pubsub></user></host></server-data>\n",
        b64(&c.salt),
        b64(&c.server_key),
        b64(&c.stored_key)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_nodes_import_from_prosodys_format_and_round_trip() {
    let a = spawn_daemon("pie-pep-a", &["localhost"]);
    let file = temp_dir("pie-pep-file").join("prosody.xml");
    std::fs::write(&file, prosody_pep_export()).unwrap();
    let v = chorusctl_json(&a.socket, &["import", &file.display().to_string()]);
    assert_eq!(v["imported"]["pep_nodes"], 3, "{v:#}");
    assert_eq!(v["imported"]["pep_items"], 3, "{v:#}");
    assert_eq!(v["skipped_total"], 0, "{v:#}");
    // romeo reads his bookmarks and nickname back over XMPP.
    let mut romeo = login(a.addr, "localhost", "romeo", "pencil", Mechanism::ScramSha1).await;
    let iq = iq_get(
        &mut romeo,
        "b",
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub>",
    )
    .await;
    let item = iq
        .get_child("pubsub", "http://jabber.org/protocol/pubsub")
        .and_then(|p| p.get_child("items", "http://jabber.org/protocol/pubsub"))
        .and_then(|i| i.get_child("item", "http://jabber.org/protocol/pubsub"))
        .unwrap();
    assert_eq!(item.attr("id"), Some("orchard@conference.localhost"));
    let conf = item
        .get_child("conference", "urn:xmpp:bookmarks:1")
        .unwrap();
    assert_eq!(conf.attr("name"), Some("The Orchard"));
    // The imported configuration holds: whitelist, every item kept.
    let iq = iq_get(
        &mut romeo,
        "c",
        "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:bookmarks:1'/></pubsub>",
    )
    .await;
    let form = iq.to_xml();
    assert!(
        form.contains("<field var='pubsub#access_model' type='list-single'"),
        "{form}"
    );
    let value = |var: &str| {
        iq.get_child("pubsub", "http://jabber.org/protocol/pubsub#owner")
            .and_then(|p| p.get_child("configure", "http://jabber.org/protocol/pubsub#owner"))
            .and_then(|c| c.get_child("x", "jabber:x:data"))
            .and_then(|x| x.children().find(|f| f.attr("var") == Some(var)))
            .and_then(|f| f.get_child("value", "jabber:x:data"))
            .map(Element::text)
    };
    assert_eq!(value("pubsub#access_model").as_deref(), Some("whitelist"));
    assert_eq!(value("pubsub#max_items").as_deref(), Some("max"));
    // Exported, imported into a fresh server, exported again: the same.
    let dir_a = temp_dir("pie-pep-export-a");
    let v = chorusctl_json(&a.socket, &["export", &dir_a.display().to_string()]);
    assert_eq!(v["files"][0]["pep_nodes"], 3, "{v:#}");
    let exported = std::fs::read_to_string(dir_a.join("localhost.xml")).unwrap();
    assert!(
        exported.contains("<configure node='urn:xmpp:bookmarks:1'>"),
        "{exported}"
    );
    assert!(
        exported.contains("jid='juliet@capulet.lit' subscription='subscribed'"),
        "{exported}"
    );
    let b = spawn_daemon("pie-pep-b", &["localhost"]);
    let v = chorusctl_json(
        &b.socket,
        &["import", &dir_a.join("localhost.xml").display().to_string()],
    );
    assert_eq!(v["skipped_total"], 0, "{v:#}");
    let dir_b = temp_dir("pie-pep-export-b");
    chorusctl_json(&b.socket, &["export", &dir_b.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(dir_b.join("localhost.xml")).unwrap(),
        exported
    );
}
