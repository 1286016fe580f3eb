//! `[cluster]`: running as one of several replicas that share the flow's
//! events through a NATS JetStream stream (docs/scale-out.md). Without
//! `nats_urls` the server is one process with its local event log.

use super::check::{Invalid, in_range, invalid};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCluster {
    pub nats_urls: Vec<String>,
    pub stream: String,
    pub stream_replicas: u64,
    pub partitions: u64,
    pub replica_id: String,
    pub ack_timeout_seconds: f64,
    pub redis_urls: Vec<String>,
    pub lease_impressions: u64,
    pub cap_hold_timeout_ms: u64,
}

impl Default for RawCluster {
    fn default() -> Self {
        RawCluster {
            nats_urls: Vec::new(),
            stream: "FAIRFLOW_EVENTS".into(),
            stream_replicas: 1,
            partitions: 16,
            replica_id: String::new(),
            ack_timeout_seconds: 5.0,
            redis_urls: Vec::new(),
            lease_impressions: 100,
            cap_hold_timeout_ms: 20,
        }
    }
}

/// Where the fleet's events are shared; `None` in [`super::Config`] is a
/// single process.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// NATS servers to connect to (any one will do).
    pub nats_urls: Vec<String>,
    /// The JetStream stream's name; its subjects are `<stream>.>`.
    pub stream: String,
    /// Copies JetStream keeps of every event: an acknowledged event
    /// survives the loss of all but one of them.
    pub stream_replicas: usize,
    /// Events are published on `<stream>.events.<user hash % partitions>`.
    pub partitions: u32,
    /// This replica's name in logs and metrics (default: host and pid).
    pub replica_id: String,
    /// How long an ingest waits for JetStream's acknowledgement before it
    /// answers UNAVAILABLE (nothing acknowledged).
    pub ack_timeout: Duration,
    /// Redis: one node, or the seed nodes of a Redis Cluster. The fleet's
    /// budgets are counted there.
    pub redis_urls: Vec<String>,
    /// Impressions a replica leases from a shared budget at a time.
    pub lease_impressions: u64,
    /// How long a `Rank` waits for Redis to hold places under the flow's
    /// frequency caps before it ranks without flow impressions.
    pub cap_hold_timeout: Duration,
}

pub(super) fn validate(raw: RawCluster) -> Result<Option<ClusterConfig>, Invalid> {
    if raw.nats_urls.is_empty() {
        return Ok(None);
    }
    for url in &raw.nats_urls {
        let rest = url.strip_prefix("nats://").unwrap_or(url);
        let port = rest.rsplit_once(':').map(|(_, p)| p);
        if rest.is_empty() || port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return Err(invalid(
                "cluster.nats_urls",
                format!("`{url}` is not a NATS address (nats://host:port)"),
            ));
        }
    }
    // JetStream stream names: no whitespace, `.`, `*`, `>`, path separators.
    if raw.stream.is_empty()
        || raw.stream.len() > 64
        || raw
            .stream
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(invalid(
            "cluster.stream",
            "must be 1-64 letters, digits, `_` or `-`",
        ));
    }
    if raw.redis_urls.is_empty() {
        return Err(invalid(
            "cluster.redis_urls",
            "a fleet counts its flow budgets in Redis: name at least one node (redis://host:port)",
        ));
    }
    if let Some(url) = raw
        .redis_urls
        .iter()
        .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
    {
        return Err(invalid(
            "cluster.redis_urls",
            format!("`{url}` is not a Redis URL (redis://host:port)"),
        ));
    }
    Ok(Some(ClusterConfig {
        nats_urls: raw.nats_urls,
        stream: raw.stream,
        stream_replicas: in_range("cluster.stream_replicas", raw.stream_replicas, 1, 5)? as usize,
        partitions: in_range("cluster.partitions", raw.partitions, 1, 1024)? as u32,
        replica_id: raw.replica_id,
        ack_timeout: Duration::from_secs_f64(in_range(
            "cluster.ack_timeout_seconds",
            raw.ack_timeout_seconds,
            0.1,
            60.0,
        )?),
        redis_urls: raw.redis_urls,
        lease_impressions: in_range(
            "cluster.lease_impressions",
            raw.lease_impressions,
            1,
            1_000_000,
        )?,
        cap_hold_timeout: Duration::from_millis(in_range(
            "cluster.cap_hold_timeout_ms",
            raw.cap_hold_timeout_ms,
            1,
            10_000,
        )?),
    }))
}
