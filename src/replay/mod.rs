//! Offline replay: a traffic log's requests through the very same
//! [`Engine`], in time order, with purchases applied to the flow as they
//! happened and stream status changes applied to the catalog.
//!
//! **Shards.** Users are split over `shards` by a stable hash of the user
//! id, as N server replicas behind a user-keyed balancer would split them:
//! each shard has its own catalog copy and its own [`RankState`] (exposure
//! controller, flow budget), exactly as each replica has, starting empty or
//! from a server's snapshot ([`StartState`]). Shards run in
//! parallel (rayon) and each is sequential, so a given shard count gives the
//! same result on every run and on any number of cores; one shard replays a
//! single server.
//!
//! **Exactness.** Replaying a log a server wrote, with one shard, the same
//! config and catalog and an empty start state, gives the rankings it served
//! (tested in `tests/replay.rs`), provided the server ranked one request at a
//! time: concurrent requests update the shared state in an order the log
//! cannot fully record.
//!
//! **Interactive.** On a simulated log, the simulated users can answer the
//! pages ([`Responder`], `interactive.rs`): realized clicks, purchases and
//! GMV, with their purchases in place of the log's reaching the flow.

pub mod charts;
mod figures;
mod interactive;
mod log;
pub mod ope;
pub mod report;
mod start;
mod table;

pub use figures::{Figures, Summary};
pub use interactive::{InteractiveError, Responder};
pub use log::{Entry, Log, LogReadError, Propensity, Request, RequestRewards, Step, read};
pub use start::StartState;

use crate::catalog::Catalog;
use crate::config::Experiments;
use crate::domain::{ItemKind, Millis, Reason};
use crate::engine::{BASE, Engine, RankQuery, RankState, Ranking, Slot};
use crate::sim::hindsight::Page;
use crate::traffic::PropensityKind;
use interactive::Arm;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one replay produced.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// The replayed policy's figures.
    pub replayed: Figures,
    /// The same figures for the pages the log says were served (over the
    /// requests that carry them).
    pub logged: Figures,
    /// Requests the engine refused (invalid in the log), and the first
    /// reason.
    pub refused: u64,
    pub first_refusal: Option<String>,
    /// Requests whose replayed page equals the logged one, of those that
    /// carry one.
    pub identical: u64,
    /// Every replayed ranking, in log order (with `keep_rankings`).
    pub rankings: Vec<RankingRow>,
    /// Logged pages with propensities, against the replayed ones, for the
    /// off-policy estimates; and how many logged pages had none.
    pub ope_samples: Vec<ope::Sample>,
    /// Logged slots with marginal propensities, for the position-based
    /// estimates.
    pub rounds: Vec<ope::position::Round>,
    pub without_propensities: usize,
    /// Interactive replay: requests whose user the simulated world does not
    /// know (their pages are not answered).
    pub unanswered: u64,
    /// The replayed pages of quota scenes (with `Options::hindsight`).
    pub recorded: Recorded,
    /// The replayed figures per arm the log names (`base` for requests in
    /// none); empty when the log names no arm.
    pub by_arm: BTreeMap<String, Figures>,
}

/// The replayed pages of the scenes quotas act on, kept for the hindsight
/// comparison ([`crate::sim::frontier::standing`]): each page's allocation
/// inputs, and what the replayed policy got from them.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub pages: Vec<Page>,
    /// Exposure x score before exposure control, summed over the pages.
    pub objective: f64,
    pub tier_exposure: [f64; 3],
    /// Per streamer (the catalog's, densely numbered).
    pub streamer_exposure: Vec<f64>,
}

impl Recorded {
    fn merge(&mut self, other: Recorded) {
        self.pages.extend(other.pages);
        self.objective += other.objective;
        for t in 0..3 {
            self.tier_exposure[t] += other.tier_exposure[t];
        }
        figures::add_exposure(&mut self.streamer_exposure, &other.streamer_exposure);
    }
}

/// The cascade sample of one request: its logged slots (with
/// propensities and rewards) against the replayed page. `None` unless every
/// logged slot has a cascade propensity (a page from slot 0, as the reader
/// checked).
fn ope_sample(
    record: &Request,
    ranking: &Ranking,
    logged: &[ope::Estimates],
    rewards: Option<&RequestRewards>,
) -> Option<ope::Sample> {
    record
        .served
        .iter()
        .zip(logged)
        .map(|(s, &logged_estimate)| {
            let propensity = s.propensity_of(PropensityKind::Cascade)?;
            let target = ranking.slots.iter().find(|t| t.position == s.position);
            Some(ope::LoggedSlot {
                propensity,
                target_agrees: target.is_some_and(|t| s.is(&t.item_id, t.kind)),
                click: f64::from(u8::from(rewards.is_some_and(|r| r.clicked(s)))),
                gmv: rewards.map_or(0.0, |r| r.gmv(s)),
                logged_estimate,
                target_estimate: target.map_or_else(ope::Estimates::default, |t| ope::Estimates {
                    pctr: t.pctr,
                    expected_value: t.expected_value,
                }),
            })
        })
        .collect()
}

/// The position-based rounds of one request: its logged slots with
/// marginal propensities, against `policy` made from the replayed page and
/// the engine's scoring of the candidates (`scored`: kind, id, score,
/// eligible; empty for the engine's own page, which needs none).
fn rounds(
    record: &Request,
    ranking: &Ranking,
    scored: &[(ItemKind, String, f64, bool)],
    policy: ope::TargetPolicy,
    rewards: Option<&RequestRewards>,
    log: &Log,
) -> Vec<ope::position::Round> {
    let marginal: Vec<(&Entry, f64)> = record
        .served
        .iter()
        .filter_map(|s| Some((s, s.propensity_of(PropensityKind::Marginal)?)))
        .collect();
    if marginal.is_empty() {
        return Vec::new();
    }
    let proposal = ope::Proposal {
        ranking,
        candidates: scored,
        request_id: &record.query.request_id,
    };
    let positions: Vec<u32> = marginal.iter().map(|(s, _)| s.position).collect();
    let targets = policy.at(&positions, &proposal, log);
    marginal
        .into_iter()
        .zip(targets)
        .map(|((s, propensity), target)| ope::position::Round {
            position: s.position,
            item: s.item,
            propensity,
            click: f64::from(u8::from(rewards.is_some_and(|r| r.clicked(s)))),
            gmv: rewards.map_or(0.0, |r| r.gmv(s)),
            target,
        })
        .collect()
}

/// One replayed ranking, as `--write-rankings` writes it (a JSON line or
/// a Parquet row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingRow {
    pub request_id: String,
    pub user_id: String,
    pub time: crate::domain::Millis,
    pub scene: crate::domain::Scene,
    pub item_ids: Vec<String>,
    pub kinds: Vec<ItemKind>,
    pub tiers: Vec<crate::domain::Tier>,
    pub reasons: Vec<Vec<Reason>>,
}

impl RankingRow {
    fn new(query: &crate::engine::RankQuery, r: &Ranking) -> RankingRow {
        RankingRow {
            request_id: query.request_id.clone(),
            user_id: query.user_id.clone(),
            time: query.now,
            scene: query.scene,
            item_ids: r.slots.iter().map(|s| s.item_id.clone()).collect(),
            kinds: r.slots.iter().map(|s| s.kind).collect(),
            tiers: r.slots.iter().map(|s| s.tier).collect(),
            reasons: r.slots.iter().map(|s| s.reasons.iter().collect()).collect(),
        }
    }
}

/// A config's experiments, for a replay to rank each user under their own
/// arm's engine and controller, as the server did.
#[derive(Debug, Clone, Copy)]
pub struct Arms<'a> {
    pub experiments: &'a Experiments,
    /// One engine per variant, in `experiments.variants()` order.
    pub engines: &'a [Engine],
    /// Replay only the requests the log says ran under this arm
    /// (`experiment:arm`); the others are skipped.
    pub only: Option<&'a str>,
    /// Rank every request under this variant (an index into
    /// `experiments.variants()`), whatever the user's own.
    pub as_variant: Option<usize>,
}

impl<'a> Arms<'a> {
    /// The engine and variant label `user`'s request ranks under.
    fn for_user(&self, user: &str) -> (&'a Engine, &'a str) {
        let i = self
            .as_variant
            .unwrap_or_else(|| self.experiments.variant_of(user));
        (&self.engines[i], &self.experiments.variants()[i].label)
    }
}

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    pub shards: usize,
    /// Keep every ranking (for `--write-rankings`).
    pub keep_rankings: bool,
    /// Simulated users answer the pages (interactive replay); their
    /// purchases, not the log's, reach the flow.
    pub responder: Option<&'a Responder>,
    /// Every shard's flow starts from this snapshot (else empty).
    pub start: Option<&'a StartState>,
    /// Keep the pages of quota scenes for the hindsight comparison.
    pub hindsight: bool,
    /// The policy the position-based estimates evaluate.
    pub target: ope::TargetPolicy,
    /// Experiments to rank under (else every request ranks under the
    /// engine given to [`run`]).
    pub arms: Option<Arms<'a>>,
}

/// The shard of `user` among `shards`: a fixed hash, so the split does not
/// depend on the build or the run.
pub fn shard_of(user: &str, shards: usize) -> usize {
    crc32fast::hash(user.as_bytes()) as usize % shards.max(1)
}

/// Replays `log` under `engine` against `catalog` (copied per shard once
/// the log changes a stream's status).
/// `progress` counts requests done, for a progress bar.
pub fn run(
    engine: &Engine,
    catalog: &Catalog,
    log: &Log,
    options: &Options,
    progress: &AtomicU64,
) -> Replayed {
    let shards = options.shards.max(1);
    let index = figures::StreamerIndex::new(catalog);
    // Each step's shard, hashed once (not once per shard); `None` for steps
    // every shard applies (stream status).
    let owners: Vec<Option<usize>> = log
        .steps
        .iter()
        .map(|s| s.user().map(|u| shard_of(u, shards)))
        .collect();
    let parts: Vec<Replayed> = (0..shards)
        .into_par_iter()
        .map(|shard| {
            replay_shard(
                engine, catalog, log, shard, &owners, options, &index, progress,
            )
        })
        .collect();
    let mut out = Replayed::default();
    // Merged in shard order: the same result for the same shard count.
    for part in parts {
        out.replayed.merge(&part.replayed);
        out.logged.merge(&part.logged);
        out.refused += part.refused;
        out.first_refusal = out.first_refusal.or(part.first_refusal);
        out.identical += part.identical;
        out.rankings.extend(part.rankings);
        out.ope_samples.extend(part.ope_samples);
        out.rounds.extend(part.rounds);
        out.without_propensities += part.without_propensities;
        out.unanswered += part.unanswered;
        out.recorded.merge(part.recorded);
        for (label, figures) in part.by_arm {
            match out.by_arm.get_mut(&label) {
                Some(mine) => mine.merge(&figures),
                None => {
                    out.by_arm.insert(label, figures);
                }
            }
        }
    }
    out.rankings
        .sort_by(|a, b| (a.time, &a.request_id).cmp(&(b.time, &b.request_id)));
    let params = &engine.params().chuanliu;
    out.replayed.flow_budget = params.daily_impressions * shards as u64;
    out
}

#[expect(
    clippy::too_many_arguments,
    reason = "one shard's share of `run`'s inputs"
)]
fn replay_shard(
    engine: &Engine,
    catalog: &Catalog,
    log: &Log,
    shard: usize,
    owners: &[Option<usize>],
    options: &Options,
    index: &figures::StreamerIndex,
    progress: &AtomicU64,
) -> Replayed {
    // Copied on the first stream status change only: a server's log has
    // none, and copying a large catalog per shard is not free.
    let mut catalog = std::borrow::Cow::Borrowed(catalog);
    let catalog_items = catalog.goods_iter().count() + catalog.streams().count();
    // Per-arm figures only for a log that names arms: they double the
    // bookkeeping of every page.
    let split = log
        .steps
        .iter()
        .any(|s| matches!(s, Step::Rank(r) if r.arms.is_some()));
    let state = RankState::with_flow(options.start.map(StartState::flow).unwrap_or_default());
    let params = engine.params();
    let mut out = Replayed {
        replayed: Figures::new(index.len(), catalog_items),
        logged: Figures::new(index.len(), catalog_items),
        ..Replayed::default()
    };
    let mut users = options.responder.map(interactive::ShardUsers::new);
    let apply = |e: &crate::domain::Event, out: &mut Replayed| {
        let applied = state.flow.apply(e, &params.chuanliu);
        if let Some(price) = applied.attributed {
            out.replayed.attributed_conversions += 1;
            out.replayed.attributed_gmv += price;
        }
    };
    for (step, owner) in log.steps.iter().zip(owners) {
        if owner.is_some_and(|o| o != shard) {
            continue;
        }
        if let Some(users) = &mut users {
            for e in users.due(Some(Millis(step.time()))) {
                apply(&e, &mut out);
            }
        }
        match step {
            Step::Status(s) => {
                catalog.to_mut().set_live(&s.stream_id, s.live);
            }
            // Interactive: the log's purchases answered the logged pages;
            // the simulated users' answers to the replayed ones stand in.
            Step::Purchase(_) if users.is_some() => {}
            Step::Purchase(e) => apply(e, &mut out),
            Step::Rank(record) => {
                progress.fetch_add(1, Ordering::Relaxed);
                let query = &record.query;
                let arms = options.arms;
                if let Some(only) = arms.and_then(|a| a.only)
                    && !record.ran_under(only)
                {
                    continue;
                }
                // The user's arm's engine and controller, as the server ranked.
                let (engine, variant) = arms.map_or((engine, BASE), |a| a.for_user(&query.user_id));
                let params = engine.params();
                let evaluation = match engine.evaluate(&catalog, query, Some(&state.flow)) {
                    Ok(e) => e,
                    Err(e) => {
                        out.refused += 1;
                        if out.first_refusal.is_none() {
                            out.first_refusal =
                                Some(format!("request `{}`: {e}", query.request_id));
                        }
                        continue;
                    }
                };
                // Quota scenes' pages, for the hindsight comparison.
                let recorded = options.hindsight && params.quotas.applies_to(query.scene);
                if recorded {
                    let page =
                        Page::of(&evaluation, query.slots, |s| index.get(s).map(|i| i as u32));
                    out.recorded.pages.push(page);
                }
                // The logged page, valued with this evaluation's estimates.
                let mut logged_estimates = Vec::new();
                let rewards = log.rewards.get(&query.request_id);
                if !record.served.is_empty() {
                    let page: Vec<figures::PageSlot> = record
                        .served
                        .iter()
                        .map(|s| {
                            let i = (0..evaluation.len()).find(|&i| {
                                let c = evaluation.candidate(i);
                                s.is(&c.item_id, c.kind)
                            });
                            let e = i.map(|i| evaluation.estimate(i));
                            logged_estimates.push(ope::Estimates {
                                pctr: e.map_or(0.0, |e| e.pctr),
                                expected_value: e.map_or(0.0, |e| e.expected_value),
                            });
                            figures::PageSlot {
                                item: (s.kind, &s.item_id),
                                exposure: params
                                    .quotas
                                    .position_weights
                                    .weight(s.position as usize),
                                tier: i.map(|i| evaluation.tier(i)),
                                streamer: i.and_then(|i| evaluation.streamer(i)),
                                expected_value: i
                                    .map_or(0.0, |i| evaluation.estimate(i).expected_value),
                                flow: false,
                            }
                        })
                        .collect();
                    out.logged.add_page(query, &page, index);
                    if let Some(users) = &mut users {
                        let served: Vec<(&str, ItemKind)> = record
                            .served
                            .iter()
                            .map(|s| (s.item_id.as_str(), s.kind))
                            .collect();
                        if let Some(o) = users.respond(Arm::Logged, query, &served, &catalog) {
                            out.logged.add_outcome(o);
                        }
                    }
                }
                // A stochastic policy draws on the engine's scoring of every
                // candidate, which allocation consumes.
                let scored: Vec<(ItemKind, String, f64, bool)> = if options.target.deterministic()
                    || !record
                        .served
                        .iter()
                        .any(|s| s.propensity_of(PropensityKind::Marginal).is_some())
                {
                    Vec::new()
                } else {
                    (0..evaluation.len())
                        .map(|i| {
                            let c = evaluation.candidate(i);
                            let score = evaluation.scores()[i];
                            (
                                c.kind,
                                c.item_id.to_string(),
                                score,
                                evaluation.eligible()[i],
                            )
                        })
                        .collect()
                };
                let ranking =
                    state.with_exposure(variant, |e| engine.allocate(evaluation, e, query));
                let page: Vec<figures::PageSlot> = ranking
                    .slots
                    .iter()
                    .map(|s| figures::PageSlot {
                        item: (s.kind, &s.item_id),
                        exposure: s.exposure,
                        tier: Some(s.tier),
                        streamer: s.streamer_id.as_deref(),
                        expected_value: s.expected_value,
                        flow: s.reasons.contains(Reason::Chuanliu),
                    })
                    .collect();
                out.replayed.add_page(query, &page, index);
                if split {
                    let label = record.arms.as_deref().unwrap_or(BASE);
                    if !out.by_arm.contains_key(label) {
                        let fresh = Figures::new(index.len(), catalog_items);
                        out.by_arm.insert(label.to_string(), fresh);
                    }
                    let figures = out.by_arm.get_mut(label).expect("inserted above");
                    figures.add_page(query, &page, index);
                }
                if recorded {
                    let r = &mut out.recorded;
                    r.streamer_exposure.resize(index.len(), 0.0);
                    // A slot's score is its score before exposure control.
                    for s in &ranking.slots {
                        r.objective += s.exposure * s.score;
                        r.tier_exposure[s.tier.index()] += s.exposure;
                        if let Some(i) = s.streamer_id.as_deref().and_then(|id| index.get(id)) {
                            r.streamer_exposure[i] += s.exposure;
                        }
                    }
                }
                if users.is_none() {
                    // Nobody saw a replayed page: its flow impressions are
                    // taken as seen, so attribution on it is an upper bound.
                    for s in ranking
                        .slots
                        .iter()
                        .filter(|s| s.reasons.contains(Reason::Chuanliu))
                    {
                        if let Some(seen) = seen_as_served(query, s, &catalog) {
                            apply(&seen, &mut out);
                        }
                    }
                }
                if let Some(users) = &mut users {
                    let shown: Vec<(&str, ItemKind)> = ranking
                        .slots
                        .iter()
                        .map(|s| (s.item_id.as_str(), s.kind))
                        .collect();
                    match users.respond(Arm::Replayed, query, &shown, &catalog) {
                        Some(o) => out.replayed.add_outcome(o),
                        None => out.unanswered += 1,
                    }
                }
                if !record.served.is_empty() {
                    let rounds = rounds(record, &ranking, &scored, options.target, rewards, log);
                    match ope_sample(record, &ranking, &logged_estimates, rewards) {
                        Some(sample) => out.ope_samples.push(sample),
                        None if rounds.is_empty() => out.without_propensities += 1,
                        None => {}
                    }
                    out.rounds.extend(rounds);
                }
                if !record.served.is_empty()
                    && record.served.len() == ranking.slots.len()
                    && record
                        .served
                        .iter()
                        .zip(&ranking.slots)
                        .all(|(a, b)| a.position == b.position && a.is(&b.item_id, b.kind))
                {
                    out.identical += 1;
                }
                if options.keep_rankings {
                    out.rankings.push(RankingRow::new(query, &ranking));
                }
            }
        }
    }
    // Purchases after the last step still count towards attribution.
    if let Some(users) = &mut users {
        for e in users.due(None) {
            apply(&e, &mut out);
        }
    }
    out.replayed.holdout = state.flow.holdout_state();
    out
}

/// The impression event of a replayed page's flow slot, as if the user had
/// seen it when it was served, resolved for the flow as a logged one is.
fn seen_as_served(
    query: &RankQuery,
    slot: &Slot,
    catalog: &Catalog,
) -> Option<crate::domain::Event> {
    let impression = crate::traffic::Impression {
        time: query.now,
        event_id: format!("{}#{}", query.request_id, slot.item_id),
        request_id: query.request_id.clone(),
        user_id: query.user_id.clone(),
        item_id: slot.item_id.clone(),
        kind: slot.kind,
        position: slot.position,
        streamer_id: slot.streamer_id.clone(),
    };
    crate::domain::Event::flow_impression(&impression, catalog)
}
