//! The flow's per-user frequency cap, counted for the whole fleet in Redis.
//!
//! Before a replica ranks a page for a user the flow may show brands to, it
//! holds places under those brands' caps: one Lua script walks the brands
//! (strongest affinity first) and takes a place in each brand's count that
//! is under the cap, until the page has as many as it can show. The page is
//! then ranked with only the held brands allowed, and the places it did not
//! use are given back. Redis runs a script atomically, so two requests of
//! one user on two replicas cannot both take the last place: the fleet's
//! overshoot under concurrent requests is zero (docs/scale-out.md has the
//! cases where it is not, and what they cost).
//!
//! A count is a hash `{n, w}` at `fairflow:{<stream>:cap:<user>}:<brand>`:
//! `n` places taken in the window that the first place opened (`w`, Redis's
//! clock when it did), expiring with that window. The hash tag keeps a
//! user's brands in one slot of a Redis Cluster, so one script can take them
//! all.

use super::store::Connection;
use crate::chuanliu::Wanted;
use crate::config::ClusterConfig;

/// Takes places for up to ARGV[3] of the brands KEYS (in order), each
/// under the cap ARGV[1] of its count, a new window lasting ARGV[2] ms.
/// Returns, per place taken, the key's index (1-based) and its window.
const HOLD: &str = r#"
local cap, window, need = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i, key in ipairs(KEYS) do
  if need <= 0 then break end
  local n = tonumber(redis.call('HGET', key, 'n') or '-1')
  if n < 0 then
    local t = redis.call('TIME')
    local w = t[1] .. '.' .. t[2]
    redis.call('HSET', key, 'n', 1, 'w', w)
    redis.call('PEXPIRE', key, window)
    table.insert(out, i)
    table.insert(out, w)
    need = need - 1
  elseif n < cap then
    redis.call('HINCRBY', key, 'n', 1)
    table.insert(out, i)
    table.insert(out, redis.call('HGET', key, 'w'))
    need = need - 1
  end
end
return out
"#;

/// Gives back one place in each count KEYS[i] whose window is still
/// ARGV[i]; returns how many it gave back.
const RELEASE: &str = r#"
local back = 0
for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'w') == ARGV[i] and tonumber(redis.call('HGET', key, 'n')) > 0 then
    redis.call('HINCRBY', key, 'n', -1)
    back = back + 1
  end
end
return back
"#;

/// A place held under one brand's cap for one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// Index into the brands asked for.
    pub index: usize,
    /// The window it was taken in.
    pub window: String,
}

/// The fleet's frequency-cap counts (see the module docs).
#[derive(Clone)]
pub struct Caps {
    connection: Connection,
    stream: String,
    timeout: std::time::Duration,
}

impl Caps {
    pub fn new(connection: Connection, config: &ClusterConfig) -> Caps {
        Caps {
            connection,
            stream: config.stream.clone(),
            timeout: config.cap_hold_timeout,
        }
    }

    /// How long a `Rank` waits for a hold (`cluster.cap_hold_timeout_ms`).
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    fn key(&self, user: &str, brand: &str) -> String {
        format!("fairflow:{{{}:cap:{user}}}:{brand}", self.stream)
    }

    /// Holds places for at most `need` of `brands` (in order), each under
    /// `cap` per window of `window_s`.
    pub async fn hold(
        &mut self,
        user: &str,
        brands: &[Wanted],
        need: usize,
        cap: u16,
        window_s: u32,
    ) -> redis::RedisResult<Vec<Held>> {
        let script = redis::Script::new(HOLD);
        let mut call = script.prepare_invoke();
        for b in brands {
            call.key(self.key(user, &b.name));
        }
        call.arg(cap)
            .arg(u64::from(window_s.max(1)) * 1000)
            .arg(need);
        let taken: Vec<redis::Value> = self.connection.invoke(&call).await?;
        let mut out = Vec::with_capacity(taken.len() / 2);
        for pair in taken.chunks(2) {
            let [index, window] = pair else {
                return Err(unexpected("an odd-length reply"));
            };
            let index: usize = redis::from_redis_value_ref(index)?;
            if index == 0 || index > brands.len() {
                return Err(unexpected("a brand index out of range"));
            }
            out.push(Held {
                index: index - 1,
                window: redis::from_redis_value_ref(window)?,
            });
        }
        Ok(out)
    }

    /// Gives back places held and not used, as (brand, window).
    pub async fn release(
        &mut self,
        user: &str,
        places: &[(&str, &str)],
    ) -> redis::RedisResult<u64> {
        if places.is_empty() {
            return Ok(0);
        }
        let script = redis::Script::new(RELEASE);
        let mut call = script.prepare_invoke();
        for (brand, window) in places {
            call.key(self.key(user, brand)).arg(*window);
        }
        self.connection.invoke(&call).await
    }
}

fn unexpected(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "cap hold script returned",
        what.to_string(),
    ))
}
