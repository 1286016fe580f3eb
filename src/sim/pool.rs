//! Drawing candidate sets from a catalog, for benchmarks and load tests.

use crate::catalog::Catalog;
use crate::domain::ItemKind;
use rand::Rng;
use rand::seq::IndexedRandom;

/// A catalog's rankable items in a fixed order (sorted ids), so that a seeded
/// draw gives the same candidates whatever the map iteration order.
pub struct ItemPool {
    live_streams: Vec<String>,
    goods: Vec<String>,
}

impl ItemPool {
    pub fn from_catalog(catalog: &Catalog) -> ItemPool {
        let mut live_streams: Vec<String> = catalog
            .streams()
            .filter(|e| e.stream.live)
            .map(|e| e.stream.id.clone())
            .collect();
        let mut goods: Vec<String> = catalog.goods_iter().map(|g| g.id.clone()).collect();
        live_streams.sort_unstable();
        goods.sort_unstable();
        ItemPool {
            live_streams,
            goods,
        }
    }

    /// `n` distinct items: half live streams (as many as there are), the rest goods.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<(&str, ItemKind)> {
        let n_streams = (n / 2).min(self.live_streams.len());
        let mut items: Vec<(&str, ItemKind)> = self
            .live_streams
            .choose_multiple(rng, n_streams)
            .map(|id| (id.as_str(), ItemKind::LiveStream))
            .collect();
        items.extend(
            self.goods
                .choose_multiple(rng, n - n_streams)
                .map(|id| (id.as_str(), ItemKind::Goods)),
        );
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn samples_are_distinct_split_and_seeded() {
        let pool = ItemPool::from_catalog(&Catalog::embedded_demo(128).unwrap());
        let draw = |seed| pool.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), 200);
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        let streams = a.iter().filter(|(_, k)| *k == ItemKind::LiveStream).count();
        assert_eq!(streams, 100);
        let mut ids: Vec<_> = a.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200);
    }
}
