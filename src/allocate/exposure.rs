//! Amortized exposure control: per-tier multipliers that steer realized
//! exposure shares toward targets over a decayed window, and per-streamer
//! diminishing returns that spread exposure inside each tier.
//!
//! - **Tier controller** (dual subgradient): after each page with exposure
//!   `W` of which tier `t` got `E_t`,
//!   `lambda_t <- clip(lambda_t + step * (target_t * W - E_t) / W_mean, -ln M, ln M)`,
//!   with `W_mean` a running mean page exposure. Candidates are ranked by
//!   `score * exp(lambda_t)`: a tier below target gets cheaper slots until it
//!   is not. Integrating each page's own miss (not a smoothed share) bounds
//!   the miss over any stretch of pages by the change in `lambda` over it, so
//!   shares hold hour by hour even when the night brings few pages. The
//!   realized share over a decayed window (half-life `tier_half_life`) is
//!   kept for read-outs. Bounded by `max_multiplier`.
//! - **Within-tier spreading**: a streamer with recent (decayed) exposure
//!   `e` has its score multiplied by `(1 + e / scale)^-strength`, a concave
//!   penalty: the more a streamer has had lately, the less the next slot is
//!   worth to it. One hash lookup per candidate.
//! - **Share cap**: a streamer holding `max_streamer_share` of the same
//!   window's total exposure is skipped until its share decays below it.
//!
//! The state is the caller's: one per server process (controllers on
//! replicas converge independently, so quotas scale out without
//! coordination) or one per replay shard. It carries over config reloads.

use super::Item;
use crate::domain::{Millis, Tier};
use compact_str::CompactString;
use foldhash::HashMap;
use parking_lot::Mutex;
use serde::Serialize;

/// The controller's settings (validated config).
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureParams {
    /// Target share of exposure per tier; `None` turns the tier controller off.
    pub targets: Option<[f64; 3]>,
    pub tier_half_life_ms: f64,
    pub step: f64,
    /// Bound on each tier multiplier: within [1/M, M].
    pub max_multiplier: f64,
    /// 0 turns spreading off.
    pub spread_strength: f64,
    pub spread_scale: f64,
    pub spread_half_life_ms: f64,
    /// Streamers remembered at most; the least exposed are forgotten first.
    pub max_streamers: usize,
    /// Most share of the window's exposure one streamer may hold; 0: no cap.
    pub max_streamer_share: f64,
}

/// What a snapshot reads out (admin and metrics).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControllerView {
    pub multipliers: [f64; 3],
    pub realized_shares: [f64; 3],
    pub targets: Option<[f64; 3]>,
    pub tracked_streamers: usize,
    /// Gini of recent exposure across the streamers tracked.
    pub gini: f64,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    lambda: [f64; 3],
    exposure: [f64; 3],
    updated: Option<Millis>,
    streamers: HashMap<CompactString, (f64, Millis)>,
    /// Total exposure over the streamers' window (decayed to `updated`).
    streamer_total: f64,
    /// Running mean of a page's total exposure: the unit of a step.
    page_mean: f64,
}

/// Weight of the latest page in the running mean page exposure.
const PAGE_MEAN_WEIGHT: f64 = 0.01;

/// Exposure state shared by the requests of one process (or replay shard).
#[derive(Debug, Default)]
pub struct ExposureState {
    inner: Mutex<Inner>,
}

fn decay(value: f64, from: Millis, to: Millis, half_life_ms: f64) -> f64 {
    if half_life_ms <= 0.0 {
        return 0.0;
    }
    let dt = to.since(from) as f64;
    value * (-dt / half_life_ms * std::f64::consts::LN_2).exp()
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

    /// Applies exposure control to a page's candidates at `now`: each score
    /// is multiplied by its tier's multiplier and its streamer's spreading
    /// penalty, and a streamer at its share cap becomes ineligible. Returns
    /// the multiplier applied to each candidate.
    pub fn adjust(&self, params: &ExposureParams, now: Millis, items: &mut [Item]) -> Vec<f64> {
        let inner = self.inner.lock();
        let tier_mult = if params.targets.is_some() {
            inner.lambda.map(f64::exp)
        } else {
            [1.0; 3]
        };
        let total = inner.updated.map_or(0.0, |at| {
            decay(inner.streamer_total, at, now, params.spread_half_life_ms)
        });
        // Below 1 / max_share first-slot exposures in the window, the cap
        // would deny a streamer even its first slot.
        let cap = (params.max_streamer_share > 0.0 && total * params.max_streamer_share >= 1.0)
            .then_some(params.max_streamer_share * total);
        items
            .iter_mut()
            .map(|item| {
                let recent = item.streamer.map_or(0.0, |s| {
                    inner.streamers.get(s).map_or(0.0, |&(e, at)| {
                        decay(e, at, now, params.spread_half_life_ms)
                    })
                });
                if cap.is_some_and(|cap| recent >= cap) {
                    item.eligible = false;
                }
                // In f32: a multiplier on a score needs no more than its 7
                // digits, and libm's f64 `pow` was the largest single cost of
                // a 500-candidate rank (13%). A streamer without recent
                // exposure keeps its score.
                let spread = if params.spread_strength > 0.0 && recent > 0.0 {
                    let base = (1.0 + recent / params.spread_scale) as f32;
                    f64::from(base.powf(-params.spread_strength as f32))
                } else {
                    1.0
                };
                let m = tier_mult[item.tier.index()] * spread;
                item.score *= m;
                m
            })
            .collect()
    }

    /// Records a served page (tier, streamer and exposure of each slot) and
    /// takes one controller step.
    pub fn observe(
        &self,
        params: &ExposureParams,
        now: Millis,
        page: &[(Tier, Option<&str>, f64)],
    ) {
        let mut inner = self.inner.lock();
        let Inner {
            lambda,
            exposure,
            updated,
            streamers,
            streamer_total,
            page_mean,
        } = &mut *inner;
        let from = updated.unwrap_or(now);
        for e in exposure.iter_mut() {
            *e = decay(*e, from, now, params.tier_half_life_ms);
        }
        *streamer_total = decay(*streamer_total, from, now, params.spread_half_life_ms);
        *updated = Some(now.max(from));
        for &(tier, streamer, w) in page {
            exposure[tier.index()] += w;
            *streamer_total += w;
            // Tracked whether or not spreading or the cap is on: the
            // streamer-level Gini is monitored either way.
            if let Some(s) = streamer {
                let entry = streamers
                    .entry(CompactString::from(s))
                    .or_insert((0.0, now));
                *entry = (
                    decay(entry.0, entry.1, now, params.spread_half_life_ms) + w,
                    now,
                );
            }
        }
        let mut served = [0.0; 3];
        for &(tier, _, w) in page {
            served[tier.index()] += w;
        }
        let page_total: f64 = served.iter().sum();
        if let Some(targets) = params.targets
            && page_total > 0.0
        {
            // The step integrates this page's own miss, in units of a typical
            // page: the sum of misses over any stretch of pages is the change
            // in lambda over it divided by the step, so however few pages an
            // hour brings, its share is off by at most that, not by the lag of
            // a smoothed share.
            *page_mean = if *page_mean > 0.0 {
                *page_mean + PAGE_MEAN_WEIGHT * (page_total - *page_mean)
            } else {
                page_total
            };
            let bound = params.max_multiplier.ln();
            for t in 0..3 {
                let miss = (targets[t] * page_total - served[t]) / *page_mean;
                lambda[t] = (lambda[t] + params.step * miss).clamp(-bound, bound);
            }
        }
        if streamers.len() > params.max_streamers {
            // Forget the least exposed half (decayed to now): amortized O(1).
            let mut values: Vec<f64> = streamers
                .values()
                .map(|&(e, at)| decay(e, at, now, params.spread_half_life_ms))
                .collect();
            let mid = values.len() / 2;
            let (_, cut, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
            let cut = *cut;
            streamers.retain(|_, &mut (e, at)| decay(e, at, now, params.spread_half_life_ms) > cut);
        }
    }

    /// The controller's state at `now`. The Gini sorts every tracked
    /// streamer: call it for monitoring, not per request (the values are
    /// copied under the lock and sorted outside it).
    pub fn view(&self, params: &ExposureParams, now: Millis) -> ControllerView {
        let (lambda, exposure, recent) = {
            let inner = self.inner.lock();
            let recent: Vec<f64> = inner
                .streamers
                .values()
                .map(|&(e, at)| decay(e, at, now, params.spread_half_life_ms))
                .collect();
            (inner.lambda, inner.exposure, recent)
        };
        ControllerView {
            multipliers: lambda.map(f64::exp),
            realized_shares: super::concentration::shares(exposure),
            targets: params.targets,
            tracked_streamers: recent.len(),
            gini: super::concentration::gini(&recent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ExposureParams {
        ExposureParams {
            targets: Some([0.4, 0.35, 0.25]),
            tier_half_life_ms: 600_000.0,
            step: 0.5,
            max_multiplier: 4.0,
            spread_strength: 0.5,
            spread_scale: 5.0,
            spread_half_life_ms: 3_600_000.0,
            max_streamers: 4,
            max_streamer_share: 0.0,
        }
    }

    #[test]
    fn a_tier_below_target_gets_a_higher_multiplier_bounded() {
        let p = params();
        let s = ExposureState::new();
        // Only top streamers served, again and again.
        for i in 0..200 {
            s.observe(&p, Millis(i * 1000), &[(Tier::Top, None, 1.0)]);
        }
        let v = s.view(&p, Millis(0));
        assert!(v.multipliers[Tier::Small.index()] > 1.0);
        assert!(v.multipliers[Tier::Top.index()] < 1.0);
        assert!(
            v.multipliers
                .iter()
                .all(|&m| (0.25 - 1e-9..=4.0 + 1e-9).contains(&m)),
            "{v:?}"
        );
        assert!((v.realized_shares[Tier::Top.index()] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn spreading_penalizes_recent_exposure_and_decays() {
        let p = params();
        let s = ExposureState::new();
        s.observe(&p, Millis(0), &[(Tier::Mid, Some("a"), 10.0)]);
        let mid = |name| Item {
            score: 1.0,
            eligible: true,
            tier: Tier::Mid,
            streamer: Some(name),
        };
        let mut page = [mid("a"), mid("b")];
        let m = s.adjust(&p, Millis(0), &mut page);
        let a = m[0] / m[1];
        // To f32's precision: the penalty is computed in f32.
        assert!((a - (1.0f64 + 10.0 / 5.0).powf(-0.5)).abs() < 1e-6, "{a}");
        assert!((page[0].score / page[1].score - a).abs() < 1e-9);
        // An hour later (one half-life) the penalty is milder.
        let later = s.adjust(&p, Millis(3_600_000), &mut [mid("a"), mid("b")]);
        assert!(later[0] / later[1] > a);
    }

    #[test]
    fn a_streamer_at_its_share_cap_is_skipped_until_it_decays() {
        let p = ExposureParams {
            max_streamer_share: 0.25,
            spread_strength: 0.0,
            max_streamers: 100,
            ..params()
        };
        let s = ExposureState::new();
        let small = |name| Item {
            score: 1.0,
            eligible: true,
            tier: Tier::Small,
            streamer: Some(name),
        };
        // "a" has 3 of 5 units of recent exposure: 60%, over the cap, and
        // the window holds at least 1 / 0.25 = 4 units, so the cap is in
        // force; "b" has 20%.
        s.observe(
            &p,
            Millis(0),
            &[
                (Tier::Small, Some("a"), 3.0),
                (Tier::Small, Some("b"), 1.0),
                (Tier::Small, Some("d"), 1.0),
            ],
        );
        let mut page = [small("a"), small("b"), small("c")];
        s.adjust(&p, Millis(0), &mut page);
        assert_eq!(page.map(|i| i.eligible), [false, true, true]);
        // Others take the next pages; a's share decays below the cap.
        for i in 1..=20 {
            s.observe(&p, Millis(i * 60_000), &[(Tier::Small, Some("c"), 1.0)]);
        }
        let mut page = [small("a")];
        s.adjust(&p, Millis(20 * 60_000), &mut page);
        assert!(page[0].eligible);
    }

    #[test]
    fn the_share_cap_waits_for_a_full_window() {
        let p = ExposureParams {
            max_streamer_share: 0.1,
            ..params()
        };
        let s = ExposureState::new();
        // 5 units in the window, below 1 / 0.1 = 10: no cap yet, though "a"
        // holds all of it.
        s.observe(&p, Millis(0), &[(Tier::Top, Some("a"), 5.0)]);
        let mut page = [Item {
            score: 1.0,
            eligible: true,
            tier: Tier::Top,
            streamer: Some("a"),
        }];
        s.adjust(&p, Millis(0), &mut page);
        assert!(page[0].eligible);
    }

    #[test]
    fn memory_is_bounded() {
        let p = params();
        let s = ExposureState::new();
        for i in 0..50 {
            let name = format!("s{i}");
            s.observe(
                &p,
                Millis(i),
                &[(Tier::Small, Some(name.as_str()), 1.0 + i as f64)],
            );
        }
        assert!(s.view(&p, Millis(0)).tracked_streamers <= 5);
    }
}
