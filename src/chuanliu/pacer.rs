//! Paced daily budgets of flow impressions.
//!
//! A budget day starts at a configured hour. By time `t` into the day the
//! pacer allows `budget x F(t)` impressions, where `F` is the cumulative
//! share of a 24-hour profile (uniform unless configured), interpolated
//! within the hour. With rollover, what an hour left unspent stays available
//! later in the day; without, each hour may spend only its own share and
//! the rest lapses. Either way the day's total never exceeds the budget: a
//! spend is checked and counted under one lock, and a refund only gives
//! back what was counted.

use crate::domain::Millis;
use parking_lot::Mutex;

/// How a daily budget is spread over the day.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacing {
    /// Cumulative share of the budget at the start of each hour of the
    /// budget day (25 points, 0 to 1).
    pub cumulative: [f64; 25],
    /// Unix ms of some day start (only its time of day matters).
    pub day_start_ms: i64,
    /// Unspent allowance carries over to later hours of the same day.
    pub rollover: bool,
}

impl Pacing {
    /// A profile from 24 hourly weights (hours of the budget day), which
    /// need not sum to 1 but must not all be 0.
    pub fn new(weights: &[f64], day_start_ms: i64, rollover: bool) -> Result<Pacing, String> {
        if weights.len() != 24 {
            return Err(format!("needs 24 hourly weights, got {}", weights.len()));
        }
        if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
            return Err(format!("weight {w} is not a finite number >= 0"));
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err("the weights are all 0".into());
        }
        let mut cumulative = [0.0; 25];
        for h in 0..24 {
            cumulative[h + 1] = cumulative[h] + weights[h] / total;
        }
        cumulative[24] = 1.0;
        Ok(Pacing {
            cumulative,
            day_start_ms,
            rollover,
        })
    }

    pub fn uniform(day_start_ms: i64, rollover: bool) -> Pacing {
        Pacing::new(&[1.0; 24], day_start_ms, rollover).expect("uniform weights are valid")
    }
}

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PacerState {
    /// The budget day (days since the epoch, shifted to the day start).
    pub day: i64,
    /// Spent in `day`.
    pub spent: u64,
    /// Hour of the day and spent in it (for pacing without rollover).
    pub hour: i64,
    pub spent_in_hour: u64,
    /// The latest time paced. Times that go backwards (requests stamped by
    /// clocks a little behind) are paced as of this one: a late request
    /// must not reopen a finished day's or hour's budget.
    pub latest: Millis,
}

#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<PacerState>,
}

/// Where `now` falls: the budget day, the hour in it, and the fraction of
/// the hour gone.
fn position(now: Millis, pacing: &Pacing) -> (i64, i64, f64) {
    let t = now.0 - pacing.day_start_ms;
    let day = t.div_euclid(Millis::MS_PER_DAY);
    let into = t.rem_euclid(Millis::MS_PER_DAY);
    (
        day,
        into / HOUR_MS,
        (into % HOUR_MS) as f64 / HOUR_MS as f64,
    )
}

impl PacerState {
    /// Moves to `now` (or stays at the latest time seen, if later) and
    /// returns the position paced at.
    fn advance(&mut self, now: Millis, pacing: &Pacing) -> (i64, f64) {
        let now = now.max(self.latest);
        self.latest = now;
        let (day, hour, fraction) = position(now, pacing);
        if day != self.day {
            *self = PacerState {
                day,
                hour,
                latest: now,
                ..PacerState::default()
            };
        } else if hour != self.hour {
            self.hour = hour;
            self.spent_in_hour = 0;
        }
        (hour, fraction)
    }

    /// How many more impressions are allowed at this position.
    fn headroom(&self, budget: u64, pacing: &Pacing, hour: i64, fraction: f64) -> u64 {
        let budget_f = budget as f64;
        if pacing.rollover {
            let h = hour as usize;
            let cumulative =
                pacing.cumulative[h] + (pacing.cumulative[h + 1] - pacing.cumulative[h]) * fraction;
            // The epsilon keeps 2400 x 6/24 at 600, not 599.99... -> 599.
            let allowed = ((budget_f * cumulative + 1e-6).floor() as u64).min(budget);
            allowed.saturating_sub(self.spent)
        } else {
            let h = self.hour as usize;
            let this_hour = (budget_f * (pacing.cumulative[h + 1] - pacing.cumulative[h]) + 1e-6)
                .floor() as u64;
            this_hour
                .saturating_sub(self.spent_in_hour)
                .min(budget.saturating_sub(self.spent))
        }
    }
}

impl Pacer {
    /// Spends one impression of a `budget`-a-day allowance at `now`, if the
    /// pacing allows it.
    pub fn try_spend(&self, budget: u64, pacing: &Pacing, now: Millis) -> bool {
        let mut s = self.state.lock();
        let (hour, fraction) = s.advance(now, pacing);
        if s.headroom(budget, pacing, hour, fraction) == 0 {
            return false;
        }
        s.spent += 1;
        s.spent_in_hour += 1;
        true
    }

    /// Gives back one impression spent at `spent_at` and not served. Only
    /// within the same day (and hour, for the hourly count): yesterday's
    /// spend is history.
    pub fn refund(&self, pacing: &Pacing, spent_at: Millis) {
        let (day, hour, _) = position(spent_at, pacing);
        let mut s = self.state.lock();
        if day == s.day {
            s.spent = s.spent.saturating_sub(1);
            if hour == s.hour {
                s.spent_in_hour = s.spent_in_hour.saturating_sub(1);
            }
        }
    }

    /// Spent today (as of `now`) and what is left of the day's budget.
    pub fn today(&self, budget: u64, pacing: &Pacing, now: Millis) -> (u64, u64) {
        let (day, _, _) = position(now.max(self.state.lock().latest), pacing);
        let s = self.state.lock();
        let spent = if day > s.day { 0 } else { s.spent };
        (spent, budget.saturating_sub(spent))
    }

    pub fn state(&self) -> PacerState {
        *self.state.lock()
    }

    pub fn restore(&self, state: PacerState) {
        *self.state.lock() = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing(rollover: bool) -> Pacing {
        Pacing::uniform(0, rollover)
    }

    fn at(hour: f64) -> Millis {
        Millis((hour * HOUR_MS as f64) as i64)
    }

    fn spend_all(p: &Pacer, budget: u64, pacing: &Pacing, now: Millis) -> u64 {
        let mut n = 0;
        while p.try_spend(budget, pacing, now) {
            n += 1;
        }
        n
    }

    #[test]
    fn with_rollover_the_allowance_grows_with_the_day_and_never_passes_the_budget() {
        let (p, pace) = (Pacer::default(), pacing(true));
        assert_eq!(
            spend_all(&p, 2400, &pace, at(0.5)),
            50,
            "half an hour of 100/h"
        );
        // Nothing spent from 0.5 h to 6 h: it rolls forward.
        assert_eq!(spend_all(&p, 2400, &pace, at(6.0)), 550);
        assert_eq!(spend_all(&p, 2400, &pace, at(23.99)), 2400 - 600 - 1);
        assert_eq!(p.today(2400, &pace, at(23.99)), (2399, 1));
        // A new day starts from zero.
        assert_eq!(spend_all(&p, 2400, &pace, at(24.5)), 50);
    }

    #[test]
    fn without_rollover_an_hour_spends_only_its_own_share() {
        let (p, pace) = (Pacer::default(), pacing(false));
        assert_eq!(spend_all(&p, 2400, &pace, at(0.1)), 100);
        assert_eq!(spend_all(&p, 2400, &pace, at(0.9)), 0);
        // Hours 1..5 unspent: lapsed.
        assert_eq!(spend_all(&p, 2400, &pace, at(6.0)), 100);
    }

    #[test]
    fn a_late_request_does_not_reopen_a_finished_day_and_refunds_stay_in_their_day() {
        let (p, pace) = (Pacer::default(), pacing(true));
        assert_eq!(spend_all(&p, 240, &pace, at(25.0)), 10);
        assert!(
            !p.try_spend(240, &pace, at(23.0)),
            "yesterday's time, today's state"
        );
        p.refund(&pace, at(23.0));
        assert_eq!(
            p.today(240, &pace, at(25.0)).0,
            10,
            "not refunded into today"
        );
        p.refund(&pace, at(25.0));
        assert_eq!(p.today(240, &pace, at(25.0)).0, 9);
    }

    #[test]
    fn concurrent_spends_never_pass_the_allowance() {
        let (p, pace) = (Pacer::default(), pacing(true));
        let spent: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| spend_all(&p, 24_000, &pace, at(12.0))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(spent, 12_000);
    }

    #[test]
    fn a_profile_paces_by_its_weights() {
        let mut weights = [0.0; 24];
        weights[20] = 3.0;
        weights[21] = 1.0;
        let pace = Pacing::new(&weights, 0, true).unwrap();
        let p = Pacer::default();
        assert_eq!(spend_all(&p, 1000, &pace, at(19.9)), 0);
        assert_eq!(spend_all(&p, 1000, &pace, at(20.5)), 375);
        assert_eq!(spend_all(&p, 1000, &pace, at(23.0)), 625);
    }
}
