//! The policy the position-based estimates evaluate: the engine's own
//! ranking, deterministic, or a stochastic policy made from it, given by
//! its probability of each item at a position (what the estimators need).

use super::super::Log;
use crate::domain::ItemKind;
use crate::engine::Ranking;
use rand::{Rng, SeedableRng};

/// Monte Carlo samples of a Plackett-Luce page when not given.
pub const DEFAULT_SAMPLES: u32 = 1000;

/// A policy made from the engine's scoring of a request.
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
    /// Pages sampled without replacement with weights
    /// `score^(1/temperature)` over the eligible candidates (the
    /// simulator's logger; quotas not applied). Exact at slot 0
    /// (`w_a / sum w`); below it, the share of `samples` pages drawn by a
    /// generator seeded with the request id that put `a` at the slot.
    PlackettLuce { temperature: f64, samples: u32 },
}

/// What a request offers a policy: the engine's page and its scoring of
/// every candidate.
pub struct Proposal<'a> {
    pub ranking: &'a Ranking,
    /// Every candidate the engine scored: kind, id, score, eligible.
    pub candidates: &'a [(ItemKind, String, f64, bool)],
    pub request_id: &'a str,
}

impl TargetPolicy {
    /// `engine`, `epsilon-greedy:E` with E in [0, 1], or
    /// `plackett-luce:T[:SAMPLES]` with T above 0.
    pub fn parse(s: &str) -> Result<TargetPolicy, String> {
        let bad = || {
            format!(
                "`{s}` is not a policy (engine, epsilon-greedy:E with E in [0, 1], \
                 plackett-luce:T or plackett-luce:T:SAMPLES with T above 0)"
            )
        };
        if s == "engine" {
            return Ok(TargetPolicy::Engine);
        }
        if let Some(e) = s.strip_prefix("epsilon-greedy:") {
            let epsilon = e.parse::<f64>().ok().filter(|e| (0.0..=1.0).contains(e));
            return epsilon
                .map(|epsilon| TargetPolicy::EpsilonGreedy { epsilon })
                .ok_or_else(bad);
        }
        let rest = s.strip_prefix("plackett-luce:").ok_or_else(bad)?;
        let (t, n) = rest.split_once(':').unwrap_or((rest, ""));
        let temperature = t.parse::<f64>().ok().filter(|t| *t > 0.0 && t.is_finite());
        let samples = if n.is_empty() {
            Some(DEFAULT_SAMPLES)
        } else {
            n.parse::<u32>().ok().filter(|n| *n > 0)
        };
        match (temperature, samples) {
            (Some(temperature), Some(samples)) => Ok(TargetPolicy::PlackettLuce {
                temperature,
                samples,
            }),
            _ => Err(bad()),
        }
    }

    /// Whether the engine's page is all the policy looks at.
    pub fn deterministic(self) -> bool {
        self == TargetPolicy::Engine
    }

    /// The policy's distribution over items at each of `positions`, items
    /// numbered as `log` numbers them (`None`: no logged page served it).
    pub fn at(
        self,
        positions: &[u32],
        request: &Proposal,
        log: &Log,
    ) -> Vec<Vec<(Option<u32>, f64)>> {
        let number = |kind: ItemKind, id: &str| log.item(kind, id);
        let engine_at = |k: u32| {
            request
                .ranking
                .slots
                .iter()
                .find(|s| s.position == k)
                .map(|s| (s.kind, s.item_id.as_str()))
        };
        match self {
            TargetPolicy::Engine => positions
                .iter()
                .map(|&k| {
                    engine_at(k)
                        .map(|(kind, id)| (number(kind, id), 1.0))
                        .into_iter()
                        .collect()
                })
                .collect(),
            TargetPolicy::EpsilonGreedy { epsilon } => positions
                .iter()
                .map(|&k| {
                    let n = request.candidates.len();
                    let shown = engine_at(k);
                    let mut out = Vec::with_capacity(n + 1);
                    if let Some((kind, id)) = shown {
                        out.push((number(kind, id), 1.0 - epsilon));
                    }
                    if (k as usize) < n && epsilon > 0.0 {
                        let each = epsilon / n as f64;
                        for (kind, id, _, _) in request.candidates {
                            if shown == Some((*kind, id.as_str())) {
                                out[0].1 += each;
                            } else {
                                out.push((number(*kind, id), each));
                            }
                        }
                    }
                    out
                })
                .collect(),
            TargetPolicy::PlackettLuce {
                temperature,
                samples,
            } => plackett_luce(positions, request, temperature, samples)
                .into_iter()
                .map(|at| {
                    at.into_iter()
                        .filter(|&(_, p)| p > 0.0)
                        .map(|(i, p)| {
                            let (kind, id, _, _) = &request.candidates[i];
                            (number(*kind, id), p)
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

/// Each position's probability per candidate under Plackett-Luce.
fn plackett_luce(
    positions: &[u32],
    request: &Proposal,
    temperature: f64,
    samples: u32,
) -> Vec<Vec<(usize, f64)>> {
    let weights: Vec<f64> = request
        .candidates
        .iter()
        .map(|&(_, _, score, eligible)| {
            if eligible {
                score.max(1e-12).powf(1.0 / temperature)
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut counts: Vec<Vec<u32>> = Vec::new();
    let deepest = positions.iter().copied().max().unwrap_or(0) as usize;
    if deepest > 0 && total > 0.0 {
        // Gumbel-top-k: the order of ln w + Gumbel noise is a Plackett-Luce
        // draw; the seed is the request's, so any shard draws the same.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(crc32fast::hash(
            request.request_id.as_bytes(),
        )));
        counts = vec![vec![0; weights.len()]; deepest + 1];
        let mut keys: Vec<(f64, usize)> = Vec::with_capacity(weights.len());
        for _ in 0..samples {
            keys.clear();
            for (i, &w) in weights.iter().enumerate() {
                if w > 0.0 {
                    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                    keys.push((w.ln() - (-u.ln()).ln(), i));
                }
            }
            let top = (deepest + 1).min(keys.len());
            if top < keys.len() {
                keys.select_nth_unstable_by(top, |a, b| b.0.total_cmp(&a.0));
            }
            keys[..top].sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
            for (k, &(_, i)) in keys[..top].iter().enumerate() {
                counts[k][i] += 1;
            }
        }
    }
    positions
        .iter()
        .map(|&k| {
            if total <= 0.0 {
                Vec::new()
            } else if k == 0 {
                weights.iter().map(|w| w / total).enumerate().collect()
            } else {
                let row = &counts[k as usize];
                row.iter()
                    .map(|&c| f64::from(c) / f64::from(samples))
                    .enumerate()
                    .collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_with_their_parameters_checked() {
        assert_eq!(TargetPolicy::parse("engine"), Ok(TargetPolicy::Engine));
        assert_eq!(
            TargetPolicy::parse("epsilon-greedy:0.1"),
            Ok(TargetPolicy::EpsilonGreedy { epsilon: 0.1 })
        );
        assert_eq!(
            TargetPolicy::parse("plackett-luce:0.5"),
            Ok(TargetPolicy::PlackettLuce {
                temperature: 0.5,
                samples: DEFAULT_SAMPLES
            })
        );
        assert_eq!(
            TargetPolicy::parse("plackett-luce:2:50"),
            Ok(TargetPolicy::PlackettLuce {
                temperature: 2.0,
                samples: 50
            })
        );
        for bad in [
            "epsilon-greedy:1.5",
            "plackett-luce:0",
            "plackett-luce:1:0",
            "greedy",
        ] {
            assert!(TargetPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    /// Candidates a, b, c, d with `scores`; d is not eligible.
    fn scored(scores: &[f64]) -> Vec<(ItemKind, String, f64, bool)> {
        const IDS: [&str; 4] = ["a", "b", "c", "d"];
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (ItemKind::Goods, IDS[i].to_string(), s, i != 3))
            .collect()
    }

    #[test]
    fn plackett_luce_is_exact_at_the_top_and_sampled_below_it() {
        let ranking = Ranking {
            request_id: "r1".into(),
            slots: Vec::new(),
            config_version: String::new(),
            model_version: String::new(),
            unresolved: 0,
            ineligible: 0,
        };
        // Weights at temperature 1: 1, 2, 1 and an ineligible candidate.
        let candidates = scored(&[1.0, 2.0, 1.0, 9.0]);
        let p = Proposal {
            ranking: &ranking,
            candidates: &candidates,
            request_id: "r1",
        };
        let at = plackett_luce(&[0, 1, 2], &p, 1.0, 20_000);
        assert_eq!(at[0], [(0, 0.25), (1, 0.5), (2, 0.25), (3, 0.0)]);
        // Slot 1: P(b) = 0.25 * 2/3 + 0.25 * 2/3 = 1/3; P(a) = P(c) = 1/3.
        for &(i, q) in &at[1][..3] {
            assert!((q - 1.0 / 3.0).abs() < 0.015, "{i}: {q}");
        }
        for row in &at {
            assert!((row.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-9);
            assert_eq!(row[3].1, 0.0, "never the ineligible one");
        }
        // Seeded by the request: the same draws every time.
        assert_eq!(
            plackett_luce(&[2], &p, 1.0, 500),
            plackett_luce(&[2], &p, 1.0, 500)
        );
    }
}
