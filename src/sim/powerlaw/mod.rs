//! A seeded head-heavy input for allocation, and the online controller run
//! on it head to head with the hindsight optimum and frontier.
//!
//! The input: `streamers` streamers ranked by popularity, Zipf weights
//! `(rank + 1)^-zipf`; the first 1% are top, the next 19% mid, the rest
//! small. Every request brings the whole head (every user likes it) and
//! `candidates - head` others drawn by popularity without replacement; a
//! candidate's value per unit of exposure is `base * noise`, with
//! `base = (rank + 1)^-quality_decay` (times `head_preference` for the head)
//! and `noise` log-normal per (request, streamer). Values are the scores, so
//! the online objective and the expected GMV are the same number.
//!
//! The pages are fixed in advance (nobody responds), so the online run and
//! the hindsight solver see exactly the same pages: the hindsight optimum
//! for exact shares (tier prices) and the value/concentration frontier
//! (tier prices and a within-tier Herfindahl penalty, [`super::hindsight`])
//! are upper bounds on what any online policy could do there. `warmup`
//! pages drawn before them are served first and not measured, so a run can
//! be measured from a warm controller, as a serving process runs, rather
//! than from the empty state of its first page.

use super::frontier::{FrontierPoint, frontier, frontier_at};
use super::hindsight::{self, Constraints, Outcome, Page, PageItem};
use crate::allocate::concentration::{gini, shares};
use crate::allocate::{ExposureState, Item, QuotaParams, Served};
use crate::domain::{Millis, Tier};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::fmt;

/// What [`generate`] draws.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerLawSpec {
    pub seed: u64,
    pub streamers: usize,
    /// Requests served before the measured ones, from the same draw.
    pub warmup: usize,
    /// Requests measured.
    pub requests: usize,
    /// Candidates per request, the head included.
    pub candidates: usize,
    pub slots: usize,
    /// Popularity exponent: how often a streamer is retrieved.
    pub zipf: f64,
    /// How fast value falls with popularity rank.
    pub quality_decay: f64,
    /// Extra value of the head for every user.
    pub head_preference: f64,
    /// Log-normal spread of a candidate's value around its streamer's base.
    pub noise: f64,
}

impl Default for PowerLawSpec {
    fn default() -> PowerLawSpec {
        PowerLawSpec {
            seed: 1,
            streamers: 1000,
            warmup: 0,
            requests: 2000,
            candidates: 100,
            slots: 20,
            zipf: 1.0,
            quality_decay: 0.3,
            head_preference: 2.0,
            noise: 0.5,
        }
    }
}

/// The tier of the streamer at popularity rank `rank` of `streamers`:
/// 1% top, 19% mid, 80% small.
pub fn tier_of(rank: usize, streamers: usize) -> Tier {
    let top = (streamers / 100).max(1);
    let mid = top + streamers * 19 / 100;
    if rank < top {
        Tier::Top
    } else if rank < mid {
        Tier::Mid
    } else {
        Tier::Small
    }
}

/// The seeded pages: the warm-up's, then the measured ones.
pub fn generate(spec: &PowerLawSpec) -> Vec<Page> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n = spec.streamers;
    let head = (0..n).take_while(|&r| tier_of(r, n) == Tier::Top).count();
    let weight: Vec<f64> = (0..n).map(|r| (r as f64 + 1.0).powf(-spec.zipf)).collect();
    let base = |r: usize| {
        let b = (r as f64 + 1.0).powf(-spec.quality_decay);
        if r < head {
            b * spec.head_preference
        } else {
            b
        }
    };
    let others = spec.candidates.saturating_sub(head).min(n - head);
    let mut keys: Vec<(f64, usize)> = Vec::with_capacity(n - head);
    (0..spec.warmup + spec.requests)
        .map(|_| {
            // Weighted sampling without replacement (Efraimidis-Spirakis):
            // the `others` largest `ln(u) / w` keys.
            keys.clear();
            keys.extend((head..n).map(|r| {
                let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                (u.ln() / weight[r], r)
            }));
            if others < keys.len() {
                keys.select_nth_unstable_by(others, |a, b| b.0.total_cmp(&a.0));
            }
            let drawn = (0..head).chain(keys[..others].iter().map(|&(_, r)| r));
            let items = drawn
                .map(|r| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    let value = base(r) * (spec.noise * z - spec.noise * spec.noise / 2.0).exp();
                    PageItem {
                        score: value,
                        value,
                        tier: tier_of(r, n),
                        streamer: Some(r as u32),
                    }
                })
                .collect();
            Page {
                slots: spec.slots as u32,
                items,
            }
        })
        .collect()
}

/// What one allocation policy did on the pages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub shares: [f64; 3],
    /// Sum over tiers of |share - target|.
    pub l1: f64,
    pub gini: f64,
    /// Value (exposure x score) per request.
    pub value_per_request: f64,
}

/// The online controller on `warmup` and then `pages`, one page after
/// another as the engine serves them: [`ExposureState::control`],
/// [`crate::allocate::Control::place`], [`ExposureState::observe`]. Only
/// `pages` are measured.
pub fn online(warmup: &[Page], pages: &[Page], streamers: usize, quotas: &QuotaParams) -> Run {
    // One page a second: the clock dates monitoring only.
    online_at(warmup, pages, streamers, quotas, 1000)
}

/// [`online`] with one page every `gap_ms` milliseconds.
fn online_at(
    warmup: &[Page],
    pages: &[Page],
    streamers: usize,
    quotas: &QuotaParams,
    gap_ms: i64,
) -> Run {
    let names: Vec<String> = (0..streamers).map(|s| s.to_string()).collect();
    let state = ExposureState::new();
    let mut out = Outcome::empty(streamers);
    for (i, page) in warmup.iter().chain(pages).enumerate() {
        let items: Vec<Item> = page
            .items
            .iter()
            .map(|it| it.item(it.score, &names))
            .collect();
        let slots = page.slots as usize;
        let table = quotas.floors.table(slots);
        let control = state.control(&quotas.exposure, &items);
        let placed = control.place(&items, slots, &table, quotas.max_items_per_streamer);
        let served: Vec<Served> = placed
            .iter()
            .enumerate()
            .map(|(position, p)| {
                let it = &page.items[p.index];
                let w = quotas.position_weights.weight(position);
                if i >= warmup.len() {
                    out.add(it, w);
                }
                Served {
                    tier: it.tier,
                    streamer: items[p.index].streamer,
                    exposure: w,
                    score: it.score,
                }
            })
            .collect();
        state.observe(&quotas.exposure, Millis(i as i64 * gap_ms), &served);
    }
    Run::of(&out, quotas, pages.len())
}

impl Run {
    fn of(out: &Outcome, quotas: &QuotaParams, pages: usize) -> Run {
        let shares = shares(out.tier_exposure);
        let l1 = quotas
            .exposure
            .targets
            .map_or(0.0, |t| (0..3).map(|k| (shares[k] - t[k]).abs()).sum());
        Run {
            shares,
            l1,
            gini: gini(&out.streamer_exposure),
            value_per_request: out.objective / pages.max(1) as f64,
        }
    }
}

/// FairCo (Morik et al., 2020), the published proportional controller, in
/// its exposure-share form, as a baseline on the same pages: each candidate
/// ranks by `score + lambda * deficit` of its tier, where the deficit is
/// `target * E - E_tier` (exposure so far) in units of one full page's
/// exposure; it grows with the error, so any `lambda > 0` drives the shares
/// to the targets, faster for larger `lambda`. The same floors, cap and
/// position weights as [`online`]; no spreading (FairCo has none). Its
/// deficit counts the warm-up's exposure too; only `pages` are measured.
pub fn fairco(
    warmup: &[Page],
    pages: &[Page],
    streamers: usize,
    quotas: &QuotaParams,
    lambda: f64,
) -> Run {
    let names: Vec<String> = (0..streamers).map(|s| s.to_string()).collect();
    let targets = quotas.exposure.targets.unwrap_or([1.0 / 3.0; 3]);
    let mut out = Outcome::empty(streamers);
    // Exposure per tier since the first page, warm-up included.
    let mut so_far = [0.0; 3];
    for (i, page) in warmup.iter().chain(pages).enumerate() {
        let slots = page.slots as usize;
        let full: f64 = (0..slots).map(|k| quotas.position_weights.weight(k)).sum();
        let total: f64 = so_far.iter().sum();
        let deficit: Vec<f64> = (0..3)
            .map(|t| (targets[t] * total - so_far[t]) / full.max(f64::MIN_POSITIVE))
            .collect();
        let items: Vec<Item> = page
            .items
            .iter()
            .map(|it| it.item(it.score + lambda * deficit[it.tier.index()], &names))
            .collect();
        let table = quotas.floors.table(slots);
        let placed =
            crate::allocate::allocate(&items, slots, &table, quotas.max_items_per_streamer);
        for (position, p) in placed.iter().enumerate() {
            let (item, w) = (
                &page.items[p.index],
                quotas.position_weights.weight(position),
            );
            so_far[item.tier.index()] += w;
            if i >= warmup.len() {
                out.add(item, w);
            }
        }
    }
    Run::of(&out, quotas, pages.len())
}

/// A policy run head to head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Contender {
    /// The online controller at a spreading strength.
    Fairflow { spread_strength: f64 },
    /// [`fairco`] at a gain.
    FairCo { lambda: f64 },
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Contender::Fairflow { spread_strength } => write!(f, "spread {spread_strength:.2}"),
            Contender::FairCo { lambda } => write!(f, "FairCo {lambda}"),
        }
    }
}

/// One policy's run against the hindsight bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadToHeadRow {
    pub policy: Contender,
    pub online: Run,
    /// Online value over the hindsight optimum for exact shares.
    pub of_hindsight: f64,
    /// Online value over the hindsight optimum at the shares the online run
    /// reached (an upper bound on it whatever its miss).
    pub of_hindsight_own: f64,
    /// Online value over the frontier's at the same Gini (`None`: the Gini
    /// is outside the frontier's range).
    pub of_frontier: Option<f64>,
}

/// The head-to-head on one seed's pages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadToHead {
    pub seed: u64,
    /// The hindsight optimum for exact shares, per request.
    pub hindsight_per_request: f64,
    pub hindsight_gap_pp: f64,
    pub frontier: Vec<FrontierPoint>,
    pub rows: Vec<HeadToHeadRow>,
}

/// Runs each policy on the seed's pages and measures it against the
/// hindsight optimum and the frontier solved on the same pages
/// (`quotas.exposure.targets` must be set).
pub fn head_to_head(
    spec: &PowerLawSpec,
    quotas: &QuotaParams,
    policies: &[Contender],
) -> HeadToHead {
    let drawn = generate(spec);
    let (warmup, pages) = drawn.split_at(spec.warmup.min(drawn.len()));
    let n = spec.streamers;
    let targets = quotas.exposure.targets;
    let exact = hindsight::solve(
        pages,
        n,
        quotas,
        &Constraints {
            targets,
            concentration: 0.0,
        },
    );
    let per_request = |x: f64| x / pages.len().max(1) as f64;
    let hindsight_per_request = per_request(exact.outcome.objective);
    let frontier = frontier(pages, n, quotas, targets);
    let rows = policies
        .iter()
        .map(|&policy| {
            let online = match policy {
                Contender::Fairflow { spread_strength } => {
                    let mut q = quotas.clone();
                    q.exposure.spread_strength = spread_strength;
                    online(warmup, pages, n, &q)
                }
                Contender::FairCo { lambda } => fairco(warmup, pages, n, quotas, lambda),
            };
            let own = at_shares(pages, n, quotas, online.shares);
            let of_frontier =
                frontier_at(&frontier, online.gini).map(|best| online.value_per_request / best);
            HeadToHeadRow {
                policy,
                of_hindsight: online.value_per_request / hindsight_per_request,
                of_hindsight_own: online.value_per_request / own,
                of_frontier,
                online,
            }
        })
        .collect();
    HeadToHead {
        seed: spec.seed,
        hindsight_per_request,
        hindsight_gap_pp: exact.share_gap_pp,
        frontier,
        rows,
    }
}

/// The hindsight optimum's value per request at exactly `shares`.
fn at_shares(pages: &[Page], streamers: usize, quotas: &QuotaParams, shares: [f64; 3]) -> f64 {
    let s = hindsight::solve(
        pages,
        streamers,
        quotas,
        &Constraints {
            targets: Some(shares),
            concentration: 0.0,
        },
    );
    s.outcome.objective / pages.len().max(1) as f64
}

/// Mean and standard error of `xs`.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Several seeds' head-to-heads, summarized per policy.
pub struct Summary<'a>(pub &'a [HeadToHead]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let runs = self.0;
        let Some(first) = runs.first() else {
            return Ok(());
        };
        writeln!(
            f,
            "{} seeds; mean (standard error) over seeds; values per request",
            runs.len()
        )?;
        writeln!(
            f,
            "{:>12} {:>6} {:>6} {:>6} {:>14} {:>14} {:>9} {:>16} {:>16} {:>16}",
            "policy",
            "top",
            "mid",
            "small",
            "L1",
            "gini",
            "value",
            "of hindsight",
            "of hs own shares",
            "of frontier",
        )?;
        // One seed has no standard error.
        let se = |s: f64, scale: f64, digits: usize| {
            if s.is_nan() {
                String::new()
            } else {
                format!(" ({:.digits$})", s * scale)
            }
        };
        let pct = |(m, s): (f64, f64)| format!("{:.2}%{}", m * 100.0, se(s, 100.0, 2));
        let num = |(m, s): (f64, f64)| format!("{m:.4}{}", se(s, 1.0, 4));
        for (k, row) in first.rows.iter().enumerate() {
            let col = |get: &dyn Fn(&HeadToHeadRow) -> f64| {
                mean_se(&runs.iter().map(|r| get(&r.rows[k])).collect::<Vec<_>>())
            };
            let frontier: Vec<f64> = runs.iter().filter_map(|r| r.rows[k].of_frontier).collect();
            let frontier = if frontier.is_empty() {
                "outside".to_string()
            } else {
                let cell = pct(mean_se(&frontier));
                if frontier.len() < runs.len() {
                    format!("{cell} [{}/{}]", frontier.len(), runs.len())
                } else {
                    cell
                }
            };
            writeln!(
                f,
                "{:>12} {:>6.3} {:>6.3} {:>6.3} {:>14} {:>14} {:>9.4} {:>16} {:>16} {:>16}",
                row.policy.to_string(),
                col(&|r| r.online.shares[0]).0,
                col(&|r| r.online.shares[1]).0,
                col(&|r| r.online.shares[2]).0,
                num(col(&|r| r.online.l1)),
                num(col(&|r| r.online.gini)),
                col(&|r| r.online.value_per_request).0,
                pct(col(&|r| r.of_hindsight)),
                pct(col(&|r| r.of_hindsight_own)),
                frontier,
            )?;
        }
        let h = mean_se(
            &runs
                .iter()
                .map(|r| r.hindsight_per_request)
                .collect::<Vec<_>>(),
        );
        writeln!(
            f,
            "hindsight optimum for exact shares: {:.4} per request (largest share gap {:.2} pp)",
            h.0,
            runs.iter().map(|r| r.hindsight_gap_pp).fold(0.0, f64::max)
        )?;
        writeln!(f, "hindsight frontier (first seed):")?;
        write!(f, "{}", super::frontier::FrontierTable(&first.frontier))
    }
}

#[cfg(test)]
mod tests;
