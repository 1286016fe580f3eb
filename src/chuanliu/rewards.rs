//! Traffic rewards for influencers whose sales feed the flow.
//!
//! Each influencer has a reward level: credited when the flow shows a brand
//! to a user the influencer sold that brand to, and again when such a user
//! then buys in the brand's own stream. The level decays with a half-life
//! and never exceeds the cap; the influencer's items are ranked with score
//! x (1 + level). Only influencers with credit are stored.

use super::Secs;
use compact_str::CompactString;
use foldhash::HashMap;
use parking_lot::RwLock;

/// How influencers earn and keep traffic rewards.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardParams {
    /// Level an influencer earns per flow impression its sale made possible.
    pub per_impression: f64,
    /// Level per flow-attributed purchase.
    pub per_conversion: f64,
    pub half_life_s: f64,
    /// Highest level: the score multiplier is at most 1 + cap.
    pub cap: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reward {
    /// Level as of `updated`.
    pub level: f32,
    pub updated: Secs,
}

impl Reward {
    fn level_at(&self, now: Secs, params: &RewardParams) -> f64 {
        let age = now.0.saturating_sub(self.updated.0) as f64;
        self.level as f64 * (-age * std::f64::consts::LN_2 / params.half_life_s).exp()
    }
}

#[derive(Default)]
pub struct Rewards {
    levels: RwLock<HashMap<CompactString, Reward>>,
}

impl Rewards {
    /// Adds `amount` to `streamer`'s level, up to the cap.
    pub fn credit(&self, streamer: &str, amount: f64, now: Secs, params: &RewardParams) {
        if amount <= 0.0 || params.cap <= 0.0 {
            return;
        }
        let mut levels = self.levels.write();
        let r = levels
            .entry(CompactString::from(streamer))
            .or_insert(Reward {
                level: 0.0,
                updated: now,
            });
        r.level = (r.level_at(now, params) + amount).min(params.cap) as f32;
        r.updated = now.max(r.updated);
    }

    /// The score multiplier of each item's streamer at `now` (1 without a
    /// reward); `None` when nobody has one, which is the common case and
    /// costs one read lock.
    pub fn multipliers<'s>(
        &self,
        streamers: impl Iterator<Item = Option<&'s str>>,
        now: Secs,
        params: &RewardParams,
    ) -> Option<Vec<f64>> {
        let levels = self.levels.read();
        if levels.is_empty() {
            return None;
        }
        Some(
            streamers
                .map(|s| {
                    s.and_then(|s| levels.get(s))
                        .map_or(1.0, |r| 1.0 + r.level_at(now, params))
                })
                .collect(),
        )
    }

    /// Drops levels decayed below `floor`; returns how many remain.
    pub fn sweep(&self, now: Secs, params: &RewardParams, floor: f64) -> usize {
        let mut levels = self.levels.write();
        levels.retain(|_, r| r.level_at(now, params) >= floor);
        levels.len()
    }

    pub fn export(&self) -> Vec<(CompactString, Reward)> {
        let levels = self.levels.read();
        let mut out: Vec<_> = levels.iter().map(|(k, v)| (k.clone(), *v)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn import(&self, rewards: Vec<(CompactString, Reward)>) {
        self.levels.write().extend(rewards);
    }

    pub fn level(&self, streamer: &str, now: Secs, params: &RewardParams) -> f64 {
        self.levels
            .read()
            .get(streamer)
            .map_or(0.0, |r| r.level_at(now, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_decay_are_capped_and_only_credited_streamers_are_boosted() {
        let params = RewardParams {
            per_impression: 0.01,
            per_conversion: 0.1,
            half_life_s: 100.0,
            cap: 0.25,
        };
        let r = Rewards::default();
        assert_eq!(
            r.multipliers([Some("a")].into_iter(), Secs(0), &params),
            None
        );
        r.credit("a", 0.1, Secs(0), &params);
        r.credit("a", 0.1, Secs(0), &params);
        r.credit("a", 0.1, Secs(0), &params);
        assert!(
            (r.level("a", Secs(0), &params) - 0.25).abs() < 1e-6,
            "capped"
        );
        let m = r
            .multipliers([Some("a"), Some("b"), None].into_iter(), Secs(100), &params)
            .unwrap();
        assert!((m[0] - 1.125).abs() < 1e-6, "{m:?}");
        assert_eq!(&m[1..], &[1.0, 1.0]);
        assert_eq!(r.sweep(Secs(1000), &params, 0.01), 0);
    }
}
