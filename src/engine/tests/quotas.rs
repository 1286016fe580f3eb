//! Quota rules checked here:
//! - tier floors place small streamers, with the floor's reason;
//! - no streamer takes more slots of a page than the cap;
//! - the controller lifts a tier below its target over requests;
//! - spreading rotates exposure among equal streamers, and none holds more
//!   than its share cap over the window;
//! - the same pages spread the same at 10, 1 and 0.1 requests a second.

use super::*;

#[test]
fn tier_floors_place_small_streamers_and_say_so() {
    // Ten top-tier goods outscore one small streamer's goods by far.
    let mut c = catalog();
    let sellers: Vec<_> = (0..10)
        .map(|i| streamer(&format!("top{i}"), 9_000_000))
        .collect();
    c.upsert_streamers(sellers, 64).unwrap();
    c.upsert_goods(
        (0..10)
            .map(|i| goods(&format!("gt{i}"), &format!("top{i}"), 100.0))
            .collect(),
        64,
    )
    .unwrap();
    let mut candidates: Vec<Candidate> = (0..10)
        .map(|i| upstream(&format!("gt{i}"), ItemKind::Goods, 0.2, 0.1))
        .collect();
    candidates.push(upstream("g-small", ItemKind::Goods, 0.01, 0.01));
    let toml = "[scoring]\nsource = \"upstream\"\n[quotas.floors]\npolicy = \"proportional\"\nmid = 0.0\nsmall = 0.25\n";
    let e = engine(toml);
    let r = e
        .rank(&c, &RankState::new(), &query(candidates.clone(), 4))
        .unwrap();
    assert_eq!(
        r.slots[3].item_id, "g-small",
        "floor(0.25 * 4) = 1 small slot in the first four"
    );
    assert!(r.slots[3].reasons.contains(Reason::TierFloor));
    assert!(!r.slots[3].reasons.contains(Reason::Organic));
    assert!(
        r.slots[..3]
            .iter()
            .all(|s| s.reasons.contains(Reason::Organic))
    );

    // The follow page is not under quotas by default: score order.
    let mut q = query(candidates, 4);
    q.scene = Scene::Follow;
    let r = e.rank(&c, &RankState::new(), &q).unwrap();
    assert!(r.slots.iter().all(|s| s.item_id != "g-small"));
}

#[test]
fn one_streamer_gets_at_most_the_cap() {
    let mut c = catalog();
    c.upsert_goods(
        (0..5)
            .map(|i| goods(&format!("gm{i}"), "mid", 100.0))
            .collect(),
        64,
    )
    .unwrap();
    let mut candidates: Vec<Candidate> = (0..5)
        .map(|i| upstream(&format!("gm{i}"), ItemKind::Goods, 0.5, 0.5))
        .collect();
    candidates.push(upstream("g-top", ItemKind::Goods, 0.01, 0.01));
    let e = engine(
        "[scoring]\nsource = \"upstream\"\n[quotas]\nmax_items_per_streamer = 2\n[quotas.floors]\npolicy = \"none\"\n",
    );
    let r = e
        .rank(&c, &RankState::new(), &query(candidates, 5))
        .unwrap();
    assert_eq!(ids(&r), ["gm0", "gm1", "g-top"]);
}

#[test]
fn the_controller_lifts_a_tier_below_its_target_over_requests() {
    // Top goods always outscore the small streamer's; with a small-tier
    // target of 25% and no floors, the controller must lift it onto pages.
    let mut c = catalog();
    let sellers: Vec<_> = (0..6)
        .map(|i| streamer(&format!("top{i}"), 9_000_000))
        .collect();
    c.upsert_streamers(sellers, 64).unwrap();
    c.upsert_goods(
        (0..6)
            .map(|i| goods(&format!("gt{i}"), &format!("top{i}"), 100.0))
            .collect(),
        64,
    )
    .unwrap();
    let mut candidates: Vec<Candidate> = (0..6)
        .map(|i| upstream(&format!("gt{i}"), ItemKind::Goods, 0.2, 0.1))
        .collect();
    candidates.push(upstream("g-small", ItemKind::Goods, 0.1, 0.1));
    let e = engine(concat!(
        "[scoring]\nsource = \"upstream\"\n",
        "[quotas.floors]\npolicy = \"none\"\n",
        "[quotas.targets]\nenabled = true\ntop = 0.7\nmid = 0.0\nsmall = 0.25\nstep = 0.5\n",
    ));
    let state = RankState::new();
    let first = e.rank(&c, &state, &query(candidates.clone(), 3)).unwrap();
    assert!(
        first.slots.iter().all(|s| s.tier == Tier::Top),
        "organic at first"
    );
    let mut lifted = None;
    for i in 1..200 {
        let q = RankQuery {
            now: Millis(NOW.0 + i * 1000),
            ..query(candidates.clone(), 3)
        };
        let r = e.rank(&c, &state, &q).unwrap();
        if let Some(s) = r.slots.iter().find(|s| s.item_id == "g-small") {
            assert!(s.reasons.contains(Reason::ExposureBoost));
            lifted = Some(i);
            break;
        }
    }
    assert!(lifted.is_some(), "the small tier is lifted onto a page");
    let view = state.exposure.view(&e.params().quotas.exposure);
    assert!(view.prices[Tier::Small.index()] > 0.0);
    assert!(view.prices[Tier::Top.index()] <= 0.0);
}

#[test]
fn spreading_rotates_exposure_among_equal_streamers() {
    // Three mid streamers with identical goods: without spreading the first
    // takes the top slot every time; with it the top slot rotates.
    let mut c = catalog();
    let sellers: Vec<_> = (0..3)
        .map(|i| streamer(&format!("m{i}"), 300_000))
        .collect();
    c.upsert_streamers(sellers, 64).unwrap();
    c.upsert_goods(
        (0..3)
            .map(|i| goods(&format!("gm{i}"), &format!("m{i}"), 100.0))
            .collect(),
        64,
    )
    .unwrap();
    let candidates: Vec<Candidate> = (0..3)
        .map(|i| upstream(&format!("gm{i}"), ItemKind::Goods, 0.2, 0.1))
        .collect();
    let firsts = |toml: &str| {
        let e = engine(toml);
        let state = RankState::new();
        (0..9)
            .map(|i| {
                let q = RankQuery {
                    now: Millis(NOW.0 + i * 1000),
                    ..query(candidates.clone(), 1)
                };
                e.rank(&c, &state, &q).unwrap().slots[0].item_id.clone()
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    let base = "[scoring]\nsource = \"upstream\"\n[quotas.floors]\npolicy = \"none\"\n";
    assert_eq!(
        firsts(&format!("{base}[quotas.spreading]\nstrength = 0.0\n")).len(),
        1
    );
    assert_eq!(
        firsts(&format!("{base}[quotas.spreading]\nstrength = 2.0\n")).len(),
        3
    );
}

#[test]
fn no_streamer_holds_more_than_its_share_cap_over_the_window() {
    // Ten mid streamers, one of them far better than the rest: without a cap
    // it takes the top slot of every page.
    let mut c = catalog();
    c.upsert_streamers(
        (0..10)
            .map(|i| streamer(&format!("m{i}"), 300_000))
            .collect(),
        64,
    )
    .unwrap();
    c.upsert_goods(
        (0..10)
            .map(|i| goods(&format!("gm{i}"), &format!("m{i}"), 100.0))
            .collect(),
        64,
    )
    .unwrap();
    let candidates: Vec<Candidate> = (0..10)
        .map(|i| {
            upstream(
                &format!("gm{i}"),
                ItemKind::Goods,
                0.4 - 0.02 * i as f64,
                0.1,
            )
        })
        .collect();
    let cap = 0.2;
    let e = engine(&format!(
        "[scoring]\nsource = \"upstream\"\n[quotas.floors]\npolicy = \"none\"\n\
         [quotas.spreading]\nmax_share = {cap}\nhalf_life_pages = 1000000\n"
    ));
    let state = RankState::new();
    let mut exposure: std::collections::HashMap<String, f64> = Default::default();
    let mut capped = 0;
    for i in 0..300 {
        let q = RankQuery {
            now: Millis(NOW.0 + i * 1000),
            ..query(candidates.clone(), 2)
        };
        let r = e.rank(&c, &state, &q).unwrap();
        assert_eq!(r.slots.len(), 2, "others fill the page");
        capped += r.ineligible;
        for s in &r.slots {
            *exposure.entry(s.streamer_id.clone().unwrap()).or_default() += s.exposure;
        }
    }
    assert!(capped > 0, "the cap bound");
    // With a week-long half-life the window is nearly the whole run, so
    // the run's shares stay within the cap plus one page.
    let total: f64 = exposure.values().sum();
    let max = exposure.values().copied().fold(0.0, f64::max);
    assert!(max / total <= cap + 1.63 / total + 1e-9, "{exposure:?}");
    assert!(
        max / total > cap - 0.05,
        "the best streamer still gets its share"
    );
}

#[test]
fn the_same_pages_spread_the_same_at_any_traffic_rate() {
    // 4 top, 12 mid, 24 small streamers with one goods item each; every
    // request carries all of them with fixed upstream scores that favour
    // a few per tier. Served at 10, 1 and 0.1 requests a second, the same
    // pages must leave the same concentration: every window that steers
    // ranking counts pages.
    let mut c = catalog();
    let followers = |i: usize| match i {
        0..4 => 8_000_000,
        4..16 => 300_000,
        _ => 2_000,
    };
    let mut sellers: Vec<_> = (0..40)
        .map(|i| streamer(&format!("s{i}"), followers(i)))
        .collect();
    for s in &mut sellers {
        s.created_at = Millis(0);
    }
    c.upsert_streamers(sellers, 64).unwrap();
    c.upsert_goods(
        (0..40)
            .map(|i| goods(&format!("g{i}"), &format!("s{i}"), 100.0))
            .collect(),
        64,
    )
    .unwrap();
    let candidates: Vec<Candidate> = (0..40)
        .map(|i| {
            let pctr = 0.3 / (1.0 + (i % 12) as f64);
            upstream(&format!("g{i}"), ItemKind::Goods, pctr, 0.1)
        })
        .collect();
    let gini_at = |toml: &str, gap_ms: i64| {
        let e = engine(toml);
        let state = RankState::new();
        let mut exposure = std::collections::BTreeMap::<String, f64>::new();
        for i in 0..600 {
            let q = RankQuery {
                now: Millis(NOW.0 + i * gap_ms),
                ..query(candidates.clone(), 6)
            };
            for s in e.rank(&c, &state, &q).unwrap().slots {
                *exposure.entry(s.streamer_id.unwrap()).or_default() += s.exposure;
            }
        }
        let mut all: Vec<f64> = (0..40)
            .map(|i| exposure.get(&format!("s{i}")).copied().unwrap_or(0.0))
            .collect();
        all.sort_by(f64::total_cmp);
        crate::allocate::concentration::gini(&all)
    };
    let base = "[scoring]\nsource = \"upstream\"\n[quotas.targets]\nenabled = true\ntop = 0.2\nmid = 0.4\nsmall = 0.4\n";
    let spread = format!("{base}[quotas.spreading]\nstrength = 0.5\nhalf_life_pages = 200.0\n");
    let rates: Vec<f64> = [100, 1_000, 10_000]
        .iter()
        .map(|&gap| gini_at(&spread, gap))
        .collect();
    for g in &rates {
        assert!(
            (g - rates[0]).abs() < 0.01,
            "Gini at 10, 1, 0.1 req/s: {rates:?}"
        );
    }
    // Not vacuous: spreading does lower it.
    let without = gini_at(
        &format!("{base}[quotas.spreading]\nstrength = 0.0\n"),
        1_000,
    );
    assert!(rates[1] < without - 0.05, "{rates:?} vs {without}");
}
