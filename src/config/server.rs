//! `[server]`: addresses, limits and timings of the gRPC and metrics servers.

use super::check::{Invalid, in_range, invalid};
use super::raw::RawServer;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_message_bytes: usize,
    /// How long shutdown waits for requests in flight before closing
    /// connections anyway.
    pub drain_grace: Duration,
    /// `Rank` requests admitted at once; more are refused at once.
    pub max_concurrent_requests: usize,
    /// Longest a `Rank` may take; a shorter `grpc-timeout` wins.
    pub request_timeout: Duration,
    /// How often the config file is checked for changes (`None`: never).
    pub watch_config: Option<Duration>,
    /// Where `GET /metrics` is served (`None`: no metrics endpoint).
    pub metrics_listen: Option<SocketAddr>,
    /// How often the controller's gauges and the Gini are recomputed.
    pub metrics_refresh: Duration,
}

pub(super) fn validate(server: RawServer) -> Result<ServerConfig, Invalid> {
    Ok(ServerConfig {
        listen: server.listen.parse().map_err(|e| {
            invalid(
                "server.listen",
                format!("`{}` is not a socket address: {e}", server.listen),
            )
        })?,
        max_message_bytes: in_range(
            "server.max_message_bytes",
            server.max_message_bytes,
            1024,
            64 << 20,
        )? as usize,
        drain_grace: Duration::from_secs_f64(in_range(
            "server.drain_grace_seconds",
            server.drain_grace_seconds,
            0.0,
            600.0,
        )?),
        max_concurrent_requests: in_range(
            "server.max_concurrent_requests",
            server.max_concurrent_requests,
            1,
            1_000_000,
        )? as usize,
        request_timeout: Duration::from_secs_f64(in_range(
            "server.request_timeout_seconds",
            server.request_timeout_seconds,
            1e-6,
            600.0,
        )?),
        watch_config: match in_range(
            "server.watch_config_seconds",
            server.watch_config_seconds,
            0.0,
            3600.0,
        )? {
            0.0 => None,
            s => Some(Duration::from_secs_f64(s.max(0.05))),
        },
        metrics_listen: match server.metrics_listen.trim() {
            "" => None,
            addr => Some(addr.parse().map_err(|e| {
                invalid(
                    "server.metrics_listen",
                    format!("`{addr}` is not a socket address: {e}"),
                )
            })?),
        },
        metrics_refresh: Duration::from_secs_f64(in_range(
            "server.metrics_refresh_seconds",
            server.metrics_refresh_seconds,
            0.1,
            3600.0,
        )?),
    })
}
