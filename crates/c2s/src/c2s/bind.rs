//! Resource binding (RFC 6120 §7), and what an authenticated, not yet
//! bound stream may do.

use super::*;

impl C2sState {
    pub(super) fn iq_result(&self, iq: &Element) -> Element {
        let mut r = Element::new("iq", ns::JABBER_CLIENT).with_attr("type", "result");
        if let Some(id) = iq.attr("id") {
            r.set_attr("id", id);
        }
        r
    }

    pub(super) fn iq_error(&self, iq: &Element, cond: StanzaErrorCondition) {
        if let Some(e) = error_reply(iq, &StanzaError::new(cond)) {
            self.send_element(&e);
        }
    }

    /// Authenticated, not yet bound: resource binding (§7) only, or a
    /// XEP-0198 resumption instead.
    pub(super) async fn on_unbound(&mut self, el: &Element) -> Flow {
        if el.ns() == ns::SM {
            match el.name() {
                "resume" => return self.resume(el).await,
                // §4: enabling comes after binding.
                "enable" => self.sm_failed("unexpected-request"),
                _ => {}
            }
            return Flow::Continue;
        }
        if !el.is("iq", ns::JABBER_CLIENT) {
            return self.stream_error(StreamError::NotAuthorized, Some("bind a resource first"));
        }
        if el.attr("id").is_none() {
            // RFC 6120 §8.2.3, as for bound streams (`on_stanza`).
            self.iq_error(el, StanzaErrorCondition::BadRequest);
            return Flow::Continue;
        }
        if let Some(bind) = el.get_child("bind", ns::BIND) {
            if IqType::of(el) != Some(IqType::Set) {
                self.iq_error(el, StanzaErrorCondition::BadRequest);
                return Flow::Continue;
            }
            self.bind(el, bind.get_child("resource", ns::BIND).map(|r| r.text()))
                .await;
            return Flow::Continue;
        }
        if el.get_child("session", ns::SESSION).is_some() {
            let r = self.iq_result(el);
            self.send_element(&r);
            return Flow::Continue;
        }
        self.iq_error(el, StanzaErrorCondition::NotAllowed);
        Flow::Continue
    }

    pub(super) async fn bind(&mut self, iq: &Element, requested: Option<String>) {
        match self.bind_resource(requested).await {
            Ok(full) => {
                let r = self.iq_result(iq).with_child(
                    Element::new("bind", ns::BIND)
                        .with_child(Element::new("jid", ns::BIND).with_text(full.to_string())),
                );
                self.send_element(&r);
            }
            Err(condition) => self.iq_error(iq, condition),
        }
    }

    /// Binds `requested` (or a generated resource) to this stream: RFC 6120
    /// §7 binding, and XEP-0386 Bind 2's.
    pub(super) async fn bind_resource(
        &mut self,
        requested: Option<String>,
    ) -> Result<FullJid, StanzaErrorCondition> {
        let Some(user) = self.user.clone() else {
            return Err(StanzaErrorCondition::NotAuthorized);
        };
        let requested = requested
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        let full = match requested {
            Some(r) => match user.with_resource(&r) {
                Ok(f) => f,
                // §7.7.2.1: a resource that cannot be prepared.
                Err(_) => return Err(StanzaErrorCondition::BadRequest),
            },
            // §7.6: the server generates one.
            None => match user.with_resource(&format!("chorus-{}", &random_token()[..12])) {
                Ok(f) => f,
                Err(_) => return Err(StanzaErrorCondition::InternalServerError),
            },
        };
        let session = Arc::new(Session::new(full.clone(), self.conn_id, self.sink()));
        let Some(sessions) = self.ctx.sessions_actor() else {
            return Err(StanzaErrorCondition::InternalServerError);
        };
        let registered = sessions
            .call(
                |reply| SessionsMsg::Register {
                    session: session.clone(),
                    max_resources: self.ctx.config.c2s.max_resources,
                    reply,
                },
                Some(std::time::Duration::from_secs(5)),
            )
            .await;
        match registered {
            Ok(ractor::rpc::CallResult::Success(Ok(()))) => {
                tracing::info!(conn = self.conn_id, jid = %full, "resource bound");
                self.ctx
                    .modules
                    .session_bound(&self.ctx.router, &full, self.conn_id);
                self.full = Some(full.clone());
                self.session = Some(session);
                Ok(full)
            }
            Ok(ractor::rpc::CallResult::Success(Err(_))) => {
                Err(StanzaErrorCondition::ResourceConstraint)
            }
            _ => Err(StanzaErrorCondition::InternalServerError),
        }
    }
}
