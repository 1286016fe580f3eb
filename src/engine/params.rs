//! Everything a ranking depends on besides the model and the catalog: the
//! engine's part of the configuration, each piece owned by the module that
//! uses it. `config` builds it from TOML; the engine never reads a file.

use super::gate::GateParams;
use super::limits::Limits;
use super::score::ScoringParams;
use crate::allocate::QuotaParams;
use crate::chuanliu::FlowParams;
use crate::domain::TierThresholds;

#[derive(Debug, Clone, PartialEq)]
pub struct EngineParams {
    /// Names the config these came from; every ranking carries it.
    pub version: String,
    pub tiers: TierThresholds,
    pub limits: Limits,
    pub scoring: ScoringParams,
    pub gates: GateParams,
    pub quotas: QuotaParams,
    /// The distribution-to-self-broadcast flow.
    pub chuanliu: FlowParams,
}
