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
mod quotas;
pub mod reference;
mod topk;

pub use exposure::{Control, ControllerView, ExposureParams, ExposureState, Served};
pub use floors::{Floors, MTable, Rounding};
pub use quotas::{PositionWeights, QuotaParams};
pub use topk::top_k;

use crate::domain::Tier;
use foldhash::{HashMap, HashMapExt};

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
#[derive(Debug, Clone, Default)]
pub struct Streamers {
    of: Vec<u32>,
    count: usize,
}

impl Streamers {
    pub fn number(items: &[Item], max_per_streamer: u32) -> Streamers {
        if max_per_streamer == 0 {
            return Streamers::default();
        }
        let mut ids: HashMap<&str, u32> = HashMap::with_capacity(items.len());
        let mut next = 0u32;
        let of = items
            .iter()
            .map(|it| {
                let fresh = next;
                let id = match it.streamer {
                    Some(s) => *ids.entry(s).or_insert(fresh),
                    None => fresh,
                };
                if id == fresh {
                    next += 1;
                }
                id
            })
            .collect();
        Streamers {
            of,
            count: next as usize,
        }
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
    let capped = max_per_streamer > 0;
    let cap = if capped { max_per_streamer } else { u32::MAX };
    let (streamer, streamers) = (&numbered.of, numbered.count);
    let group = |i: usize| if capped { streamer[i] as usize } else { 0 };

    let score = |i: usize| items[i].score;
    let mut queues: [Ranked; 3] = Default::default();
    for (i, it) in items.iter().enumerate().filter(|(_, it)| it.eligible) {
        queues[it.tier.index()].idx.push(i);
    }
    // How many of each tier can be placed at all, given the cap (tiers in
    // order, as a streamer's items are counted once across them): the
    // floors never ask for more. The order inside a tier does not matter.
    let mut available = [0usize; 3];
    if capped {
        let mut per_streamer = vec![0u32; streamers];
        for (t, q) in queues.iter().enumerate() {
            for &i in &q.idx {
                let n = &mut per_streamer[streamer[i] as usize];
                if *n < cap {
                    *n += 1;
                    available[t] += 1;
                }
            }
        }
    } else {
        available = queues.each_ref().map(|q| q.idx.len());
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
            while let Some(i) = queues[t].get(heads[t], &score) {
                if on_page[group(i)] < cap {
                    break;
                }
                heads[t] += 1;
            }
        }
        let head = |t: usize| queues[t].idx.get(heads[t]).copied();
        let organic = (0..3)
            .filter_map(|t| head(t).map(|i| (t, i)))
            .max_by(|a, b| {
                items[a.1]
                    .score
                    .total_cmp(&items[b.1].score)
                    .then(b.1.cmp(&a.1))
            });
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
        let index = head(tier).unwrap_or(organic.1);
        heads[tier] += 1;
        counts[items[index].tier.index()] += 1;
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
    let capped = max_per_streamer > 0;
    let (streamer, streamers) = (&numbered.of, numbered.count);
    let mut wanted = [0usize; 3];
    for p in page {
        wanted[items[p.index].tier.index()] += 1;
    }
    let mut queues: [Ranked; 3] = Default::default();
    for (i, it) in items.iter().enumerate().filter(|(_, it)| it.eligible) {
        if wanted[it.tier.index()] > 0 {
            queues[it.tier.index()].idx.push(i);
        }
    }
    for (q, &n) in queues.iter_mut().zip(&wanted) {
        q.chunk = n.max(MIN_CHUNK);
    }
    let key = |i: usize| order[i];
    let mut on_page = vec![0u32; streamers];
    let mut heads = [0usize; 3];
    let mut refilled = Vec::with_capacity(page.len());
    for p in page {
        let t = items[p.index].tier.index();
        let index = loop {
            let Some(i) = queues[t].get(heads[t], &key) else {
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
            lifted: p.lifted || items[index].score < items[p.index].score,
        });
    }
    refilled
}

/// The least a tier orders at a time.
const MIN_CHUNK: usize = 8;

/// One tier's eligible candidates, best first (ties: candidate order), put
/// in order only as far as the page reads: `idx[..sorted]` is final, the
/// rest is unordered and below it.
#[derive(Default)]
struct Ranked {
    idx: Vec<usize>,
    sorted: usize,
    /// How many to order at the next extension (doubles each time).
    chunk: usize,
}

impl Ranked {
    /// The `pos`-th best by `key`, ordering more of the tier if needed.
    fn get(&mut self, pos: usize, key: &impl Fn(usize) -> f64) -> Option<usize> {
        if pos >= self.sorted && self.sorted < self.idx.len() {
            let by_score = |&a: &usize, &b: &usize| key(b).total_cmp(&key(a)).then(a.cmp(&b));
            let want = self.chunk.max(pos + 1 - self.sorted);
            self.chunk = self.chunk.saturating_mul(2);
            let rest = &mut self.idx[self.sorted..];
            if want < rest.len() {
                rest.select_nth_unstable_by(want - 1, by_score);
                rest[..want].sort_unstable_by(by_score);
                self.sorted += want;
            } else {
                rest.sort_unstable_by(by_score);
                self.sorted = self.idx.len();
            }
        }
        self.idx.get(pos).copied()
    }
}

#[cfg(test)]
mod tests;
