//! Stage 3: quality gates and cold-start support. Product, shop-experience
//! and reputation scores map through the config curves to multipliers (low
//! scores lose traffic, high ones gain); new sellers get a tapering boost.

use super::curve::Curve;
use super::resolve::Resolved;
use crate::domain::{Millis, Reason, Reasons};

/// Quality-score curves and cold-start support (`[gates]`).
#[derive(Debug, Clone, PartialEq)]
pub struct GateParams {
    pub product: Curve,
    pub shop_experience: Curve,
    pub reputation: Curve,
    pub cold_start: ColdStart,
    /// A combined multiplier further than this from 1 earns a reason code.
    pub reason_threshold: f64,
}

/// Cold-start support: a boost that tapers linearly from `boost` at age 0 to 1
/// at `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdStart {
    pub window_ms: i64,
    pub boost: f64,
}

impl ColdStart {
    /// The multiplier for a seller of this age; 1 outside the window.
    pub fn multiplier(&self, age_ms: i64) -> f64 {
        if self.window_ms <= 0 || age_ms >= self.window_ms {
            return 1.0;
        }
        let left = 1.0 - age_ms.max(0) as f64 / self.window_ms as f64;
        1.0 + (self.boost - 1.0) * left
    }
}

/// The combined multiplier and the reason codes it earned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateOutcome {
    pub multiplier: f64,
    pub reasons: Reasons,
}

pub fn apply(gates: &GateParams, r: &Resolved, now: Millis) -> GateOutcome {
    let curve = |c: &Curve, s: Option<f64>| s.map_or(1.0, |s| c.eval(s));
    let quality = curve(&gates.product, r.scores.product)
        * curve(&gates.shop_experience, r.scores.shop_experience)
        * curve(&gates.reputation, r.scores.reputation);
    let cold = r.created_at().map_or(1.0, |created| {
        gates.cold_start.multiplier(now.since(created))
    });

    // Which codes a candidate earns is as good as random from one to the
    // next, so they are set without branching (the threshold is in [0, 1):
    // a penalty and a boost exclude each other).
    let mut reasons = Reasons::default();
    reasons.insert_if(Reason::GatePenalty, quality < 1.0 - gates.reason_threshold);
    reasons.insert_if(Reason::GateBoost, quality > 1.0 + gates.reason_threshold);
    reasons.insert_if(Reason::ColdStart, cold > 1.0);
    GateOutcome {
        multiplier: quality * cold,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_start_tapers_to_one() {
        let c = ColdStart {
            window_ms: 100,
            boost: 1.5,
        };
        assert_eq!(c.multiplier(0), 1.5);
        assert_eq!(c.multiplier(50), 1.25);
        assert_eq!(c.multiplier(100), 1.0);
        assert_eq!(c.multiplier(1_000), 1.0);
        assert_eq!(
            ColdStart {
                window_ms: 0,
                boost: 2.0
            }
            .multiplier(0),
            1.0
        );
    }
}
