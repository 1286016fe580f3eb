//! Paced daily budgets of flow impressions.
//!
//! A budget day starts at a configured hour. By time `t` into the day the
//! pacer allows `budget x F(t)` impressions, where `F` is the cumulative
//! share of a 24-hour profile (uniform unless configured), interpolated
//! within the hour. With rollover, what an hour left unspent stays available
//! later in the day; without, each hour may spend only its own share and
//! the rest lapses. With `follow_demand_days` set, the profile is learned
//! instead: each pacer paces by the hours in which the flow had pages to
//! act on, on the days before ([`super::demand`]). Either way the day's
//! total never exceeds the budget: a spend is checked and counted under one
//! lock, and a refund only gives back what was counted.

use super::demand::Demand;
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
    /// Pace by the hours the flow had pages to act on, learned over about
    /// this many days ([`Demand`]); 0: by `cumulative` alone.
    pub follow_demand_days: f64,
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
            follow_demand_days: 0.0,
        })
    }

    /// The same profile, learned from demand over about `days` days (0:
    /// not learned).
    pub fn following_demand(self, days: f64) -> Pacing {
        Pacing {
            follow_demand_days: days,
            ..self
        }
    }

    /// The budget day `now` falls in (days since the epoch, from the day
    /// start).
    pub fn day_of(&self, now: Millis) -> i64 {
        position(now, self).0
    }

    /// The plan to pace by with `demand` learned.
    fn plan(&self, demand: &Demand) -> [f64; 25] {
        if self.follow_demand_days > 0.0 {
            demand.plan(&self.cumulative)
        } else {
            self.cumulative
        }
    }

    pub fn uniform(day_start_ms: i64, rollover: bool) -> Pacing {
        Pacing::new(&[1.0; 24], day_start_ms, rollover).expect("uniform weights are valid")
    }
}

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// When the flow had pages to act on: today, and learned from the days
    /// before.
    pub demand: Demand,
}

/// The spending of one daily budget: counted here alone (a single
/// process), or from impressions leased out of a budget the fleet shares.
#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<Spending>,
}

#[derive(Debug, Default)]
struct Spending {
    /// What was spent here, and when.
    paced: PacerState,
    /// With a shared budget: the impressions leased and not yet spent.
    lease: Option<Lease>,
}

/// Impressions this process holds of a shared budget: taken from the
/// fleet's count before they are spent here, so the fleet never spends
/// more than the budget. Held impressions of a day that ended are dropped
/// (unspent, never spent twice).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Lease {
    day: i64,
    held: u64,
    /// A spend found nothing held since the last request.
    starved: bool,
}

/// What to ask the fleet's count for: up to `want` more impressions of the
/// budget day `day`, as long as the fleet's spend stays within what the
/// pacing allows now (`allowed_day` in the day; `allowed_hour` in `hour`,
/// without rollover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRequest {
    pub day: i64,
    pub hour: i64,
    pub allowed_day: u64,
    pub allowed_hour: Option<u64>,
    pub want: u64,
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
            let mut demand = self.demand;
            demand.end_day(pacing.follow_demand_days);
            *self = PacerState {
                day,
                hour,
                latest: now,
                demand,
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
        match self.allowance(budget, pacing, hour, fraction) {
            (day, None) => day.saturating_sub(self.spent),
            (day, Some(this_hour)) => this_hour
                .saturating_sub(self.spent_in_hour)
                .min(day.saturating_sub(self.spent)),
        }
    }

    /// How much of `budget` the pacing allows at this position: in the
    /// day, and in its hour when unspent allowance does not roll over.
    fn allowance(
        &self,
        budget: u64,
        pacing: &Pacing,
        hour: i64,
        fraction: f64,
    ) -> (u64, Option<u64>) {
        let plan = pacing.plan(&self.demand);
        let budget_f = budget as f64;
        let h = hour as usize;
        if pacing.rollover {
            let cumulative = share_by(&plan, hour, fraction);
            // The epsilon keeps 2400 x 6/24 at 600, not 599.99... -> 599.
            (
                ((budget_f * cumulative + 1e-6).floor() as u64).min(budget),
                None,
            )
        } else {
            let this_hour = (budget_f * (plan[h + 1] - plan[h]) + 1e-6).floor() as u64;
            (budget, Some(this_hour))
        }
    }

    /// The share of the day's budget the plan allows spent by `now` (with
    /// rollover; without, what the hours before and this one's part add up
    /// to).
    fn planned_share(&self, pacing: &Pacing, now: Millis) -> f64 {
        // As a spend at `now` would see it (a new day ends the old one),
        // without moving the pacer.
        let mut at = *self;
        let (hour, fraction) = at.advance(now, pacing);
        share_by(&pacing.plan(&at.demand), hour, fraction)
    }
}

/// The cumulative share `plan` allows by `fraction` into `hour`.
fn share_by(plan: &[f64; 25], hour: i64, fraction: f64) -> f64 {
    let h = hour as usize;
    plan[h] + (plan[h + 1] - plan[h]) * fraction
}

impl Pacer {
    /// A pacer that spends only impressions leased from a shared budget
    /// ([`Pacer::lease_request`], [`Pacer::grant`]).
    pub fn shared() -> Pacer {
        let pacer = Pacer::default();
        pacer.share();
        pacer
    }

    /// From now on, spends only leased impressions.
    pub fn share(&self) {
        let mut s = self.state.lock();
        if s.lease.is_none() {
            s.lease = Some(Lease {
                day: s.paced.day,
                ..Lease::default()
            });
        }
    }

    /// Spends one impression of a `budget`-a-day allowance at `now`, if the
    /// pacing allows it (with a shared budget: if one is held).
    pub fn try_spend(&self, budget: u64, pacing: &Pacing, now: Millis) -> bool {
        let mut guard = self.state.lock();
        let s = &mut *guard;
        let (hour, fraction) = s.paced.advance(now, pacing);
        match &mut s.lease {
            None => {
                if s.paced.headroom(budget, pacing, hour, fraction) == 0 {
                    return false;
                }
            }
            Some(lease) => {
                if lease.day != s.paced.day {
                    *lease = Lease {
                        day: s.paced.day,
                        ..Lease::default()
                    };
                }
                if lease.held == 0 {
                    lease.starved = true;
                    return false;
                }
                lease.held -= 1;
            }
        }
        s.paced.spent += 1;
        s.paced.spent_in_hour += 1;
        true
    }

    /// With a shared budget: what to lease now, when fewer than half of
    /// `lease` impressions are held (or a spend found none), for a budget of
    /// `budget` a day. `None` with a local budget or enough held.
    pub fn lease_request(
        &self,
        budget: u64,
        pacing: &Pacing,
        now: Millis,
        lease: u64,
    ) -> Option<LeaseRequest> {
        let mut guard = self.state.lock();
        let s = &mut *guard;
        let (hour, fraction) = s.paced.advance(now, pacing);
        let held = s.lease.as_mut()?;
        if held.day != s.paced.day {
            *held = Lease {
                day: s.paced.day,
                ..Lease::default()
            };
        }
        if held.held * 2 >= lease && !held.starved {
            return None;
        }
        held.starved = false;
        let (allowed_day, allowed_hour) = s.paced.allowance(budget, pacing, hour, fraction);
        Some(LeaseRequest {
            day: s.paced.day,
            hour,
            allowed_day,
            allowed_hour,
            want: lease.saturating_sub(held.held).max(1),
        })
    }

    /// Adds `n` impressions leased for budget day `day`; a grant for a day
    /// that has ended is dropped.
    pub fn grant(&self, day: i64, n: u64) {
        let mut s = self.state.lock();
        if let Some(lease) = &mut s.lease
            && lease.day == day
        {
            lease.held += n;
        }
    }

    /// Gives up every impression held: (their day, how many), to return to
    /// the fleet's count (at shutdown).
    pub fn release(&self) -> Option<(i64, u64)> {
        let mut s = self.state.lock();
        let lease = s.lease.as_mut()?;
        let held = std::mem::take(&mut lease.held);
        (held > 0).then_some((lease.day, held))
    }

    /// Gives back one impression spent at `spent_at` and not served. Only
    /// within the same day (and hour, for the hourly count): yesterday's
    /// spend is history.
    pub fn refund(&self, pacing: &Pacing, spent_at: Millis) {
        let (day, hour, _) = position(spent_at, pacing);
        let mut guard = self.state.lock();
        let s = &mut *guard;
        if day == s.paced.day {
            s.paced.spent = s.paced.spent.saturating_sub(1);
            if hour == s.paced.hour {
                s.paced.spent_in_hour = s.paced.spent_in_hour.saturating_sub(1);
            }
            // A leased impression not served is held again.
            if let Some(lease) = &mut s.lease
                && lease.day == day
            {
                lease.held += 1;
            }
        }
    }

    /// Counts a page at `now` on which the flow had something to reserve
    /// from this budget, whether or not it is spent: the demand the
    /// pacing learns.
    pub fn note_demand(&self, pacing: &Pacing, now: Millis) {
        if pacing.follow_demand_days > 0.0 {
            let mut s = self.state.lock();
            let (hour, _) = s.paced.advance(now, pacing);
            s.paced.demand.note(hour as usize);
        }
    }

    /// The share of a day's budget the plan allows spent by `now`: what
    /// the console draws spending against.
    pub fn planned_share(&self, pacing: &Pacing, now: Millis) -> f64 {
        self.state.lock().paced.planned_share(pacing, now)
    }

    /// Spent today (as of `now`) and what is left of the day's budget.
    pub fn today(&self, budget: u64, pacing: &Pacing, now: Millis) -> (u64, u64) {
        let s = self.state.lock();
        let (day, _, _) = position(now.max(s.paced.latest), pacing);
        let spent = if day > s.paced.day { 0 } else { s.paced.spent };
        (spent, budget.saturating_sub(spent))
    }

    pub fn state(&self) -> PacerState {
        self.state.lock().paced
    }

    /// Restores what was spent; a shared budget stays shared, holding
    /// nothing (what a process held before a restart is not spent again).
    pub fn restore(&self, state: PacerState) {
        let mut s = self.state.lock();
        s.paced = state;
        if let Some(lease) = &mut s.lease {
            *lease = Lease {
                day: state.day,
                ..Lease::default()
            };
        }
    }
}

#[cfg(test)]
mod tests;
