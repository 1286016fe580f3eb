//! Configuration: one TOML file, parsed into raw serde structs ([`raw`]) and
//! then validated into [`Config`], the only form the rest of the crate sees.
//!
//! A bad file is refused as a whole with the file, the key and the reason
//! ([`ConfigError`]); nothing is half-applied. `config/default.toml` is
//! embedded in the binary and documents every key.

mod curve;
mod flow;
mod traffic_log;

pub use traffic_log::TrafficLogConfig;
mod changes;
mod raw;
mod summary;
mod whole;

pub use changes::{Change, changes};

pub use curve::Curve;

use crate::allocate::{ExposureParams, Floors, Rounding};
use crate::catalog::CatalogSource;
use crate::chuanliu::FlowParams;
use crate::domain::{Millis, Scene, TierThresholds};
use crate::model::ModelSource;
use raw::{RawConfig, RawCurve, RawFloorPolicy, RawRounding, RawSource};
use sha2::{Digest, Sha256};
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shipped default configuration, embedded so `fairflow serve` runs with
/// nothing but the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Where the default config comes from, in error messages and `source`.
pub const EMBEDDED_ORIGIN: &str = "<embedded config/default.toml>";

/// A config that was refused, with enough to find and fix the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

impl ConfigError {
    /// The offending key, when the error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

/// A validated configuration. Built only by [`Config::load`] /
/// [`Config::from_toml`], so every value in it is within its documented range.
#[derive(Debug, Clone)]
pub struct Config {
    /// Content hash of the TOML text (first 12 hex digits of SHA-256): names
    /// the config a response was ranked under.
    pub version: String,
    /// The file it was read from, or [`EMBEDDED_ORIGIN`].
    pub origin: String,
    /// The TOML text it was parsed from (what `GetConfig` returns).
    pub text: String,
    pub server: ServerConfig,
    pub catalog: CatalogSource,
    pub model: ModelSource,
    pub tiers: TierThresholds,
    pub limits: Limits,
    pub scoring: ScoringConfig,
    pub gates: GateConfig,
    pub quotas: QuotaConfig,
    /// Where acknowledged events are kept (the write-ahead log).
    pub events_dir: PathBuf,
    /// How often the flow state is snapshotted (and the log truncated);
    /// `None`: only on shutdown.
    pub snapshot_interval: Option<Duration>,
    /// How long an event id is remembered to refuse duplicates.
    pub dedupe_window_ms: i64,
    /// The distribution-to-self-broadcast flow.
    pub chuanliu: FlowParams,
    /// The server's own traffic log.
    pub traffic_log: TrafficLogConfig,
}

/// Fairness quotas applied when filling a page.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaConfig {
    enabled: [bool; Scene::ALL.len()],
    /// At most this many items of one streamer on a page (0: no cap).
    pub max_items_per_streamer: u32,
    pub floors: Floors,
    /// How much exposure each slot gives.
    pub position_weights: PositionWeights,
    /// Amortized tier targets and within-tier spreading.
    pub exposure: ExposureParams,
}

/// Exposure of a slot by position: `1 / log2(i + 2)` for 0-based slot `i`
/// (the DCG discount: 1 for the first slot), or a configured table whose last
/// value holds for slots beyond it.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionWeights {
    table: Vec<f64>,
}

impl PositionWeights {
    pub fn new(table: Vec<f64>) -> Result<PositionWeights, String> {
        if let Some((i, w)) = table
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w > 0.0 && **w <= 1e6))
        {
            return Err(format!("weight {i} ({w}) must be a positive finite number"));
        }
        Ok(PositionWeights { table })
    }

    pub fn weight(&self, slot: usize) -> f64 {
        match self.table.last() {
            None => 1.0 / ((slot + 2) as f64).log2(),
            Some(&last) => self.table.get(slot).copied().unwrap_or(last),
        }
    }
}

impl QuotaConfig {
    /// Whether quotas apply to pages of this scene.
    pub fn applies_to(&self, scene: Scene) -> bool {
        self.enabled[scene.index()]
    }
}

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

impl ServerConfig {
    /// The keys read once at start: a reload that changes them reports them
    /// as needing a restart instead of pretending they took effect.
    pub fn restart_required(&self, next: &ServerConfig) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.listen != next.listen {
            keys.push("server.listen");
        }
        if self.max_message_bytes != next.max_message_bytes {
            keys.push("server.max_message_bytes");
        }
        if self.drain_grace != next.drain_grace {
            keys.push("server.drain_grace_seconds");
        }
        if self.watch_config != next.watch_config {
            keys.push("server.watch_config_seconds");
        }
        if self.metrics_listen != next.metrics_listen {
            keys.push("server.metrics_listen");
        }
        if self.metrics_refresh != next.metrics_refresh {
            keys.push("server.metrics_refresh_seconds");
        }
        keys
    }
}

/// Request limits, enforced with `INVALID_ARGUMENT` naming the field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_slots: u32,
    pub max_candidates: u32,
    pub max_id_bytes: u32,
}

impl Limits {
    /// The largest `RankRequest` within these limits, in bytes on the wire:
    /// every field at its largest (three ids per candidate, two for the
    /// request). The server refuses a longer message after reading its
    /// length, before decoding any of it (docs/operations.md).
    pub fn max_rank_message_bytes(&self) -> usize {
        fn varint(n: usize) -> usize {
            (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
        }
        let id = self.max_id_bytes as usize;
        let id_field = 1 + varint(id) + id;
        // kind (an enum: up to 10 bytes), price, pctr, pcvr, user_follows.
        let candidate = 3 * id_field + 11 + 3 * 9 + 2;
        // scene, slots, request_time_ms.
        let request = 2 * id_field + 11 + 6 + 11;
        request + self.max_candidates as usize * (1 + varint(candidate) + candidate)
    }
}

/// How the caller's pCTR/pCVR estimates are combined with the model's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScoreSource {
    /// The caller's when sent, else the model's.
    Upstream,
    /// Always the model's.
    Model,
    /// `w * caller's + (1 - w) * model's` when the caller sent one, else the model's.
    Blend { upstream_weight: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoringConfig {
    per_scene: [ScoreSource; Scene::ALL.len()],
    /// Order value (yuan) for a candidate whose price is unknown.
    pub default_order_value: f64,
}

impl ScoringConfig {
    pub fn source(&self, scene: Scene) -> ScoreSource {
        self.per_scene[scene.index()]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    pub product: Curve,
    pub shop_experience: Curve,
    pub reputation: Curve,
    pub cold_start: ColdStart,
    /// A combined multiplier further than this from 1 earns a reason code.
    pub reason_threshold: f64,
}

/// Cold-start support: a boost that tapers linearly from `boost` at age 0 to 1
/// at `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdStart {
    pub window_ms: i64,
    pub boost: f64,
}

impl ColdStart {
    /// The multiplier for a seller of this age; 1 outside the window.
    pub fn multiplier(&self, age_ms: i64) -> f64 {
        if self.window_ms <= 0 || age_ms >= self.window_ms {
            return 1.0;
        }
        let left = 1.0 - age_ms.max(0) as f64 / self.window_ms as f64;
        1.0 + (self.boost - 1.0) * left
    }
}

impl Config {
    /// The embedded default; it is checked by a test, so this cannot fail in
    /// a released binary.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::from_toml(DEFAULT_TOML, EMBEDDED_ORIGIN, None)
    }

    /// Reads and validates a config file, or the embedded default for `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Config::embedded_default();
        };
        let text = whole::read_whole(path)?;
        Config::from_toml(&text, &path.display().to_string(), path.parent())
    }

    /// Parses and validates TOML text. `origin` names it in errors; relative
    /// paths inside are resolved against `base_dir`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        base_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: origin.to_string(),
            key: key.to_string(),
            reason,
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|e| invalid("(syntax)", one_line(&e)))?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                invalid(&key, e.into_inner().message().to_string())
            })?;
        let version = content_version(text);
        let mut config = validate(raw, base_dir, version, origin)
            .map_err(|Invalid { key, reason }| invalid(&key, reason))?;
        config.text = text.to_string();
        Ok(config)
    }
}

/// The version a config text gets: the first 12 hex digits of its SHA-256.
pub fn content_version(text: &str) -> String {
    hex_prefix(&Sha256::digest(text.as_bytes()), 6)
}

/// A validation failure before the file name is attached.
struct Invalid {
    key: String,
    reason: String,
}

fn invalid(key: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Checks `min <= value <= max`, naming the key and the range otherwise.
fn in_range<T: PartialOrd + Display + Copy>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, Invalid> {
    // Written so that NaN fails too.
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(invalid(key, format!("{value} is outside [{min}, {max}]")))
    }
}

fn validate(
    raw: RawConfig,
    base_dir: Option<&Path>,
    version: String,
    origin: &str,
) -> Result<Config, Invalid> {
    let RawConfig {
        server,
        catalog,
        model,
        tiers,
        limits,
        scoring,
        gates,
        quotas,
        events,
        chuanliu,
        traffic_log,
    } = raw;
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        match base_dir {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        }
    };

    let server = ServerConfig {
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
            0.001,
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
    };
    let catalog = match catalog.dir.trim() {
        "" => CatalogSource::Embedded,
        dir => CatalogSource::Dir(resolve(dir)),
    };
    let model = match model.path.trim() {
        "" => ModelSource::Embedded,
        path => ModelSource::File(resolve(path)),
    };
    let tiers = TierThresholds::new(tiers.top_min_followers, tiers.mid_min_followers)
        .map_err(|reason| invalid("tiers.mid_min_followers", reason))?;
    let limits = Limits {
        max_slots: in_range("limits.max_slots", limits.max_slots, 1, 1000)? as u32,
        max_candidates: in_range("limits.max_candidates", limits.max_candidates, 1, 100_000)?
            as u32,
        max_id_bytes: in_range("limits.max_id_bytes", limits.max_id_bytes, 8, 4096)? as u32,
    };

    let source = |key: &str, source: RawSource, weight: f64| -> Result<ScoreSource, Invalid> {
        Ok(match source {
            RawSource::Upstream => ScoreSource::Upstream,
            RawSource::Model => ScoreSource::Model,
            RawSource::Blend => ScoreSource::Blend {
                upstream_weight: in_range(key, weight, 0.0, 1.0)?,
            },
        })
    };
    let base = source(
        "scoring.upstream_weight",
        scoring.source,
        scoring.upstream_weight,
    )?;
    let mut per_scene = [base; Scene::ALL.len()];
    for (name, over) in &scoring.scenes {
        let scene = Scene::from_name(name).ok_or_else(|| {
            invalid(
                &format!("scoring.scenes.{name}"),
                "unknown scene; expected one of recommend, follow, mall, search, shop",
            )
        })?;
        per_scene[scene.index()] = source(
            &format!("scoring.scenes.{name}.upstream_weight"),
            over.source.unwrap_or(scoring.source),
            over.upstream_weight.unwrap_or(scoring.upstream_weight),
        )?;
    }
    let scoring = ScoringConfig {
        per_scene,
        default_order_value: in_range(
            "scoring.default_order_value",
            scoring.default_order_value,
            0.0,
            1e7,
        )?,
    };

    let curve = |key: &str, raw: RawCurve| -> Result<Curve, Invalid> {
        Curve::new(raw.points.into_iter().map(|[x, y]| (x, y)).collect())
            .map_err(|r| invalid(key, r))
    };
    let cold = gates.cold_start;
    let gates = GateConfig {
        product: curve("gates.product.points", gates.product)?,
        shop_experience: curve("gates.shop_experience.points", gates.shop_experience)?,
        reputation: curve("gates.reputation.points", gates.reputation)?,
        cold_start: ColdStart {
            window_ms: (in_range(
                "gates.cold_start.max_age_days",
                cold.max_age_days,
                0.0,
                365.0,
            )? * Millis::MS_PER_DAY as f64) as i64,
            boost: in_range("gates.cold_start.boost", cold.boost, 1.0, 10.0)?,
        },
        reason_threshold: {
            let t = in_range("gates.reason_threshold", gates.reason_threshold, 0.0, 1.0)?;
            if t >= 1.0 {
                return Err(invalid("gates.reason_threshold", "must be below 1"));
            }
            t
        },
    };

    let mut enabled = [false; Scene::ALL.len()];
    for name in &quotas.scenes {
        let scene = Scene::from_name(name).ok_or_else(|| {
            invalid(
                "quotas.scenes",
                format!("unknown scene `{name}`; expected recommend, follow, mall, search or shop"),
            )
        })?;
        enabled[scene.index()] = true;
    }
    let f = &quotas.floors;
    let shares = [f.top, f.mid, f.small];
    let max_slots = limits.max_slots as usize;
    let floors = match f.policy {
        RawFloorPolicy::None => Ok(Floors::None),
        RawFloorPolicy::Proportional => {
            let rounding = match f.rounding {
                RawRounding::Floor => Rounding::Floor,
                RawRounding::Ceil => Rounding::Ceil,
            };
            Floors::proportional(shares, rounding, max_slots)
        }
        RawFloorPolicy::Fair => Floors::fair(shares, f.alpha, max_slots),
    }
    .map_err(|(key, reason)| match key.as_str() {
        "" => invalid("quotas.floors", reason),
        key => invalid(&format!("quotas.floors.{key}"), reason),
    })?;
    let quotas = QuotaConfig {
        enabled,
        max_items_per_streamer: in_range(
            "quotas.max_items_per_streamer",
            quotas.max_items_per_streamer,
            0,
            1000,
        )? as u32,
        floors,
        position_weights: PositionWeights::new(quotas.position_weights)
            .map_err(|reason| invalid("quotas.position_weights", reason))?,
        exposure: exposure_params(&quotas.targets, &quotas.spreading)?,
    };

    Ok(Config {
        version,
        origin: origin.to_string(),
        text: String::new(),
        events_dir: match events.dir.trim() {
            "" => return Err(invalid("events.dir", "must name a directory")),
            dir => resolve(dir),
        },
        snapshot_interval: match in_range(
            "events.snapshot_interval_seconds",
            events.snapshot_interval_seconds,
            0.0,
            86_400.0,
        )? {
            0.0 => None,
            s => Some(Duration::from_secs_f64(s.max(0.05))),
        },
        dedupe_window_ms: (in_range("events.dedupe_hours", events.dedupe_hours, 1.0, 8760.0)?
            * 3_600_000.0) as i64,
        chuanliu: flow::validate(chuanliu)?,
        traffic_log: traffic_log::validate(traffic_log, resolve)?,
        server,
        catalog,
        model,
        tiers,
        limits,
        scoring,
        gates,
        quotas,
    })
}

fn exposure_params(t: &raw::RawTargets, s: &raw::RawSpreading) -> Result<ExposureParams, Invalid> {
    let targets = if t.enabled {
        let shares = [
            in_range("quotas.targets.top", t.top, 0.0, 1.0)?,
            in_range("quotas.targets.mid", t.mid, 0.0, 1.0)?,
            in_range("quotas.targets.small", t.small, 0.0, 1.0)?,
        ];
        let sum: f64 = shares.iter().sum();
        if sum > 1.0 + 1e-9 {
            return Err(invalid(
                "quotas.targets",
                format!("top + mid + small sum to {sum}, more than 1"),
            ));
        }
        Some(shares)
    } else {
        None
    };
    let seconds = |key: &str, v: f64| in_range(key, v, 1.0, 7.0 * 86_400.0).map(|s| s * 1000.0);
    Ok(ExposureParams {
        targets,
        tier_half_life_ms: seconds("quotas.targets.half_life_seconds", t.half_life_seconds)?,
        step: in_range("quotas.targets.step", t.step, 0.0, 10.0)?,
        max_multiplier: in_range(
            "quotas.targets.max_multiplier",
            t.max_multiplier,
            1.0,
            100.0,
        )?,
        spread_strength: in_range("quotas.spreading.strength", s.strength, 0.0, 10.0)?,
        spread_scale: in_range("quotas.spreading.scale", s.scale, 1e-3, 1e6)?,
        spread_half_life_ms: seconds("quotas.spreading.half_life_seconds", s.half_life_seconds)?,
        max_streamers: in_range(
            "quotas.spreading.max_streamers",
            s.max_streamers,
            1,
            100_000_000,
        )? as usize,
        max_streamer_share: in_range("quotas.spreading.max_share", s.max_share, 0.0, 1.0)?,
    })
}

/// toml's errors span several lines (with a source excerpt); logs and gRPC
/// messages want one.
fn one_line(e: &impl Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    //! Rules checked: the shipped default parses and equals the code defaults;
    //! every bad value names its key; scene overrides apply only to their scene.
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", None)
    }

    fn key_of(text: &str) -> String {
        match parse(text) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected a refused config, got {other:?}"),
        }
    }

    #[test]
    fn shipped_default_parses_and_matches_code_defaults() {
        let shipped = Config::embedded_default().expect("config/default.toml must validate");
        let empty = parse("").unwrap();
        assert_eq!(shipped.tiers, empty.tiers);
        assert_eq!(shipped.limits, empty.limits);
        assert_eq!(shipped.scoring, empty.scoring);
        assert_eq!(shipped.gates, empty.gates);
        assert_eq!(shipped.quotas, empty.quotas);
        assert_eq!(shipped.chuanliu, empty.chuanliu);
        assert_eq!(shipped.traffic_log, empty.traffic_log);
        assert_eq!(shipped.snapshot_interval, empty.snapshot_interval);
        assert_eq!(shipped.dedupe_window_ms, empty.dedupe_window_ms);
        assert_eq!(shipped.server.listen, empty.server.listen);
        assert_eq!(
            shipped.server.max_message_bytes,
            empty.server.max_message_bytes
        );
        assert_eq!(shipped.server.drain_grace, empty.server.drain_grace);
        assert_eq!(
            shipped.server.max_concurrent_requests,
            empty.server.max_concurrent_requests
        );
        assert_eq!(shipped.server.request_timeout, empty.server.request_timeout);
        assert_eq!(shipped.server.watch_config, empty.server.watch_config);
        assert_eq!(shipped.server.metrics_listen, empty.server.metrics_listen);
        assert_eq!(shipped.server.metrics_refresh, empty.server.metrics_refresh);
        assert!(shipped.server.restart_required(&empty.server).is_empty());
        assert_eq!(shipped.catalog, CatalogSource::Embedded);
        assert_eq!(shipped.model, ModelSource::Embedded);
        assert_eq!(shipped.version.len(), 12);
    }

    #[test]
    fn shipped_example_configs_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
        assert!(n >= 4);
    }

    #[test]
    fn version_is_a_content_hash() {
        let a = parse("[limits]\nmax_slots = 10\n").unwrap();
        let b = parse("[limits]\nmax_slots = 10\n").unwrap();
        let c = parse("[limits]\nmax_slots = 11\n").unwrap();
        assert_eq!(a.version, b.version);
        assert_ne!(a.version, c.version);
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(key_of("[limits]\nmax_slots = 0"), "limits.max_slots");
        assert_eq!(
            key_of("[limits]\nmax_candidates = -1"),
            "limits.max_candidates"
        );
        assert_eq!(
            key_of("[tiers]\nmid_min_followers = 9000000"),
            "tiers.mid_min_followers"
        );
        assert_eq!(key_of("[server]\nlisten = \"nowhere\""), "server.listen");
        assert_eq!(
            key_of("[server]\nmetrics_listen = \"nowhere\""),
            "server.metrics_listen"
        );
        assert_eq!(
            key_of("[server]\nmax_concurrent_requests = 0"),
            "server.max_concurrent_requests"
        );
        assert_eq!(
            key_of("[server]\nrequest_timeout_seconds = 0.0"),
            "server.request_timeout_seconds"
        );
        assert_eq!(
            key_of("[scoring]\nupstream_weight = 1.5"),
            "scoring.upstream_weight"
        );
        assert_eq!(key_of("[scoring]\nsource = \"oracle\""), "scoring.source");
        assert_eq!(
            key_of("[scoring.scenes.feed]\nsource = \"model\""),
            "scoring.scenes.feed"
        );
        assert_eq!(
            key_of("[gates.product]\npoints = [[10.0, 1.0], [5.0, 1.0]]"),
            "gates.product.points"
        );
        assert_eq!(
            key_of("[gates.cold_start]\nboost = 0.5"),
            "gates.cold_start.boost"
        );
        assert_eq!(
            key_of("[gates]\nreason_threshold = 1.0"),
            "gates.reason_threshold"
        );
        assert_eq!(key_of("[limits]\nmax_slot = 10"), "limits.max_slot");
        assert_eq!(key_of("[limits\n"), "(syntax)");
        assert_eq!(key_of("[quotas]\nscenes = [\"feed\"]"), "quotas.scenes");
        assert_eq!(
            key_of("[quotas.targets]\nenabled = true\ntop = 0.6\nmid = 0.5"),
            "quotas.targets"
        );
        assert_eq!(
            key_of("[quotas.targets]\nmax_multiplier = 0.5"),
            "quotas.targets.max_multiplier"
        );
        assert_eq!(
            key_of("[quotas.spreading]\nstrength = -1.0"),
            "quotas.spreading.strength"
        );
        assert_eq!(
            key_of("[quotas.floors]\nmid = 0.8\nsmall = 0.3"),
            "quotas.floors"
        );
        assert_eq!(
            key_of("[quotas.floors]\nsmall = 1.5"),
            "quotas.floors.small"
        );
        assert_eq!(
            key_of("[quotas.floors]\nalpha = 0.9"),
            "quotas.floors.alpha"
        );
        assert_eq!(
            key_of("[quotas.floors]\npolicy = \"proportional\"\nrounding = \"ceil\""),
            "quotas.floors.rounding"
        );
    }

    #[test]
    fn error_message_has_file_key_and_reason() {
        let err = parse("[limits]\nmax_slots = 5000").unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml: key `limits.max_slots`: 5000 is outside [1, 1000]"),
            "{err}"
        );
        let unknown = parse("[limits]\nmax_slot = 10").unwrap_err().to_string();
        assert!(unknown.contains("unknown field `max_slot`"), "{unknown}");
    }

    #[test]
    fn scene_overrides_inherit_and_override() {
        let c = parse("[scoring]\nsource = \"blend\"\nupstream_weight = 0.3\n[scoring.scenes.mall]\nsource = \"model\"\n[scoring.scenes.follow]\nupstream_weight = 0.9\n").unwrap();
        assert_eq!(c.scoring.source(Scene::Mall), ScoreSource::Model);
        assert_eq!(
            c.scoring.source(Scene::Follow),
            ScoreSource::Blend {
                upstream_weight: 0.9
            }
        );
        assert_eq!(
            c.scoring.source(Scene::Recommend),
            ScoreSource::Blend {
                upstream_weight: 0.3
            }
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let c = Config::from_toml(
            "[catalog]\ndir = \"demo\"\n[model]\npath = \"/abs/m.json\"",
            "x",
            Some(Path::new("/etc/ff")),
        )
        .unwrap();
        assert_eq!(c.catalog, CatalogSource::Dir(PathBuf::from("/etc/ff/demo")));
        assert_eq!(c.model, ModelSource::File(PathBuf::from("/abs/m.json")));
    }

    #[test]
    fn position_weights_default_to_the_log_discount_or_a_table() {
        let d = parse("").unwrap().quotas.position_weights;
        assert_eq!(d.weight(0), 1.0);
        assert!((d.weight(1) - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert!((d.weight(6) - 1.0 / 3.0).abs() < 1e-12);
        let t = parse("[quotas]\nposition_weights = [1.0, 0.5, 0.25]")
            .unwrap()
            .quotas
            .position_weights;
        assert_eq!((t.weight(0), t.weight(2), t.weight(10)), (1.0, 0.25, 0.25));
        assert_eq!(
            key_of("[quotas]\nposition_weights = [1.0, 0.0]"),
            "quotas.position_weights"
        );
    }

    #[test]
    fn cold_start_tapers_to_one() {
        let c = ColdStart {
            window_ms: 100,
            boost: 1.5,
        };
        assert_eq!(c.multiplier(0), 1.5);
        assert_eq!(c.multiplier(50), 1.25);
        assert_eq!(c.multiplier(100), 1.0);
        assert_eq!(c.multiplier(1_000), 1.0);
        assert_eq!(
            ColdStart {
                window_ms: 0,
                boost: 2.0
            }
            .multiplier(0),
            1.0
        );
    }
}
