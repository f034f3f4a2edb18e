//! Stanzas routed to a session wait here, not in the c2s actor's mailbox.

use super::*;

/// Stanzas routed to a session and not yet taken by its c2s actor.
///
/// They wait here rather than in the actor's mailbox because a killed
/// ractor actor's mailbox is dropped unread: a message routed to a session
/// (`Outcome::Delivered`, so acknowledged to its sender under XEP-0198)
/// would vanish with it. `Drop` of the c2s state closes the inbox and
/// handles what it still holds as unacknowledged; a stanza offered to a
/// closed inbox comes back to the router, which routes it as if the
/// session had not been there (RFC 6121 §8.5.3.2). A routed stanza costs a
/// lock and, when the inbox was empty, one payload-less message to wake
/// the actor, which then takes everything at once.
#[derive(Default)]
pub struct Inbox(Mutex<InboxState>);

#[derive(Default)]
pub(super) struct InboxState {
    pub(super) items: VecDeque<Element>,
    pub(super) closed: bool,
}

impl Inbox {
    pub(super) fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a stanza: Ok(true) when the actor must be woken (the inbox
    /// was empty), Err with the stanza once the inbox is closed.
    pub(super) fn push(&self, stanza: Element) -> Result<bool, Element> {
        let mut st = self.lock();
        if st.closed {
            return Err(stanza);
        }
        st.items.push_back(stanza);
        Ok(st.items.len() == 1)
    }

    pub(super) fn take(&self) -> VecDeque<Element> {
        std::mem::take(&mut self.lock().items)
    }

    /// No more stanzas; returns those still queued.
    pub(super) fn close(&self) -> VecDeque<Element> {
        let mut st = self.lock();
        st.closed = true;
        std::mem::take(&mut st.items)
    }
}

/// Puts a stanza in a c2s actor's inbox, waking it if needed.
pub(super) fn forward(
    to: &ActorRef<C2sMsg>,
    inbox: &Inbox,
    stanza: Element,
) -> Result<(), Element> {
    if inbox.push(stanza)? {
        // If the actor is already gone, `Drop` of its state takes the
        // stanza from the inbox when it closes it.
        let _ = to.cast(C2sMsg::Routed);
    }
    Ok(())
}
