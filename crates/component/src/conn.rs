//! The `component` listener kind: every accepted connection becomes a
//! group `conn-<id>` of three actors under its port's `conns`, as a client
//! connection does (`chorus_c2s::conn`), with the component's own stream
//! state machine in place of c2s:
//!
//! - `socket` (`chorus_c2s::socket`): the write half and the bounded
//!   outbound queue; what is routed to the component is queued here;
//! - `receiver` (`chorus_c2s::receiver`): the read half and the parser,
//!   with the same limits as a client's (pre-handshake, then post-auth);
//! - `component` ([`crate::stream`]): the handshake and the stanzas; the
//!   group's only significant member. It monitors the other two and stops
//!   when they go, which ends the group.
//!
//! No TLS: XEP-0114 has none, and components connect over loopback or a
//! private network (docs/OPERATIONS.md).

use std::sync::Arc;

use chorus_c2s::framing::{Framing, XmlStream};
use chorus_c2s::receiver::{Input, ReceiverActor, ReceiverArgs};
use chorus_c2s::socket::{OutboundGauge, SocketActor, SocketArgs, SocketHandle, Writer};
use chorus_c2s::C2sContext;
use chorus_supervisor::{GroupMember, GroupSpec, PartialGroup, StartCtx};
use ractor::Actor;
use tokio::net::TcpStream;

use crate::stream::{ComponentActor, ComponentArgs, ComponentMsg};

/// The `component` listener kind.
pub struct ComponentConnections {
    ctx: Arc<C2sContext>,
    framing: Arc<dyn Framing>,
}

impl ComponentConnections {
    pub fn new(ctx: Arc<C2sContext>) -> ComponentConnections {
        ComponentConnections {
            ctx,
            framing: Arc::new(XmlStream::component()),
        }
    }
}

impl chorus_listener::Connections for ComponentConnections {
    fn next_id(&self) -> u64 {
        self.ctx.next_conn_id()
    }

    fn group(&self, id: u64, stream: TcpStream) -> GroupSpec {
        let ctx = self.ctx.clone();
        let framing = self.framing.clone();
        GroupSpec::new(format!("conn-{id}"), move |sctx: StartCtx| async move {
            start_members(id, sctx, stream, framing, ctx).await
        })
    }
}

/// Spawns socket, component and receiver linked to the `conns`
/// supervisor, in dependency order, and lists them as socket, receiver,
/// component (the order of `chorus_c2s::conn::start_members`).
async fn start_members(
    id: u64,
    sctx: StartCtx,
    stream: TcpStream,
    framing: Arc<dyn Framing>,
    ctx: Arc<C2sContext>,
) -> Result<Vec<GroupMember>, ractor::SpawnErr> {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let (r, w) = stream.into_split();
    let sup = sctx.supervisor.clone();
    let gauge = Arc::new(OutboundGauge::new(
        ctx.config.limits.max_outbound_stanzas,
        ctx.config.limits.max_outbound_bytes,
    ));
    // Kills whatever was started if a later spawn fails.
    let mut started = PartialGroup::new();
    let (socket, _) = Actor::spawn_linked(
        None,
        SocketActor,
        SocketArgs {
            slot: None,
            writer: Writer::Plain(w),
            write_timeout: ctx.config.c2s.write_timeout(),
            gauge: gauge.clone(),
            framing: framing.clone(),
        },
        sup.clone(),
    )
    .await?;
    started.push_member(GroupMember::new("socket", "worker", socket.get_cell()).significant(false));
    let handle = SocketHandle::new(socket.clone(), gauge);
    let (component, _) = Actor::spawn_linked(
        None,
        ComponentActor,
        ComponentArgs {
            peer,
            conn_id: id,
            socket: handle,
            ctx: ctx.clone(),
            framing: framing.clone(),
        },
        sup.clone(),
    )
    .await?;
    let component_cell = component.get_cell();
    let socket_cell = socket.get_cell();
    let (receiver, _) = match Actor::spawn_linked(
        None,
        ReceiverActor::<ComponentMsg>::default(),
        ReceiverArgs {
            input: Input::Plain(r),
            owner: component.clone(),
            socket,
            limits: ctx.limits(),
            // Never used: the stream never answers Flow::StartTls.
            tls: None,
            handshake_timeout: ctx.config.handshake_timeout(),
            framing,
        },
        sup,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            component_cell.kill();
            return Err(e);
        }
    };
    // The stream monitors the transport from here on (a member that
    // already died is noticed by its status).
    if component
        .cast(ComponentMsg::Monitor(vec![
            socket_cell,
            receiver.get_cell(),
        ]))
        .is_err()
    {
        receiver.get_cell().kill();
        return Err(ractor::SpawnErr::StartupFailed(
            "component exited at start".into(),
        ));
    }
    started.push_member(
        GroupMember::new("receiver", "worker", receiver.get_cell()).significant(false),
    );
    started.push("component", "worker", component_cell);
    tracing::debug!(conn = id, "component connection started");
    Ok(started.finish())
}
