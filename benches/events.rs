//! Durable event ingestion: batches of 100 purchase events appended to the
//! write-ahead log and synced before `ingest` returns, from one thread and
//! from eight at once (group commit shares a sync among them).
//! Run: `cargo bench --bench events`. Figures: docs/performance.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fairflow::domain::{Channel, Millis};
use fairflow::domain::{Event, EventKind};
use fairflow::events::EventLog;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const BATCH: usize = 100;

fn batch(next: &AtomicU64) -> Vec<Event> {
    (0..BATCH)
        .map(|_| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            Event {
                event_id: format!("evt-{i:012}"),
                time: Millis(1_795_132_800_000 + i as i64),
                user_id: format!("u{}", i % 10_000),
                kind: EventKind::Purchase {
                    item_id: format!("g{:06}", i % 30_000),
                    brand_id: format!("b{:03}", i % 300),
                    seller_streamer_id: format!("s{:05}", i % 3_000),
                    channel: Channel::Influencer,
                    price: 10.0 + (i % 500) as f64,
                },
            }
        })
        .collect()
}

fn bench_ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = EventLog::open(dir.path(), 0, Vec::new()).unwrap();
    let log = Arc::new(log);
    let next = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("ingest_durable");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("one_writer_batch100", |b| {
        b.iter(|| log.ingest(batch(&next)).unwrap())
    });
    group.throughput(Throughput::Elements(8 * BATCH as u64));
    group.bench_function("eight_writers_batch100", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| log.ingest(batch(&next)).unwrap());
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_ingest);
criterion_main!(benches);
