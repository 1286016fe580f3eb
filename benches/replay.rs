//! Replay throughput: requests of 200 candidates into 20 slots (demo
//! catalog, default config), read from JSONL and from Parquet and replayed
//! through the engine, in one run so reading and ranking can be compared.
//!
//! Run: `cargo bench --bench replay`. Figures: docs/replay.md.
//!
//! With the allocator of the `fairflow` binary that runs replays (mimalloc):
//! reading a log is mostly building strings and vectors, so the allocator
//! is a good part of what is measured.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fairflow::catalog::Catalog;
use fairflow::config::Config;
use fairflow::domain::{Millis, Scene};
use fairflow::engine::{Candidate, Engine};
use fairflow::model::Model;
use fairflow::replay::{self, Log};
use fairflow::sim::ItemPool;
use fairflow::traffic::{Encoding, OnError, RankRecord, Record, read_parallel};
use rand::SeedableRng;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUESTS: usize = 2000;

fn fixture() -> (Engine, Catalog, Vec<u8>) {
    let config = Config::embedded_default().unwrap();
    let catalog = Catalog::embedded_demo(128).unwrap();
    let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
    let pool = ItemPool::from_catalog(&catalog);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut text = Vec::new();
    for i in 0..REQUESTS {
        let record = Record::Rank(RankRecord {
            time: Millis(1_795_132_800_000 + i as i64 * 1000),
            request_id: format!("r{i}"),
            user_id: format!("u{}", i % 500),
            scene: Scene::Recommend,
            slots: 20,
            candidates: pool
                .sample(&mut rng, 200)
                .into_iter()
                .map(|(id, kind)| Candidate::new(id, kind))
                .collect(),
            served: Vec::new(),
            policy: None,
            arms: None,
        });
        record.write_line(&mut text);
    }
    (engine, catalog, text)
}

fn parse(text: &[u8]) -> Log {
    let mut log = Log::default();
    read_parallel(text, "bench", OnError::Fail, &[], |records| {
        for record in records {
            log.absorb(record);
        }
    })
    .unwrap();
    log
}

fn bench_replay(c: &mut Criterion) {
    let (engine, catalog, text) = fixture();
    let log = parse(&text);
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("traffic.jsonl");
    std::fs::write(&jsonl, &text).unwrap();
    let parquet = dir.path().join("traffic.parquet");
    fairflow::traffic::convert(&[jsonl], &parquet, Encoding::Parquet, OnError::Fail).unwrap();
    let from_parquet = || replay::read(std::slice::from_ref(&parquet), OnError::Fail).unwrap();
    assert_eq!(from_parquet().steps, log.steps);
    let mut group = c.benchmark_group("replay_2000_requests_200x20");
    group.sample_size(10);
    group.throughput(Throughput::Elements(REQUESTS as u64));
    group.bench_function("parse_jsonl", |b| b.iter(|| parse(&text)));
    group.bench_function("read_parquet", |b| b.iter(from_parquet));
    for shards in [1, 2] {
        group.bench_function(format!("replay_{shards}_shards"), |b| {
            let options = replay::Options {
                shards,
                ..replay::Options::default()
            };
            b.iter(|| replay::run(&engine, &catalog, &log, &options, &AtomicU64::new(0)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
