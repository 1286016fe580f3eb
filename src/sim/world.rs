//! The simulated world around a catalog: brands' categories, users with
//! segments, latent preferences, budgets and a follow graph, and daily live
//! schedules. Everything is derived from the seed, so the same seed gives the
//! same world.

use super::params::{Segment, SimParams};
use crate::catalog::Catalog;
use crate::domain::{Millis, StreamerKind};
use foldhash::HashMap;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Dirichlet, LogNormal, Poisson};

/// Goods categories (a brand sells in one).
pub const CATEGORIES: usize = 12;
/// Schedules and the generation loop work on a 10-minute grid, so a chunk
/// of traffic sees one fixed set of live streams.
pub const CHUNK_MS: i64 = 600_000;
/// Local time is UTC+8: hours of the day (prime time) are local.
pub const LOCAL_OFFSET_MS: i64 = 8 * Millis::MS_PER_HOUR;

/// Mixes a seed with indices into an independent stream seed (splitmix64).
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub struct StreamerFacts {
    pub id: String,
    pub followers: u64,
    pub kind: StreamerKind,
    pub brand: Option<u32>,
    /// Reputation, centered: (score - 75) / 25; 0 when unknown.
    pub trust: f64,
    pub created_at: Millis,
    /// Followers^0.5: how strongly retrieval favours the streamer.
    pub popularity: f64,
}

pub struct GoodsFacts {
    pub id: String,
    pub brand: u32,
    pub category: usize,
    pub price: f64,
    /// Product score, centered: (score - 75) / 25; 0 when unknown.
    pub quality: f64,
    pub seller: u32,
}

pub struct StreamFacts {
    pub id: String,
    pub streamer: u32,
    /// Share of the cart in each category.
    pub categories: [f32; CATEGORIES],
    pub main_category: usize,
    pub cart: Vec<u32>,
}

pub struct User {
    pub id: String,
    pub segment: Segment,
    /// Preference over categories (sums to 1).
    pub prefs: [f32; CATEGORIES],
    /// The price (yuan) the user is comfortable with.
    pub budget: f64,
    /// Followed streamers (indices), sorted.
    pub follows: Vec<u32>,
}

impl User {
    pub fn follows(&self, streamer: u32) -> bool {
        self.follows.binary_search(&streamer).is_ok()
    }
}

/// What a stream does on one day: on air in `[start, end)`, or not at all.
pub type Window = Option<(Millis, Millis)>;

/// Everything a simulated world is built from. A simulated log's header
/// carries it, so the world (users, schedules, the response model) can be
/// rebuilt to answer other rankings (interactive replay).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Simulation {
    pub catalog: super::CatalogSpec,
    pub params: SimParams,
}

impl Simulation {
    /// The catalog as at the start of the simulation, and the world.
    pub fn build(&self) -> Result<(Catalog, World), crate::catalog::RecordError> {
        let catalog = super::generate(&self.catalog)?;
        let world = World::build(&catalog, self.params.clone(), self.catalog.as_of);
        Ok((catalog, world))
    }
}

pub struct World {
    pub params: SimParams,
    pub streamers: Vec<StreamerFacts>,
    pub goods: Vec<GoodsFacts>,
    pub streams: Vec<StreamFacts>,
    pub streamer_index: HashMap<String, u32>,
    pub goods_index: HashMap<String, u32>,
    pub stream_index: HashMap<String, u32>,
    pub brand_ids: Vec<String>,
    /// The brand's own account, if it has one.
    pub brand_self: Vec<Option<u32>>,
    /// The brand's own account's stream, if any.
    pub brand_stream: Vec<Option<u32>>,
    /// Each streamer's stream, if any.
    pub stream_of: Vec<Option<u32>>,
    pub goods_by_category: Vec<Vec<u32>>,
    pub goods_by_brand: Vec<Vec<u32>>,
    pub brands_by_category: Vec<Vec<u32>>,
    pub users: Vec<User>,
    /// Local midnight of day 0.
    pub start: Millis,
}

fn centered(score: Option<f64>) -> f64 {
    score.map_or(0.0, |s| (s - 75.0) / 25.0)
}

impl World {
    /// Builds the world for `catalog`; the simulation starts at the local
    /// midnight before `as_of`.
    pub fn build(catalog: &Catalog, params: SimParams, as_of: Millis) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(params.seed, 1, 0));

        // Brands, in id order, each with a category.
        let mut brand_ids: Vec<String> = catalog.goods_iter().map(|g| g.brand_id.clone()).collect();
        brand_ids.extend(catalog.streamers().filter_map(|s| s.brand_id.clone()));
        brand_ids.sort_unstable();
        brand_ids.dedup();
        let brand_index: HashMap<String, u32> = brand_ids
            .iter()
            .enumerate()
            .map(|(i, b)| (b.clone(), i as u32))
            .collect();
        let brand_category: Vec<usize> = brand_ids
            .iter()
            .map(|_| rng.random_range(0..CATEGORIES))
            .collect();

        let mut streamer_list: Vec<_> = catalog.streamers().collect();
        streamer_list.sort_by(|a, b| a.id.cmp(&b.id));
        let streamers: Vec<StreamerFacts> = streamer_list
            .iter()
            .map(|s| StreamerFacts {
                id: s.id.clone(),
                followers: s.followers,
                kind: s.kind,
                brand: s.brand_id.as_ref().map(|b| brand_index[b]),
                trust: centered(s.scores.reputation),
                created_at: s.created_at,
                popularity: (s.followers as f64).sqrt().max(1.0),
            })
            .collect();
        let streamer_index: HashMap<String, u32> = streamers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i as u32))
            .collect();

        let mut goods_list: Vec<_> = catalog.goods_iter().collect();
        goods_list.sort_by(|a, b| a.id.cmp(&b.id));
        let goods: Vec<GoodsFacts> = goods_list
            .iter()
            .map(|g| {
                let brand = brand_index[&g.brand_id];
                GoodsFacts {
                    id: g.id.clone(),
                    brand,
                    category: brand_category[brand as usize],
                    price: g.price,
                    quality: centered(g.product_score),
                    seller: streamer_index[&g.seller_id],
                }
            })
            .collect();
        let goods_index: HashMap<String, u32> = goods
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.clone(), i as u32))
            .collect();

        let mut stream_list: Vec<_> = catalog.streams().map(|e| &e.stream).collect();
        stream_list.sort_by(|a, b| a.id.cmp(&b.id));
        let streams: Vec<StreamFacts> = stream_list
            .iter()
            .map(|s| {
                let cart: Vec<u32> = s.goods_ids.iter().map(|g| goods_index[g]).collect();
                let mut categories = [0f32; CATEGORIES];
                for &g in &cart {
                    categories[goods[g as usize].category] += 1.0 / cart.len() as f32;
                }
                let main_category = (0..CATEGORIES)
                    .max_by(|&a, &b| categories[a].total_cmp(&categories[b]).then(b.cmp(&a)))
                    .unwrap_or(0);
                StreamFacts {
                    id: s.id.clone(),
                    streamer: streamer_index[&s.streamer_id],
                    categories,
                    main_category,
                    cart,
                }
            })
            .collect();
        let stream_index: HashMap<String, u32> = streams
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i as u32))
            .collect();

        let mut brand_self = vec![None; brand_ids.len()];
        for (i, s) in streamers.iter().enumerate() {
            if let (StreamerKind::BrandSelf, Some(b)) = (s.kind, s.brand) {
                brand_self[b as usize] = Some(i as u32);
            }
        }
        let mut brand_stream = vec![None; brand_ids.len()];
        let mut stream_of = vec![None; streamers.len()];
        for (i, s) in streams.iter().enumerate() {
            stream_of[s.streamer as usize] = Some(i as u32);
            if let Some(b) = streamers[s.streamer as usize]
                .brand
                .filter(|_| streamers[s.streamer as usize].kind == StreamerKind::BrandSelf)
            {
                brand_stream[b as usize] = Some(i as u32);
            }
        }
        let mut goods_by_category = vec![Vec::new(); CATEGORIES];
        let mut goods_by_brand = vec![Vec::new(); brand_ids.len()];
        for (i, g) in goods.iter().enumerate() {
            goods_by_category[g.category].push(i as u32);
            goods_by_brand[g.brand as usize].push(i as u32);
        }
        let mut brands_by_category = vec![Vec::new(); CATEGORIES];
        for (b, &c) in brand_category.iter().enumerate() {
            brands_by_category[c].push(b as u32);
        }

        let users = build_users(&params, &streamers, &mut rng);
        let local_day = (as_of.0 + LOCAL_OFFSET_MS).div_euclid(Millis::MS_PER_DAY);
        World {
            params,
            streamers,
            goods,
            streams,
            streamer_index,
            goods_index,
            stream_index,
            brand_ids,
            brand_self,
            brand_stream,
            stream_of,
            goods_by_category,
            goods_by_brand,
            brands_by_category,
            users,
            start: Millis(local_day * Millis::MS_PER_DAY - LOCAL_OFFSET_MS),
        }
    }

    pub fn day_start(&self, day: u32) -> Millis {
        Millis(self.start.0 + day as i64 * Millis::MS_PER_DAY)
    }

    /// The stream's air time on `day`, on the 10-minute grid. Brands' own
    /// streams run long daytime shifts; influencers favour prime time
    /// (18:00-22:00 local), which is what makes the evening candidate mix
    /// shift toward influencers.
    pub fn window(&self, stream: u32, day: u32) -> Window {
        let s = &self.streams[stream as usize];
        let streamer = &self.streamers[s.streamer as usize];
        let mut rng =
            ChaCha8Rng::seed_from_u64(mix(self.params.seed, 2 + stream as u64, day as u64));
        let brand = streamer.kind == StreamerKind::BrandSelf;
        let on_air_prob = if brand { 0.85 } else { 0.5 };
        if !rng.random_bool(on_air_prob) {
            return None;
        }
        let (start_h, hours) = if brand {
            (rng.random_range(8.0..11.0), rng.random_range(8.0..14.0))
        } else if rng.random_bool(0.6) {
            (rng.random_range(18.0..21.5), rng.random_range(1.5..5.0))
        } else {
            (rng.random_range(8.0..22.0), rng.random_range(1.5..5.0))
        };
        let grid = |h: f64| ((h * Millis::MS_PER_HOUR as f64) as i64 / CHUNK_MS) * CHUNK_MS;
        let day0 = self.day_start(day).0;
        let start = day0 + grid(start_h);
        let end = (day0 + grid(start_h + hours)).min(day0 + Millis::MS_PER_DAY);
        // A seller cannot broadcast before it exists.
        let start = start.max(streamer.created_at.0.div_euclid(CHUNK_MS) * CHUNK_MS + CHUNK_MS);
        (start < end).then_some((Millis(start), Millis(end)))
    }

    /// Every stream's air time on `day`.
    pub fn windows(&self, day: u32) -> Vec<Window> {
        (0..self.streams.len() as u32)
            .map(|s| self.window(s, day))
            .collect()
    }

    /// Each stream's live flag in `catalog` (false for streams it lacks).
    pub fn live_flags(&self, catalog: &Catalog) -> Vec<bool> {
        self.streams
            .iter()
            .map(|s| catalog.stream(&s.id).is_some_and(|e| e.stream.live))
            .collect()
    }

    /// The user's session times on `day`, sorted: a Poisson count by segment,
    /// at hours drawn from the daily curve (peaking 19:00-22:00 local).
    pub fn sessions(&self, user: u32, day: u32) -> Vec<Millis> {
        const HOURLY: [f64; 24] = [
            0.5, 0.25, 0.12, 0.1, 0.1, 0.2, 0.5, 0.9, 1.1, 1.0, 1.0, 1.2, 1.6, 1.3, 1.0, 1.0, 1.1,
            1.3, 1.8, 2.4, 2.8, 2.8, 2.2, 1.2,
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.params.seed, 3 + user as u64, day as u64));
        let seg = self.params.segment(self.users[user as usize].segment);
        let n = Poisson::new(seg.sessions_per_day).map_or(0.0, |p| p.sample(&mut rng)) as usize;
        let hours = WeightedIndex::new(HOURLY).expect("positive weights");
        let day0 = self.day_start(day).0;
        let mut times: Vec<Millis> = (0..n)
            .map(|_| {
                let h = hours.sample(&mut rng) as i64;
                Millis(day0 + h * Millis::MS_PER_HOUR + rng.random_range(0..Millis::MS_PER_HOUR))
            })
            .collect();
        times.sort_unstable();
        times
    }

    /// The brand whose own account `streamer` is, if it is one.
    pub fn own_brand(&self, streamer: u32) -> Option<u32> {
        let s = &self.streamers[streamer as usize];
        s.brand.filter(|_| s.kind == StreamerKind::BrandSelf)
    }

    /// Which brands take part in the flow: each with probability `share`,
    /// by a hash of the seed and the brand, so participants can be compared
    /// with brands that are not (and the choice precedes any traffic).
    pub fn participants(&self, share: f64) -> Vec<bool> {
        (0..self.brand_ids.len() as u64)
            .map(|b| {
                ((mix(self.params.seed, 7 << 40 | b, 0) >> 11) as f64 / (1u64 << 53) as f64) < share
            })
            .collect()
    }

    /// How much the user likes an item, relative to an indifferent user (1.0).
    pub fn affinity_goods(&self, user: &User, goods: u32) -> f64 {
        f64::from(user.prefs[self.goods[goods as usize].category]) * CATEGORIES as f64
    }

    pub fn affinity_stream(&self, user: &User, stream: u32) -> f64 {
        let cats = &self.streams[stream as usize].categories;
        cats.iter()
            .zip(&user.prefs)
            .map(|(c, p)| f64::from(c * p))
            .sum::<f64>()
            * CATEGORIES as f64
    }
}

fn build_users(params: &SimParams, streamers: &[StreamerFacts], rng: &mut ChaCha8Rng) -> Vec<User> {
    let prefs_dist =
        Dirichlet::new([params.preference_concentration; CATEGORIES]).expect("valid alpha");
    let shares = Segment::ALL.map(|s| params.segment(s).share);
    let segments = WeightedIndex::new(shares).expect("positive shares");
    // Follows go to popular streamers more often (preferential attachment).
    let follow_pick = WeightedIndex::new(streamers.iter().map(|s| s.popularity)).ok();
    (0..params.users)
        .map(|i| {
            let segment = Segment::ALL[segments.sample(rng)];
            let seg = params.segment(segment);
            let p: [f64; CATEGORIES] = prefs_dist.sample(rng);
            let prefs = p.map(|v| v as f32);
            let budget = LogNormal::new(seg.budget_yuan.ln(), 0.6)
                .map_or(seg.budget_yuan, |d| d.sample(rng));
            let mut follows: Vec<u32> = match &follow_pick {
                Some(pick) => (0..seg.follows).map(|_| pick.sample(rng) as u32).collect(),
                None => Vec::new(),
            };
            follows.sort_unstable();
            follows.dedup();
            User {
                id: format!("u{i:07}"),
                segment,
                prefs,
                budget,
                follows,
            }
        })
        .collect()
}

/// Picks a category by the user's preference.
pub fn pick_category(user: &User, rng: &mut impl Rng) -> usize {
    let mut x: f32 = rng.random();
    for (c, p) in user.prefs.iter().enumerate() {
        if x < *p {
            return c;
        }
        x -= p;
    }
    CATEGORIES - 1
}
