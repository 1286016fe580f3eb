//! The rank pipeline: resolve -> score -> gate -> chuanliu -> allocate ->
//! explain.
//!
//! [`Engine::rank`] is plain synchronous code with no I/O and no clock: the
//! gRPC server and the offline replay call this same function, so a replay
//! reproduces what the server served. Everything it depends on is passed in:
//! the catalog, the query (with its time) and the [`RankState`] it reads and
//! updates (the exposure controller and the flow).

mod curve;
mod gate;
mod limits;
mod params;
mod query;
mod resolve;
mod score;
mod state;

pub use curve::Curve;
pub use gate::{ColdStart, GateParams};
pub use limits::Limits;
pub use params::EngineParams;
pub use query::{Candidate, Id, RankQuery, Ranking, Slot};
pub use score::{Estimate, ScoreSource, ScoringParams, combine};
pub use state::{BASE, RankState};

use crate::allocate::{self, ExposureState, Placement, Served};
use crate::catalog::Catalog;
use crate::chuanliu::{CapScope, Flow, Offer, Reservation, Wanted};
use crate::domain::{FieldError, ItemKind, Reason, Reasons, Scene, Tier};
use crate::model::{FeatureInput, Model};
use gate::GateOutcome;
use resolve::{Resolved, Source};
use std::sync::Arc;

/// Why a query could not be ranked. Mapped to gRPC codes in exactly one
/// place (`server::status`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RankError {
    #[error("invalid argument: {0}")]
    InvalidArgument(#[from] FieldError),
}

/// The parameters and model a request is ranked under. Cheap to clone
/// (two `Arc`s); a config reload builds a new `Engine` and swaps it in, and a
/// request in flight keeps the one it started with.
#[derive(Debug, Clone)]
pub struct Engine {
    params: Arc<EngineParams>,
    model: Arc<Model>,
}

impl Engine {
    pub fn new(params: impl Into<Arc<EngineParams>>, model: Arc<Model>) -> Engine {
        Engine {
            params: params.into(),
            model,
        }
    }

    pub fn params(&self) -> &EngineParams {
        &self.params
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Ranks one query against the catalog. `state` is the process's (or
    /// replay shard's): the controller's multipliers are read and the served
    /// page recorded (scenes under quotas); flow impressions are reserved
    /// and, once placed, counted.
    pub fn rank(
        &self,
        catalog: &Catalog,
        state: &RankState,
        query: &RankQuery,
    ) -> Result<Ranking, RankError> {
        self.rank_capped(catalog, state, query, CapScope::Process)
    }

    /// [`Engine::rank`] with the flow's frequency cap checked against
    /// `caps`: a fleet replica passes the places it holds fleet-wide.
    pub fn rank_capped(
        &self,
        catalog: &Catalog,
        state: &RankState,
        query: &RankQuery,
        caps: CapScope,
    ) -> Result<Ranking, RankError> {
        self.rank_in(catalog, &state.exposure, &state.flow, query, caps)
    }

    /// [`Engine::rank_capped`] with the exposure controller given apart
    /// from the flow: an experiment's arm ranks under its own controller
    /// and the flow every arm shares.
    pub fn rank_in(
        &self,
        catalog: &Catalog,
        exposure: &ExposureState,
        flow: &Flow,
        query: &RankQuery,
        caps: CapScope,
    ) -> Result<Ranking, RankError> {
        let evaluation = self.evaluate_capped(catalog, query, Some(flow), caps)?;
        Ok(self.allocate(evaluation, exposure, query))
    }

    /// The brands the flow would show on this query's page, before the cap
    /// (see [`Flow::wanted`]): what a fleet replica holds places for before
    /// it ranks. Empty for a query the limits refuse (checked only when
    /// something is wanted: most users have no affinity to act on).
    pub fn flow_wanted(&self, catalog: &Catalog, flow: &Flow, query: &RankQuery) -> Vec<Wanted> {
        let params = &self.params.chuanliu;
        let target = flow_target(catalog, query);
        let wanted = flow.wanted(params, query.scene, &query.user_id, query.now, target);
        if wanted.is_empty() || query.validate(&self.params.limits).is_err() {
            return Vec::new();
        }
        wanted
    }

    /// Fills the page from an [`Evaluation`] of `query` (then explains it):
    /// in score order outside quota scenes; under quotas, with the exposure
    /// state's multipliers, floors and caps, and the served page is recorded
    /// in `exposure`. Flow impressions reserved for items that were placed
    /// are counted; the others are given back.
    pub fn allocate(
        &self,
        mut evaluation: Evaluation,
        exposure: &ExposureState,
        query: &RankQuery,
    ) -> Ranking {
        let slots = query.slots as usize;
        let quotas = &self.params.quotas;
        if !quotas.applies_to(query.scene) {
            let top = |scores: &[f64], eligible: &[bool]| -> Vec<Placement> {
                allocate::top_k(scores, eligible, slots)
                    .into_iter()
                    .map(|index| Placement {
                        index,
                        by_floor: false,
                        lifted: false,
                    })
                    .collect()
            };
            let placed = top(&evaluation.scores, &evaluation.eligible);
            let ghost_page = evaluation.ghost_page(|items| {
                let scores: Vec<f64> = items.iter().map(|i| i.score).collect();
                let eligible: Vec<bool> = items.iter().map(|i| i.eligible).collect();
                top(&scores, &eligible)
            });
            settle_flow(&mut evaluation, &placed, &ghost_page);
            return self.explain(query, &evaluation, &placed);
        }
        let mut items = evaluation.allocation_items();
        // A ghost's injected stream goes through exposure control as the
        // flow would have had it (a streamer at its share cap is refused
        // for the ghost too), and stays off the served page.
        for g in evaluation.ghosts.iter().filter(|g| g.injected) {
            items[g.index].eligible = g.eligible;
        }
        // Streamers the exposure state does not track are numbered by
        // catalog record (a word, not the id's bytes).
        let record = |i: usize| evaluation.items[i].streamer_record();
        let control = exposure.control_interned(&quotas.exposure, &items, record);
        for g in evaluation.ghosts.iter_mut().filter(|g| g.injected) {
            g.eligible = items[g.index].eligible && !control.refuses(g.index);
            items[g.index].eligible = false;
        }
        for (i, item) in items.iter().enumerate() {
            evaluation.boost[i] = control.lift(item);
            evaluation.eligible[i] = item.eligible && !control.refuses(i);
        }
        let table = quotas.floors.table(slots);
        let max_per_streamer = quotas.max_items_per_streamer;
        // One numbering for the page and the ghosts' page: the exposure
        // read's, else by catalog record alone.
        let streamers = control
            .numbered_or(|| allocate::Streamers::number_interned(&items, max_per_streamer, record));
        let place = |items: &[allocate::Item]| {
            control.place_numbered(items, slots, &table, max_per_streamer, &streamers)
        };
        let placed = place(&items);
        let ghost_page = evaluation.ghost_page(place);
        settle_flow(&mut evaluation, &placed, &ghost_page);
        let ranking = self.explain(query, &evaluation, &placed);
        let page: Vec<Served> = placed
            .iter()
            .zip(&ranking.slots)
            .map(|(p, slot)| Served {
                tier: items[p.index].tier,
                streamer: items[p.index].streamer,
                exposure: slot.exposure,
                // The controller's unit is the organic score: a flow stream
                // lifted many times over must not inflate every price and
                // spreading penalty after it.
                score: items[p.index].score / evaluation.flow_lift(p.index),
            })
            .collect();
        exposure.observe(&quotas.exposure, query.now, &page);
        ranking
    }

    /// The stages before allocation: validate, then the chuanliu flow's
    /// reservations (with `flow`), then resolve, score and gate every
    /// candidate (the request's and any stream the flow injects), then the
    /// flow's boosts and rewards. `rank` allocates from this; the
    /// simulator's stochastic logging policy samples from it; training reads
    /// its features (both without a flow).
    pub fn evaluate<'a>(
        &'a self,
        catalog: &'a Catalog,
        query: &'a RankQuery,
        flow: Option<&'a Flow>,
    ) -> Result<Evaluation<'a>, RankError> {
        self.evaluate_capped(catalog, query, flow, CapScope::Process)
    }

    fn evaluate_capped<'a>(
        &'a self,
        catalog: &'a Catalog,
        query: &'a RankQuery,
        flow: Option<&'a Flow>,
        caps: CapScope<'a>,
    ) -> Result<Evaluation<'a>, RankError> {
        query.validate_fields(&self.params.limits)?;
        let params = &self.params.chuanliu;
        let scene = params.scene(query.scene);
        // Room for the streams offers inject (one per brand at most): growing
        // the page's vector moved it all, 6% of a rank with the flow acting.
        let room = flow.map_or(0, |_| params.affinity.max_brands_per_user);
        let mut items: Vec<Resolved> = Vec::with_capacity(query.candidates.len() + room);
        let request = query.candidates.iter().map(Source::Request);
        items.extend(request.map(|c| Resolved::new(c, catalog, &self.params)));
        // Duplicates once resolved: the records found stand for the ids.
        query.check_duplicates(|i| items[i].record)?;
        let mut offers = flow.map_or_else(Vec::new, |flow| {
            let target = flow_target(catalog, query);
            let on_page = |brand: &str| brand_items(&items, brand);
            let user = &query.user_id;
            flow.offers(params, query.scene, user, query.now, caps, target, on_page)
        });
        // Each offered stream the request did not propose is resolved,
        // scored and gated like any candidate, so offers are valued alike;
        // those not reserved leave again below.
        for o in offers.iter_mut().filter(|o| o.candidate.is_none()) {
            o.candidate = Some(items.len());
            let injected = Candidate::new(o.stream, ItemKind::LiveStream);
            items.push(Resolved::new(
                Source::Injected(Box::new(injected)),
                catalog,
                &self.params,
            ));
        }
        let mut estimates = score::estimate(
            &self.model,
            self.params.scoring.source(query.scene),
            query.scene,
            &items,
        );
        let mut gates: Vec<GateOutcome> = items
            .iter()
            .map(|r| gate::apply(&self.params.gates, r, query.now))
            .collect();
        let mut scores: Vec<f64> = estimates
            .iter()
            .zip(&gates)
            .map(|(e, g)| e.expected_value * g.multiplier)
            .collect();
        // Offers by the value of their stream on this page, best first
        // (stable: equal values keep the strongest affinity first).
        let requested = &items[..query.candidates.len()];
        let mut valued: Vec<(f64, Offer)> = offers
            .into_iter()
            .map(|mut o| {
                o.lift = scene.lift(o.weight(), brand_items(requested, o.brand()), o.taste());
                (scores[o.candidate.expect("set above")] * o.lift, o)
            })
            .collect();
        valued.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut reservations = flow.map_or_else(Vec::new, |flow| {
            let offers = valued.into_iter().map(|(_, o)| o).collect();
            flow.reserve(params, &query.user_id, query.now, caps, offers)
        });
        // Streams injected for offers that were not reserved leave the page.
        let mut kept = query.candidates.len();
        for i in query.candidates.len()..items.len() {
            let Some(r) = reservations.iter_mut().find(|r| r.candidate == Some(i)) else {
                continue;
            };
            r.candidate = Some(kept);
            items.swap(kept, i);
            estimates.swap(kept, i);
            gates.swap(kept, i);
            scores.swap(kept, i);
            kept += 1;
        }
        items.truncate(kept);
        estimates.truncate(kept);
        gates.truncate(kept);
        scores.truncate(kept);
        let mut eligible: Vec<bool> = items.iter().map(|r| r.eligible).collect();
        let mut marks = vec![Reasons::default(); items.len()];
        let mut ghosts = Vec::new();
        let mut lifted = Vec::new();
        for r in &reservations {
            let (i, boost) = (r.candidate.expect("set above"), r.lift);
            if r.ghost {
                // Served as if the flow were not there (a stream injected
                // for the ghost alone is not placeable); allocation places
                // it on a copy of the page as the flow would have.
                let injected = i >= query.candidates.len();
                ghosts.push(Ghost {
                    index: i,
                    eligible: eligible[i],
                    injected,
                    boost,
                });
                if injected {
                    eligible[i] = false;
                }
                continue;
            }
            scores[i] *= boost;
            marks[i].insert(Reason::Chuanliu);
            lifted.push((i, boost));
        }
        let rewards = flow.and_then(|f| {
            f.reward_multipliers(items.iter().map(|r| r.streamer_id), query.now, params)
        });
        if let Some(rewards) = rewards {
            let threshold = self.params.gates.reason_threshold;
            for (i, m) in rewards.into_iter().enumerate() {
                scores[i] *= m;
                if m > 1.0 + threshold {
                    marks[i].insert(Reason::FlowReward);
                }
            }
        }
        Ok(Evaluation {
            scene: query.scene,
            boost: vec![1.0; items.len()],
            items,
            estimates,
            gates,
            scores,
            eligible,
            marks,
            flow: reservations,
            lifted,
            ghosts,
        })
    }

    /// The page for candidates placed in `placed` order (indices into the
    /// query's candidates), with tiers, scores and reason codes.
    pub fn explain(
        &self,
        query: &RankQuery,
        evaluation: &Evaluation,
        placed: &[Placement],
    ) -> Ranking {
        let Evaluation {
            items,
            estimates,
            gates,
            scores,
            boost,
            eligible,
            marks,
            ..
        } = evaluation;
        let threshold = self.params.gates.reason_threshold;
        let slots = placed
            .iter()
            .enumerate()
            .map(
                |(
                    position,
                    &Placement {
                        index: i,
                        by_floor,
                        lifted,
                    },
                )| {
                    let (r, e) = (&items[i], &estimates[i]);
                    let mut reasons = gates[i].reasons.union(marks[i]);
                    reasons.insert(if by_floor {
                        Reason::TierFloor
                    } else {
                        Reason::Organic
                    });
                    if lifted || boost[i] > 1.0 + threshold {
                        reasons.insert(Reason::ExposureBoost);
                    }
                    Slot {
                        position: position as u32,
                        candidate: i as u32,
                        item_id: r.candidate.item_id.to_string(),
                        kind: r.candidate.kind,
                        streamer_id: r.streamer_id.map(str::to_string),
                        tier: r.tier,
                        score: scores[i],
                        expected_value: e.expected_value,
                        exposure: self.params.quotas.position_weights.weight(position),
                        pctr: e.pctr,
                        pcvr: e.pcvr,
                        reasons,
                        resolved: r.resolved(),
                    }
                },
            )
            .collect();
        Ranking {
            request_id: query.request_id.clone(),
            slots,
            config_version: self.params.version.clone(),
            model_version: self.model.version().to_string(),
            unresolved: items.iter().filter(|r| !r.resolved()).count() as u32,
            ineligible: (eligible.iter().filter(|&&e| !e).count()
                - evaluation.ghosts.iter().filter(|g| g.injected).count())
                as u32,
        }
    }
}

/// Every candidate of one query after scoring and gating, in candidate order.
pub struct Evaluation<'a> {
    scene: Scene,
    items: Vec<Resolved<'a>>,
    estimates: Vec<Estimate>,
    gates: Vec<GateOutcome>,
    scores: Vec<f64>,
    eligible: Vec<bool>,
    /// How much exposure control's tier price lifts each candidate: its
    /// ranking key over its score (1 where none). `scores` are before it.
    boost: Vec<f64>,
    /// Reasons stages before allocation gave each candidate (chuanliu,
    /// flow reward); shown on the items placed.
    marks: Vec<Reasons>,
    /// Flow impressions held for this page, settled by allocation.
    flow: Vec<Reservation<'a>>,
    /// The candidates the flow lifted, and by how much (in `scores`).
    lifted: Vec<(usize, f64)>,
    /// The candidates of ghost reservations, and the flow's boost they
    /// would have had.
    ghosts: Vec<Ghost>,
}

/// A ghost reservation's candidate.
#[derive(Debug, Clone, Copy)]
struct Ghost {
    index: usize,
    /// For an injected stream (placeable only on the ghost's page): whether
    /// it may be placed there.
    eligible: bool,
    /// Added to the candidates for the ghost alone.
    injected: bool,
    /// The flow's boost it would have had.
    boost: f64,
}

/// How many of `brand`'s items (its goods, its own streams) the request
/// proposed.
fn brand_items(requested: &[Resolved], brand: &str) -> usize {
    requested
        .iter()
        .filter(|r| r.brand_id == Some(brand))
        .count()
}

/// Where a brand's flow stream is for this query: the brand's live
/// self-broadcast stream, and its index among the candidates (`None`: not
/// proposed).
fn flow_target<'a>(
    catalog: &'a Catalog,
    query: &'a RankQuery,
) -> impl FnMut(&str) -> Option<(&'a str, Option<usize>)> {
    |brand| {
        let stream = catalog.live_self_stream(brand)?;
        let at = query
            .candidates
            .iter()
            .position(|c| c.kind == ItemKind::LiveStream && c.item_id == stream);
        Some((stream, at))
    }
}

/// Counts the flow impressions whose stream was placed (a ghost's: on the
/// page as the flow would have made it); the others are dropped, which
/// gives their budget and cap places back.
fn settle_flow(evaluation: &mut Evaluation, placed: &[Placement], ghost_page: &[Placement]) {
    for r in evaluation.flow.drain(..) {
        let page = if r.ghost { ghost_page } else { placed };
        if page.iter().any(|p| Some(p.index) == r.candidate) {
            r.commit();
        }
    }
}

impl<'a> Evaluation<'a> {
    /// What allocation ranks by, per candidate.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Whether the chuanliu flow changed anything on this page: a stream
    /// reserved (not a ghost), or a score raised by an influencer's reward.
    pub fn flow_acted(&self) -> bool {
        self.flow.iter().any(|r| !r.ghost) || self.marks.iter().any(|m| !m.is_empty())
    }

    /// The page as the flow would have made it for the holdout's ghosts:
    /// `place` on the allocation items with the ghosts' streams boosted and
    /// placeable; empty without ghosts (the common case costs nothing).
    fn ghost_page(
        &self,
        place: impl FnOnce(&[allocate::Item<'a>]) -> Vec<Placement>,
    ) -> Vec<Placement> {
        if self.ghosts.is_empty() {
            return Vec::new();
        }
        let mut items = self.allocation_items();
        for g in &self.ghosts {
            items[g.index].score *= g.boost;
            if g.injected {
                items[g.index].eligible = g.eligible;
            }
        }
        place(&items)
    }

    /// The factor the flow multiplied candidate `i`'s score by (1 for
    /// all but its streams).
    fn flow_lift(&self, i: usize) -> f64 {
        self.lifted
            .iter()
            .find(|&&(j, _)| j == i)
            .map_or(1.0, |&(_, lift)| lift)
    }

    /// Whether each candidate may be placed at all.
    pub fn eligible(&self) -> &[bool] {
        &self.eligible
    }

    /// Candidates evaluated: the request's, then any the flow injected.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Candidate `i` (past the request's own: one the flow injected).
    pub fn candidate(&self, i: usize) -> &Candidate {
        &self.items[i].candidate
    }

    pub fn tier(&self, i: usize) -> Tier {
        self.items[i].tier
    }

    /// The streamer candidate `i`'s exposure is credited to, when known.
    pub fn streamer(&self, i: usize) -> Option<&'a str> {
        self.items[i].streamer_id
    }

    pub fn estimate(&self, i: usize) -> Estimate {
        self.estimates[i]
    }

    /// Every candidate as allocation sees it: score, eligibility, tier and
    /// streamer (before any exposure-control multiplier).
    pub fn allocation_items(&self) -> Vec<allocate::Item<'a>> {
        self.items
            .iter()
            .zip(&self.scores)
            .zip(&self.eligible)
            .map(|((r, &score), &eligible)| allocate::Item {
                score,
                eligible,
                tier: r.tier,
                streamer: r.streamer_id,
            })
            .collect()
    }

    /// The model's inputs for candidate `i`, as the model saw them.
    pub fn features(&self, i: usize) -> FeatureInput {
        self.items[i].features(self.scene)
    }
}

#[cfg(test)]
mod tests;
