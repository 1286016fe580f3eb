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

    /// The budget day `now` falls in (days since the epoch, from the day
    /// start).
    pub fn day_of(&self, now: Millis) -> i64 {
        position(now, self).0
    }

    /// The share of a day's budget the plan allows spent by `now` (with
    /// rollover; without, what the hours before and this one's part add up
    /// to): what the console draws spending against.
    pub fn planned_share(&self, now: Millis) -> f64 {
        let (_, hour, fraction) = position(now, self);
        let h = hour as usize;
        self.cumulative[h] + (self.cumulative[h + 1] - self.cumulative[h]) * fraction
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
        match allowance(budget, pacing, hour, fraction) {
            (day, None) => day.saturating_sub(self.spent),
            (day, Some(this_hour)) => this_hour
                .saturating_sub(self.spent_in_hour)
                .min(day.saturating_sub(self.spent)),
        }
    }
}

/// How much of `budget` the pacing allows by `now`: in the day, and in its
/// hour when unspent allowance does not roll over.
fn allowance(budget: u64, pacing: &Pacing, hour: i64, fraction: f64) -> (u64, Option<u64>) {
    let budget_f = budget as f64;
    let h = hour as usize;
    if pacing.rollover {
        let cumulative =
            pacing.cumulative[h] + (pacing.cumulative[h + 1] - pacing.cumulative[h]) * fraction;
        // The epsilon keeps 2400 x 6/24 at 600, not 599.99... -> 599.
        (
            ((budget_f * cumulative + 1e-6).floor() as u64).min(budget),
            None,
        )
    } else {
        let this_hour =
            (budget_f * (pacing.cumulative[h + 1] - pacing.cumulative[h]) + 1e-6).floor() as u64;
        (budget, Some(this_hour))
    }
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
        let (allowed_day, allowed_hour) = allowance(budget, pacing, hour, fraction);
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
    fn the_plan_is_the_cumulative_share_of_the_day() {
        let pace = pacing(true);
        assert!((pace.planned_share(at(6.0)) - 0.25).abs() < 1e-12);
        assert!(
            (pace.planned_share(at(30.0)) - 0.25).abs() < 1e-12,
            "a day later"
        );
        let evening = Pacing::new(&[[0.0; 12], [1.0; 12]].concat(), 0, true).unwrap();
        assert_eq!(evening.planned_share(at(11.5)), 0.0);
        assert!((evening.planned_share(at(18.0)) - 0.5).abs() < 1e-12);
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

    /// A fleet's count, as the Lua script keeps it: a lease takes at most
    /// what the pacing allows by now, less what was leased.
    fn lease_from(fleet: &Mutex<u64>, r: LeaseRequest) -> u64 {
        let mut leased = fleet.lock();
        let grant = r.want.min(r.allowed_day.saturating_sub(*leased));
        *leased += grant;
        grant
    }

    /// Spends on `pacer` until the fleet's count has nothing more to lease;
    /// returns how many it spent (every third one refunded, then spent
    /// again, as unplaced reservations are).
    fn spend_leased(p: &Pacer, fleet: &Mutex<u64>, budget: u64, pace: &Pacing, now: Millis) -> u64 {
        let (mut spent, mut attempts) = (0, 0);
        loop {
            if p.try_spend(budget, pace, now) {
                attempts += 1;
                if attempts % 3 == 0 {
                    p.refund(pace, now);
                } else {
                    spent += 1;
                }
                continue;
            }
            match p.lease_request(budget, pace, now, 7) {
                Some(r) => {
                    let granted = lease_from(fleet, r);
                    p.grant(r.day, granted);
                    if granted == 0 {
                        return spent;
                    }
                }
                None => return spent,
            }
        }
    }

    #[test]
    fn replicas_leasing_from_one_count_spend_exactly_the_allowance() {
        let pace = pacing(true);
        let fleet = Mutex::new(0);
        let replicas: Vec<Pacer> = (0..3).map(|_| Pacer::shared()).collect();
        let spent: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = replicas
                .iter()
                .map(|p| s.spawn(|| spend_leased(p, &fleet, 2400, &pace, at(12.0))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(
            spent, 1200,
            "half the day's budget by noon, over all replicas"
        );
        assert_eq!(*fleet.lock(), 1200);
        // Without a lease a shared pacer spends nothing, whatever the budget.
        assert!(!Pacer::shared().try_spend(2400, &pace, at(12.0)));
    }

    #[test]
    fn a_replica_lost_with_a_lease_leaves_it_unspent_and_a_day_change_drops_it() {
        let pace = pacing(true);
        let fleet = Mutex::new(0);
        {
            let lost = Pacer::shared();
            let r = lost.lease_request(240, &pace, at(12.0), 50).unwrap();
            lost.grant(r.day, lease_from(&fleet, r));
            assert!(lost.try_spend(240, &pace, at(12.0)));
        } // dies holding 49
        let survivor = Pacer::shared();
        let spent = spend_leased(&survivor, &fleet, 240, &pace, at(12.0));
        assert_eq!(spent, 120 - 50, "never more than the allowance");
        // What was held for yesterday is not spent today.
        let p = Pacer::shared();
        let r = p.lease_request(240, &pace, at(12.0), 10).unwrap();
        p.grant(r.day, 10);
        assert!(!p.try_spend(240, &pace, at(36.0)));
        assert_eq!(p.release(), None, "nothing held for the new day");
        // A grant that arrives after its day is dropped.
        p.grant(r.day, 5);
        assert!(!p.try_spend(240, &pace, at(36.0)));
        // Unspent leases are released for return, once.
        let q = Pacer::shared();
        let r = q.lease_request(240, &pace, at(12.0), 10).unwrap();
        q.grant(r.day, 10);
        assert!(q.try_spend(240, &pace, at(12.0)));
        assert_eq!(q.release(), Some((r.day, 9)));
        assert_eq!(q.release(), None);
    }

    #[test]
    fn a_lease_request_carries_the_pacing_allowance() {
        let p = Pacer::shared();
        let r = p.lease_request(2400, &pacing(false), at(5.5), 30).unwrap();
        assert_eq!(
            (r.hour, r.allowed_day, r.allowed_hour, r.want),
            (5, 2400, Some(100), 30)
        );
        p.grant(r.day, 30);
        assert_eq!(
            p.lease_request(2400, &pacing(false), at(5.5), 30),
            None,
            "enough held"
        );
        assert_eq!(
            Pacer::default().lease_request(2400, &pacing(true), at(5.5), 30),
            None
        );
    }
}
