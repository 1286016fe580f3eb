//! `[quotas]`: which scenes have quotas, the per-page floors, the
//! per-streamer cap, position weights, tier targets and spreading.

use super::{ExposureParams, Floors};
use crate::domain::Scene;

/// Fairness quotas applied when filling a page.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaParams {
    enabled: [bool; Scene::ALL.len()],
    /// At most this many items of one streamer on a page (0: no cap).
    pub max_items_per_streamer: u32,
    pub floors: Floors,
    /// How much exposure each slot gives.
    pub position_weights: PositionWeights,
    /// Amortized tier targets and within-tier spreading.
    pub exposure: ExposureParams,
}

/// Exposure of a slot by position: `1 / log2(i + 2)` for 0-based slot `i`
/// (the DCG discount: 1 for the first slot), or a configured table whose last
/// value holds for slots beyond it.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionWeights {
    table: Vec<f64>,
}

impl PositionWeights {
    pub fn new(table: Vec<f64>) -> Result<PositionWeights, String> {
        if let Some((i, w)) = table
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w > 0.0 && **w <= 1e6))
        {
            return Err(format!("weight {i} ({w}) must be a positive finite number"));
        }
        Ok(PositionWeights { table })
    }

    pub fn weight(&self, slot: usize) -> f64 {
        match self.table.last() {
            None => 1.0 / ((slot + 2) as f64).log2(),
            Some(&last) => self.table.get(slot).copied().unwrap_or(last),
        }
    }
}

impl QuotaParams {
    /// Quotas on pages of `scenes` only.
    pub fn new(
        scenes: &[Scene],
        max_items_per_streamer: u32,
        floors: Floors,
        position_weights: PositionWeights,
        exposure: ExposureParams,
    ) -> QuotaParams {
        let mut enabled = [false; Scene::ALL.len()];
        for scene in scenes {
            enabled[scene.index()] = true;
        }
        QuotaParams {
            enabled,
            max_items_per_streamer,
            floors,
            position_weights,
            exposure,
        }
    }

    /// Whether quotas apply to pages of this scene.
    pub fn applies_to(&self, scene: Scene) -> bool {
        self.enabled[scene.index()]
    }
}
