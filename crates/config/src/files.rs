//! The files a configuration names, checked the way the server will read
//! them: `chorusctl config check` reports a certificate path with a typo,
//! or a key file that holds no key, before a start or a reload fails on it.
//!
//! Only existence and format (PEM, parsed by the same parser rustls uses)
//! are checked here; whether a key matches its certificate is the TLS
//! stack's business and is found at start.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Config;

impl Config {
    /// Every problem with the TLS certificate and key files (`tls.cert`,
    /// `tls.key` and each `[[tls.sni]]` entry), one line each, naming the
    /// key and the path; empty when all of them can be read and parse.
    /// Relative paths are taken from the current directory, as the server
    /// takes them from its own.
    pub fn file_problems(&self) -> Vec<String> {
        let mut files = Vec::new();
        if !self.tls.cert.as_os_str().is_empty() {
            files.push(("tls.cert".to_owned(), self.tls.cert.as_path(), Kind::Cert));
        }
        if !self.tls.key.as_os_str().is_empty() {
            files.push(("tls.key".to_owned(), self.tls.key.as_path(), Kind::Key));
        }
        for (i, sni) in self.tls.sni.iter().enumerate() {
            files.push((format!("tls.sni[{i}].cert"), sni.cert.as_path(), Kind::Cert));
            files.push((format!("tls.sni[{i}].key"), sni.key.as_path(), Kind::Key));
        }
        files
            .into_iter()
            .filter_map(|(key, path, kind)| {
                check(path, kind).map(|why| format!("{key} = {:?}: {why}", path.display()))
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Cert,
    Key,
}

/// What is wrong with one file, if anything.
fn check(path: &Path, kind: Kind) -> Option<String> {
    if path.as_os_str().is_empty() {
        return Some("empty path".to_owned());
    }
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => return Some(format!("cannot read it: {}", os_reason(&e))),
    };
    match kind {
        Kind::Cert => {
            let certs: Result<Vec<CertificateDer<'_>>, _> =
                CertificateDer::pem_slice_iter(&data).collect();
            match certs {
                Ok(c) if c.is_empty() => {
                    Some("no PEM certificate (BEGIN CERTIFICATE) in it".into())
                }
                Ok(_) => None,
                Err(e) => Some(format!("not a valid PEM certificate chain: {e}")),
            }
        }
        Kind::Key => match PrivateKeyDer::from_pem_slice(&data) {
            Ok(_) => None,
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                Some("no PEM private key (BEGIN PRIVATE KEY, RSA or EC) in it".into())
            }
            Err(e) => Some(format!("not a valid PEM private key: {e}")),
        },
    }
}

/// An I/O error's text without Rust's ` (os error N)`.
fn os_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map(str::to_owned)
            .unwrap_or(text),
        None => text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // PEM framing around bytes that are no certificate or key: the check
    // reads PEM, as the server's first step does, not X.509.
    const CERT: &str =
        "-----BEGIN CERTIFICATE-----\nY2hvcnVzIHRlc3QgY2VydGlmaWNhdGU6IG9ubHkgdGhlIFBFTSBmcmFtaW5nIGlzIGNoZWNrZWQgaGVyZQ==\n-----END CERTIFICATE-----\n";
    const KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nY2hvcnVzIHRlc3QgcHJpdmF0ZSBrZXk6IG9ubHkgdGhlIFBFTSBmcmFtaW5nIGlzIGNoZWNrZWQgaGVyZQ==\n-----END PRIVATE KEY-----\n";

    #[test]
    fn every_unreadable_or_malformed_tls_file_is_reported_with_its_key() {
        let dir = std::env::temp_dir().join(format!("chorus-config-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let good_cert = dir.join("good.crt");
        let good_key = dir.join("good.key");
        std::fs::write(&good_cert, CERT).unwrap();
        std::fs::write(&good_key, KEY).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not pem at all\n").unwrap();
        let toml = format!(
            "[tls]\ncert = '{gc}'\nkey = '{gk}'\n\
             [[tls.sni]]\ndomain = 'a.example'\ncert = '{missing}'\nkey = '{gc}'\n\
             [[tls.sni]]\ndomain = 'b.example'\ncert = '{garbage}'\nkey = '{gk}'\n",
            gc = good_cert.display(),
            gk = good_key.display(),
            missing = dir.join("missing.crt").display(),
            garbage = garbage.display(),
        );
        let config = Config::from_toml(&toml).unwrap();
        assert_eq!(
            config.file_problems(),
            [
                format!(
                    "tls.sni[0].cert = {:?}: cannot read it: No such file or directory",
                    dir.join("missing.crt").display()
                ),
                format!(
                    "tls.sni[0].key = {:?}: no PEM private key (BEGIN PRIVATE KEY, RSA or EC) in it",
                    good_cert.display()
                ),
                format!(
                    "tls.sni[1].cert = {:?}: no PEM certificate (BEGIN CERTIFICATE) in it",
                    garbage.display()
                ),
            ]
        );
        let fine = Config::from_toml(&format!(
            "[tls]\ncert = '{}'\nkey = '{}'\n",
            good_cert.display(),
            good_key.display()
        ))
        .unwrap();
        assert!(
            fine.file_problems().is_empty(),
            "{:?}",
            fine.file_problems()
        );
        assert!(
            Config::default().file_problems().is_empty(),
            "the dev certificate is generated"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
