//! The policy the position-based estimates evaluate: the engine's own
//! ranking, deterministic, or a stochastic policy made from it, given by
//! its probability of each item at a position (what the estimators need).

use super::super::Log;
use crate::engine::{Candidate, Ranking};

/// A policy made from the engine's page for a request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum TargetPolicy {
    /// The engine's page as ranked.
    #[default]
    Engine,
    /// With probability `epsilon`, a uniformly random order of the
    /// request's candidates (quotas not applied); otherwise the engine's
    /// page. Exact: `P(a at k) = (1 - epsilon) 1[a = page_k] + epsilon / n`
    /// for a request of `n` candidates (`k < n`).
    EpsilonGreedy { epsilon: f64 },
}

impl TargetPolicy {
    /// `engine` or `epsilon-greedy:E` with E in [0, 1].
    pub fn parse(s: &str) -> Result<TargetPolicy, String> {
        if s == "engine" {
            return Ok(TargetPolicy::Engine);
        }
        let epsilon = s
            .strip_prefix("epsilon-greedy:")
            .and_then(|e| e.parse::<f64>().ok())
            .ok_or_else(|| {
                format!("`{s}` is not a policy (engine, or epsilon-greedy:E with E in [0, 1])")
            })?;
        if !(0.0..=1.0).contains(&epsilon) {
            return Err(format!("epsilon-greedy: {epsilon} is outside [0, 1]"));
        }
        Ok(TargetPolicy::EpsilonGreedy { epsilon })
    }

    /// The policy's distribution over items at `position`, for a request
    /// with `candidates` whose engine page is `ranking`, items numbered as
    /// `log` numbers them (`None`: no logged page served it).
    pub fn at(
        self,
        position: u32,
        ranking: &Ranking,
        candidates: &[Candidate],
        log: &Log,
    ) -> Vec<(Option<u32>, f64)> {
        let engine_item = ranking
            .slots
            .iter()
            .find(|s| s.position == position)
            .map(|s| (log.item(s.kind, &s.item_id), s.item_id.as_str(), s.kind));
        match self {
            TargetPolicy::Engine => engine_item.map(|(i, _, _)| (i, 1.0)).into_iter().collect(),
            TargetPolicy::EpsilonGreedy { epsilon } => {
                let n = candidates.len();
                let mut out = Vec::with_capacity(n);
                if let Some((i, _, _)) = engine_item {
                    out.push((i, 1.0 - epsilon));
                }
                if (position as usize) < n && epsilon > 0.0 {
                    let each = epsilon / n as f64;
                    for c in candidates {
                        let i = log.item(c.kind, &c.item_id);
                        match engine_item {
                            Some((_, id, kind)) if id == c.item_id && kind == c.kind => {
                                out[0].1 += each;
                            }
                            _ => out.push((i, each)),
                        }
                    }
                }
                out
            }
        }
    }
}
