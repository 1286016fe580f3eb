//! The TOML file as written: serde structs whose defaults match
//! `config/default.toml` (a test checks they do). Nothing outside `config`
//! sees these; the engine gets the validated [`super::Config`].

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub catalog: RawCatalog,
    pub model: RawModel,
    pub tiers: RawTiers,
    pub limits: RawLimits,
    pub scoring: RawScoring,
    pub gates: RawGates,
    pub quotas: RawQuotas,
    pub events: RawEvents,
    pub chuanliu: super::flow::RawChuanliu,
    pub traffic_log: super::traffic_log::RawTrafficLog,
    pub cluster: super::cluster::RawCluster,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawEvents {
    pub dir: String,
    pub snapshot_interval_seconds: f64,
    pub dedupe_hours: f64,
}

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents {
            dir: "data/events".into(),
            snapshot_interval_seconds: 300.0,
            dedupe_hours: 168.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    pub max_message_bytes: u64,
    pub drain_grace_seconds: f64,
    pub max_concurrent_requests: u64,
    pub request_timeout_seconds: f64,
    pub watch_config_seconds: f64,
    pub metrics_listen: String,
    pub metrics_refresh_seconds: f64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:50051".into(),
            max_message_bytes: 4 * 1024 * 1024,
            drain_grace_seconds: 10.0,
            max_concurrent_requests: 256,
            request_timeout_seconds: 1.0,
            watch_config_seconds: 1.0,
            metrics_listen: "127.0.0.1:9464".into(),
            metrics_refresh_seconds: 5.0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCatalog {
    pub dir: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawModel {
    pub path: String,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTiers {
    pub top_min_followers: u64,
    pub mid_min_followers: u64,
}

impl Default for RawTiers {
    fn default() -> Self {
        RawTiers {
            top_min_followers: 5_000_000,
            mid_min_followers: 100_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLimits {
    pub max_slots: u64,
    pub max_candidates: u64,
    pub max_id_bytes: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_slots: 100,
            max_candidates: 2000,
            max_id_bytes: 128,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawSource {
    Upstream,
    Model,
    Blend,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawScoring {
    pub source: RawSource,
    pub upstream_weight: f64,
    pub default_order_value: f64,
    pub scenes: BTreeMap<String, RawSceneScoring>,
}

impl Default for RawScoring {
    fn default() -> Self {
        RawScoring {
            source: RawSource::Blend,
            upstream_weight: 0.5,
            default_order_value: 80.0,
            scenes: BTreeMap::from([(
                "search".to_string(),
                RawSceneScoring {
                    source: Some(RawSource::Upstream),
                    upstream_weight: None,
                },
            )]),
        }
    }
}

/// A scene's overrides; an absent key inherits the `[scoring]` value.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSceneScoring {
    pub source: Option<RawSource>,
    pub upstream_weight: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawGates {
    pub reason_threshold: f64,
    pub product: RawCurve,
    pub shop_experience: RawCurve,
    pub reputation: RawCurve,
    pub cold_start: RawColdStart,
}

const QUALITY_CURVE: [[f64; 2]; 5] = [
    [0.0, 0.3],
    [60.0, 0.7],
    [75.0, 1.0],
    [90.0, 1.1],
    [100.0, 1.2],
];
const REPUTATION_CURVE: [[f64; 2]; 5] = [
    [0.0, 0.5],
    [60.0, 0.8],
    [75.0, 1.0],
    [90.0, 1.05],
    [100.0, 1.1],
];

impl Default for RawGates {
    fn default() -> Self {
        RawGates {
            reason_threshold: 0.02,
            product: RawCurve::from(QUALITY_CURVE),
            shop_experience: RawCurve::from(QUALITY_CURVE),
            reputation: RawCurve::from(REPUTATION_CURVE),
            cold_start: RawColdStart::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCurve {
    pub points: Vec<[f64; 2]>,
}

impl<const N: usize> From<[[f64; 2]; N]> for RawCurve {
    fn from(points: [[f64; 2]; N]) -> Self {
        RawCurve {
            points: points.to_vec(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawColdStart {
    pub max_age_days: f64,
    pub boost: f64,
}

impl Default for RawColdStart {
    fn default() -> Self {
        RawColdStart {
            max_age_days: 30.0,
            boost: 1.5,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawQuotas {
    pub scenes: Vec<String>,
    pub max_items_per_streamer: u64,
    pub position_weights: Vec<f64>,
    pub floors: RawFloors,
    pub targets: RawTargets,
    pub spreading: RawSpreading,
}

impl Default for RawQuotas {
    fn default() -> Self {
        RawQuotas {
            scenes: ["recommend", "mall", "search"].map(String::from).to_vec(),
            max_items_per_streamer: 2,
            position_weights: Vec::new(),
            floors: RawFloors::default(),
            targets: RawTargets::default(),
            spreading: RawSpreading::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawFloorPolicy {
    None,
    Proportional,
    Fair,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawRounding {
    Floor,
    Ceil,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFloors {
    pub policy: RawFloorPolicy,
    pub top: f64,
    pub mid: f64,
    pub small: f64,
    pub rounding: RawRounding,
    pub alpha: f64,
}

impl Default for RawFloors {
    fn default() -> Self {
        RawFloors {
            policy: RawFloorPolicy::Fair,
            top: 0.0,
            mid: 0.35,
            small: 0.25,
            rounding: RawRounding::Floor,
            alpha: 0.1,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTargets {
    pub enabled: bool,
    pub top: f64,
    pub mid: f64,
    pub small: f64,
    pub half_life_seconds: f64,
    pub step: f64,
    pub max_price: f64,
    /// Replaced by `max_price`; refused with the reason when set.
    pub max_multiplier: Option<f64>,
}

impl Default for RawTargets {
    fn default() -> Self {
        RawTargets {
            enabled: true,
            top: 0.04,
            mid: 0.50,
            small: 0.46,
            half_life_seconds: 600.0,
            step: 0.15,
            max_price: 2.0,
            max_multiplier: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSpreading {
    pub strength: f64,
    /// Folded into `strength` (the penalty is linear); refused when set.
    pub scale: Option<f64>,
    pub half_life_pages: f64,
    /// Replaced by `half_life_pages`; refused with the reason when set.
    pub half_life_seconds: Option<f64>,
    pub max_streamers: u64,
    pub max_share: f64,
}

impl Default for RawSpreading {
    fn default() -> Self {
        RawSpreading {
            strength: 0.1,
            scale: None,
            half_life_pages: 2000.0,
            half_life_seconds: None,
            max_streamers: 200_000,
            max_share: 0.0,
        }
    }
}
