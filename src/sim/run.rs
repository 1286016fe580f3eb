//! The generation loop: day by day, in 10-minute chunks, stream schedules
//! update the catalog (logged as `stream_status`), each user with a session
//! in the chunk gets candidates from a retrieval model, the logging policy
//! (the engine's scores, sampled Plackett-Luce) serves a page, and the user
//! responds. Users are independent, so a chunk's users run in parallel
//! (rayon); records are then sorted by time and streamed to the writer, so
//! memory holds one chunk, not the log.

use super::response::{PageOutcome, UserState};
use super::world::{CATEGORIES, CHUNK_MS, World, pick_category};
use crate::catalog::Catalog;
use crate::domain::{ItemKind, Millis, Scene};
use crate::engine::{Candidate, Engine, RankQuery};
use crate::traffic::{
    Header, PropensityKind, RankRecord, Record, ServedSlot, StreamStatus, TrafficWriter,
};
use foldhash::{HashSet, HashSetExt};
use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::seq::IndexedRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// Orders records in the log: time, then stream updates before user events,
/// then user, then the user's own sequence. Keys are unique, so the order
/// does not depend on how work was split across threads.
type Key = (i64, u8, u32, u64);

/// What a simulation produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimSummary {
    pub days: u32,
    pub users: usize,
    pub requests: u64,
    pub candidates: u64,
    pub stream_status: u64,
    pub records: u64,
    pub bytes: u64,
    #[serde(flatten)]
    pub outcome: PageOutcome,
}

/// Puts streams on or off air at chunk start `t0` per their windows, in
/// `is_live` and the catalog; returns the changes.
pub(super) fn advance_streams(
    world: &World,
    windows: &[super::world::Window],
    is_live: &mut [bool],
    catalog: &mut Catalog,
    t0: i64,
) -> Vec<(u32, bool)> {
    let mut changes = Vec::new();
    for (s, window) in windows.iter().enumerate() {
        let live = window.is_some_and(|(a, b)| a.0 <= t0 && t0 < b.0);
        if live != is_live[s] {
            is_live[s] = live;
            catalog.set_live(&world.streams[s].id, live);
            changes.push((s as u32, live));
        }
    }
    changes
}

/// Streams on air during one chunk, for retrieval.
pub(super) struct LiveSet {
    all: Vec<u32>,
    by_popularity: Option<WeightedIndex<f64>>,
    by_category: Vec<Vec<u32>>,
}

impl LiveSet {
    pub(super) fn new(world: &World, live: &[bool]) -> LiveSet {
        let all: Vec<u32> = (0..live.len() as u32)
            .filter(|&s| live[s as usize])
            .collect();
        let weights = all
            .iter()
            .map(|&s| world.streamers[world.streams[s as usize].streamer as usize].popularity);
        let mut by_category = vec![Vec::new(); CATEGORIES];
        for &s in &all {
            by_category[world.streams[s as usize].main_category].push(s);
        }
        LiveSet {
            by_popularity: WeightedIndex::new(weights).ok(),
            all,
            by_category,
        }
    }
}

/// The user's next feed request: the scene, its slot count, and upstream
/// retrieval's candidate set, like a feed service would send (no
/// duplicates; streams only if on air; goods only once their seller exists).
pub(super) fn next_query(
    world: &World,
    user_idx: u32,
    live: &LiveSet,
    is_live: &[bool],
    now: Millis,
    state: &mut UserState,
) -> RankQuery {
    let (scene, slots, candidates) = retrieve(world, user_idx, live, is_live, now, state.rng());
    RankQuery {
        request_id: state.next_id("r", user_idx),
        user_id: world.users[user_idx as usize].id.clone(),
        scene,
        slots,
        candidates,
        now,
    }
}

fn retrieve(
    world: &World,
    user_idx: u32,
    live: &LiveSet,
    is_live: &[bool],
    now: Millis,
    rng: &mut impl Rng,
) -> (Scene, u32, Vec<Candidate>) {
    let user = &world.users[user_idx as usize];
    let n = world.params.candidates;
    let scene = match rng.random_range(0..100) {
        0..60 => Scene::Recommend,
        60..70 => Scene::Follow,
        70..85 => Scene::Mall,
        85..95 => Scene::Search,
        _ => Scene::Shop,
    };
    let mut out = Vec::with_capacity(n);
    let follows = |streamer: u32| user.follows(streamer).then_some(true);
    let mut streams_seen = HashSet::with_capacity(n);
    let mut add_stream = |s: u32, out: &mut Vec<Candidate>| {
        if streams_seen.insert(s) {
            out.push(Candidate {
                user_follows: follows(world.streams[s as usize].streamer),
                ..Candidate::new(world.streams[s as usize].id.clone(), ItemKind::LiveStream)
            });
        }
    };
    let mut goods_seen = HashSet::with_capacity(n);
    let mut add_goods = |g: u32, out: &mut Vec<Candidate>| {
        let goods = &world.goods[g as usize];
        if world.streamers[goods.seller as usize].created_at <= now && goods_seen.insert(g) {
            out.push(Candidate {
                user_follows: follows(goods.seller),
                ..Candidate::new(goods.id.clone(), ItemKind::Goods)
            });
        }
    };
    // Only the recommend and follow scenes look at followed streams.
    let followed_live = || {
        user.follows
            .iter()
            .filter_map(|&st| world.stream_of[st as usize])
            .filter(|&s| is_live[s as usize])
    };
    let slots = match scene {
        Scene::Recommend => {
            for s in followed_live().take(n / 10) {
                add_stream(s, &mut out);
            }
            // Half the streams match the user's taste, half are what is
            // popular right now: retrieval leans to the head.
            for attempt in 0..n {
                if out.len() >= n / 2 {
                    break;
                }
                let s = if attempt % 2 == 0 {
                    live.by_category[pick_category(user, rng)]
                        .choose(rng)
                        .copied()
                } else {
                    live.by_popularity.as_ref().map(|w| live.all[w.sample(rng)])
                };
                if let Some(s) = s {
                    add_stream(s, &mut out);
                }
            }
            for _ in 0..2 * n {
                if out.len() >= n {
                    break;
                }
                if let Some(&g) = world.goods_by_category[pick_category(user, rng)].choose(rng) {
                    add_goods(g, &mut out);
                }
            }
            20
        }
        Scene::Follow => {
            for s in followed_live() {
                add_stream(s, &mut out);
                for &g in world.streams[s as usize].cart.iter().take(3) {
                    add_goods(g, &mut out);
                }
            }
            10
        }
        Scene::Mall | Scene::Search => {
            let category = pick_category(user, rng);
            for _ in 0..2 * n {
                if out.len() >= n {
                    break;
                }
                let c = if scene == Scene::Search {
                    category
                } else {
                    pick_category(user, rng)
                };
                if let Some(&g) = world.goods_by_category[c].choose(rng) {
                    add_goods(g, &mut out);
                }
            }
            20
        }
        Scene::Shop => {
            if let Some(&brand) = world.brands_by_category[pick_category(user, rng)].choose(rng) {
                if let Some(s) = world.brand_stream[brand as usize].filter(|&s| is_live[s as usize])
                {
                    add_stream(s, &mut out);
                }
                for &g in world.goods_by_brand[brand as usize].iter().take(n) {
                    add_goods(g, &mut out);
                }
            }
            10
        }
    };
    (scene, slots, out)
}

/// Plackett-Luce sampling of `k` slots with weights score^(1/temperature):
/// the page, and each slot's probability given the slots above it.
fn sample_page(
    scores: &[f64],
    eligible: &[bool],
    k: usize,
    temperature: f64,
    rng: &mut impl Rng,
) -> Vec<(usize, f64)> {
    let mut weights: Vec<f64> = scores
        .iter()
        .zip(eligible)
        .map(|(&s, &e)| {
            if e {
                s.max(1e-12).powf(1.0 / temperature)
            } else {
                0.0
            }
        })
        .collect();
    let mut page = Vec::with_capacity(k);
    for _ in 0..k {
        let total: f64 = weights.iter().sum();
        if total <= 0.0 || !total.is_finite() {
            break;
        }
        let mut x = rng.random::<f64>() * total;
        let mut chosen = weights.iter().rposition(|&w| w > 0.0).expect("total > 0");
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 && x < w {
                chosen = i;
                break;
            }
            x -= w;
        }
        page.push((chosen, weights[chosen] / total));
        weights[chosen] = 0.0;
    }
    page
}

/// One user's work in one chunk: every session before `until`.
#[allow(clippy::too_many_arguments)]
fn run_user(
    world: &World,
    engine: &Engine,
    catalog: &Catalog,
    live: &LiveSet,
    is_live: &[bool],
    user_idx: u32,
    state: &mut UserState,
    sessions: &mut std::iter::Peekable<std::vec::IntoIter<Millis>>,
    until: i64,
    policy: &str,
) -> (Vec<(Key, Vec<u8>)>, SimSummary) {
    let mut lines = Vec::new();
    let mut summary = SimSummary::default();
    let mut records = Vec::new();
    while let Some(&now) = sessions.peek() {
        if now.0 >= until {
            break;
        }
        sessions.next();
        let query = next_query(world, user_idx, live, is_live, now, state);
        let page = match engine.evaluate(catalog, &query, None) {
            Ok(evaluation) => sample_page(
                evaluation.scores(),
                evaluation.eligible(),
                query.slots as usize,
                world.params.policy_temperature,
                state.rng(),
            ),
            // Retrieval only builds valid queries; a refusal would be a bug
            // in the simulator, and the request is logged unserved.
            Err(_) => Vec::new(),
        };
        let served: Vec<(&str, ItemKind)> = page
            .iter()
            .map(|&(i, _)| {
                (
                    query.candidates[i].item_id.as_str(),
                    query.candidates[i].kind,
                )
            })
            .collect();
        records.clear();
        let outcome = world.respond(
            user_idx,
            state,
            &query.request_id,
            now,
            &served,
            &mut records,
        );
        summary.outcome += outcome;
        summary.requests += 1;
        summary.candidates += query.candidates.len() as u64;

        let rank = Record::Rank(RankRecord {
            time: now,
            served: page
                .iter()
                .enumerate()
                .map(|(position, &(i, propensity))| ServedSlot {
                    item_id: query.candidates[i].item_id.to_string(),
                    kind: query.candidates[i].kind,
                    position: Some(position as u32),
                    propensity: Some(propensity),
                    propensity_kind: Some(PropensityKind::Cascade),
                })
                .collect(),
            request_id: query.request_id,
            user_id: query.user_id,
            scene: query.scene,
            slots: query.slots,
            candidates: query.candidates,
            policy: Some(policy.to_string()),
            arms: None,
        });
        for record in std::iter::once(&rank).chain(records.iter()) {
            let mut line = Vec::with_capacity(256);
            record.write_line(&mut line);
            let t = record.time().expect("user records carry a time").0;
            lines.push(((t, 1, user_idx, state.next_seq()), line));
        }
    }
    (lines, summary)
}

/// Runs the simulation of `world` (built from `spec`'s catalog), writing
/// the log to `out`. `engine` is the logging
/// policy; `catalog` is the state at the start (stream status changes are
/// applied to it as the simulation goes). `progress(done, total)` is called
/// after every chunk.
pub fn simulate<W: Write>(
    spec: &super::CatalogSpec,
    world: &World,
    engine: &Engine,
    catalog: &mut Catalog,
    days: u32,
    out: &mut TrafficWriter<W>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> std::io::Result<SimSummary> {
    let mut summary = SimSummary {
        days,
        users: world.users.len(),
        ..SimSummary::default()
    };
    let mut header = Header::new("fairflow simulate");
    header.seed = Some(world.params.seed);
    header.catalog = Some("catalog".into());
    let simulation = super::Simulation {
        catalog: spec.clone(),
        params: world.params.clone(),
    };
    header.simulation = Some(Box::new(
        serde_json::to_value(&simulation).expect("the simulation's spec serializes"),
    ));
    out.write(&Record::Header(header))?;
    summary.records += 1;

    let policy = format!(
        "sim plackett-luce t={} config {} model {}",
        world.params.policy_temperature,
        engine.params().version,
        engine.model().version()
    );
    let mut states = world.user_states();
    let mut is_live = world.live_flags(catalog);
    let chunks_per_day = (Millis::MS_PER_DAY / CHUNK_MS) as u64;
    let total = chunks_per_day * days as u64;
    let mut pending: Vec<(Key, Vec<u8>)> = Vec::new();
    let mut buf = Vec::new();

    for day in 0..days {
        let windows = world.windows(day);
        let mut sessions: Vec<_> = (0..world.users.len() as u32)
            .into_par_iter()
            .map(|u| world.sessions(u, day).into_iter().peekable())
            .collect();
        for chunk in 0..chunks_per_day {
            let t0 = world.day_start(day).0 + chunk as i64 * CHUNK_MS;
            let t1 = t0 + CHUNK_MS;
            // Streams go on or off air at chunk boundaries.
            let mut batch: Vec<(Key, Vec<u8>)> = std::mem::take(&mut pending);
            for (s, live) in advance_streams(world, &windows, &mut is_live, catalog, t0) {
                let mut line = Vec::new();
                Record::StreamStatus(StreamStatus {
                    time: Millis(t0),
                    stream_id: world.streams[s as usize].id.clone(),
                    live,
                })
                .write_line(&mut line);
                batch.push(((t0, 0, 0, u64::from(s)), line));
                summary.stream_status += 1;
            }
            let live_set = LiveSet::new(world, &is_live);
            let catalog_now: &Catalog = catalog;
            let results: Vec<_> = states
                .par_iter_mut()
                .zip(sessions.par_iter_mut())
                .enumerate()
                .filter_map(|(u, (state, sess))| {
                    sess.peek().filter(|t| t.0 < t1)?;
                    Some(run_user(
                        world,
                        engine,
                        catalog_now,
                        &live_set,
                        &is_live,
                        u as u32,
                        state,
                        sess,
                        t1,
                        &policy,
                    ))
                })
                .collect();
            for (lines, s) in results {
                batch.extend(lines);
                summary.requests += s.requests;
                summary.candidates += s.candidates;
                summary.outcome += s.outcome;
            }
            // Write what happened in this chunk; clicks and purchases that
            // land later wait for their chunk.
            batch.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let cut = batch.partition_point(|(k, _)| k.0 < t1);
            pending = batch.split_off(cut);
            buf.clear();
            for (_, line) in &batch {
                buf.extend_from_slice(line);
            }
            out.write_raw(&buf)?;
            summary.records += batch.len() as u64;
            summary.bytes += buf.len() as u64;
            progress(day as u64 * chunks_per_day + chunk + 1, total);
        }
    }
    pending.sort_unstable_by_key(|(key, _)| *key);
    for (_, line) in &pending {
        out.write_raw(line)?;
        summary.records += 1;
        summary.bytes += line.len() as u64;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn plackett_luce_propensities_are_conditional_probabilities() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let scores = [1.0, 2.0, 3.0, 0.0];
        let eligible = [true, true, true, false];
        let page = sample_page(&scores, &eligible, 4, 1.0, &mut rng);
        assert_eq!(page.len(), 3, "ineligible items are never placed");
        let mut left: f64 = 6.0;
        for &(i, p) in &page {
            assert!((p - scores[i] / left).abs() < 1e-12);
            left -= scores[i];
        }
        // Low temperature concentrates on the best.
        let firsts = (0..200)
            .filter(|_| sample_page(&scores, &eligible, 1, 0.1, &mut rng)[0].0 == 2)
            .count();
        assert!(firsts > 190, "{firsts}");
    }
}
