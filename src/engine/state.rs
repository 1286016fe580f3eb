//! The state ranking learns as it serves: the exposure controllers (one per
//! experiment variant) and the chuanliu flow.

use crate::allocate::ExposureState;
use crate::chuanliu::Flow;
use foldhash::HashMap;
use parking_lot::RwLock;
use std::sync::Arc;

/// What ranking learns as it serves, per server process (or replay shard):
/// the exposure controllers and the chuanliu flow. Outside the [`Engine`],
/// so it carries over config reloads.
#[derive(Default)]
pub struct RankState {
    /// The controller of users in no experiment's arm.
    pub exposure: ExposureState,
    pub flow: Flow,
    /// Each experiment variant's own controller, by its label: arms with
    /// different targets must not steer one controller, and a variant
    /// keeps its controller across reloads that keep its label.
    arms: RwLock<HashMap<String, Arc<ExposureState>>>,
}

impl RankState {
    pub fn new() -> RankState {
        RankState::default()
    }

    /// A state that starts from `flow` (recovered, or a replay's start).
    pub fn with_flow(flow: Flow) -> RankState {
        RankState {
            flow,
            ..RankState::default()
        }
    }

    /// A copy's start: the base controller `exposure` and `flow` (the
    /// simulator's branches; arms start afresh).
    pub fn from_parts(exposure: ExposureState, flow: Flow) -> RankState {
        RankState {
            exposure,
            flow,
            ..RankState::default()
        }
    }

    /// Runs `f` on the controller of the variant labelled `label` (made on
    /// first use); [`BASE`] is `exposure`.
    pub fn with_exposure<R>(&self, label: &str, f: impl FnOnce(&ExposureState) -> R) -> R {
        if label == BASE {
            return f(&self.exposure);
        }
        let known = self.arms.read().get(label).cloned();
        let state = known.unwrap_or_else(|| {
            let mut arms = self.arms.write();
            arms.entry(label.to_string()).or_default().clone()
        });
        f(&state)
    }

    /// The variants with a controller of their own, by label.
    pub fn arm_labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = self.arms.read().keys().cloned().collect();
        labels.sort();
        labels
    }
}

/// The label of users in no experiment's arm.
pub const BASE: &str = "base";
