//! Stage 3: quality gates and cold-start support. Product, shop-experience
//! and reputation scores map through the config curves to multipliers (low
//! scores lose traffic, high ones gain); new sellers get a tapering boost.

use super::resolve::Resolved;
use crate::config::GateConfig;
use crate::domain::{Millis, Reason, Reasons};

/// The combined multiplier and the reason codes it earned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateOutcome {
    pub multiplier: f64,
    pub reasons: Reasons,
}

pub fn apply(gates: &GateConfig, r: &Resolved, now: Millis) -> GateOutcome {
    let curve = |c: &crate::config::Curve, s: Option<f64>| s.map_or(1.0, |s| c.eval(s));
    let quality = curve(&gates.product, r.scores.product)
        * curve(&gates.shop_experience, r.scores.shop_experience)
        * curve(&gates.reputation, r.scores.reputation);
    let cold = r.created_at().map_or(1.0, |created| {
        gates.cold_start.multiplier(now.since(created))
    });

    let mut reasons = Reasons::default();
    if quality < 1.0 - gates.reason_threshold {
        reasons.insert(Reason::GatePenalty);
    } else if quality > 1.0 + gates.reason_threshold {
        reasons.insert(Reason::GateBoost);
    }
    if cold > 1.0 {
        reasons.insert(Reason::ColdStart);
    }
    GateOutcome {
        multiplier: quality * cold,
        reasons,
    }
}
