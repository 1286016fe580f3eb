//! The budget's pacing learns when the flow has pages to act on.

use super::*;

/// Ranks one page for each of `users` users (who bought through the
/// influencer the day before) at `at`; returns the flow slots served.
fn pages_at(e: &Engine, c: &Catalog, state: &RankState, users: usize, at: Millis) -> usize {
    let params = &e.params().chuanliu;
    (0..users)
        .map(|u| {
            let user = format!("u{u}");
            let bought = Millis(at.0 - 24 * HOUR);
            state.flow.apply(
                &purchase(
                    &format!("p{u}-{}", at.0),
                    &user,
                    Channel::Influencer,
                    bought,
                ),
                params,
            );
            flow_items(
                &e.rank(c, state, &query(&user, &["inf-live"], 3, at))
                    .unwrap(),
            )
            .len()
        })
        .sum()
}

#[test]
fn a_day_of_pages_at_one_hour_moves_the_next_days_allowance_there() {
    // Pages only at 06:30; 240 a day, evenly planned: 65 allowed by then.
    let day = |d: i64| Millis(20_000 * Millis::MS_PER_DAY + d * 24 * HOUR + 6 * HOUR + HOUR / 2);
    let learning = engine(ALL, "daily_impressions = 240\nfollow_demand_days = 3.0");
    let fixed = engine(ALL, "daily_impressions = 240\nfollow_demand_days = 0.0");
    let c = catalog();
    let (learns, stays) = (RankState::new(), RankState::new());
    assert_eq!(pages_at(&learning, &c, &learns, 400, day(0)), 65);
    assert_eq!(pages_at(&fixed, &c, &stays, 400, day(0)), 65);
    // The next day the learning budget plans 95% of the day at 06:00-07:00
    // (and 5% evenly): by 06:30, 240 x (0.95 / 2 + 0.05 x 6.5 / 24).
    assert_eq!(pages_at(&learning, &c, &learns, 400, day(1)), 117);
    assert_eq!(pages_at(&fixed, &c, &stays, 400, day(1)), 65);
    let params = &learning.params().chuanliu;
    let planned = learns.flow.planned_share(day(1), params);
    assert!((planned - 117.25 / 240.0).abs() < 1e-6, "{planned}");
}
