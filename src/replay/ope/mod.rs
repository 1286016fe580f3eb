//! Off-policy estimates of the replayed policy's value from a log that
//! carries the logging policy's propensities and the observed rewards, in
//! two families, one per kind of propensity (docs/replay.md):
//!
//! - [`cascade`]: per request, on propensities given the slots above;
//! - [`position`]: per impression, on marginal per-position propensities,
//!   as Open Bandit Pipeline defines its estimators.

pub mod cascade;
mod policy;
pub mod position;

pub use cascade::{Estimates, Estimates4, LoggedSlot, OffPolicy, Sample, evaluate};
pub use policy::{Proposal, TargetPolicy};

use serde::Serialize;

/// A value with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    /// The mean of `terms` with a normal-approximation interval.
    fn from_terms(terms: &[f64]) -> Estimate {
        let n = terms.len().max(1) as f64;
        let mean = terms.iter().sum::<f64>() / n;
        Estimate::around(mean, terms)
    }

    /// `value` with the normal-approximation interval of the mean of
    /// `terms` (for a ratio estimator, the terms of its linearization).
    fn around(value: f64, terms: &[f64]) -> Estimate {
        let n = terms.len().max(1) as f64;
        let mean = terms.iter().sum::<f64>() / n;
        let var = terms.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let half = 1.96 * (var / n).sqrt();
        Estimate {
            value,
            low: value - half,
            high: value + half,
        }
    }

    /// The interval cut to what the estimand can be: a policy's value is
    /// within its reward's range, so an interval beyond it says nothing
    /// more (a click rate's interval no longer dips below 0). An estimate
    /// that is itself outside the range (IPW can be) stays inside its
    /// interval.
    fn within(self, range: (f64, f64)) -> Estimate {
        Estimate {
            value: self.value,
            low: self.low.max(range.0.min(self.value)),
            high: self.high.min(range.1.max(self.value)),
        }
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{:.4} [{:.4}, {:.4}]", self.value, self.low, self.high)
    }
}

/// The range of a reward over `values`: from the smaller of 0 and its
/// least value to its greatest (rewards here are counts and money).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((0.0, 0.0), |(lo, hi), v| (f64::min(lo, v), f64::max(hi, v)))
}

/// The logging policy's click-through rate per position, over every
/// logged slot (with or without a propensity).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PositionCtr {
    pub slots: Vec<u64>,
    pub clicks: Vec<u64>,
    pub ctr: Vec<f64>,
}

impl PositionCtr {
    /// Of `(position, clicked)` for every logged slot.
    pub fn of(slots: impl Iterator<Item = (u32, bool)>) -> PositionCtr {
        let mut out = PositionCtr::default();
        for (position, clicked) in slots {
            let k = position as usize;
            if out.slots.len() <= k {
                out.slots.resize(k + 1, 0);
                out.clicks.resize(k + 1, 0);
            }
            out.slots[k] += 1;
            out.clicks[k] += u64::from(clicked);
        }
        out.ctr = out
            .slots
            .iter()
            .zip(&out.clicks)
            .map(|(&n, &c)| if n > 0 { c as f64 / n as f64 } else { 0.0 })
            .collect();
        out
    }
}

/// How the estimates are made (`--max-weight`, `--reward-model`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Largest importance weight (IPS, IPW, DR).
    pub max_weight: f64,
    /// The position-based family's reward model.
    pub reward_model: position::RewardModel,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_weight: 100.0,
            reward_model: position::RewardModel::ItemPosition,
        }
    }
}
