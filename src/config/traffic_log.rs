//! `[traffic_log]`: the server's own traffic log (docs/traffic-log.md), as
//! written and as validated.

use super::check::{Invalid, in_range};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTrafficLog {
    pub dir: String,
    pub sample_rate: f64,
    pub rotate_megabytes: f64,
    pub rotate_minutes: f64,
    pub queue_records: u64,
}

impl Default for RawTrafficLog {
    fn default() -> Self {
        RawTrafficLog {
            dir: String::new(),
            sample_rate: 1.0,
            rotate_megabytes: 256.0,
            rotate_minutes: 60.0,
            queue_records: 65_536,
        }
    }
}

/// Where and how the server logs its traffic; `dir: None` is off.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficLogConfig {
    pub dir: Option<PathBuf>,
    /// Share of users whose requests and purchases are logged (by a hash of
    /// the user id, so a logged user's whole session is in the log).
    pub sample_rate: f64,
    pub rotate_bytes: u64,
    pub rotate_ms: i64,
    pub queue: usize,
}

impl TrafficLogConfig {
    /// The keys only a restart applies (the writer is started once).
    /// Whether `user`'s traffic is logged: a stable hash of the id against
    /// the rate.
    pub fn samples(&self, user: &str) -> bool {
        self.sample_rate >= 1.0
            || (crc32fast::hash(user.as_bytes()) as f64) < self.sample_rate * u32::MAX as f64
    }
}

pub fn validate(
    raw: RawTrafficLog,
    resolve: impl Fn(&str) -> PathBuf,
) -> Result<TrafficLogConfig, Invalid> {
    Ok(TrafficLogConfig {
        dir: match raw.dir.trim() {
            "" => None,
            dir => Some(resolve(dir)),
        },
        sample_rate: in_range("traffic_log.sample_rate", raw.sample_rate, 0.0, 1.0)?,
        rotate_bytes: (in_range(
            "traffic_log.rotate_megabytes",
            raw.rotate_megabytes,
            0.001,
            1_000_000.0,
        )? * 1024.0
            * 1024.0) as u64,
        rotate_ms: (in_range(
            "traffic_log.rotate_minutes",
            raw.rotate_minutes,
            0.01,
            525_600.0,
        )? * 60_000.0) as i64,
        queue: in_range(
            "traffic_log.queue_records",
            raw.queue_records,
            1,
            100_000_000,
        )? as usize,
    })
}
