//! What `fairflow evaluate` reports: one row per config (exposure shares,
//! concentration, value), how close each comes to the hindsight optimum, and
//! the hindsight fairness/value frontier.

use super::evaluate::{EvalOptions, Evaluation, FlowOutcome, evaluate, gini, shares, top_share};
use super::hindsight::{self, Constraints, Page};
use super::world::World;
use crate::allocate::QuotaParams;
use crate::catalog::Catalog;
use crate::domain::Scene;
use crate::engine::{Engine, RankState};
use serde::Serialize;
use std::fmt;

/// Hours skipped before measuring hourly tracking.
pub const WARM_UP_HOURS: usize = 2;

/// One config's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    pub shares: [f64; 3],
    pub targets: Option<[f64; 3]>,
    pub gini: f64,
    pub top1: f64,
    pub top10: f64,
    /// Largest hourly gap to a target after warm-up (percentage points).
    pub max_hourly_deviation_pp: Option<f64>,
    pub measured_requests: u64,
    pub expected_gmv: f64,
    pub objective: f64,
    pub simulated_gmv: f64,
    pub orders: u64,
    pub hindsight: Option<HindsightRow>,
    /// Online objective per request over the frontier's at the same Gini.
    pub vs_frontier: Option<f64>,
    pub flow: FlowOutcome,
    #[serde(skip)]
    brand_self_gmv: Vec<f64>,
    #[serde(skip)]
    brand_flow_impressions: Vec<u64>,
}

/// The hindsight optimum on the same pages, at the config's targets (or,
/// without targets, at the shares the config realized).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HindsightRow {
    pub objective: f64,
    pub expected_gmv: f64,
    pub share_gap_pp: f64,
    /// Online objective over the hindsight optimum's.
    pub ratio: f64,
}

impl Row {
    pub fn new(name: String, eval: &Evaluation, targets: Option<[f64; 3]>) -> Row {
        Row {
            name,
            shares: eval.tier_shares(),
            targets,
            gini: gini(&eval.streamer_exposure),
            top1: top_share(&eval.streamer_exposure, 0.01),
            top10: top_share(&eval.streamer_exposure, 0.10),
            max_hourly_deviation_pp: targets.map(|t| eval.max_hourly_deviation(t, WARM_UP_HOURS)),
            measured_requests: eval.measured_requests,
            expected_gmv: eval.expected_gmv,
            objective: eval.objective,
            simulated_gmv: eval.outcome.gmv,
            orders: eval.outcome.purchases,
            hindsight: None,
            vs_frontier: None,
            flow: eval.flow,
            brand_self_gmv: eval.brand_self_gmv.clone(),
            brand_flow_impressions: eval.brand_flow_impressions.clone(),
        }
    }

    /// Own-channel GMV of the brands the flow showed under this row, here
    /// and under `base` (the same brands), and how many brands that is.
    pub fn participating(&self, base: &Row) -> (usize, f64, f64) {
        let brands: Vec<usize> = (0..self.brand_flow_impressions.len())
            .filter(|&b| self.brand_flow_impressions[b] > 0)
            .collect();
        let sum = |r: &Row| {
            brands
                .iter()
                .map(|&b| r.brand_self_gmv.get(b).copied().unwrap_or(0.0))
                .sum()
        };
        (brands.len(), sum(self), sum(base))
    }

    /// Solves the hindsight problem on the evaluation's recorded pages.
    pub fn with_hindsight(mut self, eval: &Evaluation, quotas: &QuotaParams) -> Row {
        let solution = hindsight::solve(
            &eval.pages,
            eval.streamer_exposure.len(),
            quotas,
            &Constraints {
                targets: Some(self.targets.unwrap_or(self.shares)),
                concentration: 0.0,
            },
        );
        self.hindsight = Some(HindsightRow {
            objective: solution.outcome.objective,
            expected_gmv: solution.outcome.expected_gmv,
            share_gap_pp: solution.share_gap_pp,
            ratio: self.objective / solution.outcome.objective,
        });
        self
    }
}

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

/// What to add to the rows of a comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// Each row's distance to the hindsight optimum on its own pages.
    pub hindsight: bool,
    /// The hindsight frontier on the first config's pages.
    pub frontier: bool,
    /// Each config's exposure shares per local hour.
    pub hourly: bool,
}

/// Named configs served the same simulated traffic, side by side: what
/// `fairflow evaluate` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub frontier: Option<Vec<FrontierPoint>>,
    /// Per config (in row order), tier shares per local hour.
    pub hourly: Vec<Vec<[f64; 3]>>,
}

/// Serves `world` for `days` from the catalog `start` under each engine,
/// measuring the pages of `measured` scenes.
pub fn compare(
    world: &World,
    start: &Catalog,
    engines: &[(String, Engine)],
    days: u32,
    measured: &[Scene],
    extras: Extras,
) -> Comparison {
    let mut out = Comparison {
        rows: Vec::new(),
        frontier: None,
        hourly: Vec::new(),
    };
    for (i, (name, engine)) in engines.iter().enumerate() {
        let quotas = &engine.params().quotas;
        let trace = extras.frontier && i == 0;
        let options = EvalOptions {
            measured: measured.to_vec(),
            record_pages: extras.hindsight || trace,
        };
        let mut catalog = start.clone();
        let eval = evaluate(
            world,
            engine,
            &mut catalog,
            &RankState::new(),
            days,
            &options,
        );
        // A config whose quotas leave the measured scenes alone has no
        // targets there, and nothing to compare: its pages are already the
        // unconstrained optimum.
        let applies = measured.iter().all(|&s| quotas.applies_to(s));
        let targets = quotas.exposure.targets.filter(|_| applies);
        let mut row = Row::new(name.clone(), &eval, targets);
        if extras.hindsight && applies {
            row = row.with_hindsight(&eval, quotas);
        }
        if trace {
            out.frontier = Some(frontier(
                &eval.pages,
                world.streamers.len(),
                quotas,
                quotas.exposure.targets,
            ));
        }
        if extras.hourly {
            out.hourly.push(
                eval.hourly_tier_exposure
                    .iter()
                    .map(|x| shares(*x))
                    .collect(),
            );
        }
        out.rows.push(row);
    }
    if let Some(points) = &out.frontier {
        compare_to_frontier(&mut out.rows, points);
    }
    out
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (row, hours) in self.rows.iter().zip(&self.hourly) {
            writeln!(f, "{}: exposure share per local hour", row.name)?;
            for (h, s) in hours.iter().enumerate() {
                writeln!(
                    f,
                    "    {h:02}:00  top {:.3}  mid {:.3}  small {:.3}",
                    s[0], s[1], s[2]
                )?;
            }
        }
        if let Some(points) = &self.frontier {
            writeln!(f, "hindsight frontier (pages of the first config):")?;
            writeln!(f, "{}", FrontierTable(points))?;
        }
        write!(f, "{}", Table(&self.rows))?;
        if self.rows.iter().any(|r| r.flow.impressions > 0) {
            writeln!(
                f,
                "chuanliu flow (own = brands' self-broadcast; brands/part = those the flow showed, their own GMV; d% against the first config):"
            )?;
            write!(f, "{}", FlowTable(&self.rows))?;
        }
        Ok(())
    }
}

/// Penalty weights traced by [`frontier`].
pub const FRONTIER_PENALTIES: [f64; 7] = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6];

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

/// Fills in each row's distance to the frontier.
pub fn compare_to_frontier(rows: &mut [Row], points: &[FrontierPoint]) {
    for row in rows {
        row.vs_frontier = frontier_at(points, row.gini)
            .map(|best| row.objective / row.measured_requests.max(1) as f64 / best);
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.digits$}"))
}

/// The comparison table (one line per row).
pub struct Table<'a>(pub &'a [Row]);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "{:<26} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>9} {:>9} {:>8} {:>7} {:>7} {:>7}",
            "config",
            "top",
            "mid",
            "small",
            "gini",
            "top1%",
            "top10%",
            "dev(pp)",
            "exp.GMV",
            "sim.GMV",
            "orders",
            "vs.hs",
            "hs.gap",
            "vs.fr"
        )?;
        for r in self.0 {
            writeln!(
                f,
                "{:<26} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>7} {:>9.0} {:>9.0} {:>8} {:>7} {:>7} {:>7}",
                r.name,
                r.shares[0],
                r.shares[1],
                r.shares[2],
                r.gini,
                r.top1,
                r.top10,
                opt(r.max_hourly_deviation_pp, 2),
                r.expected_gmv,
                r.simulated_gmv,
                r.orders,
                opt(r.hindsight.as_ref().map(|h| h.ratio * 100.0), 1),
                opt(r.hindsight.as_ref().map(|h| h.share_gap_pp), 2),
                opt(r.vs_frontier.map(|x| x * 100.0), 1),
            )?;
        }
        Ok(())
    }
}

/// What the chuanliu flow did under each config, with the difference from
/// the first config (run it with the flow off to read the flow's effect).
pub struct FlowTable<'a>(pub &'a [Row]);

impl fmt::Display for FlowTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "{:<26} {:>9} {:>8} {:>10} {:>8} {:>10} {:>7} {:>7} {:>8} {:>10} {:>7} {:>8}",
            "config",
            "flow.imp",
            "attr.ord",
            "attr.GMV",
            "own.ord",
            "own.GMV",
            "own.d%",
            "brands",
            "part.d%",
            "sim.GMV",
            "GMV.d%",
            "rew.exp"
        )?;
        let base = self.0.first();
        let change = |now: f64, then: Option<f64>| match then {
            Some(then) if then > 0.0 => format!("{:+.1}", (now / then - 1.0) * 100.0),
            _ => "-".into(),
        };
        for r in self.0 {
            let fl = &r.flow;
            let (brands, part_now, part_then) = base.map_or((0, 0.0, 0.0), |b| r.participating(b));
            writeln!(
                f,
                "{:<26} {:>9} {:>8} {:>10.0} {:>8} {:>10.0} {:>7} {:>7} {:>8} {:>10.0} {:>7} {:>8.1}",
                r.name,
                fl.impressions,
                fl.attributed_purchases,
                fl.attributed_gmv,
                fl.brand_self_purchases,
                fl.brand_self_gmv,
                change(fl.brand_self_gmv, base.map(|b| b.flow.brand_self_gmv)),
                brands,
                change(part_now, Some(part_then)),
                r.simulated_gmv,
                change(r.simulated_gmv, base.map(|b| b.simulated_gmv)),
                fl.reward_exposure,
            )?;
        }
        Ok(())
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
    use crate::config::Config;
    use crate::model::Model;
    use crate::sim::{CatalogSpec, SimParams, generate};
    use std::sync::Arc;

    #[test]
    fn a_comparison_has_a_row_per_config_and_prints_what_was_asked() {
        let spec = CatalogSpec {
            streamers: 200,
            ..CatalogSpec::default()
        };
        let start = generate(&spec).unwrap();
        let world = World::build(&start, SimParams::new(3, 40), spec.as_of);
        let engine = |toml: &str| {
            let config = Config::from_toml(toml, "t.toml", None).unwrap();
            Engine::new(config.engine, Arc::new(Model::embedded().unwrap()))
        };
        let engines = vec![
            (
                "default".to_string(),
                engine("[tiers]\ntop_min_followers = 5_000_000\n"),
            ),
            ("no-quotas".to_string(), engine("[quotas]\nscenes = []\n")),
        ];
        let extras = Extras {
            hourly: true,
            ..Extras::default()
        };
        let measured = [Scene::Recommend];
        let c = compare(&world, &start, &engines, 1, &measured, extras);
        assert_eq!(c.rows.len(), 2);
        assert_eq!(c.hourly.len(), 2);
        assert!(c.frontier.is_none());
        assert!(c.rows[0].measured_requests > 0, "traffic was served");
        let text = c.to_string();
        assert!(
            text.contains("default: exposure share per local hour"),
            "{text}"
        );
        assert!(text.contains("no-quotas"), "{text}");
    }

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
