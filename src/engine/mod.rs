//! The rank pipeline: resolve -> score -> gate -> allocate -> explain.
//!
//! [`Engine::rank`] is plain synchronous code with no I/O and no clock: the
//! gRPC server and the offline replay call this same function, so a replay
//! reproduces what the server served. A new pipeline stage (the chuanliu flow
//! between gate and allocate, fairness quotas inside allocate) plugs in here.

mod allocate;
mod gate;
mod query;
mod resolve;
mod score;

pub use query::{Candidate, RankQuery, Ranking, Slot};
pub use score::{Estimate, combine};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::domain::{FieldError, Reason};
use crate::model::Model;
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

    /// Ranks one query against the catalog.
    pub fn rank(&self, catalog: &Catalog, query: &RankQuery) -> Result<Ranking, RankError> {
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
        let gates: Vec<_> = items
            .iter()
            .map(|r| gate::apply(&self.config.gates, r, query.now))
            .collect();

        let scores: Vec<f64> = estimates
            .iter()
            .zip(&gates)
            .map(|(e, g)| e.expected_value * g.multiplier)
            .collect();
        let eligible: Vec<bool> = items.iter().map(|r| r.eligible).collect();
        let placed = allocate::top_k(&scores, &eligible, query.slots as usize);

        let slots = placed
            .into_iter()
            .enumerate()
            .map(|(position, i)| {
                let (r, e) = (&items[i], &estimates[i]);
                let mut reasons = gates[i].reasons;
                reasons.insert(Reason::Organic);
                Slot {
                    position: position as u32,
                    item_id: r.candidate.item_id.clone(),
                    kind: r.candidate.kind,
                    streamer_id: r.streamer_id.map(str::to_string),
                    tier: r.tier,
                    score: scores[i],
                    expected_value: e.expected_value,
                    pctr: e.pctr,
                    pcvr: e.pcvr,
                    reasons,
                    resolved: r.resolved,
                }
            })
            .collect();

        Ok(Ranking {
            request_id: query.request_id.clone(),
            slots,
            config_version: self.config.version.clone(),
            model_version: self.model.version().to_string(),
            unresolved: items.iter().filter(|r| !r.resolved).count() as u32,
            ineligible: items.iter().filter(|r| !r.eligible).count() as u32,
        })
    }
}

#[cfg(test)]
mod tests;
