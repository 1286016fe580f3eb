//! The rank pipeline: resolve -> score -> gate -> allocate -> explain.
//!
//! [`Engine::rank`] is plain synchronous code with no I/O and no clock: the
//! gRPC server and the offline replay call this same function, so a replay
//! reproduces what the server served. Everything it depends on is passed in:
//! the catalog, the query (with its time) and the exposure state it reads and
//! updates. A new pipeline stage (the chuanliu flow, between gate and
//! allocate) plugs in here.

mod gate;
mod query;
mod resolve;
mod score;

pub use query::{Candidate, RankQuery, Ranking, Slot};
pub use score::{Estimate, combine};

use crate::allocate::{self, ExposureState, Placement};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::domain::{FieldError, Reason, Scene, Tier};
use crate::model::{FeatureInput, Model};
use gate::GateOutcome;
use resolve::Resolved;
use std::sync::Arc;

/// Why a query could not be ranked. Mapped to gRPC codes in exactly one
/// place (`server::status`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RankError {
    #[error("invalid argument: {0}")]
    InvalidArgument(#[from] FieldError),
}

/// The configuration and model a request is ranked under. Cheap to clone
/// (two `Arc`s); a config reload builds a new `Engine` and swaps it in, and a
/// request in flight keeps the one it started with.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Arc<Config>,
    model: Arc<Model>,
}

impl Engine {
    pub fn new(config: Arc<Config>, model: Arc<Model>) -> Engine {
        Engine { config, model }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Ranks one query against the catalog. `exposure` is the process's (or
    /// replay shard's) exposure state: read for the controller's multipliers
    /// and updated with the served page, for scenes under quotas.
    pub fn rank(
        &self,
        catalog: &Catalog,
        exposure: &ExposureState,
        query: &RankQuery,
    ) -> Result<Ranking, RankError> {
        let evaluation = self.evaluate(catalog, query)?;
        Ok(self.allocate(evaluation, exposure, query))
    }

    /// Fills the page from an [`Evaluation`] of `query` (stage 4, then
    /// explain): in score order outside quota scenes; under quotas, with the
    /// exposure state's multipliers, floors and caps, and the served page is
    /// recorded in `exposure`.
    pub fn allocate(
        &self,
        mut evaluation: Evaluation,
        exposure: &ExposureState,
        query: &RankQuery,
    ) -> Ranking {
        let slots = query.slots as usize;
        let quotas = &self.config.quotas;
        if !quotas.applies_to(query.scene) {
            let placed: Vec<Placement> =
                allocate::top_k(&evaluation.scores, &evaluation.eligible, slots)
                    .into_iter()
                    .map(|index| Placement {
                        index,
                        by_floor: false,
                    })
                    .collect();
            return self.explain(query, &evaluation, &placed);
        }
        let mut items = evaluation.allocation_items();
        evaluation.boost = exposure.adjust(&quotas.exposure, query.now, &mut items);
        for (i, item) in items.iter().enumerate() {
            evaluation.scores[i] = item.score;
            evaluation.eligible[i] = item.eligible;
        }
        let table = quotas.floors.table(slots);
        let placed = allocate::allocate(&items, slots, &table, quotas.max_items_per_streamer);
        let ranking = self.explain(query, &evaluation, &placed);
        let page: Vec<(Tier, Option<&str>, f64)> = placed
            .iter()
            .zip(&ranking.slots)
            .map(|(p, slot)| (items[p.index].tier, items[p.index].streamer, slot.exposure))
            .collect();
        exposure.observe(&quotas.exposure, query.now, &page);
        ranking
    }

    /// The stages before allocation: validate, resolve, score and gate every
    /// candidate. `rank` allocates from this; the simulator's stochastic
    /// logging policy samples from it; training reads its features.
    pub fn evaluate<'a>(
        &self,
        catalog: &'a Catalog,
        query: &'a RankQuery,
    ) -> Result<Evaluation<'a>, RankError> {
        query.validate(&self.config.limits)?;
        let items: Vec<Resolved> = query
            .candidates
            .iter()
            .map(|c| Resolved::new(c, catalog, &self.config))
            .collect();
        let estimates = score::estimate(
            &self.model,
            self.config.scoring.source(query.scene),
            query.scene,
            &items,
        );
        let gates: Vec<GateOutcome> = items
            .iter()
            .map(|r| gate::apply(&self.config.gates, r, query.now))
            .collect();
        let scores = estimates
            .iter()
            .zip(&gates)
            .map(|(e, g)| e.expected_value * g.multiplier)
            .collect();
        let eligible = items.iter().map(|r| r.eligible).collect();
        Ok(Evaluation {
            scene: query.scene,
            boost: vec![1.0; items.len()],
            items,
            estimates,
            gates,
            scores,
            eligible,
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
            ..
        } = evaluation;
        let threshold = self.config.gates.reason_threshold;
        let slots = placed
            .iter()
            .enumerate()
            .map(|(position, &Placement { index: i, by_floor })| {
                let (r, e) = (&items[i], &estimates[i]);
                let mut reasons = gates[i].reasons;
                reasons.insert(if by_floor {
                    Reason::TierFloor
                } else {
                    Reason::Organic
                });
                if boost[i] > 1.0 + threshold {
                    reasons.insert(Reason::ExposureBoost);
                }
                Slot {
                    position: position as u32,
                    candidate: i as u32,
                    item_id: r.candidate.item_id.clone(),
                    kind: r.candidate.kind,
                    streamer_id: r.streamer_id.map(str::to_string),
                    tier: r.tier,
                    score: scores[i],
                    expected_value: e.expected_value,
                    exposure: self.config.quotas.position_weights.weight(position),
                    pctr: e.pctr,
                    pcvr: e.pcvr,
                    reasons,
                    resolved: r.resolved,
                }
            })
            .collect();
        Ranking {
            request_id: query.request_id.clone(),
            slots,
            config_version: self.config.version.clone(),
            model_version: self.model.version().to_string(),
            unresolved: items.iter().filter(|r| !r.resolved).count() as u32,
            ineligible: eligible.iter().filter(|&&e| !e).count() as u32,
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
    /// Exposure-control multipliers already in `scores` (1 where none).
    boost: Vec<f64>,
}

impl<'a> Evaluation<'a> {
    /// What allocation ranks by, per candidate.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Whether each candidate may be placed at all.
    pub fn eligible(&self) -> &[bool] {
        &self.eligible
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
