//! Shared harness: the real server on an ephemeral port, in this process,
//! stopped when the handle drops.
#![allow(dead_code)]

pub mod fleet;
pub mod process;
pub mod tiers;

#[allow(unused_imports)]
pub use process::*;

use fairflow::config::Config;
use fairflow::proto::v1::catalog_service_client::CatalogServiceClient;
use fairflow::proto::v1::rank_service_client::RankServiceClient;
use fairflow::proto::v1::{Candidate, ItemKind, RankRequest, Scene};
use fairflow::server::{self, State};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The event log's directory when the harness made one.
    pub events_dir: Option<tempfile::TempDir>,
    pub state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::StartError>>>,
}

impl TestServer {
    /// The server on the embedded defaults (config, demo catalog, model).
    pub async fn start() -> TestServer {
        let config = Config::embedded_default().expect("embedded config");
        TestServer::with_own_events(config).await
    }

    /// The server with a config given as TOML text (missing keys take
    /// defaults), its event log in a fresh temporary directory.
    pub async fn with_config(toml: &str) -> TestServer {
        let config = Config::from_toml(toml, "test.toml", None).expect("test config");
        TestServer::with_own_events(config).await
    }

    async fn with_own_events(config: Config) -> TestServer {
        let events = tempfile::tempdir().unwrap();
        let state = State::load(config, None, Some(events.path().to_path_buf())).expect("state");
        let mut server = TestServer::with_state(state).await;
        server.events_dir = Some(events);
        server
    }

    /// The server on a config file, as `serve --config PATH` runs it: the
    /// file is watched and reloadable, and names the event log's directory.
    pub async fn with_config_file(path: &std::path::Path) -> TestServer {
        let config = Config::load(Some(path)).expect("test config");
        TestServer::with_state(State::load(config, Some(path.to_path_buf()), None).expect("state"))
            .await
    }

    async fn with_state(state: Arc<State>) -> TestServer {
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = grpc.local_addr().unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = server::Listeners {
            grpc,
            metrics: Some(metrics),
        };
        let task = tokio::spawn(server::run(listeners, state.clone(), async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            metrics_addr,
            events_dir: None,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The Prometheus text from `GET /metrics`.
    pub async fn scrape(&self) -> String {
        scrape(&self.metrics_addr.to_string()).await
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect")
    }

    pub async fn rank_client(&self) -> RankServiceClient<Channel> {
        RankServiceClient::new(self.channel().await)
    }

    pub async fn catalog_client(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(self.channel().await)
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The Prometheus text from `GET /metrics` at `addr`.
pub async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics endpoint");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

pub fn candidate(id: &str, kind: ItemKind) -> Candidate {
    Candidate {
        item_id: id.to_string(),
        kind: kind as i32,
        ..Default::default()
    }
}

pub fn goods_with(id: &str, pctr: f64, pcvr: f64) -> Candidate {
    Candidate {
        pctr: Some(pctr),
        pcvr: Some(pcvr),
        ..candidate(id, ItemKind::Goods)
    }
}

pub fn request(candidates: Vec<Candidate>, slots: u32) -> RankRequest {
    RankRequest {
        request_id: "it-1".into(),
        user_id: "user-1".into(),
        scene: Scene::Recommend as i32,
        slots,
        candidates,
        // Fixed time: the demo catalog's "now", so rankings are reproducible.
        request_time_ms: Some(1_795_132_800_000),
    }
}

pub fn item_ids(resp: &fairflow::proto::v1::RankResponse) -> Vec<String> {
    resp.slots.iter().map(|s| s.item_id.clone()).collect()
}

/// Waits for a condition, failing the test once `limit` has passed.
pub struct Patience(tokio::time::Instant, std::time::Duration);

impl Patience {
    pub fn new(limit: std::time::Duration) -> Patience {
        Patience(tokio::time::Instant::now(), limit)
    }

    /// Whether the limit has passed.
    pub fn exhausted(&self) -> bool {
        self.0.elapsed() >= self.1
    }

    /// Sleeps a little; fails the test if the limit has passed.
    pub async fn wait(&self) {
        assert!(!self.exhausted(), "condition not met within {:?}", self.1);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An hour before this test process first asked, on a whole second: the
/// time of events a test's servers must keep. Affinities expire against the
/// server's wall clock, so events on a fixed date would expire with the
/// calendar and the test with them.
pub fn recent_ms() -> i64 {
    static AT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| (fleet::wall_clock_ms() / 1000 - 3600) * 1000)
}
