//! The load generator against a real server: every request it sends is a
//! valid `Rank` request and is answered; with buyers ingested first, the
//! flow acts on its requests.

mod common;

use common::TestServer;
use fairflow::catalog::Catalog;
use fairflow::load::{self, LoadSpec};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tool_sends_valid_requests_and_counts_them() {
    let server = TestServer::start().await;
    let spec = LoadSpec {
        addr: server.addr.to_string(),
        concurrency: 4,
        duration: Duration::from_secs(60),
        max_requests: Some(200),
        candidates: 100,
        slots: 10,
        seed: 5,
        users: None,
    };
    let pool = load::request_pool(&Catalog::embedded_demo(128).unwrap(), &spec, 50);
    let report = load::run(spec, pool).await.unwrap();
    assert_eq!(report.errors, 0);
    assert_eq!(report.ok, 200);
    let [p50, p90, p99, _, max] = report.latency_us;
    assert!(p50 <= p90 && p90 <= p99 && p99 <= max && max > 0);
    assert_eq!(report.flow_slots, 0, "no buyers, no flow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_buyers_the_flow_serves_its_streams_to_the_load() {
    let server = TestServer::with_config("[chuanliu]\nenroll_all_brands = true\n").await;
    let catalog = Catalog::embedded_demo(128).unwrap();
    let addr = server.addr.to_string();
    assert_eq!(load::ingest_buyers(&addr, &catalog, 40).await.unwrap(), 40);
    let spec = LoadSpec {
        addr,
        concurrency: 2,
        duration: Duration::from_secs(60),
        max_requests: Some(200),
        candidates: 50,
        slots: 10,
        seed: 5,
        users: Some(40),
    };
    let pool = load::request_pool(&catalog, &spec, 50);
    let report = load::run(spec, pool).await.unwrap();
    assert_eq!((report.ok, report.errors), (200, 0));
    let served = server.state.ranking.flow.counts().impressions;
    assert!(served > 0, "flow impressions served to the buyers");
    assert_eq!(report.flow_slots, served, "the report counts them");
}
