//! Cost of one `Rank` through the engine, against a plain sort of the same
//! number of scores, in one run (absolute times on shared machines are noisy;
//! the ratio is what to track).
//!
//! Fixture: the shipped demo catalog, embedded config and model; 200
//! candidates (100 live streams, 100 goods, chosen by a seeded RNG), 20 slots.
//! Run: `cargo bench --bench rank`. Figures: docs/performance.md.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fairflow::catalog::Catalog;
use fairflow::config::Config;
use fairflow::domain::{Millis, Scene};
use fairflow::engine::RankState;
use fairflow::engine::{Candidate, Engine, RankQuery};
use fairflow::model::{FeatureInput, Model, N_FEATURES};
use fairflow::sim::ItemPool;
use rand::SeedableRng;
use std::hint::black_box;
use std::sync::Arc;

const CANDIDATES: usize = 200;
const SLOTS: u32 = 20;
const SEED: u64 = 42;

fn fixture() -> (Engine, Catalog, RankQuery) {
    let config = Config::embedded_default().unwrap();
    let catalog = Catalog::embedded_demo(128).unwrap();
    let engine = Engine::new(Arc::new(config), Arc::new(Model::embedded().unwrap()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let candidates: Vec<Candidate> = ItemPool::from_catalog(&catalog)
        .sample(&mut rng, CANDIDATES)
        .into_iter()
        .map(|(id, kind)| Candidate::new(id, kind))
        .collect();
    let query = RankQuery {
        request_id: "bench".into(),
        user_id: "u1".into(),
        scene: Scene::Recommend,
        slots: SLOTS,
        candidates,
        now: Millis(1_795_132_800_000),
    };
    (engine, catalog, query)
}

fn bench_rank(c: &mut Criterion) {
    let (engine, catalog, query) = fixture();
    let ranking = engine.rank(&catalog, &RankState::new(), &query).unwrap();
    let scores: Vec<f64> = query
        .candidates
        .iter()
        .enumerate()
        .map(|(i, _)| {
            ranking
                .slots
                .get(i % ranking.slots.len())
                .map_or(0.0, |s| s.score)
                * (1.0 + i as f64 * 1e-3)
        })
        .collect();

    let state = RankState::new();
    // The same engine with only the per-request quotas (floors and the
    // page cap): no tier targets, no spreading.
    let per_request = Engine::new(
        Arc::new(
            Config::from_toml(
                "[quotas.targets]\nenabled = false\n[quotas.spreading]\nstrength = 0.0\n",
                "bench",
                None,
            )
            .unwrap(),
        ),
        Arc::new(engine.model().clone()),
    );
    let per_request_state = RankState::new();
    let mut group = c.benchmark_group("rank_200x20");
    group.bench_function("engine_rank", |b| {
        b.iter(|| {
            engine
                .rank(black_box(&catalog), &state, black_box(&query))
                .unwrap()
        })
    });
    group.bench_function("engine_rank_per_request_quotas_only", |b| {
        b.iter(|| {
            per_request
                .rank(black_box(&catalog), &per_request_state, black_box(&query))
                .unwrap()
        })
    });
    group.bench_function("plain_sort", |b| {
        b.iter_batched(
            || scores.clone(),
            |mut s| {
                s.sort_unstable_by(|a, b| b.total_cmp(a));
                s.truncate(SLOTS as usize);
                s
            },
            BatchSize::SmallInput,
        )
    });
    let model = engine.model().clone();
    let mut x = ndarray::Array2::<f32>::zeros((CANDIDATES, N_FEATURES));
    for (i, mut row) in x.rows_mut().into_iter().enumerate() {
        FeatureInput {
            is_live_stream: i % 2 == 0,
            followers: Some(10_000 * i as u64),
            user_follows: false,
            price: 50.0 + i as f64,
            scores: Default::default(),
            is_brand_self: false,
            scene: Scene::Recommend,
            cart_size: Some(10),
            resolved: true,
        }
        .write(row.as_slice_mut().unwrap());
    }
    group.bench_function("model_batch_only", |b| {
        b.iter(|| model.score(black_box(x.view())))
    });
    group.finish();
}

criterion_group!(benches, bench_rank);
criterion_main!(benches);
