//! Config experiments through the real server (docs/operations.md,
//! "Experiments"). Rules checked:
//! - two arms with different tier targets each converge to their own
//!   targets, and users in no arm to the base config's;
//! - every answer names the user's arms, and a user keeps them across a
//!   reload of the file (and the traffic log names them too);
//! - `GetQuotaState` and `GetFlowStats` answer per arm, and the metrics
//!   carry an `arm` label;
//! - a reload whose overlay sets a key an arm may not is refused with file,
//!   key and reason, and the experiments in force stay.

mod common;

use common::tiers::{candidates, seed};
use common::*;
use fairflow::config::Config;
use fairflow::engine::Engine;
use fairflow::model::Model;
use fairflow::proto::v1::admin_service_client::AdminServiceClient;
use fairflow::proto::v1::{self as pb, Tier};
use fairflow::replay;
use fairflow::traffic::OnError;
use rand::SeedableRng;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

const BASE: [f64; 3] = [0.35, 0.35, 0.30];
const ARM_A: [f64; 3] = [0.60, 0.25, 0.15];
const ARM_B: [f64; 3] = [0.15, 0.25, 0.60];

fn config(dir: &std::path::Path, extra: &str) -> String {
    let [t, m, s] = BASE;
    let [at, am, as_] = ARM_A;
    let [bt, bm, bs] = ARM_B;
    format!(
        r#"[scoring]
source = "upstream"
[quotas]
scenes = ["recommend"]
[quotas.floors]
policy = "none"
[quotas.spreading]
strength = 0.0
[quotas.targets]
enabled = true
top = {t}
mid = {m}
small = {s}
half_life_seconds = 300.0
[chuanliu]
enabled = false
[events]
dir = "{events}"
[traffic_log]
dir = "{traffic}"
{extra}
[[experiments]]
name = "targets"
[[experiments.arms]]
name = "a"
share = 0.3
[experiments.arms.overlay.quotas.targets]
top = {at}
mid = {am}
small = {as_}
[[experiments.arms]]
name = "b"
share = 0.3
[experiments.arms.overlay.quotas.targets]
top = {bt}
mid = {bm}
small = {bs}
"#,
        events = dir.join("events").display(),
        traffic = dir.join("traffic").display(),
    )
}

fn label(response: &pb::RankResponse) -> String {
    let arms: Vec<String> = response
        .arms
        .iter()
        .map(|a| format!("{}:{}", a.experiment, a.arm))
        .collect();
    if arms.is_empty() {
        "base".into()
    } else {
        arms.join(",")
    }
}

fn shares(quota: &pb::QuotaState) -> [f64; 3] {
    let share = |tier: Tier| {
        quota
            .tiers
            .iter()
            .find(|t| t.tier == tier as i32)
            .unwrap()
            .realized_share
    };
    [share(Tier::Top), share(Tier::Mid), share(Tier::Small)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_arm_converges_to_its_own_targets_and_users_keep_their_arms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exp.toml");
    std::fs::write(&path, config(dir.path(), "")).unwrap();
    let server = TestServer::with_config_file(&path).await;
    seed(&server.addr.to_string()).await;
    let mut rank = server.rank_client().await;
    let mut admin = AdminServiceClient::new(server.channel().await);

    // 300 users, 12 pages each, one page a second of request time.
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let start = recent_ms() - 4_000_000;
    let mut arm_of: HashMap<String, String> = HashMap::new();
    let mut pages = 0i64;
    for round in 0..12 {
        for u in 0..300 {
            let user = format!("user-{u}");
            let mut page = request(candidates(&mut rng), 10);
            page.user_id = user.clone();
            page.request_id = format!("r{round}-{u}");
            page.request_time_ms = Some(start + pages * 1000);
            pages += 1;
            let served = rank.rank(page).await.unwrap().into_inner();
            let arm = label(&served);
            let known = arm_of.entry(user).or_insert(arm.clone());
            assert_eq!(*known, arm, "a user stays in one arm");
        }
    }
    let per_arm = |arm: &str| arm_of.values().filter(|a| *a == arm).count();
    for arm in ["targets:a", "targets:b"] {
        assert!(
            (60..=120).contains(&per_arm(arm)),
            "{arm}: {}",
            per_arm(arm)
        );
    }

    let quota = admin
        .get_quota_state(pb::GetQuotaStateRequest {})
        .await
        .unwrap()
        .into_inner();
    let labels: Vec<&str> = quota.arms.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["base", "targets:a", "targets:b"]);
    for (arm, targets) in quota.arms.iter().zip([BASE, ARM_A, ARM_B]) {
        let q = arm.quota.as_ref().unwrap();
        let got = shares(q);
        for t in 0..3 {
            assert!(
                (got[t] - targets[t]).abs() < 0.02,
                "{}: shares {got:?} against its targets {targets:?}",
                arm.label
            );
        }
        let target_of_top = q.tiers.iter().find(|t| t.tier == Tier::Top as i32).unwrap();
        assert_eq!(target_of_top.target_share, Some(targets[0]));
    }
    assert_eq!(
        shares(&quota),
        shares(quota.arms[0].quota.as_ref().unwrap())
    );

    let flow = admin
        .get_flow_stats(pb::GetFlowStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let requests: u64 = flow.arms.iter().map(|a| a.requests).sum();
    assert_eq!(requests, pages as u64);
    let a = flow.arms.iter().find(|a| a.label == "targets:a").unwrap();
    assert_eq!(a.requests, 12 * per_arm("targets:a") as u64);
    assert_eq!(a.arms[0].arm, "a");
    let (low, mean, high) = (
        a.page_value_low.unwrap(),
        a.page_value.unwrap(),
        a.page_value_high.unwrap(),
    );
    assert!(low < mean && mean < high, "{low} {mean} {high}");

    let metrics = server.scrape().await;
    assert!(
        metrics.contains(r#"arm="targets:a""#) && metrics.contains(r#"arm="base""#),
        "{metrics}"
    );

    // A change elsewhere in the file, reloaded: nobody changes arm.
    std::fs::write(
        &path,
        config(dir.path(), "[limits]\nmax_candidates = 1500\n"),
    )
    .unwrap();
    let reloaded = admin
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(reloaded.changed);
    for u in 0..300 {
        let user = format!("user-{u}");
        let mut page = request(candidates(&mut rng), 10);
        page.user_id = user.clone();
        page.request_time_ms = Some(start + pages * 1000);
        pages += 1;
        let served = rank.rank(page).await.unwrap().into_inner();
        assert_eq!(arm_of[&user], label(&served), "{user} after the reload");
    }

    // An overlay setting what an arm may not: refused, naming file and key.
    let bad = config(dir.path(), "").replace(
        "[experiments.arms.overlay.quotas.targets]\ntop = 0.15",
        "[experiments.arms.overlay.server]\nlisten = \"127.0.0.1:1\"\n[experiments.arms.overlay.quotas.targets]\ntop = 0.15",
    );
    std::fs::write(&path, bad).unwrap();
    let refused = admin
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let message = refused.message();
    assert!(
        message.contains("exp.toml")
            && message.contains("experiments.targets.arms.b.overlay.server.listen"),
        "{message}"
    );
    let still = admin
        .get_quota_state(pb::GetQuotaStateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.arms.len(), 3, "the experiments in force stay");

    // The traffic log names each page's arms.
    let catalog = server.state.catalog.read().clone();
    server.stop().await;
    let log = std::fs::read_dir(dir.path().join("traffic"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    let with_arm = log
        .lines()
        .filter(|l| l.contains(r#""arms":"targets:"#))
        .count();
    let expected = 13 * (per_arm("targets:a") + per_arm("targets:b"));
    assert_eq!(with_arm, expected, "one record per page ranked in an arm");

    // Replayed under the same config, each user under their own arm and
    // controller: every page as served, and the report split by arm.
    let log = replay::read(&[dir.path().join("traffic")], OnError::Fail).unwrap();
    let config = Config::from_toml(&config(dir.path(), ""), "exp.toml", None).unwrap();
    let model = Arc::new(Model::embedded().unwrap());
    let engines: Vec<Engine> = config
        .experiments
        .variants()
        .iter()
        .map(|v| Engine::new(v.engine.clone(), model.clone()))
        .collect();
    let replay_under = |only: Option<&str>, as_variant: Option<usize>| {
        let options = replay::Options {
            shards: 1,
            arms: Some(replay::Arms {
                experiments: &config.experiments,
                engines: &engines,
                only,
                as_variant,
            }),
            ..replay::Options::default()
        };
        replay::run(&engines[0], &catalog, &log, &options, &AtomicU64::new(0))
    };
    let all = replay_under(None, None);
    assert_eq!(
        all.identical, pages as u64,
        "every page as the server served it"
    );
    let labels: Vec<&str> = all.by_arm.keys().map(String::as_str).collect();
    assert_eq!(labels, ["base", "targets:a", "targets:b"]);
    assert_eq!(
        all.by_arm["targets:a"].requests,
        13 * per_arm("targets:a") as u64
    );
    let a_shares = all.by_arm["targets:a"].tier_shares();
    assert!((a_shares[0] - ARM_A[0]).abs() < 0.03, "{a_shares:?}");

    // Arm a's traffic under arm b's config: its pages move to b's targets.
    let b = config
        .experiments
        .variants()
        .iter()
        .position(|v| v.label == "targets:b");
    let swapped = replay_under(Some("targets:a"), b);
    assert_eq!(swapped.replayed.requests, 13 * per_arm("targets:a") as u64);
    let shares = swapped.replayed.tier_shares();
    for t in 0..3 {
        assert!(
            (shares[t] - ARM_B[t]).abs() < 0.03,
            "{shares:?} against {ARM_B:?}"
        );
    }
}
