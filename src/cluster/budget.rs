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

use super::store::Connection;
use crate::chuanliu::{BudgetKey, LeaseRequest};
use crate::config::ClusterConfig;

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

/// Counts one attributed conversion (ARGV[2] its price) in the day's
/// figures (KEYS[1]) unless its event (KEYS[2]) was counted already: two
/// replicas that both showed the user the brand both attribute it.
const ATTRIBUTE: &str = r#"
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[1], 'conversions', 1)
  redis.call('HINCRBYFLOAT', KEYS[1], 'gmv', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return 1
end
return 0
"#;

/// Adds ARGV[1] served impressions to the day's figures (KEYS[1]).
const SERVED: &str = r#"
redis.call('HINCRBY', KEYS[1], 'impressions', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// Counts outlive their day by this much, for the fleet's figures.
const TTL_SECONDS: u64 = 3 * 86_400;

/// What the fleet's flow did in one budget day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FleetDay {
    pub impressions: u64,
    pub attributed_conversions: u64,
    pub attributed_gmv: f64,
}

/// The fleet's budget counts (see the module docs).
#[derive(Clone)]
pub struct Budgets {
    connection: Connection,
    stream: String,
    lease: u64,
}

impl Budgets {
    pub fn new(connection: Connection, config: &ClusterConfig) -> Budgets {
        Budgets {
            connection,
            stream: config.stream.clone(),
            lease: config.lease_impressions,
        }
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

    fn figures_key(&self, day: i64) -> String {
        format!("fairflow:{{{}:flow:{day}}}:figures", self.stream)
    }

    /// Counts `n` flow impressions served by this replica on `day`.
    pub async fn count_served(&mut self, day: i64, n: u64) -> redis::RedisResult<()> {
        let script = redis::Script::new(SERVED);
        let mut call = script.prepare_invoke();
        call.key(self.figures_key(day)).arg(n).arg(TTL_SECONDS);
        self.connection.invoke::<i64>(&call).await.map(drop)
    }

    /// Counts the conversion of `event_id` (a purchase on `day`) as
    /// attributed to the flow, once for the whole fleet; true when this
    /// call counted it.
    pub async fn count_attributed(
        &mut self,
        day: i64,
        event_id: &str,
        price: f64,
    ) -> redis::RedisResult<bool> {
        let figures = self.figures_key(day);
        let script = redis::Script::new(ATTRIBUTE);
        let mut call = script.prepare_invoke();
        call.key(&figures)
            .key(format!("{figures}:event:{event_id}"))
            .arg(TTL_SECONDS)
            .arg(price);
        Ok(self.connection.invoke::<i64>(&call).await? == 1)
    }

    /// The fleet's figures for `day`.
    pub async fn day(&mut self, day: i64) -> redis::RedisResult<FleetDay> {
        let fields: Vec<Option<String>> = self
            .connection
            .hmget(
                &self.figures_key(day),
                &["impressions", "conversions", "gmv"],
            )
            .await?;
        let number = |i: usize| fields.get(i).cloned().flatten().unwrap_or_default();
        Ok(FleetDay {
            impressions: number(0).parse().unwrap_or(0),
            attributed_conversions: number(1).parse().unwrap_or(0),
            attributed_gmv: number(2).parse().unwrap_or(0.0),
        })
    }
}
