//! How simulated users respond to a page: the ground truth behind every
//! click and purchase. It answers *any* ranking, so a replay can measure
//! clicks, purchases and GMV under a config, not only exposure.
//!
//! Per page: the user scrolls a random depth (by segment); each seen slot is
//! an impression, examined with probability (1 + position)^-decay; an
//! examined slot is clicked with probability sigmoid(click logit); a click
//! converts with probability sigmoid(buy logit).
//!
//! The draws behind a response are common random numbers: the depth is
//! drawn from a stream of its own per (user, page number), and everything
//! about one item (examined, clicked, which cart goods, bought, when) from
//! a stream per (user, page number, item). Two policies shown to the same
//! user therefore differ only where their pages differ: an item both put
//! on a page at the same position gets the same answer, whatever came
//! before it. (One stream per user would make every draw after the first
//! differing page differ, and comparisons of policies mostly noise.)
//!
//! A purchase through an influencer leaves a brand memory that lifts later
//! clicks and purchases in that brand's own stream or shop (the effect the
//! chuanliu flow exploits); it fades with a half-life. Every impression of
//! an item tires the user of it: a later click on the same item is less
//! likely, until that fades too.

use super::params::ResponseParams;
use super::world::{GoodsFacts, User, World, mix};
use crate::domain::{ItemKind, Millis, StreamerKind, Venue};
use crate::traffic::{Channel, Click, Impression, Purchase, Record};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Brands a user remembers buying through an influencer, at most this many
/// (the oldest is forgotten first).
const FLOW_MEMORY: usize = 16;

/// The fatigue map is first pruned at this many items.
const PRUNE_AT: usize = 256;

/// One user's mutable state: retrieval's randomness, purchase memory and
/// the page count that keys response draws. Users are independent, so
/// states of different users can be advanced in parallel.
#[derive(Debug, Clone)]
pub struct UserState {
    /// Retrieval's and the logging policy's; never a response's.
    rng: ChaCha8Rng,
    /// (brand, last purchase through an influencer).
    flow_brands: Vec<(u32, Millis)>,
    /// Per item key: the fatigue load of its earlier impressions as of the
    /// last one, and when that was.
    tired: HashMap<u64, (f64, Millis)>,
    prune_at: usize,
    seq: u64,
    /// Pages responded to so far.
    pages: u64,
}

impl UserState {
    pub fn new(seed: u64, user: u32) -> UserState {
        UserState {
            rng: ChaCha8Rng::seed_from_u64(mix(seed, 1 << 40 | user as u64, 0)),
            flow_brands: Vec::new(),
            tired: HashMap::new(),
            prune_at: PRUNE_AT,
            seq: 0,
            pages: 0,
        }
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// A fresh id, unique across the simulation: `{prefix}{user}-{n}`.
    pub fn next_id(&mut self, prefix: &str, user: u32) -> String {
        format!("{prefix}{user}-{}", self.next_seq())
    }

    /// The user's next sequence number (ids and log order share it).
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// How strongly the user remembers buying `brand` through an
    /// influencer at `now`: 0 if never or forgotten.
    pub fn memory(&self, brand: u32, now: Millis, params: &ResponseParams) -> f64 {
        self.flow_brands
            .iter()
            .find(|&&(b, _)| b == brand)
            .map_or(0.0, |&(_, t)| params.memory_strength(now.since(t)))
    }

    /// The fatigue load of the user's earlier impressions of the item with
    /// `key` at `now`.
    fn fatigue(&self, key: u64, now: Millis, params: &ResponseParams) -> f64 {
        self.tired.get(&key).map_or(0.0, |&(load, at)| {
            load * params.fatigue_weight(now.since(at))
        })
    }

    /// Counts an impression of the item with `key` at `now`.
    fn tire(&mut self, key: u64, now: Millis, params: &ResponseParams) {
        let load = self.fatigue(key, now, params) + 1.0;
        self.tired.insert(key, (load, now));
        // Items seen long ago barely matter (under 0.05 of an impression,
        // about four half-lives): dropping them keeps the map at about the
        // items of the last few days. Pruning again only once the map has
        // doubled keeps the cost per impression constant.
        if self.tired.len() >= self.prune_at {
            self.tired
                .retain(|_, &mut (l, at)| l * params.fatigue_weight(now.since(at)) >= 0.05);
            self.prune_at = (2 * self.tired.len()).max(PRUNE_AT);
        }
    }

    /// The brands the user remembers at `now` (bought through an influencer
    /// within `memory_ms`): what an oracle router knows.
    pub fn remembered(&self, now: Millis, memory_ms: i64) -> impl Iterator<Item = u32> + '_ {
        self.flow_brands
            .iter()
            .filter(move |&&(_, t)| now.since(t) <= memory_ms)
            .map(|&(b, _)| b)
    }

    /// Records a purchase of `brand` through an influencer at `now`.
    pub fn remember(&mut self, brand: u32, now: Millis) {
        self.flow_brands.retain(|&(b, _)| b != brand);
        if self.flow_brands.len() == FLOW_MEMORY {
            self.flow_brands.remove(0);
        }
        self.flow_brands.push((brand, now));
    }
}

/// What one page produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PageOutcome {
    pub impressions: u64,
    pub clicks: u64,
    pub purchases: u64,
    pub gmv: f64,
    /// Purchases in a brand's own channel by users who remembered buying the
    /// brand through an influencer (what the flow converts).
    pub flow_purchases: u64,
    pub flow_gmv: f64,
}

impl std::ops::AddAssign for PageOutcome {
    fn add_assign(&mut self, o: PageOutcome) {
        self.impressions += o.impressions;
        self.clicks += o.clicks;
        self.purchases += o.purchases;
        self.gmv += o.gmv;
        self.flow_purchases += o.flow_purchases;
        self.flow_gmv += o.flow_gmv;
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The facts of one shown item the response depends on.
struct Shown {
    streamer: u32,
    affinity: f64,
    quality: f64,
    is_live: bool,
    /// The brand whose own channel this is, if it is one.
    own_brand: Option<u32>,
}

/// What earlier traffic left that changes a user's response to an item.
#[derive(Debug, Clone, Copy)]
struct History {
    /// Strength of the memory of the brand whose own channel it is (0..=1).
    memory: f64,
    /// Earlier impressions of the item, faded.
    fatigue: f64,
}

/// Tags the response streams apart from the world's other seeded streams.
const RESPONSE_STREAM: u64 = 5 << 40;

impl World {
    /// The draws of one response: `item` is `None` for the page's own (the
    /// scroll depth), else the item's key.
    fn response_draws(&self, user: u32, page: u64, item: Option<u64>) -> ChaCha8Rng {
        let page_key = mix(self.params.seed, RESPONSE_STREAM | user as u64, page);
        ChaCha8Rng::seed_from_u64(mix(page_key, item.map_or(0, |k| k + 1), 0))
    }

    /// A stable key of an item the world knows.
    fn item_key(&self, item: &str, kind: ItemKind) -> Option<u64> {
        Some(match kind {
            ItemKind::LiveStream => *self.stream_index.get(item)? as u64,
            ItemKind::Goods => 1 << 32 | *self.goods_index.get(item)? as u64,
        })
    }

    fn shown(&self, user: &User, item: &str, kind: ItemKind) -> Option<Shown> {
        match kind {
            ItemKind::LiveStream => {
                let i = *self.stream_index.get(item)?;
                let s = &self.streams[i as usize];
                let quality = if s.cart.is_empty() {
                    0.0
                } else {
                    s.cart
                        .iter()
                        .map(|&g| self.goods[g as usize].quality)
                        .sum::<f64>()
                        / s.cart.len() as f64
                };
                Some(Shown {
                    streamer: s.streamer,
                    affinity: self.affinity_stream(user, i),
                    quality,
                    is_live: true,
                    own_brand: self.own_brand(s.streamer),
                })
            }
            ItemKind::Goods => {
                let i = *self.goods_index.get(item)?;
                let g = &self.goods[i as usize];
                Some(Shown {
                    streamer: g.seller,
                    affinity: self.affinity_goods(user, i),
                    quality: g.quality,
                    is_live: false,
                    own_brand: self.own_brand(g.seller),
                })
            }
        }
    }

    /// The chance that a user who reached a slot scrolls past it: the
    /// scroll depth is geometric with the segment's mean (at least one slot).
    fn keep_going(&self, user: &User) -> f64 {
        1.0 - 1.0 / self.params.segment(user.segment).scroll_depth.max(1.0)
    }

    /// What the user brings to `shown` at `now` from earlier traffic.
    fn history(&self, state: &UserState, shown: &Shown, key: u64, now: Millis) -> History {
        let p = &self.params.response;
        History {
            memory: shown.own_brand.map_or(0.0, |b| state.memory(b, now, p)),
            fatigue: state.fatigue(key, now, p),
        }
    }

    /// The chance that a slot the user reached at `position` is examined
    /// and clicked.
    fn click_chance(&self, user: &User, shown: &Shown, history: History, position: usize) -> f64 {
        let examine = (1.0 + position as f64).powf(-self.params.response.position_decay);
        (examine * sigmoid(self.click_logit(user, shown, history))).clamp(0.0, 1.0)
    }

    /// Log-odds that `user` clicks `shown` once examined.
    fn click_logit(&self, user: &User, shown: &Shown, history: History) -> f64 {
        let p = &self.params.response;
        let streamer = &self.streamers[shown.streamer as usize];
        p.click_base
            + p.click_affinity * (shown.affinity + 0.05).ln()
            + p.click_followers * (1.0 + streamer.followers as f64).log10() / 7.0
            + if user.follows(shown.streamer) {
                p.click_follows
            } else {
                0.0
            }
            + p.click_quality * shown.quality
            + if shown.is_live { p.click_live } else { 0.0 }
            + history.memory * p.flow_click_lift.ln()
            - p.fatigue * history.fatigue
    }

    /// Log-odds that `user`, having clicked `shown`, buys `goods` there.
    fn buy_logit(&self, user: &User, shown: &Shown, goods: &GoodsFacts, memory: f64) -> f64 {
        let p = &self.params.response;
        let streamer = &self.streamers[shown.streamer as usize];
        p.buy_base
            + self.params.segment(user.segment).buy_shift
            + p.buy_price * (goods.price.max(1.0) / user.budget).ln()
            + p.buy_trust * streamer.trust
            + p.buy_affinity * (shown.affinity + 0.05).ln()
            + if user.follows(shown.streamer) {
                p.buy_follows
            } else {
                0.0
            }
            + p.buy_quality * goods.quality
            + memory * p.flow_lift.ln()
    }

    /// The ground truth's expected GMV of showing `item` to the user at
    /// `position` (0-based) of a page at least that long, at `now`: the
    /// chance the user scrolls that far, examines it and clicks, times the
    /// expected price paid (over the cart, for a stream). What [`respond`]
    /// draws from, in expectation; the oracle router and net-effect figures
    /// read it.
    ///
    /// [`respond`]: World::respond
    pub fn expected_gmv(
        &self,
        user_idx: u32,
        state: &UserState,
        item: &str,
        kind: ItemKind,
        position: usize,
        now: Millis,
    ) -> f64 {
        let user = &self.users[user_idx as usize];
        let (Some(shown), Some(key)) = (self.shown(user, item, kind), self.item_key(item, kind))
        else {
            return 0.0;
        };
        let history = self.history(state, &shown, key, now);
        let seen = self.keep_going(user).powi(position as i32);
        let click = self.click_chance(user, &shown, history, position);
        let paid = |g: u32| {
            let goods = &self.goods[g as usize];
            sigmoid(self.buy_logit(user, &shown, goods, history.memory)) * goods.price
        };
        let basket = match kind {
            ItemKind::Goods => paid(self.goods_index[item]),
            ItemKind::LiveStream => {
                let cart = &self.streams[self.stream_index[item] as usize].cart;
                if cart.is_empty() {
                    return 0.0;
                }
                cart.iter().map(|&g| paid(g)).sum::<f64>() / cart.len() as f64
            }
        };
        seen * click * basket
    }

    /// The user's response to `page` (items in slot order), appended to `out`
    /// as impression, click and purchase records. Items the world does not
    /// know are shown but never clicked.
    pub fn respond(
        &self,
        user_idx: u32,
        state: &mut UserState,
        request_id: &str,
        now: Millis,
        page: &[(&str, ItemKind)],
        out: &mut Vec<Record>,
    ) -> PageOutcome {
        let user = &self.users[user_idx as usize];
        let mut outcome = PageOutcome::default();
        let page_no = state.pages;
        state.pages += 1;

        let keep_going = self.keep_going(user);
        let mut scroll = self.response_draws(user_idx, page_no, None);
        let mut depth = 1;
        while depth < page.len() && scroll.random_bool(keep_going) {
            depth += 1;
        }

        let mut t = now.0;
        for (position, &(item, kind)) in page.iter().enumerate().take(depth) {
            let shown = self.shown(user, item, kind);
            outcome.impressions += 1;
            out.push(Record::Impression(Impression {
                time: Millis(now.0),
                event_id: state.next_id("e", user_idx),
                request_id: request_id.to_string(),
                user_id: user.id.clone(),
                item_id: item.to_string(),
                kind,
                position: position as u32,
                streamer_id: shown
                    .as_ref()
                    .map(|s| self.streamers[s.streamer as usize].id.clone()),
            }));
            let (Some(shown), Some(key)) = (shown, self.item_key(item, kind)) else {
                continue;
            };
            let mut draws = self.response_draws(user_idx, page_no, Some(key));
            let streamer = &self.streamers[shown.streamer as usize];
            let history = self.history(state, &shown, key, now);
            state.tire(key, now, &self.params.response);
            if !draws.random_bool(self.click_chance(user, &shown, history, position)) {
                continue;
            }
            t += draws.random_range(2_000..30_000);
            outcome.clicks += 1;
            out.push(Record::Click(Click {
                time: Millis(t),
                event_id: state.next_id("e", user_idx),
                request_id: request_id.to_string(),
                user_id: user.id.clone(),
                item_id: item.to_string(),
                kind,
                position: position as u32,
            }));

            // What would be bought: the goods itself, or one from the cart.
            let goods_idx = match kind {
                ItemKind::Goods => self.goods_index[item],
                ItemKind::LiveStream => {
                    let cart = &self.streams[self.stream_index[item] as usize].cart;
                    if cart.is_empty() {
                        continue;
                    }
                    cart[draws.random_range(0..cart.len())]
                }
            };
            let goods = &self.goods[goods_idx as usize];
            let buy_logit = self.buy_logit(user, &shown, goods, history.memory);
            if !draws.random_bool(sigmoid(buy_logit)) {
                continue;
            }
            t += draws.random_range(20_000..600_000);
            let channel = match streamer.kind {
                StreamerKind::BrandSelf => Channel::BrandSelf,
                StreamerKind::Influencer => Channel::Influencer,
            };
            outcome.purchases += 1;
            outcome.gmv += goods.price;
            if channel == Channel::BrandSelf && history.memory > 0.0 {
                outcome.flow_purchases += 1;
                outcome.flow_gmv += goods.price;
            }
            if channel == Channel::Influencer {
                state.remember(goods.brand, Millis(t));
            }
            out.push(Record::Purchase(Purchase {
                time: Millis(t),
                event_id: state.next_id("e", user_idx),
                user_id: user.id.clone(),
                goods_id: goods.id.clone(),
                brand_id: self.brand_ids[goods.brand as usize].clone(),
                seller_id: streamer.id.clone(),
                channel,
                price: goods.price,
                venue: Some(match kind {
                    ItemKind::LiveStream => Venue::LiveStream,
                    ItemKind::Goods => Venue::Shelf,
                }),
                request_id: Some(request_id.to_string()),
                slot_item_id: Some(item.to_string()),
            }));
        }
        outcome
    }
}
impl World {
    /// Fresh states for every user, seeded from the world's seed.
    pub fn user_states(&self) -> Vec<UserState> {
        (0..self.users.len() as u32)
            .map(|u| UserState::new(self.params.seed, u))
            .collect()
    }
}
