//! XEP-0352: Client State Indication (version 1.0.0): an inactive
//! client's presence is held, latest per sender, until it is active again
//! or something else must go out.

use chorus_modules::{Module, ModuleInfo, StreamCtx, StreamFeature, Support, Xep};

use super::*;

/// XEP-0352 as a feature module: its declaration and stream feature; the
/// holding happens in the stream's state machine, below.
pub struct ClientStateIndication;

static CSI_INFO: ModuleInfo = ModuleInfo {
    name: "csi",
    file: file!(),
    xeps: &[Xep {
        number: 352,
        name: "Client State Indication",
        version: "1.0.0",
        support: Support::Complete,
        note: "Presence is held, latest per sender, while inactive.",
    }],
    stream_features: &[StreamFeature {
        name: "csi",
        ns: ns::CSI,
    }],
    ..ModuleInfo::EMPTY
};

impl Module for ClientStateIndication {
    fn info(&self) -> &'static ModuleInfo {
        &CSI_INFO
    }

    /// §3: offered once authenticated.
    fn stream_features(&self, ctx: &StreamCtx<'_>, out: &mut Vec<Element>) {
        if ctx.authenticated {
            out.push(Element::new("csi", ns::CSI));
        }
    }
}

/// Presences held for an inactive client before the queue is flushed
/// rather than grown (XEP-0352: bounded).
pub(super) const CSI_MAX_HELD: usize = 256;

/// XEP-0352 client state indication.
#[derive(Default)]
pub(super) struct Csi {
    /// The client said `<inactive/>`.
    pub(super) inactive: bool,
    /// Held presence, latest per sender, in arrival order.
    pub(super) held: Vec<(String, Element)>,
}

impl C2sState {
    /// XEP-0352 nonzas: `<active/>` and `<inactive/>` (§4).
    pub(super) fn on_csi(&mut self, el: &Element) {
        match el.name() {
            "inactive" => self.csi.inactive = true,
            "active" => {
                self.csi.inactive = false;
                self.flush_held();
            }
            _ => {}
        }
    }

    /// A stanza on its way to the client: presence is held while the client
    /// is inactive (§5), only the latest per sender; anything else goes at
    /// once (returned), after the held presence so that order is kept.
    pub(super) fn csi_hold(&mut self, stanza: Element) -> Option<Element> {
        if self.csi.inactive && stanza.name() == "presence" {
            let from = stanza.attr("from").unwrap_or_default().to_owned();
            if let Some(slot) = self.csi.held.iter_mut().find(|(f, _)| *f == from) {
                slot.1 = stanza;
            } else if self.csi.held.len() < CSI_MAX_HELD {
                self.csi.held.push((from, stanza));
                self.ctx
                    .metrics
                    .csi_held
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                // Bounded: past the cap, flush rather than grow.
                self.flush_held();
                return Some(stanza);
            }
            return None;
        }
        if !self.csi.held.is_empty() && stanza.name() != "presence" {
            self.flush_held();
        }
        Some(stanza)
    }

    pub(super) fn flush_held(&mut self) {
        let held = std::mem::take(&mut self.csi.held);
        self.ctx
            .metrics
            .csi_flushed
            .fetch_add(held.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for (_, p) in held {
            self.send_element(&p);
        }
    }
}
