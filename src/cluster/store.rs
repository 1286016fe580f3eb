//! The fleet's Redis: one node, or a Redis Cluster when several seed nodes
//! are named. Budgets and frequency caps share one connection.

use crate::config::ClusterConfig;
use redis::aio::ConnectionLike;
use std::time::Duration;

/// A connection to one Redis node or to a Redis Cluster. Cheap to clone:
/// clones share the underlying multiplexed connection.
#[derive(Clone)]
pub enum Connection {
    Node(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// Why the fleet's Redis could not be reached at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Redis at {urls}: {reason}")]
pub struct StoreError {
    urls: String,
    reason: String,
}

impl Connection {
    /// Connects and checks that Redis answers.
    pub async fn open(config: &ClusterConfig) -> Result<Connection, StoreError> {
        let failed = |e: redis::RedisError| StoreError {
            urls: config.redis_urls.join(","),
            reason: e.to_string(),
        };
        let timeout = Some(Duration::from_secs(2));
        let mut connection = if let [url] = config.redis_urls.as_slice() {
            let manager = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout)
                .set_number_of_retries(1);
            let client = redis::Client::open(url.as_str()).map_err(failed)?;
            Connection::Node(
                client
                    .get_connection_manager_with_config(manager)
                    .await
                    .map_err(failed)?,
            )
        } else {
            let client = redis::cluster::ClusterClient::builder(config.redis_urls.clone())
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(2))
                .build()
                .map_err(failed)?;
            Connection::Cluster(client.get_async_connection().await.map_err(failed)?)
        };
        connection.get("fairflow:ping").await.map_err(failed)?;
        Ok(connection)
    }

    /// Runs a script (all its keys in one slot, for a cluster).
    pub async fn invoke<T: redis::FromRedisValue>(
        &mut self,
        script: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match self {
            Connection::Node(c) => script.invoke_async(c).await,
            Connection::Cluster(c) => script.invoke_async(c).await,
        }
    }

    pub async fn get(&mut self, key: &str) -> redis::RedisResult<Option<u64>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    pub async fn hmget(
        &mut self,
        key: &str,
        fields: &[&str],
    ) -> redis::RedisResult<Vec<Option<String>>> {
        self.query(redis::cmd("HMGET").arg(key).arg(fields)).await
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Connection::Node(c) => c.req_packed_command(cmd).await,
            Connection::Cluster(c) => c.req_packed_command(cmd).await,
        }
        .and_then(|v| redis::from_redis_value(v).map_err(redis::RedisError::from))
    }
}
