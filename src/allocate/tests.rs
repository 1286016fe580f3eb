//! Rules checked (unit and property tests):
//! - floors hold in every prefix whenever they can be met together;
//! - no streamer exceeds the per-page cap;
//! - only eligible candidates are placed, each once;
//! - the page is as long as it can be;
//! - without floors and cap, allocation equals sort-and-truncate;
//! - a slot is marked `by_floor` exactly when it is not the best remaining.

use super::*;
use proptest::prelude::*;

fn item(score: f64, tier: Tier, streamer: &str) -> Item<'_> {
    Item {
        score,
        eligible: true,
        tier,
        streamer: Some(streamer),
    }
}

fn no_floors(k: usize) -> MTable {
    (*Floors::None.table(k)).clone()
}

#[test]
fn floors_pull_small_streamers_up() {
    // Top streamers score best; the floor wants one small item in the first 4.
    let streamers = ["a", "b", "c", "d", "e"];
    let mut items: Vec<Item> = streamers
        .iter()
        .enumerate()
        .map(|(i, s)| item(10.0 - i as f64, Tier::Top, s))
        .collect();
    items.push(item(0.5, Tier::Small, "z"));
    let floors = Floors::proportional([0.0, 0.0, 0.25], Rounding::Floor, 10).unwrap();
    let page = allocate(&items, 5, &floors.table(5), 0);
    let order: Vec<usize> = page.iter().map(|p| p.index).collect();
    assert_eq!(order, [0, 1, 2, 5, 3]);
    assert!(page[3].by_floor);
    assert!(page.iter().enumerate().all(|(i, p)| p.by_floor == (i == 3)));
}

#[test]
fn simultaneous_floors_are_met_by_placing_early() {
    // Proportional floor(0.35 i) and floor(0.25 i) both step up at i = 20;
    // EDF must place one of them before slot 20 to meet both.
    let mut items = Vec::new();
    let names: Vec<String> = (0..60).map(|i| format!("s{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        let tier = [Tier::Top, Tier::Mid, Tier::Small][i % 3];
        let score = if tier == Tier::Top {
            100.0 - i as f64
        } else {
            1.0 - i as f64 / 100.0
        };
        items.push(item(score, tier, n));
    }
    let floors = Floors::proportional([0.0, 0.35, 0.25], Rounding::Floor, 20).unwrap();
    let table = floors.table(20);
    let page = allocate(&items, 20, &table, 0);
    assert_floors_hold(&items, &page, &table);
}

#[test]
fn cap_limits_items_per_streamer() {
    let items: Vec<Item> = (0..6)
        .map(|i| {
            item(
                10.0 - i as f64,
                Tier::Top,
                if i < 4 { "big" } else { "other" },
            )
        })
        .collect();
    let page = allocate(&items, 6, &no_floors(6), 2);
    let order: Vec<usize> = page.iter().map(|p| p.index).collect();
    assert_eq!(
        order,
        [0, 1, 4, 5],
        "two of `big`, then the rest; the page ends when nothing fits"
    );
}

fn assert_floors_hold(items: &[Item], page: &[Placement], table: &MTable) {
    let mut available = [0usize; 3];
    for it in items.iter().filter(|it| it.eligible) {
        available[it.tier.index()] += 1;
    }
    let mut counts = [0usize; 3];
    for (j, p) in page.iter().enumerate() {
        counts[items[p.index].tier.index()] += 1;
        for t in Tier::ALL {
            let need = (table.min(t, j + 1) as usize).min(available[t.index()]);
            assert!(
                counts[t.index()] >= need,
                "prefix {}: tier {t} has {} < {need}",
                j + 1,
                counts[t.index()]
            );
        }
    }
}

/// Whether the floors (capped by availability) fit together in every prefix.
fn feasible(table: &MTable, available: [usize; 3], k: usize) -> bool {
    (1..=k).all(|i| {
        Tier::ALL
            .iter()
            .map(|&t| (table.min(t, i) as usize).min(available[t.index()]))
            .sum::<usize>()
            <= i
    })
}

fn arb_items() -> impl Strategy<Value = Vec<(u8, u8, bool)>> {
    // (score bucket, streamer, eligible); ties are frequent on purpose.
    proptest::collection::vec((0u8..50, 0u8..12, proptest::bool::weighted(0.9)), 0..80)
}

fn build<'a>(raw: &[(u8, u8, bool)], names: &'a [String]) -> Vec<Item<'a>> {
    raw.iter()
        .map(|&(s, st, e)| Item {
            score: f64::from(s) / 7.0,
            eligible: e,
            // A streamer belongs to one tier.
            tier: Tier::ALL[st as usize % 3],
            streamer: Some(names[st as usize].as_str()),
        })
        .collect()
}

proptest! {
    #[test]
    fn floors_hold_whenever_feasible(
        raw in arb_items(),
        k in 1usize..30,
        mid in 0.0f64..0.5,
        small in 0.0f64..0.5,
        fair in any::<bool>(),
        cap in 0u32..4,
    ) {
        let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
        let items = build(&raw, &names);
        let floors = if fair {
            Floors::fair([0.0, mid, small], 0.1, 30).unwrap()
        } else {
            Floors::proportional([0.0, mid, small], Rounding::Floor, 30).unwrap()
        };
        let table = floors.table(k);
        let page = allocate(&items, k, &table, cap);

        // Placeable items per tier under the cap.
        let mut per: std::collections::HashMap<&str, u32> = Default::default();
        let mut available = [0usize; 3];
        for it in items.iter().filter(|it| it.eligible) {
            let n = per.entry(it.streamer.unwrap()).or_insert(0);
            if cap == 0 || *n < cap {
                *n += 1;
                available[it.tier.index()] += 1;
            }
        }
        prop_assert_eq!(page.len(), k.min(available.iter().sum()));
        let mut seen = std::collections::HashSet::new();
        let mut on_page: std::collections::HashMap<&str, u32> = Default::default();
        for p in &page {
            prop_assert!(items[p.index].eligible);
            prop_assert!(seen.insert(p.index));
            let n = on_page.entry(items[p.index].streamer.unwrap()).or_insert(0);
            *n += 1;
            prop_assert!(cap == 0 || *n <= cap);
        }
        if feasible(&table, available, page.len()) {
            let mut counts = [0usize; 3];
            for (j, p) in page.iter().enumerate() {
                counts[items[p.index].tier.index()] += 1;
                for t in Tier::ALL {
                    let need = (table.min(t, j + 1) as usize).min(available[t.index()]);
                    prop_assert!(counts[t.index()] >= need, "prefix {}: tier {} {} < {}", j + 1, t, counts[t.index()], need);
                }
            }
        }
    }

    #[test]
    fn without_quotas_equals_sort_and_truncate(raw in arb_items(), k in 0usize..40) {
        let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
        let items = build(&raw, &names);
        let page: Vec<usize> = allocate(&items, k, &no_floors(k), 0).iter().map(|p| p.index).collect();
        let scores: Vec<f64> = items.iter().map(|i| i.score).collect();
        let eligible: Vec<bool> = items.iter().map(|i| i.eligible).collect();
        prop_assert_eq!(page, top_k(&scores, &eligible, k));
    }
}

/// Candidates as the reference comparison draws them: scores with many
/// ties, streamers that may span tiers or be unknown, some ineligible.
fn arb_any_items() -> impl Strategy<Value = Vec<(u8, u8, u8, bool)>> {
    proptest::collection::vec(
        (0u8..30, 0u8..3, 0u8..16, proptest::bool::weighted(0.85)),
        0..120,
    )
}

proptest! {
    /// The fast allocator returns exactly the reference's page: the same
    /// candidates in the same slots, with the same `by_floor` marks.
    #[test]
    fn equals_the_reference_allocation(
        raw in arb_any_items(),
        k in 0usize..40,
        mid in 0.0f64..0.5,
        small in 0.0f64..0.5,
        fair in any::<bool>(),
        cap in 0u32..4,
    ) {
        let names: Vec<String> = (0..15).map(|i| format!("s{i}")).collect();
        let items: Vec<Item> = raw
            .iter()
            .map(|&(s, t, st, e)| Item {
                score: f64::from(s) / 7.0,
                eligible: e,
                tier: Tier::ALL[t as usize],
                // 15 is "no streamer": a streamer of its own.
                streamer: names.get(st as usize).map(String::as_str),
            })
            .collect();
        let floors = if fair {
            Floors::fair([0.0, mid, small], 0.1, 40).unwrap()
        } else {
            Floors::proportional([0.0, mid, small], Rounding::Floor, 40).unwrap()
        };
        let table = floors.table(k.max(1));
        prop_assert_eq!(
            allocate(&items, k, &table, cap),
            reference::allocate(&items, k, &table, cap)
        );
    }
}

proptest! {
    /// Refilling each tier's slots in another order keeps which tier holds
    /// each slot (so tier exposure and the floors are untouched), places
    /// only eligible candidates, each once, under the cap, fills each
    /// tier's slots with its best candidates in that order, and is the
    /// identity when the order is the score.
    #[test]
    fn within_tiers_keeps_the_tiers_slots(
        raw in arb_items(),
        penalty in proptest::collection::vec(0.0f64..1.0, 80),
        k in 1usize..30,
        small in 0.0f64..0.5,
        cap in 0u32..4,
    ) {
        let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
        let items = build(&raw, &names);
        let table = Floors::fair([0.0, 0.3, small], 0.1, 30).unwrap().table(k);
        let page = allocate(&items, k, &table, cap);
        let scores: Vec<f64> = items.iter().map(|i| i.score).collect();
        prop_assert_eq!(&within_tiers(&items, &scores, &page, cap), &page);

        let order: Vec<f64> = items.iter().zip(&penalty).map(|(it, f)| it.score * f).collect();
        let refilled = within_tiers(&items, &order, &page, cap);
        prop_assert_eq!(refilled.len(), page.len());
        let mut seen = std::collections::HashSet::new();
        let mut on_page: std::collections::HashMap<&str, u32> = Default::default();
        for (new, old) in refilled.iter().zip(&page) {
            prop_assert_eq!(items[new.index].tier, items[old.index].tier);
            prop_assert_eq!(new.by_floor, old.by_floor);
            prop_assert!(items[new.index].eligible && seen.insert(new.index));
            prop_assert_eq!(new.lifted, items[new.index].score < items[old.index].score);
            let n = on_page.entry(items[new.index].streamer.unwrap()).or_insert(0);
            *n += 1;
            prop_assert!(cap == 0 || *n <= cap);
        }
        // Per tier, the slots go to the tier's best in `order`: nothing left
        // out ranks above something placed, unless its streamer is full.
        for t in Tier::ALL {
            let placed: Vec<usize> = refilled.iter().map(|p| p.index).filter(|&i| items[i].tier == t).collect();
            let Some(worst) = placed.iter().map(|&i| order[i]).min_by(f64::total_cmp) else { continue };
            for (i, it) in items.iter().enumerate() {
                if it.tier != t || !it.eligible || placed.contains(&i) || order[i] <= worst {
                    continue;
                }
                let full = cap > 0 && on_page[it.streamer.unwrap()] >= cap;
                prop_assert!(full, "candidate {} ({}) left out above {}", i, order[i], worst);
            }
        }
    }
}

proptest! {
    /// Numbering by an interned word (the catalog record's address) for
    /// the streamers that have one, by the id's bytes for the rest, gives
    /// the numbers the bytes alone give.
    #[test]
    fn interned_numbering_equals_numbering_by_id(
        raw in arb_any_items(),
        known in proptest::collection::vec(any::<bool>(), 15),
        cap in 1u32..4,
    ) {
        let names: Vec<String> = (0..15).map(|i| format!("s{i}")).collect();
        let items: Vec<Item> = raw
            .iter()
            .map(|&(s, t, st, e)| Item {
                score: f64::from(s),
                eligible: e,
                tier: Tier::ALL[t as usize],
                streamer: names.get(st as usize).map(String::as_str),
            })
            .collect();
        // Words far apart, as addresses of records are.
        let word = |i: usize| {
            let st = raw[i].2 as usize;
            (st < 15 && known[st]).then(|| 0x7f00_0000_0000 + st * 152)
        };
        let by_id = Streamers::number(&items, cap);
        let interned = Streamers::number_interned(&items, cap, word);
        prop_assert_eq!(&interned.of, &by_id.of);
        prop_assert_eq!(interned.count, by_id.count);
    }
}

proptest! {
    /// Queue entries order as the page takes candidates: higher key first
    /// by `total_cmp` (signed zeros, infinities and NaNs included), then
    /// lower index.
    #[test]
    fn entries_order_as_total_cmp_descending(
        a in prop_oneof![any::<f64>(), Just(0.0), Just(-0.0), Just(f64::NAN), Just(f64::INFINITY)],
        b in prop_oneof![any::<f64>(), Just(0.0), Just(-0.0), Just(-f64::NAN), Just(f64::NEG_INFINITY)],
        i in 0usize..4,
        j in 0usize..4,
    ) {
        let expected = b.total_cmp(&a).then(i.cmp(&j));
        prop_assert_eq!(Entry::new(a, i).cmp(&Entry::new(b, j)), expected);
    }
}
