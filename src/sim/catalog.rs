//! A synthetic catalog of realistic shape, deterministic by seed: brands with
//! self-broadcast accounts and goods, influencers who distribute those goods,
//! a heavy-tailed follower distribution, and streams with carts.
//!
//! Calibration (docs and `../shared` domain figures): log10(followers) of
//! influencers is normal with mean 4.81 and sd 0.87, which puts about 40% of
//! creators in the mid tier (100k..5M) and about 1.5% in the top tier (>= 5M)
//! under the default thresholds; goods prices are log-normal around 80 yuan
//! (tens to thousands of yuan, clamped to 5..=30,000).

use crate::catalog::{Catalog, Goods, QualityScores, RecordError, Stream, Streamer};
use crate::domain::{Millis, StreamerKind};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};

/// What to generate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CatalogSpec {
    pub seed: u64,
    /// Total streamer accounts, brand self-broadcast accounts included.
    pub streamers: usize,
    /// Share of accounts that are brands' own (each brand has one).
    pub brand_share: f64,
    /// Mean goods per brand (uniform in 0.2x ..= 1.8x).
    pub goods_per_brand: usize,
    /// Share of streams on air at `as_of`.
    pub live_share: f64,
    /// The catalog's "now": ages (cold start) are relative to it.
    pub as_of: Millis,
    /// New sellers arriving over time: this share of accounts is created
    /// during the `arrival_days` after `as_of` (0 days: none).
    pub arrival_share: f64,
    pub arrival_days: f64,
}

impl Default for CatalogSpec {
    /// The shipped demo catalog (config/demo/catalog) is this spec.
    fn default() -> Self {
        CatalogSpec {
            seed: 7,
            streamers: 3000,
            brand_share: 0.1,
            goods_per_brand: 120,
            live_share: 0.35,
            // 2026-11-20T00:00:00Z
            as_of: Millis(1_795_132_800_000),
            arrival_share: 0.03,
            arrival_days: 0.0,
        }
    }
}

fn clamp_score(v: f64) -> f64 {
    (v.clamp(0.0, 100.0) * 10.0).round() / 10.0
}

/// Quality scores; a share of accounts have none yet (new or unrated).
fn scores(rng: &mut ChaCha8Rng, rated: bool) -> QualityScores {
    if !rated {
        return QualityScores::default();
    }
    let n = |mean: f64, sd: f64, rng: &mut ChaCha8Rng| {
        clamp_score(Normal::new(mean, sd).unwrap().sample(rng))
    };
    QualityScores {
        product: Some(n(78.0, 9.0, rng)),
        shop_experience: Some(n(78.0, 10.0, rng)),
        reputation: Some(n(80.0, 8.0, rng)),
    }
}

/// When the account started: most are years old, about 6% are inside the
/// default 30-day cold-start window, and with `arrival_days` some arrive
/// after `as_of`.
fn created_at(rng: &mut ChaCha8Rng, spec: &CatalogSpec) -> Millis {
    let as_of = spec.as_of;
    // Draws only when arrivals are on, so a catalog without them is unchanged.
    if spec.arrival_days > 0.0 && rng.random_bool(spec.arrival_share) {
        let days = rng.random_range(0.0..spec.arrival_days);
        return Millis(as_of.0 + (days * Millis::MS_PER_DAY as f64) as i64);
    }
    let days = if rng.random_bool(0.06) {
        rng.random_range(0.0..30.0)
    } else {
        30.0 + rand_distr::Exp::new(1.0 / 600.0).unwrap().sample(rng)
    };
    Millis(as_of.0 - (days * Millis::MS_PER_DAY as f64) as i64)
}

/// Generates the catalog. Same spec, same catalog, on every platform.
pub fn generate(spec: &CatalogSpec) -> Result<Catalog, RecordError> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n_brands = ((spec.streamers as f64 * spec.brand_share).round() as usize).max(1);
    let log_followers_influencer = Normal::new(4.81, 0.87).unwrap();
    let log_followers_brand = Normal::new(5.0, 0.8).unwrap();
    let price = LogNormal::new(80f64.ln(), 1.1).unwrap();

    let mut streamers = Vec::with_capacity(spec.streamers);
    for i in 0..spec.streamers {
        let is_brand = i < n_brands;
        let log_f: f64 = if is_brand {
            log_followers_brand.sample(&mut rng)
        } else {
            log_followers_influencer.sample(&mut rng)
        };
        let rated = rng.random_bool(0.9);
        streamers.push(Streamer {
            id: format!("s{i:05}"),
            followers: 10f64.powf(log_f.clamp(1.0, 8.2)).round() as u64,
            kind: if is_brand {
                StreamerKind::BrandSelf
            } else {
                StreamerKind::Influencer
            },
            brand_id: is_brand.then(|| format!("b{i:04}")),
            scores: scores(&mut rng, rated),
            created_at: created_at(&mut rng, spec),
        });
    }

    let mut goods = Vec::new();
    let mut goods_by_brand: Vec<Vec<usize>> = vec![Vec::new(); n_brands];
    for (b, brand_goods) in goods_by_brand.iter_mut().enumerate() {
        let lo = (spec.goods_per_brand / 5).max(1);
        let hi = (spec.goods_per_brand * 9 / 5).max(lo + 1);
        for _ in 0..rng.random_range(lo..=hi) {
            brand_goods.push(goods.len());
            goods.push(Goods {
                id: format!("g{:06}", goods.len()),
                brand_id: format!("b{b:04}"),
                price: (price.sample(&mut rng).clamp(5.0, 30_000.0) * 10.0).round() / 10.0,
                product_score: rng
                    .random_bool(0.95)
                    .then(|| clamp_score(Normal::new(78.0, 10.0).unwrap().sample(&mut rng))),
                seller_id: format!("s{b:05}"),
            });
        }
    }

    let mut streams = Vec::with_capacity(spec.streamers);
    for (i, s) in streamers.iter().enumerate() {
        let cart: Vec<usize> = if i < n_brands {
            // A brand's own stream sells its own goods.
            let own = &goods_by_brand[i];
            let n = rng.random_range(5..=30).min(own.len());
            own.choose_multiple(&mut rng, n).copied().collect()
        } else {
            // An influencer distributes goods of one to four brands.
            let mut cart = Vec::new();
            for _ in 0..rng.random_range(1..=4) {
                let brand = &goods_by_brand[rng.random_range(0..n_brands)];
                let n = rng.random_range(2..=10).min(brand.len());
                cart.extend(brand.choose_multiple(&mut rng, n).copied());
            }
            cart.sort_unstable();
            cart.dedup();
            cart
        };
        streams.push(Stream {
            id: format!("live-{}", s.id),
            streamer_id: s.id.clone(),
            live: rng.random_bool(spec.live_share),
            goods_ids: cart.into_iter().map(|g| goods[g].id.clone()).collect(),
        });
    }

    let mut catalog = Catalog::new();
    let max_id = 128;
    catalog.upsert_streamers(streamers, max_id)?;
    catalog.upsert_goods(goods, max_id)?;
    catalog.upsert_streams(streams, max_id)?;
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    //! Rules checked: deterministic by seed; the tier mix and price range hold
    //! the documented calibration; the shipped demo is exactly the default spec.
    use super::*;
    use crate::domain::TierThresholds;

    #[test]
    fn same_seed_same_catalog() {
        let spec = CatalogSpec {
            streamers: 300,
            ..CatalogSpec::default()
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        generate(&spec).unwrap().write_dir(a.path()).unwrap();
        generate(&spec).unwrap().write_dir(b.path()).unwrap();
        for f in ["streamers.jsonl", "goods.jsonl", "streams.jsonl"] {
            assert_eq!(
                std::fs::read(a.path().join(f)).unwrap(),
                std::fs::read(b.path().join(f)).unwrap()
            );
        }
    }

    #[test]
    fn tier_mix_and_prices_are_calibrated() {
        let c = generate(&CatalogSpec::default()).unwrap();
        let stats = c.stats(&TierThresholds::new(5_000_000, 100_000).unwrap());
        let n = stats.streamers as f64;
        let share = |t: usize| stats.per_tier[t] as f64 / n;
        assert!((0.005..0.04).contains(&share(0)), "top share {}", share(0));
        assert!((0.33..0.48).contains(&share(1)), "mid share {}", share(1));
        assert!((0.5..0.65).contains(&share(2)), "small share {}", share(2));
        let prices: Vec<f64> = c.goods_iter().map(|g| g.price).collect();
        assert!(prices.len() > 20_000, "tens of thousands of goods");
        assert!(prices.iter().any(|&p| p < 30.0) && prices.iter().any(|&p| p > 1000.0));
        let live = stats.live_streams as f64 / stats.streams as f64;
        assert!((0.3..0.4).contains(&live), "live share {live}");
    }

    #[test]
    fn shipped_demo_is_the_default_spec() {
        let generated = generate(&CatalogSpec::default()).unwrap();
        let shipped = Catalog::embedded_demo(128).unwrap();
        assert_eq!(
            generated.stats(&TierThresholds::new(5_000_000, 100_000).unwrap()),
            shipped.stats(&TierThresholds::new(5_000_000, 100_000).unwrap())
        );
        for s in generated.streamers() {
            assert_eq!(
                shipped.streamer(&s.id),
                Some(s),
                "regenerate with `fairflow simulate`"
            );
        }
        for g in generated.goods_iter() {
            assert_eq!(shipped.goods(&g.id), Some(g));
        }
    }
}
