//! The distribution-to-self-broadcast flow ("chuanliu").
//!
//! A user who bought brand B's goods from an influencer's stream is shown
//! B's own live stream: boosted when retrieval proposed it, injected as a
//! candidate when it did not (per scene), within a paced daily budget and a
//! per-user, per-brand frequency cap. A purchase in B's own live stream
//! soon after the user saw such an impression is attributed to the flow,
//! and the influencers whose sales made the affinity earn a decaying,
//! capped traffic reward.
//! A share of users is held out and served ghosts instead (see
//! [`holdout`]), so that what the flow adds is measured, not attributed.
//!
//! [`Flow`] is the state: plain memory, no I/O and no clock; events and
//! times come in as arguments. The engine reads and reserves from it on
//! every `Rank`; the server feeds it the events it made durable; snapshots
//! go through [`FlowSnapshot`].

mod affinity;
mod brands;
mod caps;
mod demand;
pub mod holdout;
mod interner;
mod leases;
mod offers;
mod pacer;
mod reservation;
mod rewards;
mod snapshot;

pub use affinity::{Affinities, Affinity, AffinityParams, Layout, Swept, Trigger};
pub use brands::{BrandSetting, BrandSnapshot, Enrollment, FlowCounts};
pub use caps::{CapHold, CapHolds, CapScope, Wanted};
pub use demand::Demand;
pub use holdout::{Ghosts, HoldoutState, HoldoutStats, Increment};
pub use leases::BudgetKey;
pub use offers::Offer;
pub use pacer::{LeaseRequest, PacerState, Pacing};
pub use reservation::Reservation;
pub use rewards::{Reward, RewardParams};
pub use snapshot::FlowSnapshot;

use crate::domain::{Channel, Millis, Scene};
use crate::domain::{Event, EventKind, Venue};
use brands::{Brands, Counters};
use interner::Interner;
use pacer::Pacer;
use parking_lot::RwLock;
use rewards::Rewards;
use serde::{Deserialize, Serialize};

/// A time in whole seconds since the epoch: what the stores keep, to halve
/// their entries. 0 means "never".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Secs(pub u32);

impl From<Millis> for Secs {
    fn from(t: Millis) -> Secs {
        Secs((t.0 / 1000).clamp(0, u32::MAX as i64) as u32)
    }
}

/// How the flow acts in one scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneMode {
    Off,
    /// Boost the brand's stream when it is among the candidates.
    Boost,
    /// Boost it, or add it as a candidate when it is not there.
    Inject,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneFlow {
    pub mode: SceneMode,
    /// Score multiplier of a flow stream for an affinity of weight 1 or
    /// more (a fresh purchase); see [`SceneFlow::boost_for`].
    pub boost: f64,
    /// How much each of the brand's items among the page's candidates
    /// raises the estimated value of its stream; see [`SceneFlow::lift`].
    pub relevance: f64,
    /// ... and each of its items per request of the user's before.
    pub taste: f64,
}

impl SceneFlow {
    /// The score multiplier of a flow stream for an affinity of `weight`:
    /// `boost ^ min(weight, 1)`. What a remembered brand adds to a user's
    /// odds of buying fades as the memory does, so the lift is taken in the
    /// log domain in proportion to the decayed weight: a fading affinity
    /// earns a place only against weaker competition, and the budget goes
    /// to the users it helps most. A weight above 1 (several purchases) is
    /// not taken as a stronger memory than a fresh one.
    pub fn boost_for(&self, weight: f64) -> f64 {
        self.boost.powf(weight.clamp(0.0, 1.0))
    }

    /// The flow stream's score multiplier on a page whose candidates hold
    /// `items` of the brand's (goods, its own stream), for a user whose
    /// requests held `taste` of them on average:
    /// `boost_for(weight) x (1 + relevance x items) x (1 + taste_k x taste)`.
    ///
    /// The model scores a stream the same for every user, but what a
    /// remembered brand's stream is worth to a user grows with their taste
    /// for what the brand sells, and retrieval proposes items by that
    /// taste: the brand's items on this page (what the user is after now)
    /// and on the user's pages before (what they like) are the signs, read
    /// at no cost. The engine offers the brand whose stream is worth most
    /// (`score x lift`) first and ranks the stream by that.
    pub fn lift(&self, weight: f64, items: usize, taste: f64) -> f64 {
        self.boost_for(weight)
            * (1.0 + self.relevance * items as f64)
            * (1.0 + self.taste * taste.max(0.0))
    }
}

/// `[chuanliu]` in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowParams {
    pub enabled: bool,
    /// Brands never enrolled or paused take part.
    pub enroll_all_brands: bool,
    pub scenes: [SceneFlow; Scene::ALL.len()],
    /// Flow streams per page, at most.
    pub max_per_page: usize,
    pub affinity: AffinityParams,
    /// Flow impressions per day: the process's, or the fleet's when its
    /// budgets are shared ([`Flow::share_budgets`]).
    pub daily_impressions: u64,
    pub pacing: Pacing,
    /// Flow impressions of one brand to one user per window: counted by
    /// the process, or by the fleet under [`CapScope::Fleet`].
    pub frequency_cap: u16,
    pub frequency_window_s: u32,
    pub attribution_window_s: u32,
    /// Share of users whose new affinities go to the holdout.
    pub holdout_share: f64,
    pub reward: RewardParams,
    /// How often the server sweeps expired affinities and faded rewards (a
    /// pass over every entry).
    pub sweep_interval: std::time::Duration,
}

impl FlowParams {
    pub fn scene(&self, scene: Scene) -> SceneFlow {
        self.scenes[scene.index()]
    }
}

/// What applying one event did to the flow.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Applied {
    /// A purchase through an influencer made or strengthened an affinity.
    pub affinity: bool,
    /// An impression showed a brand's stream a flow impression had just
    /// put on the user's page: attribution starts from it.
    pub seen: bool,
    /// A purchase in a brand's own live stream was attributed to the flow; its price.
    pub attributed: Option<f64>,
    /// ... or to a ghost impression, in the holdout.
    pub ghost: Option<f64>,
}

/// One brand's flow figures, for the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct BrandStats {
    pub brand_id: String,
    pub enrollment: Enrollment,
    pub active: bool,
    pub daily_impressions: Option<u64>,
    pub spent_today: u64,
    pub counts: FlowCounts,
    /// Live affinities to the brand, as of the last sweep.
    pub affinities: u64,
    pub holdout: HoldoutStats,
}

/// The flow's whole-process figures.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowTotals {
    pub counts: FlowCounts,
    pub daily_impressions: u64,
    pub spent_today: u64,
    pub remaining_today: u64,
    /// As of the last sweep.
    pub active_affinities: u64,
    pub users: u64,
    pub rewarded_streamers: u64,
    /// Over every brand.
    pub holdout: HoldoutStats,
}

/// The flow's state: affinities, brands, the budget and rewards.
#[derive(Default)]
pub struct Flow {
    brands: Interner,
    streamers: Interner,
    affinities: Affinities,
    registry: Brands,
    budget: Pacer,
    rewards: Rewards,
    totals: Counters,
    /// From the last [`Flow::sweep`].
    swept: RwLock<Swept>,
    rewarded: std::sync::atomic::AtomicU64,
}

impl Flow {
    pub fn new() -> Flow {
        Flow::default()
    }

    /// Applies one durable event, in log order. Affinities are recorded
    /// whether or not the flow is enabled, so enabling it finds them.
    pub fn apply(&self, event: &Event, params: &FlowParams) -> Applied {
        let now = Secs::from(event.time);
        let user = event.user_id.as_str();
        let (brand_id, seller_streamer_id, channel, price, venue) = match &event.kind {
            EventKind::Purchase {
                brand_id,
                seller_streamer_id,
                channel,
                price,
                venue,
                ..
            } => (brand_id, seller_streamer_id, channel, price, venue),
            EventKind::Impression {
                own_stream_of: Some(brand),
                ..
            } => {
                let seen = self
                    .brands
                    .get(brand)
                    .is_some_and(|b| self.affinities.saw(user, b, now));
                return Applied {
                    seen,
                    ..Applied::default()
                };
            }
            EventKind::Impression { .. } | EventKind::Click { .. } => return Applied::default(),
        };
        match channel {
            Channel::Unverified => {
                self.credit(user, None, *price, now, params);
                Applied::default()
            }
            Channel::Influencer => {
                self.credit(user, None, *price, now, params);
                let brand = self.brands.id(brand_id);
                let source = self.streamers.id(seller_streamer_id);
                let arm = (params.holdout_share > 0.0)
                    .then(|| holdout::in_holdout(user, params.holdout_share));
                let made = self
                    .affinities
                    .record(user, brand, source, now, &params.affinity, arm);
                if let Some(arm) = made {
                    self.registry.entry(brand).holdout.lock().arm_mut(arm).units += 1;
                }
                Applied {
                    affinity: true,
                    ..Applied::default()
                }
            }
            // Only its live stream's sales are self-broadcast sales: the
            // shelf's count toward the holdout's total GMV, nothing else.
            Channel::BrandSelf if *venue == Some(Venue::Shelf) => {
                self.credit(user, None, *price, now, params);
                Applied::default()
            }
            Channel::BrandSelf => {
                let brand = self.brands.get(brand_id);
                self.credit(user, brand, *price, now, params);
                let Some(affinity) = brand.and_then(|brand| {
                    self.affinities
                        .attribute(user, brand, now, params.attribution_window_s)
                }) else {
                    return Applied::default();
                };
                let entry = self.registry.entry(affinity.brand);
                if affinity.holdout {
                    let mut state = entry.holdout.lock();
                    state.ghost.conversions += 1;
                    state.ghost.gmv_fen += brands::fen(*price);
                    return Applied {
                        ghost: Some(*price),
                        ..Applied::default()
                    };
                }
                self.totals.conversion(*price);
                entry.counts.conversion(*price);
                for s in affinity.sources() {
                    self.rewards.credit(
                        &self.streamers.name(s),
                        params.reward.per_conversion,
                        now,
                        &params.reward,
                    );
                }
                Applied {
                    attributed: Some(*price),
                    ..Applied::default()
                }
            }
        }
    }

    /// Adds a purchase to the holdout's outcomes of the user's affinities.
    fn credit(&self, user: &str, own: Option<u32>, price: f64, now: Secs, params: &FlowParams) {
        for m in self
            .affinities
            .credit(user, own, price, now, &params.affinity)
        {
            if !m.unit {
                continue;
            }
            let entry = self.registry.entry(m.brand);
            let mut state = entry.holdout.lock();
            let arm = state.arm_mut(m.holdout);
            arm.own.moved(m.own.0, m.own.1);
            arm.all.moved(m.all.0, m.all.1);
        }
    }

    /// Enrolls or pauses a brand, or sets its own budget.
    pub fn set_brand(&self, setting: &BrandSetting) {
        let brand = self.brands.id(&setting.brand_id);
        *self.registry.entry(brand).setting.lock() =
            (setting.enrollment, setting.daily_impressions);
    }

    /// Score multipliers from influencers' traffic rewards, per item
    /// streamer; `None` when no influencer has a reward.
    pub fn reward_multipliers<'s>(
        &self,
        streamers: impl Iterator<Item = Option<&'s str>>,
        now: Millis,
        params: &FlowParams,
    ) -> Option<Vec<f64>> {
        self.rewards
            .multipliers(streamers, Secs::from(now), &params.reward)
    }

    /// Drops expired affinities and faded rewards, and recounts what is
    /// live (the figures [`Flow::totals`] and [`Flow::brand_stats`] report).
    /// Walks every entry: run it periodically, off the request path.
    pub fn sweep(&self, now: Millis, params: &FlowParams) -> FlowTotals {
        let secs = Secs::from(now);
        let swept = self.affinities.sweep(secs, &params.affinity);
        let rewarded = self.rewards.sweep(secs, &params.reward, 1e-4);
        self.rewarded
            .store(rewarded as u64, std::sync::atomic::Ordering::Relaxed);
        *self.swept.write() = swept;
        self.totals(now, params)
    }

    /// Flow impressions served and conversions attributed by this process.
    pub fn counts(&self) -> FlowCounts {
        self.totals.get()
    }

    /// The holdout's sums over every brand: what [`FlowTotals::holdout`] is
    /// computed from, and what flows of disjoint users (replay's shards)
    /// add up.
    pub fn holdout_state(&self) -> HoldoutState {
        let mut holdout = HoldoutState::default();
        for (_, b) in self.registry.all() {
            holdout.add(&b.holdout.lock());
        }
        holdout
    }

    /// The share of the day's budget the pacing allows spent by `now`, by
    /// the profile it paces with (learned, if it follows demand).
    pub fn planned_share(&self, now: Millis, params: &FlowParams) -> f64 {
        self.budget.planned_share(&params.pacing, now)
    }

    pub fn totals(&self, now: Millis, params: &FlowParams) -> FlowTotals {
        let (spent_today, remaining_today) =
            self.budget
                .today(params.daily_impressions, &params.pacing, now);
        let swept = self.swept.read();
        let holdout = self.holdout_state();
        FlowTotals {
            counts: self.totals.get(),
            daily_impressions: params.daily_impressions,
            spent_today,
            remaining_today,
            active_affinities: swept.entries as u64,
            users: swept.users as u64,
            rewarded_streamers: self.rewarded.load(std::sync::atomic::Ordering::Relaxed),
            holdout: holdout.stats(),
        }
    }

    /// Flow figures per brand: the brands asked for, or every brand the
    /// flow has state for.
    pub fn brand_stats(
        &self,
        brand_ids: &[String],
        now: Millis,
        params: &FlowParams,
    ) -> Vec<BrandStats> {
        let ids: Vec<(String, Option<u32>)> = if brand_ids.is_empty() {
            self.registry
                .all()
                .into_iter()
                .map(|(id, _)| (self.brands.name(id).to_string(), Some(id)))
                .collect()
        } else {
            brand_ids
                .iter()
                .map(|b| (b.clone(), self.brands.get(b)))
                .collect()
        };
        let swept = self.swept.read();
        ids.into_iter()
            .map(|(brand_id, id)| {
                let entry = id.and_then(|id| self.registry.get(id));
                let enrollment = entry.as_ref().map_or(Enrollment::Unset, |b| b.enrollment());
                let daily_impressions = entry.as_ref().and_then(|b| b.daily_impressions());
                BrandStats {
                    brand_id,
                    enrollment,
                    active: enrollment.active(params.enroll_all_brands),
                    daily_impressions,
                    spent_today: entry.as_ref().map_or(0, |b| {
                        b.pacer
                            .today(daily_impressions.unwrap_or(0), &params.pacing, now)
                            .0
                    }),
                    counts: entry
                        .as_ref()
                        .map_or_else(FlowCounts::default, |b| b.counts.get()),
                    affinities: id
                        .and_then(|id| swept.per_brand.get(&id).copied())
                        .unwrap_or(0),
                    holdout: entry
                        .as_ref()
                        .map_or_else(HoldoutStats::default, |b| b.holdout.lock().stats()),
                }
            })
            .collect()
    }

    /// The affinities of one user, with brand and source ids spelled out.
    pub fn affinities_of(&self, user: &str) -> Vec<(String, Affinity, Vec<String>)> {
        self.affinities
            .of(user)
            .into_iter()
            .map(|a| {
                let sources = a
                    .sources()
                    .map(|s| self.streamers.name(s).to_string())
                    .collect();
                (self.brands.name(a.brand).to_string(), a, sources)
            })
            .collect()
    }

    /// Whether `affinity` may trigger the flow at `now` under `params`.
    pub fn can_trigger(&self, affinity: &Affinity, now: Millis, params: &FlowParams) -> bool {
        affinity.can_trigger(
            Secs::from(now),
            &params.affinity,
            params.frequency_cap,
            params.frequency_window_s,
        )
    }

    pub fn reward_level(&self, streamer: &str, now: Millis, params: &FlowParams) -> f64 {
        self.rewards
            .level(streamer, Secs::from(now), &params.reward)
    }

    pub fn snapshot(&self) -> FlowSnapshot {
        FlowSnapshot {
            brands: self.brands.export(),
            streamers: self.streamers.export(),
            users: self
                .affinities
                .export()
                .into_iter()
                .map(serde_bytes::ByteBuf::from)
                .collect(),
            registry: self.registry.export(),
            budget: self.budget.state(),
            rewards: self.rewards.export(),
            totals: self.totals.get(),
            holdout: self.registry.export_holdout(),
            layout: Layout::V4,
        }
    }

    /// The flow a [`Flow::snapshot`] was taken of; fails only on damaged
    /// affinity data (a snapshot file's checksum catches damage first).
    pub fn restore(snapshot: FlowSnapshot) -> Result<Flow, String> {
        let flow = Flow::new();
        flow.brands.import(snapshot.brands);
        flow.streamers.import(snapshot.streamers);
        let blobs: Vec<Vec<u8>> = snapshot.users.into_iter().map(|b| b.into_vec()).collect();
        flow.affinities.import(&blobs, snapshot.layout)?;
        flow.registry.import(snapshot.registry);
        flow.budget.restore(snapshot.budget);
        flow.rewards.import(snapshot.rewards);
        flow.totals.set(snapshot.totals);
        flow.registry.import_holdout(snapshot.holdout);
        Ok(flow)
    }
}

#[cfg(test)]
mod tests;
