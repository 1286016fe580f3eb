//! `[scoring]` (where pCTR and pCVR come from, per scene) and `[gates]`
//! (quality-score curves and cold-start support).

use super::Curve;
use super::check::{Invalid, in_range, invalid};
use super::raw::{RawCurve, RawGates, RawScoring, RawSource};
use crate::domain::{Millis, Scene};

/// How the caller's pCTR/pCVR estimates are combined with the model's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScoreSource {
    /// The caller's when sent, else the model's.
    Upstream,
    /// Always the model's.
    Model,
    /// `w * caller's + (1 - w) * model's` when the caller sent one, else the model's.
    Blend { upstream_weight: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoringConfig {
    per_scene: [ScoreSource; Scene::ALL.len()],
    /// Order value (yuan) for a candidate whose price is unknown.
    pub default_order_value: f64,
}

impl ScoringConfig {
    pub fn source(&self, scene: Scene) -> ScoreSource {
        self.per_scene[scene.index()]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
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

pub(super) fn validate_scoring(scoring: RawScoring) -> Result<ScoringConfig, Invalid> {
    let source = |key: &str, source: RawSource, weight: f64| -> Result<ScoreSource, Invalid> {
        Ok(match source {
            RawSource::Upstream => ScoreSource::Upstream,
            RawSource::Model => ScoreSource::Model,
            RawSource::Blend => ScoreSource::Blend {
                upstream_weight: in_range(key, weight, 0.0, 1.0)?,
            },
        })
    };
    let base = source(
        "scoring.upstream_weight",
        scoring.source,
        scoring.upstream_weight,
    )?;
    let mut per_scene = [base; Scene::ALL.len()];
    for (name, over) in &scoring.scenes {
        let scene = Scene::from_name(name).ok_or_else(|| {
            invalid(
                &format!("scoring.scenes.{name}"),
                "unknown scene; expected one of recommend, follow, mall, search, shop",
            )
        })?;
        per_scene[scene.index()] = source(
            &format!("scoring.scenes.{name}.upstream_weight"),
            over.source.unwrap_or(scoring.source),
            over.upstream_weight.unwrap_or(scoring.upstream_weight),
        )?;
    }
    Ok(ScoringConfig {
        per_scene,
        default_order_value: in_range(
            "scoring.default_order_value",
            scoring.default_order_value,
            0.0,
            1e7,
        )?,
    })
}

pub(super) fn validate_gates(gates: RawGates) -> Result<GateConfig, Invalid> {
    let curve = |key: &str, raw: RawCurve| -> Result<Curve, Invalid> {
        Curve::new(raw.points.into_iter().map(|[x, y]| (x, y)).collect())
            .map_err(|r| invalid(key, r))
    };
    let cold = gates.cold_start;
    Ok(GateConfig {
        product: curve("gates.product.points", gates.product)?,
        shop_experience: curve("gates.shop_experience.points", gates.shop_experience)?,
        reputation: curve("gates.reputation.points", gates.reputation)?,
        cold_start: ColdStart {
            window_ms: (in_range(
                "gates.cold_start.max_age_days",
                cold.max_age_days,
                0.0,
                365.0,
            )? * Millis::MS_PER_DAY as f64) as i64,
            boost: in_range("gates.cold_start.boost", cold.boost, 1.0, 10.0)?,
        },
        reason_threshold: {
            let t = in_range("gates.reason_threshold", gates.reason_threshold, 0.0, 1.0)?;
            if t >= 1.0 {
                return Err(invalid("gates.reason_threshold", "must be below 1"));
            }
            t
        },
    })
}
