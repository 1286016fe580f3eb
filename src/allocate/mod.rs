//! Allocation: filling a page's slots from scored candidates under fairness
//! quotas. This module is pure: scores, tiers and streamers in, slot order
//! out.
//!
//! Today's quotas are per request:
//! - **tier floors** ([`floors`]): in every prefix of the page, each tier
//!   holds at least its minimum number of slots when it has candidates to
//!   fill them;
//! - **a per-streamer cap**: at most `n` items of one streamer on a page.
//!
//! The page is filled greedily by score, except when a floor forces the
//! slot. Forcing uses earliest-deadline-first: before each slot, for every
//! later prefix `D` it counts the tier items still owed by `D`; if they would
//! take every slot up to `D`, this slot goes to the owing tier whose deadline
//! comes first (its best remaining candidate). EDF is optimal for unit jobs
//! with deadlines, so whenever the floors can be met together, they are.

pub mod concentration;
pub mod exposure;
pub mod floors;
mod numbering;
mod quotas;
pub mod reference;
mod topk;

pub use exposure::{Control, ControllerView, ExposureParams, ExposureState, Served};
pub use floors::{Floors, MTable, Rounding};
pub use quotas::{PositionWeights, QuotaParams};
pub use topk::top_k;

use crate::domain::Tier;
use numbering::Numbering;
pub use numbering::WordTable;

/// One candidate, as allocation sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item<'a> {
    pub score: f64,
    pub eligible: bool,
    pub tier: Tier,
    /// Who the exposure is credited to; `None` counts as a streamer of its own.
    pub streamer: Option<&'a str>,
}

/// A filled slot: the candidate index, whether a floor put it there (it
/// would not have been the best remaining candidate otherwise), and whether
/// within-tier spreading chose it over a higher-scored candidate of its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub index: usize,
    pub by_floor: bool,
    pub lifted: bool,
}

/// Fills up to `slots` slots. `max_per_streamer` of 0 means no cap.
///
/// Equal, slot for slot, to [`reference::allocate`], at a cost that grows
/// with the candidates only by a pass over them: each tier is ordered lazily
/// (a selection of the best few, then a sort of those; more only if the cap
/// skips past them), streamers are numbered once so the cap counts in
/// vectors, and the floors' deadline scan allocates nothing.
pub fn allocate(
    items: &[Item],
    slots: usize,
    table: &MTable,
    max_per_streamer: u32,
) -> Vec<Placement> {
    let streamers = Streamers::number(items, max_per_streamer);
    allocate_numbered(items, slots, table, max_per_streamer, &streamers)
}

/// The candidates' streamers numbered densely, for the per-page cap; an
/// unknown streamer is its own. Without a cap nobody counts them, so they
/// are not numbered. One numbering serves every pass over the same items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streamers {
    of: Vec<u32>,
    count: usize,
}

impl Streamers {
    /// Numbers the streamers by their ids' bytes.
    pub fn number(items: &[Item], max_per_streamer: u32) -> Streamers {
        Streamers::number_interned(items, max_per_streamer, |_| None)
    }

    /// Numbers the streamers by `interned(i)` where it is `Some`: a value
    /// the caller gives every item of one streamer alike and no item of
    /// another (the catalog record's address), compared as a word instead
    /// of hashing the id's bytes. Where it is `None` (a streamer the
    /// catalog does not know) the id's bytes decide; a streamer must not
    /// be known one way on some items and the other way on others.
    pub fn number_interned(
        items: &[Item],
        max_per_streamer: u32,
        interned: impl Fn(usize) -> Option<usize>,
    ) -> Streamers {
        if max_per_streamer == 0 {
            return Streamers::default();
        }
        let mut numbering = Numbering::new(items.len());
        let of = items
            .iter()
            .enumerate()
            .map(|(i, it)| numbering.number(interned(i), it.streamer))
            .collect();
        numbering.finish(of)
    }
}

/// [`allocate`] with the streamers already numbered (by
/// [`Streamers::number`] on the same items and cap).
pub fn allocate_numbered(
    items: &[Item],
    slots: usize,
    table: &MTable,
    max_per_streamer: u32,
    numbered: &Streamers,
) -> Vec<Placement> {
    let queues = Ranked::tiers(items, |i| items[i].eligible.then_some(items[i].score));
    fill(queues, slots, table, max_per_streamer, numbered)
}

/// Fills the page from each tier's queue of eligible candidates, keyed by
/// what the page is ordered by: the greedy, EDF-forced fill of [`allocate`].
fn fill(
    mut queues: [Ranked; 3],
    slots: usize,
    table: &MTable,
    max_per_streamer: u32,
    numbered: &Streamers,
) -> Vec<Placement> {
    let capped = max_per_streamer > 0;
    let cap = if capped { max_per_streamer } else { u32::MAX };
    let (streamer, streamers) = (&numbered.of, numbered.count);
    let group = |i: usize| if capped { streamer[i] as usize } else { 0 };

    // How many of each tier can be placed at all, given the cap (tiers in
    // order, as a streamer's items are counted once across them): the
    // floors never ask for more. The order inside a tier does not matter.
    let mut available = [0usize; 3];
    if capped {
        let mut per_streamer = vec![0u32; streamers];
        for (t, q) in queues.iter().enumerate() {
            // Counted without a branch: whether a streamer is full is as
            // good as random from one candidate to the next.
            let mut placeable = 0;
            for e in &q.entries {
                let n = &mut per_streamer[streamer[e.index] as usize];
                let fits = u32::from(*n < cap);
                *n += fits;
                placeable += fits as usize;
            }
            available[t] = placeable;
        }
    } else {
        available = queues.each_ref().map(|q| q.entries.len());
    }
    let need =
        |t: usize, prefix: usize| (table.min(Tier::ALL[t], prefix) as usize).min(available[t]);
    let k = slots.min(available.iter().sum());
    for q in &mut queues {
        q.chunk = k.max(MIN_CHUNK);
    }

    let mut heads = [0usize; 3];
    let mut on_page = vec![0u32; if capped { streamers } else { 1 }];
    let mut counts = [0usize; 3];
    let mut page = Vec::with_capacity(k);
    for j in 1..=k {
        // Skip candidates whose streamer is full; each head ends ordered.
        for t in 0..3 {
            while let Some(e) = queues[t].get(heads[t]) {
                if on_page[group(e.index)] < cap {
                    break;
                }
                heads[t] += 1;
            }
        }
        let head = |t: usize| queues[t].entries.get(heads[t]).copied();
        // The best head: the least entry (highest score, then first).
        let organic = (0..3)
            .filter_map(|t| head(t).map(|e| (e, t)))
            .min()
            .map(|(e, t)| (t, e.index));
        let Some(organic) = organic else { break };

        // The earliest prefix whose owed items would fill every slot up to
        // it, as a set of owing tiers.
        let forced = (j..=k).find_map(|d| {
            let mut owing = 0u8;
            let mut demand = 0;
            for (t, &placed) in counts.iter().enumerate() {
                let owed = need(t, d).saturating_sub(placed);
                if owed > 0 {
                    owing |= 1 << t;
                    demand += owed;
                }
            }
            (demand > d - j).then_some(owing)
        });
        let tier = match forced {
            Some(owing) => (0..3)
                .filter(|&t| owing & (1 << t) != 0 && head(t).is_some())
                // Earliest own deadline first; on a tie the smaller tier
                // (small before mid before top), whose items are scarcer.
                .min_by_key(|&t| {
                    (
                        (j..=k).find(|&d| need(t, d) > counts[t]).unwrap_or(k),
                        usize::MAX - t,
                    )
                })
                .unwrap_or(organic.0),
            None => organic.0,
        };
        let index = head(tier).map_or(organic.1, |e| e.index);
        heads[tier] += 1;
        counts[tier] += 1;
        on_page[group(index)] += 1;
        page.push(Placement {
            index,
            by_floor: index != organic.1,
            lifted: false,
        });
    }
    page
}

/// Refills each tier's slots of `page` with that tier's eligible
/// candidates in `order` (higher first; ties: candidate order), under the
/// same per-streamer cap. Which slots each tier holds is kept, so each
/// tier's exposure is exactly the page's, and so are the floors. A slot
/// whose new item scores below the one it replaces is marked `lifted`.
///
/// A streamer's items share its tier, so the cap leaves each tier as many
/// candidates as the page took from it; should a streamer have items in two
/// tiers and one run short, the page is returned as it was.
pub fn within_tiers(
    items: &[Item],
    order: &[f64],
    page: &[Placement],
    max_per_streamer: u32,
) -> Vec<Placement> {
    let streamers = Streamers::number(items, max_per_streamer);
    within_tiers_numbered(items, order, page, max_per_streamer, &streamers)
}

/// [`within_tiers`] with the streamers already numbered.
pub fn within_tiers_numbered(
    items: &[Item],
    order: &[f64],
    page: &[Placement],
    max_per_streamer: u32,
    numbered: &Streamers,
) -> Vec<Placement> {
    let queues = Ranked::tiers(items, |i| items[i].eligible.then_some(order[i]));
    let tier = |i: usize| items[i].tier.index();
    let lower = |new: usize, old: usize| items[new].score < items[old].score;
    refill(queues, page, tier, lower, max_per_streamer, numbered)
}

/// [`within_tiers`] from each tier's queue of eligible candidates keyed by
/// the new order; `lower(new, old)`: whether candidate `new` scores below
/// `old`, the one whose slot it takes.
fn refill(
    mut queues: [Ranked; 3],
    page: &[Placement],
    tier: impl Fn(usize) -> usize,
    lower: impl Fn(usize, usize) -> bool,
    max_per_streamer: u32,
    numbered: &Streamers,
) -> Vec<Placement> {
    let capped = max_per_streamer > 0;
    let (streamer, streamers) = (&numbered.of, numbered.count);
    let mut wanted = [0usize; 3];
    for p in page {
        wanted[tier(p.index)] += 1;
    }
    for (q, &n) in queues.iter_mut().zip(&wanted) {
        q.chunk = n.max(MIN_CHUNK);
    }
    let mut on_page = vec![0u32; streamers];
    let mut heads = [0usize; 3];
    let mut refilled = Vec::with_capacity(page.len());
    for p in page {
        let t = tier(p.index);
        let index = loop {
            let Some(Entry { index: i, .. }) = queues[t].get(heads[t]) else {
                return page.to_vec();
            };
            heads[t] += 1;
            if !capped || on_page[streamer[i] as usize] < max_per_streamer {
                break i;
            }
        };
        if capped {
            on_page[streamer[index] as usize] += 1;
        }
        refilled.push(Placement {
            index,
            by_floor: p.by_floor,
            lifted: p.lifted || lower(index, p.index),
        });
    }
    refilled
}

/// The least a tier orders at a time.
const MIN_CHUNK: usize = 8;

/// A candidate in a tier's queue, ordered as the page takes them: its key
/// as an integer whose ascending order is the key's descending
/// [`f64::total_cmp`] order, then its index. Comparing two is an integer
/// comparison, with no load from the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    rank: u64,
    index: usize,
}

impl Entry {
    fn new(key: f64, index: usize) -> Entry {
        // total_cmp's order of the bits: negative values flipped below the
        // positive ones, as signed integers; then made unsigned and reversed.
        let bits = key.to_bits() as i64;
        let ordered = bits ^ (((bits >> 63) as u64) >> 1) as i64;
        Entry {
            rank: !((ordered as u64) ^ (1 << 63)),
            index,
        }
    }
}

/// One tier's candidates, best first (ties: candidate order), put in order
/// only as far as the page reads: `entries[..sorted]` is final, the rest is
/// unordered and below it.
#[derive(Default)]
struct Ranked {
    entries: Vec<Entry>,
    sorted: usize,
    /// How many to order at the next extension (doubles each time).
    chunk: usize,
}

impl Ranked {
    /// Each tier's candidates with a key (`None`: not queued), in one pass.
    fn tiers(items: &[Item], key: impl Fn(usize) -> Option<f64>) -> [Ranked; 3] {
        let mut queues: [Ranked; 3] = Default::default();
        for q in &mut queues {
            q.entries.reserve(items.len());
        }
        for (i, it) in items.iter().enumerate() {
            if let Some(k) = key(i) {
                queues[it.tier.index()].entries.push(Entry::new(k, i));
            }
        }
        queues
    }

    /// Two queues for each tier from one pass, for a page filled by one key
    /// and refilled by another: `queued` gives, for each candidate queued,
    /// its index, tier and both keys; at most `n` of them.
    fn tiers_twice(
        n: usize,
        queued: impl Iterator<Item = (usize, Tier, f64, f64)>,
    ) -> ([Ranked; 3], [Ranked; 3]) {
        let mut first: [Ranked; 3] = Default::default();
        let mut second: [Ranked; 3] = Default::default();
        for q in first.iter_mut().chain(&mut second) {
            q.entries.reserve(n);
        }
        for (i, tier, a, b) in queued {
            let t = tier.index();
            first[t].entries.push(Entry::new(a, i));
            second[t].entries.push(Entry::new(b, i));
        }
        (first, second)
    }

    /// The `pos`-th best, ordering more of the tier if needed.
    fn get(&mut self, pos: usize) -> Option<Entry> {
        if pos >= self.sorted && self.sorted < self.entries.len() {
            let want = self.chunk.max(pos + 1 - self.sorted);
            self.chunk = self.chunk.saturating_mul(2);
            let rest = &mut self.entries[self.sorted..];
            if want < rest.len() {
                rest.select_nth_unstable(want - 1);
                rest[..want].sort_unstable();
                self.sorted += want;
            } else {
                rest.sort_unstable();
                self.sorted = self.entries.len();
            }
        }
        self.entries.get(pos).copied()
    }
}

#[cfg(test)]
mod tests;
