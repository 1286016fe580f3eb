//! Interactive evaluation: the engine serves simulated traffic, one request
//! at a time in time order with one exposure state (as one server process
//! would), and the simulated users respond to what it placed.
//!
//! Exposure, Gini and expected GMV are measured over the *measured scenes*
//! (by default the scenes under quotas): tier targets are shares of the
//! exposure the controller steers, and pages it does not touch (a user's
//! follow feed) would only blur the comparison. Simulated clicks, orders and
//! GMV cover every scene.
//!
//! Simulated purchases go to the chuanliu flow as they happen, as the
//! server's event intake would send them, so the flow's affinities,
//! attribution and rewards build up over the run.
//!
//! A [`Served`] world carries everything that evolves (catalog, engine
//! state, users), so a warm-up can be served once and then branched: every
//! config measured from the same warm world, on the same response draws.
//! The flow's effect is read on brands' **own live streams** (purchases of
//! a brand's goods in its self-broadcast stream; its shelf goods are not
//! self-broadcast sales) of the brands chosen to take part before any
//! traffic. An [`Oracle`] router, which knows who remembers which brand,
//! gives the opportunity the flow's lift is a share of.

use super::hindsight::Page;
use super::response::{PageOutcome, UserState};
use super::run::{LiveSet, advance_streams, next_query};
use super::world::{CHUNK_MS, LOCAL_OFFSET_MS, World};
pub use crate::allocate::concentration::{gini, max_gap_pp, shares, top_share};
use crate::catalog::Catalog;
use crate::chuanliu::{BrandSetting, Enrollment, Flow, HoldoutStats};
use crate::domain::Event;
use crate::domain::{Channel, Reason, Venue};
use crate::domain::{ItemKind, Millis, Scene};
use crate::engine::{Candidate, Engine, RankState, Ranking};
use crate::traffic::Record;
use foldhash::HashMap;
use serde::Serialize;

/// What to measure besides the outcome of every page, and who routes the
/// flow's impressions.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Scenes whose pages count toward exposure, Gini and expected GMV.
    pub measured: Vec<Scene>,
    /// Keep every measured page's allocation inputs, for [`super::hindsight`].
    pub record_pages: bool,
    /// Route flow impressions with the oracle instead of the engine's flow.
    pub oracle: Option<Oracle>,
}

/// A router that knows what the flow can only guess: which brands each user
/// remembers buying through an influencer (the ground truth's memory, not
/// the flow's affinities). On a page of one of `scenes`, it puts the
/// participating brand's live own stream with the highest expected GMV for
/// the user at slot 0, within the same daily budget and per-user, per-brand
/// cap as the flow it is compared with, and in the same scenes: where the
/// flow only boosts, the oracle too moves only a stream retrieval proposed.
/// The engine ranks the rest with no flow. Its lift over the baseline is the opportunity; the flow's lift
/// over it, the flow's efficiency.
#[derive(Debug, Clone, PartialEq)]
pub struct Oracle {
    pub daily_impressions: u64,
    pub frequency_cap: u16,
    pub frequency_window_ms: i64,
    pub scenes: Vec<Scene>,
    /// Of `scenes`, those where the flow only boosts what retrieval
    /// proposed.
    pub proposed_only: Vec<Scene>,
    pub knows: OracleKnows,
}

/// What the oracle picks among a user's remembered brands by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OracleKnows {
    /// The ground truth's expected GMV of each brand's stream at slot 0 for
    /// this user: the user's own taste for it, which no service observes.
    #[default]
    Value,
    /// Only how fresh each memory is, which the flow's affinity weight
    /// tracks: what a router that learns nothing of the user's taste could
    /// reach by placement alone.
    Memory,
}

/// Exposure and outcomes of one policy over simulated traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluation {
    pub requests: u64,
    /// Requests in the measured scenes.
    pub measured_requests: u64,
    /// Slots served, every scene (seen or not).
    pub served_slots: u64,
    /// Position-weighted exposure per tier (top, mid, small), per local hour.
    pub hourly_tier_exposure: Vec<[f64; 3]>,
    /// Position-weighted exposure per streamer (index into the world's).
    #[serde(skip)]
    pub streamer_exposure: Vec<f64>,
    /// Sum over served slots of exposure x expected value (yuan).
    pub expected_gmv: f64,
    /// Sum over served slots of exposure x the engine's score before any
    /// exposure-control multiplier: what the engine maximizes.
    pub objective: f64,
    #[serde(flatten)]
    pub outcome: PageOutcome,
    pub flow: FlowOutcome,
    /// Allocation inputs of every measured page (with `record_pages`).
    #[serde(skip)]
    pub pages: Vec<Page>,
    /// Per user (index into the world's): simulated GMV, and GMV in the own
    /// live streams of participating brands; paired differences between
    /// two runs give the standard error of a lift.
    #[serde(skip)]
    pub user_gmv: Vec<f64>,
    #[serde(skip)]
    pub user_participant_live_gmv: Vec<f64>,
}

impl Evaluation {
    /// Exposure shares per tier over the whole run.
    pub fn tier_shares(&self) -> [f64; 3] {
        let mut total = [0.0; 3];
        for h in &self.hourly_tier_exposure {
            for t in 0..3 {
                total[t] += h[t];
            }
        }
        shares(total)
    }

    /// The largest gap, in percentage points, between a tier's hourly share
    /// and its target, skipping the first `warm_up_hours` and empty hours.
    pub fn max_hourly_deviation(&self, targets: [f64; 3], warm_up_hours: usize) -> f64 {
        max_gap_pp(
            self.hourly_tier_exposure.iter().skip(warm_up_hours),
            targets,
        )
    }
}

/// What the chuanliu flow did over a run (every scene).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FlowOutcome {
    /// Slots served with the chuanliu reason (or placed by the oracle).
    pub impressions: u64,
    /// Flow impressions the user scrolled to (what attribution counts from).
    pub seen_impressions: u64,
    /// Of those, streams of brands not taking part (0 unless a pause fails).
    pub other_impressions: u64,
    /// Purchases the flow attributed to itself, and their GMV.
    pub attributed_purchases: u64,
    pub attributed_gmv: f64,
    /// Purchases in brands' own channels (own stream or shelf goods), flow
    /// or not.
    pub brand_self_purchases: u64,
    pub brand_self_gmv: f64,
    /// Of those, purchases in brands' own live streams (self-broadcast).
    pub own_live_purchases: u64,
    pub own_live_gmv: f64,
    /// Own-live GMV of participating brands, and of the others.
    pub participant_live_gmv: f64,
    pub other_live_gmv: f64,
    /// The ground truth's expected GMV of the pages the flow acted on,
    /// minus that of the page the same engine would have served there
    /// without the flow (same request, same controller state), in all and
    /// in participants' own live streams. Myopic: what each page does, not
    /// what it changes later (memories, the controller, the budget).
    pub expected_net_gmv: f64,
    pub expected_net_live_gmv: f64,
    /// Position-weighted exposure of slots carrying the flow-reward reason.
    pub reward_exposure: f64,
    /// Purchases through influencers (which create affinities).
    pub influencer_purchases: u64,
    /// The flow's holdout at the end of the run (with a holdout share):
    /// its estimate of what the flow added, to set beside the paired truth.
    pub holdout: HoldoutStats,
}

/// The oracle's spending: today's impressions, and per (user, brand) the
/// impressions in the current cap window and when it opened.
#[derive(Debug, Clone, Default)]
struct OracleSpend {
    day: u32,
    spent: u64,
    shown: HashMap<(u32, u32), (u16, Millis)>,
}

/// A simulated world being served: what evolves as traffic is served (the
/// catalog's live flags, the engine's state, the users' memories) and the
/// brands taking part in the flow.
pub struct Served {
    pub catalog: Catalog,
    pub state: RankState,
    users: Vec<UserState>,
    is_live: Vec<bool>,
    /// The next day to serve.
    day: u32,
    /// Per brand (index into the world's): whether it takes part.
    participants: Vec<bool>,
    oracle: OracleSpend,
}

impl Served {
    /// The world at its start, with a `share` of the brands enrolled in the
    /// flow (chosen by [`World::participants`]) and the others paused.
    pub fn new(world: &World, catalog: Catalog, share: f64) -> Served {
        let state = RankState::new();
        let participants = world.participants(share);
        for (brand, &part) in world.brand_ids.iter().zip(&participants) {
            state.flow.set_brand(&BrandSetting {
                brand_id: brand.clone(),
                enrollment: if part {
                    Enrollment::Enrolled
                } else {
                    Enrollment::Paused
                },
                daily_impressions: None,
            });
        }
        Served {
            is_live: world.live_flags(&catalog),
            catalog,
            state,
            users: world.user_states(),
            day: 0,
            participants,
            oracle: OracleSpend::default(),
        }
    }

    /// An independent copy, to serve another config from the same point.
    pub fn branch(&self) -> Served {
        let flow =
            Flow::restore(self.state.flow.snapshot()).expect("a flow restores its own snapshot");
        Served {
            catalog: self.catalog.clone(),
            state: RankState::from_parts(self.state.exposure.clone(), flow),
            users: self.users.clone(),
            is_live: self.is_live.clone(),
            day: self.day,
            participants: self.participants.clone(),
            oracle: self.oracle.clone(),
        }
    }

    /// Serves the next `days` of simulated traffic with `engine`.
    /// Sequential on purpose: the controller's updates must happen in
    /// request order for the result to be reproducible.
    pub fn serve(
        &mut self,
        world: &World,
        engine: &Engine,
        days: u32,
        options: &EvalOptions,
    ) -> Evaluation {
        let mut eval = Evaluation {
            hourly_tier_exposure: vec![[0.0; 3]; 24],
            streamer_exposure: vec![0.0; world.streamers.len()],
            user_gmv: vec![0.0; world.users.len()],
            user_participant_live_gmv: vec![0.0; world.users.len()],
            ..Evaluation::default()
        };
        let mut records = Vec::new();
        for day in self.day..self.day + days {
            let windows = world.windows(day);
            let mut sessions: Vec<(Millis, u32)> = (0..world.users.len() as u32)
                .flat_map(|u| world.sessions(u, day).into_iter().map(move |t| (t, u)))
                .collect();
            sessions.sort_unstable();
            let mut next = 0;
            for chunk in 0..(Millis::MS_PER_DAY / CHUNK_MS) {
                let t0 = world.day_start(day).0 + chunk * CHUNK_MS;
                advance_streams(world, &windows, &mut self.is_live, &mut self.catalog, t0);
                let live_set = LiveSet::new(world, &self.is_live);
                while next < sessions.len() && sessions[next].0.0 < t0 + CHUNK_MS {
                    let (now, user) = sessions[next];
                    next += 1;
                    self.serve_one(
                        world,
                        engine,
                        options,
                        &live_set,
                        day,
                        now,
                        user,
                        &mut eval,
                        &mut records,
                    );
                }
            }
        }
        self.day += days;
        eval.flow.holdout = self.state.flow.holdout_state().stats();
        eval
    }

    #[allow(clippy::too_many_arguments)]
    fn serve_one(
        &mut self,
        world: &World,
        engine: &Engine,
        options: &EvalOptions,
        live_set: &LiveSet,
        day: u32,
        now: Millis,
        user: u32,
        eval: &mut Evaluation,
        records: &mut Vec<Record>,
    ) {
        let state = &self.state;
        let catalog = &self.catalog;
        let user_state = &mut self.users[user as usize];
        let query = next_query(world, user, live_set, &self.is_live, now, user_state);
        // The oracle routes the flow's impressions itself.
        let flow = options.oracle.is_none().then_some(&state.flow);
        let Ok(evaluation) = engine.evaluate(catalog, &query, flow) else {
            return;
        };
        let measured = options.measured.contains(&query.scene);
        // The scores before exposure control, for the objective; only
        // measured pages need them.
        let base_scores = measured.then(|| evaluation.scores().to_vec());
        if measured && options.record_pages {
            eval.pages.push(Page::of(&evaluation, query.slots, |s| {
                world.streamer_index.get(s).copied()
            }));
        }
        // The page the same engine would serve this request without the
        // flow, from the same controller state, where the flow acted.
        let without_flow = (flow.is_some() && evaluation.flow_acted())
            .then(|| engine.evaluate(catalog, &query, None).ok())
            .flatten()
            .map(|e| engine.allocate(e, &state.exposure.clone(), &query));
        let ranking = engine.allocate(evaluation, &state.exposure, &query);
        if let Some(base_scores) = &base_scores {
            eval.measured_requests += 1;
            let hour = ((now.0 + LOCAL_OFFSET_MS).rem_euclid(Millis::MS_PER_DAY)
                / Millis::MS_PER_HOUR) as usize;
            for slot in &ranking.slots {
                eval.hourly_tier_exposure[hour][slot.tier.index()] += slot.exposure;
                eval.expected_gmv += slot.exposure * slot.expected_value;
                eval.objective += slot.exposure * base_scores[slot.candidate as usize];
                if let Some(&s) = slot
                    .streamer_id
                    .as_deref()
                    .and_then(|s| world.streamer_index.get(s))
                {
                    eval.streamer_exposure[s as usize] += slot.exposure;
                }
            }
        }
        let mut served = page_of(&ranking);
        let own_brand = |streamer: &str| world.own_brand(*world.streamer_index.get(streamer)?);
        for slot in &ranking.slots {
            if slot.reasons.contains(Reason::Chuanliu) {
                eval.flow.impressions += 1;
                let brand = slot.streamer_id.as_deref().and_then(own_brand);
                if brand.is_none_or(|b| !self.participants[b as usize]) {
                    eval.flow.other_impressions += 1;
                }
            }
            if slot.reasons.contains(Reason::FlowReward) {
                eval.flow.reward_exposure += slot.exposure;
            }
        }
        if let Some(oracle) = &options.oracle
            && oracle.scenes.contains(&query.scene)
            && !served.is_empty()
            && let Some(stream) = self.oracle.route(
                world,
                oracle,
                &self.participants,
                &self.is_live,
                user,
                user_state,
                oracle
                    .proposed_only
                    .contains(&query.scene)
                    .then_some(&query.candidates[..]),
                day,
                now,
            )
        {
            let id = world.streams[stream as usize].id.as_str();
            let len = served.len();
            served.retain(|&(item, _)| item != id);
            served.insert(0, (id, ItemKind::LiveStream));
            served.truncate(len);
            eval.flow.impressions += 1;
        }
        eval.served_slots += served.len() as u64;
        // The ground truth's expected effect of this page's flow: what was
        // served against the page without it (the oracle's: the engine's
        // page before the oracle placed its stream).
        let baseline = match &without_flow {
            Some(r) => Some(page_of(r)),
            None => options.oracle.is_some().then(|| page_of(&ranking)),
        };
        if let Some(baseline) = baseline {
            let value = |page: &[(&str, ItemKind)]| {
                let mut total = 0.0;
                let mut live = 0.0;
                for (position, &(item, kind)) in page.iter().enumerate() {
                    let v = world.expected_gmv(user, user_state, item, kind, position, now);
                    total += v;
                    let own_stream_of = (kind == ItemKind::LiveStream)
                        .then(|| world.stream_index.get(item))
                        .flatten()
                        .and_then(|&s| world.own_brand(world.streams[s as usize].streamer));
                    if own_stream_of.is_some_and(|b| self.participants[b as usize]) {
                        live += v;
                    }
                }
                (total, live)
            };
            let (now_total, now_live) = value(&served);
            let (then_total, then_live) = value(&baseline);
            eval.flow.expected_net_gmv += now_total - then_total;
            eval.flow.expected_net_live_gmv += now_live - then_live;
        }
        records.clear();
        let outcome = world.respond(user, user_state, &query.request_id, now, &served, records);
        eval.user_gmv[user as usize] += outcome.gmv;
        eval.outcome += outcome;
        for record in records.iter() {
            let p = match record {
                Record::Impression(i) => {
                    if let Some(event) = Event::flow_impression(i, catalog)
                        && state.flow.apply(&event, &engine.params().chuanliu).seen
                    {
                        eval.flow.seen_impressions += 1;
                    }
                    continue;
                }
                Record::Purchase(p) => p,
                _ => continue,
            };
            let applied = state.flow.apply(&Event::from(p), &engine.params().chuanliu);
            match p.channel {
                Channel::BrandSelf => {
                    eval.flow.brand_self_purchases += 1;
                    eval.flow.brand_self_gmv += p.price;
                    if p.venue == Some(Venue::LiveStream)
                        && let Some(b) = own_brand(&p.seller_id)
                    {
                        eval.flow.own_live_purchases += 1;
                        eval.flow.own_live_gmv += p.price;
                        if self.participants[b as usize] {
                            eval.flow.participant_live_gmv += p.price;
                            eval.user_participant_live_gmv[user as usize] += p.price;
                        } else {
                            eval.flow.other_live_gmv += p.price;
                        }
                    }
                }
                Channel::Influencer => eval.flow.influencer_purchases += 1,
                // The simulator's sellers are all in its catalog.
                Channel::Unverified => {}
            }
            if let Some(price) = applied.attributed {
                eval.flow.attributed_purchases += 1;
                eval.flow.attributed_gmv += price;
            }
        }
        eval.requests += 1;
    }
}

impl OracleSpend {
    /// The stream the oracle shows `user` at `now`, if any (of those
    /// `proposed`, when given), counted against its budget and cap.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        world: &World,
        oracle: &Oracle,
        participants: &[bool],
        is_live: &[bool],
        user: u32,
        user_state: &UserState,
        proposed: Option<&[Candidate]>,
        day: u32,
        now: Millis,
    ) -> Option<u32> {
        if self.day != day {
            self.day = day;
            self.spent = 0;
        }
        if self.spent >= oracle.daily_impressions {
            return None;
        }
        let under_cap = |b: u32| {
            self.shown.get(&(user, b)).is_none_or(|&(n, opened)| {
                n < oracle.frequency_cap || now.since(opened) >= oracle.frequency_window_ms
            })
        };
        let memory_ms = world.params.response.memory_ms();
        let (brand, stream) = user_state
            .remembered(now, memory_ms)
            .filter(|&b| participants[b as usize] && under_cap(b))
            .filter_map(|b| {
                let s = world.brand_stream[b as usize].filter(|&s| is_live[s as usize])?;
                let id = &world.streams[s as usize].id;
                if proposed.is_some_and(|c| !c.iter().any(|c| c.item_id == *id)) {
                    return None;
                }
                let value = match oracle.knows {
                    OracleKnows::Value => {
                        world.expected_gmv(user, user_state, id, ItemKind::LiveStream, 0, now)
                    }
                    OracleKnows::Memory => user_state.memory(b, now, &world.params.response),
                };
                Some((value, b, s))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, b, s)| (b, s))?;
        self.spent += 1;
        let entry = self.shown.entry((user, brand)).or_insert((0, now));
        if now.since(entry.1) >= oracle.frequency_window_ms {
            *entry = (0, now);
        }
        entry.0 += 1;
        Some(stream)
    }
}

/// A ranking's page as the simulated users see it: items in slot order.
fn page_of(ranking: &Ranking) -> Vec<(&str, ItemKind)> {
    ranking
        .slots
        .iter()
        .map(|s| (s.item_id.as_str(), s.kind))
        .collect()
}

/// Serves `days` of simulated traffic with `engine` from the world's start,
/// every brand taking part: [`Served::new`] then [`Served::serve`].
pub fn evaluate(
    world: &World,
    engine: &Engine,
    catalog: Catalog,
    days: u32,
    options: &EvalOptions,
) -> (Evaluation, Served) {
    let mut served = Served::new(world, catalog, 1.0);
    let eval = served.serve(world, engine, days, options);
    (eval, served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_deviation_skips_warm_up_and_empty_hours() {
        let eval = Evaluation {
            hourly_tier_exposure: vec![[1.0, 0.0, 0.0], [0.0; 3], [0.5, 0.3, 0.2], [0.4, 0.4, 0.2]],
            ..Evaluation::default()
        };
        let dev = eval.max_hourly_deviation([0.4, 0.35, 0.25], 1);
        assert!((dev - 10.0).abs() < 1e-9, "{dev}");
        assert!((eval.tier_shares()[0] - 1.9 / 3.0).abs() < 1e-12);
    }
}
