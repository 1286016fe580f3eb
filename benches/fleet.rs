//! The fleet's shared services on this machine's NATS and Redis
//! (docs/scale-out.md): durable ingest through JetStream (batches of 100
//! purchases published, acknowledged by JetStream and applied by the
//! replica's own reader before `ingest` returns), one lease of flow
//! budget from Redis (the Lua script's round trip), and one place held
//! under a user's frequency cap and given back (two round trips).
//! Run: `cargo bench --bench fleet` (needs NATS on 127.0.0.1:4222 and
//! Redis on 127.0.0.1:6379; says so and measures nothing without them).

mod common;

use common::{BATCH, batch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fairflow::chuanliu::{BrandSetting, BudgetKey, LeaseRequest, Wanted};
use fairflow::cluster::{Budgets, Caps, Connection, Stream};
use fairflow::config::Config;
use fairflow::domain::Event;
use fairflow::events::{EventStore, Feed};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A feed that only counts: the bench measures the store, not the flow.
#[derive(Default)]
struct Count(AtomicU64);

impl Feed for Count {
    fn event(&self, _: &Event) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn brand(&self, _: &BrandSetting) {}
}

fn up(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_ok()
}

fn bench_fleet(c: &mut Criterion) {
    if !up("127.0.0.1:4222") || !up("127.0.0.1:6379") {
        eprintln!("no NATS on 127.0.0.1:4222 or no Redis on 127.0.0.1:6379: nothing measured");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = std::process::id() as u64;
    let config = Config::from_toml(
        &format!(
            "[cluster]\nnats_urls = [\"nats://127.0.0.1:4222\"]\nredis_urls = [\"redis://127.0.0.1:6379\"]\nstream = \"FFBENCH_{run}\"\n"
        ),
        "bench",
        None,
    )
    .unwrap();
    let cluster = config.cluster.clone().unwrap();
    let (stream, _) = runtime
        .block_on(Stream::open(&cluster, "bench", 0, Vec::new()))
        .unwrap();
    let feed: Arc<dyn Feed> = Arc::new(Count::default());
    stream.start(Arc::downgrade(&feed));
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("fleet");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("ingest_jetstream_batch_100", |b| {
        b.iter(|| {
            let out = stream
                .ingest(batch(&next, &format!("bench-{run}")), &*feed)
                .unwrap();
            assert_eq!(out.accepted.len(), BATCH);
        })
    });
    let redis = runtime.block_on(Connection::open(&cluster)).unwrap();
    let mut budgets = Budgets::new(redis.clone(), &cluster);
    let request = LeaseRequest {
        day: 20_000 + (run % 1000) as i64,
        hour: 3,
        allowed_day: u64::MAX / 2,
        allowed_hour: None,
        want: 100,
    };
    group.throughput(Throughput::Elements(1));
    group.bench_function("lease_redis", |b| {
        b.iter(|| {
            let got = runtime
                .block_on(budgets.lease(&BudgetKey::Flow, &request))
                .unwrap();
            assert_eq!(got, 100);
        })
    });
    // A place under a user's cap for one brand, and giving it back: what a
    // replica adds to a Rank that may show the user a flow stream it ends
    // up not placing (one round trip when the page places it).
    let mut caps = Caps::new(redis, &cluster);
    let wanted = [Wanted {
        brand: 0,
        name: "brand-bench".into(),
    }];
    let user = format!("bench-user-{run}");
    group.bench_function("cap_hold_and_release_redis", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let held = caps.hold(&user, &wanted, 1, 3, 600).await.unwrap();
                assert_eq!(held.len(), 1);
                let back = caps
                    .release(&user, &[("brand-bench", &held[0].window)])
                    .await;
                assert_eq!(back.unwrap(), 1);
            })
        })
    });
    group.finish();
    drop(stream);
    runtime.block_on(async {
        let client = async_nats::connect("127.0.0.1:4222").await.unwrap();
        let _ = async_nats::jetstream::new(client)
            .delete_stream(format!("FFBENCH_{run}"))
            .await;
    });
}

criterion_group!(benches, bench_fleet);
criterion_main!(benches);
