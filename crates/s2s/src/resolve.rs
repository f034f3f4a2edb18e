//! Where a remote domain's server listens (RFC 6120 §3.2): `s2s.hosts`
//! first, then DNS SRV records, `_xmpps-server._tcp` (direct TLS,
//! XEP-0368) and `_xmpp-server._tcp` (STARTTLS), by priority and weight,
//! and without any, the domain itself on port 5269 (§3.2.2).

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;

/// One place to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// XEP-0368: TLS from the first byte, no STARTTLS.
    pub direct_tls: bool,
    /// A fixed address (`s2s.hosts`): no name to resolve.
    pub addr: Option<SocketAddr>,
}

/// The resolver, built on first use from the system's configuration.
pub struct Resolver {
    dns: tokio::sync::OnceCell<Option<TokioResolver>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            dns: tokio::sync::OnceCell::new(),
        }
    }
}

impl Resolver {
    async fn dns(&self) -> Option<&TokioResolver> {
        self.dns
            .get_or_init(|| async {
                match TokioResolver::builder_tokio() {
                    Ok(b) => Some(b.build()),
                    Err(e) => {
                        tracing::warn!(error = %e, "no DNS resolver: SRV records will not be used");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }

    /// The targets for `domain`, in the order to try them.
    pub async fn targets(&self, domain: &str) -> Vec<Target> {
        let mut out = Vec::new();
        if let Some(dns) = self.dns().await {
            for (service, direct_tls) in
                [("_xmpps-server._tcp", true), ("_xmpp-server._tcp", false)]
            {
                let name = format!("{service}.{domain}.");
                let Ok(lookup) = dns.srv_lookup(name.as_str()).await else {
                    continue;
                };
                let mut records: Vec<_> = lookup
                    .iter()
                    .map(|srv| {
                        (
                            srv.priority(),
                            std::cmp::Reverse(srv.weight()),
                            srv.target().to_utf8().trim_end_matches('.').to_owned(),
                            srv.port(),
                        )
                    })
                    .collect();
                // RFC 2782: a target of "." means the service is not offered.
                if records.len() == 1 && records[0].2.is_empty() {
                    continue;
                }
                records.sort();
                out.extend(records.into_iter().map(|(_, _, host, port)| Target {
                    host,
                    port,
                    direct_tls,
                    addr: None,
                }));
            }
        }
        // Direct TLS first at equal standing is XEP-0368 §3's suggestion;
        // the fallback comes last.
        out.push(Target {
            host: domain.to_owned(),
            port: 5269,
            direct_tls: false,
            addr: None,
        });
        out
    }
}
