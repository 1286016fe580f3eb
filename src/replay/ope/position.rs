//! Off-policy estimates per impression from marginal propensities: the
//! position-based (independent-slot) family, as Open Bandit Pipeline
//! defines it, so the numbers can be checked against it
//! (`tests/ope_reference.rs`).
//!
//! **Rounds.** Every logged slot with a `marginal` propensity is one round
//! `i`: the item `a_i` shown at position `k_i`, with the logging policy's
//! probability `p_i = P(a_i at k_i)` and the rewards that followed (a click
//! on that item at that position; GMV through it). The target policy gives,
//! for the round's request, its own probability `pi(a | k_i)` of each item
//! at that position. The estimand is the target's expected reward **per
//! impression**: at the logged positions, in the logged proportions. It
//! assumes a slot's reward depends on its item and position only, not on
//! the items around it.
//!
//! **Estimators**, with `w_i = pi(a_i | k_i) / p_i`, `w'_i = min(w_i, max)`
//! and `q(a, k)` the reward model, each the mean over rounds of:
//! - IPW: `w'_i r_i`;
//! - SNIPW: `w_i r_i / mean(w)` (not clipped, as Open Bandit Pipeline);
//! - DM: `sum_a pi(a | k_i) q(a, k_i)`;
//! - DR: DM's term + `w'_i (r_i - q(a_i, k_i))`;
//! - Replay: the rounds where the target puts the logged item at the
//!   logged position for certain (`pi = 1`): the mean of their rewards.
//!
//! DM sums `pi q` where Open Bandit Pipeline averages it with weights `pi`;
//! the two agree whenever the target fills the position (its probabilities
//! sum to 1), and here a slot the target leaves empty earns nothing.
//!
//! **Reward model**: the mean reward per (item, position) on the rounds,
//! with one pseudo-round at the position's mean (so an item seldom logged
//! at a position leans on the position's mean, and one never logged there
//! takes it); or per item, pooled over positions, with one pseudo-round at
//! the overall mean.
//!
//! **Intervals**: 95%, normal over the per-round terms (SNIPW: its
//! linearization), cut to the reward's range. **ESS**:
//! `(sum w)^2 / sum w^2`, before clipping.

use super::{Estimate, range};
use foldhash::HashMap;
use serde::Serialize;
use std::fmt;

/// One logged impression with a marginal propensity.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub position: u32,
    /// The log's number of the item shown.
    pub item: u32,
    pub propensity: f64,
    pub click: f64,
    pub gmv: f64,
    /// The target's distribution over items at this position: the log's
    /// number of each item (`None`: no logged page served it) and its
    /// probability. Sums to at most 1; less where the target may leave the
    /// slot empty.
    pub target: Vec<(Option<u32>, f64)>,
}

impl Round {
    /// The target's probability of the logged item at the logged position.
    pub fn target_probability(&self) -> f64 {
        self.target
            .iter()
            .filter(|(item, _)| *item == Some(self.item))
            .map(|(_, p)| p)
            .sum()
    }
}

/// What the reward model conditions on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RewardModel {
    /// The mean per item and position.
    #[default]
    ItemPosition,
    /// The mean per item, whatever the position.
    Item,
}

impl std::str::FromStr for RewardModel {
    type Err = String;

    fn from_str(s: &str) -> Result<RewardModel, String> {
        match s {
            "item-position" => Ok(RewardModel::ItemPosition),
            "item" => Ok(RewardModel::Item),
            _ => Err(format!(
                "`{s}` is not a reward model (item-position or item)"
            )),
        }
    }
}

/// The fitted reward model for one reward.
pub struct Fitted {
    kind: RewardModel,
    /// (sum, count) per key: (item, position), or (item, 0) per item.
    cells: HashMap<(u32, u32), (f64, f64)>,
    /// The prior per position (item-position) or overall (at index 0).
    prior: Vec<f64>,
}

impl Fitted {
    pub fn fit(rounds: &[Round], kind: RewardModel, reward: impl Fn(&Round) -> f64) -> Fitted {
        let positions = rounds
            .iter()
            .map(|r| r.position as usize + 1)
            .max()
            .unwrap_or(1);
        let mut by_position = vec![(0.0, 0.0); positions];
        let mut cells: HashMap<(u32, u32), (f64, f64)> = HashMap::default();
        for r in rounds {
            let k = match kind {
                RewardModel::ItemPosition => r.position,
                RewardModel::Item => 0,
            };
            let c = cells.entry((r.item, k)).or_default();
            c.0 += reward(r);
            c.1 += 1.0;
            let p = &mut by_position[k as usize];
            p.0 += reward(r);
            p.1 += 1.0;
        }
        let all = rounds.iter().map(&reward).sum::<f64>() / rounds.len().max(1) as f64;
        let prior = by_position
            .iter()
            .map(|&(s, n)| if n > 0.0 { s / n } else { all })
            .collect();
        Fitted { kind, cells, prior }
    }

    /// The model's reward for `item` at `position`.
    pub fn predict(&self, item: Option<u32>, position: u32) -> f64 {
        let k = match self.kind {
            RewardModel::ItemPosition => position,
            RewardModel::Item => 0,
        };
        let prior = self.prior.get(k as usize).copied().unwrap_or(self.prior[0]);
        match item.and_then(|i| self.cells.get(&(i, k))) {
            Some(&(sum, n)) => (sum + prior) / (n + 1.0),
            None => prior,
        }
    }
}

/// The estimates for one reward, per impression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Family {
    /// The logging policy's observed mean reward per impression.
    pub logged: Estimate,
    pub ipw: Estimate,
    pub snipw: Estimate,
    pub dm: Estimate,
    pub dr: Estimate,
    /// `None` when no round matches.
    pub replay: Option<Estimate>,
}

/// The position-based estimates of a replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionBased {
    /// What every value is: the expected reward of one impression.
    pub estimand: &'static str,
    pub rounds: usize,
    /// Rounds per position.
    pub rounds_by_position: Vec<usize>,
    pub max_weight: f64,
    pub clipped: usize,
    pub ess: f64,
    /// Rounds where the target shows the logged item there for certain.
    pub replay_matches: usize,
    pub reward_model: RewardModel,
    pub clicks_per_impression: Family,
    pub gmv_per_impression: Family,
}

fn family(
    rounds: &[Round],
    w: &[f64],
    max_weight: f64,
    model: &Fitted,
    reward: impl Fn(&Round) -> f64,
) -> Family {
    let n = rounds.len().max(1) as f64;
    let bounds = range(rounds.iter().map(&reward));
    let mean_w = w.iter().sum::<f64>() / n;
    let mut logged = Vec::with_capacity(rounds.len());
    let mut ipw = Vec::with_capacity(rounds.len());
    let mut snipw = Vec::with_capacity(rounds.len());
    let mut dm = Vec::with_capacity(rounds.len());
    let mut dr = Vec::with_capacity(rounds.len());
    let mut matched = Vec::new();
    for (r, &w) in rounds.iter().zip(w) {
        let reward = reward(r);
        let clipped = w.min(max_weight);
        logged.push(reward);
        ipw.push(clipped * reward);
        snipw.push(if mean_w > 0.0 {
            w * reward / mean_w
        } else {
            0.0
        });
        let direct: f64 = r
            .target
            .iter()
            .map(|&(item, p)| p * model.predict(item, r.position))
            .sum();
        dm.push(direct);
        dr.push(direct + clipped * (reward - model.predict(Some(r.item), r.position)));
        if r.target_probability() == 1.0 {
            matched.push(reward);
        }
    }
    let snipw_value = snipw.iter().sum::<f64>() / n;
    // Its linearization: w_i (r_i - V) / mean(w).
    let linear: Vec<f64> = rounds
        .iter()
        .zip(w)
        .map(|(r, &w)| {
            if mean_w > 0.0 {
                w * (reward(r) - snipw_value) / mean_w
            } else {
                0.0
            }
        })
        .collect();
    Family {
        logged: Estimate::from_terms(&logged).within(bounds),
        ipw: Estimate::from_terms(&ipw).within(bounds),
        snipw: Estimate::around(snipw_value, &linear).within(bounds),
        dm: Estimate::from_terms(&dm).within(bounds),
        dr: Estimate::from_terms(&dr).within(bounds),
        replay: (!matched.is_empty()).then(|| Estimate::from_terms(&matched).within(bounds)),
    }
}

/// The estimates over `rounds`; `None` without any.
pub fn evaluate(rounds: &[Round], max_weight: f64, kind: RewardModel) -> Option<PositionBased> {
    if rounds.is_empty() {
        return None;
    }
    let w: Vec<f64> = rounds
        .iter()
        .map(|r| r.target_probability() / r.propensity)
        .collect();
    let (s, s2) = w.iter().fold((0.0, 0.0), |(s, s2), x| (s + x, s2 + x * x));
    let positions = rounds
        .iter()
        .map(|r| r.position as usize + 1)
        .max()
        .unwrap_or(0);
    let mut rounds_by_position = vec![0; positions];
    for r in rounds {
        rounds_by_position[r.position as usize] += 1;
    }
    let click_model = Fitted::fit(rounds, kind, |r| r.click);
    let gmv_model = Fitted::fit(rounds, kind, |r| r.gmv);
    Some(PositionBased {
        estimand: "expected reward of one impression, at the logged positions",
        rounds: rounds.len(),
        rounds_by_position,
        max_weight,
        clipped: w.iter().filter(|&&x| x > max_weight).count(),
        ess: if s2 > 0.0 { s * s / s2 } else { 0.0 },
        replay_matches: rounds
            .iter()
            .filter(|r| r.target_probability() == 1.0)
            .count(),
        reward_model: kind,
        clicks_per_impression: family(rounds, &w, max_weight, &click_model, |r| r.click),
        gmv_per_impression: family(rounds, &w, max_weight, &gmv_model, |r| r.gmv),
    })
}

/// The rounds and the reward model's values as Open Bandit Pipeline takes
/// them (`--ope-export`; `scripts/obp_reference.py` reads it): per round its
/// position, action, propensity and rewards, the target's distribution at
/// its position, and the model's rewards for those items and for the
/// logged one. An item no logged page served is action `items`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Export {
    pub items: u32,
    /// The item id of each action number.
    pub actions: Vec<String>,
    pub max_weight: f64,
    pub reward_model: RewardModel,
    pub rounds: Vec<ExportedRound>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ExportedRound {
    pub position: u32,
    pub action: u32,
    pub pscore: f64,
    pub click: f64,
    pub gmv: f64,
    /// (action, probability, model click, model GMV) at this position.
    pub target: Vec<(u32, f64, f64, f64)>,
    pub q_click_factual: f64,
    pub q_gmv_factual: f64,
}

/// The export of `rounds` for a log whose items are `actions` (by number).
pub fn export(
    rounds: &[Round],
    actions: Vec<String>,
    max_weight: f64,
    kind: RewardModel,
) -> Export {
    let items = actions.len() as u32;
    let clicks = Fitted::fit(rounds, kind, |r| r.click);
    let gmv = Fitted::fit(rounds, kind, |r| r.gmv);
    Export {
        items,
        actions,
        max_weight,
        reward_model: kind,
        rounds: rounds
            .iter()
            .map(|r| ExportedRound {
                position: r.position,
                action: r.item,
                pscore: r.propensity,
                click: r.click,
                gmv: r.gmv,
                target: r
                    .target
                    .iter()
                    .map(|&(item, p)| {
                        (
                            item.unwrap_or(items),
                            p,
                            clicks.predict(item, r.position),
                            gmv.predict(item, r.position),
                        )
                    })
                    .collect(),
                q_click_factual: clicks.predict(Some(r.item), r.position),
                q_gmv_factual: gmv.predict(Some(r.item), r.position),
            })
            .collect(),
    }
}

/// The table's lines for `o`, the estimates of the config `name`.
pub fn write_lines(f: &mut fmt::Formatter, name: &str, o: &PositionBased) -> fmt::Result {
    writeln!(
        f,
        "off-policy per impression (marginal), {name}: {} impressions with propensities, weights clipped at {} ({} clipped), ESS {:.0}, replay matches {}",
        o.rounds, o.max_weight, o.clipped, o.ess, o.replay_matches
    )?;
    for (what, v) in [
        ("clicks/impr.", &o.clicks_per_impression),
        ("GMV/impr.", &o.gmv_per_impression),
    ] {
        let replay = v.replay.map_or_else(|| "-".to_string(), |r| r.to_string());
        writeln!(
            f,
            "  {what:<15} logged {}  IPW {}  SNIPW {}  DM {}  DR {}  Replay {replay}",
            v.logged, v.ipw, v.snipw, v.dm, v.dr
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Two positions, three items; the logger shows a uniformly random
    /// item at each position (p = 1/3). The click rate of item a at
    /// position k is `ctr[a] * bias[k]`. The target shows item 2 at both.
    fn world(n: usize) -> (Vec<Round>, f64) {
        let ctr = [0.1, 0.3, 0.6];
        let bias = [1.0, 0.5];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let rounds = (0..n)
            .map(|i| {
                let position = (i % 2) as u32;
                let item = rng.random_range(0..3u32);
                let p = ctr[item as usize] * bias[position as usize];
                Round {
                    position,
                    item,
                    propensity: 1.0 / 3.0,
                    click: f64::from(u8::from(rng.random_bool(p))),
                    gmv: 0.0,
                    target: vec![(Some(2), 1.0)],
                }
            })
            .collect();
        (rounds, 0.6 * (1.0 + 0.5) / 2.0)
    }

    #[test]
    fn every_estimator_finds_the_per_impression_value_and_covers_it() {
        let (rounds, truth) = world(30_000);
        let e = evaluate(&rounds, 1e9, RewardModel::ItemPosition).unwrap();
        let c = &e.clicks_per_impression;
        let replay = c.replay.unwrap();
        for (name, x) in [
            ("ipw", c.ipw),
            ("snipw", c.snipw),
            ("dm", c.dm),
            ("dr", c.dr),
            ("replay", replay),
        ] {
            assert!(
                (x.value - truth).abs() < 0.015,
                "{name}: {x:?} against {truth}"
            );
            assert!(
                x.low <= truth && truth <= x.high,
                "{name}: {x:?} against {truth}"
            );
        }
        // A third of the rounds match; the ESS of weights 3 on a third is n/3.
        assert!((e.replay_matches as f64 / 30_000.0 - 1.0 / 3.0).abs() < 0.01);
        assert!((e.ess / 30_000.0 - 1.0 / 3.0).abs() < 0.01, "{}", e.ess);
        assert_eq!(e.rounds_by_position, [15_000, 15_000]);
    }

    #[test]
    fn the_per_item_model_misses_position_bias_and_dr_corrects_it() {
        let (rounds, truth) = world(30_000);
        let e = evaluate(&rounds, 1e9, RewardModel::Item).unwrap();
        let c = &e.clicks_per_impression;
        // Per item, the model predicts item 2's mean over both positions
        // for each: right on average over positions logged equally often.
        assert!((c.dm.value - truth).abs() < 0.015, "{:?}", c.dm);
        assert!((c.dr.value - truth).abs() < 0.015, "{:?}", c.dr);
        // The per-position model knows position 1 halves the rate.
        let m = Fitted::fit(&rounds, RewardModel::ItemPosition, |r| r.click);
        assert!((m.predict(Some(2), 1) / m.predict(Some(2), 0) - 0.5).abs() < 0.08);
        let m = Fitted::fit(&rounds, RewardModel::Item, |r| r.click);
        assert_eq!(m.predict(Some(2), 1), m.predict(Some(2), 0));
    }

    #[test]
    fn weights_are_clipped_for_ipw_and_dr_only_and_intervals_stay_in_range() {
        let round = |item, click| Round {
            position: 0,
            item,
            propensity: 0.01,
            click,
            gmv: 0.0,
            target: vec![(Some(0), 1.0)],
        };
        let rounds = vec![round(0, 1.0), round(1, 0.0), round(1, 0.0), round(1, 0.0)];
        let e = evaluate(&rounds, 10.0, RewardModel::ItemPosition).unwrap();
        assert_eq!(e.clipped, 1);
        let c = &e.clicks_per_impression;
        assert_eq!(c.ipw.value, 10.0 / 4.0);
        // SNIPW is not clipped: all weight on the one matching round.
        assert_eq!(c.snipw.value, 1.0);
        for x in [c.snipw, c.dm, c.logged] {
            assert!(0.0 <= x.low && x.high <= 1.0, "{x:?}");
        }
        // IPW and DR are themselves outside the range here; their intervals
        // still hold them.
        for x in [c.ipw, c.dr] {
            assert!(x.value > 1.0 && x.low >= 0.0 && x.high == x.value, "{x:?}");
        }
        // An item no page logged takes the position's mean.
        let m = Fitted::fit(&rounds, RewardModel::ItemPosition, |r| r.click);
        assert_eq!(m.predict(None, 0), 0.25);
        assert_eq!(m.predict(Some(0), 0), (1.0 + 0.25) / 2.0);
    }
}
