//! How a shard of the affinity store is written into a snapshot, and read
//! back from every layout an earlier build wrote.

use super::{Affinity, Secs, Shard};

/// How entries are laid out in a snapshot blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Layout {
    /// Before the holdout: 30 bytes, no arm or outcomes (read as treated,
    /// outcomes 0).
    V1,
    /// 39 bytes: V1's, then the arm (u8) and the two outcomes (f32 bits).
    /// Read with nothing seen: attribution restarts from the next seen
    /// impression.
    V2,
    /// 43 bytes: V2's, then the seen time (u32). Read with no taste.
    V3,
    /// 49 bytes: V3's, then the taste (f32 bits) and its requests (u16).
    #[default]
    V4,
}

impl Layout {
    fn entry_bytes(self) -> usize {
        match self {
            Layout::V1 => 30,
            Layout::V2 => 39,
            Layout::V3 => 43,
            Layout::V4 => 49,
        }
    }
}

/// A shard as bytes: per user, the id's length (u16) and bytes, the entry
/// count (u16), then each entry's fields in declaration order, little-endian
/// (brand, sources, weight bits, updated, shown, window start: u32; window
/// count: u16; holdout: u8; own and all GMV: f32 bits; seen: u32; taste:
/// f32 bits; requests: u16), [`Layout::V4`]. A
/// fixed layout encodes 10M entries in well under a second, where a generic
/// serializer took seconds, and the snapshot holds ingestion while it runs.
pub(super) fn encode_shard(shard: &Shard) -> Vec<u8> {
    let mut out = Vec::with_capacity(shard.len() * (24 + 2 * Layout::V4.entry_bytes()));
    for (user, entries) in shard {
        // Ids are at most `limits.max_id_bytes` (<= 4096, checked by the
        // config); entries at most `max_brands_per_user` (<= 256).
        out.extend_from_slice(&(user.len() as u16).to_le_bytes());
        out.extend_from_slice(user.as_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for a in entries.iter() {
            for word in [
                a.brand,
                a.sources[0],
                a.sources[1],
                a.weight.to_bits(),
                a.updated.0,
                a.shown.0,
                a.window_start.0,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&a.window_count.to_le_bytes());
            out.push(match (a.unit, a.holdout) {
                (true, false) => 0,
                (true, true) => 1,
                // Outside the experiment is always treated.
                (false, _) => 2,
            });
            out.extend_from_slice(&a.own_gmv.to_bits().to_le_bytes());
            out.extend_from_slice(&a.all_gmv.to_bits().to_le_bytes());
            out.extend_from_slice(&a.seen.0.to_le_bytes());
            out.extend_from_slice(&a.taste.to_bits().to_le_bytes());
            out.extend_from_slice(&a.requests.to_le_bytes());
        }
    }
    out
}

/// Reads a blob made by [`encode_shard`] (or in `layout`), handing each
/// user to `put`.
pub(super) fn decode_shard(
    mut b: &[u8],
    layout: Layout,
    mut put: impl FnMut(&str, Box<[Affinity]>),
) -> Result<(), String> {
    fn take<'b>(b: &mut &'b [u8], n: usize) -> Result<&'b [u8], String> {
        if b.len() < n {
            return Err(format!("cut short: {n} bytes wanted, {} left", b.len()));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    while !b.is_empty() {
        let u16_at = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]) as usize;
        let len = u16_at(take(&mut b, 2)?);
        let user = std::str::from_utf8(take(&mut b, len)?).map_err(|e| e.to_string())?;
        let count = u16_at(take(&mut b, 2)?);
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let e = take(&mut b, layout.entry_bytes())?;
            let word = |at: usize| u32::from_le_bytes(e[at..at + 4].try_into().expect("4 bytes"));
            // Before the holdout, no entry was a unit (its outcomes would
            // start mid-way); V2 counted every entry as one.
            let (unit, holdout, own_gmv, all_gmv) = match (layout, e.get(30)) {
                (Layout::V1, _) => (false, false, 0.0, 0.0),
                (_, Some(&flag @ (0 | 1))) | (Layout::V3 | Layout::V4, Some(&flag @ 2)) => (
                    flag != 2,
                    flag == 1,
                    f32::from_bits(word(31)),
                    f32::from_bits(word(35)),
                ),
                (_, flag) => return Err(format!("holdout flag {flag:?} is not an arm")),
            };
            entries.push(Affinity {
                brand: word(0),
                sources: [word(4), word(8)],
                weight: f32::from_bits(word(12)),
                updated: Secs(word(16)),
                shown: Secs(word(20)),
                seen: Secs(if layout >= Layout::V3 { word(39) } else { 0 }),
                window_start: Secs(word(24)),
                window_count: u16::from_le_bytes([e[28], e[29]]),
                holdout,
                unit,
                own_gmv,
                all_gmv,
                taste: if layout == Layout::V4 {
                    f32::from_bits(word(43))
                } else {
                    0.0
                },
                requests: if layout == Layout::V4 {
                    u16::from_le_bytes([e[47], e[48]])
                } else {
                    0
                },
            });
        }
        put(user, entries.into_boxed_slice());
    }
    Ok(())
}
