//! When in the day the flow has pages to act on, learned from the days
//! before, so a budget is paced to the hours it can be spent in.
//!
//! A flow impression needs a user who remembers a brand and that brand's
//! own stream on air. Brands broadcast in long daytime shifts that end as
//! the evening's traffic peaks, so a budget paced evenly over the day
//! holds back in the afternoon what it can no longer spend at night:
//! rollover carries unspent allowance forward, never back. Each paced
//! budget therefore counts, per hour of its budget day, the pages on which
//! the flow had something to reserve (whether or not the budget allowed
//! it), and paces the next day by those hours' shares, averaged over the
//! days before.

use serde::{Deserialize, Serialize};

/// Share of the plan that stays on the configured profile however sharp
/// the learned one is: an hour that had no pages on the days before still
/// accrues a little allowance, should pages come in it today.
const CONFIGURED_SHARE: f64 = 0.05;

/// Pages the flow could act on, by hour of the budget day.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    /// Pages counted in each hour of the current budget day.
    today: [u32; 24],
    /// Each hour's share of a day's pages, an exponential mean over the
    /// days before; all 0 until a day with pages has ended.
    learned: [f32; 24],
}

impl Demand {
    /// Counts one page in `hour` (0..24) of the current budget day.
    pub fn note(&mut self, hour: usize) {
        self.today[hour] = self.today[hour].saturating_add(1);
    }

    /// Ends the budget day: its shares join the learned ones with weight
    /// `1 / memory_days` (all of it for the first day with pages). A day
    /// without pages teaches nothing.
    pub fn end_day(&mut self, memory_days: f64) {
        let total: f64 = self.today.iter().map(|&n| f64::from(n)).sum();
        if total > 0.0 {
            let first = self.learned.iter().all(|&s| s == 0.0);
            let weight = if first {
                1.0
            } else {
                (1.0 / memory_days.max(1.0)) as f32
            };
            for (learned, &n) in self.learned.iter_mut().zip(&self.today) {
                *learned += weight * ((f64::from(n) / total) as f32 - *learned);
            }
        }
        self.today = [0; 24];
    }

    /// The cumulative share of the budget to allow by the start of each
    /// hour: the learned profile, with [`CONFIGURED_SHARE`] of the
    /// `configured` one; the configured one alone until a day is learned.
    pub fn plan(&self, configured: &[f64; 25]) -> [f64; 25] {
        let learned_total: f64 = self.learned.iter().map(|&s| f64::from(s)).sum();
        if learned_total <= 0.0 {
            return *configured;
        }
        let mut plan = [0.0; 25];
        for h in 0..24 {
            let share = f64::from(self.learned[h]) / learned_total;
            let planned = configured[h + 1] - configured[h];
            plan[h + 1] = plan[h] + (1.0 - CONFIGURED_SHARE) * share + CONFIGURED_SHARE * planned;
        }
        plan[24] = 1.0;
        plan
    }

    /// The learned share of each hour (0 until a day is learned).
    pub fn learned(&self) -> [f32; 24] {
        self.learned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform() -> [f64; 25] {
        std::array::from_fn(|h| h as f64 / 24.0)
    }

    fn day(pages: &[(usize, u32)]) -> Demand {
        let mut d = Demand::default();
        for &(hour, n) in pages {
            for _ in 0..n {
                d.note(hour);
            }
        }
        d
    }

    #[test]
    fn until_a_day_is_learned_the_configured_profile_is_the_plan() {
        let d = day(&[(9, 5)]);
        assert_eq!(d.plan(&uniform()), uniform());
        let mut quiet = Demand::default();
        quiet.end_day(3.0);
        assert_eq!(quiet.plan(&uniform()), uniform(), "a day without pages");
    }

    #[test]
    fn the_first_day_is_learned_whole_and_later_days_by_their_weight() {
        let mut d = day(&[(9, 30), (10, 10)]);
        d.end_day(4.0);
        assert_eq!(d.learned()[9], 0.75);
        assert_eq!(d.learned()[10], 0.25);
        assert_eq!(d.today, [0; 24], "a new day counts from zero");
        for _ in 0..40 {
            d.note(10);
        }
        d.end_day(4.0);
        // 0.75 + (0 - 0.75) / 4, 0.25 + (1 - 0.25) / 4.
        assert!((d.learned()[9] - 0.5625).abs() < 1e-6);
        assert!((d.learned()[10] - 0.4375).abs() < 1e-6);
    }

    #[test]
    fn the_plan_follows_the_learned_hours_and_keeps_a_little_of_the_configured() {
        let mut d = day(&[(8, 50), (9, 50)]);
        d.end_day(3.0);
        let plan = d.plan(&uniform());
        assert_eq!(plan[0], 0.0);
        assert_eq!(plan[24], 1.0);
        assert!(plan.windows(2).all(|w| w[1] >= w[0]), "never decreasing");
        // By the end of hour 9: all of the learned share and 10/24 of the
        // configured one.
        let by_10 = (1.0 - CONFIGURED_SHARE) + CONFIGURED_SHARE * 10.0 / 24.0;
        assert!((plan[10] - by_10).abs() < 1e-9, "{}", plan[10]);
        // An hour without pages still accrues the configured share.
        assert!((plan[3] - plan[2] - CONFIGURED_SHARE / 24.0).abs() < 1e-9);
    }
}
