//! `[[experiments]]`: config changes tried on a share of users before they
//! go to everyone.
//!
//! An experiment has arms, each an overlay of the base config (any key a
//! reload applies live and that ranking reads per request) and a share of
//! users. A user's arm is decided by a salted hash of (experiment, user id)
//! ([`crate::domain::hash_fraction`]): the same on every replica, after
//! every reload and restart, and in replay; each arm holds its own slice of
//! the hash's range, so ramping one moves no other arm's users (`arm_of`).
//! Experiments are independent layers: a user is in one arm (or none) of
//! each, and ranks under the base config with the overlays of all their
//! arms. Each combination is a [`Variant`],
//! validated whole when the file is read, with its own exposure-controller
//! state (arms with different targets must not share one controller).

use super::RESTART_ONLY;
use super::changes::flatten;
use super::check::{Invalid, invalid};
use crate::domain::{ArmRef, hash_fraction};
use crate::engine::{BASE, EngineParams};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Every combination of arms is validated and gets its own controller and
/// metric label, so their number is bounded.
pub const MAX_VARIANTS: usize = 32;

/// The sections an overlay may set: what ranking reads per request.
const OVERLAY_SECTIONS: &[&str] = &["tiers", "limits", "scoring", "gates", "quotas", "chuanliu"];

/// Flow keys that shape state every arm shares (affinities, the budget,
/// the holdout, attribution): one value for the whole process.
const SHARED_FLOW_KEYS: &[&str] = &[
    "chuanliu.enroll_all_brands",
    "chuanliu.attribution_window_hours",
    "chuanliu.holdout_share",
    "chuanliu.sweep_interval_seconds",
    "chuanliu.affinity",
    "chuanliu.budget",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: String,
    /// Defaults to the name; changing it reshuffles every user.
    #[serde(default)]
    salt: Option<String>,
    arms: Vec<RawArm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArm {
    name: String,
    share: f64,
    #[serde(default)]
    overlay: toml::Table,
}

/// One experiment: its arms and their shares, in order.
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    name: String,
    namespace: Vec<u8>,
    arms: Vec<(String, f64)>,
}

impl Layer {
    /// The arm `user` is in (an index into `arms`), or `None` when the
    /// shares leave them out. Arm `i` of `n` holds the slice
    /// `[i/n, (i+1)/n)` of the hash's range and takes its share from the
    /// slice's start: an arm ramped up or down gains users from, or gives
    /// them back to, the base only, and no other arm's user moves.
    fn arm_of(&self, user: &str) -> Option<usize> {
        let n = self.arms.len() as f64;
        let x = hash_fraction(&self.namespace, user) * n;
        let i = (x as usize).min(self.arms.len() - 1);
        (x - (i as f64) < self.arms[i].1 * n).then_some(i)
    }
}

/// A combination of arms, one (or none) per experiment, and the engine
/// params it ranks under.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// `base` for users in no arm; else the arms, `experiment:arm` joined
    /// by `,` (the metric label and the controller's key).
    pub label: String,
    pub arms: Vec<ArmRef>,
    pub engine: EngineParams,
}

/// The experiments in a config, and every variant they make.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiments {
    layers: Vec<Layer>,
    /// Indexed in mixed radix over the layers (digit 0: no arm, `i + 1`:
    /// arm `i`), so variant 0 is the base config.
    variants: Vec<Variant>,
}

impl Experiments {
    /// No experiments: every user ranks under `base`.
    pub fn none(base: &EngineParams) -> Experiments {
        Experiments {
            layers: Vec::new(),
            variants: vec![Variant {
                label: BASE.into(),
                arms: Vec::new(),
                engine: base.clone(),
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// The index (into [`Experiments::variants`]) of the variant `user`
    /// ranks under.
    pub fn variant_of(&self, user: &str) -> usize {
        let mut index = 0;
        let mut stride = 1;
        for layer in &self.layers {
            index += stride * layer.arm_of(user).map_or(0, |a| a + 1);
            stride *= layer.arms.len() + 1;
        }
        index
    }

    /// Each experiment and its arms' shares, for people:
    /// `tiers: a 25%, b 25%; flow: boost8 50%`.
    pub fn describe(&self) -> String {
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|l| {
                let arms: Vec<String> = l
                    .arms
                    .iter()
                    .map(|(name, share)| format!("{name} {:.0}%", share * 100.0))
                    .collect();
                format!("{}: {}", l.name, arms.join(", "))
            })
            .collect();
        layers.join("; ")
    }

    /// The variant labelled `label`.
    pub fn find(&self, label: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.label == label)
    }
}

/// Validates `[[experiments]]` (`value`, removed from the file's table)
/// against the rest of the file (`base`): every variant's table is `base`
/// with its overlays laid on, built into engine params by `build` (the
/// same validation as the base config's).
pub(super) fn validate(
    value: Option<toml::Value>,
    base: &toml::Table,
    base_engine: &EngineParams,
    build: impl Fn(toml::Table) -> Result<EngineParams, Invalid>,
) -> Result<Experiments, Invalid> {
    let Some(value) = value else {
        return Ok(Experiments::none(base_engine));
    };
    let raw: Vec<RawExperiment> = serde_path_to_error::deserialize(value).map_err(|e| {
        invalid(
            &format!("experiments{}", path_suffix(&e.path().to_string())),
            e.into_inner().message().to_string(),
        )
    })?;
    let mut layers = Vec::new();
    // Per layer, each arm's name and overlay.
    let mut overlays: Vec<Vec<(String, toml::Table)>> = Vec::new();
    // Leaf key -> the experiment that sets it.
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for (i, experiment) in raw.into_iter().enumerate() {
        let at = format!("experiments[{i}]");
        check_name(&format!("{at}.name"), &experiment.name)?;
        if layers.iter().any(|l: &Layer| l.name == experiment.name) {
            return Err(invalid(
                &format!("{at}.name"),
                format!("experiment `{}` is declared twice", experiment.name),
            ));
        }
        let prefix = format!("experiments.{}", experiment.name);
        if experiment.arms.is_empty() {
            return Err(invalid(
                &format!("{prefix}.arms"),
                "an experiment needs at least one arm",
            ));
        }
        let mut arms = Vec::new();
        let mut tables = Vec::new();
        let n = experiment.arms.len();
        let slice = 1.0 / n as f64;
        for arm in experiment.arms {
            let key = format!("{prefix}.arms.{}", arm.name);
            check_name(&key, &arm.name)?;
            if arms.iter().any(|(n, _)| *n == arm.name) {
                return Err(invalid(
                    &key,
                    format!("arm `{}` is declared twice", arm.name),
                ));
            }
            if !(arm.share > 0.0 && arm.share <= 1.0) {
                return Err(invalid(
                    &format!("{key}.share"),
                    format!("{} is outside (0, 1]", arm.share),
                ));
            }
            if arm.share > slice + 1e-9 {
                return Err(invalid(
                    &format!("{key}.share"),
                    format!(
                        "{} is more than 1/{n} of the users: each of the experiment's {n} arms holds its own slice of them, so that one arm can be ramped without moving another's users",
                        arm.share
                    ),
                ));
            }
            for leaf in leaves(&arm.overlay) {
                let at = format!("{key}.overlay.{leaf}");
                check_overlay_key(&at, &leaf)?;
                match owners.get(&leaf) {
                    Some(owner) if *owner != experiment.name => {
                        return Err(invalid(
                            &at,
                            format!(
                                "also set by experiment `{owner}`: experiments are independent layers, so one key belongs to one experiment"
                            ),
                        ));
                    }
                    _ => {
                        owners.insert(leaf, experiment.name.clone());
                    }
                }
            }
            arms.push((arm.name.clone(), arm.share));
            tables.push((arm.name, arm.overlay));
        }
        let salt = experiment.salt.unwrap_or_else(|| experiment.name.clone());
        layers.push(Layer {
            namespace: format!("fairflow.experiment/{salt}/").into_bytes(),
            name: experiment.name,
            arms,
        });
        overlays.push(tables);
    }
    let count: usize = layers.iter().map(|l| l.arms.len() + 1).product();
    if count > MAX_VARIANTS {
        return Err(invalid(
            "experiments",
            format!(
                "{count} combinations of arms (each experiment's arms and no arm, multiplied): at most {MAX_VARIANTS}, each has its own controller and metric label"
            ),
        ));
    }
    let mut variants = Vec::with_capacity(count);
    for index in 0..count {
        let mut table = base.clone();
        let mut arms = Vec::new();
        let mut rest = index;
        for (layer, tables) in layers.iter().zip(&overlays) {
            let digit = rest % (layer.arms.len() + 1);
            rest /= layer.arms.len() + 1;
            if let Some((arm, overlay)) = digit.checked_sub(1).map(|a| &tables[a]) {
                super::changes::merge(&mut table, overlay.clone());
                arms.push(ArmRef {
                    experiment: layer.name.clone(),
                    arm: arm.clone(),
                });
            }
        }
        let label = if arms.is_empty() {
            BASE.to_string()
        } else {
            arms.iter()
                .map(ArmRef::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let engine = if arms.is_empty() {
            base_engine.clone()
        } else {
            build(table).map_err(|Invalid { key, reason }| {
                let under = arms
                    .iter()
                    .map(|a| format!("experiments.{}.arms.{}", a.experiment, a.arm))
                    .collect::<Vec<_>>()
                    .join(" + ");
                invalid(&format!("{under}.overlay.{key}"), reason)
            })?
        };
        variants.push(Variant {
            label,
            arms,
            engine,
        });
    }
    Ok(Experiments { layers, variants })
}

/// `[0].arms[1].share` for a serde path `[0].arms[1].share`; `` for `.`.
fn path_suffix(path: &str) -> String {
    if path == "." {
        String::new()
    } else if path.starts_with('[') {
        path.into()
    } else {
        format!(".{path}")
    }
}

/// Names go into metric labels and log records: short, plain.
fn check_name(key: &str, name: &str) -> Result<(), Invalid> {
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 32 || !name.chars().all(plain) || name == BASE {
        return Err(invalid(
            key,
            format!(
                "`{name}`: a name is 1-32 of a-z, 0-9, `_`, `-` (and not `{BASE}`, the label of users in no arm)"
            ),
        ));
    }
    Ok(())
}

/// The leaf keys an overlay sets, as dotted paths.
fn leaves(overlay: &toml::Table) -> Vec<String> {
    let mut out = BTreeMap::new();
    flatten("", overlay, &mut out);
    out.into_keys().collect()
}

fn check_overlay_key(at: &str, leaf: &str) -> Result<(), Invalid> {
    let section = leaf.split('.').next().unwrap_or_default();
    if let Some((_, what)) = RESTART_ONLY.iter().find(|(k, _)| *k == leaf) {
        return Err(invalid(
            at,
            format!(
                "sets {what}, which is read once at start: an arm may set only keys a reload applies"
            ),
        ));
    }
    if !OVERLAY_SECTIONS.contains(&section) {
        return Err(invalid(
            at,
            format!(
                "an arm may set only what ranking reads per request ({}), not `{section}`",
                OVERLAY_SECTIONS.join(", ")
            ),
        ));
    }
    if let Some(shared) = SHARED_FLOW_KEYS
        .iter()
        .find(|k| leaf == **k || leaf.starts_with(&format!("{k}.")))
    {
        return Err(invalid(
            at,
            format!(
                "`{shared}` shapes the flow's state, which every arm shares: set it in the base config"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
