//! The simulator's knobs, with the values the shipped logs and models were
//! made with. docs/simulator.md explains each and what it is calibrated to.

use crate::domain::Millis;
use serde::{Deserialize, Serialize};

/// Buyer segments, served differently (domain brief: heavy, medium, passer-by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    Heavy,
    Medium,
    Passerby,
}

impl Segment {
    pub const ALL: [Segment; 3] = [Segment::Heavy, Segment::Medium, Segment::Passerby];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentParams {
    /// Share of users.
    pub share: f64,
    /// Mean feed requests per day (Poisson).
    pub sessions_per_day: f64,
    /// Mean number of slots seen per page (geometric scroll depth).
    pub scroll_depth: f64,
    /// Added to the purchase logit: heavy buyers buy more readily.
    pub buy_shift: f64,
    /// Median comfortable price, yuan (log-normal across users).
    pub budget_yuan: f64,
    /// Streamers followed (draws by popularity, duplicates dropped).
    pub follows: usize,
}

/// The ground-truth response model. Logits are summed from these terms;
/// `docs/simulator.md` has the formulas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseParams {
    /// Examination at position i (0-based) among the slots seen: (1 + i)^-decay.
    pub position_decay: f64,
    pub click_base: f64,
    /// Per unit of ln(affinity): the user's latent category preference.
    pub click_affinity: f64,
    /// Per unit of log10(1 + followers) / 7: the streamer's pull.
    pub click_followers: f64,
    pub click_follows: f64,
    /// Per unit of centered product score.
    pub click_quality: f64,
    /// Extra pull of a live stream over a goods card.
    pub click_live: f64,
    pub buy_base: f64,
    /// Per unit of ln(price / user budget) (negative: dearer sells less).
    pub buy_price: f64,
    /// Per unit of centered reputation score of the seller.
    pub buy_trust: f64,
    pub buy_affinity: f64,
    pub buy_follows: f64,
    pub buy_quality: f64,
    /// The effect the chuanliu flow exploits: odds multiplier on buying from
    /// brand B's own stream or shop for a user who has just bought B's goods
    /// through an influencer. It fades with the memory (below).
    pub flow_lift: f64,
    /// Odds multiplier on clicking such an item (the user knows the brand).
    pub flow_click_lift: f64,
    /// A brand memory is forgotten this long after the purchase that made it.
    pub flow_memory_days: f64,
    /// A memory's strength halves every this many days: both lifts enter the
    /// log-odds times 0.5^(age / half-life).
    pub flow_memory_half_life_days: f64,
    /// Log-odds of clicking lost per earlier impression of the same item to
    /// the same user; earlier impressions count 0.5^(age / half-life).
    pub fatigue: f64,
    pub fatigue_half_life_hours: f64,
}

impl ResponseParams {
    /// How long a brand memory lasts, in milliseconds.
    pub fn memory_ms(&self) -> i64 {
        (self.flow_memory_days * Millis::MS_PER_DAY as f64) as i64
    }

    /// The strength of a brand memory `age_ms` old: 1 when fresh, halving
    /// every half-life, 0 once forgotten.
    pub fn memory_strength(&self, age_ms: i64) -> f64 {
        if age_ms > self.memory_ms() {
            return 0.0;
        }
        let days = age_ms.max(0) as f64 / Millis::MS_PER_DAY as f64;
        0.5f64.powf(days / self.flow_memory_half_life_days)
    }

    /// How much an impression `age_ms` old still tires the user of an item.
    pub fn fatigue_weight(&self, age_ms: i64) -> f64 {
        let hours = age_ms.max(0) as f64 / Millis::MS_PER_HOUR as f64;
        0.5f64.powf(hours / self.fatigue_half_life_hours)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimParams {
    pub seed: u64,
    pub users: usize,
    /// Candidates per recommend / mall / search request (upstream retrieval).
    pub candidates: usize,
    /// Dirichlet concentration of users' category preferences (lower: pickier).
    pub preference_concentration: f64,
    /// The logging policy samples pages by Plackett-Luce over engine scores
    /// with this temperature: weight = score^(1/temperature). Lower is
    /// closer to the deterministic ranking; propensities are logged.
    pub policy_temperature: f64,
    pub segments: [SegmentParams; 3],
    pub response: ResponseParams,
}

impl SimParams {
    pub fn segment(&self, s: Segment) -> &SegmentParams {
        &self.segments[s as usize]
    }

    pub fn new(seed: u64, users: usize) -> SimParams {
        SimParams {
            seed,
            users,
            candidates: 200,
            preference_concentration: 0.4,
            policy_temperature: 0.5,
            segments: [
                SegmentParams {
                    share: 0.1,
                    sessions_per_day: 20.0,
                    scroll_depth: 14.0,
                    buy_shift: 0.8,
                    budget_yuan: 200.0,
                    follows: 40,
                },
                SegmentParams {
                    share: 0.3,
                    sessions_per_day: 6.0,
                    scroll_depth: 8.0,
                    buy_shift: 0.0,
                    budget_yuan: 100.0,
                    follows: 12,
                },
                SegmentParams {
                    share: 0.6,
                    sessions_per_day: 1.5,
                    scroll_depth: 4.0,
                    buy_shift: -1.0,
                    budget_yuan: 60.0,
                    follows: 3,
                },
            ],
            response: ResponseParams {
                position_decay: 0.5,
                click_base: -4.0,
                click_affinity: 0.9,
                click_followers: 1.6,
                click_follows: 1.2,
                click_quality: 0.4,
                click_live: 0.3,
                buy_base: -3.6,
                buy_price: -0.9,
                buy_trust: 0.6,
                buy_affinity: 0.7,
                buy_follows: 0.5,
                buy_quality: 0.5,
                flow_lift: 2.5,
                flow_click_lift: 1.5,
                flow_memory_days: 30.0,
                flow_memory_half_life_days: 7.0,
                fatigue: 0.05,
                fatigue_half_life_hours: 24.0,
            },
        }
    }
}
