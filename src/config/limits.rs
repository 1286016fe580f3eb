//! `[limits]`: what one request may carry.

use super::check::{Invalid, in_range};
use super::raw::RawLimits;
use crate::engine::Limits;

pub(super) fn validate(limits: RawLimits) -> Result<Limits, Invalid> {
    Ok(Limits {
        max_slots: in_range("limits.max_slots", limits.max_slots, 1, 1000)? as u32,
        max_candidates: in_range("limits.max_candidates", limits.max_candidates, 1, 100_000)?
            as u32,
        max_id_bytes: in_range("limits.max_id_bytes", limits.max_id_bytes, 8, 4096)? as u32,
    })
}
