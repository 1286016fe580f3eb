//! The fleet's flow budgets, counted in Redis.
//!
//! Each replica spends only impressions it has leased: it asks Redis for a
//! few at a time, and one Lua script takes them from the day's count
//! atomically, never past what the pacing allows by now (nor past the
//! hour's share, without rollover). A lease is taken before it is spent, so
//! the fleet never spends more than the budget; a replica that dies holding
//! a lease leaves it unspent, never spent twice. While Redis is away a
//! replica spends what it holds and then serves no flow impressions
//! (ranking goes on); it leases again once Redis is back.
//!
//! Keys are `fairflow:{<stream>:<budget>:<day>}:leased` (and `:h<hour>`),
//! the braces a Redis Cluster hash tag so a script's keys share a slot.

use crate::chuanliu::{BudgetKey, LeaseRequest};
use crate::config::ClusterConfig;
use redis::aio::ConnectionLike;
use std::time::Duration;

/// Takes `want` impressions from the day's count (KEYS[1]) and, when
/// ARGV[2] >= 0, the hour's (KEYS[2]), within the allowances ARGV[1] and
/// ARGV[2]; returns how many it took. ARGV[4]: the keys' time to live.
const LEASE: &str = r#"
local room = tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[1]) or '0')
local hour_cap = tonumber(ARGV[2])
if hour_cap >= 0 then
  room = math.min(room, hour_cap - tonumber(redis.call('GET', KEYS[2]) or '0'))
end
local grant = math.min(tonumber(ARGV[3]), room)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if hour_cap >= 0 then
  redis.call('INCRBY', KEYS[2], grant)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return grant
"#;

/// Gives back ARGV[1] unspent impressions to the day's count (KEYS[1]),
/// never below zero.
const RETURN: &str = r#"
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
local back = math.min(tonumber(ARGV[1]), left)
if back > 0 then redis.call('DECRBY', KEYS[1], back) end
return back
"#;

/// Counts outlive their day by this much, for the fleet's figures.
const TTL_SECONDS: u64 = 3 * 86_400;

/// A connection to one Redis node or to a Redis Cluster.
#[derive(Clone)]
enum Connection {
    Node(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Connection {
    async fn invoke(&mut self, script: &redis::ScriptInvocation<'_>) -> redis::RedisResult<u64> {
        match self {
            Connection::Node(c) => script.invoke_async(c).await,
            Connection::Cluster(c) => script.invoke_async(c).await,
        }
    }

    async fn get(&mut self, key: &str) -> redis::RedisResult<Option<u64>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        match self {
            Connection::Node(c) => c.req_packed_command(&cmd).await,
            Connection::Cluster(c) => c.req_packed_command(&cmd).await,
        }
        .and_then(|v| redis::from_redis_value(v).map_err(redis::RedisError::from))
    }
}

/// The fleet's budget counts (see the module docs).
#[derive(Clone)]
pub struct Budgets {
    connection: Connection,
    stream: String,
    lease: u64,
}

/// Why the budgets' Redis could not be reached at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Redis at {urls}: {reason}")]
pub struct BudgetsError {
    urls: String,
    reason: String,
}

impl Budgets {
    /// Connects (one node, or a cluster when several are named) and checks
    /// that Redis answers.
    pub async fn connect(config: &ClusterConfig) -> Result<Budgets, BudgetsError> {
        let failed = |e: redis::RedisError| BudgetsError {
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
        Ok(Budgets {
            connection,
            stream: config.stream.clone(),
            lease: config.lease_impressions,
        })
    }

    /// Impressions a replica leases at a time.
    pub fn lease_size(&self) -> u64 {
        self.lease
    }

    fn day_key(&self, key: &BudgetKey, day: i64) -> String {
        match key {
            BudgetKey::Flow => format!("fairflow:{{{}:flow:{day}}}:leased", self.stream),
            BudgetKey::Brand(b) => format!("fairflow:{{{}:brand:{b}:{day}}}:leased", self.stream),
        }
    }

    /// Takes what `request` asks of `key`'s budget; returns how many it got.
    pub async fn lease(
        &mut self,
        key: &BudgetKey,
        request: &LeaseRequest,
    ) -> redis::RedisResult<u64> {
        let day = self.day_key(key, request.day);
        let hour = format!("{day}:h{}", request.hour);
        let script = redis::Script::new(LEASE);
        let mut call = script.prepare_invoke();
        call.key(&day)
            .key(&hour)
            .arg(request.allowed_day)
            .arg(request.allowed_hour.map_or(-1, |h| h as i64))
            .arg(request.want)
            .arg(TTL_SECONDS);
        self.connection.invoke(&call).await
    }

    /// Gives back `n` unspent impressions of `key`'s budget for `day`.
    pub async fn give_back(
        &mut self,
        key: &BudgetKey,
        day: i64,
        n: u64,
    ) -> redis::RedisResult<u64> {
        let script = redis::Script::new(RETURN);
        let mut call = script.prepare_invoke();
        call.key(self.day_key(key, day)).arg(n);
        self.connection.invoke(&call).await
    }

    /// What the whole fleet has leased of `key`'s budget for `day`: spent,
    /// or held by a replica to spend.
    pub async fn leased(&mut self, key: &BudgetKey, day: i64) -> redis::RedisResult<u64> {
        let key = self.day_key(key, day);
        Ok(self.connection.get(&key).await?.unwrap_or(0))
    }
}
