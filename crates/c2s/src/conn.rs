//! Starting one connection: the `conn-<id>` group of socket, receiver and c2s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chorus_proto::{ns, StreamError};
use chorus_supervisor::{GroupMember, GroupSpec, StartCtx};
use chorus_xml::{Limits, NsContext};
use ractor::{Actor, ActorCell};
use tokio::net::TcpStream;

use crate::c2s::{C2sActor, C2sArgs};
use crate::receiver::{ReceiverActor, ReceiverArgs};
use crate::socket::{OutboundGauge, SocketActor, SocketArgs, SocketHandle};

/// What every connection of a server shares: configuration and counters.
#[derive(Debug)]
pub struct C2sContext {
    /// Domains served, lowercase.
    pub domains: Vec<String>,
    pub limits: Limits,
    pub header_timeout: Duration,
    pub max_outbound_stanzas: usize,
    pub max_outbound_bytes: usize,
    /// Source of `conn-<id>` ids, unique across ports.
    next_id: AtomicU64,
}

impl C2sContext {
    pub fn new(
        domains: Vec<String>,
        limits: Limits,
        header_timeout: Duration,
        max_outbound_stanzas: usize,
        max_outbound_bytes: usize,
    ) -> Self {
        C2sContext {
            domains: domains
                .into_iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            limits,
            header_timeout,
            max_outbound_stanzas,
            max_outbound_bytes,
            next_id: AtomicU64::new(1),
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// The group spec for one accepted connection. The members are spawned
/// linked to the `conns` supervisor in dependency order (socket, c2s,
/// receiver) and listed in the tree as socket, receiver, c2s.
pub fn connection_group(id: u64, stream: TcpStream, ctx: Arc<C2sContext>) -> GroupSpec {
    GroupSpec {
        id: format!("conn-{id}"),
        start: Box::new(move |sctx: StartCtx| {
            Box::pin(async move {
                let sup = sctx.supervisor.clone();
                let _ = stream.set_nodelay(true);
                let (reader, writer) = stream.into_split();
                let gauge = Arc::new(OutboundGauge::new(
                    ctx.max_outbound_stanzas,
                    ctx.max_outbound_bytes,
                ));
                let mut overflow_error = Vec::new();
                StreamError::PolicyViolation
                    .to_element(Some("outbound queue overflow"))
                    .write_to(&mut overflow_error, &NsContext::stream(ns::JABBER_CLIENT));
                overflow_error.extend_from_slice(b"</stream:stream>");
                let (socket, _) = Actor::spawn_linked(
                    None,
                    SocketActor,
                    SocketArgs {
                        writer,
                        gauge: gauge.clone(),
                        overflow_error,
                    },
                    sup.clone(),
                )
                .await?;
                let handle = SocketHandle::new(socket.clone(), gauge);
                let started: Vec<ActorCell> = vec![socket.get_cell()];
                let c2s = match Actor::spawn_linked(
                    None,
                    C2sActor,
                    C2sArgs {
                        conn_id: id,
                        socket: handle,
                        ctx: ctx.clone(),
                    },
                    sup.clone(),
                )
                .await
                {
                    Ok((c2s, _)) => c2s,
                    Err(e) => {
                        kill_all(&started);
                        return Err(e);
                    }
                };
                let receiver = match Actor::spawn_linked(
                    None,
                    ReceiverActor,
                    ReceiverArgs {
                        reader,
                        c2s: c2s.clone(),
                        limits: ctx.limits.clone(),
                    },
                    sup,
                )
                .await
                {
                    Ok((r, _)) => r,
                    Err(e) => {
                        kill_all(&started);
                        c2s.kill();
                        return Err(e);
                    }
                };
                tracing::debug!(conn = id, "connection started");
                Ok(vec![
                    GroupMember {
                        id: "socket".into(),
                        kind: "worker",
                        cell: socket.get_cell(),
                    },
                    GroupMember {
                        id: "receiver".into(),
                        kind: "worker",
                        cell: receiver.get_cell(),
                    },
                    GroupMember {
                        id: "c2s".into(),
                        kind: "worker",
                        cell: c2s.get_cell(),
                    },
                ])
            })
        }),
    }
}

fn kill_all(cells: &[ActorCell]) {
    for c in cells {
        c.kill();
    }
}
