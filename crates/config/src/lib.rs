//! Chorus configuration: `config/chorus.toml`, overridden by `CHORUS_`
//! environment variables (`CHORUS_SERVER__DATA_DIR=/var/lib/chorus`: a double
//! underscore separates nesting levels, and only variables with one are
//! configuration), loaded with figment.
//!
//! Options as data (ejabberd's `mod_opt_type`): every option is declared
//! once, below, in the `options!` block: type, default, bounds, whether a
//! reload applies it, and its doc. The section structs, the annotated
//! `config/chorus.toml`, `docs/CONFIG.md`, the validator and the reload diff
//! are all derived from those declarations, and tests fail when a generated
//! file is out of date (`CHORUS_BLESS=1 cargo test -p chorus-config`
//! rewrites them).
//!
//! Strict like ejabberd's econf: an unknown key is an error naming the
//! closest valid one, a deprecated name works with a warning, safety limits
//! have floors, and every problem in a file is reported at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod diff;
mod files;
mod load;
mod net;
mod render;
pub mod spec;

pub use diff::Change;
pub use load::suggest;
pub use net::{IpNetwork, NetworkError};
pub use render::{annotated_toml, reference_markdown};
pub use spec::{OptionSpec, OptionType, Section};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// One line per problem found (all of them, not only the first).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// The problems, one per line of the message.
    pub fn problems(&self) -> &[String] {
        match self {
            ConfigError::Invalid(p) => p,
        }
    }
}

spec::options! {
    /// The whole configuration.
    pub struct Config;

    /// This server: the domains it hosts and where it keeps its files.
    [server] ServerConfig {
        /// The XMPP domains this server hosts (RFC 7622 domainparts); at
        /// least one.
        domains: Vec<String> = vec!["localhost".to_owned()], restart;
        /// Where the database, the admin socket and the generated
        /// development certificate live.
        data_dir: PathBuf = PathBuf::from("data"), restart;
        /// On SIGTERM every stream gets `system-shutdown`; the server then
        /// waits up to this many seconds for the connections to close before
        /// it exits.
        shutdown_grace_secs: u64 = 10, restart;
    }

    /// One `[[listeners]]` table per listening port, each with a `kind` and
    /// an `address` (`IP:port`):
    ///   `kind = "c2s"`      client connections with STARTTLS (RFC 6120 §5);
    ///   `kind = "c2s-tls"`  client connections with direct TLS (XEP-0368,
    ///                       ALPN xmpp-client);
    ///   `kind = "s2s"`      other servers (federation, `[s2s]`), STARTTLS;
    ///   `kind = "s2s-tls"`  other servers with direct TLS (XEP-0368, ALPN
    ///                       xmpp-server);
    ///   `kind = "http"`     XMPP over WebSocket (RFC 7395) and its
    ///                       discovery (XEP-0156), plain (behind a proxy);
    ///   `kind = "https"`    the same over TLS (ALPN http/1.1);
    ///   `kind = "component"` external components (XEP-0114), each
    ///                       listed in `[[components]]`.
    /// A reload starts the listeners added and stops the ones removed (whose
    /// connections close).
    [[listeners]]: Vec<ListenerConfig> = vec![ListenerConfig {
        kind: ListenerKind::C2s,
        address: SocketAddr::from(([127, 0, 0, 1], 5222)),
    }], reload;

    /// XML limits, applied by the receiver through `chorus-xml` while bytes
    /// arrive, and the outbound queue of each connection. The parser limits
    /// apply to connections opened after a reload.
    [limits] LimitsConfig {
        /// Largest stanza, in bytes, before authentication; the stream
        /// header counts too.
        max_stanza_bytes_preauth: usize =
            chorus_xml::Limits::default().max_stanza_bytes_preauth, reload, min 1024;
        /// Largest stanza, in bytes, once authenticated.
        max_stanza_bytes: usize = chorus_xml::Limits::default().max_stanza_bytes,
            reload, min 4096;
        /// Deepest element nesting inside a stanza.
        max_depth: usize = chorus_xml::Limits::default().max_depth, reload, min 4;
        /// Most attributes on one element (namespace declarations included).
        max_attrs: usize = chorus_xml::Limits::default().max_attrs, reload, min 8;
        /// Most namespace declarations on one element.
        max_ns_decls: usize = chorus_xml::Limits::default().max_ns_decls, reload, min 2;
        /// Longest element or attribute name, in bytes.
        max_name_len: usize = chorus_xml::Limits::default().max_name_len, reload, min 32;
        /// Outbound queue per connection, in stanzas waiting for a slow
        /// reader: a peer that stops reading past this or
        /// `max_outbound_bytes` gets `policy-violation` and is disconnected.
        max_outbound_stanzas: usize = 1000, restart, min 16;
        /// Outbound queue per connection, in bytes (see
        /// `max_outbound_stanzas`).
        max_outbound_bytes: usize = 1024 * 1024, restart, min 64 * 1024;
    }

    /// Client connections and sessions.
    [c2s] C2sConfig {
        /// Seconds a new connection has, from accept, to send its stream
        /// header, finish TLS and authenticate (RFC 6120 §4.9.3.4
        /// `connection-timeout`; ejabberd's `negotiation_timeout`). Input
        /// does not extend it, so trickling bytes buys no time.
        negotiation_timeout_secs: u64 = 30, restart, min 1, alias "header_timeout_secs";
        /// Seconds one write to a client may stall (a peer that stopped
        /// reading) before its connection is dropped.
        write_timeout_secs: u64 = 30, restart, min 1;
        /// Connections one address may have open at once on the `c2s` and
        /// `c2s-tls` listeners; more get `policy-violation` at their stream
        /// header. Generous: carrier-grade NAT puts many users behind one
        /// address.
        max_connections_per_ip: u32 = 256, restart, min 1;
        /// STARTTLS is required before authentication. FOR BENCHMARKS AND
        /// TESTS ONLY may this be false (STARTTLS is then offered, not
        /// required).
        require_encryption: bool = true, restart;
        /// Resources (devices) one account may bind at once;
        /// `resource-constraint` past it.
        max_resources: usize = 10, restart, min 1;
        /// XEP-0199 keepalive: after this many seconds without a stanza from
        /// a bound client, the server pings it.
        ping_interval_secs: u64 = 300, restart, min 1;
        /// Seconds to wait for the answer to that ping before closing the
        /// session with `connection-timeout`.
        ping_timeout_secs: u64 = 60, restart, min 1;
        /// XEP-0198 stream management: seconds a session whose client
        /// enabled resumption survives a dropped connection, detached, when
        /// the client asks for no other value; its unacknowledged messages
        /// then go to offline storage. At most `sm_max_resume_timeout_secs`.
        sm_resume_timeout_secs: u64 = 300, restart, min 1;
        /// The longest resume timeout a client may ask for (`max`).
        sm_max_resume_timeout_secs: u64 = 600, restart, min 1;
        /// Stanzas sent and not yet acknowledged that one session may hold;
        /// past it the stream ends with `resource-constraint`.
        sm_max_unacked: usize = 10000, restart, min 16;
        /// Milliseconds a stanza may wait unacknowledged before the server
        /// asks the client for an acknowledgement (`<r/>`), besides every
        /// fifth stanza: a client that got a few messages and then quits
        /// has acknowledged them, so they are not delivered again.
        sm_request_ack_after_ms: u64 = 2000, restart, min 100, max 60000;
        /// Before the server closes a stream itself (shutdown, kick,
        /// conflict), it asks for an acknowledgement of what it sent and
        /// waits this many milliseconds for it.
        sm_close_ack_wait_ms: u64 = 1000, restart, max 10000;
    }

    /// Federation (RFC 6120 server-to-server). Outgoing streams start when
    /// a user writes to another domain; incoming ones need an `s2s`
    /// listener (port 5269). A peer is authenticated by its certificate
    /// (SASL EXTERNAL, XEP-0178) when it verifies for its domain, and by
    /// Server Dialback (XEP-0220) otherwise.
    [s2s] S2sConfig {
        /// Talk to other servers at all; off: every remote address answers
        /// `remote-server-not-found`.
        enabled: bool = true, restart;
        /// Refuse streams without TLS in both directions (RFC 6120 §5),
        /// except with `plaintext_domains`.
        require_tls: bool = true, restart;
        /// Domains allowed to federate without TLS (test networks only).
        plaintext_domains: Vec<String> = Vec::new(), restart;
        /// Only these domains may federate; empty: any domain not denied.
        allow_domains: Vec<String> = Vec::new(), restart;
        /// These domains may not federate, either way.
        deny_domains: Vec<String> = Vec::new(), restart;
        /// PEM file of further CAs that remote certificates may chain to,
        /// besides the system's roots.
        ca_file: PathBuf = PathBuf::new(), restart;
        /// Authenticate peers by Server Dialback (XEP-0220) when their
        /// certificate does not verify. Off: certificates only.
        dialback: bool = true, restart;
        /// Fixed addresses for domains, `domain=IP:port`, used instead of
        /// DNS (split horizon, tests): `["example.net=192.0.2.7:5269"]`.
        hosts: Vec<String> = Vec::new(), restart;
        /// Seconds to reach a remote server (resolution, TCP, TLS and
        /// authentication) before its queued stanzas bounce with
        /// `remote-server-timeout`.
        connect_timeout_secs: u64 = 20, restart, min 1, max 600;
        /// Stanzas queued for one remote domain while its stream connects;
        /// more bounce with `resource-constraint`.
        queue_max_stanzas: usize = 1000, restart, min 1;
        /// An outgoing stream with nothing to send for this many seconds is
        /// closed.
        idle_timeout_secs: u64 = 600, restart, min 10;
        /// After a failed connection, stanzas to that domain bounce at once
        /// for this many seconds, doubling per failure up to
        /// `retry_max_secs`.
        retry_secs: u64 = 5, restart, min 1;
        /// The longest wait between attempts to reach a failing domain.
        retry_max_secs: u64 = 300, restart, min 1;
        /// Incoming streams one address may have open at once; more get
        /// `policy-violation`.
        max_streams_per_ip: u32 = 16, restart, min 1;
        /// Stanzas per second an incoming stream may send; faster ones are
        /// read more slowly (TCP pushes back), not cut off.
        max_stanzas_per_sec: u32 = 500, restart, min 1;
    }

    /// The admin API that `chorusctl` talks to.
    [admin] AdminConfig {
        /// Unix socket of the admin API; empty means
        /// `<data_dir>/chorus.sock`.
        socket: PathBuf = PathBuf::new(), restart;
        /// Allow `chorusctl chaos` (killing random actors on a schedule).
        /// Off by default: it is for test and staging servers.
        chaos: bool = false, restart;
        /// Accounts that may administer the server from an XMPP client
        /// (XEP-0133 ad-hoc commands: add, delete, disable users, end
        /// sessions, announcements, message of the day), as bare JIDs
        /// (`"admin@example.org"`), with the same authority as `chorusctl`.
        /// Empty: nobody; every other account sees only the commands open
        /// to all (XEP-0050 ping).
        admins: Vec<String> = Vec::new(), restart;
    }

    /// The `http` and `https` listeners: XMPP over WebSocket (RFC 7395)
    /// and its discovery (XEP-0156).
    [http] HttpConfig {
        /// Serve XMPP over WebSocket on `/xmpp-websocket`.
        websocket: bool = true, restart;
        /// Origins (`https://chat.example.org`) whose web pages may open a
        /// WebSocket; empty allows any (RFC 6455 §10.2: a browser always
        /// sends its page's origin, other clients may send none).
        websocket_origins: Vec<String> = Vec::new(), restart;
        /// Count WebSocket streams on a plain `http` listener as encrypted,
        /// for a TLS-terminating proxy in front (nginx), as Prosody's
        /// `consider_websocket_secure`. Off: such streams cannot log in
        /// while `c2s.require_encryption` is on.
        consider_websocket_secure: bool = false, restart;
        /// The public base URL (`https://chat.example.org`) that
        /// `/.well-known/host-meta` points clients to; empty: the scheme
        /// of the listener and the request's `Host`.
        public_url: String = String::new(), restart;
        /// Longest a request's head may take to arrive, in seconds.
        request_timeout_secs: u64 = 10, restart, min 1;
        /// BOSH sessions one address may have at once (XEP-0124); more are
        /// refused with `policy-violation`. Each is a connection group, and
        /// opening one costs a single request.
        bosh_sessions_per_ip: u32 = 16, restart, min 1;
        /// HTTP connections one address may have open at once (a
        /// WebSocket stops counting once upgraded); more get `503` and are
        /// closed. Browsers open about six per site.
        max_connections_per_ip: u32 = 32, restart, min 1;
    }

    /// HTTP File Upload (XEP-0363) on `<subdomain>.<domain>`: clients ask
    /// for a slot over XMPP and PUT the file to an `http`/`https`
    /// listener, whose URLs come from `http.public_url` (or, without it,
    /// the first `https` listener's port, then the first `http` one's, on
    /// the served domain). Runs only with such a listener.
    [upload] UploadConfig {
        /// Offer the upload service (only with an `http` or `https`
        /// listener).
        enabled: bool = true, restart;
        /// The service's subdomain label.
        subdomain: String = "upload".to_owned(), restart;
        /// Where files are kept; empty: `<data_dir>/upload`.
        dir: PathBuf = PathBuf::new(), restart;
        /// Largest file, in bytes (advertised in disco, XEP-0363 §2).
        max_file_size: u64 = 104_857_600, restart, min 1;
        /// Bytes each account may keep; 0: no quota.
        quota_per_account: u64 = 1_073_741_824, restart;
        /// Files are deleted this many days after upload; 0 keeps them.
        expire_days: u64 = 30, restart, max 1_000_000;
        /// Content types accepted (`image/jpeg`, or `image/*`); empty:
        /// any.
        allowed_types: Vec<String> = Vec::new(), restart;
        /// How long a slot's PUT URL is valid, in seconds.
        slot_secs: u64 = 300, restart, min 10;
    }

    /// OTP restart intensity: more than `intensity` restarts of a
    /// supervisor's children within `period_ms` and it gives up, escalating
    /// to its parent. When the root gives up the process exits with status 1.
    [supervision] SupervisionConfig {
        /// Restarts a supervisor allows within `period_ms`.
        intensity: u32 = 10, restart, min 1;
        /// The window, in milliseconds, in which `intensity` counts
        /// restarts.
        period_ms: u64 = 1000, restart, min 1;
    }

    /// TLS certificates. Without `cert` and `key`, a self-signed development
    /// certificate for `server.domains`, valid for a year, is generated in
    /// `data_dir` on first start, and again at a start when it no longer
    /// names every domain or has less than 30 days left (never for
    /// production: clients will warn). A reload rereads the
    /// files, so a renewed certificate at the same path is served to
    /// connections opened from then on.
    [tls] TlsConfig {
        /// PEM certificate chain served by default; goes with `key`.
        cert: PathBuf = PathBuf::new(), reload;
        /// PEM private key of `cert`.
        key: PathBuf = PathBuf::new(), reload;
        /// Further certificates chosen by SNI: one `[[tls.sni]]` table per
        /// domain, with `domain`, `cert` and `key`.
        sni: Vec<SniCert> = Vec::new(), reload, example "[[tls.sni]]\n\
            domain = \"example.org\"\n\
            cert = \"/etc/chorus/example.org.crt\"\n\
            key = \"/etc/chorus/example.org.key\"";
        /// Seconds a TLS handshake may take before the connection is
        /// dropped (0 counts as 1).
        handshake_timeout_secs: u64 = 10, restart;
    }

    /// Certificates from an ACME CA (RFC 8555, Let's Encrypt by default)
    /// for every served domain and the services' subdomains, answered with
    /// HTTP-01 on an `http` listener, which the CA must reach on port 80.
    /// Kept in `<data_dir>/acme` and served by SNI from the moment they are
    /// issued; names with a certificate in `[tls]` keep it unless listed
    /// in `domains`.
    [acme] AcmeConfig {
        /// Obtain and renew certificates automatically.
        enabled: bool = false, restart;
        /// The CA's directory URL.
        directory: String =
            "https://acme-v02.api.letsencrypt.org/directory".to_owned(), restart;
        /// Contact email given to the CA (expiry warnings); may be empty.
        contact: String = String::new(), restart;
        /// Extra PEM CA certificates to trust for the CA's own HTTPS, on
        /// top of the system's (a test CA such as pebble).
        ca_file: PathBuf = PathBuf::new(), restart;
        /// Renew a certificate when fewer than this many days remain.
        renew_days: u32 = 30, restart, min 1;
        /// Names to obtain certificates for instead of the served domains
        /// and their services' subdomains; each name with its own
        /// subdomains in one certificate.
        domains: Vec<String> = Vec::new(), restart;
    }

    /// SASL authentication.
    [sasl] SaslConfig {
        /// PBKDF2 iterations for newly stored SCRAM credentials (RFC 7677
        /// asks for at least 4096).
        iterations: u32 = 4096, restart, min 4096;
        /// Failed authentications allowed per stream before it is closed.
        max_attempts: u32 = 5, restart, min 1;
        /// FOR BENCHMARKS AND TESTS ONLY: offer PLAIN on unencrypted
        /// streams.
        allow_plain_without_tls: bool = false, restart;
        /// Offer XEP-0484 FAST: a client that logged in with its password
        /// over SASL2 may ask for a token and reconnect with it, in one
        /// round trip and without the password. Only over TLS.
        fast: bool = true, restart;
        /// How long a FAST token lasts, in days; used within the last half
        /// of its life, it is replaced by a new one (XEP-0484 §4.4). A
        /// client offline for longer logs in with its password again.
        fast_token_days: u32 = 21, restart, min 1;
        /// Clients (XEP-0388 user agents) remembered per account, with
        /// their FAST tokens; the least recently seen go first.
        max_clients_per_account: u32 = 32, restart, min 1;
    }

    /// The database.
    [storage] StorageConfig {
        /// `sqlite://PATH` (embedded) or `postgres://...`; empty means
        /// `sqlite://<data_dir>/chorus.db`.
        url: String = String::new(), restart;
        /// SQLite only: when a commit reaches the disk. `normal` (with
        /// SQLite's write-ahead log): a commit survives the server being
        /// killed or crashing, and a power loss or OS crash may undo the
        /// last few, as ejabberd's Mnesia log may; the archive then keeps
        /// up with thousands of messages a second. `full`: every commit is
        /// also safe from a power loss, at the cost of a disk flush each
        /// (the archive falls behind under load).
        sqlite_synchronous: SqliteSync = SqliteSync::Normal, restart;
    }

    /// XEP-0160 offline messages.
    [offline] OfflineConfig {
        /// Messages kept per account while it has no available resource;
        /// senders get `service-unavailable` past it.
        quota: u32 = 1000, restart;
    }

    /// The loopback monitoring endpoint: /metrics (OpenMetrics text),
    /// /healthz, /readyz.
    [metrics] MetricsConfig {
        /// `IP:port` to listen on; empty turns the endpoint off.
        address: String = "127.0.0.1:5290".to_owned(), restart;
    }

    /// XEP-0077 in-band registration: clients create their own accounts.
    /// Off by default, as open registration invites spam accounts. Logged-in
    /// users can always change their password and remove their account.
    [register] RegisterConfig {
        /// Let clients create accounts themselves.
        enabled: bool = false, restart;
        /// Domains that allow it; empty means every domain in
        /// `server.domains`.
        domains: Vec<String> = Vec::new(), restart;
        /// Registrations one IP address may make at once: the size of a
        /// token bucket that earns one more every `refill_secs`.
        burst: u32 = 3, restart, min 1;
        /// Seconds it takes an IP address's bucket to earn one more
        /// registration (see `burst`).
        refill_secs: u64 = 3600, restart, min 1;
        /// Throttle registrations per IP address (`burst`,
        /// `refill_secs`). false lets every address register as often as it
        /// asks: only for a server whose registrations are limited in front
        /// of it.
        throttle: bool = true, restart;
        /// Networks exempt from the throttle, as `IP/prefix` strings
        /// (`"10.0.0.0/8"`, `"fd00::/8"`; a bare address is a network of
        /// one). Loopback by default, so that local tools and tests are not
        /// throttled; `[]` throttles every address.
        throttle_exempt: Vec<IpNetwork> = default_throttle_exempt(), restart;
    }

    /// XEP-0313 message archives.
    [mam] MamConfig {
        /// Archived messages older than this many days are deleted, at start
        /// and then hourly; 0 keeps them forever. Per user: `chorusctl mam
        /// purge <jid>`.
        retention_days: u64 = 0, restart, max 1_000_000;
        /// What an account that set no preferences of its own (XEP-0441)
        /// archives: every message with a body (`always`), none unless the
        /// user asks (`never`), or only messages with contacts in the
        /// user's roster (`roster`).
        default_pref: MamDefault = MamDefault::Always, restart;
        /// Most results one query returns; a client asking for more gets
        /// pages of this size. At most half of
        /// `limits.max_outbound_stanzas`, since a page is queued for the
        /// client at once.
        max_page_size: u32 = 100, restart, min 1;
        /// Archive copies waiting for the archive writer, which commits
        /// them in batches off the stanza path. Past this many, senders
        /// wait for the database (backpressure) rather than memory grow;
        /// each waiting copy holds its message.
        writer_queue: usize = 10000, restart, min 1, max 1000000;
    }

    /// XEP-0060 publish-subscribe: PEP on every account (XEP-0163: OMEMO
    /// keys, avatars, bookmarks, nicknames) and a hosted service on a
    /// subdomain of each served domain.
    [pubsub] PubsubConfig {
        /// PEP on every account. Off, publishing to an account answers
        /// `service-unavailable`, as if the feature did not exist.
        pep: bool = true, restart;
        /// A pubsub service on `<service_subdomain>.<domain>` for each
        /// domain in `server.domains`, listed in the server's disco#items.
        service: bool = true, restart;
        /// The hosted service's subdomain: `pubsub` serves
        /// `pubsub.example.org` for `example.org`.
        service_subdomain: String = "pubsub".to_owned(), restart;
        /// Who may create nodes on the hosted service: accounts of this
        /// server (`local`), or any entity that can reach it (`anyone`).
        create_nodes: PubsubCreators = PubsubCreators::Local, restart;
        /// Most items one node keeps (the oldest go first): `max` in a
        /// node's configuration means this many, and configuring more is
        /// refused with `not-acceptable`.
        max_items: u64 = 256, restart, min 1, max 100000;
        /// Largest item payload, in bytes of serialized XML; a bigger one
        /// is refused with `not-acceptable` and `<payload-too-big/>`.
        /// Avatars are the largest in common use.
        max_payload_bytes: usize = 131072, restart, min 256;
        /// Most nodes one account may have in its PEP service; creating
        /// one more is refused with `not-allowed` and
        /// `<max-nodes-exceeded/>`.
        max_nodes: u32 = 256, restart, min 1;
        /// Most nodes one hosted service holds, all creators together.
        service_max_nodes: u32 = 10000, restart, min 1;
    }

    /// XEP-0045 multi-user chat: a group chat service on a subdomain of
    /// each served domain, each room a supervised actor.
    [muc] MucConfig {
        /// Serve group chat. Off, nothing answers on the subdomains.
        enabled: bool = true, restart;
        /// The services' subdomains, each one DNS label: `conference`
        /// serves `conference.example.org` for `example.org`. Several may be
        /// listed; each is its own service with its own rooms.
        subdomains: Vec<String> = vec!["conference".to_owned()], restart;
        /// Who may create rooms: accounts of this server (`local`), or any
        /// entity that can reach the service (`anyone`).
        create_rooms: MucCreators = MucCreators::Local, restart;
        /// Rooms one account may own at once; creating one more is refused
        /// with `not-allowed`.
        max_rooms_per_user: u32 = 100, restart, min 1;
        /// Occupants one room may hold: the default and the ceiling of a
        /// room's `muc#roomconfig_maxusers`. Owners and admins still get
        /// in when it is full (XEP-0045 §7.2.10).
        max_occupants: u32 = 200, restart, min 2, max 100000;
        /// Messages a room keeps to send to those who join (its
        /// discussion history, XEP-0045 §7.2.15), and the ceiling of what
        /// a joining client may ask for.
        history_size: u32 = 20, restart, max 1000;
        /// Messages one occupant may send to a room at once: the size of a
        /// token bucket that earns `message_rate_per_minute` a minute. Past
        /// it, messages are refused with `resource-constraint`.
        message_burst: u32 = 10, restart, min 1;
        /// See `message_burst`.
        message_rate_per_minute: u32 = 120, restart, min 1;
        /// Whether a new room archives its messages (XEP-0313 on the
        /// room's JID, `muc#roomconfig_enablelogging`) until its owner says
        /// otherwise. On, as Prosody's `muc_log_by_default`: mobile clients
        /// catch up on a room from its archive.
        logging_default: bool = true, restart;
        /// Seconds a persistent room with nobody in it keeps its actor
        /// before the actor stops (its state stays stored).
        idle_secs: u64 = 300, restart, min 1;
    }

    /// XEP-0357 push notifications: a mobile client registers its app
    /// server (`<enable/>`), which the server then tells about each message
    /// the client would miss while its session is detached (XEP-0198,
    /// waiting for resumption) or the account is offline, so that the app
    /// wakes up and connects. The app server belongs to the app's developer,
    /// so by default it learns that a message came, not what it says or who
    /// sent it.
    [push] PushConfig {
        /// Accept registrations and send notifications. Off, `<enable/>` is
        /// answered `service-unavailable`, as if the feature did not exist.
        enabled: bool = true, restart;
        /// Put the message's text in the notification
        /// (`last-message-body`), for the app server to show. Off by
        /// default: the app's developer would read every message. The text
        /// of an encrypted message (OMEMO, XEP-0380) is never sent: it is
        /// only a fallback.
        include_body: bool = false, restart;
        /// Put the sender's bare JID in the notification
        /// (`last-message-sender`). Off by default, for the same reason.
        include_sender: bool = false, restart;
        /// Registrations one account may hold (one per app installation);
        /// enabling one more removes the oldest, as a reinstalled app
        /// leaves its former registration behind.
        max_registrations_per_account: u32 = 5, restart, min 1, max 100;
        /// Notifications one registration may get at once: the size of a
        /// token bucket that earns `rate_per_minute` a minute. Past it,
        /// notifications are dropped (and counted in the log): a flood of
        /// messages wakes the device once, not once per message.
        burst: u32 = 20, restart, min 1;
        /// See `burst`.
        rate_per_minute: u32 = 60, restart, min 1;
        /// Seconds to wait for the app server's answer to a notification;
        /// a registration is removed when the app server answers with an
        /// error of type `cancel`, never for a timeout.
        answer_timeout_secs: u64 = 60, restart, min 1, max 3600;
    }

    /// XEP-0157 contact addresses, published in the server's disco#info
    /// (a `http://jabber.org/network/serverinfo` form, XEP-0128) so that
    /// clients and other servers know whom to tell about abuse or a
    /// security problem. Each is a list of URIs: `"mailto:abuse@example.org"`,
    /// `"xmpp:admin@example.org"`, `"https://example.org/support"`. Empty
    /// lists publish nothing.
    [contact] ContactConfig {
        /// Where to report abuse (spam, harassment) coming from this server.
        abuse: Vec<String> = Vec::new(), restart;
        /// The server's administrators.
        admin: Vec<String> = Vec::new(), restart;
        /// Feedback about the service.
        feedback: Vec<String> = Vec::new(), restart;
        /// Sales inquiries.
        sales: Vec<String> = Vec::new(), restart;
        /// Where to report a security problem.
        security: Vec<String> = Vec::new(), restart;
        /// Where the service's status is announced (a status page).
        status: Vec<String> = Vec::new(), restart;
        /// Help for the server's users.
        support: Vec<String> = Vec::new(), restart;
    }

    /// XEP-0215 external service discovery: the STUN and TURN servers
    /// clients use for audio and video calls (Jingle), with time-limited
    /// TURN credentials in the scheme of coturn's `use-auth-secret`. Only
    /// the server's own users may ask.
    [extdisco] ExtdiscoConfig {
        /// One `[[extdisco.services]]` table per service: `type` (`"stun"`,
        /// `"stuns"`, `"turn"` or `"turns"`), `host`, and optionally `port`,
        /// `transport` (`"udp"` or `"tcp"`), `name` and `secret`. With a
        /// `secret` (coturn's `static-auth-secret`), users get a username
        /// `<expiry>:<user@domain>` and a password computed from it, valid
        /// for `credentials_ttl_secs`. The secret is never logged or shown.
        services: Vec<ExternalService> = Vec::new(), restart, example "[[extdisco.services]]\n\
            type = \"turn\"\n\
            host = \"turn.example.org\"\n\
            port = 3478\n\
            transport = \"udp\"\n\
            secret = \"the same as coturn's static-auth-secret\"";
        /// Seconds the TURN credentials handed out stay valid.
        credentials_ttl_secs: u64 = 86400, restart, min 60, max 2592000;
    }

    /// External components (XEP-0114): one `[[components]]` table per
    /// component (a gateway to another network, a bot), with the `domain`
    /// it serves and the `secret` it authenticates with. It connects to a
    /// `component` listener; stanzas to its domain go to it, and while it
    /// is not connected they are answered `service-unavailable`. The
    /// secret is never logged or shown.
    [[components]]: Vec<ComponentConfig> = Vec::new(), restart, example "[[components]]\n\
        domain = \"irc.example.org\"\n\
        secret = \"a long random string, also in the component's configuration\"";
}

/// The rules between options that [`Config::validate`] checks after the
/// bounds, as the reference lists them; each is one check in
/// `Config::rule_problems` just below.
pub const RULES: &[&str] = &[
    "`server.domains` names at least one domain.",
    "`c2s.sm_resume_timeout_secs` is at most `c2s.sm_max_resume_timeout_secs`.",
    "`metrics.address` is empty or `IP:port`.",
    "`tls.cert` and `tls.key` are both set or both empty.",
    "`mam.max_page_size` is at most half of `limits.max_outbound_stanzas`: \
     a page of results is queued for the client at once.",
    "Every `[[listeners]]` kind is one this version can start (`c2s`, `c2s-tls`, \
     `s2s`, `s2s-tls`, `component`, `http`, `https`).",
    "`pubsub.service_subdomain` is one DNS label: letters, digits and `-`, \
     not at either end.",
    "Each of `muc.subdomains` is one DNS label, listed once, and no MUC \
     service shares its subdomain with the pubsub service.",
    "`muc.max_occupants` + `muc.history_size` + 8 is at most `limits.max_outbound_stanzas`: \
     someone entering a full room is sent every occupant's presence and the history at once.",
    "Each of `admin.admins` is a bare JID (`user@domain`, no resource).",
    "Each `[contact]` address is a URI with a scheme (`mailto:`, `xmpp:`, `https:`).",
    "Each of `[[extdisco.services]]` names a `host`.",
    "Each of `[[components]]` has a `domain` that is a DNS name, listed once, \
     neither one of `server.domains` nor a pubsub or MUC service's, and a \
     non-empty `secret`.",
    "Each of `s2s.hosts` is `domain=IP:port`.",
];

impl Config {
    /// The rules that involve more than one option, or more than a range,
    /// written once; [`Config::validate`] runs them after the bounds.
    fn rule_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.server.domains.is_empty() {
            problems.push("server.domains must name at least one domain".to_owned());
        }
        if self.c2s.sm_resume_timeout_secs > self.c2s.sm_max_resume_timeout_secs {
            problems.push(format!(
                "c2s.sm_resume_timeout_secs = {} is above c2s.sm_max_resume_timeout_secs = {}",
                self.c2s.sm_resume_timeout_secs, self.c2s.sm_max_resume_timeout_secs
            ));
        }
        if !self.metrics.address.is_empty() && self.metrics.address.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "metrics.address = {:?} is not IP:port (empty turns it off)",
                self.metrics.address
            ));
        }
        if self.tls.cert.as_os_str().is_empty() != self.tls.key.as_os_str().is_empty() {
            problems.push("tls.cert and tls.key go together: set both or neither".to_owned());
        }
        let label = &self.pubsub.service_subdomain;
        if !dns_label(label) {
            problems.push(format!(
                "pubsub.service_subdomain = {label:?} is not one DNS label \
                 (letters, digits and '-', not at either end)"
            ));
        }
        for (i, label) in self.muc.subdomains.iter().enumerate() {
            if !dns_label(label) {
                problems.push(format!(
                    "muc.subdomains[{i}] = {label:?} is not one DNS label \
                     (letters, digits and '-', not at either end)"
                ));
            } else if self.muc.subdomains[..i].contains(label) {
                problems.push(format!("muc.subdomains lists {label:?} twice"));
            } else if self.pubsub.service && *label == self.pubsub.service_subdomain {
                problems.push(format!(
                    "muc.subdomains[{i}] = {label:?} is the pubsub service's subdomain too"
                ));
            }
        }
        for (i, raw) in self.admin.admins.iter().enumerate() {
            // Parsed as the server parses it, so that what passes here is
            // exactly what the admin check compares with (normalized).
            match raw.parse::<chorus_jid::Jid>() {
                Ok(j) if j.node().is_some() && j.resource().is_none() => {}
                Ok(_) => problems.push(format!(
                    "admin.admins[{i}] = {raw:?} is not a bare account JID (user@domain, \
                     no resource)"
                )),
                Err(e) => problems.push(format!("admin.admins[{i}] = {raw:?} is not a JID: {e}")),
            }
        }
        for (key, addresses) in self.contact.lists() {
            for (i, uri) in addresses.iter().enumerate() {
                if !has_uri_scheme(uri) {
                    problems.push(format!(
                        "contact.{key}[{i}] = {uri:?} is not a URI (mailto:, xmpp:, https:...)"
                    ));
                }
            }
        }
        for (i, entry) in self.s2s.hosts.iter().enumerate() {
            if self.s2s.host_override(entry).is_none() {
                problems.push(format!(
                    "s2s.hosts[{i}] = {entry:?} is not domain=IP:port \
                     (\"example.net=192.0.2.7:5269\")"
                ));
            }
        }
        for (i, service) in self.extdisco.services.iter().enumerate() {
            if service.host.trim().is_empty() {
                problems.push(format!("extdisco.services[{i}] names no host"));
            }
        }
        // Entering a room queues every occupant's presence, the own one, the
        // subject and a little history at once.
        let room_queue = self.muc.max_occupants as usize + self.muc.history_size as usize + 8;
        if self.muc.enabled && room_queue > self.limits.max_outbound_stanzas {
            problems.push(format!(
                "muc.max_occupants = {} with muc.history_size = {} needs \
                 limits.max_outbound_stanzas of at least {room_queue} (someone entering a full \
                 room is sent every occupant's presence and the history at once)",
                self.muc.max_occupants, self.muc.history_size
            ));
        }
        // A page of results is queued for the client at once.
        let half_queue = self.limits.max_outbound_stanzas / 2;
        if self.mam.max_page_size as usize > half_queue {
            problems.push(format!(
                "mam.max_page_size = {} is above {half_queue}, half of \
                 limits.max_outbound_stanzas (a page is queued at once)",
                self.mam.max_page_size
            ));
        }
        problems.extend(self.component_problems());
        for (i, l) in self.listeners.iter().enumerate() {
            if !l.kind.available() {
                problems.push(format!(
                    "listeners[{i}].kind = \"{}\" is not available in this version of Chorus \
                     (only {} are)",
                    l.kind.as_str(),
                    ListenerKind::ALL
                        .iter()
                        .filter(|k| k.available())
                        .map(|k| format!("{:?}", k.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        problems
    }
}

/// A URI's scheme, RFC 3986 §3.1: a letter, then letters, digits, `+`,
/// `-` or `.`, then `:` and something after it.
fn has_uri_scheme(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

/// One DNS label: letters, digits and `-`, not at either end.
fn dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// `register.throttle_exempt`'s default: the loopback networks.
fn default_throttle_exempt() -> Vec<IpNetwork> {
    [
        IpNetwork::new(std::net::IpAddr::from([127, 0, 0, 0]), 8),
        IpNetwork::new(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// SQLite's `synchronous` setting (see `storage.sqlite_synchronous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Normal,
    Full,
}

impl OptionType for SqliteSync {
    const TYPE: &'static str = "\"normal\" or \"full\"";
    const EXPECTED: &'static str = "\"normal\" or \"full\"";
}

/// Who may create nodes on the hosted pubsub service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PubsubCreators {
    /// Accounts of this server.
    Local,
    /// Any entity that can reach the service.
    Anyone,
}

impl OptionType for PubsubCreators {
    const TYPE: &'static str = "\"local\" or \"anyone\"";
    const EXPECTED: &'static str = "\"local\" or \"anyone\"";
}

/// Who may create rooms on a MUC service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MucCreators {
    /// Accounts of this server.
    Local,
    /// Any entity that can reach the service.
    Anyone,
}

impl OptionType for MucCreators {
    const TYPE: &'static str = "\"local\" or \"anyone\"";
    const EXPECTED: &'static str = "\"local\" or \"anyone\"";
}

/// Which messages an account archives by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MamDefault {
    /// Every message with a body.
    Always,
    /// None, unless the user asks.
    Never,
    /// Only messages with contacts in the user's roster.
    Roster,
}

impl OptionType for MamDefault {
    const TYPE: &'static str = "\"always\", \"never\" or \"roster\"";
    const EXPECTED: &'static str = "\"always\", \"never\" or \"roster\"";
}

impl MamConfig {
    /// How long messages are kept; `None` for forever.
    pub fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0).then(|| Duration::from_secs(self.retention_days * 86_400))
    }
}

impl PushConfig {
    pub fn answer_timeout(&self) -> Duration {
        Duration::from_secs(self.answer_timeout_secs)
    }

    /// How long a registration's bucket takes to earn one notification.
    pub fn refill(&self) -> Duration {
        Duration::from_secs(60) / self.rate_per_minute.max(1)
    }
}

impl ContactConfig {
    /// Each list with its XEP-0157 role, in the order of the registry
    /// (XEP-0157 §5): `abuse` is published as `abuse-addresses`.
    pub fn lists(&self) -> [(&'static str, &[String]); 7] {
        [
            ("abuse", &self.abuse),
            ("admin", &self.admin),
            ("feedback", &self.feedback),
            ("sales", &self.sales),
            ("security", &self.security),
            ("status", &self.status),
            ("support", &self.support),
        ]
    }
}

/// The kind of an external service (XEP-0215 §6: the registry's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternalServiceType {
    Stun,
    Stuns,
    Turn,
    Turns,
}

impl ExternalServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalServiceType::Stun => "stun",
            ExternalServiceType::Stuns => "stuns",
            ExternalServiceType::Turn => "turn",
            ExternalServiceType::Turns => "turns",
        }
    }
}

/// The transport of an external service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternalTransport {
    Udp,
    Tcp,
}

impl ExternalTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalTransport::Udp => "udp",
            ExternalTransport::Tcp => "tcp",
        }
    }
}

/// One `[[extdisco.services]]` table: a STUN or TURN server (XEP-0215).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalService {
    #[serde(rename = "type")]
    pub kind: ExternalServiceType,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<ExternalTransport>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// coturn's `static-auth-secret`; empty for a service without
    /// credentials. Serialized (the reload diff, `Config::hash`) as a
    /// placeholder, never as itself.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        serialize_with = "redacted"
    )]
    pub secret: String,
}

/// Debug without the secret, so that no `{:?}` can log it.
impl std::fmt::Debug for ExternalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalService")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("name", &self.name)
            .field(
                "secret",
                &if self.secret.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

fn redacted<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

impl OptionType for Vec<ExternalService> {
    const TYPE: &'static str = "array of tables";
    const EXPECTED: &'static str = "an array of tables ([[extdisco.services]])";
    const TABLES: bool = true;
    const FIELDS: &'static [&'static str] =
        &["type", "host", "port", "transport", "name", "secret"];
}

/// One `[[components]]` table: an external component (XEP-0114).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The domain the component serves (`irc.example.org`).
    pub domain: String,
    /// The shared secret of the `<handshake/>` (XEP-0114 §3). Serialized
    /// (the reload diff, `Config::hash`) as a placeholder, never as itself.
    #[serde(serialize_with = "redacted")]
    pub secret: String,
}

/// Debug without the secret, so that no `{:?}` can log it.
impl std::fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentConfig")
            .field("domain", &self.domain)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl OptionType for Vec<ComponentConfig> {
    const TYPE: &'static str = "array of tables";
    const EXPECTED: &'static str = "an array of tables ([[components]])";
    const TABLES: bool = true;
    const FIELDS: &'static [&'static str] = &["domain", "secret"];
}

impl Config {
    /// The `[[components]]` rule (see [`RULES`]).
    fn component_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let served: Vec<String> = self
            .server
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        // The domains the hosted services take (`pubsub.<domain>`,
        // `conference.<domain>`): the route table holds one destination each.
        let mut services: Vec<String> = Vec::new();
        for d in &served {
            if self.pubsub.service {
                services.push(format!("{}.{d}", self.pubsub.service_subdomain));
            }
            if self.muc.enabled {
                services.extend(self.muc.subdomains.iter().map(|s| format!("{s}.{d}")));
            }
        }
        let mut seen: Vec<String> = Vec::new();
        for (i, c) in self.components.iter().enumerate() {
            let domain = c.domain.to_ascii_lowercase();
            if domain.len() > 253 || !domain.split('.').all(dns_label) {
                problems.push(format!(
                    "components[{i}].domain = {:?} is not a DNS name (labels of letters, \
                     digits and '-', separated by dots)",
                    c.domain
                ));
            } else if served.contains(&domain) {
                problems.push(format!(
                    "components[{i}].domain = {:?} is one of server.domains",
                    c.domain
                ));
            } else if services.contains(&domain) {
                problems.push(format!(
                    "components[{i}].domain = {:?} is a pubsub or MUC service's domain",
                    c.domain
                ));
            } else if seen.contains(&domain) {
                problems.push(format!("components lists {:?} twice", c.domain));
            }
            seen.push(domain);
            if c.secret.is_empty() {
                problems.push(format!("components[{i}].secret is empty"));
            }
        }
        problems
    }
}

/// The kind of a listening port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerKind {
    /// Client-to-server with STARTTLS (RFC 6120 §5).
    #[serde(rename = "c2s")]
    C2s,
    /// Client-to-server with direct TLS (XEP-0368).
    #[serde(rename = "c2s-tls")]
    C2sTls,
    /// Server-to-server (RFC 6120 §5 STARTTLS; federation, `[s2s]`).
    #[serde(rename = "s2s")]
    S2s,
    /// Server-to-server with direct TLS (XEP-0368, ALPN `xmpp-server`).
    #[serde(rename = "s2s-tls")]
    S2sTls,
    /// External components (XEP-0114), each listed in `[[components]]`.
    #[serde(rename = "component")]
    Component,
    /// HTTP: XMPP over WebSocket (RFC 7395) on `/xmpp-websocket` and
    /// discovery (XEP-0156) on `/.well-known/host-meta`.
    #[serde(rename = "http")]
    Http,
    /// HTTP over TLS (rustls, the certificates of `[tls]`, by SNI).
    #[serde(rename = "https")]
    Https,
}

impl ListenerKind {
    pub const ALL: [ListenerKind; 7] = [
        ListenerKind::C2s,
        ListenerKind::C2sTls,
        ListenerKind::S2s,
        ListenerKind::S2sTls,
        ListenerKind::Component,
        ListenerKind::Http,
        ListenerKind::Https,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::C2s => "c2s",
            ListenerKind::C2sTls => "c2s-tls",
            ListenerKind::S2s => "s2s",
            ListenerKind::S2sTls => "s2s-tls",
            ListenerKind::Component => "component",
            ListenerKind::Http => "http",
            ListenerKind::Https => "https",
        }
    }

    /// Whether this version of the server can start a listener of this
    /// kind; the others are named so that a configuration written for a
    /// later version fails with a clear message, not an unknown variant.
    pub fn available(self) -> bool {
        matches!(
            self,
            ListenerKind::C2s
                | ListenerKind::C2sTls
                | ListenerKind::S2s
                | ListenerKind::S2sTls
                | ListenerKind::Component
                | ListenerKind::Http
                | ListenerKind::Https
        )
    }
}

/// One `[[listeners]]` table. Both keys are required: a listener has no
/// sensible default address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub kind: ListenerKind,
    pub address: SocketAddr,
}

impl ListenerConfig {
    /// The port actor's id in the supervision tree: `port:c2s@127.0.0.1:5222`.
    pub fn actor_id(&self) -> String {
        format!("port:{}@{}", self.kind.as_str(), self.address)
    }
}

impl OptionType for Vec<ListenerConfig> {
    const TYPE: &'static str = "array of tables";
    const EXPECTED: &'static str = "an array of tables ([[listeners]])";
    const TABLES: bool = true;
    const FIELDS: &'static [&'static str] = &["kind", "address"];
}

/// One `[[tls.sni]]` table: the certificate for `domain`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCert {
    pub domain: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl OptionType for Vec<SniCert> {
    const TYPE: &'static str = "array of tables";
    const EXPECTED: &'static str = "an array of tables ([[tls.sni]])";
    const TABLES: bool = true;
    const FIELDS: &'static [&'static str] = &["domain", "cert", "key"];
}

impl S2sConfig {
    /// One `s2s.hosts` entry, `domain=IP:port`, as (lowercase domain,
    /// address).
    pub fn host_override(&self, entry: &str) -> Option<(String, SocketAddr)> {
        let (domain, addr) = entry.split_once('=')?;
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            return None;
        }
        Some((domain, addr.trim().parse().ok()?))
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// Whether `domain` may federate with us (`allow_domains`,
    /// `deny_domains`).
    pub fn allows(&self, domain: &str) -> bool {
        let listed = |l: &[String]| l.iter().any(|d| d.eq_ignore_ascii_case(domain));
        !listed(&self.deny_domains)
            && (self.allow_domains.is_empty() || listed(&self.allow_domains))
    }

    /// Whether a stream with `domain` may go without TLS.
    pub fn plaintext_ok(&self, domain: &str) -> bool {
        !self.require_tls
            || self
                .plaintext_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

impl LimitsConfig {
    /// The parser limits, as `chorus-xml` takes them.
    pub fn xml(&self) -> chorus_xml::Limits {
        chorus_xml::Limits {
            max_stanza_bytes_preauth: self.max_stanza_bytes_preauth,
            max_stanza_bytes: self.max_stanza_bytes,
            max_depth: self.max_depth,
            max_attrs: self.max_attrs,
            max_ns_decls: self.max_ns_decls,
            max_name_len: self.max_name_len,
        }
    }
}

impl C2sConfig {
    pub fn negotiation_timeout(&self) -> Duration {
        Duration::from_secs(self.negotiation_timeout_secs)
    }

    /// The former name of [`C2sConfig::negotiation_timeout`], kept for the
    /// callers that still use it.
    pub fn header_timeout(&self) -> Duration {
        self.negotiation_timeout()
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs)
    }

    pub fn ping_timeout(&self) -> Duration {
        Duration::from_secs(self.ping_timeout_secs)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }

    pub fn sm_resume_timeout(&self) -> Duration {
        Duration::from_secs(self.sm_resume_timeout_secs)
    }

    pub fn sm_max_resume_timeout(&self) -> Duration {
        Duration::from_secs(self.sm_max_resume_timeout_secs)
    }

    pub fn sm_request_ack_after(&self) -> Duration {
        Duration::from_millis(self.sm_request_ack_after_ms)
    }

    pub fn sm_close_ack_wait(&self) -> Duration {
        Duration::from_millis(self.sm_close_ack_wait_ms)
    }
}

impl SupervisionConfig {
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms)
    }
}

impl Config {
    /// A short fingerprint of the effective configuration (`chorusctl
    /// status`), so an operator can tell whether a reload took.
    pub fn hash(&self) -> String {
        use std::hash::{Hash, Hasher};
        // Stable across runs of one build: the serialized form, hashed.
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// The storage URL, defaulting to a SQLite file in the data directory.
    pub fn storage_url(&self) -> String {
        if self.storage.url.is_empty() {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("chorus.db").display()
            )
        } else {
            self.storage.url.clone()
        }
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls.handshake_timeout_secs.max(1))
    }

    /// The admin socket path, defaulting into the data directory.
    pub fn admin_socket(&self) -> PathBuf {
        if self.admin.socket.as_os_str().is_empty() {
            self.server.data_dir.join("chorus.sock")
        } else {
            self.admin.socket.clone()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    fn problems(toml: &str) -> Vec<String> {
        Config::from_toml(toml).unwrap_err().problems().to_vec()
    }

    #[test]
    fn admins_must_be_bare_account_jids() {
        let c = Config::from_toml("[admin]\nadmins = ['Admin@LocalHost']\n").unwrap();
        assert_eq!(c.admin.admins, vec!["Admin@LocalHost"]);
        assert_eq!(
            problems("[admin]\nadmins = ['localhost', 'a@localhost/phone', '@x']\n"),
            [
                "admin.admins[0] = \"localhost\" is not a bare account JID (user@domain, no resource)",
                "admin.admins[1] = \"a@localhost/phone\" is not a bare account JID (user@domain, no resource)",
                "admin.admins[2] = \"@x\" is not a JID: empty localpart",
            ]
        );
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.server.domains, vec!["localhost"]);
        assert_eq!(c.limits.max_stanza_bytes_preauth, 8192);
        assert_eq!(c.admin_socket(), PathBuf::from("data/chorus.sock"));
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let err = Config::from_toml("[server]\ndomian = ['a']\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "unknown key `server.domian`: did you mean `domains`?");
    }

    #[test]
    fn unknown_key_without_a_close_one_lists_the_section() {
        assert_eq!(
            problems("[offline]\nzzzzzz = 1\n"),
            ["unknown key `offline.zzzzzz`; valid keys here: quota"]
        );
    }

    #[test]
    fn unknown_section_is_an_error() {
        let err = Config::from_toml("[limit]\nmax_depth = 3\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "unknown key `limit`: did you mean `limits`?");
    }

    #[test]
    fn every_problem_in_a_file_is_reported_at_once() {
        let p = problems(
            "[server]\ndomian = ['a']\n\
             [limits]\nmax_depth = 1\nmax_attrs = 2\n\
             [c2s]\nping_interval_secs = 'abc'\n\
             [mam]\nretention_days = 2000000\n",
        );
        assert_eq!(
            p,
            [
                "unknown key `server.domian`: did you mean `domains`?",
                "c2s.ping_interval_secs: expected an unsigned integer, found a string \"abc\"",
                "limits.max_depth = 1 is below the minimum 4",
                "limits.max_attrs = 2 is below the minimum 8",
                "mam.retention_days = 2000000 is above the maximum 1000000",
            ]
        );
    }

    #[test]
    fn type_errors_name_the_key_in_an_operators_words() {
        assert_eq!(
            problems("[c2s]\nrequire_encryption = 'yes'\nmax_resources = -1\n"),
            [
                "c2s.require_encryption: expected true or false, found a string \"yes\"",
                "c2s.max_resources: expected an unsigned integer, found the number -1",
            ]
        );
        assert_eq!(
            problems("[sasl]\niterations = 5000000000\n"),
            ["sasl.iterations: expected an unsigned integer (at most 4294967295), found the number 5000000000"]
        );
        assert_eq!(
            problems("[server]\ndomains = 'example.org'\n"),
            ["server.domains: expected a list of strings, found a string \"example.org\""]
        );
        assert_eq!(
            problems("c2s = 5\n"),
            ["c2s: expected a table ([c2s]), found the number 5"]
        );
        assert_eq!(
            problems("[mam]\ndefault_pref = 'rooster'\n"),
            [
                "mam.default_pref: unknown value \"rooster\" (did you mean \"roster\"?); \
              expected \"always\", \"never\" or \"roster\""
            ]
        );
    }

    #[test]
    // figment's Jail closure returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    fn nested_and_environment_type_errors_name_the_key_without_figments_paths() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[[listeners]]\nkind = 'c2s'\naddress = 5222\n\
                 [[tls.sni]]\ndomain = 7\ncert = 'a'\nkey = 'b'\n\
                 [register]\nburst = 'many'\n",
            )?;
            jail.set_env("CHORUS_C2S__MAX_RESOURCES", "lots");
            let err = Config::load(Some(Path::new("c.toml"))).unwrap_err();
            assert_eq!(
                err.problems(),
                [
                    "listeners[0].address: expected socket address, found the number 5222",
                    "c2s.max_resources: expected an unsigned integer, found a string \"lots\"",
                    "tls.sni[0].domain: expected a string, found the number 7",
                    "register.burst: expected an unsigned integer (at most 4294967295), \
                     found a string \"many\"",
                ]
            );
            // figment's own wording names its profile and Rust types.
            let text = err.to_string();
            for leak in ["default.", "u32", "usize", "for key"] {
                assert!(!text.contains(leak), "{leak:?} in {text}");
            }
            Ok(())
        });
    }

    #[test]
    fn throttle_exemptions_are_networks_and_bad_ones_name_their_entry() {
        let c = Config::default();
        assert_eq!(
            c.register
                .throttle_exempt
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["127.0.0.0/8", "::1/128"]
        );
        assert!(c.register.throttle);
        let c = Config::from_toml(
            "[register]\nthrottle = false\nthrottle_exempt = ['10.0.0.0/8', '2001:db8::/32']\n",
        )
        .unwrap();
        assert!(!c.register.throttle);
        assert!(c.register.throttle_exempt[1].contains("2001:db8::5".parse().unwrap()));
        assert_eq!(
            problems(
                "[register]\nthrottle_exempt = ['10.0.0.0/8', '10.1.0/16', '10.2.0.1/16', 5]\n"
            ),
            [
                "register.throttle_exempt[1]: \"10.1.0/16\" is not a network: expected IP/prefix, \
                 such as 10.0.0.0/8 or fd00::/8",
                "register.throttle_exempt[2]: \"10.2.0.1/16\" has host bits set: did you mean \
                 10.2.0.0/16?",
                "register.throttle_exempt[3]: expected a string, found the number 5",
            ]
        );
        assert_eq!(
            problems("[register]\nthrottle_exempt = '127.0.0.0/8'\n"),
            [
                "register.throttle_exempt: expected a list of networks (\"IP/prefix\" strings), \
                 found a string \"127.0.0.0/8\""
            ]
        );
    }

    #[test]
    fn listener_problems_point_into_the_list() {
        assert_eq!(
            problems(
                "[[listeners]]\nkind = 'c2s'\naddress = '127.0.0.1:5222'\n\
                 [[listeners]]\nkind = 'c2s'\nadress = '127.0.0.1:5223'\n"
            ),
            ["unknown key `listeners[1].adress`: did you mean `address`?"]
        );
        assert_eq!(
            problems("[[listeners]]\nkind = 'c2'\naddress = '127.0.0.1:5222'\n"),
            [
                "listeners[0].kind: unknown value \"c2\" (did you mean \"c2s\"?); \
              expected one of \"c2s\", \"c2s-tls\", \"s2s\", \"s2s-tls\", \"component\", \"http\", \"https\""
            ]
        );
        // Every kind this version names starts: none is refused.
        for kind in ListenerKind::ALL {
            let toml = format!(
                "[[listeners]]\nkind = '{}'\naddress = '127.0.0.1:5269'\n",
                kind.as_str()
            );
            let parsed = Config::from_toml(&toml);
            assert!(parsed.is_ok(), "{}: {:?}", kind.as_str(), parsed.err());
        }
        assert_eq!(
            problems("[[listeners]]\nkind = 'c2s'\n"),
            ["listeners[0]: missing key `address`"]
        );
        assert_eq!(
            problems("[listeners]\nkind = 'c2s'\n"),
            ["listeners: expected an array of tables ([[listeners]]), found a table"]
        );
    }

    #[test]
    fn listeners_parse() {
        let c = Config::from_toml(
            "[[listeners]]\nkind = 'c2s'\naddress = '127.0.0.1:5222'\n[[listeners]]\nkind = 'c2s-tls'\naddress = '[::1]:5223'\n",
        )
        .unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[1].kind, ListenerKind::C2sTls);
        assert_eq!(c.listeners[0].actor_id(), "port:c2s@127.0.0.1:5222");
    }

    #[test]
    fn the_deprecated_header_timeout_maps_to_negotiation_timeout_with_a_warning() {
        let (c, warnings) =
            Config::from_toml_with_warnings("[c2s]\nheader_timeout_secs = 7\n").unwrap();
        assert_eq!(c.c2s.negotiation_timeout_secs, 7);
        assert_eq!(c.c2s.header_timeout(), Duration::from_secs(7));
        assert_eq!(
            warnings,
            ["`c2s.header_timeout_secs` is deprecated: rename it to `c2s.negotiation_timeout_secs`"]
        );
        // The declared name wins when both are set.
        let (c, warnings) = Config::from_toml_with_warnings(
            "[c2s]\nheader_timeout_secs = 7\nnegotiation_timeout_secs = 9\n",
        )
        .unwrap();
        assert_eq!(c.c2s.negotiation_timeout_secs, 9);
        assert_eq!(
            warnings,
            ["`c2s.header_timeout_secs` is a deprecated name of `c2s.negotiation_timeout_secs`, \
              which is set too; `c2s.header_timeout_secs` is ignored"]
        );
        // The old name gets the new name's floor.
        assert_eq!(
            problems("[c2s]\nheader_timeout_secs = 0\n"),
            ["c2s.negotiation_timeout_secs = 0 is below the minimum 1"]
        );
        let (_, none) =
            Config::from_toml_with_warnings("[c2s]\nnegotiation_timeout_secs = 9\n").unwrap();
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn cross_field_rules_wait_for_valid_values() {
        assert_eq!(
            problems("[c2s]\nsm_resume_timeout_secs = 700\n[tls]\ncert = 'a.pem'\n"),
            [
                "c2s.sm_resume_timeout_secs = 700 is above c2s.sm_max_resume_timeout_secs = 600",
                "tls.cert and tls.key go together: set both or neither",
            ]
        );
        // A rejected value is not judged by the rules through its default.
        assert_eq!(
            problems("[c2s]\nsm_resume_timeout_secs = 700\nsm_max_resume_timeout_secs = 'x'\n"),
            ["c2s.sm_max_resume_timeout_secs: expected an unsigned integer, found a string \"x\""]
        );
    }

    #[test]
    // figment's Jail closure returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_and_is_strict() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHORUS_SERVER__DOMAINS", "[\"example.org\"]");
            jail.set_env("CHORUS_LOG", "debug");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.server.domains, vec!["example.org"]);
            jail.set_env("CHORUS_SERVER__DOMIAN", "x");
            jail.set_env("CHORUS_C2S__PING_INTERVAL_SECS", "abc");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("did you mean `domains`?"), "{err}");
            assert!(
                err.contains(
                    "c2s.ping_interval_secs: expected an unsigned integer, found a string \"abc\""
                ),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn explain_names_each_source() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[server]\ndomains = ['example.org']\n[c2s]\nheader_timeout_secs = 5\n",
            )?;
            jail.set_env("CHORUS_C2S__MAX_RESOURCES", "3");
            let rows = Config::explain(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            let find = |k: &str| rows.iter().find(|r| r.0 == k).cloned().unwrap();
            assert!(
                find("server.domains").2.starts_with("file "),
                "{:?}",
                find("server.domains")
            );
            assert_eq!(find("server.domains").1, "[\"example.org\"]");
            assert_eq!(find("c2s.max_resources").2, "env CHORUS_C2S__MAX_RESOURCES");
            assert_eq!(find("limits.max_depth").2, "default");
            let renamed = find("c2s.negotiation_timeout_secs");
            assert_eq!(renamed.1, "5");
            assert!(
                renamed.2.starts_with("file ")
                    && renamed
                        .2
                        .ends_with("(as deprecated c2s.header_timeout_secs)"),
                "{renamed:?}"
            );
            assert_eq!(rows.len(), spec::all_options().count());
            Ok(())
        });
    }

    #[test]
    fn shipped_config_file_is_the_defaults() {
        let shipped = Config::from_toml(include_str!("../../../config/chorus.toml")).unwrap();
        assert_eq!(shipped, Config::default());
    }

    #[test]
    fn mam_section_parses_and_its_page_size_is_bounded() {
        let c = Config::from_toml(
            "[mam]\nretention_days = 30\ndefault_pref = 'roster'\nmax_page_size = 250\n",
        )
        .unwrap();
        assert_eq!(c.mam.default_pref, MamDefault::Roster);
        assert_eq!(c.mam.retention(), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(Config::default().mam.retention(), None);
        assert_eq!(
            problems("[mam]\nmax_page_size = 0\n"),
            ["mam.max_page_size = 0 is below the minimum 1"]
        );
        assert_eq!(
            problems("[mam]\nmax_page_size = 501\n"),
            [
                "mam.max_page_size = 501 is above 500, half of limits.max_outbound_stanzas \
              (a page is queued at once)"
            ]
        );
        assert!(Config::from_toml("[mam]\ndefault_pref = 'sometimes'\n").is_err());
    }

    #[test]
    fn limits_have_floors() {
        let err = Config::from_toml("[limits]\nmax_depth = 1\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "limits.max_depth = 1 is below the minimum 4");
    }

    #[test]
    fn declarations_are_consistent() {
        let defaults = Config::default();
        let mut keys = std::collections::BTreeSet::new();
        for o in spec::all_options() {
            assert!(keys.insert(o.key), "{} declared twice", o.key);
            assert!(!o.doc.is_empty(), "{} has no doc", o.key);
            // Bounds are checked on integers only.
            if o.min.is_some() || o.max.is_some() {
                assert!(
                    (o.get)(&defaults).is_u64(),
                    "{} has bounds but is not an integer",
                    o.key
                );
            }
            assert_eq!(o.tables, o.type_name == "array of tables", "{}", o.key);
        }
        // Every field of Config is declared: the serialized default has no
        // key without a spec.
        let json = serde_json::to_value(&defaults).unwrap();
        for (top, value) in json.as_object().unwrap() {
            match value.as_object() {
                Some(fields) if spec::option(top).is_none() => {
                    for k in fields.keys() {
                        assert!(spec::option(&format!("{top}.{k}")).is_some(), "{top}.{k}");
                    }
                }
                _ => assert!(spec::option(top).is_some(), "{top}"),
            }
        }
    }

    #[test]
    fn diff_names_each_change_and_whether_a_reload_applies_it() {
        let old = Config::default();
        let new = Config::from_toml(
            "[limits]\nmax_depth = 32\n[c2s]\nping_interval_secs = 60\n[mam]\ndefault_pref = 'roster'\n",
        )
        .unwrap();
        let changes = Config::diff(&old, &new);
        assert_eq!(
            changes,
            [
                Change {
                    key: "limits.max_depth",
                    old: "64".into(),
                    new: "32".into(),
                    reloadable: true,
                },
                Change {
                    key: "c2s.ping_interval_secs",
                    old: "300".into(),
                    new: "60".into(),
                    reloadable: false,
                },
                Change {
                    key: "mam.default_pref",
                    old: "\"always\"".into(),
                    new: "\"roster\"".into(),
                    reloadable: false,
                },
            ]
        );
        assert_eq!(changes[0].to_string(), "limits.max_depth: 64 -> 32");
        assert!(Config::diff(&new, &new).is_empty());

        // A reload takes the reloadable values and keeps the rest, so the
        // restart-only changes are still pending afterwards.
        let running = old.with_reloadable(&new);
        assert_eq!(running.limits.max_depth, 32);
        assert_eq!(running.c2s.ping_interval_secs, 300);
        let pending: Vec<&str> = Config::diff(&running, &new).iter().map(|c| c.key).collect();
        assert_eq!(pending, ["c2s.ping_interval_secs", "mam.default_pref"]);
    }

    #[test]
    fn only_what_the_server_rereads_is_reloadable() {
        let reloadable: Vec<&str> = spec::all_options()
            .filter(|o| o.reloadable)
            .map(|o| o.key)
            .collect();
        assert_eq!(
            reloadable,
            [
                "listeners",
                "limits.max_stanza_bytes_preauth",
                "limits.max_stanza_bytes",
                "limits.max_depth",
                "limits.max_attrs",
                "limits.max_ns_decls",
                "limits.max_name_len",
                "tls.cert",
                "tls.key",
                "tls.sni",
            ]
        );
    }

    #[test]
    fn contact_addresses_must_be_uris() {
        let c = Config::from_toml(
            "[contact]\nabuse = ['mailto:abuse@example.org', 'xmpp:admin@example.org']\n",
        )
        .unwrap();
        assert_eq!(c.contact.abuse.len(), 2);
        assert_eq!(
            problems("[contact]\nsecurity = ['security@example.org', 'https:']\n"),
            [
                "contact.security[0] = \"security@example.org\" is not a URI (mailto:, xmpp:, https:...)",
                "contact.security[1] = \"https:\" is not a URI (mailto:, xmpp:, https:...)",
            ]
        );
    }

    #[test]
    fn external_services_parse_and_their_secret_never_shows() {
        let c = Config::from_toml(
            "[[extdisco.services]]\ntype = 'turn'\nhost = 'turn.example.org'\nport = 3478\n\
             transport = 'udp'\nsecret = 's3cr3t'\n\
             [[extdisco.services]]\ntype = 'stun'\nhost = 'stun.example.org'\n",
        )
        .unwrap();
        let turn = &c.extdisco.services[0];
        assert_eq!(
            (turn.kind, turn.port, turn.transport, turn.secret.as_str()),
            (
                ExternalServiceType::Turn,
                Some(3478),
                Some(ExternalTransport::Udp),
                "s3cr3t"
            )
        );
        assert!(c.extdisco.services[1].secret.is_empty());
        // Not in Debug, not in what the reload diff and the hash read.
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!serde_json::to_string(&c).unwrap().contains("s3cr3t"));
        assert_eq!(
            problems("[[extdisco.services]]\ntype = 'turn'\nhost = ' '\n"),
            ["extdisco.services[0] names no host"]
        );
        assert!(!problems("[[extdisco.services]]\ntype = 'tarn'\nhost = 'x'\n").is_empty());
    }

    #[test]
    fn components_parse_validate_and_their_secret_never_shows() {
        let c = Config::from_toml(
            "[[components]]\ndomain = 'irc.localhost'\nsecret = 'c0mp0nent'\n\
             [[listeners]]\nkind = 'component'\naddress = '127.0.0.1:5347'\n",
        )
        .unwrap();
        assert_eq!(c.components[0].domain, "irc.localhost");
        assert_eq!(c.listeners[0].kind, ListenerKind::Component);
        assert!(!format!("{c:?}").contains("c0mp0nent"));
        assert!(!serde_json::to_string(&c).unwrap().contains("c0mp0nent"));
        assert_eq!(
            problems(
                "[[components]]\ndomain = 'localhost'\nsecret = 'x'\n\
                 [[components]]\ndomain = 'a..b'\nsecret = 'x'\n\
                 [[components]]\ndomain = 'conference.localhost'\nsecret = 'x'\n\
                 [[components]]\ndomain = 'irc.localhost'\nsecret = ''\n\
                 [[components]]\ndomain = 'IRC.localhost'\nsecret = 'x'\n"
            ),
            [
                "components[0].domain = \"localhost\" is one of server.domains",
                "components[1].domain = \"a..b\" is not a DNS name (labels of letters, \
                 digits and '-', separated by dots)",
                "components[2].domain = \"conference.localhost\" is a pubsub or MUC \
                 service's domain",
                "components[3].secret is empty",
                "components lists \"IRC.localhost\" twice",
            ]
        );
        assert_eq!(
            problems("[[components]]\ndomain = 'irc.localhost'\n"),
            ["components[0]: missing key `secret`"]
        );
    }
}
