//! The hindsight fairness/value frontier: the best static allocation of
//! recorded pages as the concentration penalty rises, and where an online
//! policy's objective falls against it at its Gini.

use super::evaluate::{gini, shares, top_share};
use super::hindsight::{self, Constraints, Page};
use crate::allocate::QuotaParams;
use serde::Serialize;
use std::fmt;

/// One point of the hindsight frontier: the best static allocation at a
/// given weight of the concentration penalty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontierPoint {
    pub concentration: f64,
    pub shares: [f64; 3],
    pub gini: f64,
    pub top1: f64,
    pub objective_per_request: f64,
    pub expected_gmv_per_request: f64,
    /// Objective relative to the unconstrained allocation of the same pages.
    pub of_unconstrained: f64,
    pub share_gap_pp: f64,
}

/// Penalty weights traced by [`frontier`].
pub const FRONTIER_PENALTIES: [f64; 8] = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2];

/// The hindsight frontier on `pages`: tier shares held at `targets` (when
/// given), the concentration penalty raised step by step.
pub fn frontier(
    pages: &[Page],
    streamers: usize,
    quotas: &QuotaParams,
    targets: Option<[f64; 3]>,
) -> Vec<FrontierPoint> {
    let free = hindsight::solve(pages, streamers, quotas, &Constraints::default());
    let n = pages.len().max(1) as f64;
    FRONTIER_PENALTIES
        .iter()
        .map(|&concentration| {
            let s = hindsight::solve(
                pages,
                streamers,
                quotas,
                &Constraints {
                    targets,
                    concentration,
                },
            );
            FrontierPoint {
                concentration,
                shares: shares(s.outcome.tier_exposure),
                gini: gini(&s.outcome.streamer_exposure),
                top1: top_share(&s.outcome.streamer_exposure, 0.01),
                objective_per_request: s.outcome.objective / n,
                expected_gmv_per_request: s.outcome.expected_gmv / n,
                of_unconstrained: s.outcome.objective / free.outcome.objective,
                share_gap_pp: s.share_gap_pp,
            }
        })
        .collect()
}

/// The frontier's objective per request at `gini`, interpolated linearly
/// between its points (`None` outside the range it covers).
pub fn frontier_at(points: &[FrontierPoint], gini: f64) -> Option<f64> {
    points.windows(2).find_map(|w| {
        let (a, b) = (&w[0], &w[1]);
        let (lo, hi) = (a.gini.min(b.gini), a.gini.max(b.gini));
        if !(lo..=hi).contains(&gini) {
            return None;
        }
        if hi - lo < 1e-12 {
            return Some(a.objective_per_request.max(b.objective_per_request));
        }
        let x = (gini - a.gini) / (b.gini - a.gini);
        Some(a.objective_per_request + x * (b.objective_per_request - a.objective_per_request))
    })
}

/// Where an online run stands against both hindsight bounds, solved on the
/// pages it served: its value as a share of the optimum for exact shares
/// at `targets` (tier prices), and of the frontier's at its own Gini
/// (tier prices and the within-tier concentration penalty).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    pub pages: usize,
    /// Online value (exposure x score before exposure control) per page.
    pub objective_per_request: f64,
    pub gini: f64,
    pub of_hindsight: f64,
    /// The hindsight optimum's largest miss of a target.
    pub hindsight_gap_pp: f64,
    /// `None`: the Gini is outside the frontier's range.
    pub of_frontier: Option<f64>,
}

/// [`Standing`] of a run that served `pages` with total value `objective`
/// and `streamer_exposure` per streamer.
pub fn standing(
    pages: &[Page],
    quotas: &QuotaParams,
    targets: [f64; 3],
    objective: f64,
    streamer_exposure: &[f64],
) -> Standing {
    let streamers = streamer_exposure.len();
    let exact = hindsight::solve(
        pages,
        streamers,
        quotas,
        &Constraints {
            targets: Some(targets),
            concentration: 0.0,
        },
    );
    let points = frontier(pages, streamers, quotas, Some(targets));
    let n = pages.len().max(1) as f64;
    let gini = gini(streamer_exposure);
    Standing {
        pages: pages.len(),
        objective_per_request: objective / n,
        gini,
        of_hindsight: objective / exact.outcome.objective,
        hindsight_gap_pp: exact.share_gap_pp,
        of_frontier: frontier_at(&points, gini).map(|best| objective / n / best),
    }
}

/// The frontier table.
pub struct FrontierTable<'a>(pub &'a [FrontierPoint]);

impl fmt::Display for FrontierTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "{:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>8} {:>7}",
            "penalty",
            "top",
            "mid",
            "small",
            "gini",
            "top1%",
            "obj/req",
            "gmv/req",
            "of free",
            "gap(pp)",
        )?;
        for p in self.0 {
            writeln!(
                f,
                "{:>8.2} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>9.3} {:>9.3} {:>7.1}% {:>7.2}",
                p.concentration,
                p.shares[0],
                p.shares[1],
                p.shares[2],
                p.gini,
                p.top1,
                p.objective_per_request,
                p.expected_gmv_per_request,
                p.of_unconstrained * 100.0,
                p.share_gap_pp,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(gini: f64, objective: f64) -> FrontierPoint {
        FrontierPoint {
            concentration: 0.0,
            shares: [0.0; 3],
            gini,
            top1: 0.0,
            objective_per_request: objective,
            expected_gmv_per_request: 0.0,
            of_unconstrained: 1.0,
            share_gap_pp: 0.0,
        }
    }

    #[test]
    fn frontier_is_interpolated_by_gini() {
        let points = [point(0.9, 10.0), point(0.8, 8.0), point(0.7, 5.0)];
        assert_eq!(frontier_at(&points, 0.9), Some(10.0));
        assert!((frontier_at(&points, 0.85).unwrap() - 9.0).abs() < 1e-9);
        assert!((frontier_at(&points, 0.75).unwrap() - 6.5).abs() < 1e-9);
        assert_eq!(frontier_at(&points, 0.95), None);
        assert_eq!(frontier_at(&points, 0.6), None);
    }
}
