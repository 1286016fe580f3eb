//! Cost of one `Rank` through the engine, against a plain sort of the same
//! number of scores, in one run (absolute times on shared machines are noisy;
//! the ratio is what to track).
//!
//! Fixture: the shipped demo catalog, embedded config and model; 200
//! candidates (100 live streams, 100 goods, chosen by a seeded RNG), 20 slots.
//! `rank_sizes` runs the default at 500 and 2,000 candidates beside a plain
//! sort of as many scores, and at 500 cycling through 256 distinct requests
//! (as a server sees them: the catalog records seldom in cache).
//! Run: `cargo bench --bench rank`. Figures: docs/performance.md.
//!
//! `engine_rank_flow` is the default rank for a user the chuanliu flow acts
//! on: three brand affinities, every iteration injecting a brand's stream
//! (cap and budget set out of the way), in a flow holding 100k other users'
//! affinities and a traffic reward for every influencer in the catalog.
//!
//! With the allocator of the `fairflow` binary that serves `Rank`
//! (mimalloc): a rank builds a few dozen per-request vectors, and glibc's
//! malloc would make their cost depend on the heap's history.

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use fairflow::catalog::Catalog;
use fairflow::chuanliu::{BrandSetting, Enrollment};
use fairflow::config::Config;
use fairflow::domain::{Channel, Magnitude, Millis, Scene, StreamerKind};
use fairflow::domain::{Event, EventKind};
use fairflow::engine::RankState;
use fairflow::engine::{Candidate, Engine, RankQuery};
use fairflow::model::{FeatureInput, Model, feature_matrix};
use fairflow::sim::ItemPool;
use rand::SeedableRng;
use std::hint::black_box;
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CANDIDATES: usize = 200;
const SLOTS: u32 = 20;
const SEED: u64 = 42;

fn fixture() -> (Engine, Catalog, RankQuery) {
    let config = Config::embedded_default().unwrap();
    let catalog = Catalog::embedded_demo(128).unwrap();
    let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
    let query = query_of(&catalog, CANDIDATES);
    (engine, catalog, query)
}

/// A recommend request for `n` candidates of the catalog, half live streams
/// and half goods, picked by the seeded RNG.
fn query_of(catalog: &Catalog, n: usize) -> RankQuery {
    query_seeded(catalog, n, SEED)
}

/// [`query_of`] with candidates drawn by `seed`.
fn query_seeded(catalog: &Catalog, n: usize, seed: u64) -> RankQuery {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let candidates: Vec<Candidate> = ItemPool::from_catalog(catalog)
        .sample(&mut rng, n)
        .into_iter()
        .map(|(id, kind)| Candidate::new(id, kind))
        .collect();
    assert_eq!(
        candidates.len(),
        n,
        "the demo catalog has {n} items to rank"
    );
    RankQuery {
        request_id: "bench".into(),
        user_id: "u1".into(),
        scene: Scene::Recommend,
        slots: SLOTS,
        candidates,
        now: Millis(1_795_132_800_000),
    }
}

/// The default rank at 500 and 2,000 candidates beside a plain sort of as
/// many scores: the ratio at each size says whether the cost per candidate
/// stays flat.
fn bench_sizes(c: &mut Criterion) {
    let (engine, catalog, _) = fixture();
    let mut group = c.benchmark_group("rank_sizes");
    for n in [500, 2000] {
        let query = query_of(&catalog, n);
        let state = RankState::new();
        group.bench_function(format!("engine_rank_{n}x20"), |b| {
            b.iter(|| {
                engine
                    .rank(black_box(&catalog), &state, black_box(&query))
                    .unwrap()
            })
        });
        let ranking = engine.rank(&catalog, &state, &query).unwrap();
        let scores: Vec<f64> = (0..n)
            .map(|i| ranking.slots[i % ranking.slots.len()].score * (1.0 + i as f64 * 1e-3))
            .collect();
        bench_plain_sort(&mut group, &format!("plain_sort_{n}"), &scores);
    }
    // A server sees a different request each time, and over a catalog of
    // 35k items their records are seldom in cache, unlike one repeated
    // request's: the same rank cycling through distinct requests.
    let queries: Vec<RankQuery> = (0..DISTINCT)
        .map(|i| query_seeded(&catalog, 500, SEED + 1 + i))
        .collect();
    let state = RankState::new();
    let mut next = queries.iter().cycle();
    group.bench_function("engine_rank_500x20_distinct", |b| {
        b.iter(|| {
            let query = next.next().expect("a cycle never ends");
            engine
                .rank(black_box(&catalog), &state, black_box(query))
                .unwrap()
        })
    });
    group.finish();
}

/// How many distinct requests `engine_rank_500x20_distinct` cycles through.
const DISTINCT: u64 = 256;

/// The yardstick: sort `scores` best first and keep a page's worth.
fn bench_plain_sort(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, scores: &[f64]) {
    group.bench_function(name, |b| {
        b.iter_batched(
            || scores.to_vec(),
            |mut s| {
                s.sort_unstable_by(|a, b| b.total_cmp(a));
                s.truncate(SLOTS as usize);
                s
            },
            BatchSize::SmallInput,
        )
    });
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
        Config::from_toml(
            "[quotas.targets]\nenabled = false\n[quotas.spreading]\nstrength = 0.0\n",
            "bench",
            None,
        )
        .unwrap()
        .engine,
        Arc::new(engine.model().clone()),
    );
    let per_request_state = RankState::new();
    let (flow_engine, flow_state) = flow_fixture(&engine, &catalog, &query);
    let mut group = c.benchmark_group("rank_200x20");
    group.bench_function("engine_rank_flow", |b| {
        b.iter(|| {
            flow_engine
                .rank(black_box(&catalog), &flow_state, black_box(&query))
                .unwrap()
        })
    });
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
    bench_plain_sort(&mut group, "plain_sort", &scores);
    let model = engine.model().clone();
    let x = feature_matrix((0..CANDIDATES).map(|i| FeatureInput {
        is_live_stream: i % 2 == 0,
        followers: Some(Magnitude::new(10_000.0 * i as f64)),
        user_follows: false,
        price: Magnitude::new(50.0 + i as f64),
        scores: Default::default(),
        is_brand_self: false,
        scene: Scene::Recommend,
        cart: Some(Magnitude::new(10.0)),
        resolved: true,
    }));
    group.bench_function("model_batch_only", |b| {
        b.iter(|| model.score(black_box(x.view())))
    });
    group.finish();
}

/// An engine whose flow always acts for the query's user, and its state.
fn flow_fixture(engine: &Engine, catalog: &Catalog, query: &RankQuery) -> (Engine, RankState) {
    let config = Config::from_toml(
        "[chuanliu]\nfrequency_cap = 10000\n[chuanliu.budget]\ndaily_impressions = 1_000_000_000_000\n",
        "bench",
        None,
    )
    .unwrap();
    let flow_engine = Engine::new(config.engine, Arc::new(engine.model().clone()));
    let params = &flow_engine.params().chuanliu;
    let state = RankState::new();
    let brands: Vec<String> = catalog
        .streamers()
        .filter(|s| s.kind == StreamerKind::BrandSelf)
        .filter_map(|s| s.brand_id.clone())
        .filter(|b| catalog.live_self_stream(b).is_some())
        .take(3)
        .collect();
    assert_eq!(brands.len(), 3, "the demo catalog has live brand streams");
    let influencers: Vec<String> = catalog
        .streamers()
        .filter(|s| s.kind == StreamerKind::Influencer)
        .map(|s| s.id.clone())
        .collect();
    let purchase = |id: String, user: String, brand: &str, seller: &str, channel| Event {
        event_id: id,
        time: query.now,
        user_id: user,
        kind: EventKind::Purchase {
            item_id: "g".into(),
            brand_id: brand.into(),
            seller_streamer_id: seller.into(),
            channel,
            price: 50.0,
            venue: None,
        },
    };
    for (i, brand) in brands.iter().enumerate() {
        state.flow.set_brand(&BrandSetting {
            brand_id: brand.clone(),
            enrollment: Enrollment::Enrolled,
            daily_impressions: None,
        });
        let seller = &influencers[i];
        let e = purchase(
            format!("q{i}"),
            query.user_id.clone(),
            brand,
            seller,
            Channel::Influencer,
        );
        state.flow.apply(&e, params);
    }
    for u in 0..100_000 {
        let brand = &brands[u % 3];
        let e = purchase(
            format!("o{u}"),
            format!("other{u}"),
            brand,
            &influencers[u % influencers.len()],
            Channel::Influencer,
        );
        state.flow.apply(&e, params);
    }
    // Every influencer earns a reward: a flow impression to a buyer, then
    // that buyer's purchase in the brand's own stream.
    for (i, seller) in influencers.iter().enumerate() {
        let (user, brand) = (format!("rewarder{i}"), &brands[0]);
        let e = purchase(
            format!("r{i}"),
            user.clone(),
            brand,
            seller,
            Channel::Influencer,
        );
        state.flow.apply(&e, params);
        let q = RankQuery {
            user_id: user.clone(),
            ..query.clone()
        };
        flow_engine.rank(catalog, &state, &q).unwrap();
        let e = purchase(format!("c{i}"), user, brand, "own", Channel::BrandSelf);
        state.flow.apply(&e, params);
    }
    let ranking = flow_engine.rank(catalog, &state, query).unwrap();
    assert!(
        ranking
            .slots
            .iter()
            .any(|s| s.reasons.contains(fairflow::domain::Reason::Chuanliu)),
        "the flow acts on every iteration"
    );
    (flow_engine, state)
}

/// Reading a `Rank` request's bytes into the engine's query, the way the
/// server does and the way it did (prost into the wire type, then moved
/// into the query), on the load generator's requests (200 and 500
/// candidates, estimates on a third of them).
fn bench_decode(c: &mut Criterion) {
    use fairflow::server::{convert, decode};
    use prost::Message;
    let catalog = Catalog::embedded_demo(128).unwrap();
    let mut group = c.benchmark_group("decode");
    for n in [200, 500] {
        let spec = fairflow::load::LoadSpec {
            addr: String::new(),
            concurrency: 1,
            duration: std::time::Duration::ZERO,
            max_requests: None,
            candidates: n,
            slots: SLOTS,
            seed: SEED,
            users: None,
        };
        let bytes = fairflow::load::request_pool(&catalog, &spec, 1)[0].encode_to_vec();
        let now = Millis(1_795_132_800_000);
        group.bench_function(format!("prost_then_convert_{n}"), |b| {
            b.iter(|| {
                let request = fairflow::proto::v1::RankRequest::decode(black_box(&bytes[..]));
                convert::rank_query(request.unwrap(), now).unwrap()
            })
        });
        group.bench_function(format!("straight_into_query_{n}"), |b| {
            b.iter(|| {
                decode::rank_request(black_box(&bytes), now)
                    .unwrap()
                    .query
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_rank, bench_sizes, bench_decode);
criterion_main!(benches);
