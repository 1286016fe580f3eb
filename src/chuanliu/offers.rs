//! What the flow could show a user on one page (its offers), and the
//! reserving of the best of them: the engine values each offer (its
//! stream's score times [`super::SceneFlow::lift`]) between the two.

use super::affinity::Trigger;
use super::brands::{Brand, Enrollment};
use super::{CapScope, Flow, FlowParams, Reservation, SceneMode, Secs};
use crate::domain::{Millis, Scene};
use compact_str::CompactString;
use std::sync::Arc;

/// A brand the flow could show on this page, before cap and budgets: an
/// affinity that triggers, to a brand in the flow whose own stream is live
/// and placeable in the scene.
pub struct Offer<'f> {
    pub(super) trigger: Trigger,
    /// The brand's name (what `target` was asked with).
    pub(super) name: CompactString,
    entry: Option<Arc<Brand>>,
    /// The brand's live self-broadcast stream.
    pub stream: &'f str,
    /// Its index among the query's candidates (`None`: not proposed, to
    /// inject). The engine sets it for a stream it injects.
    pub candidate: Option<usize>,
    /// The stream's score multiplier if reserved ([`SceneFlow::lift`] on
    /// this page; 1 until the engine sets it).
    pub lift: f64,
}

impl Offer<'_> {
    pub fn brand(&self) -> &str {
        &self.name
    }

    /// The affinity's decayed weight.
    pub fn weight(&self) -> f64 {
        self.trigger.weight
    }

    /// The brand's items per request of this user before this one
    /// ([`super::Affinity::taste`]).
    pub fn taste(&self) -> f64 {
        self.trigger.taste
    }
}

impl Flow {
    /// The user's affinities whose brand is in the flow and has a live
    /// self-broadcast stream the scene can show (`target` says which, and
    /// where it is among the candidates), under `cap` in this process's
    /// count; strongest first. Budgets are not looked at.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn offers_under<'f>(
        &'f self,
        params: &'f FlowParams,
        scene: Scene,
        user: &'f str,
        now: Millis,
        cap: u16,
        mut target: impl FnMut(&str) -> Option<(&'f str, Option<usize>)>,
        on_page: Option<&dyn Fn(&str) -> usize>,
    ) -> impl Iterator<Item = Offer<'f>> {
        let mode = params.scene(scene).mode;
        let acts = params.enabled && mode != SceneMode::Off && params.max_per_page > 0;
        // Every page of a user is taken into their tastes, as purchases make
        // affinities, whether or not the flow acts on it.
        let triggers = if acts || on_page.is_some() {
            let window = params.frequency_window_s;
            let mut observe =
                on_page.map(|items| move |brand: u32| items(&self.brands.name(brand)));
            let observe = observe.as_mut().map(|f| f as &mut dyn FnMut(u32) -> usize);
            let (affinity, secs) = (&params.affinity, Secs::from(now));
            let triggers = self
                .affinities
                .triggers(user, secs, affinity, cap, window, observe);
            if acts { triggers } else { Vec::new() }
        } else {
            Vec::new()
        };
        triggers.into_iter().filter_map(move |trigger| {
            let entry = self.registry.get(trigger.brand);
            let enrollment = entry.as_ref().map_or(Enrollment::Unset, |b| b.enrollment());
            if !enrollment.active(params.enroll_all_brands) {
                return None;
            }
            let name = self.brands.name(trigger.brand);
            let (stream, candidate) = target(&name)?;
            if candidate.is_none() && mode != SceneMode::Inject {
                return None;
            }
            Some(Offer {
                trigger,
                name,
                entry,
                stream,
                candidate,
                lift: 1.0,
            })
        })
    }

    /// What the flow could show `user` on this page (strongest affinity
    /// first), under the cap as this process counts it: the engine values
    /// each and [`Flow::reserve`]s the best. Nothing is taken yet, but
    /// every affinity of the user takes this page into its taste:
    /// `on_page` says how many of a brand's items the request proposed.
    #[allow(clippy::too_many_arguments)]
    pub fn offers<'f>(
        &'f self,
        params: &'f FlowParams,
        scene: Scene,
        user: &'f str,
        now: Millis,
        caps: CapScope<'f>,
        target: impl FnMut(&str) -> Option<(&'f str, Option<usize>)>,
        on_page: impl Fn(&str) -> usize,
    ) -> Vec<Offer<'f>> {
        let cap = caps.process_cap(params);
        self.offers_under(params, scene, user, now, cap, target, Some(&on_page))
            .filter(|o| caps.allows(o.trigger.brand))
            .collect()
    }

    /// Reserves flow streams for one page from `offers`, in the order
    /// given (the caller's best first): each under the cap (`caps` says
    /// whose counts) and within the budgets, at most `max_per_page`. The
    /// page counts as demand for the budgets that could pay for it, so
    /// their pacing learns when the flow has pages to act on.
    pub fn reserve<'f>(
        &'f self,
        params: &'f FlowParams,
        user: &'f str,
        now: Millis,
        caps: CapScope<'f>,
        offers: Vec<Offer<'f>>,
    ) -> Vec<Reservation<'f>> {
        if offers.is_empty() {
            return Vec::new();
        }
        self.budget.note_demand(&params.pacing, now);
        // A brand with a budget of its own has an entry (it was set).
        for entry in offers.iter().filter_map(|o| o.entry.as_ref()) {
            if entry.daily_impressions().is_some() {
                entry.pacer.note_demand(&params.pacing, now);
            }
        }
        let secs = Secs::from(now);
        let (cap, window) = (caps.process_cap(params), params.frequency_window_s);
        let mut out = Vec::new();
        for c in offers {
            if out.len() == params.max_per_page {
                break;
            }
            let brand = c.trigger.brand;
            let Some(taken) = self.affinities.take(user, brand, secs, cap, window) else {
                continue;
            };
            if !self
                .budget
                .try_spend(params.daily_impressions, &params.pacing, now)
            {
                self.affinities.give_back(user, brand, taken);
                break; // the day's allowance is used up for everyone
            }
            let entry = c.entry.unwrap_or_else(|| self.registry.entry(brand));
            let brand_budget = entry.daily_impressions();
            if let Some(daily) = brand_budget
                && !entry.pacer.try_spend(daily, &params.pacing, now)
            {
                self.affinities.give_back(user, brand, taken);
                self.budget.refund(&params.pacing, now);
                continue;
            }
            out.push(Reservation {
                flow: self,
                params,
                user,
                brand,
                entry,
                sources: c.trigger.sources,
                now,
                taken,
                brand_budget: brand_budget.is_some(),
                caps,
                stream: c.stream,
                candidate: c.candidate,
                weight: c.trigger.weight,
                lift: c.lift,
                ghost: c.trigger.holdout,
                committed: false,
            });
        }
        out
    }
}
