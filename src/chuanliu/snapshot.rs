//! The flow's state as a snapshot holds it (written by `crate::snapshot`).

use super::{BrandSnapshot, FlowCounts, HoldoutState, Layout, PacerState, Reward};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Everything in a [`Flow`], as written to a snapshot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FlowSnapshot {
    pub brands: Vec<CompactString>,
    pub streamers: Vec<CompactString>,
    /// The affinity store's shards, each encoded on its own (as bytes:
    /// serde's default would write them one element at a time).
    pub users: Vec<serde_bytes::ByteBuf>,
    pub registry: Vec<BrandSnapshot>,
    pub budget: PacerState,
    pub rewards: Vec<(CompactString, Reward)>,
    pub totals: FlowCounts,
    /// Per interned brand.
    pub holdout: Vec<(u32, HoldoutState)>,
    /// How `users` lays entries out: not written, known from the snapshot
    /// file's version (`snapshot::read`).
    #[serde(skip)]
    pub layout: Layout,
}
