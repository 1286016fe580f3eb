//! A flow impression held for one page, settled when the page is placed.

use super::affinity::Taken;
use super::brands::Brand;
use super::{CapScope, Flow, FlowParams, Secs};
use crate::domain::Millis;
use std::sync::Arc;

/// A flow impression held for one brand on one page: the cap place and the
/// budget are taken; dropped without [`Reservation::commit`] (the item was
/// not placed), everything is given back.
pub struct Reservation<'f> {
    pub(super) flow: &'f Flow,
    pub(super) params: &'f FlowParams,
    pub(super) user: &'f str,
    pub(super) brand: u32,
    pub(super) entry: Arc<Brand>,
    pub(super) sources: [u32; 2],
    pub(super) now: Millis,
    pub(super) taken: Taken,
    pub(super) brand_budget: bool,
    pub(super) caps: CapScope<'f>,
    /// The brand's live self-broadcast stream, and its index among the
    /// query's candidates (`None`: not proposed, to inject).
    pub stream: &'f str,
    pub candidate: Option<usize>,
    /// The affinity's decayed weight when reserved.
    pub weight: f64,
    /// The stream's score multiplier on this page.
    pub lift: f64,
    /// For a holdout affinity: placed on a copy of the page, never shown.
    pub ghost: bool,
    pub(super) committed: bool,
}

impl Reservation<'_> {
    /// The impression was served (a ghost: would have been): count it and
    /// credit the influencers (a ghost: neither, its cap place and budget
    /// stay taken, as a real impression's would).
    pub fn commit(mut self) {
        self.committed = true;
        self.caps.mark_served(self.brand);
        if self.ghost {
            self.entry.holdout.lock().ghost.impressions += 1;
            return;
        }
        self.flow.totals.impression();
        self.entry.counts.impression();
        let now = Secs::from(self.now);
        for s in self.sources.iter().filter(|&&s| s != u32::MAX) {
            self.flow.rewards.credit(
                &self.flow.streamers.name(*s),
                self.params.reward.per_impression,
                now,
                &self.params.reward,
            );
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let pacing = &self.params.pacing;
        self.flow
            .affinities
            .give_back(self.user, self.brand, self.taken);
        self.flow.budget.refund(pacing, self.now);
        if self.brand_budget {
            self.entry.pacer.refund(pacing, self.now);
        }
    }
}
