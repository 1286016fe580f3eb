//! Amortized exposure control: per-tier prices that steer realized exposure
//! shares toward targets, and per-streamer diminishing returns that spread
//! exposure inside each tier without moving the tiers' shares.
//!
//! - **Tier prices** (the Lagrangian's own form). Maximizing a page's value
//!   `sum_i w_i * s_i` subject to tier shares of exposure is, through its
//!   Lagrangian, maximizing `sum_i w_i * (s_i + nu_t(i))` with a price `nu_t`
//!   per tier: the price buys exposure, so it is paid per unit of the slot's
//!   position weight `w_i`. The item term `s_i + nu_t` separates from the
//!   slot weight, so with decreasing weights greedy order by `s + nu_t` is
//!   the exact per-page optimum (rearrangement inequality); with floors and
//!   the page cap the same greedy, EDF-forced, is used, as by the hindsight
//!   solver it is measured against. Prices are kept in units of the running
//!   mean served score `S` (`nu_t = p_t * S`), so one step size fits any
//!   score scale, and updated after every page with exposure `W`, of which
//!   tier `t` got `E_t`, as a dual subgradient step on that page's miss:
//!   `p_t <- clip(p_t + step * (target_t * W - E_t) / W_mean, -P, P)`
//!   (`W_mean`: running mean page exposure; `P`: `max_price`). Stability:
//!   a price moves by at most `step` (mean scores) per page-sized miss, and
//!   the misses summed over any stretch of pages equal the change in `p`
//!   over it divided by `step`, at most `2 P / step` pages' exposure
//!   whatever the traffic; the step must stay small against the score gap
//!   between a tier's marginal candidates and the next tier's (in mean
//!   scores) for the price to settle instead of flipping whole pages
//!   between tiers (0.15 settles on the simulator's traffic and on the
//!   head-heavy input; docs/quotas.md).
//! - **Within-tier spreading**, in the same additive form: a streamer whose
//!   recent exposure is `e`, in a tier whose tracked streamers have `m` on
//!   average, is ordered inside its tier by `score - strength * S * e / m`:
//!   the marginal cost of the penalty `strength * S / 2 * sum_s e_s^2 / m_t`,
//!   the within-tier concentration penalty the hindsight frontier is solved
//!   for (`sim::hindsight`), so the online policy is that problem's
//!   primal-dual step, as the tier prices are the targets'. Which slots each
//!   tier holds is decided before spreading (by `s + nu_t`), and spreading
//!   only chooses which of the tier's candidates fill them, so no spreading
//!   strength can move a tier's share.
//! - **Share cap**: a streamer holding `max_streamer_share` of the same
//!   window's total exposure is skipped until its share decays below it.
//!
//! Every window that steers ranking is counted in pages served under quotas,
//! not in seconds, so one setting behaves the same at 0.1 and 10 requests a
//! second (per shard, at night, in replay). The realized tier shares
//! reported to monitoring are over a window in time (`tier_half_life_ms`),
//! which ranking never reads.
//!
//! The state is the caller's: one per server process (controllers on
//! replicas converge independently, so quotas scale out without
//! coordination) or one per replay shard. It carries over config reloads.

mod roster;

use super::{Item, MTable, Placement, Ranked, Streamers, fill, refill};
use crate::domain::{Millis, Tier};
use parking_lot::Mutex;
use roster::Roster;
use serde::Serialize;
use std::borrow::Cow;

/// The controller's settings (validated config).
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureParams {
    /// Target share of exposure per tier; `None` turns the tier controller off.
    pub targets: Option<[f64; 3]>,
    /// Half-life of the realized shares reported (monitoring only).
    pub tier_half_life_ms: f64,
    pub step: f64,
    /// Bound on each tier's price, in mean served scores: within [-P, P].
    pub max_price: f64,
    /// Mean served scores a streamer at its tier's mean exposure pays; 0
    /// turns spreading off.
    pub spread_strength: f64,
    /// Half-life of a streamer's recent exposure, in pages.
    pub spread_half_life_pages: f64,
    /// Streamers remembered at most; the least exposed are forgotten first.
    pub max_streamers: usize,
    /// Most share of the window's exposure one streamer may hold; 0: no cap.
    pub max_streamer_share: f64,
}

/// What a snapshot reads out (admin and metrics).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControllerView {
    /// Each tier's price in mean served scores (0 with targets off).
    pub prices: [f64; 3],
    /// The mean served score the prices are in units of.
    pub score_unit: f64,
    pub realized_shares: [f64; 3],
    pub targets: Option<[f64; 3]>,
    pub tracked_streamers: usize,
    /// Gini of recent exposure across the streamers tracked.
    pub gini: f64,
    /// Share of recent exposure held by the top 1% of tracked streamers.
    pub top1: f64,
}

/// How stored exposures decay: by half every `half_life` pages from page
/// `origin`, where the stored values are the exposures themselves.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    origin: f64,
    half_life: f64,
}

/// Half-lives after which the stored values are rebased to a new origin,
/// long before their scale (2^this) strains an f64.
const REBASE_HALF_LIVES: f64 = 32.0;

impl Window {
    fn factor(&self, pages: f64) -> f64 {
        if self.half_life <= 0.0 {
            return 0.0;
        }
        (-(pages - self.origin) / self.half_life).exp2()
    }
}

#[derive(Debug, Default, Clone)]
struct Inner {
    /// Tier prices in units of `score_mean`.
    price: [f64; 3],
    /// Running mean of a page's exposure-weighted mean score.
    score_mean: f64,
    /// Running mean of a page's total exposure: the unit of a step.
    page_mean: f64,
    /// Realized exposure per tier over the monitoring window, as of `updated`.
    exposure: [f64; 3],
    updated: Option<Millis>,
    /// The page clock: pages observed so far.
    pages: f64,
    streamers: Roster,
    window: Window,
    /// Totals over the streamers' window as of `pages`: all exposure, and per
    /// tier the tracked streamers' sum of exposure and their count.
    streamer_total: f64,
    tier_mass: [f64; 3],
    tier_members: [usize; 3],
    /// Reads by [`ExposureState::control`] that probed the streamers: one
    /// stamp per page, so a stamp never repeats.
    reads: u64,
}

/// Weight of the latest page in the running means.
const PAGE_MEAN_WEIGHT: f64 = 0.01;

/// Exposure state shared by the requests of one process (or replay shard).
#[derive(Debug, Default)]
pub struct ExposureState {
    inner: Mutex<Inner>,
}

/// One served slot, as the controller records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Served<'a> {
    pub tier: Tier,
    pub streamer: Option<&'a str>,
    pub exposure: f64,
    /// The score before exposure control.
    pub score: f64,
}

/// `value` decayed over `elapsed` (any unit) at `half_life` (same unit).
fn decay(value: f64, elapsed: f64, half_life: f64) -> f64 {
    if half_life <= 0.0 {
        return 0.0;
    }
    value * (-elapsed.max(0.0) / half_life * std::f64::consts::LN_2).exp()
}

/// Exposure control for one page, read from the state at one instant: what
/// [`Control::place`] fills the page by.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Added to the scores of each tier's candidates, in score units.
    price: [f64; 3],
    /// Candidates the share cap refuses (empty: the cap is not in force).
    capped: Vec<bool>,
    /// Each candidate's spreading penalty in score units (empty: spreading
    /// is off).
    spread: Vec<f64>,
    /// The candidates' streamers, numbered by the same probe that read
    /// their exposure (`None`: no probe, spreading and the cap are off).
    numbered: Option<Streamers>,
}

impl Control {
    /// No control: pages in plain score order under floors and cap.
    pub fn none() -> Control {
        Control::default()
    }

    /// Each tier's price, in score units.
    pub fn prices(&self) -> [f64; 3] {
        self.price
    }

    /// How much the tier price lifts a candidate: its ranking key over its
    /// score (1 for a score that is not positive).
    pub fn lift(&self, item: &Item) -> f64 {
        if item.score > 0.0 {
            (item.score + self.price[item.tier.index()]) / item.score
        } else {
            1.0
        }
    }

    /// Whether the share cap refuses candidate `i`.
    pub fn refuses(&self, i: usize) -> bool {
        self.capped.get(i).copied().unwrap_or(false)
    }

    /// The streamers of the items this control was read for, numbered by
    /// the read's own probe ([`Streamers::number`]'s grouping); `None` when
    /// spreading and the cap are off and nothing was probed.
    pub fn numbered(&self) -> Option<&Streamers> {
        self.numbered.as_ref()
    }

    /// [`Control::numbered`], or `number()` when the read probed nothing.
    pub fn numbered_or(&self, number: impl FnOnce() -> Streamers) -> Cow<'_, Streamers> {
        self.numbered
            .as_ref()
            .map_or_else(|| Cow::Owned(number()), Cow::Borrowed)
    }

    /// Fills up to `slots` slots from `items` (scores before control; the
    /// items this control was read for, or items naming the same streamer
    /// at every index): the slots each tier holds are chosen by score plus
    /// tier price, under the floors and the cap; each tier's slots are then
    /// filled in its spreading order. A slot spreading filled with a
    /// lower-scored item than the price order would have is marked
    /// `lifted`.
    pub fn place(
        &self,
        items: &[Item],
        slots: usize,
        table: &MTable,
        max_per_streamer: u32,
    ) -> Vec<Placement> {
        let streamers = self.numbered_or(|| Streamers::number(items, max_per_streamer));
        self.place_numbered(items, slots, table, max_per_streamer, &streamers)
    }

    /// [`Control::place`] with the streamers already numbered (by
    /// [`Streamers::number`] or [`Streamers::number_interned`] on the same
    /// items and cap): the engine numbers them by catalog record, once for
    /// every page it fills from one request.
    pub fn place_numbered(
        &self,
        items: &[Item],
        slots: usize,
        table: &MTable,
        max_per_streamer: u32,
        streamers: &Streamers,
    ) -> Vec<Placement> {
        let queued = |i: usize, it: &Item| it.eligible && !self.refuses(i);
        let key = |it: &Item| it.score + self.price[it.tier.index()];
        if self.spread.is_empty() {
            let queues = Ranked::tiers(items, |i| queued(i, &items[i]).then(|| key(&items[i])));
            return fill(queues, slots, table, max_per_streamer, streamers);
        }
        // Both orders' queues in one pass, the keys computed where they are
        // queued rather than copied into items of their own first.
        let keys = (items.iter().zip(&self.spread).enumerate())
            .filter(|&(i, (it, _))| queued(i, it))
            .map(|(i, (it, penalty))| (i, it.tier, key(it), it.score - penalty));
        let (by_key, by_order) = Ranked::tiers_twice(items.len(), keys);
        let page = fill(by_key, slots, table, max_per_streamer, streamers);
        let tier = |i: usize| items[i].tier.index();
        // A slot is refilled inside its tier, where every key is the score
        // plus one price: compared as keys, as the page was filled.
        let lower = |new: usize, old: usize| key(&items[new]) < key(&items[old]);
        refill(by_order, &page, tier, lower, max_per_streamer, streamers)
    }
}

/// A copy of the state as it is now: a simulation branches a warm world
/// into paired runs with it.
impl Clone for ExposureState {
    fn clone(&self) -> ExposureState {
        ExposureState {
            inner: Mutex::new(self.inner.lock().clone()),
        }
    }
}

impl ExposureState {
    pub fn new() -> ExposureState {
        ExposureState::default()
    }

    /// The control for a page of `items` (scores before control): tier
    /// prices in score units, the share cap, each candidate's spreading
    /// penalty. One lookup per candidate, only when spreading or the cap is
    /// on; that lookup also numbers the candidates' streamers for the
    /// per-streamer cap ([`Control::numbered`]). By id: a hash of each id.
    pub fn control(&self, params: &ExposureParams, items: &[Item]) -> Control {
        self.control_interned(params, items, |_| None)
    }

    /// [`ExposureState::control`], finding each streamer by `interned(i)`
    /// where it is `Some` (a word the caller gives every item of one
    /// streamer alike and no item of another on this page, as for
    /// [`Streamers::number_interned`]): one multiply and a compare of the
    /// id instead of its hash, once the word has been met.
    pub fn control_interned(
        &self,
        params: &ExposureParams,
        items: &[Item],
        interned: impl Fn(usize) -> Option<usize>,
    ) -> Control {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let price = if params.targets.is_some() {
            inner.price.map(|p| p * inner.score_mean)
        } else {
            [0.0; 3]
        };
        let spreading = params.spread_strength > 0.0;
        let share = params.max_streamer_share;
        // Below 1 / max_share first-slot exposures in the window, the cap
        // would deny a streamer even its first slot.
        let cap = (share > 0.0 && inner.streamer_total * share >= 1.0)
            .then_some(share * inner.streamer_total);
        if !spreading && cap.is_none() {
            return Control {
                price,
                ..Control::default()
            };
        }
        let factor = inner.window.factor(inner.pages);
        // The penalty per unit of a streamer's exposure, in score units:
        // `strength * S` at its tier's mean streamer exposure.
        let per_unit: [f64; 3] = std::array::from_fn(|t| {
            let members = inner.tier_members[t] as f64;
            let mass = inner.tier_mass[t].max(0.0);
            if members > 0.0 && mass > 0.0 {
                params.spread_strength * inner.score_mean * members / mass
            } else {
                0.0
            }
        });
        // Each streamer is numbered through its entry, stamped with this
        // read; a candidate without a streamer is its own. The probes come
        // first, in a loop of their own that keeps little live across them;
        // the penalties and the cap are then a pass over plain numbers.
        inner.reads += 1;
        let read = inner.reads;
        let mut next = 0;
        let mut fresh = || {
            next += 1;
            next - 1
        };
        let mut numbers = Vec::with_capacity(items.len());
        let mut recent = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let (exposure, number) = match item.streamer {
                Some(id) => {
                    let t = inner.streamers.meet(interned(i), id);
                    if t.read != read {
                        t.read = read;
                        t.number = fresh();
                    }
                    (t.scaled * factor, t.number)
                }
                None => (0.0, fresh()),
            };
            numbers.push(number);
            recent.push(exposure);
        }
        let capped = match cap {
            Some(cap) if recent.iter().any(|&e| e >= cap) => {
                recent.iter().map(|&e| e >= cap).collect()
            }
            _ => Vec::new(),
        };
        // Each exposure becomes its penalty, in place.
        let mut spread = recent;
        if spreading {
            for (e, it) in spread.iter_mut().zip(items) {
                *e *= per_unit[it.tier.index()];
            }
        } else {
            spread.clear();
        }
        Control {
            price,
            capped,
            spread,
            numbered: Some(Streamers {
                of: numbers,
                count: fresh() as usize,
            }),
        }
    }

    /// Records a served page and takes one controller step; `now` dates
    /// the monitoring window only.
    pub fn observe(&self, params: &ExposureParams, now: Millis, page: &[Served]) {
        let mut guard = self.inner.lock();
        let Inner {
            price,
            score_mean,
            page_mean,
            exposure,
            updated,
            pages,
            streamers,
            window,
            streamer_total,
            tier_mass,
            tier_members,
            reads: _,
        } = &mut *guard;
        let from = updated.unwrap_or(now);
        for e in exposure.iter_mut() {
            *e = decay(*e, now.since(from) as f64, params.tier_half_life_ms);
        }
        *updated = Some(now.max(from));

        let half_life = params.spread_half_life_pages;
        let clock = *pages;
        // Rebased when the half-life changed (a reload) or the scale grew
        // far: the stored values become the exposures as of now.
        if window.half_life != half_life || clock - window.origin > REBASE_HALF_LIVES * half_life {
            let f = window.factor(clock);
            for t in streamers.iter_mut() {
                t.scaled *= f;
            }
            *window = Window {
                origin: clock,
                half_life,
            };
        }
        let f = window.factor(clock);
        let mut served = [0.0; 3];
        let mut weighted = 0.0;
        for s in page {
            let t = s.tier.index();
            served[t] += s.exposure;
            weighted += s.exposure * s.score;
            *streamer_total += s.exposure;
            // Tracked whether or not spreading or the cap is on: the
            // streamer-level Gini is monitored either way.
            let Some(name) = s.streamer else { continue };
            // One probe; a streamer not met before gets an entry.
            let tracked = streamers.entry(name);
            // A streamer whose tier changed takes its exposure along; one
            // served for the first time joins its tier.
            let before = tracked.scaled * f;
            match tracked.tier {
                Some(old) => {
                    let old = old.index();
                    if old != t {
                        tier_members[old] -= 1;
                        tier_members[t] += 1;
                    }
                    tier_mass[old] -= before;
                }
                None => tier_members[t] += 1,
            }
            let after = before + s.exposure;
            tier_mass[t] += after;
            tracked.scaled = after / f;
            tracked.tier = Some(s.tier);
        }
        for t in 0..3 {
            exposure[t] += served[t];
        }
        // One page later: every total of the window decays by one page.
        *pages += 1.0;
        let f = decay(1.0, 1.0, half_life);
        *streamer_total *= f;
        for mass in tier_mass.iter_mut() {
            *mass = (*mass * f).max(0.0);
        }

        let page_total: f64 = served.iter().sum();
        if page_total > 0.0 {
            let running = |mean: &mut f64, x: f64| {
                *mean = if *mean > 0.0 {
                    *mean + PAGE_MEAN_WEIGHT * (x - *mean)
                } else {
                    x
                };
            };
            running(page_mean, page_total);
            running(score_mean, weighted / page_total);
            if let Some(targets) = params.targets {
                // The step integrates this page's own miss, in units of a
                // typical page: the misses over any stretch of pages sum to
                // the change in price over it divided by the step, so
                // however few pages an hour brings, its share is off by at
                // most that, not by the lag of a smoothed share.
                let bound = params.max_price;
                for t in 0..3 {
                    let miss = (targets[t] * page_total - served[t]) / *page_mean;
                    price[t] = (price[t] + params.step * miss).clamp(-bound, bound);
                }
            }
        }

        if streamers.len() > params.max_streamers {
            // Forget the least exposed half (decayed to now): amortized O(1).
            let now = *pages;
            let f = window.factor(now);
            let mut values: Vec<f64> = streamers.iter().map(|t| t.scaled * f).collect();
            let mid = values.len() / 2;
            let (_, cut, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
            let cut = *cut;
            streamers.retain(|tracked| {
                let e = tracked.scaled * f;
                let keep = e > cut;
                if let (false, Some(t)) = (keep, tracked.tier) {
                    let t = t.index();
                    tier_members[t] -= 1;
                    tier_mass[t] = (tier_mass[t] - e).max(0.0);
                }
                keep
            });
        }
    }

    /// The controller's state. The Gini sorts every tracked streamer: call
    /// it for monitoring, not per request (the values are copied under the
    /// lock and sorted outside it).
    pub fn view(&self, params: &ExposureParams) -> ControllerView {
        let (price, score_unit, exposure, recent) = {
            let inner = self.inner.lock();
            let recent: Vec<f64> = inner
                .streamers
                .iter()
                .filter(|t| t.tier.is_some())
                .map(|t| t.scaled * inner.window.factor(inner.pages))
                .collect();
            (inner.price, inner.score_mean, inner.exposure, recent)
        };
        ControllerView {
            prices: if params.targets.is_some() {
                price
            } else {
                [0.0; 3]
            },
            score_unit,
            realized_shares: super::concentration::shares(exposure),
            targets: params.targets,
            tracked_streamers: recent.len(),
            gini: super::concentration::gini(&recent),
            top1: super::concentration::top_share(&recent, 0.01),
        }
    }
}

#[cfg(test)]
mod tests;
