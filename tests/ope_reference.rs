//! The per-impression off-policy estimates against Open Bandit Pipeline's
//! own estimators, and the replay that feeds them against the log.
//!
//! Fixtures in `tests/ope/`, made by `tests/ope/obp_reference.py` (its
//! docstring has the commands): `log.jsonl`, a log of an epsilon-greedy
//! logger with marginal propensities on sparse pages; `rounds-*.json`, the
//! rounds `fairflow replay --ope-export` exported from it for the engine's
//! ranking and for an epsilon-greedy and a Plackett-Luce policy made from
//! it; `obp.json`, what obp 0.5.7 computes on those rounds.

use fairflow::config::Config;
use fairflow::domain::ItemKind;
use fairflow::engine::Engine;
use fairflow::model::Model;
use fairflow::replay::ope::position::{self, Export, PositionBased, Round};
use fairflow::replay::ope::{Settings, TargetPolicy};
use fairflow::replay::{self, Step};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ope");

fn rounds_of(export: &Export) -> Vec<Round> {
    export
        .rounds
        .iter()
        .map(|r| Round {
            position: r.position,
            item: r.action,
            propensity: r.pscore,
            click: r.click,
            gmv: r.gmv,
            target: r
                .target
                .iter()
                .map(|&(a, p, _, _)| ((a < export.items).then_some(a), p))
                .collect(),
        })
        .collect()
}

fn close(ours: f64, theirs: f64, what: &str) {
    let scale = theirs.abs().max(1e-300);
    assert!(
        (ours - theirs).abs() <= 1e-9 * scale,
        "{what}: fairflow {ours} against obp {theirs}"
    );
}

#[test]
fn every_estimator_agrees_with_open_bandit_pipeline_on_the_same_rounds() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(DIR).join("obp.json")).unwrap())
            .unwrap();
    let files = reference.as_object().unwrap();
    assert_eq!(
        files.len(),
        3,
        "every policy: the engine, epsilon-greedy and Plackett-Luce"
    );
    for (file, theirs) in files {
        let text = std::fs::read_to_string(Path::new(DIR).join(file)).unwrap();
        let export: Export = serde_json::from_str(&text).unwrap();
        let ours = position::evaluate(&rounds_of(&export), export.max_weight, export.reward_model)
            .expect("rounds");
        for (reward, family) in [
            ("click", &ours.clicks_per_impression),
            ("gmv", &ours.gmv_per_impression),
        ] {
            let t = |name: &str| theirs[reward][name].as_f64().unwrap();
            close(family.ipw.value, t("ipw"), &format!("{file} {reward} IPW"));
            close(
                family.snipw.value,
                t("snipw"),
                &format!("{file} {reward} SNIPW"),
            );
            close(family.dm.value, t("dm"), &format!("{file} {reward} DM"));
            close(family.dr.value, t("dr"), &format!("{file} {reward} DR"));
            // obp's Replay is 0 when no round matches; ours is unset.
            match family.replay {
                Some(r) => close(r.value, t("replay"), &format!("{file} {reward} Replay")),
                None => assert_eq!(t("replay"), 0.0, "{file} {reward} Replay"),
            }
        }
        // The fixture exercises what differs between estimators: clipping
        // (epsilon-greedy, max weight 5), matches (the engine) and both
        // reward models.
        if file.contains("epsilon") {
            assert!(ours.clipped > 0 && ours.replay_matches == 0, "{ours:?}");
        } else if file.contains("engine") {
            assert!(ours.replay_matches > 0, "{ours:?}");
        }
    }
}

/// Per (request, position): the logged item, its propensity, whether a
/// click on that item there is in the log; read from the JSON directly.
fn logged_slots(log: &Path) -> HashMap<(String, u32), (String, f64, bool)> {
    let text = std::fs::read_to_string(log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut slots = HashMap::new();
    for r in &records {
        if r["type"] == "rank" {
            for s in r["served"].as_array().unwrap() {
                let key = (
                    r["request_id"].as_str().unwrap().to_string(),
                    s["position"].as_u64().unwrap() as u32,
                );
                let value = (
                    s["item_id"].as_str().unwrap().to_string(),
                    s["propensity"].as_f64().unwrap(),
                    false,
                );
                slots.insert(key, value);
            }
        }
    }
    for r in records.iter().filter(|r| r["type"] == "click") {
        let key = (
            r["request_id"].as_str().unwrap().to_string(),
            r["position"].as_u64().unwrap() as u32,
        );
        if let Some(slot) = slots.get_mut(&key)
            && slot.0 == r["item_id"].as_str().unwrap()
        {
            slot.2 = true;
        }
    }
    slots
}

fn replay_under(policy: TargetPolicy) -> (replay::Replayed, replay::Log, Engine) {
    let path = Path::new(DIR).join("log.jsonl");
    let log = replay::read(&[path], fairflow::traffic::OnError::Fail).unwrap();
    let config = Config::from_toml("", "t.toml", None).unwrap();
    let catalog = fairflow::catalog::Catalog::embedded_demo(128).unwrap();
    let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
    let options = replay::Options {
        keep_rankings: true,
        target: policy,
        ..replay::Options::default()
    };
    let r = replay::run(&engine, &catalog, &log, &options, &AtomicU64::new(0));
    (r, log, engine)
}

/// The log's item numbers, back to the ids.
fn item_names(log: &replay::Log) -> HashMap<u32, &str> {
    log.items
        .iter()
        .flatten()
        .map(|(k, &v)| (v, k.as_str()))
        .collect()
}

fn requests(log: &replay::Log) -> Vec<&replay::Request> {
    log.steps
        .iter()
        .filter_map(|s| match s {
            Step::Rank(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn the_replay_joins_each_logged_impression_to_its_click_by_position_and_item() {
    let (r, log, engine) = replay_under(TargetPolicy::Engine);
    let slots = logged_slots(&Path::new(DIR).join("log.jsonl"));
    assert_eq!(r.rounds.len(), slots.len(), "one round per logged slot");
    assert_eq!(r.without_propensities, 0);
    let names = item_names(&log);
    // Rounds are in log order, as are the rankings and the requests.
    let requests = requests(&log);
    let mut rounds = r.rounds.iter();
    let mut decoys = 0;
    for (request, ranking) in requests.iter().zip(&r.rankings) {
        for entry in &request.served {
            let round = rounds.next().unwrap();
            let key = (request.query.request_id.clone(), entry.position);
            let (item, propensity, clicked) = &slots[&key];
            assert_eq!(names[&round.item], item.as_str());
            assert_eq!(
                (round.position, round.propensity),
                (entry.position, *propensity)
            );
            assert_eq!(round.click == 1.0, *clicked, "{key:?}");
            // The engine's own page: its item at this position, for certain.
            let shown = &ranking.item_ids[round.position as usize];
            assert_eq!(round.target.len(), 1);
            assert_eq!(round.target[0].1, 1.0);
            assert_eq!(round.target[0].0, log.item(ItemKind::Goods, shown));
            let clicks_here = log.rewards.get(&key.0).map_or(0, |r| {
                r.clicks.iter().filter(|c| c.0 == entry.position).count()
            });
            decoys += usize::from(!*clicked && clicks_here > 0);
        }
    }
    assert!(
        decoys > 0,
        "clicks on another item at a logged position are in the fixture and not joined"
    );
    // The report's figures are the estimators' on these rounds.
    let report = replay::report::PolicyReport::of(&engine, "t".into(), &r, &Settings::default());
    let direct: PositionBased =
        position::evaluate(&r.rounds, 100.0, position::RewardModel::ItemPosition).unwrap();
    assert_eq!(report.position_based, Some(direct));
}

#[test]
fn an_epsilon_greedy_policy_spreads_epsilon_evenly_over_the_candidates() {
    let (r, log, _) = replay_under(TargetPolicy::EpsilonGreedy { epsilon: 0.3 });
    let names = item_names(&log);
    let requests = requests(&log);
    let mut rounds = r.rounds.iter();
    for (request, ranking) in requests.iter().zip(&r.rankings) {
        let n = request.query.candidates.len() as f64;
        for _ in &request.served {
            let round = rounds.next().unwrap();
            let total: f64 = round.target.iter().map(|t| t.1).sum();
            assert!((total - 1.0).abs() < 1e-12, "{round:?}");
            // The engine's item first, then every other candidate.
            let shown = &ranking.item_ids[round.position as usize];
            let (engine_item, p) = round.target[0];
            assert_eq!(engine_item, log.item(ItemKind::Goods, shown));
            assert!((p - (0.7 + 0.3 / n)).abs() < 1e-12, "{round:?}");
            assert_eq!(round.target.len() as f64, n);
            for &(item, p) in &round.target[1..] {
                assert!((p - 0.3 / n).abs() < 1e-12, "{round:?}");
                assert!(item.is_none_or(|i| names[&i] != shown), "{round:?}");
            }
        }
    }
}

/// An impression CSV in the layout Open Bandit Dataset publishes: an
/// unnamed index, positions from 1, times with microseconds and an offset.
const OBD_LIKE: &str = "\
,timestamp,item_id,position,click,propensity_score,user_feature_0
0,2019-11-24 00:00:17.967439+00:00,14,3,0,0.0125,81ce
1,2019-11-24 00:00:17.967439+00:00,7,1,1,0.0125,81ce
2,2019-11-24 00:00:18.100000+00:00,14,2,1,0.0125,03a5
3,2019-11-24 00:00:19.000000+00:00,3,1,0,0.0125,03a5
";

fn import(
    csv: &str,
    request_column: Option<&str>,
) -> (
    tempfile::TempDir,
    Result<fairflow::traffic::Imported, String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("all.csv");
    std::fs::write(&input, csv).unwrap();
    let import = fairflow::traffic::CsvImport {
        columns: fairflow::traffic::CsvColumns {
            timestamp: "timestamp".into(),
            item: "item_id".into(),
            position: "position".into(),
            click: "click".into(),
            propensity: "propensity_score".into(),
            user: Some("user_feature_0".into()),
            request: request_column.map(str::to_string),
        },
        position_base: 1,
        scene: fairflow::domain::Scene::Recommend,
    };
    let done = fairflow::traffic::import_csv(&input, &dir.path().join("out"), &import);
    (dir, done.map_err(|e| e.to_string()))
}

#[test]
fn a_public_impression_csv_imports_as_a_log_with_its_catalog_and_replays() {
    let (dir, done) = import(OBD_LIKE, Some("timestamp"));
    let done = done.unwrap();
    // Rows 0 and 1 share a time: one request with positions 0 and 2.
    assert_eq!(
        (
            done.rows,
            done.requests,
            done.items,
            done.clicks,
            done.slots
        ),
        (4, 3, 3, 2, 3)
    );
    let out = dir.path().join("out");
    let log = replay::read(
        &[out.join("traffic.jsonl")],
        fairflow::traffic::OnError::Fail,
    )
    .unwrap();
    let first = requests(&log)[0];
    assert_eq!(first.query.now.0, 1_574_553_617_967);
    assert_eq!(first.query.candidates.len(), 3, "every item of the file");
    let page: Vec<(u32, &str)> = first
        .served
        .iter()
        .map(|e| (e.position, e.item_id.as_str()))
        .collect();
    assert_eq!(page, [(0, "7"), (2, "14")]);
    assert!(first.served.iter().all(|e| e.propensity.is_some_and(
        |p| p.value == 0.0125 && p.kind == fairflow::traffic::PropensityKind::Marginal
    )));
    let catalog = fairflow::catalog::Catalog::from_source(
        &fairflow::catalog::CatalogSource::Dir(out.join("catalog")),
        128,
    )
    .unwrap();
    let config = Config::from_toml("", "t.toml", None).unwrap();
    let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
    let r = replay::run(
        &engine,
        &catalog,
        &log,
        &replay::Options::default(),
        &AtomicU64::new(0),
    );
    assert_eq!(r.refused, 0, "{:?}", r.first_refusal);
    assert_eq!(r.rounds.len(), 4);
    assert_eq!(r.rounds.iter().map(|x| x.click).sum::<f64>(), 2.0);
    assert_eq!(log.position_ctr().ctr, [0.5, 1.0, 0.0]);
}

#[test]
fn a_bad_impression_row_is_refused_with_file_row_and_column_and_nothing_is_left() {
    let bad = OBD_LIKE.replace("3,1,0,0.0125", "3,1,0,1.5");
    let (dir, done) = import(&bad, None);
    let e = done.unwrap_err();
    assert!(
        e.ends_with("all.csv row 5: column `propensity_score`: not a number in (0, 1]"),
        "{e}"
    );
    assert!(!dir.path().join("out").exists() && !dir.path().join("out.partial").exists());
    let twice = OBD_LIKE.replace("7,1,1", "7,3,1");
    let e = import(&twice, Some("timestamp")).1.unwrap_err();
    assert!(
        e.contains("row 3: column `position`: position 3 is in its request twice"),
        "{e}"
    );
    let e = import(OBD_LIKE, Some("session")).1.unwrap_err();
    assert!(
        e.contains("no column `session` (it has: , timestamp, item_id"),
        "{e}"
    );
}
