//! What one request may carry (`[limits]`), and the largest message that
//! fits within it.

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
