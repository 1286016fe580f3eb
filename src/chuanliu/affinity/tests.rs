use super::*;

fn params() -> AffinityParams {
    AffinityParams {
        half_life_s: 3600.0,
        ttl_s: 10.0 * 3600.0,
        max_brands_per_user: 2,
        min_weight: 0.3,
    }
}

#[test]
fn weight_decays_by_half_life_and_purchases_add_up() {
    let store = Affinities::default();
    let p = params();
    store.record("u", 1, 7, Secs(1000), &p, Some(false));
    let t = store.triggers("u", Secs(1000 + 3600), &p, 9, 100, None);
    assert!((t[0].weight - 0.5).abs() < 1e-6, "{t:?}");
    store.record("u", 1, 8, Secs(1000 + 3600), &p, Some(false));
    let a = store.of("u")[0];
    assert!((a.weight - 1.5).abs() < 1e-6);
    assert_eq!(a.sources().collect::<Vec<_>>(), vec![8, 7]);
    // Below min_weight: no longer a trigger, still stored.
    assert!(
        store
            .triggers("u", Secs(1000 + 3600 * 4), &p, 9, 100, None)
            .is_empty()
    );
    assert_eq!(store.of("u").len(), 1);
}

#[test]
fn entries_expire_after_ttl() {
    let store = Affinities::default();
    let p = AffinityParams {
        min_weight: 0.0,
        ..params()
    };
    store.record("u", 1, 7, Secs(1000), &p, Some(false));
    store.record("v", 1, 7, Secs(1000 + 9 * 3600), &p, Some(false));
    let later = Secs(1000 + 10 * 3600 + 1);
    assert!(store.triggers("u", later, &p, 9, 100, None).is_empty());
    assert_eq!(store.triggers("v", later, &p, 9, 100, None).len(), 1);
    let swept = store.sweep(later, &p);
    assert_eq!((swept.users, swept.entries, swept.expired), (1, 1, 1));
    assert!(store.of("u").is_empty());
}

#[test]
fn bounded_brands_per_user_keep_the_strongest() {
    let store = Affinities::default();
    let p = params();
    store.record("u", 1, 7, Secs(0), &p, Some(false));
    store.record("u", 1, 7, Secs(0), &p, Some(false)); // weight 2
    store.record("u", 2, 7, Secs(0), &p, Some(false)); // weight 1
    store.record("u", 3, 7, Secs(3600), &p, Some(false)); // brand 2 has decayed to 0.5: replaced
    let mut brands: Vec<u32> = store.of("u").iter().map(|a| a.brand).collect();
    brands.sort();
    assert_eq!(brands, vec![1, 3]);
    // Both stronger than a new purchase: the new one is the weakest, dropped.
    store.record("u", 3, 7, Secs(3600), &p, Some(false));
    store.record("u", 4, 7, Secs(3600), &p, Some(false));
    let mut brands: Vec<u32> = store.of("u").iter().map(|a| a.brand).collect();
    brands.sort();
    assert_eq!(brands, vec![1, 3]);
}

#[test]
fn the_cap_counts_within_its_window_and_give_back_undoes_a_take() {
    let store = Affinities::default();
    let p = params();
    store.record("u", 1, 7, Secs(0), &p, Some(false));
    store.take("u", 1, Secs(10), 2, 100).unwrap();
    let b = store.take("u", 1, Secs(20), 2, 100).unwrap();
    assert!(
        store.take("u", 1, Secs(30), 2, 100).is_none(),
        "cap of 2 reached"
    );
    assert!(store.triggers("u", Secs(30), &p, 2, 100, None).is_empty());
    store.give_back("u", 1, b);
    assert_eq!(store.of("u")[0].shown, Secs(10));
    assert_eq!(store.of("u")[0].window_count, 1);
    assert!(
        store.take("u", 1, Secs(30), 2, 100).is_some(),
        "place given back"
    );
    // A new window starts 100 s after the window's first impression.
    assert!(store.take("u", 1, Secs(109), 2, 100).is_none());
    assert!(store.take("u", 1, Secs(110), 2, 100).is_some());
    assert!(
        store.take("u", 2, Secs(0), 2, 100).is_none(),
        "no affinity, no take"
    );
}

#[test]
fn attribution_needs_a_seen_flow_impression_within_the_window() {
    let store = Affinities::default();
    let p = params();
    store.record("u", 1, 7, Secs(0), &p, Some(false));
    assert!(
        !store.saw("u", 1, Secs(5)),
        "never shown: an impression of the stream is not the flow's"
    );
    assert!(
        store.attribute("u", 1, Secs(5), 60).is_none(),
        "never shown"
    );
    store.take("u", 1, Secs(10), 9, 100).unwrap();
    assert!(
        store.attribute("u", 1, Secs(20), 60).is_none(),
        "served but not seen"
    );
    assert!(store.saw("u", 1, Secs(12)));
    assert!(store.attribute("u", 1, Secs(72), 60).is_some());
    assert!(
        store.attribute("u", 1, Secs(73), 60).is_none(),
        "window passed"
    );
    assert!(
        store.attribute("u", 1, Secs(11), 60).is_none(),
        "before it was seen"
    );
    assert!(
        store.attribute("u", 2, Secs(20), 60).is_none(),
        "other brand"
    );
    assert!(
        !store.saw("u", 1, Secs(10 + SEEN_WITHIN_S + 1)),
        "too long after the flow served it"
    );
    assert!(!store.saw("u", 2, Secs(12)), "other brand");
}

#[test]
fn a_flow_impression_is_seen_once_and_attribution_runs_from_the_last_sight() {
    let store = Affinities::default();
    let p = params();
    store.record("u", 1, 7, Secs(0), &p, Some(false));
    store.take("u", 1, Secs(10), 9, 100).unwrap();
    assert!(store.saw("u", 1, Secs(12)));
    assert!(
        !store.saw("u", 1, Secs(20)),
        "the same flow impression, seen again on a later page"
    );
    assert!(store.attribute("u", 1, Secs(80), 60).is_some());
    store.take("u", 1, Secs(100), 9, 100).unwrap();
    assert!(store.saw("u", 1, Secs(101)), "a new flow impression");
}

#[test]
fn a_ghost_is_never_seen_and_attributes_from_when_it_was_served() {
    let store = Affinities::default();
    let p = params();
    store.record("u", 1, 7, Secs(0), &p, Some(true));
    store.take("u", 1, Secs(10), 9, 100).unwrap();
    assert!(!store.saw("u", 1, Secs(12)));
    assert!(store.attribute("u", 1, Secs(70), 60).is_some());
}

#[test]
fn shards_round_trip_through_their_bytes_and_damage_is_an_error() {
    let store = Affinities::default();
    let p = params();
    for u in 0..50 {
        store.record(
            &format!("user-{u}"),
            u % 3,
            7,
            Secs(1000 + u),
            &p,
            Some(false),
        );
        store.record(&format!("user-{u}"), 9, 8, Secs(2000), &p, Some(false));
    }
    store.take("user-7", 9, Secs(2100), 5, 100).unwrap();
    assert!(store.saw("user-7", 9, Secs(2101)));
    store.record("held", 4, 8, Secs(2000), &p, Some(true));
    store.record("held", 5, 8, Secs(2000), &p, None);
    store.credit("held", Some(4), 12.5, Secs(2001), &p);
    let mut on_page = |brand: u32| brand as usize;
    store.triggers("user-7", Secs(2102), &p, 5, 100, Some(&mut on_page));
    store.triggers("user-7", Secs(2103), &p, 5, 100, Some(&mut on_page));
    let blobs = store.export();
    let copy = Affinities::default();
    copy.import(&blobs, Layout::V4).unwrap();
    for u in 0..50 {
        let user = format!("user-{u}");
        assert_eq!(copy.of(&user), store.of(&user));
    }
    assert_eq!(copy.of("held"), store.of("held"));
    let held = copy.of("held");
    assert!(held[0].holdout && held[0].unit && held[0].own_gmv == 12.5);
    assert!(!held[1].holdout && !held[1].unit, "outside the experiment");
    let seen = copy
        .of("user-7")
        .into_iter()
        .find(|a| a.brand == 9)
        .unwrap();
    assert_eq!(seen.seen, Secs(2101));
    assert_eq!((seen.taste, seen.requests), (9.0, 2));
    let longest = blobs.iter().max_by_key(|b| b.len()).unwrap();
    let cut = &longest[..longest.len() - 1];
    assert!(
        Affinities::default()
            .import(&[cut.to_vec()], Layout::V4)
            .is_err()
    );
}

#[test]
fn a_purchase_moves_the_outcomes_of_the_users_live_affinities() {
    let store = Affinities::default();
    let p = params();
    assert_eq!(store.record("u", 1, 7, Secs(0), &p, Some(true)), Some(true));
    assert_eq!(
        store.record("u", 1, 7, Secs(5), &p, Some(false)),
        None,
        "strengthened"
    );
    assert_eq!(
        store.record("u", 2, 7, Secs(10), &p, Some(false)),
        Some(false)
    );
    let mut moved = store.credit("u", Some(2), 10.0, Secs(20), &p);
    moved.sort_by_key(|m| m.brand);
    assert_eq!(
        moved,
        vec![
            Moved {
                brand: 1,
                holdout: true,
                unit: true,
                own: (0.0, 0.0),
                all: (0.0, 5.0)
            },
            Moved {
                brand: 2,
                holdout: false,
                unit: true,
                own: (0.0, 10.0),
                all: (0.0, 5.0)
            },
        ]
    );
    // Brand 1's affinity expires: the whole price goes to brand 2's.
    let late = Secs(10 + 10 * 3600);
    let moved = store.credit("u", None, 4.0, late, &p);
    assert_eq!(moved.len(), 1);
    assert_eq!((moved[0].brand, moved[0].all), (2, (5.0, 9.0)));
    // Made with the holdout off: treated, outside both arms.
    assert_eq!(store.record("v", 3, 7, late, &p, None), None);
    let outside = store.credit("v", Some(3), 4.0, late, &p);
    assert!(!outside[0].unit && !outside[0].holdout, "{outside:?}");
    assert!(store.credit("nobody", None, 4.0, late, &p).is_empty());
}

#[test]
fn blobs_from_before_the_holdout_are_read_as_treated_outside_the_experiment() {
    // One user "u", one entry in the 30-byte layout.
    let mut blob = vec![1, 0, b'u', 1, 0];
    for word in [3u32, 7, u32::MAX, 1f32.to_bits(), 100, 0, 0] {
        blob.extend_from_slice(&word.to_le_bytes());
    }
    blob.extend_from_slice(&0u16.to_le_bytes());
    let store = Affinities::default();
    store.import(&[blob.clone()], Layout::V1).unwrap();
    let a = store.of("u")[0];
    assert_eq!(
        (a.brand, a.updated, a.holdout, a.unit, a.own_gmv),
        (3, Secs(100), false, false, 0.0)
    );
    assert!(Affinities::default().import(&[blob], Layout::V2).is_err());
}

#[test]
fn an_entry_is_52_bytes() {
    assert_eq!(std::mem::size_of::<Affinity>(), 52);
}

#[test]
fn blobs_from_before_seen_impressions_are_read_with_nothing_seen() {
    // One user "u", one entry in the 39-byte layout, shown at 150.
    let mut blob = vec![1, 0, b'u', 1, 0];
    for word in [3u32, 7, u32::MAX, 1f32.to_bits(), 100, 150, 150] {
        blob.extend_from_slice(&word.to_le_bytes());
    }
    blob.extend_from_slice(&1u16.to_le_bytes());
    blob.push(1);
    blob.extend_from_slice(&2.5f32.to_bits().to_le_bytes());
    blob.extend_from_slice(&4.0f32.to_bits().to_le_bytes());
    let store = Affinities::default();
    store.import(&[blob.clone()], Layout::V2).unwrap();
    let a = store.of("u")[0];
    assert_eq!(
        (a.shown, a.seen, a.holdout, a.unit, a.own_gmv, a.all_gmv),
        (Secs(150), Secs(0), true, true, 2.5, 4.0)
    );
    assert!(Affinities::default().import(&[blob], Layout::V3).is_err());
}

#[test]
fn blobs_from_before_the_taste_are_read_with_none_observed() {
    // One user "u", one entry in the 43-byte layout, seen at 151.
    let mut blob = vec![1, 0, b'u', 1, 0];
    for word in [3u32, 7, u32::MAX, 1f32.to_bits(), 100, 150, 150] {
        blob.extend_from_slice(&word.to_le_bytes());
    }
    blob.extend_from_slice(&1u16.to_le_bytes());
    blob.push(0);
    blob.extend_from_slice(&[0; 8]);
    blob.extend_from_slice(&151u32.to_le_bytes());
    let store = Affinities::default();
    store.import(&[blob.clone()], Layout::V3).unwrap();
    let a = store.of("u")[0];
    assert_eq!((a.seen, a.taste, a.requests), (Secs(151), 0.0, 0));
    assert!(Affinities::default().import(&[blob], Layout::V4).is_err());
}

#[test]
fn the_taste_is_the_running_mean_of_the_brands_items_per_request() {
    let store = Affinities::default();
    let p = params();
    store.record("u", 1, 7, Secs(0), &p, None);
    store.record("u", 2, 7, Secs(0), &p, None);
    // Brand 1 has 3 items on the first page, 1 on the second; brand 2 none.
    let pages = [3usize, 1];
    for (i, n) in pages.into_iter().enumerate() {
        let mut on_page = |brand: u32| if brand == 1 { n } else { 0 };
        let triggers = store.triggers("u", Secs(i as u32 + 1), &p, 9, 100, Some(&mut on_page));
        let before = triggers.iter().find(|t| t.brand == 1).unwrap().taste;
        assert_eq!(
            before,
            [0.0, 3.0][i],
            "a trigger carries the taste before its page"
        );
    }
    let a = |brand| {
        store
            .of("u")
            .into_iter()
            .find(|a| a.brand == brand)
            .unwrap()
    };
    assert_eq!((a(1).taste, a(1).requests), (2.0, 2));
    assert_eq!((a(2).taste, a(2).requests), (0.0, 2));
    // Without `on_page` (a fleet's look-ahead), nothing is observed.
    store.triggers("u", Secs(9), &p, 9, 100, None);
    assert_eq!(a(1).requests, 2);
    // Past the window, the mean follows the latest requests.
    for i in 0..10 * TASTE_WINDOW as u32 {
        let mut none = |_: u32| 0;
        store.triggers("u", Secs(10 + i), &p, 9, 100, Some(&mut none));
    }
    assert_eq!(a(1).requests, TASTE_WINDOW);
    assert!(a(1).taste < 1e-3, "{}", a(1).taste);
}
