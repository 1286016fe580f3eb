//! Stage 2: click and conversion probabilities, and expected value per
//! impression. The model scores every eligible candidate in one batch; the
//! scene's [`ScoreSource`] decides how the caller's estimates enter.

use super::resolve::Resolved;
use crate::domain::{Magnitude, Scene};
use crate::model::{Model, feature_matrix};

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

/// Where pCTR and pCVR come from, per scene (`[scoring]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringParams {
    per_scene: [ScoreSource; Scene::ALL.len()],
    /// Order value (yuan) for a candidate whose price is unknown.
    pub default_order_value: Magnitude,
}

impl ScoringParams {
    /// `per_scene` in [`Scene::index`] order.
    pub fn new(
        per_scene: [ScoreSource; Scene::ALL.len()],
        default_order_value: f64,
    ) -> ScoringParams {
        ScoringParams {
            per_scene,
            default_order_value: Magnitude::new(default_order_value),
        }
    }

    /// How estimates are combined on pages of `scene`.
    pub fn source(&self, scene: Scene) -> ScoreSource {
        self.per_scene[scene.index()]
    }
}

/// Probabilities and expected value of one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub pctr: f64,
    pub pcvr: f64,
    /// pCTR x pCVR x price: expected GMV per impression, in yuan.
    pub expected_value: f64,
}

/// Combines the caller's estimate with the model's under `source`.
pub fn combine(source: ScoreSource, upstream: Option<f64>, model: f64) -> f64 {
    match (source, upstream) {
        (ScoreSource::Model, _) | (_, None) => model,
        (ScoreSource::Upstream, Some(u)) => u,
        (ScoreSource::Blend { upstream_weight: w }, Some(u)) => w * u + (1.0 - w) * model,
    }
}

/// Whether the model's output is used for any candidate: with the
/// `Upstream` source and every estimate supplied, the batch is skipped.
fn needs_model(source: ScoreSource, items: &[Resolved]) -> bool {
    source != ScoreSource::Upstream
        || items
            .iter()
            .any(|r| r.candidate.pctr.is_none() || r.candidate.pcvr.is_none())
}

/// Estimates for `items`, in order.
pub fn estimate(
    model: &Model,
    source: ScoreSource,
    scene: Scene,
    items: &[Resolved],
) -> Vec<Estimate> {
    let model_scores = needs_model(source, items).then(|| {
        let x = feature_matrix(items.iter().map(|r| r.features(scene)));
        model.score(x.view())
    });
    items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (m_ctr, m_cvr) = model_scores
                .as_ref()
                .map_or((0.0, 0.0), |s| (f64::from(s.pctr[i]), f64::from(s.pcvr[i])));
            let pctr = combine(source, r.candidate.pctr, m_ctr);
            let pcvr = combine(source, r.candidate.pcvr, m_cvr);
            Estimate {
                pctr,
                pcvr,
                expected_value: pctr * pcvr * r.price.value(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_follows_the_source() {
        let blend = ScoreSource::Blend {
            upstream_weight: 0.25,
        };
        assert_eq!(combine(ScoreSource::Model, Some(0.9), 0.1), 0.1);
        assert_eq!(combine(ScoreSource::Upstream, Some(0.9), 0.1), 0.9);
        assert_eq!(combine(ScoreSource::Upstream, None, 0.1), 0.1);
        assert!((combine(blend, Some(0.9), 0.1) - 0.3).abs() < 1e-12);
        assert_eq!(combine(blend, None, 0.1), 0.1);
    }
}
