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
    let share = |pace: &Pacing, hour: f64| Pacer::default().planned_share(pace, at(hour));
    assert!((share(&pace, 6.0) - 0.25).abs() < 1e-12);
    assert!((share(&pace, 30.0) - 0.25).abs() < 1e-12, "a day later");
    let evening = Pacing::new(&[[0.0; 12], [1.0; 12]].concat(), 0, true).unwrap();
    assert_eq!(share(&evening, 11.5), 0.0);
    assert!((share(&evening, 18.0) - 0.5).abs() < 1e-12);
}

/// Serves `pages` pages at `hour`, each one counted as demand and
/// spending an impression if the pacing allows: how many were spent.
fn serve_pages(p: &Pacer, budget: u64, pace: &Pacing, hour: f64, pages: u32) -> u64 {
    (0..pages)
        .filter(|_| {
            p.note_demand(pace, at(hour));
            p.try_spend(budget, pace, at(hour))
        })
        .count() as u64
}

/// Pages only from 8:00 to 20:00 (at half past each hour), many more
/// than the budget.
fn daytime(p: &Pacer, budget: u64, pace: &Pacing, day: u32) -> u64 {
    (8..20)
        .map(|h| serve_pages(p, budget, pace, f64::from(day * 24 + h) + 0.5, 500))
        .sum()
}

#[test]
fn a_learned_profile_spends_the_budget_in_the_hours_that_have_pages() {
    let uniform = pacing(true);
    let learning = pacing(true).following_demand(3.0);
    let (fixed, learned) = (Pacer::default(), Pacer::default());
    // The first day, nothing is learned yet: both pace evenly, and by
    // the last pages, at 19:30, have allowed 19.5 hours' worth. The
    // allowance of the hours after is never spent.
    assert_eq!(daytime(&fixed, 2400, &uniform, 0), 1950);
    assert_eq!(daytime(&learned, 2400, &learning, 0), 1950);
    // From the second day on, the learning pacer follows the pages: by
    // 19:30 it allows 11.5 of the 12 learned hours and 19.5/24 of the
    // configured 5%.
    let share = 0.95 * 11.5 / 12.0 + 0.05 * 19.5 / 24.0;
    assert_eq!(daytime(&fixed, 2400, &uniform, 1), 1950);
    assert_eq!(daytime(&learned, 2400, &learning, 1), 2282);
    assert_eq!((2400.0 * share) as u64, 2282);
    assert!(
        (learned.planned_share(&learning, at(43.5)) - share).abs() < 1e-9,
        "the console's plan is the one paced by"
    );
    // Never more than the budget.
    assert_eq!(
        serve_pages(&learned, 2400, &learning, 47.9, 500),
        2399 - 2282
    );
}

#[test]
fn the_learned_demand_survives_a_restore() {
    let learning = pacing(true).following_demand(3.0);
    let p = Pacer::default();
    daytime(&p, 2400, &learning, 0);
    let restored = Pacer::default();
    restored.restore(p.state());
    assert_eq!(daytime(&restored, 2400, &learning, 1), 2282);
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
