//! What `fairflow evaluate` reports: one row per config (exposure shares,
//! concentration, value), how close each comes to the hindsight optimum, and
//! the hindsight fairness/value frontier.

use super::evaluate::{
    EvalOptions, Evaluation, FlowOutcome, Oracle, OracleKnows, Served, gini, shares, top_share,
};
use super::frontier::{FrontierPoint, FrontierTable, frontier, frontier_at};
use super::hindsight::{self, Constraints};
use super::world::World;
use crate::allocate::QuotaParams;
use crate::catalog::Catalog;
use crate::chuanliu::SceneMode;
use crate::domain::Scene;
use crate::engine::Engine;
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
    /// Slots served, every scene.
    pub served_slots: u64,
    pub hindsight: Option<HindsightRow>,
    /// Online objective per request over the frontier's at the same Gini.
    pub vs_frontier: Option<f64>,
    pub flow: FlowOutcome,
    /// The flow's lift in participating brands' own-live GMV over the
    /// oracle's, both against the first config (with an oracle row).
    pub efficiency: Option<f64>,
    /// The same ratio in the ground truth's expected own-live increments
    /// (`FlowOutcome::expected_net_live_gmv`): no response draws in it, so
    /// it varies far less from seed to seed than the realized one.
    pub expected_efficiency: Option<f64>,
    #[serde(skip)]
    user_gmv: Vec<f64>,
    #[serde(skip)]
    user_participant_live_gmv: Vec<f64>,
}

/// A relative change against a baseline, with its standard error from the
/// per-user paired differences (users' draws are common to both runs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lift {
    pub change: f64,
    pub standard_error: f64,
}

/// `now`'s total minus `then`'s, user by user, with the standard error of
/// that total from the per-user differences; `None` for no users.
pub fn paired_difference(now: &[f64], then: &[f64]) -> Option<(f64, f64)> {
    if now.len() != then.len() || now.is_empty() {
        return None;
    }
    let n = now.len() as f64;
    let diffs = now.iter().zip(then).map(|(a, b)| a - b);
    let mean = diffs.clone().sum::<f64>() / n;
    let var = diffs.map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Some((mean * n, (var * n).sqrt()))
}

impl Lift {
    /// `now` against `then`, user by user; `None` when the baseline is 0.
    pub fn paired(now: &[f64], then: &[f64]) -> Option<Lift> {
        let base: f64 = then.iter().sum();
        let (total, se) = paired_difference(now, then).filter(|_| base > 0.0)?;
        Some(Lift {
            change: total / base,
            standard_error: se / base,
        })
    }
}

impl fmt::Display for Lift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:+.1}±{:.1}",
            self.change * 100.0,
            self.standard_error * 100.0
        )
    }
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
            served_slots: eval.served_slots,
            hindsight: None,
            vs_frontier: None,
            flow: eval.flow,
            efficiency: None,
            expected_efficiency: None,
            user_gmv: eval.user_gmv.clone(),
            user_participant_live_gmv: eval.user_participant_live_gmv.clone(),
        }
    }

    /// Participating brands' own-live GMV against `base`'s.
    pub fn live_lift(&self, base: &Row) -> Option<Lift> {
        Lift::paired(
            &self.user_participant_live_gmv,
            &base.user_participant_live_gmv,
        )
    }

    /// Simulated GMV against `base`'s.
    pub fn gmv_lift(&self, base: &Row) -> Option<Lift> {
        Lift::paired(&self.user_gmv, &base.user_gmv)
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

/// What to add to the rows of a comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// Each row's distance to the hindsight optimum on its own pages.
    pub hindsight: bool,
    /// Each row's distance to the hindsight frontier on its own pages (and
    /// the first config's frontier, printed).
    pub frontier: bool,
    /// Each config's exposure shares per local hour.
    pub hourly: bool,
}

/// How the runs of a comparison are set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Design {
    /// Days served before measuring (by the first config), from which every
    /// config's run branches.
    pub warmup_days: u32,
    /// Share of brands taking part in the flow, chosen before any traffic.
    pub enrolled_share: f64,
    /// Add a row for the [`Oracle`] router knowing this, with the budget,
    /// cap and scenes of the first config that has the flow on, ranking with
    /// the first config otherwise.
    pub oracle: Option<OracleKnows>,
}

impl Default for Design {
    fn default() -> Design {
        Design {
            warmup_days: 0,
            enrolled_share: 1.0,
            oracle: None,
        }
    }
}

/// The oracle router at `engine`'s flow budget, cap and scenes (`None`
/// with the flow off).
pub fn oracle_for(engine: &Engine, knows: OracleKnows) -> Option<Oracle> {
    let flow = &engine.params().chuanliu;
    flow.enabled.then(|| Oracle {
        daily_impressions: flow.daily_impressions,
        frequency_cap: flow.frequency_cap,
        frequency_window_ms: i64::from(flow.frequency_window_s) * 1000,
        scenes: Scene::ALL
            .into_iter()
            .filter(|&s| flow.scene(s).mode != SceneMode::Off)
            .collect(),
        proposed_only: Scene::ALL
            .into_iter()
            .filter(|&s| flow.scene(s).mode == SceneMode::Boost)
            .collect(),
        knows,
    })
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

/// Serves `world` for `days` from the catalog `start` under each engine
/// (after a common warm-up, per `design`), measuring the pages of
/// `measured` scenes.
pub fn compare(
    world: &World,
    start: &Catalog,
    engines: &[(String, Engine)],
    days: u32,
    measured: &[Scene],
    design: Design,
    extras: Extras,
) -> Comparison {
    let mut out = Comparison {
        rows: Vec::new(),
        frontier: None,
        hourly: Vec::new(),
    };
    let mut warm = Served::new(world, start.clone(), design.enrolled_share);
    if let Some((_, first)) = engines.first() {
        warm.serve(world, first, design.warmup_days, &EvalOptions::default());
    }
    let oracle = design
        .oracle
        .and_then(|knows| engines.iter().find_map(|(_, e)| oracle_for(e, knows)));
    let has_oracle = oracle.is_some();
    let runs = engines
        .iter()
        .map(|(name, engine)| (name.clone(), engine, None))
        .chain(oracle.map(|o| {
            let (_, first) = &engines[0];
            ("oracle".to_string(), first, Some(o))
        }));
    for (i, (name, engine, oracle)) in runs.enumerate() {
        let quotas = &engine.params().quotas;
        let is_oracle = oracle.is_some();
        // A config whose quotas leave the measured scenes alone has no
        // targets there, and nothing to compare: its pages are already the
        // unconstrained optimum.
        let applies = measured.iter().all(|&s| quotas.applies_to(s));
        let targets = quotas.exposure.targets.filter(|_| applies);
        // Each config serves pages of its own (users respond), so each is
        // measured against the frontier of its own pages; the first
        // config's is traced even without targets, to be printed.
        let trace = extras.frontier && !is_oracle && (targets.is_some() || i == 0);
        let options = EvalOptions {
            measured: measured.to_vec(),
            record_pages: (extras.hindsight && !is_oracle) || trace,
            oracle,
        };
        let eval = warm.branch().serve(world, engine, days, &options);
        let mut row = Row::new(name, &eval, targets);
        if extras.hindsight && applies && !is_oracle {
            row = row.with_hindsight(&eval, quotas);
        }
        if trace {
            let points = frontier(
                &eval.pages,
                world.streamers.len(),
                quotas,
                quotas.exposure.targets,
            );
            if targets.is_some() {
                row.vs_frontier = frontier_at(&points, row.gini)
                    .map(|best| row.objective / row.measured_requests.max(1) as f64 / best);
            }
            if i == 0 {
                out.frontier = Some(points);
            }
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
    add_efficiency(&mut out.rows, has_oracle);
    out
}

/// Each flow row's lift in participating brands' own-live GMV as a share
/// of the oracle's (the last row, when there is one), both against the
/// first row.
fn add_efficiency(rows: &mut [Row], has_oracle: bool) {
    let (Some(base), Some(oracle)) = (rows.first(), rows.last().filter(|_| has_oracle)) else {
        return;
    };
    let gain = |r: &Row| r.flow.participant_live_gmv - base.flow.participant_live_gmv;
    let best = gain(oracle);
    if best <= 0.0 {
        return;
    }
    let gains: Vec<f64> = rows.iter().map(gain).collect();
    let expected = oracle.flow.expected_net_live_gmv;
    for (row, g) in rows.iter_mut().zip(gains).skip(1) {
        if row.flow.impressions > 0 {
            row.efficiency = Some(g / best);
            row.expected_efficiency =
                (expected > 0.0).then(|| row.flow.expected_net_live_gmv / expected);
        }
    }
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
                "chuanliu flow (own = brands' own channels, shelf goods too; live = participating brands' own live streams; imp% = flow slots per 100 served; d% against the first config, ± one paired standard error; exp.live / exp.net = the ground truth's expected GMV of the pages the flow acted on minus the same engine's pages without it, participants' own-live / all; eff = live lift over the oracle's; xeff = exp.live over the oracle's):"
            )?;
            write!(f, "{}", FlowTable(&self.rows))?;
        }
        if self.rows.iter().any(|r| r.flow.holdout.holdout_units > 0) {
            writeln!(
                f,
                "holdout (what the service estimates, yuan over the treated units, [95% interval]) beside the paired truth against the first config (yuan, ± one standard error): live = participants' own live streams, all = every channel; exp = the ground truth's expected net effect on the pages the flow acted on:"
            )?;
            write!(f, "{}", HoldoutTable(&self.rows))?;
        }
        Ok(())
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
            "{:<26} {:>9} {:>6} {:>8} {:>10} {:>10} {:>10} {:>11} {:>9} {:>10} {:>10} {:>10} {:>9} {:>6} {:>6} {:>8}",
            "config",
            "flow.imp",
            "imp%",
            "attr.ord",
            "attr.GMV",
            "own.GMV",
            "live.GMV",
            "live.d%",
            "exp.live",
            "other.live",
            "sim.GMV",
            "GMV.d%",
            "exp.net",
            "eff%",
            "xeff%",
            "rew.exp"
        )?;
        let base = self.0.first();
        let lift = |l: Option<Lift>| l.map_or("-".to_string(), |l| l.to_string());
        for r in self.0 {
            let fl = &r.flow;
            writeln!(
                f,
                "{:<26} {:>9} {:>6.2} {:>8} {:>10.0} {:>10.0} {:>10.0} {:>11} {:>+9.0} {:>10.0} {:>10.0} {:>10} {:>+9.0} {:>6} {:>6} {:>8.1}",
                r.name,
                fl.impressions,
                fl.impressions as f64 * 100.0 / r.served_slots.max(1) as f64,
                fl.attributed_purchases,
                fl.attributed_gmv,
                fl.brand_self_gmv,
                fl.participant_live_gmv,
                lift(base.and_then(|b| r.live_lift(b))),
                fl.expected_net_live_gmv,
                fl.other_live_gmv,
                r.simulated_gmv,
                lift(base.and_then(|b| r.gmv_lift(b))),
                fl.expected_net_gmv,
                opt(r.efficiency.map(|e| e * 100.0), 0),
                opt(r.expected_efficiency.map(|e| e * 100.0), 0),
                fl.reward_exposure,
            )?;
        }
        Ok(())
    }
}

/// The flow's holdout estimate under each config that has one, beside the
/// paired difference from the first config it estimates.
pub struct HoldoutTable<'a>(pub &'a [Row]);

impl fmt::Display for HoldoutTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "{:<26} {:>8} {:>8} {:>26} {:>16} {:>9} {:>26} {:>16} {:>9} {:>9} {:>9}",
            "config",
            "treated",
            "held",
            "holdout.live",
            "paired.live",
            "exp.live",
            "holdout.all",
            "paired.all",
            "exp.net",
            "attr.GMV",
            "ghost.GMV",
        )?;
        let Some(base) = self.0.first() else {
            return Ok(());
        };
        let estimate =
            |i: Option<crate::chuanliu::Increment>| i.map_or("-".to_string(), |i| i.to_string());
        let paired = |now: &[f64], then: &[f64]| {
            paired_difference(now, then)
                .map_or("-".to_string(), |(d, se)| format!("{d:+.0}±{se:.0}"))
        };
        for r in self.0.iter().filter(|r| r.flow.holdout.holdout_units > 0) {
            let h = &r.flow.holdout;
            writeln!(
                f,
                "{:<26} {:>8} {:>8} {:>26} {:>16} {:>+9.0} {:>26} {:>16} {:>+9.0} {:>9.0} {:>9.0}",
                r.name,
                h.treated_units,
                h.holdout_units,
                estimate(h.own_live_gmv),
                paired(
                    &r.user_participant_live_gmv,
                    &base.user_participant_live_gmv
                ),
                r.flow.expected_net_live_gmv,
                estimate(h.total_gmv),
                paired(&r.user_gmv, &base.user_gmv),
                r.flow.expected_net_gmv,
                r.flow.attributed_gmv,
                h.ghost.gmv(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
