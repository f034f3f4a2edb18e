//! XEP-0198: Stream Management (version 1.6.2): acknowledgements, the
//! unacknowledged queue, detachment when the connection drops, and
//! resumption on a new connection.

use chorus_modules::{Module, ModuleInfo, StreamCtx, StreamFeature, Support, Xep};

use super::*;

/// XEP-0198 as a feature module: its declaration and stream feature. The
/// protocol itself lives below, in the stream's state machine, which owns
/// the connection it manages.
pub struct StreamManagement;

static SM_INFO: ModuleInfo = ModuleInfo {
    name: "sm",
    file: file!(),
    xeps: &[Xep {
        number: 198,
        name: "Stream Management",
        version: "1.6.2",
        support: Support::Complete,
        note: "Acks and resumption; no location hint for resumption on another host.",
    }],
    stream_features: &[StreamFeature {
        name: "sm",
        ns: ns::SM,
    }],
    ..ModuleInfo::EMPTY
};

impl Module for StreamManagement {
    fn info(&self) -> &'static ModuleInfo {
        &SM_INFO
    }

    /// §3: offered once authenticated (enable after bind, or resume).
    fn stream_features(&self, ctx: &StreamCtx<'_>, out: &mut Vec<Element>) {
        if ctx.authenticated {
            out.push(Element::new("sm", ns::SM));
        }
    }
}

/// XEP-0198: the server asks for an ack (`<r/>`) after this many stanzas.
pub(super) const SM_REQUEST_EVERY: u32 = 5;

/// A session taken over by `<resume/>`, to finish.
pub(super) struct Resumption {
    /// `<resumed/>`.
    pub(super) element: Element,
    /// What the client had not acknowledged, to send again.
    pub(super) resend: Vec<Element>,
    /// The client acknowledged more than it was sent: (h, sent).
    pub(super) too_high: Option<(u32, u32)>,
}

/// XEP-0198 state of a session that enabled stream management.
pub(super) struct Sm {
    /// The resumption id; None when resumption was not asked for.
    pub(super) id: Option<String>,
    /// How long the session waits, detached, for a resumption.
    pub(super) timeout: std::time::Duration,
    /// Stanzas received from the client (the `h` we report).
    pub(super) handled: u32,
    /// Stanzas sent to the client, modulo 2^32.
    pub(super) sent: u32,
    /// Sent and not yet acknowledged, oldest first: the last
    /// `unacked.len()` of `sent`.
    pub(super) unacked: VecDeque<Element>,
    /// Stanzas sent since our last `<r/>`.
    pub(super) since_request: u32,
    /// A timer will ask for an acknowledgement of what waits unacked.
    pub(super) request_armed: bool,
    /// The queue went past its bound: the stream ends (resource-constraint).
    pub(super) overflowed: bool,
}

impl Sm {
    /// Applies the client's `h`; Err when it acknowledges more than was sent.
    pub(super) fn ack(&mut self, h: u32) -> Result<(), ()> {
        let ahead = h.wrapping_sub(self.sent);
        if ahead != 0 && ahead < 1 << 31 {
            return Err(());
        }
        let behind = self.sent.wrapping_sub(h) as usize;
        if behind < self.unacked.len() {
            let acked = self.unacked.len() - behind;
            self.unacked.drain(..acked);
        }
        Ok(())
    }
}

/// A resumable session, by its id (XEP-0198).
#[derive(Clone)]
pub(crate) struct SmEntry {
    pub(super) user: BareJid,
    pub(super) c2s: ActorRef<C2sMsg>,
}

/// What a detached (or superseded) session hands to the connection that
/// resumes it.
pub struct Handover {
    pub(super) full: FullJid,
    pub(super) sm: Sm,
    pub(super) directed: std::collections::HashSet<String>,
    pub(super) csi: Csi,
}

impl C2sState {
    pub(super) fn sm_lock(&self) -> MutexGuard<'_, Option<Sm>> {
        // Nothing under the lock can panic half-way through a change.
        self.sm.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a dropped connection leaves this session detached rather
    /// than ending it (XEP-0198 resumption enabled, stream not closed).
    pub(super) fn resumable(&self) -> bool {
        !self.closing
            && self.moved_to.is_none()
            && self.full.is_some()
            && self.sm_lock().as_ref().is_some_and(|s| s.id.is_some())
    }

    /// The socket or the receiver is gone (peer closed, I/O error, killed):
    /// detach a resumable session, end any other.
    pub(super) fn transport_down(&mut self) {
        if self.detached || self.moved_to.is_some() {
            return;
        }
        if self.socket.gauge().overflowed() {
            // The peer got a stream error: the session is over.
            self.closing = true;
        }
        if self.resumable() {
            self.detach();
        } else {
            self.closing = true;
            self.socket.close();
            self.end();
        }
    }

    /// XEP-0198 §5: the connection is gone, the session stays, routed to
    /// and queueing, until it is resumed or the timeout passes.
    pub(super) fn detach(&mut self) {
        let timeout = self
            .sm_lock()
            .as_ref()
            .map_or(self.ctx.config.c2s.sm_resume_timeout(), |s| s.timeout);
        // What is still queued at the socket may yet reach the peer; the
        // receiver waits in a read, which only a kill interrupts.
        self.socket.close();
        let socket = self.socket.actor().get_id();
        for member in &self.transport {
            if member.get_id() != socket {
                member.kill();
            }
        }
        self.detached = true;
        self.detach_epoch += 1;
        if let Some(s) = &self.session {
            s.set_detached(true);
        }
        let epoch = self.detach_epoch;
        self.myself
            .send_after(timeout, move || C2sMsg::ResumeTimeout(epoch));
        tracing::info!(conn = self.conn_id, jid = ?self.full.as_ref().map(|j| j.to_string()), ?timeout, "session detached; waiting for resumption");
    }

    /// A routed stanza that arrives once the stream is closing: kept for
    /// offline storage when stream management tracks it.
    pub(super) fn keep_unacked(&self, stanza: Element) {
        if let Some(sm) = self.sm_lock().as_mut() {
            sm.unacked.push_back(stanza);
            sm.sent = sm.sent.wrapping_add(1);
        }
    }

    /// The unacknowledged queue went past its bound: `resource-constraint`.
    pub(super) fn check_overflow(&mut self) -> Option<Flow> {
        let overflowed = self.sm_lock().as_ref().is_some_and(|s| s.overflowed);
        if overflowed && !self.closing {
            return Some(self.stream_error(
                StreamError::ResourceConstraint,
                Some("too many unacknowledged stanzas"),
            ));
        }
        None
    }

    /// XEP-0198 `<failed/>` with a stanza error condition.
    pub(super) fn sm_failed(&self, condition: &str) {
        self.write_element(
            &Element::new("failed", ns::SM).with_child(Element::new(condition, ns::STANZAS)),
        );
    }

    /// XEP-0198 nonzas of a bound stream: enable, r, a.
    pub(super) fn on_sm(&mut self, el: &Element) -> Flow {
        match el.name() {
            "enable" => {
                let answer = self.sm_enable(el);
                self.write_element(&answer);
            }
            "r" => {
                let h = self.sm_lock().as_ref().map(|s| s.handled);
                if let Some(h) = h {
                    self.write_element(&Element::new("a", ns::SM).with_attr("h", h.to_string()));
                }
            }
            "a" => {
                let Some(h) = el.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
                    return self
                        .stream_error(StreamError::InvalidXml, Some("<a/> without a valid h"));
                };
                return self.client_ack(h);
            }
            "resume" => self.sm_failed("unexpected-request"),
            _ => {}
        }
        Flow::Continue
    }

    /// XEP-0198 §3 `<enable/>`: the `<enabled/>` (or `<failed/>`) answer,
    /// which Bind 2 puts in its `<bound/>` (XEP-0386 §2.2).
    pub(super) fn sm_enable(&mut self, el: &Element) -> Element {
        if self.sm_lock().is_some() {
            return Element::new("failed", ns::SM)
                .with_child(Element::new("unexpected-request", ns::STANZAS));
        }

        let resume = matches!(el.attr("resume"), Some("true" | "1"));
        let timeout = el
            .attr("max")
            .and_then(|m| m.parse::<u64>().ok())
            .filter(|&m| m > 0)
            .map_or(
                self.ctx.config.c2s.sm_resume_timeout(),
                std::time::Duration::from_secs,
            )
            .min(self.ctx.config.c2s.sm_max_resume_timeout());
        let id = resume.then(random_token);
        let mut enabled = Element::new("enabled", ns::SM);
        if let (Some(id), Some(user)) = (&id, &self.user) {
            self.ctx.sm_sessions.insert(
                id.clone(),
                SmEntry {
                    user: user.clone(),
                    c2s: self.myself.clone(),
                },
            );
            enabled.set_attr("id", id.as_str());
            enabled.set_attr("resume", "true");
            enabled.set_attr("max", timeout.as_secs().to_string());
        }
        *self.sm_lock() = Some(Sm {
            id,
            timeout,
            handled: 0,
            sent: 0,
            unacked: VecDeque::new(),
            since_request: 0,
            request_armed: false,
            overflowed: false,
        });
        tracing::debug!(conn = self.conn_id, resume, "stream management enabled");
        enabled
    }

    /// The client acknowledged `h` stanzas (XEP-0198 §4); more than we sent
    /// ends the stream (§4, handled-count-too-high).
    pub(super) fn client_ack(&mut self, h: u32) -> Flow {
        let too_high = {
            let mut guard = self.sm_lock();
            match guard.as_mut() {
                Some(sm) => sm.ack(h).err().map(|()| sm.sent),
                None => None,
            }
        };
        match too_high {
            None => {
                // A close waiting for this acknowledgement goes ahead.
                let all_acked = self.sm_lock().as_ref().is_none_or(|s| s.unacked.is_empty());
                if all_acked {
                    if let Some((err, text)) = self.pending_close.take() {
                        return self.close_now(err, text);
                    }
                }
                Flow::Continue
            }
            Some(sent) => self.stream_error_with(
                StreamError::UndefinedCondition,
                Some("acknowledged more stanzas than were sent"),
                Some(
                    Element::new("handled-count-too-high", ns::SM)
                        .with_attr("h", h.to_string())
                        .with_attr("send-count", sent.to_string()),
                ),
            ),
        }
    }

    /// XEP-0198 §5: takes over a detached (or stale) session of the same
    /// account, then resends what its client did not acknowledge.
    pub(super) async fn resume(&mut self, el: &Element) -> Flow {
        match self.take_over(el).await {
            Ok(r) => self.resumed(r, true),
            Err(condition) => {
                self.sm_failed(condition);
                Flow::Continue
            }
        }
    }

    /// Finishes a resumption: `<resumed/>` unless the caller sent it
    /// inside its own answer (XEP-0388 `<success/>`), then what the client
    /// did not acknowledge.
    pub(super) fn resumed(&mut self, r: Resumption, send_resumed: bool) -> Flow {
        if let Some((h, sent)) = r.too_high {
            return self.stream_error_with(
                StreamError::UndefinedCondition,
                Some("acknowledged more stanzas than were sent"),
                Some(
                    Element::new("handled-count-too-high", ns::SM)
                        .with_attr("h", h.to_string())
                        .with_attr("send-count", sent.to_string()),
                ),
            );
        }
        if send_resumed {
            self.write_element(&r.element);
        }
        let any = !r.resend.is_empty();
        for stanza in &r.resend {
            self.write_element(stanza);
        }
        if any {
            self.send(b"<r xmlns='urn:xmpp:sm:3'/>".to_vec());
        }
        Flow::Continue
    }

    /// Takes the session `<resume/>` names over, or says why not (the
    /// condition of `<failed/>`).
    pub(super) async fn take_over(&mut self, el: &Element) -> Result<Resumption, &'static str> {
        let Some(user) = self.user.clone() else {
            return Err("unexpected-request");
        };
        let Some(h) = el.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
            return Err("bad-request");
        };
        let previd = el.attr("previd").unwrap_or_default().to_owned();
        let entry = self
            .ctx
            .sm_sessions
            .get(&previd)
            .map(|e| e.clone())
            .filter(|e| e.user == user);
        let Some(entry) = entry else {
            tracing::info!(conn = self.conn_id, jid = %user, "resumption of an unknown session");
            return Err("item-not-found");
        };
        let taken = entry
            .c2s
            .call(
                |reply| C2sMsg::Takeover {
                    user: user.clone(),
                    to: Box::new((self.myself.clone(), self.inbox.clone())),
                    conn_id: self.conn_id,
                    reply,
                },
                Some(std::time::Duration::from_secs(5)),
            )
            .await;
        let Ok(ractor::rpc::CallResult::Success(Some(handover))) = taken else {
            return Err("item-not-found");
        };
        let Handover {
            full,
            mut sm,
            directed,
            csi,
        } = *handover;
        self.ctx.sm_sessions.insert(
            previd.clone(),
            SmEntry {
                user,
                c2s: self.myself.clone(),
            },
        );
        tracing::info!(conn = self.conn_id, jid = %full, unacked = sm.unacked.len(), "session resumed");
        self.session = self
            .ctx
            .router
            .sessions
            .get(&full)
            .filter(|s| s.conn_id == self.conn_id);
        self.full = Some(full);
        self.directed = directed;
        self.csi = csi;
        let too_high = sm.ack(h).is_err().then_some((h, sm.sent));
        let handled = sm.handled;
        let resend: Vec<Element> = sm.unacked.iter().cloned().collect();
        sm.since_request = 0;
        *self.sm_lock() = Some(sm);
        Ok(Resumption {
            element: Element::new("resumed", ns::SM)
                .with_attr("previd", previd)
                .with_attr("h", handled.to_string()),
            resend,
            too_high,
        })
    }

    /// The resuming connection's c2s asks for this session (XEP-0198 §5).
    /// The session table entry moves to it, this actor forwards what still
    /// reaches it and stops, which ends this connection's group.
    pub(super) fn hand_over(
        &mut self,
        user: &BareJid,
        to: (ActorRef<C2sMsg>, Arc<Inbox>),
        conn_id: u64,
    ) -> Option<Box<Handover>> {
        if self.closing || self.moved_to.is_some() {
            return None;
        }
        let full = self.full.clone().filter(|f| f.bare() == *user)?;
        if !self.resumable() {
            return None;
        }
        let old = self
            .ctx
            .router
            .sessions
            .get(&full)
            .filter(|s| s.conn_id == self.conn_id)?;
        let sink = Box::new(Sink {
            c2s: to.0.clone(),
            inbox: to.1.clone(),
        });
        let session = Arc::new(old.moved(conn_id, sink));
        if !self.ctx.router.sessions.swap(session, self.conn_id) {
            return None;
        }
        let sm = self.sm_lock().take()?;
        // Nothing of the session is left here for Drop to clean up.
        self.full = None;
        self.session = None;
        self.moved_to = Some(to);
        tracing::info!(conn = self.conn_id, jid = %full, to_conn = conn_id, "session handed over for resumption");
        Some(Box::new(Handover {
            full,
            sm,
            directed: std::mem::take(&mut self.directed),
            csi: std::mem::take(&mut self.csi),
        }))
    }

    /// Stanzas have waited unacknowledged for `c2s.sm_request_ack_after_ms`
    /// since the timer was armed: ask for an acknowledgement, unless one
    /// asked since covers them.
    pub(super) fn ack_request_due(&mut self) {
        let request = match self.sm_lock().as_mut() {
            Some(sm) => {
                sm.request_armed = false;
                let due = !sm.unacked.is_empty() && sm.since_request > 0;
                if due {
                    sm.since_request = 0;
                }
                due
            }
            None => false,
        };
        if request && !self.closing {
            self.send(b"<r xmlns='urn:xmpp:sm:3'/>".to_vec());
        }
    }

    /// A close the server decides on its own (shutdown, kick, conflict,
    /// account removed): with stream management, what the client has not
    /// acknowledged is first asked for (`<r/>`) and the close waits up to
    /// `c2s.sm_close_ack_wait_ms` for the answer, so a client that got its
    /// messages is not sent them again at its next login. Without stream
    /// management, or with nothing unacknowledged, it closes at once.
    pub(super) fn close_after_ack(&mut self, err: StreamError, text: Option<String>) {
        let waiting = !self.closing
            && !self.detached
            && self.pending_close.is_none()
            && self
                .sm_lock()
                .as_ref()
                .is_some_and(|s| !s.unacked.is_empty());
        let wait = self.ctx.config.c2s.sm_close_ack_wait();
        if !waiting || wait.is_zero() {
            self.close_now(err, text);
            return;
        }
        if let Some(sm) = self.sm_lock().as_mut() {
            sm.since_request = 0;
        }
        self.send(b"<r xmlns='urn:xmpp:sm:3'/>".to_vec());
        self.pending_close = Some((err, text));
        self.myself.send_after(wait, || C2sMsg::CloseNow);
    }

    /// Closes with `err` now: the last `<a/>`, then the stream error.
    pub(super) fn close_now(&mut self, err: StreamError, text: Option<String>) -> Flow {
        if !self.closing {
            self.last_ack();
        }
        self.stream_error(err, text.as_deref())
    }

    /// XEP-0198 (since 1.5.2): the last `<a/>` goes out before our end of
    /// the stream, so the client knows what it sent was handled.
    pub(super) fn last_ack(&self) {
        let h = self.sm_lock().as_ref().map(|s| s.handled);
        if let Some(h) = h {
            self.write_element(&Element::new("a", ns::SM).with_attr("h", h.to_string()));
        }
    }

    /// The resuming c2s gave up waiting for the handover (or is gone): the
    /// session stays here, and the table entry comes back if it can.
    pub(super) fn take_back(&mut self, handover: Handover, conn_id: u64) {
        let Handover {
            full,
            sm,
            directed,
            csi,
        } = handover;
        let moved = self
            .ctx
            .router
            .sessions
            .get(&full)
            .filter(|s| s.conn_id == conn_id);
        if let Some(s) = moved {
            let back = Arc::new(s.moved(self.conn_id, self.sink()));
            back.set_detached(self.detached);
            if self.ctx.router.sessions.swap(back.clone(), conn_id) {
                self.session = Some(back);
            }
        }
        tracing::warn!(conn = self.conn_id, jid = %full, "resumption abandoned by the new connection; the session stays");
        self.full = Some(full);
        *self.sm_lock() = Some(sm);
        self.directed = directed;
        self.csi = csi;
        self.moved_to = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(sent: u32, unacked: usize) -> Sm {
        Sm {
            id: None,
            timeout: std::time::Duration::from_secs(1),
            handled: 0,
            sent,
            unacked: (0..unacked)
                .map(|i| Element::new("message", ns::JABBER_CLIENT).with_attr("id", i.to_string()))
                .collect(),
            since_request: 0,
            request_armed: false,
            overflowed: false,
        }
    }

    #[test]
    fn acks_drop_what_they_cover_and_refuse_more_than_was_sent() {
        let mut s = sm(10, 4);
        assert!(s.ack(8).is_ok());
        assert_eq!(s.unacked.len(), 2);
        assert_eq!(s.unacked[0].attr("id"), Some("2"));
        // A stale ack changes nothing.
        assert!(s.ack(7).is_ok());
        assert_eq!(s.unacked.len(), 2);
        assert!(s.ack(11).is_err());
        assert!(s.ack(10).is_ok());
        assert!(s.unacked.is_empty());
    }

    #[test]
    fn acks_count_modulo_two_to_the_32() {
        // Three stanzas sent across the wrap: u32::MAX, 0, 1.
        let mut s = sm(1, 3);
        assert!(s.ack(u32::MAX).is_ok());
        assert_eq!(s.unacked.len(), 2);
        assert!(s.ack(0).is_ok());
        assert_eq!(s.unacked.len(), 1);
        assert!(s.ack(2).is_err());
        assert!(s.ack(1).is_ok());
        assert!(s.unacked.is_empty());
    }
}
