//! Durable event ingestion: batches of 100 purchase events appended to the
//! write-ahead log and synced before `ingest` returns, from one thread and
//! from eight at once (group commit shares a sync among them).
//! Run: `cargo bench --bench events`. Figures: docs/performance.md.

mod common;

use common::{BATCH, batch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fairflow::events::EventLog;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

fn bench_ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(dir.path(), 0, Vec::new()).unwrap();
    let log = Arc::new(log);
    let next = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("ingest_durable");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("one_writer_batch100", |b| {
        b.iter(|| log.ingest(batch(&next, "evt")).unwrap())
    });
    group.throughput(Throughput::Elements(8 * BATCH as u64));
    group.bench_function("eight_writers_batch100", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| log.ingest(batch(&next, "evt")).unwrap());
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_ingest);
criterion_main!(benches);
