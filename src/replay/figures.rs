//! What a replay measures for a policy: exposure per tier over time,
//! concentration across streamers, expected GMV, and the chuanliu flow.

use crate::allocate::concentration::{gini, max_gap_pp, shares, top_share};
use crate::catalog::Catalog;
use crate::chuanliu::{HoldoutState, HoldoutStats};
use crate::domain::{ItemKind, Millis, Tier};
use crate::engine::RankQuery;
use crate::sim::PageOutcome;
use foldhash::HashMap;
use serde::Serialize;

const HOUR_MS: i64 = 3_600_000;

/// Dense indices of the catalog's streamers, so exposure is kept in a
/// vector and concentration counts every streamer (zeros included).
pub struct StreamerIndex {
    ids: HashMap<String, usize>,
}

impl StreamerIndex {
    pub fn new(catalog: &Catalog) -> StreamerIndex {
        let mut ids: Vec<&str> = catalog.streamers().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        StreamerIndex {
            ids: ids
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s.to_string(), i))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<usize> {
        self.ids.get(id).copied()
    }
}

/// Adds `from` into `into` streamer by streamer, growing `into` as needed.
pub fn add_exposure(into: &mut Vec<f64>, from: &[f64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0.0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// Adds `exposure` to `item`'s, keyed by kind and id.
fn expose(items: &mut [HashMap<String, f64>; 2], (kind, id): (ItemKind, &str), exposure: f64) {
    let items = &mut items[kind as usize];
    match items.get_mut(id) {
        Some(e) => *e += exposure,
        None => {
            items.insert(id.to_string(), exposure);
        }
    }
}

/// One slot of a page, as measured.
pub struct PageSlot<'a> {
    pub item: (ItemKind, &'a str),
    pub exposure: f64,
    /// `None` for an item the request did not carry (a logged slot the
    /// replay cannot value).
    pub tier: Option<Tier>,
    pub streamer: Option<&'a str>,
    pub expected_value: f64,
    pub flow: bool,
}

/// The figures of one policy over a replay, additive over shards.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub requests: u64,
    pub slots: u64,
    /// Position-weighted exposure per tier (top, mid, small) per UTC hour
    /// since the epoch hour of the first request.
    #[serde(skip)]
    pub hourly: std::collections::BTreeMap<i64, [f64; 3]>,
    /// Position-weighted exposure per catalog streamer.
    #[serde(skip)]
    pub streamer_exposure: Vec<f64>,
    /// Exposure on items whose streamer the catalog does not know.
    pub unknown_streamer_exposure: f64,
    /// Position-weighted exposure per item shown (live streams, goods).
    #[serde(skip)]
    pub item_exposure: [HashMap<String, f64>; 2],
    /// Goods and streams in the catalog: the items concentration is over.
    #[serde(skip)]
    pub catalog_items: usize,
    /// Sum over slots of exposure x expected value (yuan).
    pub expected_gmv: f64,
    pub flow_impressions: u64,
    pub attributed_conversions: u64,
    pub attributed_gmv: f64,
    /// The flow's daily budget summed over shards (replicas).
    pub flow_budget: u64,
    /// The flow's holdout at the end, summed over shards (their users are
    /// disjoint, so their units are too).
    #[serde(skip)]
    pub holdout: HoldoutState,
    /// What simulated users did with the pages (interactive replay).
    pub realized: Option<PageOutcome>,
}

impl Figures {
    pub fn new(streamers: usize, catalog_items: usize) -> Figures {
        Figures {
            streamer_exposure: vec![0.0; streamers],
            catalog_items,
            ..Figures::default()
        }
    }

    /// The Gini of exposure across the catalog's items, zeros included
    /// (and items shown that the catalog does not have).
    pub fn item_gini(&self) -> f64 {
        let mut v: Vec<f64> = self
            .item_exposure
            .iter()
            .flat_map(|m| m.values().copied())
            .collect();
        v.resize(v.len().max(self.catalog_items), 0.0);
        gini(&v)
    }

    pub fn add_page(&mut self, query: &RankQuery, page: &[PageSlot], index: &StreamerIndex) {
        self.requests += 1;
        let hour = query.now.0.div_euclid(HOUR_MS);
        let tiers = self.hourly.entry(hour).or_default();
        for slot in page {
            self.slots += 1;
            if let Some(tier) = slot.tier {
                tiers[tier.index()] += slot.exposure;
            }
            match slot.streamer.and_then(|s| index.get(s)) {
                Some(i) => self.streamer_exposure[i] += slot.exposure,
                None => self.unknown_streamer_exposure += slot.exposure,
            }
            self.expected_gmv += slot.exposure * slot.expected_value;
            self.flow_impressions += u64::from(slot.flow);
            expose(&mut self.item_exposure, slot.item, slot.exposure);
        }
    }

    pub fn merge(&mut self, other: &Figures) {
        self.requests += other.requests;
        self.slots += other.slots;
        for (hour, t) in &other.hourly {
            let mine = self.hourly.entry(*hour).or_default();
            for i in 0..3 {
                mine[i] += t[i];
            }
        }
        add_exposure(&mut self.streamer_exposure, &other.streamer_exposure);
        self.unknown_streamer_exposure += other.unknown_streamer_exposure;
        for kind in [ItemKind::LiveStream, ItemKind::Goods] {
            for (id, &e) in &other.item_exposure[kind as usize] {
                expose(&mut self.item_exposure, (kind, id), e);
            }
        }
        self.catalog_items = self.catalog_items.max(other.catalog_items);
        self.expected_gmv += other.expected_gmv;
        self.flow_impressions += other.flow_impressions;
        self.attributed_conversions += other.attributed_conversions;
        self.attributed_gmv += other.attributed_gmv;
        self.flow_budget += other.flow_budget;
        self.holdout.add(&other.holdout);
        if let Some(o) = other.realized {
            *self.realized.get_or_insert_with(PageOutcome::default) += o;
        }
    }

    /// Adds a simulated user's answer to a page.
    pub fn add_outcome(&mut self, outcome: PageOutcome) {
        *self.realized.get_or_insert_with(PageOutcome::default) += outcome;
    }

    /// Tier shares over the whole replay.
    pub fn tier_shares(&self) -> [f64; 3] {
        let mut total = [0.0; 3];
        for t in self.hourly.values() {
            for i in 0..3 {
                total[i] += t[i];
            }
        }
        shares(total)
    }

    /// The Lorenz curve of exposure across streamers: `points + 1` points
    /// (share of streamers, share of exposure), poorest first.
    pub fn lorenz(&self, points: usize) -> Vec<(f64, f64)> {
        let mut v = self.streamer_exposure.clone();
        v.sort_unstable_by(f64::total_cmp);
        let total: f64 = v.iter().sum();
        let n = v.len();
        let mut cumulative = Vec::with_capacity(n + 1);
        cumulative.push(0.0);
        for x in &v {
            cumulative.push(cumulative.last().copied().unwrap_or(0.0) + x);
        }
        (0..=points)
            .map(|k| {
                let at = (k * n) / points.max(1);
                let y = if total > 0.0 {
                    cumulative[at] / total
                } else {
                    0.0
                };
                (at as f64 / n.max(1) as f64, y)
            })
            .collect()
    }

    pub fn summary(&self, targets: Option<[f64; 3]>) -> Summary {
        Summary {
            requests: self.requests,
            tier_shares: self.tier_shares(),
            targets,
            max_hourly_gap_pp: targets.map(|t| max_gap_pp(self.hourly.values(), t)),
            gini: gini(&self.streamer_exposure),
            item_gini: self.item_gini(),
            top1: top_share(&self.streamer_exposure, 0.01),
            top10: top_share(&self.streamer_exposure, 0.10),
            expected_gmv: self.expected_gmv,
            flow_impressions: self.flow_impressions,
            flow_budget: self.flow_budget,
            attributed_conversions: self.attributed_conversions,
            attributed_gmv: self.attributed_gmv,
            holdout: (self.holdout.holdout.units > 0).then(|| self.holdout.stats()),
            realized: self.realized,
            hourly: self
                .hourly
                .iter()
                .map(|(h, t)| (Millis(h * HOUR_MS), shares(*t)))
                .collect(),
            lorenz: self.lorenz(50),
        }
    }
}

/// The figures as reported (report.json, the table, the charts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub tier_shares: [f64; 3],
    pub targets: Option<[f64; 3]>,
    /// Largest gap between an hour's tier share and its target.
    pub max_hourly_gap_pp: Option<f64>,
    /// Across every catalog streamer, zeros included.
    pub gini: f64,
    /// Across every catalog item (goods and streams), zeros included.
    pub item_gini: f64,
    pub top1: f64,
    pub top10: f64,
    pub expected_gmv: f64,
    pub flow_impressions: u64,
    pub flow_budget: u64,
    pub attributed_conversions: u64,
    pub attributed_gmv: f64,
    /// What the flow's holdout estimates it added (with a holdout share).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutStats>,
    /// Impressions, clicks, purchases and GMV of simulated users answering
    /// the pages (interactive replay only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realized: Option<PageOutcome>,
    /// Tier shares per UTC hour (the hour's start).
    pub hourly: Vec<(Millis, [f64; 3])>,
    /// 51 points of the Lorenz curve.
    pub lorenz: Vec<(f64, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_concentration_counts_the_catalog_items_never_shown() {
        let mut f = Figures::new(0, 4);
        let page = |id| PageSlot {
            item: (ItemKind::Goods, id),
            exposure: 1.0,
            tier: None,
            streamer: None,
            expected_value: 0.0,
            flow: false,
        };
        let q = RankQuery {
            request_id: "r".into(),
            user_id: "u".into(),
            scene: crate::domain::Scene::Mall,
            slots: 1,
            candidates: Vec::new(),
            now: Millis(0),
        };
        f.add_page(
            &q,
            &[page("a")],
            &StreamerIndex {
                ids: HashMap::default(),
            },
        );
        // One of four items has all the exposure.
        assert!((f.item_gini() - 0.75).abs() < 1e-12);
        let mut g = Figures::new(0, 4);
        for id in ["b", "c", "d"] {
            g.add_page(
                &q,
                &[page(id)],
                &StreamerIndex {
                    ids: HashMap::default(),
                },
            );
        }
        f.merge(&g);
        assert_eq!(f.item_gini(), 0.0);
    }

    #[test]
    fn lorenz_runs_from_zero_to_one_below_the_diagonal() {
        let f = Figures {
            streamer_exposure: vec![0.0, 1.0, 1.0, 2.0],
            ..Figures::default()
        };
        let l = f.lorenz(4);
        assert_eq!(l.first(), Some(&(0.0, 0.0)));
        assert_eq!(l.last(), Some(&(1.0, 1.0)));
        assert_eq!(l[2], (0.5, 0.25));
        assert!(l.iter().all(|(x, y)| y <= x));
    }
}
