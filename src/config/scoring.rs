//! `[scoring]` (where pCTR and pCVR come from, per scene) and `[gates]`
//! (quality-score curves and cold-start support).

use super::check::{Invalid, in_range, invalid};
use super::raw::{RawCurve, RawGates, RawScoring, RawSource};
use crate::domain::{Millis, Scene};
use crate::engine::{ColdStart, Curve, GateParams, ScoreSource, ScoringParams};

pub(super) fn validate_scoring(scoring: RawScoring) -> Result<ScoringParams, Invalid> {
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
    Ok(ScoringParams::new(
        per_scene,
        in_range(
            "scoring.default_order_value",
            scoring.default_order_value,
            0.0,
            1e7,
        )?,
    ))
}

pub(super) fn validate_gates(gates: RawGates) -> Result<GateParams, Invalid> {
    let curve = |key: &str, raw: RawCurve| -> Result<Curve, Invalid> {
        Curve::new(raw.points.into_iter().map(|[x, y]| (x, y)).collect())
            .map_err(|r| invalid(key, r))
    };
    let cold = gates.cold_start;
    Ok(GateParams {
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
