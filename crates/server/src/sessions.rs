//! The `sessions` actor: owner of the session table.
//!
//! The table itself is a shared `DashMap` created once per server and handed
//! to every restart of this actor, so that routing (which reads it from the
//! sender's actor, never through this mailbox) survives a `sessions` crash.
//! Until resource binding lands (the c2s issue) no session is ever
//! registered, so the table stays empty; the actor answers its size.

use std::sync::Arc;

use dashmap::DashMap;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// Bound sessions: full JID -> owning c2s actor id.
pub type SessionTable = Arc<DashMap<String, ractor::ActorId>>;

pub struct SessionsActor;

pub enum SessionsMsg {
    Count(RpcReplyPort<usize>),
}

impl Actor for SessionsActor {
    type Msg = SessionsMsg;
    type State = SessionTable;
    type Arguments = SessionTable;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        table: SessionTable,
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
            SessionsMsg::Count(reply) => {
                let _ = reply.send(table.len());
            }
        }
        Ok(())
    }
}
