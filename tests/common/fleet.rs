//! Replicas of a fleet on this machine's NATS and Redis: configs on a
//! stream of their own, and the checks and clients the fleet's tests share.

use super::{Process, candidate, spawn};
use fairflow::proto::v1 as pb;
use std::path::Path;
use std::time::Duration;

pub const NATS: &str = "127.0.0.1:4222";
pub const REDIS: &str = "127.0.0.1:6379";

/// Whether NATS and Redis are there; says so when not (the test is then
/// skipped).
pub fn services_are_up() -> bool {
    [("NATS", NATS), ("Redis", REDIS)]
        .into_iter()
        .all(|(name, addr)| {
            let up = std::net::TcpStream::connect_timeout(
                &addr.parse().unwrap(),
                Duration::from_secs(1),
            )
            .is_ok();
            if !up {
                eprintln!("skipped: no {name} on {addr} (start it as docs/scale-out.md says)");
            }
            up
        })
}

/// A config for replicas of a fleet on a stream of its own, against the
/// machine's NATS and Redis.
pub fn fleet_config(dir: &Path, stream: &str, extra: &str) -> String {
    config_at(dir, NATS, REDIS, stream, extra)
}

/// A replica config in `dir` naming these NATS and Redis; its path.
pub fn config_at(dir: &Path, nats: &str, redis: &str, stream: &str, extra: &str) -> String {
    let path = dir.join("replica.toml");
    std::fs::write(
        &path,
        format!(
            "[cluster]\nnats_urls = [\"nats://{nats}\"]\nstream = \"{stream}\"\nredis_urls = [\"redis://{redis}\"]\n{extra}"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

pub type RankClient =
    fairflow::proto::v1::rank_service_client::RankServiceClient<tonic::transport::Channel>;

pub async fn rank_client(addr: &str) -> RankClient {
    RankClient::connect(format!("http://{addr}")).await.unwrap()
}

/// Ranks a recommend page for `user` with one candidate (brand b0008's
/// live stream); the flow slots on it, where the flow injects b0001's own
/// stream for its buyers (the page is never empty).
pub async fn flow_slots(client: &mut RankClient, user: &str, request_id: String) -> u64 {
    let page = client
        .rank(pb::RankRequest {
            request_id,
            user_id: user.into(),
            scene: pb::Scene::Recommend as i32,
            slots: 5,
            candidates: vec![candidate("live-s00008", pb::ItemKind::LiveStream)],
            request_time_ms: Some(wall_clock_ms()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!page.slots.is_empty(), "ranking goes on");
    page.slots
        .iter()
        .filter(|s| s.reasons.contains(&(pb::ReasonCode::Chuanliu as i32)))
        .count() as u64
}

/// A stream name no other run uses: from the test's own (random)
/// temporary directory.
pub fn fresh_stream(work: &Path, what: &str) -> String {
    let unique: String = work
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("FFTEST_{what}_{}_{unique}", std::process::id())
}

/// Deletes a test's stream from the machine's NATS.
pub async fn delete_stream(name: &str) {
    let client = async_nats::connect(NATS).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream(name)
        .await
        .unwrap();
}

#[expect(
    clippy::disallowed_methods,
    reason = "the budget day follows the wall clock"
)]
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `n` replicas started with the config at `config`, each with an events
/// directory of its own (the directories go with the replicas).
pub fn replicas(config: &str, n: usize) -> (Vec<tempfile::TempDir>, Vec<Process>) {
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let replicas = dirs
        .iter()
        .map(|d| spawn(&["--config", config], d.path()))
        .collect();
    (dirs, replicas)
}
