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

use chorus_c2s::conn::{spawn_stream, StreamTransport};
use chorus_c2s::framing::{Framing, XmlStream};
use chorus_c2s::receiver::Input;
use chorus_c2s::socket::Writer;
use chorus_c2s::C2sContext;
use chorus_supervisor::{GroupMember, GroupSpec, StartCtx};
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
    let members = spawn_stream(
        &sctx,
        &ctx,
        StreamTransport {
            input: Input::Plain(r),
            writer: Writer::Plain(w),
            framing: framing.clone(),
            messages: false,
            slot: None,
            // Never used: the stream never answers Flow::StartTls.
            tls: None,
            significant: false,
        },
        "component",
        |socket| async {
            let (component, _) = Actor::spawn_linked(
                None,
                ComponentActor,
                ComponentArgs {
                    peer,
                    conn_id: id,
                    socket,
                    ctx: ctx.clone(),
                    framing,
                },
                sup,
            )
            .await?;
            Ok(component)
        },
    )
    .await?;
    // The stream monitors the transport from here on (a member that
    // already died is noticed by its status).
    members
        .owner
        .cast(ComponentMsg::Monitor(members.transport.to_vec()))
        .map_err(|_| ractor::SpawnErr::StartupFailed("component exited at start".into()))?;
    tracing::debug!(conn = id, "component connection started");
    Ok(members.group.finish())
}
