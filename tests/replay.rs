//! Replay against what a real server served: a server with its traffic log
//! on ranks requests one at a time (with purchases through influencers in
//! between, so the chuanliu flow acts) and writes its log; replaying that
//! log with one shard, the same config and an empty start state gives every
//! page it served, slot for slot. Any shard count gives the same result on
//! every run.

mod common;

use common::TestServer;
use fairflow::catalog::Catalog;
use fairflow::config::Config;
use fairflow::domain::{ItemKind, Reason, StreamerKind};
use fairflow::engine::Engine;
use fairflow::model::Model;
use fairflow::proto::v1 as pb;
use fairflow::proto::v1::event_service_client::EventServiceClient;
use fairflow::replay;
use fairflow::sim::ItemPool;
use rand::SeedableRng;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

const T0: i64 = 1_795_132_800_000;
const REQUESTS: usize = 60;

fn config_text(log_dir: &std::path::Path) -> String {
    format!(
        r#"
[traffic_log]
dir = "{}"
[chuanliu]
enroll_all_brands = true
"#,
        log_dir.display()
    )
}

/// Brands whose own stream is live in the demo catalog.
fn live_brands(catalog: &Catalog) -> Vec<String> {
    let mut brands: Vec<String> = catalog
        .streamers()
        .filter(|s| s.kind == StreamerKind::BrandSelf)
        .filter_map(|s| s.brand_id.clone())
        .filter(|b| catalog.live_self_stream(b).is_some())
        .collect();
    brands.sort();
    brands.truncate(4);
    brands
}

#[tokio::test]
async fn a_replay_of_a_servers_own_log_reproduces_every_page_it_served() {
    let logs = tempfile::tempdir().unwrap();
    let text = config_text(logs.path());
    let server = TestServer::with_config(&text).await;
    let catalog = Catalog::embedded_demo(128).unwrap();
    let brands = live_brands(&catalog);
    assert!(!brands.is_empty());
    let pool = ItemPool::from_catalog(&catalog);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut rank = server.rank_client().await;
    let mut events = EventServiceClient::new(server.channel().await);

    let mut served = Vec::new();
    for i in 0..REQUESTS {
        let user = format!("rp-user-{}", i % 6);
        let time_ms = T0 + i as i64 * 60_000;
        if i % 5 == 0 {
            let purchase = pb::Event {
                event_id: format!("rp-e{i}"),
                time_ms: time_ms - 1,
                user_id: user.clone(),
                kind: Some(pb::event::Kind::Purchase(pb::Purchase {
                    item_id: "g000001".into(),
                    brand_id: brands[i % brands.len()].clone(),
                    seller_streamer_id: "s00300".into(),
                    channel: pb::SaleChannel::Distribution as i32,
                    price: 30.0,
                    venue: pb::SaleVenue::LiveStream.into(),
                })),
            };
            let reply = events
                .ingest(pb::IngestRequest {
                    events: vec![purchase],
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(reply.accepted, 1);
        }
        let candidates = pool
            .sample(&mut rng, 60)
            .into_iter()
            .map(|(id, kind)| {
                let kind = match kind {
                    ItemKind::LiveStream => pb::ItemKind::LiveStream,
                    ItemKind::Goods => pb::ItemKind::Goods,
                };
                common::candidate(id, kind)
            })
            .collect();
        let response = rank
            .rank(pb::RankRequest {
                request_id: format!("rp-{i}"),
                user_id: user,
                scene: pb::Scene::Recommend as i32,
                slots: 10,
                candidates,
                request_time_ms: Some(time_ms),
            })
            .await
            .unwrap()
            .into_inner();
        served.push(common::item_ids(&response));
    }
    let flow_pages = served.len();
    assert_eq!(flow_pages, REQUESTS);

    // The writer flushes after each burst; wait until every request is in.
    let dir = logs.path().to_path_buf();
    let log = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if let Ok(log) =
                replay::read(std::slice::from_ref(&dir), fairflow::traffic::OnError::Fail)
                && log.served == REQUESTS
            {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the traffic log holds every request within 30 s");
    server.stop().await;

    // The same log as Parquet reads back step for step, so it replays the
    // same.
    let converted = tempfile::tempdir().unwrap();
    let parquet = converted.path().join("log");
    let on_error = fairflow::traffic::OnError::Fail;
    let written = fairflow::traffic::convert(
        std::slice::from_ref(&dir),
        &parquet,
        fairflow::traffic::Encoding::Parquet,
        on_error,
    )
    .unwrap();
    assert_eq!(written.tables.unwrap().rank, REQUESTS as u64);
    let from_parquet = replay::read(&[parquet], on_error).unwrap();
    assert_eq!(from_parquet.steps, log.steps);
    assert_eq!(from_parquet.header, log.header);
    let purchases = log
        .steps
        .iter()
        .filter(|s| matches!(s, replay::Step::Purchase(_)))
        .count();
    assert_eq!(purchases, REQUESTS / 5, "purchases are logged too");

    let config = Config::from_toml(&text, "test.toml", None).unwrap();
    let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
    let one = |shards| {
        let options = replay::Options {
            shards,
            keep_rankings: true,
            ..replay::Options::default()
        };
        replay::run(&engine, &catalog, &log, &options, &AtomicU64::new(0))
    };
    let single = one(1);
    assert_eq!(single.refused, 0);
    assert_eq!(single.identical, REQUESTS as u64, "every page reproduced");
    let replayed: Vec<Vec<String>> = single.rankings.iter().map(|r| r.item_ids.clone()).collect();
    assert_eq!(replayed, served);
    let flow_slots = single
        .rankings
        .iter()
        .flat_map(|r| &r.reasons)
        .filter(|reasons| reasons.contains(&Reason::Chuanliu))
        .count();
    assert!(flow_slots > 0, "the flow acted, and was reproduced");
    assert_eq!(single.replayed.flow_impressions, flow_slots as u64);

    // Three shards: each has its own state, so pages may differ from the
    // server's, but never from one run to the next.
    let (a, b) = (one(3), one(3));
    assert_eq!(a.replayed, b.replayed);
    assert_eq!(a.rankings, b.rankings);
    assert_eq!(a.replayed.requests, REQUESTS as u64);
}

#[test]
fn bad_logs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let err = replay::read(&[missing], fairflow::traffic::OnError::Fail).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    let err = replay::read(
        &[dir.path().to_path_buf()],
        fairflow::traffic::OnError::Fail,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no traffic-"), "{err}");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let err = replay::read(&[empty], fairflow::traffic::OnError::Fail).unwrap_err();
    assert!(err.to_string().contains("no rank requests"), "{err}");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\": \"rank\", \"oops\n").unwrap();
    let err = replay::read(&[bad], fairflow::traffic::OnError::Fail).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    // A Parquet log whose table was cut short.
    let log = dir.path().join("log");
    std::fs::create_dir(&log).unwrap();
    std::fs::write(log.join("rank.parquet"), b"PAR1 not really").unwrap();
    let err = replay::read(&[log], fairflow::traffic::OnError::Fail).unwrap_err();
    assert!(err.to_string().contains("rank.parquet: "), "{err}");
}

/// A simulated day, written as a simulated log (header naming its world).
fn simulated_log(dir: &std::path::Path) -> (Catalog, std::path::PathBuf) {
    use fairflow::sim::{self, CatalogSpec, SimParams, World};
    let spec = CatalogSpec {
        seed: 11,
        streamers: 300,
        goods_per_brand: 20,
        ..CatalogSpec::default()
    };
    let catalog = sim::generate(&spec).unwrap();
    let world = World::build(&catalog, SimParams::new(11, 300), spec.as_of);
    let engine = Engine::new(
        Config::embedded_default().unwrap().engine,
        Arc::new(Model::embedded().unwrap()),
    );
    let mut writer = fairflow::traffic::TrafficWriter::new(Vec::new());
    sim::simulate(
        &spec,
        &world,
        &engine,
        &mut catalog.clone(),
        1,
        &mut writer,
        &|_, _| {},
    )
    .unwrap();
    let path = dir.join("traffic.jsonl");
    std::fs::write(&path, writer.finish().unwrap()).unwrap();
    (catalog, path)
}

#[test]
fn interactive_replay_has_the_simulated_users_answer_and_buy() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, path) = simulated_log(dir.path());
    let on_error = fairflow::traffic::OnError::Fail;
    let log = replay::read(std::slice::from_ref(&path), on_error).unwrap();
    let responder = replay::Responder::from_header(log.header.as_ref()).unwrap();
    assert_eq!(responder.users(), 300);
    // The flow on for every brand, so simulated purchases through
    // influencers have something to reach.
    let config = Config::from_toml("[chuanliu]\nenroll_all_brands = true\n", "flow.toml", None);
    let engine = Engine::new(config.unwrap().engine, Arc::new(Model::embedded().unwrap()));
    let run = |log: &replay::Log, responder: Option<&replay::Responder>| {
        let options = replay::Options {
            shards: 2,
            responder,
            ..replay::Options::default()
        };
        replay::run(&engine, &catalog, log, &options, &AtomicU64::new(0))
    };
    let interactive = run(&log, Some(&responder));
    assert_eq!(interactive.unanswered, 0);
    let replayed = interactive
        .replayed
        .realized
        .expect("replayed pages answered");
    let logged = interactive.logged.realized.expect("logged pages answered");
    assert!(replayed.clicks > 0 && replayed.purchases > 0 && replayed.gmv > 0.0);
    // The rebuilt world is the one that wrote the log: its users answer the
    // logged pages about as the log says they did (a fresh draw, so not
    // exactly). A different world would not know the items: no clicks.
    let (log_clicks, log_purchases) =
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .fold((0.0, 0.0), |(c, p), l| {
                (
                    c + f64::from(u8::from(l.contains("\"type\":\"click\""))),
                    p + f64::from(u8::from(l.contains("\"type\":\"purchase\""))),
                )
            });
    let clicks = logged.clicks as f64;
    assert!(
        (clicks / log_clicks - 1.0).abs() < 0.15,
        "{clicks} clicks answering the logged pages, {log_clicks} in the log"
    );
    assert!(log_purchases > 0.0);
    // Simulated purchases, not the log's, reach the flow: the log without
    // its purchases replays the same (on every run), and the flow, which
    // only injects for users with a purchase through an influencer, acts.
    let mut without = log.clone();
    without
        .steps
        .retain(|s| !matches!(s, replay::Step::Purchase(_)));
    let again = run(&without, Some(&responder));
    assert_eq!(again.replayed, interactive.replayed);
    assert_eq!(again.logged, interactive.logged);
    assert!(interactive.replayed.flow_impressions > 0);
    let passive = run(&without, None);
    assert_eq!(passive.replayed.flow_impressions, 0);
    assert_eq!(passive.replayed.realized, None);
}

#[test]
fn interactive_replay_needs_a_simulated_log() {
    let header = fairflow::traffic::Header::new("fairflow serve");
    let err = replay::Responder::from_header(Some(&header)).unwrap_err();
    assert!(err.to_string().contains("needs a simulated log"), "{err}");
    assert!(replay::Responder::from_header(None).is_err());
}

#[test]
fn a_replay_can_start_from_a_servers_snapshot() {
    use fairflow::chuanliu::Flow;
    use fairflow::snapshot::{self, Snapshot};
    let dir = tempfile::tempdir().unwrap();
    let (catalog, path) = simulated_log(dir.path());
    let log = replay::read(&[path], fairflow::traffic::OnError::Fail).unwrap();
    let config =
        Config::from_toml("[chuanliu]\nenroll_all_brands = true\n", "flow.toml", None).unwrap();
    // A server that took the log's purchases, then a snapshot.
    let flow = Flow::new();
    for step in &log.steps {
        if let replay::Step::Purchase(e) = step {
            flow.apply(e, &config.engine.chuanliu);
        }
    }
    let events = dir.path().join("events");
    std::fs::create_dir(&events).unwrap();
    let snapshot = Snapshot {
        seq: 7,
        flow: flow.snapshot(),
        event_ids: Vec::new(),
    };
    let (file, _) = snapshot::write(&events, &snapshot).unwrap();
    let start = replay::StartState::read(&events).unwrap();
    assert_eq!((start.path.clone(), start.seq), (file, 7));

    // The requests alone: only the snapshot's affinities can make the flow
    // act.
    let mut requests = log.clone();
    requests
        .steps
        .retain(|s| matches!(s, replay::Step::Rank(_)));
    let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
    let run = |start: Option<&replay::StartState>| {
        let options = replay::Options {
            shards: 2,
            start,
            ..replay::Options::default()
        };
        replay::run(&engine, &catalog, &requests, &options, &AtomicU64::new(0))
    };
    assert_eq!(run(None).replayed.flow_impressions, 0);
    let from_snapshot = run(Some(&start));
    assert!(from_snapshot.replayed.flow_impressions > 0);
    assert_eq!(run(Some(&start)).replayed, from_snapshot.replayed);

    // Nothing to start from: the reason, with the path.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = replay::StartState::read(&empty).unwrap_err().to_string();
    assert!(err.contains("holds no snapshot"), "{err}");
    let damaged = empty.join("snapshot-3.bin");
    std::fs::write(&damaged, b"FFSNAP01 but not really").unwrap();
    let err = replay::StartState::read(&damaged).unwrap_err().to_string();
    assert!(
        err.contains("snapshot-3.bin: not a usable snapshot"),
        "{err}"
    );
}

#[test]
fn a_replay_under_a_holdout_reports_what_the_flow_added_summed_over_shards() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, path) = simulated_log(dir.path());
    let log = replay::read(&[path], fairflow::traffic::OnError::Fail).unwrap();
    let text = "[chuanliu]\nenroll_all_brands = true\nholdout_share = 0.5\n";
    let engine = Engine::new(
        Config::from_toml(text, "held.toml", None).unwrap().engine,
        Arc::new(Model::embedded().unwrap()),
    );
    let run = |shards| {
        let options = replay::Options {
            shards,
            ..replay::Options::default()
        };
        replay::run(&engine, &catalog, &log, &options, &AtomicU64::new(0))
    };
    let (one, four) = (run(1), run(4));
    let h = one
        .replayed
        .summary(None)
        .holdout
        .expect("both arms have units");
    assert!(h.treated_units > 0 && h.holdout_units > 0, "{h:?}");
    assert!(h.own_live_gmv.is_some() && h.total_gmv.is_some(), "{h:?}");
    // Shards hold disjoint users: their sums add up to one flow's.
    let sharded = four.replayed.summary(None).holdout.unwrap();
    assert_eq!(
        (sharded.treated_units, sharded.holdout_units),
        (h.treated_units, h.holdout_units)
    );
    let (a, b) = (sharded.own_live_gmv.unwrap(), h.own_live_gmv.unwrap());
    assert!(
        (a.total - b.total).abs() <= 1e-6 * b.total.abs().max(1.0),
        "{a:?} vs {b:?}"
    );
    assert!(
        (a.high - b.high).abs() <= 1e-6 * b.high.abs().max(1.0),
        "{a:?} vs {b:?}"
    );
    // Without a share, nothing is held out and nothing is reported.
    let plain = Engine::new(
        Config::from_toml("[chuanliu]\nenroll_all_brands = true\n", "on.toml", None)
            .unwrap()
            .engine,
        Arc::new(Model::embedded().unwrap()),
    );
    let options = replay::Options::default();
    let off = replay::run(&plain, &catalog, &log, &options, &AtomicU64::new(0));
    assert_eq!(off.replayed.summary(None).holdout, None);
}

#[test]
fn a_replay_measures_itself_against_the_hindsight_bounds_on_its_own_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, path) = simulated_log(dir.path());
    let log = replay::read(&[path], fairflow::traffic::OnError::Fail).unwrap();
    let report = |toml: &str, hindsight: bool| {
        let config = Config::from_toml(toml, "t.toml", None).unwrap();
        let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
        let options = replay::Options {
            shards: 2,
            hindsight,
            ..replay::Options::default()
        };
        let r = replay::run(&engine, &catalog, &log, &options, &AtomicU64::new(0));
        let pages = r.recorded.pages.len();
        (
            pages,
            replay::report::PolicyReport::of(
                &engine,
                "t".into(),
                &r,
                &replay::ope::Settings::default(),
            ),
        )
    };
    let (pages, off) = report("", false);
    assert_eq!(pages, 0);
    assert!(off.hindsight.is_none());
    // Plain greedy under floors and cap, no exposure control: it is the
    // hindsight solution at the shares it reached, exactly.
    let plain = "[quotas.targets]\nenabled = false\n[quotas.spreading]\nstrength = 0.0\n";
    let (pages, greedy) = report(plain, true);
    let h = greedy.hindsight.expect("measured");
    assert!(pages > 100 && h.pages == pages, "{pages} {h:?}");
    assert!((h.of_hindsight - 1.0).abs() < 1e-9, "{h:?}");
    // The default (targets and spreading) below both bounds, but close.
    let (_, default) = report("", true);
    let h = default.hindsight.clone().expect("measured");
    assert!(h.of_hindsight < 1.0 && h.of_hindsight > 0.85, "{h:?}");
    assert!(h.hindsight_gap_pp < 1.0, "{h:?}");
    let frontier = h.of_frontier.expect("within the frontier's range");
    assert!(frontier > 0.9 && frontier < 1.02, "{h:?}");
    let text = replay::report::Report::new(&log, 2, default, None).to_string();
    assert!(text.contains("hindsight, t: over"), "{text}");
}
