//! The `sessions` actor: registration and replacement, serialized.
//!
//! Binding goes through this mailbox so that the resource cap and conflict
//! replacement are decided one at a time; routing reads the table directly.
//! A restarted `sessions` actor is handed the same table, so nothing needs
//! rebuilding and nobody is disconnected.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::table::{Session, SessionTable};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The account already has the configured number of resources bound
    /// (RFC 6120 §7.6.2.1 `resource-constraint`).
    #[error("too many resources bound")]
    ResourceConstraint,
}

pub enum SessionsMsg {
    Register {
        session: Arc<Session>,
        max_resources: usize,
        reply: RpcReplyPort<Result<(), RegisterError>>,
    },
    Count(RpcReplyPort<usize>),
}

pub struct SessionsActor;

impl Actor for SessionsActor {
    type Msg = SessionsMsg;
    type State = Arc<SessionTable>;
    type Arguments = Arc<SessionTable>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        table: Arc<SessionTable>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(table)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        table: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionsMsg::Register {
                session,
                max_resources,
                reply,
            } => {
                let existing = table.resources(&session.full.bare());
                let replacing = existing.iter().any(|s| s.full == session.full);
                if !replacing && existing.len() >= max_resources {
                    let _ = reply.send(Err(RegisterError::ResourceConstraint));
                    return Ok(());
                }
                let full = session.full.clone();
                if let Some(old) = table.insert(session) {
                    tracing::info!(jid = %full, old_conn = old.conn_id, "resource conflict: replacing the old session");
                    old.sink.replaced();
                }
                let _ = reply.send(Ok(()));
            }
            SessionsMsg::Count(reply) => {
                let _ = reply.send(table.len());
            }
        }
        Ok(())
    }
}
