//! `[chuanliu]`: the distribution-to-self-broadcast flow, as written and as
//! validated into [`FlowParams`].

use super::check::{Invalid, in_range, invalid};
use crate::chuanliu::{AffinityParams, FlowParams, Pacing, RewardParams, SceneFlow, SceneMode};
use crate::domain::Scene;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawChuanliu {
    pub enabled: bool,
    pub enroll_all_brands: bool,
    pub max_per_page: u64,
    pub frequency_cap: u64,
    pub frequency_window_hours: f64,
    pub attribution_window_hours: f64,
    pub holdout_share: f64,
    pub sweep_interval_seconds: f64,
    pub affinity: RawAffinity,
    pub budget: RawBudget,
    pub reward: RawReward,
    pub scenes: BTreeMap<String, RawFlowScene>,
}

impl Default for RawChuanliu {
    fn default() -> Self {
        let scene = |mode, boost| RawFlowScene {
            mode,
            boost,
            relevance: DEFAULT_RELEVANCE,
            taste: DEFAULT_TASTE,
        };
        RawChuanliu {
            enabled: true,
            enroll_all_brands: false,
            max_per_page: 1,
            frequency_cap: 3,
            frequency_window_hours: 24.0,
            attribution_window_hours: 24.0,
            holdout_share: 0.0,
            sweep_interval_seconds: 60.0,
            affinity: RawAffinity::default(),
            budget: RawBudget::default(),
            reward: RawReward::default(),
            scenes: BTreeMap::from([
                ("recommend".into(), scene(RawMode::Inject, 2.0)),
                ("mall".into(), scene(RawMode::Inject, 2.0)),
                ("search".into(), scene(RawMode::Boost, 1.5)),
            ]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    Off,
    Boost,
    Inject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlowScene {
    pub mode: RawMode,
    #[serde(default = "one")]
    pub boost: f64,
    #[serde(default = "default_relevance")]
    pub relevance: f64,
    #[serde(default = "default_taste")]
    pub taste: f64,
}

fn one() -> f64 {
    1.0
}

/// Measured in the simulator's warm world (docs/chuanliu.md, "Effect in
/// the simulator").
const DEFAULT_RELEVANCE: f64 = 1.0;
const DEFAULT_TASTE: f64 = 4.0;

fn default_relevance() -> f64 {
    DEFAULT_RELEVANCE
}

fn default_taste() -> f64 {
    DEFAULT_TASTE
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAffinity {
    pub half_life_hours: f64,
    pub ttl_hours: f64,
    pub max_brands_per_user: u64,
    pub min_weight: f64,
}

impl Default for RawAffinity {
    fn default() -> Self {
        RawAffinity {
            half_life_hours: 168.0,
            ttl_hours: 336.0,
            max_brands_per_user: 8,
            min_weight: 0.25,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBudget {
    pub daily_impressions: u64,
    pub rollover: bool,
    pub day_starts_at_utc_hour: u64,
    pub hourly_weights: Vec<f64>,
    pub follow_demand_days: f64,
}

impl Default for RawBudget {
    fn default() -> Self {
        RawBudget {
            daily_impressions: 1_000_000,
            rollover: true,
            day_starts_at_utc_hour: 16,
            hourly_weights: Vec::new(),
            follow_demand_days: 3.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawReward {
    pub per_impression: f64,
    pub per_conversion: f64,
    pub half_life_hours: f64,
    pub cap: f64,
}

impl Default for RawReward {
    fn default() -> Self {
        RawReward {
            per_impression: 0.002,
            per_conversion: 0.05,
            half_life_hours: 24.0,
            cap: 0.3,
        }
    }
}

const HOUR_S: f64 = 3600.0;

fn hours(key: &str, value: f64, min: f64, max: f64) -> Result<f64, Invalid> {
    in_range(key, value, min, max).map(|h| h * HOUR_S)
}

pub fn validate(raw: RawChuanliu) -> Result<FlowParams, Invalid> {
    let mut scenes = [SceneFlow {
        mode: SceneMode::Off,
        boost: 1.0,
        relevance: 0.0,
        taste: 0.0,
    }; Scene::ALL.len()];
    for (name, s) in &raw.scenes {
        let scene = Scene::from_name(name).ok_or_else(|| {
            invalid(
                &format!("chuanliu.scenes.{name}"),
                "unknown scene; expected one of recommend, follow, mall, search, shop",
            )
        })?;
        scenes[scene.index()] = SceneFlow {
            mode: match s.mode {
                RawMode::Off => SceneMode::Off,
                RawMode::Boost => SceneMode::Boost,
                RawMode::Inject => SceneMode::Inject,
            },
            boost: in_range(
                &format!("chuanliu.scenes.{name}.boost"),
                s.boost,
                1.0,
                100.0,
            )?,
            relevance: in_range(
                &format!("chuanliu.scenes.{name}.relevance"),
                s.relevance,
                0.0,
                100.0,
            )?,
            taste: in_range(
                &format!("chuanliu.scenes.{name}.taste"),
                s.taste,
                0.0,
                100.0,
            )?,
        };
    }
    let a = &raw.affinity;
    let affinity = AffinityParams {
        half_life_s: hours(
            "chuanliu.affinity.half_life_hours",
            a.half_life_hours,
            0.01,
            8760.0,
        )?,
        ttl_s: hours("chuanliu.affinity.ttl_hours", a.ttl_hours, 0.01, 8760.0)?,
        max_brands_per_user: in_range(
            "chuanliu.affinity.max_brands_per_user",
            a.max_brands_per_user,
            1,
            256,
        )? as usize,
        min_weight: in_range("chuanliu.affinity.min_weight", a.min_weight, 0.0, 1.0)?,
    };
    let b = &raw.budget;
    let start_hour = in_range(
        "chuanliu.budget.day_starts_at_utc_hour",
        b.day_starts_at_utc_hour,
        0,
        23,
    )?;
    let weights = if b.hourly_weights.is_empty() {
        vec![1.0; 24]
    } else {
        b.hourly_weights.clone()
    };
    let follow_demand_days = in_range(
        "chuanliu.budget.follow_demand_days",
        b.follow_demand_days,
        0.0,
        365.0,
    )?;
    let pacing = Pacing::new(&weights, start_hour as i64 * 3_600_000, b.rollover)
        .map_err(|reason| invalid("chuanliu.budget.hourly_weights", reason))?
        .following_demand(follow_demand_days);
    let r = &raw.reward;
    let reward = RewardParams {
        per_impression: in_range(
            "chuanliu.reward.per_impression",
            r.per_impression,
            0.0,
            10.0,
        )?,
        per_conversion: in_range(
            "chuanliu.reward.per_conversion",
            r.per_conversion,
            0.0,
            10.0,
        )?,
        half_life_s: hours(
            "chuanliu.reward.half_life_hours",
            r.half_life_hours,
            0.01,
            8760.0,
        )?,
        cap: in_range("chuanliu.reward.cap", r.cap, 0.0, 10.0)?,
    };
    let window = |key: &str, h: f64| hours(key, h, 0.0, 8760.0).map(|s| s as u32);
    Ok(FlowParams {
        enabled: raw.enabled,
        enroll_all_brands: raw.enroll_all_brands,
        scenes,
        max_per_page: in_range("chuanliu.max_per_page", raw.max_per_page, 0, 100)? as usize,
        affinity,
        daily_impressions: in_range(
            "chuanliu.budget.daily_impressions",
            b.daily_impressions,
            0,
            1_000_000_000_000,
        )?,
        pacing,
        frequency_cap: in_range("chuanliu.frequency_cap", raw.frequency_cap, 0, 10_000)? as u16,
        frequency_window_s: window(
            "chuanliu.frequency_window_hours",
            raw.frequency_window_hours,
        )?,
        attribution_window_s: window(
            "chuanliu.attribution_window_hours",
            raw.attribution_window_hours,
        )?,
        holdout_share: in_range("chuanliu.holdout_share", raw.holdout_share, 0.0, 0.5)?,
        reward,
        sweep_interval: std::time::Duration::from_secs_f64(in_range(
            "chuanliu.sweep_interval_seconds",
            raw.sweep_interval_seconds,
            1.0,
            86_400.0,
        )?),
    })
}
