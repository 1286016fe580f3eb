//! The in-memory catalog candidates are resolved against: streamers, goods
//! and streams, with referential integrity (a stream's streamer and cart goods,
//! a goods item's seller, must exist).
//!
//! Writes are batch upserts that validate the whole batch before applying
//! any of it, so a bad record never leaves the catalog half-updated. The
//! server wraps a `Catalog` in a lock; the engine only reads it.

mod load;
mod records;
mod sales;

pub use load::{CatalogError, DEMO_ORIGIN};
pub use records::{Goods, QualityScores, Stream, Streamer};

use crate::domain::{FieldError, Magnitude, StreamerKind, Tier, TierThresholds};
use compact_str::CompactString;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::path::PathBuf;

/// A record in an upsert batch that was refused: its index in the batch and
/// what was wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("record {index}: {error}")]
pub struct RecordError {
    pub index: usize,
    pub error: FieldError,
}

/// How many records an upsert wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCount {
    pub upserted: u32,
    pub created: u32,
}

/// A stream plus what the ranker derives from its cart.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub stream: Stream,
    /// Mean price of the goods on the cart: the order value of a stream
    /// impression. `None` for an empty cart. Kept current when the stream or
    /// any of its goods is upserted, so ranking never walks a cart.
    order_value: Option<Magnitude>,
    /// How many goods the cart holds.
    cart: Magnitude,
    /// The streamer's place in the catalog's streamer list.
    streamer: StreamerRef,
}

impl StreamEntry {
    pub fn order_value(&self) -> Option<Magnitude> {
        self.order_value
    }

    pub fn cart(&self) -> Magnitude {
        self.cart
    }
}

/// A goods record as ranking reads it. With its key this is one 64-byte
/// bucket of the goods map, so a probe reads one cache line: over a
/// catalog of tens of thousands of goods the probe's miss was the largest
/// single cost of ranking distinct requests (a fifth of a replay), and the
/// whole record beside the key took three lines. The record itself, which
/// ranking does not read, is boxed.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodsEntry {
    price: Magnitude,
    product_score: PackedScore,
    seller: StreamerRef,
    brand: BrandRef,
    goods: Box<Goods>,
}

impl GoodsEntry {
    pub fn goods(&self) -> &Goods {
        &self.goods
    }

    pub fn price(&self) -> Magnitude {
        self.price
    }

    pub fn product_score(&self) -> Option<f64> {
        self.product_score.get()
    }
}

/// An optional quality score in one word: NaN for none. A stored score is
/// validated into [0, 100] first, so no score is NaN.
#[derive(Debug, Clone, Copy)]
struct PackedScore(f64);

impl PackedScore {
    fn new(score: Option<f64>) -> PackedScore {
        PackedScore(score.unwrap_or(f64::NAN))
    }

    fn get(self) -> Option<f64> {
        (!self.0.is_nan()).then_some(self.0)
    }
}

impl PartialEq for PackedScore {
    fn eq(&self, other: &PackedScore) -> bool {
        self.get() == other.get()
    }
}

/// A brand's place in the catalog's brand list: goods name their brand by
/// it, so the brand's id is read from a short, cached list rather than from
/// each goods record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BrandRef(u32);

/// A streamer record and its follower count as a [`Magnitude`].
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    streamer: Streamer,
    followers: Magnitude,
}

impl Listed {
    fn new(streamer: Streamer) -> Listed {
        Listed {
            followers: Magnitude::new(streamer.followers as f64),
            streamer,
        }
    }

    pub fn streamer(&self) -> &Streamer {
        &self.streamer
    }

    pub fn followers(&self) -> Magnitude {
        self.followers
    }
}

/// A streamer's place in the catalog's streamer list. Streamers are never
/// removed, so a place stays valid; goods and streams keep their
/// streamer's, and resolving a candidate takes one hash probe (the item's)
/// instead of a second one on the streamer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamerRef(u32);

/// Counts for `GetCatalogStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatalogStats {
    pub streamers: u64,
    pub streams: u64,
    pub live_streams: u64,
    pub goods: u64,
    pub per_tier: [u64; 3],
    pub brand_self_streamers: u64,
}

/// Where the catalog is loaded from at start.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogSource {
    /// The demo catalog compiled into the binary.
    Embedded,
    /// A directory with streamers.jsonl, goods.jsonl and streams.jsonl.
    Dir(PathBuf),
}

#[derive(Debug, Default, Clone)]
pub struct Catalog {
    // Keys are inline strings: the demo's ids (and most real ones) fit in 24
    // bytes, so a lookup touches the bucket and the record, not a third
    // allocation for the key.
    streamer_index: HashMap<CompactString, StreamerRef>,
    /// In the order they were first upserted; found through `streamer_index`.
    streamer_list: Vec<Listed>,
    goods: HashMap<CompactString, GoodsEntry>,
    streams: HashMap<CompactString, StreamEntry>,
    /// Every brand goods have named, in the order first named; found
    /// through `brand_index`. Never shrinks (brands are few).
    brand_list: Vec<CompactString>,
    brand_index: HashMap<CompactString, BrandRef>,
    /// goods id -> ids of the streams whose cart holds it; keeps
    /// `StreamEntry::order_value` current when a price changes.
    streams_by_goods: HashMap<CompactString, Vec<CompactString>>,
    /// brand id -> ids of the streams of the brand's own (self-broadcast)
    /// accounts: the flow looks a brand's live stream up on every `Rank`
    /// that carries one.
    self_streams: HashMap<CompactString, Vec<CompactString>>,
}

/// Checks a whole batch before any of it is applied: ids unique within the
/// batch (which copy should win would be ambiguous, and the caller almost
/// certainly made a mistake), then `check` on each record.
fn check_batch<T>(
    batch: &[T],
    id: impl Fn(&T) -> &str,
    check: impl Fn(&T) -> Result<(), FieldError>,
) -> Result<(), RecordError> {
    let mut seen = HashMap::with_capacity(batch.len());
    for (index, record) in batch.iter().enumerate() {
        let rid = id(record);
        if let Some(first) = seen.insert(rid, index) {
            return Err(RecordError {
                index,
                error: FieldError::new(
                    "id",
                    format!("`{rid}` appears twice in the batch (first at {first})"),
                ),
            });
        }
        check(record).map_err(|error| RecordError { index, error })?;
    }
    Ok(())
}

/// A reference to another record must resolve.
fn must_exist<V>(
    map: &HashMap<CompactString, V>,
    field: impl Into<String>,
    id: &str,
    what: &str,
) -> Result<(), FieldError> {
    if map.contains_key(id) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("unknown {what} `{id}`")))
    }
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    pub fn streamer(&self, id: &str) -> Option<&Streamer> {
        self.listed(id).map(Listed::streamer)
    }

    /// A streamer with what ranking derives from its record.
    pub fn listed(&self, id: &str) -> Option<&Listed> {
        self.streamer_index.get(id).map(|&r| self.streamer_at(r))
    }

    fn streamer_at(&self, r: StreamerRef) -> &Listed {
        &self.streamer_list[r.0 as usize]
    }

    /// A goods item and its seller, in one probe (ranking's lookup).
    pub fn goods_and_seller(&self, id: &str) -> Option<(&GoodsEntry, &Listed)> {
        self.goods.get(id).map(|e| (e, self.streamer_at(e.seller)))
    }

    /// The id of the brand of a goods item.
    pub fn brand_of(&self, goods: &GoodsEntry) -> &str {
        &self.brand_list[goods.brand.0 as usize]
    }

    /// A stream and its streamer, in one probe (ranking's lookup).
    pub fn stream_and_streamer(&self, id: &str) -> Option<(&StreamEntry, &Listed)> {
        self.streams
            .get(id)
            .map(|e| (e, self.streamer_at(e.streamer)))
    }

    /// Whether the catalog knows `brand`: goods of it, or an account of its own.
    pub fn knows_brand(&self, brand: &str) -> bool {
        self.self_streams.contains_key(brand)
            || self
                .streamer_list
                .iter()
                .any(|s| s.streamer.brand_id.as_deref() == Some(brand))
            || self.goods.values().any(|e| e.goods.brand_id == brand)
    }

    pub fn goods(&self, id: &str) -> Option<&Goods> {
        self.goods.get(id).map(GoodsEntry::goods)
    }

    pub fn stream(&self, id: &str) -> Option<&StreamEntry> {
        self.streams.get(id)
    }

    /// A live stream of `brand`'s own account, if one is on air.
    pub fn live_self_stream(&self, brand: &str) -> Option<&str> {
        self.self_streams
            .get(brand)?
            .iter()
            .find(|id| self.streams.get(id.as_str()).is_some_and(|e| e.stream.live))
            .map(|id| id.as_str())
    }

    /// The brand whose own account broadcasts `stream`, if it is one.
    pub(super) fn self_brand_of(&self, stream: &Stream) -> Option<&str> {
        self.streamer(&stream.streamer_id)
            .filter(|s| s.kind == StreamerKind::BrandSelf)
            .and_then(|s| s.brand_id.as_deref())
    }

    fn index_self_stream(&mut self, id: &CompactString, old: Option<&Stream>) {
        if let Some(brand) = old
            .and_then(|s| self.self_brand_of(s))
            .map(CompactString::from)
            && let Some(ids) = self.self_streams.get_mut(&brand)
        {
            ids.retain(|s| s != id);
        }
        let brand = self
            .streams
            .get(id.as_str())
            .and_then(|e| self.self_brand_of(&e.stream))
            .map(CompactString::from);
        if let Some(brand) = brand {
            let ids = self.self_streams.entry(brand).or_default();
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }

    /// Rebuilds the brand -> self-broadcast streams index (after a streamer
    /// changed kind or brand: rare, so a full pass is fine).
    fn reindex_self_streams(&mut self) {
        let mut index: HashMap<CompactString, Vec<CompactString>> = HashMap::new();
        for (id, e) in &self.streams {
            if let Some(brand) = self.self_brand_of(&e.stream) {
                index.entry(brand.into()).or_default().push(id.clone());
            }
        }
        for ids in index.values_mut() {
            ids.sort();
        }
        self.self_streams = index;
    }

    pub fn streamers(&self) -> impl Iterator<Item = &Streamer> {
        self.streamer_list.iter().map(Listed::streamer)
    }

    pub fn goods_iter(&self) -> impl Iterator<Item = &Goods> {
        self.goods.values().map(GoodsEntry::goods)
    }

    pub fn streams(&self) -> impl Iterator<Item = &StreamEntry> {
        self.streams.values()
    }

    pub fn stats(&self, tiers: &TierThresholds) -> CatalogStats {
        let mut s = CatalogStats {
            streamers: self.streamer_list.len() as u64,
            streams: self.streams.len() as u64,
            live_streams: self.streams.values().filter(|e| e.stream.live).count() as u64,
            goods: self.goods.len() as u64,
            ..CatalogStats::default()
        };
        for st in self.streamers() {
            s.per_tier[tiers.classify(st.followers).index()] += 1;
            if st.kind == StreamerKind::BrandSelf {
                s.brand_self_streamers += 1;
            }
        }
        s
    }

    /// Tier of a known streamer under `tiers`.
    pub fn tier_of(&self, streamer_id: &str, tiers: &TierThresholds) -> Option<Tier> {
        self.streamer(streamer_id)
            .map(|s| tiers.classify(s.followers))
    }

    pub fn upsert_streamers(
        &mut self,
        batch: Vec<Streamer>,
        max_id: usize,
    ) -> Result<UpsertCount, RecordError> {
        check_batch(&batch, |s| &s.id, |s| s.validate(max_id))?;
        let mut count = UpsertCount::default();
        let mut owner_changed = false;
        for s in batch {
            count.upserted += 1;
            match self.streamer_index.get(s.id.as_str()) {
                Some(&r) => {
                    let old = &mut self.streamer_list[r.0 as usize];
                    let was = &old.streamer;
                    owner_changed |= (was.kind, &was.brand_id) != (s.kind, &s.brand_id);
                    *old = Listed::new(s);
                }
                None => {
                    count.created += 1;
                    let r = StreamerRef(self.streamer_list.len() as u32);
                    self.streamer_index.insert(s.id.as_str().into(), r);
                    self.streamer_list.push(Listed::new(s));
                }
            }
        }
        if owner_changed {
            self.reindex_self_streams();
        }
        Ok(count)
    }

    pub fn upsert_goods(
        &mut self,
        batch: Vec<Goods>,
        max_id: usize,
    ) -> Result<UpsertCount, RecordError> {
        check_batch(
            &batch,
            |g| &g.id,
            |g| {
                g.validate(max_id)?;
                must_exist(&self.streamer_index, "seller_id", &g.seller_id, "streamer")
            },
        )?;
        let mut count = UpsertCount::default();
        let mut touched_streams = HashSet::new();
        for g in batch {
            count.upserted += 1;
            if let Some(ids) = self.streams_by_goods.get(g.id.as_str()) {
                touched_streams.extend(ids.iter().cloned());
            }
            let entry = GoodsEntry {
                price: Magnitude::new(g.price),
                product_score: PackedScore::new(g.product_score),
                seller: self.streamer_index[g.seller_id.as_str()],
                brand: self.brand(&g.brand_id),
                goods: Box::new(g),
            };
            if self
                .goods
                .insert(entry.goods.id.as_str().into(), entry)
                .is_none()
            {
                count.created += 1;
            }
        }
        for id in touched_streams {
            self.refresh_order_value(&id);
        }
        Ok(count)
    }

    pub fn upsert_streams(
        &mut self,
        batch: Vec<Stream>,
        max_id: usize,
    ) -> Result<UpsertCount, RecordError> {
        check_batch(
            &batch,
            |s| &s.id,
            |s| {
                s.validate(max_id)?;
                must_exist(
                    &self.streamer_index,
                    "streamer_id",
                    &s.streamer_id,
                    "streamer",
                )?;
                s.goods_ids.iter().enumerate().try_for_each(|(i, g)| {
                    must_exist(&self.goods, format!("goods_ids[{i}]"), g, "goods")
                })
            },
        )?;
        let mut count = UpsertCount::default();
        for s in batch {
            count.upserted += 1;
            let id = CompactString::from(s.id.as_str());
            let new_goods = s.goods_ids.clone();
            let entry = StreamEntry {
                streamer: self.streamer_index[s.streamer_id.as_str()],
                stream: s,
                order_value: None,
                cart: Magnitude::new(0.0),
            };
            let old = self.streams.insert(id.clone(), entry);
            match &old {
                Some(old) => self.unindex_cart(&id, &old.stream.goods_ids),
                None => count.created += 1,
            }
            self.index_self_stream(&id, old.as_ref().map(|e| &e.stream));
            for g in new_goods {
                let ids = self.streams_by_goods.entry(g.into()).or_default();
                if !ids.contains(&id) {
                    ids.push(id.clone());
                }
            }
            self.refresh_order_value(&id);
        }
        Ok(count)
    }

    /// Puts a known stream on or off air; returns false for an unknown stream.
    /// (Status changes are frequent and touch nothing else, so they do not go
    /// through a whole-record upsert.)
    pub fn set_live(&mut self, stream_id: &str, live: bool) -> bool {
        match self.streams.get_mut(stream_id) {
            Some(entry) => {
                entry.stream.live = live;
                true
            }
            None => false,
        }
    }

    fn unindex_cart(&mut self, stream_id: &str, goods_ids: &[String]) {
        for g in goods_ids {
            if let Some(ids) = self.streams_by_goods.get_mut(g.as_str()) {
                ids.retain(|s| s != stream_id);
                if ids.is_empty() {
                    self.streams_by_goods.remove(g.as_str());
                }
            }
        }
    }

    /// `name`'s place in the brand list, given one if it has none yet.
    fn brand(&mut self, name: &str) -> BrandRef {
        if let Some(&b) = self.brand_index.get(name) {
            return b;
        }
        let b = BrandRef(self.brand_list.len() as u32);
        self.brand_list.push(name.into());
        self.brand_index.insert(name.into(), b);
        b
    }

    /// Recomputes a stream's order value and cart size from its cart.
    fn refresh_order_value(&mut self, stream_id: &str) {
        let Some(entry) = self.streams.get(stream_id) else {
            return;
        };
        let prices: Vec<f64> = entry
            .stream
            .goods_ids
            .iter()
            .filter_map(|g| self.goods.get(g.as_str()).map(|e| e.goods.price))
            .collect();
        let value = (!prices.is_empty()).then(|| prices.iter().sum::<f64>() / prices.len() as f64);
        if let Some(entry) = self.streams.get_mut(stream_id) {
            entry.order_value = value.map(Magnitude::new);
            entry.cart = Magnitude::new(entry.stream.goods_ids.len() as f64);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
