//! `[quotas]`: which scenes have quotas, the per-page floors, the
//! per-streamer cap, position weights, tier targets and spreading.

use super::check::{Invalid, in_range, invalid};
use super::raw::{self, RawFloorPolicy, RawQuotas, RawRounding};
use crate::allocate::{ExposureParams, Floors, PositionWeights, QuotaParams, Rounding};
use crate::domain::Scene;
use crate::engine::Limits;

pub(super) fn validate(quotas: RawQuotas, limits: &Limits) -> Result<QuotaParams, Invalid> {
    let scenes = quotas
        .scenes
        .iter()
        .map(|name| {
            Scene::from_name(name).ok_or_else(|| {
                invalid(
                    "quotas.scenes",
                    format!(
                        "unknown scene `{name}`; expected recommend, follow, mall, search or shop"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let f = &quotas.floors;
    let shares = [f.top, f.mid, f.small];
    let max_slots = limits.max_slots as usize;
    let floors = match f.policy {
        RawFloorPolicy::None => Ok(Floors::None),
        RawFloorPolicy::Proportional => {
            let rounding = match f.rounding {
                RawRounding::Floor => Rounding::Floor,
                RawRounding::Ceil => Rounding::Ceil,
            };
            Floors::proportional(shares, rounding, max_slots)
        }
        RawFloorPolicy::Fair => Floors::fair(shares, f.alpha, max_slots),
    }
    .map_err(|(key, reason)| match key.as_str() {
        "" => invalid("quotas.floors", reason),
        key => invalid(&format!("quotas.floors.{key}"), reason),
    })?;
    Ok(QuotaParams::new(
        &scenes,
        in_range(
            "quotas.max_items_per_streamer",
            quotas.max_items_per_streamer,
            0,
            1000,
        )? as u32,
        floors,
        PositionWeights::new(quotas.position_weights)
            .map_err(|reason| invalid("quotas.position_weights", reason))?,
        exposure_params(&quotas.targets, &quotas.spreading)?,
    ))
}

fn exposure_params(t: &raw::RawTargets, s: &raw::RawSpreading) -> Result<ExposureParams, Invalid> {
    let targets = if t.enabled {
        let shares = [
            in_range("quotas.targets.top", t.top, 0.0, 1.0)?,
            in_range("quotas.targets.mid", t.mid, 0.0, 1.0)?,
            in_range("quotas.targets.small", t.small, 0.0, 1.0)?,
        ];
        let sum: f64 = shares.iter().sum();
        if sum > 1.0 + 1e-9 {
            return Err(invalid(
                "quotas.targets",
                format!("top + mid + small sum to {sum}, more than 1"),
            ));
        }
        Some(shares)
    } else {
        None
    };
    // Keys whose meaning changed are refused rather than reinterpreted.
    if t.max_multiplier.is_some() {
        return Err(invalid(
            "quotas.targets.max_multiplier",
            "replaced by max_price: tier prices are added to scores, in mean served scores",
        ));
    }
    if s.half_life_seconds.is_some() {
        return Err(invalid(
            "quotas.spreading.half_life_seconds",
            "replaced by half_life_pages: the window counts pages, so one setting \
             behaves the same at any traffic rate",
        ));
    }
    if s.scale.is_some() {
        return Err(invalid(
            "quotas.spreading.scale",
            "folded into strength: the penalty is strength mean served scores per \
             tier-mean of exposure, linear in the streamer's exposure",
        ));
    }
    Ok(ExposureParams {
        targets,
        tier_half_life_ms: in_range(
            "quotas.targets.half_life_seconds",
            t.half_life_seconds,
            1.0,
            7.0 * 86_400.0,
        )? * 1000.0,
        step: in_range("quotas.targets.step", t.step, 0.0, 10.0)?,
        max_price: in_range("quotas.targets.max_price", t.max_price, 0.0, 100.0)?,
        spread_strength: in_range("quotas.spreading.strength", s.strength, 0.0, 10.0)?,
        spread_half_life_pages: in_range(
            "quotas.spreading.half_life_pages",
            s.half_life_pages,
            1.0,
            1e9,
        )?,
        max_streamers: in_range(
            "quotas.spreading.max_streamers",
            s.max_streamers,
            1,
            100_000_000,
        )? as usize,
        max_streamer_share: in_range("quotas.spreading.max_share", s.max_share, 0.0, 1.0)?,
    })
}
