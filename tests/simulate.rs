//! The simulator end to end. Rules checked: the same seed gives a
//! byte-identical log whatever the thread count; the log reads back whole,
//! in time order, consistent with the summary; simulated users respond to any
//! ranking with position bias and the documented brand-memory (flow) lift; a
//! model trained on a simulated log beats the popularity baseline.

use fairflow::catalog::Catalog;
use fairflow::config::Config;
use fairflow::domain::{ItemKind, Millis, Scene, StreamerKind};
use fairflow::engine::Engine;
use fairflow::model::Model;
use fairflow::sim::{
    self, CatalogSpec, EvalOptions, SimParams, SimSummary, UserState, World, hindsight,
};
use fairflow::traffic::{OnError, Record, TrafficReader, TrafficWriter};
use std::sync::Arc;

fn small_spec() -> CatalogSpec {
    CatalogSpec {
        streamers: 300,
        goods_per_brand: 30,
        arrival_days: 1.0,
        ..CatalogSpec::default()
    }
}

/// A world of the small catalog with `params`.
fn small_world(params: SimParams) -> World {
    let spec = small_spec();
    let catalog = sim::generate(&spec).unwrap();
    World::build(&catalog, params, spec.as_of)
}

/// Params for tests that show one page thousands of times at one instant:
/// fatigue would soon make every click on it unlikely and drown what they
/// measure. `fatigue_is_what_responses_average_to` covers fatigue.
fn without_fatigue(seed: u64, users: usize) -> SimParams {
    let mut params = SimParams::new(seed, users);
    params.response.fatigue = 0.0;
    params
}

fn engine() -> Engine {
    Engine::new(
        Config::embedded_default().unwrap().engine,
        Arc::new(Model::embedded().unwrap()),
    )
}

fn run(users: usize, threads: usize) -> (Vec<u8>, SimSummary) {
    let spec = small_spec();
    let mut catalog = sim::generate(&spec).unwrap();
    let world = World::build(&catalog, SimParams::new(3, users), spec.as_of);
    let engine = engine();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut writer = TrafficWriter::new(Vec::new());
        let summary = sim::simulate(
            &spec,
            &world,
            &engine,
            &mut catalog,
            1,
            &mut writer,
            &|_, _| {},
        )
        .unwrap();
        (writer.finish().unwrap(), summary)
    })
}

#[test]
fn same_seed_gives_identical_logs_on_any_thread_count() {
    let (one, s1) = run(150, 1);
    let (two, s2) = run(150, 2);
    assert_eq!(s1, s2);
    assert!(one == two, "logs differ between 1 and 2 threads");
    assert!(s1.requests > 100, "{s1:?}");
}

#[test]
fn the_log_reads_back_in_time_order_and_matches_the_summary() {
    let (bytes, summary) = run(200, 2);
    let mut reader = TrafficReader::new(bytes.as_slice(), "sim", OnError::Fail);
    let mut last = i64::MIN;
    let (mut ranks, mut impressions, mut clicks, mut purchases, mut status, mut total) =
        (0, 0, 0, 0, 0, 0);
    let mut gmv = 0.0;
    for (i, item) in reader.by_ref().enumerate() {
        let (_, record) = item.expect("every simulated line parses");
        total += 1;
        if i == 0 {
            assert!(matches!(record, Record::Header(_)), "header first");
            continue;
        }
        let t = record.time().unwrap().0;
        assert!(t >= last, "records are in time order");
        last = t;
        match record {
            Record::Rank(r) => {
                ranks += 1;
                assert!(r.served.len() <= r.slots as usize);
                assert!(
                    r.served
                        .iter()
                        .all(|s| s.propensity.is_some_and(|p| p > 0.0 && p <= 1.0))
                );
                let mut ids: Vec<_> = r.candidates.iter().map(|c| (&c.item_id, c.kind)).collect();
                ids.sort();
                ids.dedup();
                assert_eq!(ids.len(), r.candidates.len(), "no duplicate candidates");
            }
            Record::Impression(_) => impressions += 1,
            Record::Click(_) => clicks += 1,
            Record::Purchase(p) => {
                purchases += 1;
                gmv += p.price;
                assert!(p.request_id.is_some() && p.slot_item_id.is_some());
            }
            Record::StreamStatus(_) => status += 1,
            Record::Header(_) | Record::Unknown => panic!("unexpected record"),
        }
    }
    assert_eq!(reader.skipped_count(), 0);
    assert_eq!(ranks, summary.requests);
    assert_eq!(impressions, summary.outcome.impressions);
    assert_eq!(clicks, summary.outcome.clicks);
    assert_eq!(purchases, summary.outcome.purchases);
    assert_eq!(status, summary.stream_status);
    assert_eq!(total, summary.records);
    assert!((gmv - summary.outcome.gmv).abs() < 1e-6 * gmv.max(1.0));
    assert!(clicks > 0 && purchases > 0, "{summary:?}");
}

/// Responses of one user to the same page, many times over (each time a
/// page of its own, so with draws of its own).
fn respond_many(
    world: &World,
    page: &[(&str, ItemKind)],
    remember: Option<u32>,
    n: usize,
) -> (Vec<u64>, u64) {
    let mut clicks_at = vec![0u64; page.len()];
    let mut purchases = 0;
    let now = Millis(world.start.0 + 20 * 3_600_000);
    let mut state = UserState::new(99, 0);
    if let Some(brand) = remember {
        state.remember(brand, now);
    }
    for _ in 0..n {
        let mut out = Vec::new();
        // A heavy user (scrolls deep) with index 0.
        world.respond(0, &mut state, "r", now, page, &mut out);
        for r in out {
            match r {
                Record::Click(c) => clicks_at[c.position as usize] += 1,
                Record::Purchase(_) => purchases += 1,
                _ => {}
            }
        }
    }
    (clicks_at, purchases)
}

#[test]
fn users_respond_to_any_ranking_with_position_bias() {
    let spec = small_spec();
    let catalog = sim::generate(&spec).unwrap();
    let mut params = without_fatigue(5, 1);
    params.segments = [
        params.segments[0].clone(),
        params.segments[0].clone(),
        params.segments[0].clone(),
    ];
    params.segments[0].scroll_depth = 1000.0;
    params.segments[1].scroll_depth = 1000.0;
    params.segments[2].scroll_depth = 1000.0;
    let world = World::build(&catalog, params, spec.as_of);
    // The same ten goods, in two opposite orders: clicks follow the slot.
    let goods: Vec<&str> = world.goods.iter().take(10).map(|g| g.id.as_str()).collect();
    let forward: Vec<(&str, ItemKind)> = goods.iter().map(|g| (*g, ItemKind::Goods)).collect();
    let backward: Vec<(&str, ItemKind)> = forward.iter().rev().copied().collect();
    let (f, _) = respond_many(&world, &forward, None, 4000);
    let (b, _) = respond_many(&world, &backward, None, 4000);
    let top: u64 = f[..3].iter().sum::<u64>() + b[..3].iter().sum::<u64>();
    let bottom: u64 = f[7..].iter().sum::<u64>() + b[7..].iter().sum::<u64>();
    assert!(
        top as f64 > 1.5 * bottom as f64,
        "top {top} vs bottom {bottom}"
    );
}

/// Every record the response to `page` makes about `item`, without ids
/// (they count all of the user's records).
fn answers_about(
    world: &World,
    state: &mut UserState,
    page: &[(&str, ItemKind)],
    item: &str,
) -> Vec<String> {
    let now = Millis(world.start.0 + 20 * 3_600_000);
    let mut out = Vec::new();
    world.respond(0, state, "r", now, page, &mut out);
    out.into_iter()
        .filter_map(|r| {
            let (kind, time, about) = match &r {
                Record::Impression(i) => ("impression", i.time, i.item_id.clone()),
                Record::Click(c) => ("click", c.time, c.item_id.clone()),
                Record::Purchase(p) => ("purchase", p.time, p.slot_item_id.clone()?),
                _ => return None,
            };
            (about == item).then(|| format!("{kind} {}", time.0))
        })
        .collect()
}

#[test]
fn an_item_gets_the_same_answer_whatever_else_the_page_and_history_hold() {
    let spec = small_spec();
    let catalog = sim::generate(&spec).unwrap();
    let mut params = without_fatigue(5, 1);
    for s in &mut params.segments {
        s.scroll_depth = 1000.0;
    }
    let world = World::build(&catalog, params, spec.as_of);
    // Goods of brands other than brand 0, which the second state remembers
    // (its history differs); a goods page creates no memory (shelf goods
    // are sold by their brand), so only draws could move x's answers.
    let goods: Vec<&str> = world
        .goods
        .iter()
        .filter(|g| g.brand != 0)
        .take(12)
        .map(|g| g.id.as_str())
        .collect();
    let (x, others) = (goods[0], &goods[1..]);
    let mut one = UserState::new(1, 0);
    let mut two = UserState::new(2, 0);
    two.remember(0, Millis(world.start.0));
    let (mut same, mut clicked) = (0, 0);
    for page in 0..3_000 {
        // x first on both pages; what follows differs.
        let a: Vec<(&str, ItemKind)> = std::iter::once(x)
            .chain(others.iter().copied().cycle().skip(page % 11).take(4))
            .map(|g| (g, ItemKind::Goods))
            .collect();
        let b: Vec<(&str, ItemKind)> = std::iter::once(x)
            .chain(others.iter().copied().cycle().skip(page % 11 + 5).take(6))
            .map(|g| (g, ItemKind::Goods))
            .collect();
        let answer = answers_about(&world, &mut one, &a, x);
        clicked += answer.iter().any(|r| r.starts_with("click")) as u32;
        same += (answer == answers_about(&world, &mut two, &b, x)) as u32;
    }
    assert_eq!(same, 3_000, "common random numbers for the same item");
    assert!(clicked > 5, "x is clicked now and then: {clicked}");
}

#[test]
fn brand_memory_lifts_purchases_in_the_brands_own_channel() {
    let world = small_world(without_fatigue(5, 1));
    // Goods sold by a brand's own account.
    let (brand, own_goods) = world
        .goods_by_brand
        .iter()
        .enumerate()
        .find_map(|(b, goods)| {
            let seller = world.brand_self[b]?;
            (world.streamers[seller as usize].kind == StreamerKind::BrandSelf && goods.len() >= 5)
                .then(|| {
                    (
                        b as u32,
                        goods
                            .iter()
                            .take(5)
                            .map(|&g| world.goods[g as usize].id.as_str())
                            .collect::<Vec<_>>(),
                    )
                })
        })
        .unwrap();
    let page: Vec<(&str, ItemKind)> = own_goods.iter().map(|g| (*g, ItemKind::Goods)).collect();
    let (_, without) = respond_many(&world, &page, None, 20_000);
    let (_, with) = respond_many(&world, &page, Some(brand), 20_000);
    // Click odds x1.5 and purchase odds x2.5: well above 1.5x more purchases.
    assert!(
        with as f64 > 1.8 * without as f64,
        "with memory {with}, without {without}"
    );
}

#[test]
fn a_model_trained_on_a_simulated_log_beats_popularity() {
    let (bytes, _) = run(1500, 2);
    let mut catalog = sim::generate(&small_spec()).unwrap();
    let reader = TrafficReader::new(bytes.as_slice(), "sim", OnError::Fail);
    let params = fairflow::train::TrainParams {
        iterations: 300,
        ..Default::default()
    };
    let (model, report) = fairflow::train::train(
        &engine(),
        &mut catalog,
        reader.map(|r| r.map(|(_, rec)| rec)),
        &params,
    )
    .unwrap();
    assert!(
        report.pctr.test_auc > report.pctr.popularity_auc + 0.03,
        "{report:?}"
    );
    assert!(
        report.pctr.test_logloss < report.pctr.constant_logloss,
        "{report:?}"
    );
    assert!(report.pcvr.test_auc > 0.55, "{report:?}");
    // What train writes is a model the service loads.
    Model::from_json(&model.to_string(), "trained").unwrap();
}

#[test]
fn evaluation_is_deterministic_and_targets_steer_the_shares() {
    let spec = small_spec();
    let start = sim::generate(&spec).unwrap();
    let world = World::build(&start, SimParams::new(9, 300), spec.as_of);
    let run = |toml: &str| {
        let config = Config::from_toml(toml, "t", None).unwrap();
        let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
        let options = EvalOptions {
            measured: vec![Scene::Recommend, Scene::Mall, Scene::Search],
            record_pages: true,
            oracle: None,
        };
        let (eval, _) = sim::evaluate(&world, &engine, start.clone(), 1, &options);
        (eval, engine)
    };
    let (off, _) = run("[quotas]\nscenes = []\n");
    assert_eq!(
        off,
        run("[quotas]\nscenes = []\n").0,
        "same seed, same evaluation"
    );
    assert!(off.requests > 100 && off.outcome.impressions > 0);
    // Ask for much more small-tier exposure than organic ranking gives.
    let organic = off.tier_shares();
    let target_small = (organic[2] + 0.15).min(0.9);
    let toml = format!(
        "[quotas.targets]\nenabled = true\ntop = 0.0\nmid = {:.3}\nsmall = {target_small:.3}\n",
        1.0 - target_small
    );
    let (online, engine) = run(&toml);
    let steered = online.tier_shares();
    assert!(
        steered[2] > organic[2] + 0.05,
        "organic {organic:?}, steered {steered:?}"
    );

    // The online controller's pages are one way to reach its realized
    // shares on these very pages, so the hindsight optimum at those shares
    // is at least as good (up to the solver's tolerance).
    assert_eq!(online.pages.len() as u64, online.measured_requests);
    let best = hindsight::solve(
        &online.pages,
        world.streamers.len(),
        &engine.params().quotas,
        &hindsight::Constraints {
            targets: Some(steered),
            concentration: 0.0,
        },
    );
    assert!(best.share_gap_pp < 0.2, "{best:?}");
    assert!(
        best.outcome.objective >= online.objective * 0.995,
        "hindsight {} < online {}",
        best.outcome.objective,
        online.objective
    );
    let free = hindsight::solve(
        &online.pages,
        world.streamers.len(),
        &engine.params().quotas,
        &hindsight::Constraints::default(),
    );
    assert!(free.outcome.objective >= best.outcome.objective);
}

#[test]
fn the_flow_serves_attributes_and_rewards_in_the_simulated_world_and_off_means_off() {
    let spec = small_spec();
    let start = sim::generate(&spec).unwrap();
    let world = World::build(&start, SimParams::new(9, 400), spec.as_of);
    let run = |toml: &str| {
        let config = Config::from_toml(toml, "t", None).unwrap();
        let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
        let options = EvalOptions {
            measured: vec![Scene::Recommend],
            record_pages: false,
            oracle: None,
        };
        let (eval, served) = sim::evaluate(&world, &engine, start.clone(), 2, &options);
        (eval, served.state, engine)
    };
    let (off, off_state, _) = run("[chuanliu]\nenabled = false\n");
    assert_eq!(off.flow.impressions, 0);
    assert!(
        off.flow.influencer_purchases > 0,
        "affinities come from purchases through influencers"
    );
    let on_toml = "[chuanliu]\nenroll_all_brands = true\nfrequency_cap = 2\n";
    let (on, state, engine) = run(on_toml);
    assert_eq!(on, run(on_toml).0, "same seed, same evaluation");
    let flow = &on.flow;
    assert!(
        flow.impressions > 0 && flow.attributed_purchases > 0,
        "{flow:?}"
    );
    assert!(flow.attributed_purchases <= flow.brand_self_purchases);
    let now = world.day_start(2);
    let totals = state.flow.sweep(now, &engine.params().chuanliu);
    assert!(totals.rewarded_streamers > 0, "influencers earned rewards");
    assert_eq!(totals.counts.impressions, flow.impressions);
    assert_eq!(totals.counts.conversions, flow.attributed_purchases);
    // Affinities were recorded with the flow off too, ready to be used.
    let params = &engine.params().chuanliu;
    assert!(off_state.flow.sweep(now, params).active_affinities > 0);
}

#[test]
fn expected_gmv_is_what_responses_average_to() {
    let world = small_world(without_fatigue(5, 1));
    // A brand's own stream, at slot 2 behind two items the world does not
    // know (seen, never clicked), to a user who remembers the brand: the
    // scroll depth, examination and the memory's lift all count.
    let (brand, stream) = (0..world.brand_ids.len())
        .find_map(|b| Some((b as u32, world.brand_stream[b]?)))
        .unwrap();
    let id = world.streams[stream as usize].id.as_str();
    let page = [
        ("nowhere-1", ItemKind::Goods),
        ("nowhere-2", ItemKind::Goods),
        (id, ItemKind::LiveStream),
    ];
    let now = world.start;
    let mut state = UserState::new(1, 0);
    state.remember(brand, now);
    let expected = world.expected_gmv(0, &state, id, ItemKind::LiveStream, 2, now);
    let forgotten = world.expected_gmv(0, &UserState::new(1, 0), id, ItemKind::LiveStream, 2, now);
    assert!(expected > forgotten * 2.0, "{expected} vs {forgotten}");
    let n = 100_000;
    let mut out = Vec::new();
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for _ in 0..n {
        out.clear();
        let gmv = world.respond(0, &mut state, "r", now, &page, &mut out).gmv;
        sum += gmv;
        sum_sq += gmv * gmv;
    }
    let mean = sum / n as f64;
    let se = ((sum_sq / n as f64 - mean * mean) / n as f64).sqrt();
    assert!(sum > 0.0, "some purchases");
    assert!(
        (mean - expected).abs() < 4.0 * se,
        "realized {mean:.4} (se {se:.4}), expected {expected:.4}"
    );
}

#[test]
fn fatigue_is_what_responses_average_to() {
    // Stronger than the default, so that one impression's effect on clicks
    // stands well clear of the sampling error.
    let mut params = SimParams::new(5, 1);
    params.response.fatigue = 0.5;
    let world = small_world(params);
    let p = &world.params.response;
    let id = world.streams[0].id.as_str();
    let page = [(id, ItemKind::LiveStream)];
    let fresh = world.expected_gmv(
        0,
        &UserState::new(1, 0),
        id,
        ItemKind::LiveStream,
        0,
        world.start,
    );

    // One earlier impression (slot 0 is always reached) lowers the click
    // odds by exp(-fatigue); it fades with its half-life and is gone after
    // a few of them.
    let mut state = UserState::new(1, 0);
    world.respond(0, &mut state, "r", world.start, &page, &mut Vec::new());
    let at = |hours: f64| {
        let now = Millis(world.start.0 + (hours * 3_600_000.0) as i64);
        world.expected_gmv(0, &state, id, ItemKind::LiveStream, 0, now)
    };
    let (tired, later, rested) = (
        at(0.0),
        at(p.fatigue_half_life_hours),
        at(p.fatigue_half_life_hours * 20.0),
    );
    let odds = (-p.fatigue).exp();
    // Clicks are rare, so the chance falls nearly as the odds do.
    assert!(
        tired > fresh * odds && tired < fresh * odds * 1.05,
        "{tired} vs {fresh}"
    );
    assert!(
        tired < later && later < fresh,
        "{tired} < {later} < {fresh}"
    );
    assert!((rested - fresh).abs() < fresh * 1e-4, "{rested} vs {fresh}");

    // Realized: a page after one priming impression of the same stream at
    // the same instant, against a page without; pages are 20 half-lives
    // apart. Fatigue changes clicks only, so their ratio is the expected
    // GMVs' ratio.
    let mut state = UserState::new(1, 0);
    let gap = (p.fatigue_half_life_hours * 20.0 * 3_600_000.0) as i64;
    let n = 400_000;
    let (mut primed, mut unprimed) = (0u64, 0u64);
    for i in 0..2 * n {
        let now = Millis(world.start.0 + i * gap);
        if i % 2 == 0 {
            world.respond(0, &mut state, "prime", now, &page, &mut Vec::new());
        }
        let clicks = world
            .respond(0, &mut state, "r", now, &page, &mut Vec::new())
            .clicks;
        *if i % 2 == 0 {
            &mut primed
        } else {
            &mut unprimed
        } += clicks;
    }
    let ratio = primed as f64 / unprimed as f64;
    let se = ratio * (1.0 / primed as f64 + 1.0 / unprimed as f64).sqrt();
    assert!(
        (ratio - tired / fresh).abs() < 4.0 * se && 1.0 - ratio > 4.0 * se,
        "realized click ratio {ratio:.3} (se {se:.3}), expected {:.3}",
        tired / fresh
    );
}

#[test]
fn a_brand_memory_fades_with_its_half_life_and_is_then_forgotten() {
    let world = small_world(SimParams::new(5, 1));
    let p = &world.params.response;
    let (brand, stream) = (0..world.brand_ids.len())
        .find_map(|b| Some((b as u32, world.brand_stream[b]?)))
        .unwrap();
    let id = world.streams[stream as usize].id.as_str();
    let mut state = UserState::new(1, 0);
    state.remember(brand, world.start);
    let day = 86_400_000.0;
    let at = |days: f64| Millis(world.start.0 + (days * day) as i64);
    assert_eq!(state.memory(brand, at(0.0), p), 1.0);
    let half = state.memory(brand, at(p.flow_memory_half_life_days), p);
    assert!((half - 0.5).abs() < 1e-9, "{half}");
    assert_eq!(state.memory(brand, at(p.flow_memory_days + 0.01), p), 0.0);
    assert_eq!(state.memory(brand + 1, at(0.0), p), 0.0);

    let value = |state: &UserState, days: f64| {
        world.expected_gmv(0, state, id, ItemKind::LiveStream, 0, at(days))
    };
    let nobody = UserState::new(1, 0);
    let (fresh, faded, gone) = (
        value(&state, 0.0),
        value(&state, p.flow_memory_half_life_days),
        value(&state, p.flow_memory_days + 0.01),
    );
    assert!(fresh > faded && faded > gone, "{fresh} > {faded} > {gone}");
    assert_eq!(gone, value(&nobody, p.flow_memory_days + 0.01));
}

fn flow_engine(toml: &str) -> Engine {
    let config = Config::from_toml(toml, "t", None).unwrap();
    Engine::new(config.engine, Arc::new(Model::embedded().unwrap()))
}

/// The small catalog's world with 1,000 users, at its start.
fn thousand_users() -> (Catalog, World) {
    let spec = small_spec();
    let start = sim::generate(&spec).unwrap();
    let world = World::build(&start, SimParams::new(9, 1000), spec.as_of);
    (start, world)
}

fn flow_off() -> (String, Engine) {
    (
        "off".to_string(),
        flow_engine("[chuanliu]\nenabled = false\n"),
    )
}

const FLOW_ON: &str = "[chuanliu]\nfrequency_cap = 2\n[chuanliu.budget]\ndaily_impressions = 300\n";

#[test]
fn a_branch_of_a_served_world_serves_as_the_world_itself_would() {
    let spec = small_spec();
    let start = sim::generate(&spec).unwrap();
    let world = World::build(&start, SimParams::new(9, 300), spec.as_of);
    let engine = flow_engine(FLOW_ON);
    let options = EvalOptions {
        measured: vec![Scene::Recommend],
        ..EvalOptions::default()
    };
    let mut served = sim::Served::new(&world, start, 0.5);
    served.serve(&world, &engine, 1, &options);
    let mut branch = served.branch();
    let (a, b) = (
        served.serve(&world, &engine, 1, &options),
        branch.serve(&world, &engine, 1, &options),
    );
    assert_eq!(a, b, "the branch carries everything that evolves");
    assert!(a.flow.impressions > 0, "{:?}", a.flow);
    assert_eq!(a.flow.other_impressions, 0, "paused brands are never shown");
}

#[test]
fn the_oracle_lifts_participants_own_live_gmv_within_the_flows_budget() {
    let (start, world) = thousand_users();
    let engines = vec![flow_off(), ("on".to_string(), flow_engine(FLOW_ON))];
    let design = sim::report::Design {
        warmup_days: 2,
        enrolled_share: 0.5,
        oracle: Some(sim::OracleKnows::Value),
    };
    let days = 1;
    let c = sim::report::compare(
        &world,
        &start,
        &engines,
        days,
        &[Scene::Recommend],
        design,
        sim::report::Extras::default(),
    );
    let [off, on, oracle] = &c.rows[..] else {
        panic!("a row per config and the oracle's: {:?}", c.rows.len());
    };
    assert_eq!(oracle.name, "oracle");
    assert_eq!(off.flow.impressions, 0);
    assert!(on.flow.impressions > 0);
    for row in [on, oracle] {
        assert!(
            row.flow.impressions <= 300 * u64::from(days),
            "{:?}",
            row.flow
        );
        assert_eq!(row.flow.other_impressions, 0, "{:?}", row.flow);
    }
    // Slot 0 for the best remembered live brand: more own-live GMV for the
    // participants than without the flow, and the flow's lift is a share
    // of that.
    let lift = oracle.live_lift(off).unwrap();
    assert!(lift.change > 2.0 * lift.standard_error, "{lift:?}");
    assert_eq!(oracle.efficiency, Some(1.0));
    assert_eq!(off.efficiency, None);
    let efficiency = on.efficiency.unwrap();
    let expected = (on.flow.participant_live_gmv - off.flow.participant_live_gmv)
        / (oracle.flow.participant_live_gmv - off.flow.participant_live_gmv);
    assert!((efficiency - expected).abs() < 1e-12);
    // The ground truth's expected net effect of the pages the flow and the
    // oracle acted on: positive on participants' own live streams, nothing
    // where nothing acted.
    assert_eq!(off.flow.expected_net_gmv, 0.0);
    assert!(on.flow.expected_net_live_gmv > 0.0, "{:?}", on.flow);
    assert!(oracle.flow.expected_net_live_gmv > 0.0, "{:?}", oracle.flow);
    let text = c.to_string();
    assert!(text.contains("eff%") && text.contains("oracle"), "{text}");
    // An oracle that knows only how fresh each memory is, not the user's
    // taste for the brand, gets less from the same budget and slot.
    let memory = sim::report::Design {
        oracle: Some(sim::OracleKnows::Memory),
        ..design
    };
    let by_memory = sim::report::compare(
        &world,
        &start,
        &engines,
        days,
        &[Scene::Recommend],
        memory,
        sim::report::Extras::default(),
    );
    let fresh = &by_memory.rows[2];
    assert!(fresh.flow.impressions > 0 && fresh.flow.impressions <= 300 * u64::from(days));
    assert!(
        fresh.flow.expected_net_live_gmv < oracle.flow.expected_net_live_gmv,
        "{:?} against {:?}",
        fresh.flow,
        oracle.flow
    );
}

#[test]
fn where_the_flow_only_boosts_the_oracle_moves_only_a_proposed_stream() {
    let (start, world) = thousand_users();
    let oracle_in = |mode: &str| {
        let config = format!("{FLOW_ON}[chuanliu.scenes.recommend]\nmode = \"{mode}\"\n");
        let engines = vec![flow_off(), (mode.to_string(), flow_engine(&config))];
        let design = sim::report::Design {
            warmup_days: 2,
            enrolled_share: 0.5,
            oracle: Some(sim::OracleKnows::Value),
        };
        let c = sim::report::compare(
            &world,
            &start,
            &engines,
            1,
            &[Scene::Recommend],
            design,
            sim::report::Extras::default(),
        );
        c.rows[2].flow.impressions
    };
    let (inject, boost) = (oracle_in("inject"), oracle_in("boost"));
    assert!(inject > 0, "the oracle adds the stream where the flow may");
    assert!(
        boost < inject,
        "boost: {boost} against inject: {inject}: retrieval seldom proposes it"
    );
}

#[test]
fn the_holdout_estimates_what_the_flow_adds_in_the_simulated_world() {
    let (start, world) = thousand_users();
    let engines = vec![
        flow_off(),
        (
            "held".to_string(),
            flow_engine(
                &format!("{FLOW_ON}[chuanliu.scenes.recommend]\nmode = \"inject\"\nboost = 5.0\n")
                    .replace(
                        "[chuanliu]\n",
                        "[chuanliu]\nholdout_share = 0.3\nenroll_all_brands = true\n",
                    ),
            ),
        ),
    ];
    let c = sim::report::compare(
        &world,
        &start,
        &engines,
        2,
        &[Scene::Recommend],
        sim::report::Design::default(),
        sim::report::Extras::default(),
    );
    let [off, held] = &c.rows[..] else {
        panic!("a row per config: {:?}", c.rows.len());
    };
    let (flow, h) = (&held.flow, &held.flow.holdout);
    let outside = off.flow.holdout;
    assert_eq!(
        (outside.treated_units, outside.holdout_units),
        (0, 0),
        "with no share, no affinity is a unit"
    );
    assert!(
        h.treated_units > 2 * h.holdout_units / 3 && h.holdout_units > 0,
        "{h:?}"
    );
    assert!(h.ghost.impressions > 0, "held-out users get ghosts: {h:?}");
    // Attribution counts only flow impressions the users scrolled to, and
    // only sales in the brand's own live stream.
    assert!(
        0 < flow.seen_impressions && flow.seen_impressions <= flow.impressions,
        "{flow:?}"
    );
    assert!(
        flow.attributed_purchases <= flow.own_live_purchases,
        "{flow:?}"
    );
    // The service's estimate covers what the flow did to the brands' own
    // live streams here (every brand takes part).
    let truth = flow.participant_live_gmv - off.flow.participant_live_gmv;
    let own = h.own_live_gmv.expect("both arms have units");
    assert!(
        own.low <= truth && truth <= own.high,
        "{truth} outside {own:?}"
    );
    assert!(truth > 0.0, "the flow adds own-live GMV: {truth}");
    assert!(c.to_string().contains("holdout.live"));
}
