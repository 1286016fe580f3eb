//! The allocation rules in their direct form, kept as the specification the
//! fast allocator ([`super::allocate`]) is tested against: same inputs, same
//! page, slot for slot.

use super::{Item, MTable, Placement};
use crate::domain::Tier;
use foldhash::{HashMap, HashMapExt};

/// Fills up to `slots` slots. `max_per_streamer` of 0 means no cap.
///
/// Every tier is sorted in full, each slot scans every later prefix, and the
/// per-streamer counts are hash maps: the rules as directly as they can be
/// written, kept as the specification [`super::allocate`] must equal.
pub fn allocate(
    items: &[Item],
    slots: usize,
    table: &MTable,
    max_per_streamer: u32,
) -> Vec<Placement> {
    // Streamers as small integers; an unknown streamer is its own.
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    let streamer: Vec<usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| match it.streamer {
            Some(s) => {
                let next = ids.len() + items.len();
                *ids.entry(s).or_insert(next)
            }
            None => i,
        })
        .collect();
    let cap = if max_per_streamer == 0 {
        u32::MAX
    } else {
        max_per_streamer
    };

    // Per tier, eligible candidates best first (ties: candidate order).
    let mut queues: [Vec<usize>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (i, it) in items.iter().enumerate().filter(|(_, it)| it.eligible) {
        queues[it.tier.index()].push(i);
    }
    for q in &mut queues {
        q.sort_unstable_by(|&a, &b| items[b].score.total_cmp(&items[a].score).then(a.cmp(&b)));
    }
    // How many of each tier can be placed at all, given the cap: the floors
    // never ask for more.
    let mut per_streamer: HashMap<usize, u32> = HashMap::with_capacity(items.len());
    let mut available = [0usize; 3];
    for (t, q) in queues.iter().enumerate() {
        for &i in q {
            let n = per_streamer.entry(streamer[i]).or_insert(0);
            if *n < cap {
                *n += 1;
                available[t] += 1;
            }
        }
    }
    let need =
        |t: usize, prefix: usize| (table.min(Tier::ALL[t], prefix) as usize).min(available[t]);

    let k = slots.min(available.iter().sum());
    let mut heads = [0usize; 3];
    let mut on_page: HashMap<usize, u32> = HashMap::with_capacity(k);
    let mut counts = [0usize; 3];
    let mut page = Vec::with_capacity(k);
    for j in 1..=k {
        // Skip candidates whose streamer is full.
        for t in 0..3 {
            while let Some(&i) = queues[t].get(heads[t]) {
                if on_page.get(&streamer[i]).copied().unwrap_or(0) < cap {
                    break;
                }
                heads[t] += 1;
            }
        }
        let head = |t: usize| queues[t].get(heads[t]).copied();
        let organic = (0..3)
            .filter_map(|t| head(t).map(|i| (t, i)))
            .max_by(|a, b| {
                items[a.1]
                    .score
                    .total_cmp(&items[b.1].score)
                    .then(b.1.cmp(&a.1))
            });
        let Some(organic) = organic else { break };

        // The earliest prefix whose owed items would fill every slot up to it.
        let forced = (j..=k).find_map(|d| {
            let owed: Vec<usize> = (0..3).filter(|&t| need(t, d) > counts[t]).collect();
            let demand: usize = owed.iter().map(|&t| need(t, d) - counts[t]).sum();
            (demand > 0 && demand > d - j).then_some(owed)
        });
        let tier = match forced {
            Some(owed) => owed
                .into_iter()
                .filter(|&t| head(t).is_some())
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
        *on_page.entry(streamer[index]).or_insert(0) += 1;
        page.push(Placement {
            lifted: false,
            index,
            by_floor: index != organic.1,
        });
    }
    page
}
