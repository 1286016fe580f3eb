//! Cost of filling a page under quotas against a plain sort of the same
//! scores, in one run (compare the ratio, not absolute times).
//!
//! Fixture: 500 candidates, 20 slots, seed 42. Tiers 3% top / 40% mid / 57%
//! small; 300 distinct streamers; scores log-normal with the top tier ahead,
//! so the floors bind. Quotas: FA*IR floors (mid 0.35, small 0.25, alpha 0.1)
//! or proportional floors, and at most 2 items per streamer; `full` adds the
//! exposure state (tier targets, spreading, a share cap) warmed on 1,000
//! pages: read multipliers, allocate, record the page (`_200k_tracked`: with
//! 200,000 other streamers in the state; `_interned`: the streamers named by
//! a word, as the engine names them by catalog record). `_reference` is the
//! direct form of the rules the fast allocator is tested against.
//! Run: `cargo bench --bench allocate`. Figures: docs/performance.md.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fairflow::allocate::{self, ExposureParams, ExposureState, Floors, Item, Rounding, Served};
use fairflow::domain::{Millis, Tier};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use std::hint::black_box;

const CANDIDATES: usize = 500;
const SLOTS: usize = 20;

fn bench_allocate(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let names: Vec<String> = (0..300).map(|i| format!("s{i}")).collect();
    let noise = LogNormal::new(0.0, 1.0).unwrap();
    let mut word = Vec::with_capacity(CANDIDATES);
    let items: Vec<Item> = (0..CANDIDATES)
        .map(|_| {
            let s = rng.random_range(0..names.len());
            word.push(s);
            let tier = match s % 100 {
                0..3 => Tier::Top,
                3..43 => Tier::Mid,
                _ => Tier::Small,
            };
            let lift = match tier {
                Tier::Top => 4.0,
                Tier::Mid => 1.5,
                Tier::Small => 1.0,
            };
            Item {
                score: lift * noise.sample(&mut rng),
                eligible: true,
                tier,
                streamer: Some(names[s].as_str()),
            }
        })
        .collect();
    let scores: Vec<f64> = items.iter().map(|i| i.score).collect();
    let fair = Floors::fair([0.0, 0.35, 0.25], 0.1, 100)
        .unwrap()
        .table(SLOTS);
    let proportional = Floors::proportional([0.0, 0.35, 0.25], Rounding::Floor, 100)
        .unwrap()
        .table(SLOTS);

    let mut group = c.benchmark_group("allocate_500x20");
    group.bench_function("plain_sort", |b| {
        b.iter_batched(
            || scores.clone(),
            |mut s| {
                s.sort_unstable_by(|a, b| b.total_cmp(a));
                s.truncate(SLOTS);
                s
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("fair_floors_cap2", |b| {
        b.iter(|| allocate::allocate(black_box(&items), SLOTS, &fair, 2))
    });
    group.bench_function("fair_floors_cap2_reference", |b| {
        b.iter(|| allocate::reference::allocate(black_box(&items), SLOTS, &fair, 2))
    });
    group.bench_function("proportional_floors_cap2", |b| {
        b.iter(|| allocate::allocate(black_box(&items), SLOTS, &proportional, 2))
    });

    let params = ExposureParams {
        targets: Some([0.04, 0.5, 0.46]),
        tier_half_life_ms: 600_000.0,
        step: 0.5,
        max_price: 2.0,
        spread_strength: 0.25,
        spread_half_life_pages: 2000.0,
        max_streamers: 200_000,
        max_streamer_share: 0.01,
    };
    let state = ExposureState::new();
    let serve = |now: Millis, interned: bool| {
        let control = if interned {
            state.control_interned(&params, &items, |i| Some(word[i]))
        } else {
            state.control(&params, &items)
        };
        let placed = control.place(&items, SLOTS, &fair, 2);
        let served: Vec<Served> = placed
            .iter()
            .enumerate()
            .map(|(i, p)| Served {
                tier: items[p.index].tier,
                streamer: items[p.index].streamer,
                exposure: 1.0 / ((i + 2) as f64).log2(),
                score: items[p.index].score,
            })
            .collect();
        state.observe(&params, now, &served);
        placed
    };
    for i in 0..1000 {
        serve(Millis(i * 100), false);
    }
    group.bench_function("full_targets_spreading_fair_cap2", |b| {
        b.iter(|| serve(black_box(Millis(100_000)), false))
    });
    group.bench_function("full_targets_spreading_fair_cap2_interned", |b| {
        b.iter(|| serve(black_box(Millis(100_000)), true))
    });
    // The same with the state tracking 200,000 other streamers, as a
    // server's does after a day: the per-candidate lookups leave the cache.
    let others: Vec<String> = (0..200_000).map(|i| format!("other{i}")).collect();
    for chunk in others.chunks(20) {
        let page: Vec<Served> = chunk
            .iter()
            .map(|name| Served {
                tier: Tier::Small,
                streamer: Some(name.as_str()),
                exposure: 0.01,
                score: 0.0,
            })
            .collect();
        state.observe(&params, Millis(100_000), &page);
    }
    group.bench_function("full_targets_spreading_fair_cap2_200k_tracked", |b| {
        b.iter(|| serve(black_box(Millis(100_000)), false))
    });
    group.bench_function(
        "full_targets_spreading_fair_cap2_200k_tracked_interned",
        |b| b.iter(|| serve(black_box(Millis(100_000)), true)),
    );
    group.finish();
}

criterion_group!(benches, bench_allocate);
criterion_main!(benches);
