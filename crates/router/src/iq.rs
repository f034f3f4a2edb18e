//! IQ requests the server (a feature module, a hosted service) sends and
//! whose answers it awaits (RFC 6120 §8.2.3: every `get` or `set` gets
//! exactly one `result` or `error` with the same id).
//!
//! [`Router::request`] registers the request's id with the JID it was sent
//! to, routes it, and waits for the answer or the timeout.
//! [`Router::route`] hands every IQ response it sees to [`Pending::complete`]
//! first: an answer matches only when both the id and the responder (its
//! `from`, the request's `to`) match, so a third party cannot answer for
//! someone else by guessing an id. Ids are random, so they cannot be
//! predicted either.

use std::time::Duration;

use chorus_jid::Jid;
use chorus_proto::IqType;
use chorus_xml::Element;
use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::route::{Outcome, Router};

/// Why an awaited request has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IqError {
    #[error("the request is not an IQ get or set with a 'to'")]
    NotARequest,
    #[error("no answer in time")]
    Timeout,
}

/// Requests awaiting their answer, by id.
#[derive(Default)]
pub(crate) struct Pending {
    waiting: DashMap<String, (Jid, oneshot::Sender<Element>)>,
}

impl Pending {
    /// Hands an IQ response to its waiting request, if any: true when it
    /// was one of ours (and must not be routed further).
    pub(crate) fn complete(&self, response: Element) -> Result<(), Element> {
        if self.waiting.is_empty() {
            return Err(response);
        }
        let (Some(id), Some(from)) = (
            response.attr("id"),
            response.attr("from").and_then(|f| f.parse::<Jid>().ok()),
        ) else {
            return Err(response);
        };
        match self.waiting.remove_if(id, |_, (to, _)| *to == from) {
            Some((_, (_, tx))) => {
                // The requester may have timed out in between: nothing to do.
                let _ = tx.send(response);
                Ok(())
            }
            None => Err(response),
        }
    }
}

/// A random IQ id: unpredictable, so nobody answers for another entity.
fn new_id() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        // No randomness: still unique within this process.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        return format!(
            "chorus-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Router {
    /// Sends an IQ `get` or `set` and waits up to `timeout` for its
    /// answer: a `result` or an `error` IQ, the router's own error when it
    /// cannot deliver the request.
    ///
    /// Never await this in the task that routes the recipient's stanzas
    /// (inside a `Service::handle` or module handler called for a stanza
    /// of that recipient): the answer would wait behind the call that
    /// waits for it. Spawn a task or hand it to the service's actor. The id is replaced by a
    /// random one; `from` must already be set (the server's domain, a
    /// service's, or an account's bare JID when the server acts for it).
    pub async fn request(&self, mut iq: Element, timeout: Duration) -> Result<Element, IqError> {
        if !IqType::of(&iq).is_some_and(IqType::is_request) {
            return Err(IqError::NotARequest);
        }
        let to: Jid = iq
            .attr("to")
            .and_then(|t| t.parse().ok())
            .ok_or(IqError::NotARequest)?;
        let id = new_id();
        iq.set_attr("id", id.as_str());
        let (tx, rx) = oneshot::channel();
        self.pending.waiting.insert(id.clone(), (to, tx));
        if let Outcome::Reply(answer) = self.route(iq).await {
            // Answered on the spot: an error from the router (no such
            // recipient, blocked...) or the local server's own answer.
            self.pending.waiting.remove(&id);
            return Ok(answer);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => {
                self.pending.waiting.remove(&id);
                Err(IqError::Timeout)
            }
        }
    }
}
