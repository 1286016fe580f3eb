//! The controller's rules: prices, spreading relative to the tier, windows
//! in pages, the share cap, bounded memory.

use super::*;
use crate::allocate::Floors;
use proptest::prelude::*;

fn params() -> ExposureParams {
    ExposureParams {
        targets: Some([0.4, 0.35, 0.25]),
        tier_half_life_ms: 600_000.0,
        step: 0.5,
        max_price: 2.0,
        spread_strength: 0.5,
        spread_half_life_pages: 100.0,
        max_streamers: 4,
        max_streamer_share: 0.0,
    }
}

fn served(tier: Tier, streamer: Option<&str>, exposure: f64) -> Served<'_> {
    Served {
        tier,
        streamer,
        exposure,
        score: 1.0,
    }
}

fn item(tier: Tier, name: &str) -> Item<'_> {
    Item {
        score: 1.0,
        eligible: true,
        tier,
        streamer: Some(name),
    }
}

#[test]
fn a_tier_below_target_gets_a_higher_price_bounded() {
    let p = params();
    let s = ExposureState::new();
    // Only top streamers served, again and again.
    for i in 0..200 {
        s.observe(&p, Millis(i * 1000), &[served(Tier::Top, None, 1.0)]);
    }
    let v = s.view(&p);
    assert!(v.prices[Tier::Small.index()] > 0.0);
    assert!(v.prices[Tier::Top.index()] < 0.0);
    assert!(v.prices.iter().all(|&x| x.abs() <= 2.0 + 1e-12), "{v:?}");
    assert!((v.score_unit - 1.0).abs() < 1e-12);
    assert!((v.realized_shares[Tier::Top.index()] - 1.0).abs() < 1e-9);
    // The price is added in score units: a small item of score 1 ranks
    // by 1 + 2 * 1 (the bound, in mean scores of 1).
    let c = s.control(&p, &[item(Tier::Small, "x")]);
    assert!((c.prices()[Tier::Small.index()] - 2.0).abs() < 1e-12);
    assert!((c.lift(&item(Tier::Small, "x")) - 3.0).abs() < 1e-12);
}

#[test]
fn the_step_integrates_each_pages_miss() {
    // One page of exposure 1, all to top, at targets 0.4/0.35/0.25: the
    // misses are -0.6, 0.35, 0.25 page-sized units.
    let p = params();
    let s = ExposureState::new();
    s.observe(&p, Millis(0), &[served(Tier::Top, None, 1.0)]);
    let v = s.view(&p);
    for (got, want) in v.prices.iter().zip([-0.3, 0.175, 0.125]) {
        assert!((got - want).abs() < 1e-12, "{v:?}");
    }
}

#[test]
fn spreading_is_relative_to_the_tiers_mean_streamer_and_decays() {
    let p = ExposureParams {
        max_streamers: 100,
        ..params()
    };
    let s = ExposureState::new();
    // Mid: a has 3, b has 1, the mean is 2; served scores are 1, so the
    // penalty is strength * 1 * e / 2.
    s.observe(
        &p,
        Millis(0),
        &[
            served(Tier::Mid, Some("a"), 3.0),
            served(Tier::Mid, Some("b"), 1.0),
        ],
    );
    let c = s.control(&p, &[item(Tier::Mid, "a"), item(Tier::Mid, "c")]);
    let want = 0.5 * 3.0 / 2.0;
    assert!((c.spread[0] - want).abs() < 1e-9, "{:?}", c.spread);
    assert_eq!(c.spread[1], 0.0, "a streamer never served pays nothing");
    // One half-life (in pages) later, a's exposure and the mean both halve:
    // the penalty relative to the tier is the same.
    for _ in 0..100 {
        s.observe(&p, Millis(0), &[]);
    }
    let later = s.control(&p, &[item(Tier::Mid, "a")]);
    assert!((later.spread[0] - want).abs() < 1e-9, "{:?}", later.spread);
    // A new streamer taking the tier's exposure makes a's share small.
    for _ in 0..300 {
        s.observe(&p, Millis(0), &[served(Tier::Mid, Some("d"), 1.0)]);
    }
    let after = s.control(&p, &[item(Tier::Mid, "a")]);
    assert!(after.spread[0] < 0.01, "{:?}", after.spread);
    // It orders the tier's candidates by score minus penalty.
    let items = [item(Tier::Mid, "d"), item(Tier::Mid, "a")];
    let c = s.control(&p, &items);
    let none = Floors::None.table(1);
    assert_eq!(c.place(&items, 1, &none, 0)[0].index, 1);
}

#[test]
fn windows_count_pages_not_seconds() {
    // The same pages at 10 per second and at one per 10 seconds leave
    // the same control.
    let p = ExposureParams {
        max_streamers: 100,
        max_streamer_share: 0.3,
        ..params()
    };
    let names = ["a", "b", "c", "d", "e"];
    let run = |gap_ms: i64| {
        let s = ExposureState::new();
        for i in 0..500 {
            let page = [
                served(Tier::Mid, Some(names[i % 5]), 1.0),
                served(Tier::Small, Some(names[(i * 3) % 5]), 0.63),
            ];
            s.observe(&p, Millis(i as i64 * gap_ms), &page);
        }
        let items: Vec<Item> = names.iter().map(|n| item(Tier::Mid, n)).collect();
        let c = s.control(&p, &items);
        (c.price, c.capped, c.spread)
    };
    assert_eq!(run(100), run(10_000));
}

#[test]
fn a_streamer_at_its_share_cap_is_skipped_until_it_decays() {
    let p = ExposureParams {
        max_streamer_share: 0.25,
        spread_strength: 0.0,
        max_streamers: 100,
        ..params()
    };
    let s = ExposureState::new();
    // "a" has 3 of 5 units of recent exposure: 60%, over the cap, and
    // the window holds at least 1 / 0.25 = 4 units, so the cap is in
    // force; "b" has 20%.
    s.observe(
        &p,
        Millis(0),
        &[
            served(Tier::Small, Some("a"), 3.0),
            served(Tier::Small, Some("b"), 1.0),
            served(Tier::Small, Some("d"), 1.0),
        ],
    );
    let page = [
        item(Tier::Small, "a"),
        item(Tier::Small, "b"),
        item(Tier::Small, "c"),
    ];
    let c = s.control(&p, &page);
    assert_eq!([0, 1, 2].map(|i| c.refuses(i)), [true, false, false]);
    let table = Floors::None.table(3);
    let placed = c.place(&page, 3, &table, 0);
    assert_eq!(placed.iter().map(|p| p.index).collect::<Vec<_>>(), [1, 2]);
    // Others take the next pages; a's share decays below the cap.
    for _ in 1..=200 {
        s.observe(&p, Millis(0), &[served(Tier::Small, Some("c"), 1.0)]);
    }
    assert!(!s.control(&p, &page).refuses(0));
}

#[test]
fn the_share_cap_waits_for_a_full_window() {
    let p = ExposureParams {
        max_streamer_share: 0.1,
        ..params()
    };
    let s = ExposureState::new();
    // 5 units in the window, below 1 / 0.1 = 10: no cap yet, though "a"
    // holds all of it.
    s.observe(&p, Millis(0), &[served(Tier::Top, Some("a"), 5.0)]);
    assert!(!s.control(&p, &[item(Tier::Top, "a")]).refuses(0));
}

#[test]
fn memory_is_bounded_and_the_tier_totals_follow_what_is_kept() {
    let p = params();
    let s = ExposureState::new();
    for i in 0..50 {
        let name = format!("s{i}");
        let page = [served(Tier::Small, Some(name.as_str()), 1.0 + i as f64)];
        s.observe(&p, Millis(i), &page);
    }
    assert!(s.view(&p).tracked_streamers <= 5);
    let inner = s.inner.lock();
    let small = Tier::Small.index();
    let kept: Vec<f64> = inner
        .streamers
        .iter()
        .filter(|t| t.tier.is_some())
        .map(|t| t.scaled * inner.window.factor(inner.pages))
        .collect();
    let mass: f64 = kept.iter().sum();
    assert!((inner.tier_mass[small] - mass).abs() < 1e-9 * mass.max(1.0));
    assert_eq!(inner.tier_members[small], kept.len());
    assert_eq!(inner.tier_members[Tier::Mid.index()], 0);
}

/// Streamers met as candidates and never served are remembered (their
/// words name entries) but counted in no tier and no Gini, and are the
/// first forgotten.
#[test]
fn streamers_only_met_count_nowhere_and_go_first() {
    let p = ExposureParams {
        max_streamers: 6,
        ..params()
    };
    let s = ExposureState::new();
    s.observe(&p, Millis(0), &[served(Tier::Mid, Some("a"), 1.0)]);
    s.observe(&p, Millis(0), &[served(Tier::Small, Some("b"), 1.0)]);
    let met: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    let items: Vec<Item> = met.iter().map(|m| item(Tier::Mid, m)).collect();
    s.control_interned(&p, &items, |i| Some(i + 1000));
    {
        let inner = s.inner.lock();
        assert_eq!(inner.streamers.len(), 7);
        assert_eq!(inner.tier_members, [0, 1, 1]);
    }
    assert_eq!(s.view(&p).tracked_streamers, 2);
    // Over the bound: the never-served go, the served stay.
    s.observe(&p, Millis(0), &[served(Tier::Mid, Some("a"), 1.0)]);
    let inner = s.inner.lock();
    let left: Vec<&str> = inner.streamers.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(left, ["a", "b"]);
    assert_eq!(inner.tier_members, [0, 1, 1]);
}

#[test]
fn decay_survives_rebasing_and_a_new_half_life() {
    let p = ExposureParams {
        max_streamers: 100,
        ..params()
    };
    let s = ExposureState::new();
    let now = |s: &ExposureState| {
        let inner = s.inner.lock();
        let scaled = inner.streamers.iter().find(|t| t.id == "a").unwrap().scaled;
        scaled * inner.window.factor(inner.pages)
    };
    s.observe(&p, Millis(0), &[served(Tier::Mid, Some("a"), 3.0)]);
    // 50 half-lives of 100 pages: stored values are rebased on the way.
    // (Served at page 0, read as of page 5001, after the last one.)
    for _ in 0..5000 {
        s.observe(&p, Millis(0), &[served(Tier::Mid, Some("b"), 1.0)]);
    }
    let want = 3.0 * 0.5f64.powf(50.01);
    assert!((now(&s) / want - 1.0).abs() < 1e-9, "{} vs {want}", now(&s));
    assert!(s.inner.lock().window.origin > 0.0, "rebased");
    // A reload with twice the half-life: from the value as it is now.
    let longer = ExposureParams {
        spread_half_life_pages: 200.0,
        ..p.clone()
    };
    for _ in 0..200 {
        s.observe(&longer, Millis(0), &[served(Tier::Mid, Some("b"), 1.0)]);
    }
    let want = want * 0.5;
    assert!((now(&s) / want - 1.0).abs() < 1e-9, "{} vs {want}", now(&s));
    // The tier's mass follows the same decay: b's steady state at 200
    // pages is 1 / (1 - 2^(-1/200)).
    let mass = s.inner.lock().tier_mass[Tier::Mid.index()];
    assert!(
        mass > 100.0 && mass < 1.0 / (1.0 - 0.5f64.powf(1.0 / 200.0)) + 1.0,
        "{mass}"
    );
}

/// Pages of up to 30 candidates over 12 names (`None` for index 12), some
/// of them tracked by pages served before.
fn named_pages() -> impl Strategy<Value = Vec<Vec<Option<u8>>>> {
    proptest::collection::vec(
        proptest::collection::vec(proptest::option::weighted(0.9, 0u8..12), 0..30),
        1..6,
    )
}

proptest! {
    /// The read's probe numbers streamers exactly as hashing their ids (or
    /// the words interned for some) does, page after page (a number stamped
    /// by an earlier read is never taken for this one's), whichever
    /// streamers the state tracks.
    #[test]
    fn the_reads_numbering_is_the_ids(
        pages in named_pages(),
        capped in any::<bool>(),
        known in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
        let p = ExposureParams {
            max_streamer_share: if capped { 0.5 } else { 0.0 },
            max_streamers: 100,
            ..params()
        };
        let s = ExposureState::new();
        for page in &pages {
            let items: Vec<Item> = page
                .iter()
                .map(|n| Item {
                    streamer: n.map(|n| names[n as usize].as_str()),
                    ..item(Tier::Mid, "")
                })
                .collect();
            let c = s.control(&p, &items);
            prop_assert_eq!(c.numbered(), Some(&Streamers::number(&items, 1)));
            // Interned: a word per known name, as the catalog's record is.
            let word = |i: usize| page[i].filter(|&n| known[n as usize]).map(usize::from);
            let c = s.control_interned(&p, &items, word);
            prop_assert_eq!(
                c.numbered(),
                Some(&Streamers::number_interned(&items, 1, word))
            );
            // Serve the first few, so the next page meets tracked streamers.
            let served: Vec<Served> = items
                .iter()
                .take(3)
                .map(|it| served(Tier::Mid, it.streamer, 1.0))
                .collect();
            s.observe(&p, Millis(0), &served);
        }
    }
}

proptest! {
    /// Reading through interned words reads what the ids say, page after
    /// page, while words come to mean other streamers from one page to the
    /// next (records freed and their addresses reused) and the state
    /// forgets streamers: the same penalties, refusals and numbering.
    #[test]
    fn words_read_what_the_ids_say(
        pages in named_pages(),
        shifts in proptest::collection::vec(0usize..12, 6),
        forgetful in any::<bool>(),
    ) {
        let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
        let p = ExposureParams {
            max_streamer_share: 0.2,
            max_streamers: if forgetful { 4 } else { 100 },
            ..params()
        };
        let (by_id, by_word) = (ExposureState::new(), ExposureState::new());
        for (page, shift) in pages.iter().zip(&shifts) {
            let items: Vec<Item> = page
                .iter()
                .enumerate()
                .map(|(i, n)| Item {
                    score: 1.0 + (i % 7) as f64,
                    streamer: n.map(|n| names[n as usize].as_str()),
                    ..item(Tier::ALL[i % 3], "")
                })
                .collect();
            // One word per streamer on a page; another streamer's on the
            // next. Names 10 and 11 are not interned.
            let word = |i: usize| page[i].filter(|&n| n < 10).map(|n| (n as usize + shift) % 12);
            let want = by_id.control(&p, &items);
            let got = by_word.control_interned(&p, &items, word);
            prop_assert_eq!(&got.spread, &want.spread);
            prop_assert_eq!(&got.capped, &want.capped);
            prop_assert_eq!(&got.numbered, &want.numbered);
            let served: Vec<Served> = items
                .iter()
                .take(4)
                .map(|it| Served { score: it.score, ..served(it.tier, it.streamer, 1.0) })
                .collect();
            by_id.observe(&p, Millis(0), &served);
            by_word.observe(&p, Millis(0), &served);
        }
    }
}

#[test]
fn without_spreading_or_the_cap_nothing_is_probed_or_numbered() {
    let p = ExposureParams {
        spread_strength: 0.0,
        max_streamer_share: 0.0,
        ..params()
    };
    let s = ExposureState::new();
    let c = s.control(&p, &[item(Tier::Mid, "a"), item(Tier::Mid, "a")]);
    assert_eq!(c.numbered(), None);
    assert_eq!(s.inner.lock().reads, 0);
}

proptest! {
    /// Placing under control, both tier queues built in one pass, equals
    /// its definition composed of the parts: the reference allocation of
    /// the items keyed by score plus tier price (refused ones ineligible),
    /// then each tier's slots refilled in spreading order. With ties,
    /// streamers spanning tiers, unknown streamers, the share cap refusing
    /// some, and over 128 candidates at times.
    #[test]
    fn placing_equals_the_reference_composed(
        pages in proptest::collection::vec(
            proptest::collection::vec((0u8..20, 0u8..3, proptest::option::weighted(0.9, 0u8..40), proptest::bool::weighted(0.9)), 0..200),
            1..4),
        slots in 1usize..30,
        cap in 0u32..4,
        share in prop_oneof![Just(0.0), 0.02f64..0.3],
        spread_strength in prop_oneof![Just(0.0), 0.05f64..4.0],
    ) {
        let names: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        let p = ExposureParams {
            max_streamer_share: share,
            spread_strength,
            max_streamers: 1000,
            ..params()
        };
        let floors = Floors::fair([0.0, 0.3, 0.25], 0.1, 30).unwrap().table(slots);
        let s = ExposureState::new();
        for page in &pages {
            let items: Vec<Item> = page
                .iter()
                .map(|&(score, tier, name, eligible)| Item {
                    score: f64::from(score) / 3.0,
                    eligible,
                    tier: Tier::ALL[tier as usize],
                    streamer: name.map(|n| names[n as usize].as_str()),
                })
                .collect();
            let c = s.control(&p, &items);
            let got = c.place(&items, slots, &floors, cap);

            let keyed: Vec<Item> = items
                .iter()
                .enumerate()
                .map(|(i, it)| Item {
                    score: it.score + c.price[it.tier.index()],
                    eligible: it.eligible && !c.refuses(i),
                    ..*it
                })
                .collect();
            let mut want = crate::allocate::reference::allocate(&keyed, slots, &floors, cap);
            if !c.spread.is_empty() {
                let order: Vec<f64> =
                    items.iter().zip(&c.spread).map(|(it, pen)| it.score - pen).collect();
                want = crate::allocate::within_tiers(&keyed, &order, &want, cap);
            }
            prop_assert_eq!(got, want);
            let served: Vec<Served> = items
                .iter()
                .take(slots)
                .map(|it| Served { score: it.score, ..served(it.tier, it.streamer, 1.0) })
                .collect();
            s.observe(&p, Millis(0), &served);
        }
    }
}
