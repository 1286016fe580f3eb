//! Configuration: one TOML file, parsed into raw serde structs ([`raw`]) and
//! then validated into [`Config`], the only form the rest of the crate sees.
//!
//! A bad file is refused as a whole with the file, the key and the reason
//! ([`ConfigError`]); nothing is half-applied. `config/default.toml` is
//! embedded in the binary and documents every key.

mod cluster;
mod experiments;
mod flow;
mod traffic_log;

pub use cluster::ClusterConfig;
pub use experiments::{Experiments, MAX_VARIANTS, Variant};
pub use traffic_log::TrafficLogConfig;
mod changes;
mod check;
mod limits;
mod quotas;
mod raw;
mod scoring;
mod server;
mod summary;
mod whole;

use check::{Invalid, in_range, invalid};
pub use server::ServerConfig;

pub use changes::{Change, changes};

/// The keys read once, at start: a reload that changes one succeeds for
/// everything else and names it as needing a restart, with what it sets
/// there. The one list of them.
pub const RESTART_ONLY: &[(&str, &str)] = &[
    ("server.listen", "the gRPC address"),
    ("server.max_message_bytes", "the message size limit"),
    ("server.drain_grace_seconds", "the shutdown drain"),
    ("server.watch_config_seconds", "the config watcher"),
    ("server.metrics_listen", "the metrics address"),
    ("server.metrics_refresh_seconds", "the metrics refresh"),
    // Live state (upserts, stream status): reloading the catalog from a
    // directory would drop what callers sent since.
    ("catalog.dir", "the catalog"),
    ("events.dir", "the event log"),
    ("traffic_log.dir", "the traffic log"),
    ("traffic_log.rotate_megabytes", "the traffic log"),
    ("traffic_log.rotate_minutes", "the traffic log"),
    ("traffic_log.queue_records", "the traffic log"),
    // Which event store the flow is fed from is chosen at start.
    ("cluster.nats_urls", "the event stream"),
    ("cluster.stream", "the event stream"),
    ("cluster.stream_replicas", "the event stream"),
    ("cluster.partitions", "the event stream"),
    ("cluster.replica_id", "the event stream"),
    ("cluster.ack_timeout_seconds", "the event stream"),
    ("cluster.redis_urls", "the shared budgets"),
    ("cluster.lease_impressions", "the shared budgets"),
    ("cluster.cap_hold_timeout_ms", "the shared caps"),
    // Their checks apply at once; the size a Rank is refused at on its
    // length alone is set at start.
    ("limits.max_candidates", "the Rank message size limit"),
    ("limits.max_id_bytes", "the Rank message size limit"),
];

/// The changed keys among [`RESTART_ONLY`], in key order.
pub fn restart_required(changes: &[Change]) -> Vec<&'static str> {
    changes
        .iter()
        .filter_map(|c| {
            RESTART_ONLY
                .iter()
                .find(|(k, _)| *k == c.key)
                .map(|(k, _)| *k)
        })
        .collect()
}

use crate::catalog::CatalogSource;
use crate::domain::TierThresholds;
use crate::engine::EngineParams;
use crate::model::ModelSource;
use raw::RawConfig;
use sha2::{Digest, Sha256};
use std::fmt::Display;
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
    /// What ranking depends on: tiers, limits, scoring, gates, quotas and
    /// the flow.
    pub engine: EngineParams,
    /// Where acknowledged events are kept (the write-ahead log).
    pub events_dir: PathBuf,
    /// How often the flow state is snapshotted (and the log truncated);
    /// `None`: only on shutdown.
    pub snapshot_interval: Option<Duration>,
    /// How long an event id is remembered to refuse duplicates.
    pub dedupe_window_ms: i64,
    /// The server's own traffic log.
    pub traffic_log: TrafficLogConfig,
    /// The fleet this server is a replica of; `None`: one process.
    pub cluster: Option<ClusterConfig>,
    /// Arms of experiments and the variants they make; variant 0 is
    /// `engine`.
    pub experiments: Experiments,
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
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| invalid("(syntax)", one_line(&e)))?;
        let experiments = table.remove("experiments");
        let version = content_version(text);
        let build = |table: toml::Table| from_table(table, base_dir, &version, origin);
        let mut config =
            build(table.clone()).map_err(|Invalid { key, reason }| invalid(&key, reason))?;
        config.experiments = experiments::validate(experiments, &table, &config.engine, |t| {
            build(t).map(|c| c.engine)
        })
        .map_err(|Invalid { key, reason }| invalid(&key, reason))?;
        config.text = text.to_string();
        Ok(config)
    }
}

/// A parsed file's table (without its experiments) validated into a config.
fn from_table(
    table: toml::Table,
    base_dir: Option<&Path>,
    version: &str,
    origin: &str,
) -> Result<Config, Invalid> {
    let raw: RawConfig =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            Invalid {
                key,
                reason: e.into_inner().message().to_string(),
            }
        })?;
    validate(raw, base_dir, version.to_string(), origin)
}

/// The version a config text gets: the first 12 hex digits of its SHA-256.
pub fn content_version(text: &str) -> String {
    hex_prefix(&Sha256::digest(text.as_bytes()), 6)
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
        cluster,
    } = raw;
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        match base_dir {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        }
    };

    let catalog = match catalog.dir.trim() {
        "" => CatalogSource::Embedded,
        dir => CatalogSource::Dir(resolve(dir)),
    };
    let model = match model.path.trim() {
        "" => ModelSource::Embedded,
        path => ModelSource::File(resolve(path)),
    };
    let server = server::validate(server)?;
    let tiers = TierThresholds::new(tiers.top_min_followers, tiers.mid_min_followers)
        .map_err(|reason| invalid("tiers.mid_min_followers", reason))?;
    let limits = limits::validate(limits)?;
    let scoring = scoring::validate_scoring(scoring)?;
    let gates = scoring::validate_gates(gates)?;
    let quotas = quotas::validate(quotas, &limits)?;
    let engine = EngineParams {
        version: version.clone(),
        tiers,
        limits,
        scoring,
        gates,
        quotas,
        chuanliu: flow::validate(chuanliu)?,
    };
    Ok(Config {
        version: version.clone(),
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
        traffic_log: traffic_log::validate(traffic_log, resolve)?,
        cluster: cluster::validate(cluster)?,
        server,
        catalog,
        model,
        experiments: Experiments::none(&engine),
        engine,
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
    use crate::domain::Scene;
    use crate::engine::ScoreSource;

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
        assert_eq!(shipped.engine.tiers, empty.engine.tiers);
        assert_eq!(shipped.engine.limits, empty.engine.limits);
        assert_eq!(shipped.engine.scoring, empty.engine.scoring);
        assert_eq!(shipped.engine.gates, empty.engine.gates);
        assert_eq!(shipped.engine.quotas, empty.engine.quotas);
        assert_eq!(shipped.engine.chuanliu, empty.engine.chuanliu);
        assert_eq!(shipped.traffic_log, empty.traffic_log);
        assert_eq!(shipped.cluster, None);
        assert_eq!(empty.cluster, None);
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
        assert_eq!(
            format!("{:?}", shipped.server),
            format!("{:?}", empty.server)
        );
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
        assert_eq!(
            key_of("[chuanliu.budget]\nfollow_demand_days = -1.0"),
            "chuanliu.budget.follow_demand_days"
        );
        assert_eq!(
            key_of("[cluster]\nnats_urls = [\"nats://h:port\"]\nredis_urls = [\"redis://h:1\"]"),
            "cluster.nats_urls"
        );
        assert_eq!(
            key_of("[cluster]\nnats_urls = [\"nats://h:4222\"]"),
            "cluster.redis_urls"
        );
        assert_eq!(
            key_of("[cluster]\nnats_urls = [\"nats://h:4222\"]\nredis_urls = [\"h:6379\"]"),
            "cluster.redis_urls"
        );
        assert_eq!(
            key_of(
                "[cluster]\nnats_urls = [\"h:4222\"]\nredis_urls = [\"redis://h\"]\nstream = \"a.b\""
            ),
            "cluster.stream"
        );
        assert_eq!(
            key_of(
                "[cluster]\nnats_urls = [\"h:4222\"]\nredis_urls = [\"redis://h\"]\nlease_impressions = 0"
            ),
            "cluster.lease_impressions"
        );
        assert_eq!(key_of("[limits\n"), "(syntax)");
        assert_eq!(key_of("[quotas]\nscenes = [\"feed\"]"), "quotas.scenes");
        assert_eq!(
            key_of("[quotas.targets]\nenabled = true\ntop = 0.6\nmid = 0.5"),
            "quotas.targets"
        );
        assert_eq!(
            key_of("[quotas.targets]\nmax_price = -0.5"),
            "quotas.targets.max_price"
        );
        // Keys whose meaning changed are refused, naming what replaced them.
        assert_eq!(
            key_of("[quotas.targets]\nmax_multiplier = 4.0"),
            "quotas.targets.max_multiplier"
        );
        assert_eq!(
            key_of("[quotas.spreading]\nhalf_life_seconds = 3600.0"),
            "quotas.spreading.half_life_seconds"
        );
        assert_eq!(
            key_of("[quotas.spreading]\nscale = 1.0"),
            "quotas.spreading.scale"
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
        assert_eq!(c.engine.scoring.source(Scene::Mall), ScoreSource::Model);
        assert_eq!(
            c.engine.scoring.source(Scene::Follow),
            ScoreSource::Blend {
                upstream_weight: 0.9
            }
        );
        assert_eq!(
            c.engine.scoring.source(Scene::Recommend),
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
        let d = parse("").unwrap().engine.quotas.position_weights;
        assert_eq!(d.weight(0), 1.0);
        assert!((d.weight(1) - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert!((d.weight(6) - 1.0 / 3.0).abs() < 1e-12);
        let t = parse("[quotas]\nposition_weights = [1.0, 0.5, 0.25]")
            .unwrap()
            .engine
            .quotas
            .position_weights;
        assert_eq!((t.weight(0), t.weight(2), t.weight(10)), (1.0, 0.25, 0.25));
        assert_eq!(
            key_of("[quotas]\nposition_weights = [1.0, 0.0]"),
            "quotas.position_weights"
        );
    }
}
