//! ACME (RFC 8555) against Let's Encrypt's test CA, Debian's `pebble`, on
//! loopback: the real `chorus` binary obtains a certificate for its domain
//! and its services' subdomains with HTTP-01 on its `http` listener, and
//! serves it by SNI on STARTTLS and HTTPS without a restart.
//!
//! Pebble's validation resolves names through `pebble-challtestsrv`, its
//! companion mock DNS server, which answers every A query with 127.0.0.30,
//! so the test domain (`chorus.test`) and `upload.chorus.test`... all reach
//! the loopback `http` listener, whose port is pebble's `httpPort`.
//!
//! Without pebble the test fails, saying how to install it; with
//! `CHORUS_ALLOW_SKIP` set it is skipped instead, saying why.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chorus_c2s::tls::CertFacts;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::daemon::spawn_daemon_env;
use crate::common::{chorusctl_bin, read_until, temp_dir};

const DOMAIN: &str = "chorus.test";

/// Kills a helper process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback TCP port free right now.
fn free_port() -> u16 {
    free_port_on(std::net::Ipv4Addr::LOCALHOST)
}

/// The address of Chorus's `http` listener, which pebble validates on: one
/// no other test uses. A port picked free on 127.0.0.1 could be taken
/// before Chorus binds it, by the source port of any test's outgoing
/// loopback connection (they all leave from 127.0.0.1).
const HTTP_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 30);

fn free_port_on(ip: std::net::Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Why pebble cannot run here, if it cannot.
fn pebble_missing() -> Option<String> {
    for bin in ["pebble", "pebble-challtestsrv"] {
        let found = Command::new(bin)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Some(format!(
                "no `{bin}` on PATH (Debian: apt-get install pebble; .ci/run installs it)"
            ));
        }
    }
    None
}

/// A CA and, signed by it, pebble's own HTTPS certificate for localhost;
/// returns the CA's PEM path for `acme.ca_file`.
fn pebble_tls(dir: &std::path::Path) -> std::path::PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Chorus test CA for pebble");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), leaf_key.serialize_pem()).unwrap();
    let ca_path = dir.join("pebble-ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    ca_path
}

/// Starts the mock DNS server and pebble; returns pebble's directory URL.
fn start_pebble(dir: &std::path::Path, http_port: u16, procs: &mut Vec<Killed>) -> String {
    let dns = format!("127.0.0.1:{}", free_port());
    let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
    procs.push(Killed(
        Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", &HTTP_IP.to_string(), "-defaultIPv6", ""])
            .args([
                "-dns01",
                &dns,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .unwrap(),
    ));
    let listen = format!("127.0.0.1:{}", free_port());
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": listen,
            "managementListenAddress": format!("127.0.0.1:{}", free_port()),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }
    });
    let config_path = dir.join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    procs.push(Killed(
        Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &dns])
            // No random validation delay, and no rejected nonces: the test
            // is about Chorus, not about retrying.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .unwrap(),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            Instant::now() < deadline,
            "pebble did not listen on {listen}: {}",
            std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Pebble's certificate names localhost, not the address.
    format!(
        "https://localhost:{}/dir",
        listen.rsplit(':').next().unwrap()
    )
}

/// The issuer of the certificate a STARTTLS handshake with SNI `name`
/// presents.
async fn starttls_issuer(addr: std::net::SocketAddr, name: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{name}' version='1.0'>"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    read_until(&mut tcp, "</stream:features>").await;
    tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await
        .unwrap();
    read_until(&mut tcp, "<proceed").await;
    let tls = crate::common::client::tls_connector(None, false)
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    leaf_issuer(tls.get_ref().1)
}

fn leaf_issuer(conn: &rustls::ClientConnection) -> String {
    let leaf = conn.peer_certificates().unwrap().first().unwrap();
    CertFacts::from_der(leaf.as_ref()).unwrap().issuer
}

/// An HTTPS request with SNI `name`: the certificate's issuer and the
/// response's status line.
async fn https_get(addr: std::net::SocketAddr, name: &str) -> (String, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = crate::common::client::tls_connector(Some(b"http/1.1"), false)
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    let issuer = leaf_issuer(tls.get_ref().1);
    tls.write_all(
        format!("GET /.well-known/host-meta HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    (
        issuer,
        response.lines().next().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_certificate_from_pebble_is_served_by_sni_without_a_restart() {
    if let Some(why) = pebble_missing() {
        if std::env::var_os("CHORUS_ALLOW_SKIP").is_some() {
            eprintln!("SKIPPED acme test: {why}");
            return;
        }
        panic!("the ACME test needs pebble: {why} (set CHORUS_ALLOW_SKIP=1 to skip)");
    }
    let started = Instant::now();
    let dir = temp_dir("acme-pebble");
    let ca = pebble_tls(&dir);
    let http_port = free_port_on(HTTP_IP);
    let mut procs = Vec::new();
    let directory = start_pebble(&dir, http_port, &mut procs);

    let extra = format!(
        "\n[[listeners]]\nkind = 'http'\naddress = '{HTTP_IP}:{http_port}'\n\
         [[listeners]]\nkind = 'https'\naddress = '127.0.0.1:0'\n\
         [acme]\nenabled = true\ndirectory = '{directory}'\ncontact = 'admin@{DOMAIN}'\n\
         ca_file = '{}'\n",
        ca.display()
    );
    let d = spawn_daemon_env(
        "acme",
        &extra,
        &[(
            "CHORUS_SERVER__DOMAINS",
            std::ffi::OsStr::new(&format!("[\"{DOMAIN}\"]")),
        )],
    );
    let pid = d.child.id();
    let status = d.admin("/api/status", serde_json::json!({}));
    let data_dir = d.socket.parent().unwrap().to_owned();
    let listener = |kind: &str| -> std::net::SocketAddr {
        status["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| {
                l["id"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("port:{kind}@"))
            })
            .unwrap()["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (c2s, https) = (listener("c2s"), listener("https"));

    // Obtained and stored under data_dir, readable by the server only.
    let cert_file = data_dir.join("acme/certs").join(format!("{DOMAIN}.pem"));
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cert_file.exists() {
        if Instant::now() > deadline {
            let logs: Vec<String> = d.logs.try_iter().filter(|l| l.contains("ACME")).collect();
            panic!(
                "no certificate at {} after 90 s; server: {logs:#?}\npebble: {}",
                cert_file.display(),
                std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cert_file), 0o600);
    assert_eq!(mode(&data_dir.join("acme/account.json")), 0o600);
    assert_eq!(mode(&data_dir.join("acme")), 0o700);
    let facts = CertFacts::from_pem(&std::fs::read(&cert_file).unwrap()).unwrap();
    assert!(facts.issuer.contains("Pebble"), "{}", facts.issuer);
    let mut names = facts.dns_names.clone();
    names.sort();
    assert_eq!(
        names,
        [
            "chorus.test",
            "conference.chorus.test",
            "pubsub.chorus.test",
            "upload.chorus.test"
        ],
        "the domain and its services' subdomains"
    );

    // Swapped into the listeners: new handshakes get it, by SNI, from the
    // same process.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let issuer = starttls_issuer(c2s, DOMAIN).await;
        if issuer.contains("Pebble") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "STARTTLS still presents {issuer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (issuer, status_line) = https_get(https, "upload.chorus.test").await;
    assert!(issuer.contains("Pebble"), "{issuer}");
    assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line}");
    assert_eq!(d.child.id(), pid);

    // chorusctl cert list shows it, with its expiry.
    let out = Command::new(chorusctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["cert", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("acme  {}", cert_file.display())),
        "{text}"
    );
    assert!(
        text.contains("Pebble") && text.contains("days left"),
        "{text}"
    );
    let listed = d.admin("/api/cert/list", serde_json::json!({}));
    let acme: Vec<&Value> = listed["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "acme")
        .collect();
    assert_eq!(acme.len(), 1, "{listed}");
    let not_after = facts
        .not_after
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(acme[0]["not_after_unix"], not_after);
    assert_eq!(acme[0]["default"], true, "the served domain's, by default");
    assert!(acme[0]["sni"]
        .as_array()
        .unwrap()
        .contains(&Value::from("upload.chorus.test")));

    // At start, a certificate already on disk is served at once (the CA
    // is not even reachable here; a current certificate is not ordered).
    let mut config = crate::common::test_config("acme-restart");
    config.server.domains = vec![DOMAIN.to_owned()];
    config.acme.enabled = true;
    config.acme.directory = "https://127.0.0.1:1/dir".to_owned();
    let certs = config.server.data_dir.join("acme/certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&cert_file, certs.join(format!("{DOMAIN}.pem"))).unwrap();
    let server = crate::common::start(config).await;
    let issuer = starttls_issuer(server.first_addr().unwrap(), DOMAIN).await;
    assert!(issuer.contains("Pebble"), "{issuer}");
    assert!(server.registry.lookup("root/acme").is_some());
    server.stop();
    eprintln!("acme test took {:?}", started.elapsed());
}
