//! Port actors: `listeners/port:<kind>@<addr>`, each a one_for_one
//! supervisor of an `acceptor` and a `conns` supervisor.
//!
//! Listener kinds are open: a port knows only the [`Connections`] of its
//! kind, which turns each accepted connection into the group of actors that
//! serves it (c2s's socket/receiver/c2s for `c2s` and `c2s-tls`; an s2s or
//! component kind brings its own).
//!
//! The port's start function binds the socket and the acceptor only borrows
//! it (an `Arc`), so a killed acceptor is restarted onto the very same bound
//! socket at once: nothing is rebound, no connection attempt is refused, and
//! established connections (under `conns`) never notice. Killing `conns`
//! drops every connection of that port and nothing else.
//!
//! The server binds each port once before it builds the tree ([`bind`]) and
//! hands the socket to the port's first start, so that a port it cannot
//! open fails the start with an error that names the address and the
//! configuration key to change, rather than deep inside a supervisor's
//! start failure; a restarted port binds again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_config::ListenerConfig;
use chorus_supervisor::{
    spawn_supervisor, ChildSpec, GroupSpec, Restart, StartCtx, Strategy, SupervisorMsg,
    SupervisorOptions,
};
use dashmap::DashMap;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Where each listener actually bound, by port actor id (port 0 in tests
/// binds an ephemeral port).
pub type BoundAddrs = Arc<DashMap<String, SocketAddr>>;

/// Open connections by peer address, for a listener kind's per-address
/// cap (`c2s.max_connections_per_ip`, `http.max_connections_per_ip`,
/// `s2s.max_streams_per_ip`).
pub type IpCounts = Arc<DashMap<Option<std::net::IpAddr>, usize>>;

/// A connection's place in its address's count, given back on drop.
pub struct IpSlot {
    peer: Option<std::net::IpAddr>,
    counts: IpCounts,
}

impl IpSlot {
    /// A place for `peer`, or None when it already has `cap`.
    pub fn take(counts: &IpCounts, peer: Option<std::net::IpAddr>, cap: u32) -> Option<IpSlot> {
        let mut n = counts.entry(peer).or_insert(0);
        if *n >= cap as usize {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            peer,
            counts: counts.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.counts.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
        }
        self.counts.remove_if(&self.peer, |_, n| *n == 0);
    }
}

/// What a listener kind does with the connections it accepts.
pub trait Connections: Send + Sync + 'static {
    /// The id of the next connection (`conn-<id>`), unique across ports.
    fn next_id(&self) -> u64;
    /// The group of actors that serves one accepted connection.
    fn group(&self, id: u64, stream: TcpStream) -> GroupSpec;
}

/// A listening socket that could not be opened, in an operator's words:
/// the address, the configuration key that set it, and the system's
/// reason (`cannot listen on 127.0.0.1:5222 (listeners[0].address):
/// Address already in use`).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} ({key}): {reason}")]
pub struct BindError {
    pub address: SocketAddr,
    /// The configuration key to change: `listeners[0].address`,
    /// `metrics.address`.
    pub key: String,
    /// The system's message, without Rust's ` (os error 98)` suffix.
    pub reason: String,
    /// The error's kind (`AddrInUse`, `PermissionDenied`...).
    pub kind: std::io::ErrorKind,
}

/// Opens a listening TCP socket on `address`, which the configuration sets
/// under `key`. Like `TcpListener::bind` (address reuse, a backlog of
/// 1024), except that an IPv6 socket takes IPv6 only (`IPV6_V6ONLY`):
/// whether `[::]:5222` also took IPv4 depended on the system (Linux's
/// `net.ipv6.bindv6only`, BSDs never), and where it did, a second listener
/// on `0.0.0.0:5222` failed with "address in use". One listener per
/// address family works the same everywhere.
pub async fn bind(address: SocketAddr, key: &str) -> Result<TcpListener, BindError> {
    let fail = |e: std::io::Error| BindError {
        address,
        key: key.to_owned(),
        reason: os_reason(&e),
        kind: e.kind(),
    };
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(fail)?;
    if address.is_ipv6() {
        rustix::net::sockopt::set_ipv6_v6only(&socket, true).map_err(|e| fail(e.into()))?;
    }
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(address).map_err(fail)?;
    socket.listen(1024).map_err(fail)
}

/// An I/O error's text without ` (os error N)`, which says nothing to an
/// operator.
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

/// The configuration key of the `index`th listener's address.
pub fn address_key(index: usize) -> String {
    format!("listeners[{index}].address")
}

/// The child spec of one port actor under `listeners`. `key` names the
/// listener's address in the configuration (for errors); `prebound` is the
/// socket the server already opened for the first start (see [`bind`]),
/// or `None` to bind in the start function.
pub fn port_spec(
    cfg: ListenerConfig,
    key: String,
    prebound: Option<TcpListener>,
    conns: Arc<dyn Connections>,
    bound: BoundAddrs,
    options: SupervisorOptions,
) -> ChildSpec {
    let id = cfg.actor_id();
    // Taken by the first start; a restart finds it empty and binds again.
    let prebound = Arc::new(Mutex::new(prebound));
    ChildSpec::supervisor(id.clone(), Restart::Permanent, move |sctx: StartCtx| {
        let cfg = cfg.clone();
        let conns = conns.clone();
        let bound = bound.clone();
        let id = id.clone();
        let options = options.clone();
        let key = key.clone();
        let prebound = prebound.lock().ok().and_then(|mut p| p.take());
        Box::pin(async move {
            let listener = match prebound {
                Some(l) => l,
                None => bind(cfg.address, &key).await.map_err(|e| {
                    tracing::error!(listener = %id, error = %e, "cannot bind listener");
                    ractor::SpawnErr::StartupFailed(e.to_string().into())
                })?,
            };
            let local = listener
                .local_addr()
                .map_err(|e| ractor::SpawnErr::StartupFailed(format!("local_addr: {e}").into()))?;
            tracing::info!(listener = %id, address = %local, "listening");
            bound.insert(id, local);
            let listener = Arc::new(listener);
            let port_path = sctx.path.clone();
            // `conns` first: the socket is bound before the tree exists, so
            // clients may already be waiting, and an acceptor started
            // before `conns` would have nowhere to put them.
            let children = vec![
                ChildSpec::supervisor("conns", Restart::Permanent, move |c: StartCtx| {
                    Box::pin(spawn_supervisor(
                        c,
                        SupervisorOptions {
                            strategy: Strategy::OneForOne,
                            ..options_for_conns()
                        },
                        Vec::new(),
                    ))
                }),
                acceptor_spec(listener, port_path, conns),
            ];
            spawn_supervisor(
                sctx,
                SupervisorOptions {
                    strategy: Strategy::OneForOne,
                    ..options
                },
                children,
            )
            .await
        })
    })
}

/// `conns` only has temporary groups, which never restart, so its intensity
/// never trips; the defaults are kept for uniformity.
fn options_for_conns() -> SupervisorOptions {
    SupervisorOptions::default()
}

fn acceptor_spec(
    listener: Arc<TcpListener>,
    port_path: String,
    conns: Arc<dyn Connections>,
) -> ChildSpec {
    ChildSpec::worker("acceptor", Restart::Permanent, move |sctx: StartCtx| {
        let args = AcceptorArgs {
            listener: listener.clone(),
            conns_path: format!("{port_path}/conns"),
            registry: sctx.registry.clone(),
            conns: conns.clone(),
        };
        Box::pin(async move {
            let (actor, _) = Actor::spawn_linked(None, Acceptor, args, sctx.supervisor).await?;
            Ok(actor.get_cell())
        })
    })
    // Its handler waits in accept(); a stop would only be seen after the next
    // connection, so shutdown is a kill (OTP's brutal_kill). It holds nothing.
    .shutdown(Duration::ZERO)
}

pub struct Acceptor;

pub struct AcceptorArgs {
    listener: Arc<TcpListener>,
    conns_path: String,
    registry: chorus_supervisor::Registry,
    /// The kind's connection groups.
    conns: Arc<dyn Connections>,
}

pub enum AcceptorMsg {
    Accept,
}

impl Actor for Acceptor {
    type Msg = AcceptorMsg;
    type State = AcceptorArgs;
    type Arguments = AcceptorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AcceptorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.cast(AcceptorMsg::Accept)?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match state.listener.accept().await {
            Ok((stream, peer)) => {
                let id = state.conns.next_id();
                match state.registry.lookup(&state.conns_path) {
                    Some(cell) => {
                        tracing::debug!(conn = id, %peer, "accepted");
                        let conns: ActorRef<SupervisorMsg> = cell.into();
                        let spec = state.conns.group(id, stream);
                        conns.cast(SupervisorMsg::StartGroup(spec, None))?;
                    }
                    // `conns` is restarting; dropping the stream refuses this
                    // one connection rather than queueing it unsupervised.
                    None => {
                        tracing::warn!(%peer, "conns supervisor unavailable; connection dropped")
                    }
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        myself.cast(AcceptorMsg::Accept)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ipv6_and_ipv4_listeners_share_a_port() {
        // A machine without IPv6 has nothing to test here.
        if std::net::TcpListener::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 on this machine: skipped");
            return;
        }
        let v6 = bind("[::]:0".parse().unwrap(), "listeners[0].address")
            .await
            .unwrap();
        let port = v6.local_addr().unwrap().port();
        // With a dual-stack [::] socket this bind fails: address in use.
        let v4 = bind(
            SocketAddr::from(([0, 0, 0, 0], port)),
            "listeners[1].address",
        )
        .await
        .unwrap();
        // An IPv4 client reaches the IPv4 listener, an IPv6 one the other.
        let _c4 = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        let (_, peer) = v4.accept().await.unwrap();
        assert!(peer.is_ipv4(), "{peer}");
        let _c6 = TcpStream::connect(format!("[::1]:{port}")).await.unwrap();
        let (_, peer) = v6.accept().await.unwrap();
        assert_eq!(peer.ip(), "::1".parse::<std::net::IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn a_bind_error_names_the_address_and_key() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let err = bind(address, "metrics.address").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot listen on {address} (metrics.address): Address already in use")
        );
        assert_eq!(err.kind, std::io::ErrorKind::AddrInUse);
    }
}
