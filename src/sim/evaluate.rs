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

use super::hindsight::{Page, PageItem};
use super::response::PageOutcome;
use super::run::{LiveSet, advance_streams, next_query};
use super::world::{CHUNK_MS, LOCAL_OFFSET_MS, World};
pub use crate::allocate::concentration::{gini, max_gap_pp, shares, top_share};
use crate::catalog::Catalog;
use crate::domain::Event;
use crate::domain::{Channel, Reason};
use crate::domain::{ItemKind, Millis, Scene};
use crate::engine::{Engine, RankState};
use crate::traffic::Record;
use serde::Serialize;

/// What to measure besides the outcome of every page.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Scenes whose pages count toward exposure, Gini and expected GMV.
    pub measured: Vec<Scene>,
    /// Keep every measured page's allocation inputs, for [`super::hindsight`].
    pub record_pages: bool,
}

/// Exposure and outcomes of one policy over simulated traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evaluation {
    pub requests: u64,
    /// Requests in the measured scenes.
    pub measured_requests: u64,
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
    /// Per brand (index into the world's): GMV in its own channel, and
    /// flow impressions of its stream.
    #[serde(skip)]
    pub brand_self_gmv: Vec<f64>,
    #[serde(skip)]
    pub brand_flow_impressions: Vec<u64>,
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
    /// Slots served with the chuanliu reason.
    pub impressions: u64,
    /// Purchases the flow attributed to itself, and their GMV.
    pub attributed_purchases: u64,
    pub attributed_gmv: f64,
    /// Purchases in brands' own channels (self-broadcast), flow or not.
    pub brand_self_purchases: u64,
    pub brand_self_gmv: f64,
    /// Position-weighted exposure of slots carrying the flow-reward reason.
    pub reward_exposure: f64,
    /// Purchases through influencers (which create affinities).
    pub influencer_purchases: u64,
}

/// Serves `days` of simulated traffic with `engine`. Sequential on purpose:
/// the controller's updates must happen in request order for the result to
/// be reproducible.
pub fn evaluate(
    world: &World,
    engine: &Engine,
    catalog: &mut Catalog,
    state: &RankState,
    days: u32,
    options: &EvalOptions,
) -> Evaluation {
    let mut eval = Evaluation {
        hourly_tier_exposure: vec![[0.0; 3]; 24],
        streamer_exposure: vec![0.0; world.streamers.len()],
        brand_self_gmv: vec![0.0; world.brand_ids.len()],
        brand_flow_impressions: vec![0; world.brand_ids.len()],
        ..Evaluation::default()
    };
    let brand_of_streamer = |id: Option<&str>| {
        let s = *world.streamer_index.get(id?)?;
        world.streamers[s as usize].brand
    };
    let mut states = world.user_states();
    let mut is_live = world.live_flags(catalog);
    let mut records = Vec::new();
    for day in 0..days {
        let windows = world.windows(day);
        let mut sessions: Vec<(Millis, u32)> = (0..world.users.len() as u32)
            .flat_map(|u| world.sessions(u, day).into_iter().map(move |t| (t, u)))
            .collect();
        sessions.sort_unstable();
        let mut next = 0;
        for chunk in 0..(Millis::MS_PER_DAY / CHUNK_MS) {
            let t0 = world.day_start(day).0 + chunk * CHUNK_MS;
            advance_streams(world, &windows, &mut is_live, catalog, t0);
            let live_set = LiveSet::new(world, &is_live);
            while next < sessions.len() && sessions[next].0.0 < t0 + CHUNK_MS {
                let (now, user) = sessions[next];
                next += 1;
                let user_state = &mut states[user as usize];
                let query = next_query(world, user, &live_set, &is_live, now, user_state);
                let Ok(evaluation) = engine.evaluate(catalog, &query, Some(&state.flow)) else {
                    continue;
                };
                let measured = options.measured.contains(&query.scene);
                // The scores before exposure control, for the objective;
                // only measured pages need them.
                let base_scores = measured.then(|| evaluation.scores().to_vec());
                if measured && options.record_pages {
                    eval.pages.push(Page {
                        slots: query.slots,
                        items: evaluation
                            .allocation_items()
                            .iter()
                            .enumerate()
                            .filter(|(_, item)| item.eligible)
                            .map(|(i, item)| PageItem {
                                score: item.score,
                                value: evaluation.estimate(i).expected_value,
                                tier: item.tier,
                                streamer: item
                                    .streamer
                                    .and_then(|s| world.streamer_index.get(s).copied()),
                            })
                            .collect(),
                    });
                }
                let ranking = engine.allocate(evaluation, &state.exposure, &query);
                if let Some(base_scores) = &base_scores {
                    eval.measured_requests += 1;
                    let hour = ((now.0 + LOCAL_OFFSET_MS).rem_euclid(Millis::MS_PER_DAY)
                        / 3_600_000) as usize;
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
                let served: Vec<(&str, ItemKind)> = ranking
                    .slots
                    .iter()
                    .map(|s| (s.item_id.as_str(), s.kind))
                    .collect();
                for slot in &ranking.slots {
                    if slot.reasons.contains(Reason::Chuanliu) {
                        eval.flow.impressions += 1;
                        if let Some(b) = brand_of_streamer(slot.streamer_id.as_deref()) {
                            eval.brand_flow_impressions[b as usize] += 1;
                        }
                    }
                    if slot.reasons.contains(Reason::FlowReward) {
                        eval.flow.reward_exposure += slot.exposure;
                    }
                }
                records.clear();
                eval.outcome += world.respond(
                    user,
                    user_state,
                    &query.request_id,
                    now,
                    &served,
                    &mut records,
                );
                for record in &records {
                    if let Record::Purchase(p) = record {
                        let applied = state.flow.apply(&Event::from(p), &engine.params().chuanliu);
                        match p.channel {
                            Channel::BrandSelf => {
                                eval.flow.brand_self_purchases += 1;
                                eval.flow.brand_self_gmv += p.price;
                                if let Some(b) = brand_of_streamer(Some(&p.seller_id)) {
                                    eval.brand_self_gmv[b as usize] += p.price;
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
                }
                eval.requests += 1;
            }
        }
    }
    eval
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
