//! Off-policy estimates per request from cascade propensities: the
//! logging policy's probability of each slot's item given the slots above.
//!
//! **Positions (cascade).** A log's `propensity` is the probability of the
//! item in slot k *given the slots above it*, so the probability of a page's
//! first k+1 slots is the product of the first k+1 propensities. The reward
//! at slot k is assumed to depend on the slots up to k only (a user reads
//! top-down). The importance weight of slot k is then
//! `w_k = prod_{j<=k} 1[target slot j = logged slot j] / p_j`: the target
//! must agree with the log on the whole prefix ("reward-interaction IPS").
//! Unbiased under that assumption; far less variance than weighting a
//! whole page, more than an independent-position model would have.
//!
//! **Partial logs.** Only the logged slots are evaluated: a request with
//! `served` of length m contributes positions 0..m. A request whose served
//! slots lack a propensity (a deterministic logging policy) is left out.
//!
//! **Rewards.** Two are estimated: clicks per request and GMV per request
//! (purchases that name the request and the slot's item).
//!
//! **Estimators**, with n requests and the per-request terms averaged:
//! - IPS: `sum_k w_k r_k`;
//! - SNIPS: per position, `sum_i w_ik r_ik / sum_i w_ik`, summed over positions;
//! - DM: `sum_k qhat(target item k, k)`;
//! - DR: DM + `sum_k w_k (r_k - qhat(logged item k, k))`.
//!
//! **Reward model** (DM, DR): the engine's own estimate of the item (pCTR
//! for clicks, pCTR x pCVR x price for GMV), times a per-position factor
//! fitted on the log: observed reward at position k over the estimates of
//! the logged items there (so the model is calibrated to the log's
//! position bias and scale).
//!
//! **Clipping**: weights are capped at `max_weight` (bias for variance);
//! how many were clipped is reported. **Intervals**: 95%, normal
//! approximation over per-request terms (for SNIPS, over its linearization:
//! the delta method; for DM it leaves out the reward model's own error, so
//! it is too narrow whenever the model is off), cut to the range a
//! request's reward can have (0 to the positions times the greatest
//! reward logged). **ESS**: per position, `(sum w)^2 / sum w^2`.

use super::Estimate;
use serde::Serialize;
use std::fmt;

/// One logged slot of a request, for the estimators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggedSlot {
    pub propensity: f64,
    /// Whether the target policy put the same item here.
    pub target_agrees: bool,
    pub click: f64,
    pub gmv: f64,
    /// The engine's estimates for the logged item and the target's item.
    pub logged_estimate: Estimates,
    pub target_estimate: Estimates,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Estimates {
    pub pctr: f64,
    pub expected_value: f64,
}

/// One request's logged slots, top first.
pub type Sample = Vec<LoggedSlot>;

/// The estimates for one reward.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimates4 {
    /// The logging policy's observed value (its own rewards, averaged).
    pub logged: Estimate,
    pub ips: Estimate,
    pub snips: Estimate,
    pub dm: Estimate,
    pub dr: Estimate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OffPolicy {
    /// What every value is: the expected reward of one request's page.
    pub estimand: &'static str,
    /// Requests with propensities on every logged slot.
    pub requests: usize,
    /// Requests left out (served slots without propensities).
    pub without_propensities: usize,
    pub max_weight: f64,
    /// Slot weights that hit `max_weight`.
    pub clipped: usize,
    /// Effective sample size per position.
    pub ess: Vec<f64>,
    /// Requests where the target agrees with the log on the first slot.
    pub first_slot_agreement: f64,
    pub clicks_per_request: Estimates4,
    pub gmv_per_request: Estimates4,
}

/// Prefix weights of each slot of each sample, clipped.
fn weights(samples: &[Sample], max_weight: f64) -> (Vec<Vec<f64>>, usize) {
    let mut clipped = 0;
    let w = samples
        .iter()
        .map(|s| {
            let mut prefix = 1.0;
            s.iter()
                .map(|slot| {
                    prefix *= if slot.target_agrees {
                        1.0 / slot.propensity.max(1e-12)
                    } else {
                        0.0
                    };
                    if prefix > max_weight {
                        clipped += 1;
                        max_weight
                    } else {
                        prefix
                    }
                })
                .collect()
        })
        .collect();
    (w, clipped)
}

fn estimate(
    samples: &[Sample],
    w: &[Vec<f64>],
    reward: impl Fn(&LoggedSlot) -> f64,
    model: impl Fn(&Estimates) -> f64,
) -> Estimates4 {
    let positions = samples.iter().map(Vec::len).max().unwrap_or(0);
    // The reward model's per-position scale.
    let mut observed = vec![0.0; positions];
    let mut predicted = vec![0.0; positions];
    for s in samples {
        for (k, slot) in s.iter().enumerate() {
            observed[k] += reward(slot);
            predicted[k] += model(&slot.logged_estimate);
        }
    }
    let scale: Vec<f64> = observed
        .iter()
        .zip(&predicted)
        .map(|(o, p)| if *p > 0.0 { o / p } else { 0.0 })
        .collect();
    let qhat = |k: usize, e: &Estimates| scale[k] * model(e);
    // SNIPS: per-position ratios and their linearization.
    let mut sum_w = vec![0.0; positions];
    let mut sum_wr = vec![0.0; positions];
    for (s, ws) in samples.iter().zip(w) {
        for (k, (slot, wk)) in s.iter().zip(ws).enumerate() {
            sum_w[k] += wk;
            sum_wr[k] += wk * reward(slot);
        }
    }
    let n = samples.len().max(1) as f64;
    let ratio: Vec<f64> = (0..positions)
        .map(|k| {
            if sum_w[k] > 0.0 {
                sum_wr[k] / sum_w[k]
            } else {
                0.0
            }
        })
        .collect();
    let snips_value: f64 = ratio.iter().sum();

    let mut logged = Vec::with_capacity(samples.len());
    let mut ips = Vec::with_capacity(samples.len());
    let mut snips_terms = Vec::with_capacity(samples.len());
    let mut dm = Vec::with_capacity(samples.len());
    let mut dr = Vec::with_capacity(samples.len());
    for (s, ws) in samples.iter().zip(w) {
        let (mut l, mut i, mut sn, mut d, mut r) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (k, (slot, wk)) in s.iter().zip(ws).enumerate() {
            let rew = reward(slot);
            l += rew;
            i += wk * rew;
            let mean_w = sum_w[k] / n;
            if mean_w > 0.0 {
                sn += wk * (rew - ratio[k]) / mean_w;
            }
            let target = qhat(k, &slot.target_estimate);
            d += target;
            r += target + wk * (rew - qhat(k, &slot.logged_estimate));
        }
        logged.push(l);
        ips.push(i);
        snips_terms.push(sn);
        dm.push(d);
        dr.push(r);
    }
    // A request's value is at most every position's best reward.
    let (lo, hi) = super::range(samples.iter().flatten().map(&reward));
    let per_request = (lo * positions as f64, hi * positions as f64);
    let snips_spread = Estimate::from_terms(&snips_terms);
    let half = (snips_spread.high - snips_spread.low) / 2.0;
    Estimates4 {
        logged: Estimate::from_terms(&logged).within(per_request),
        ips: Estimate::from_terms(&ips).within(per_request),
        snips: Estimate {
            value: snips_value,
            low: snips_value - half,
            high: snips_value + half,
        }
        .within(per_request),
        dm: Estimate::from_terms(&dm).within(per_request),
        dr: Estimate::from_terms(&dr).within(per_request),
    }
}

/// The estimates over `samples`.
pub fn evaluate(samples: &[Sample], without_propensities: usize, max_weight: f64) -> OffPolicy {
    let (w, clipped) = weights(samples, max_weight);
    let positions = samples.iter().map(Vec::len).max().unwrap_or(0);
    let ess = (0..positions)
        .map(|k| {
            let (s, s2) = w
                .iter()
                .filter_map(|ws| ws.get(k))
                .fold((0.0, 0.0), |(s, s2), x| (s + x, s2 + x * x));
            if s2 > 0.0 { s * s / s2 } else { 0.0 }
        })
        .collect();
    let first = samples
        .iter()
        .filter(|s| s.first().is_some_and(|x| x.target_agrees))
        .count();
    OffPolicy {
        estimand: "expected reward of one request, over its logged positions",
        requests: samples.len(),
        without_propensities,
        max_weight,
        clipped,
        ess,
        first_slot_agreement: first as f64 / samples.len().max(1) as f64,
        clicks_per_request: estimate(samples, &w, |s| s.click, |e| e.pctr),
        gmv_per_request: estimate(samples, &w, |s| s.gmv, |e| e.expected_value),
    }
}

/// The table's lines for `o`, the estimates of the config `name`.
pub fn write_lines(f: &mut fmt::Formatter, name: &str, o: &OffPolicy) -> fmt::Result {
    writeln!(
        f,
        "off-policy per request (cascade), {name}: {} requests with propensities ({} without), weights clipped at {} ({} clipped), first slot agrees on {:.1}%, ESS slot 1: {:.0}",
        o.requests,
        o.without_propensities,
        o.max_weight,
        o.clipped,
        o.first_slot_agreement * 100.0,
        o.ess.first().copied().unwrap_or(0.0)
    )?;
    for (what, v) in [
        ("clicks/request", &o.clicks_per_request),
        ("GMV/request", &o.gmv_per_request),
    ] {
        writeln!(
            f,
            "  {what:<15} logged {}  IPS {}  SNIPS {}  DM {}  DR {}",
            v.logged, v.ips, v.snips, v.dm, v.dr
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A world of one slot and two items: the logger picks item 0 with
    /// probability 0.7; item 0 is clicked with 0.1, item 1 with 0.5. The
    /// target always shows item 1: its true value is 0.5 clicks a request.
    fn one_slot_world(n: usize, estimates_right: bool) -> Vec<Sample> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let ctr = [0.1, 0.5];
        let est = |item: usize| Estimates {
            pctr: if estimates_right { ctr[item] } else { 0.3 },
            expected_value: 0.0,
        };
        (0..n)
            .map(|_| {
                let item = usize::from(!rng.random_bool(0.7));
                let click = f64::from(u8::from(rng.random_bool(ctr[item])));
                vec![LoggedSlot {
                    propensity: if item == 0 { 0.7 } else { 0.3 },
                    target_agrees: item == 1,
                    click,
                    gmv: 0.0,
                    logged_estimate: est(item),
                    target_estimate: est(1),
                }]
            })
            .collect()
    }

    #[test]
    fn every_estimator_finds_the_true_value_and_its_interval_covers_it() {
        let samples = one_slot_world(20_000, true);
        let r = evaluate(&samples, 0, 1e9);
        let c = &r.clicks_per_request;
        assert!(
            (c.logged.value - (0.7 * 0.1 + 0.3 * 0.5)).abs() < 0.01,
            "{c:?}"
        );
        for (name, e) in [
            ("ips", c.ips),
            ("snips", c.snips),
            ("dm", c.dm),
            ("dr", c.dr),
        ] {
            assert!((e.value - 0.5).abs() < 0.02, "{name}: {e:?}");
            // DM's interval is over requests only: the reward model's own
            // error is not in it (here every request predicts the same).
            if name != "dm" {
                assert!(e.low <= 0.5 && 0.5 <= e.high, "{name}: {e:?}");
            }
        }
        // ESS of the weights 1/0.3 on 30% of requests: about 30% of n.
        assert!((r.ess[0] / 20_000.0 - 0.3).abs() < 0.02, "{:?}", r.ess);
    }

    #[test]
    fn a_wrong_reward_model_biases_dm_but_dr_stays_right() {
        // With pctr 0.3 for both items, the position calibration makes the
        // model predict the logged average, 0.22, for the target.
        let samples = one_slot_world(20_000, false);
        let c = evaluate(&samples, 0, 1e9).clicks_per_request;
        assert!((c.dm.value - 0.22).abs() < 0.02, "{:?}", c.dm);
        assert!((c.dr.value - 0.5).abs() < 0.02, "{:?}", c.dr);
    }

    #[test]
    fn prefix_weights_need_agreement_on_every_slot_above_and_clip() {
        let slot = |agree, p| LoggedSlot {
            propensity: p,
            target_agrees: agree,
            click: 1.0,
            gmv: 0.0,
            logged_estimate: Estimates::default(),
            target_estimate: Estimates::default(),
        };
        let samples = vec![
            vec![
                slot(true, 0.5),
                slot(true, 0.25),
                slot(false, 0.5),
                slot(true, 0.5),
            ],
            vec![slot(true, 0.01), slot(true, 0.01)],
        ];
        let (w, clipped) = weights(&samples, 1000.0);
        assert_eq!(w[0], vec![2.0, 8.0, 0.0, 0.0]);
        assert_eq!(w[1], vec![100.0, 1000.0]);
        assert_eq!(clipped, 1);
    }
}
