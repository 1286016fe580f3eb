//! Operating the server: live config reloads (file change, admin RPC), the
//! metrics endpoint, and overload protection, over real gRPC and HTTP.

mod common;

use common::{Patience, TestServer, goods_with, request};
use fairflow::catalog::Catalog;
use fairflow::load::{LoadSpec, request_pool};
use fairflow::proto::v1 as pb;
use fairflow::proto::v1::admin_service_client::AdminServiceClient;
use std::time::Duration;
use tonic::Code;

/// Two goods where the model and the caller disagree: which comes first
/// shows which scoring source is in force.
fn disputed() -> pb::RankRequest {
    request(
        vec![
            goods_with("g-000001", 0.9, 0.9),
            goods_with("g-000002", 0.001, 0.001),
        ],
        2,
    )
}

const WATCHED: &str = "[server]\nwatch_config_seconds = 0.1\n[events]\ndir = \"events\"\n";

#[tokio::test]
async fn a_changed_file_applies_live_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fairflow.toml");
    std::fs::write(
        &path,
        format!("{WATCHED}[scoring]\nsource = \"upstream\"\n"),
    )
    .unwrap();
    let server = TestServer::with_config_file(&path).await;
    let mut rank = server.rank_client().await;
    let mut admin = AdminServiceClient::new(server.channel().await);

    let first = rank.rank(disputed()).await.unwrap().into_inner();
    let v1 = first.config_version.clone();
    assert_eq!(
        first.slots[0].item_id, "g-000001",
        "caller's estimates rule"
    );

    // Rewrite the file: the model's own estimates now. The watcher picks it
    // up; responses name the new version.
    std::fs::write(
        &path,
        format!("{WATCHED}[scoring]\nsource = \"model\"\nupstream_weight = 0.0\n"),
    )
    .unwrap();
    let patience = Patience::new(Duration::from_secs(10));
    let second = loop {
        let r = rank.rank(disputed()).await.unwrap().into_inner();
        if r.config_version != v1 {
            break r;
        }
        patience.wait().await;
    };
    let v2 = second.config_version.clone();
    let config = admin
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.version, v2);
    assert!(
        config.toml.contains("source = \"model\""),
        "{}",
        config.toml
    );
    assert_eq!(config.origin, path.display().to_string());
    assert_ne!(
        second.slots[0].score, first.slots[0].score,
        "ranked under the new scoring"
    );

    // A broken file: refused, reported with file, key and reason, counted;
    // the old config stays in force.
    std::fs::write(
        &path,
        format!("{WATCHED}[quotas.targets]\nenabled = true\ntop = 0.9\nmid = 0.9\n"),
    )
    .unwrap();
    let err = admin
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains(path.to_str().unwrap()),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("quotas.targets"),
        "{}",
        err.message()
    );
    let after = rank.rank(disputed()).await.unwrap().into_inner();
    assert_eq!(after.config_version, v2, "old config kept");
    let text = server.scrape().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("fairflow_config_reloads_total{result=\"failed\"}")),
        "{text}"
    );
}

#[tokio::test]
async fn empty_cut_and_half_written_files_in_a_watched_config_are_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fairflow.toml");
    let whole = format!("{WATCHED}[chuanliu.budget]\ndaily_impressions = 123456\n");
    std::fs::write(&path, &whole).unwrap();
    let server = TestServer::with_config_file(&path).await;
    let mut rank = server.rank_client().await;
    let v1 = rank
        .rank(disputed())
        .await
        .unwrap()
        .into_inner()
        .config_version;
    let shipped = fairflow::config::DEFAULT_TOML;
    let mut broken = vec![String::new(), "\n".into(), "# nothing yet\n".into()];
    // The file cut mid-line, as an editor saving in place leaves it for a
    // moment: here at 25 points through the shipped default, and in the
    // middle of the budget's value.
    broken.extend((1..=25).filter_map(|i| {
        let cut = shipped.len() * i / 26;
        let cut = (cut..shipped.len()).find(|c| shipped.is_char_boundary(*c))?;
        (!shipped[..cut].ends_with('\n')).then(|| shipped[..cut].to_string())
    }));
    broken.push(whole[..whole.len() - 4].to_string());
    for text in &broken {
        std::fs::write(&path, text).unwrap();
        // Twice the watcher's period and the settle time.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let now = rank
            .rank(disputed())
            .await
            .unwrap()
            .into_inner()
            .config_version;
        assert_eq!(
            now,
            v1,
            "applied a broken file: {:?}",
            &text[..text.len().min(80)]
        );
    }
    let live = server.state.live();
    assert_eq!(live.config.engine.chuanliu.daily_impressions, 123456);
    // The whole file again, changed: applied.
    std::fs::write(&path, whole.replace("123456", "654321")).unwrap();
    let patience = Patience::new(Duration::from_secs(10));
    while server.state.live().config.engine.chuanliu.daily_impressions != 654321 {
        patience.wait().await;
    }
}

#[tokio::test]
async fn keys_read_at_start_are_reported_as_needing_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fairflow.toml");
    std::fs::write(
        &path,
        "[events]\ndir = \"events\"\n[server]\nwatch_config_seconds = 0\n",
    )
    .unwrap();
    let server = TestServer::with_config_file(&path).await;
    let mut admin = AdminServiceClient::new(server.channel().await);
    let same = admin
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!same.changed);

    std::fs::write(
        &path,
        "[events]\ndir = \"events\"\n[server]\nwatch_config_seconds = 0\nlisten = \"127.0.0.1:1\"\nmax_concurrent_requests = 7\n",
    )
    .unwrap();
    let r = admin
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(r.changed);
    assert_ne!(r.version, r.previous_version);
    assert_eq!(r.restart_required, vec!["server.listen".to_string()]);
    assert_eq!(
        r.changes,
        [
            "server.listen: \"127.0.0.1:50051\" -> \"127.0.0.1:1\"",
            "server.max_concurrent_requests: 256 -> 7",
        ]
    );
    assert_eq!(
        server.state.live().config.server.max_concurrent_requests,
        7,
        "a live key is in force at once"
    );
}

#[tokio::test]
async fn the_embedded_config_has_no_file_to_reload() {
    let server = TestServer::start().await;
    let mut admin = AdminServiceClient::new(server.channel().await);
    let err = admin
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let config = admin
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.toml, include_str!("../config/default.toml"));
}

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_show_requests_latency_exposure_and_the_controller() {
    let server = TestServer::with_config(
        "[server]\nmetrics_refresh_seconds = 0.1\n[quotas.targets]\nenabled = true\ntop = 0.04\nmid = 0.5\nsmall = 0.46\n",
    )
    .await;
    let mut rank = server.rank_client().await;
    let catalog = Catalog::embedded_demo(128).unwrap();
    let spec = LoadSpec {
        addr: String::new(),
        concurrency: 1,
        duration: Duration::ZERO,
        max_requests: None,
        candidates: 100,
        slots: 10,
        seed: 3,
        users: None,
    };
    let mut sent = 0;
    for mut r in request_pool(&catalog, &spec, 40) {
        r.scene = pb::Scene::Mall as i32;
        rank.rank(r).await.unwrap();
        sent += 1;
    }
    let bad = rank.rank(request(vec![], 0)).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // The recorder is process-wide: other tests' servers in this binary
    // publish the same gauges (every 5 s by default), so wait for a scrape
    // right after this server's own refresh (every 0.1 s).
    let share_sum = |text: &str| -> f64 {
        ["top", "mid", "small"]
            .iter()
            .filter_map(|t| {
                sample(
                    text,
                    &format!("fairflow_exposure_share{{tier=\"{t}\",arm=\"base\"}}"),
                )
            })
            .sum()
    };
    let patience = Patience::new(Duration::from_secs(10));
    let text = loop {
        let text = server.scrape().await;
        if text.contains("fairflow_exposure_gini{arm=\"base\"} ")
            && (share_sum(&text) - 1.0).abs() < 1e-6
        {
            break text;
        }
        patience.wait().await;
    };
    let ok = sample(
        &text,
        "fairflow_rpc_requests_total{rpc=\"Rank\",scene=\"mall\",code=\"OK\"}",
    )
    .expect("request counter");
    assert!(ok >= f64::from(sent), "{text}");
    assert!(text.contains("code=\"INVALID_ARGUMENT\""), "{text}");
    assert!(
        sample(
            &text,
            "fairflow_rpc_duration_seconds_count{rpc=\"Rank\",scene=\"mall\"}"
        )
        .unwrap()
            >= f64::from(sent)
    );
    assert!(
        text.contains("fairflow_rpc_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        sample(&text, "fairflow_rank_candidates_sum{scene=\"mall\"}").unwrap()
            >= 100.0 * f64::from(sent)
    );
    let served: f64 = ["top", "mid", "small"]
        .iter()
        .filter_map(|t| {
            sample(
                &text,
                &format!(
                    "fairflow_exposure_served_total{{scene=\"mall\",tier=\"{t}\",arm=\"base\"}}"
                ),
            )
        })
        .sum();
    assert!(served > 0.0, "{text}");
    let shares: f64 = ["top", "mid", "small"]
        .iter()
        .map(|t| {
            sample(
                &text,
                &format!("fairflow_exposure_share{{tier=\"{t}\",arm=\"base\"}}"),
            )
            .unwrap()
        })
        .sum();
    assert!((shares - 1.0).abs() < 1e-6, "shares sum to 1: {text}");
    let target = sample(
        &text,
        "fairflow_exposure_target_share{tier=\"small\",arm=\"base\"}",
    )
    .unwrap();
    assert!((target - 0.46).abs() < 1e-9);
    let price = sample(
        &text,
        "fairflow_controller_price{tier=\"small\",arm=\"base\"}",
    )
    .unwrap();
    assert!((-2.0..=2.0).contains(&price), "within max_price: {price}");
    let gini = sample(&text, "fairflow_exposure_gini{arm=\"base\"} ").unwrap();
    assert!((0.0..1.0).contains(&gini), "{gini}");
    // No user or item ids in any label.
    assert!(!text.contains("user-1") && !text.contains("g-0"), "{text}");
}

/// Heavy requests: the most candidates the default limits allow.
fn heavy(n: usize) -> Vec<pb::RankRequest> {
    let catalog = Catalog::embedded_demo(128).unwrap();
    let spec = LoadSpec {
        addr: String::new(),
        concurrency: 1,
        duration: Duration::ZERO,
        max_requests: None,
        candidates: 2000,
        slots: 50,
        seed: 5,
        users: None,
    };
    request_pool(&catalog, &spec, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_concurrency_limit_requests_are_refused_at_once() {
    let server = TestServer::with_config("[server]\nmax_concurrent_requests = 1\n").await;
    let channel = server.channel().await;
    let tasks: Vec<_> = heavy(32)
        .into_iter()
        .map(|r| {
            let mut client = pb::rank_service_client::RankServiceClient::new(channel.clone());
            tokio::spawn(async move { client.rank(r).await.map(|_| ()).map_err(|s| s.code()) })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let shed = codes
        .iter()
        .filter(|c| **c == Err(Code::ResourceExhausted))
        .count();
    let ok = codes.iter().filter(|c| c.is_ok()).count();
    assert!(shed > 0, "{codes:?}");
    assert!(ok > 0, "{codes:?}");
    assert_eq!(shed + ok, codes.len(), "{codes:?}");
    let text = server.scrape().await;
    assert!(
        sample(
            &text,
            "fairflow_requests_shed_total{reason=\"concurrency\"}"
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_deadline_exceeded() {
    // 1 us: no 2000-candidate rank is that fast, on any machine.
    let server = TestServer::with_config("[server]\nrequest_timeout_seconds = 0.000001\n").await;
    let mut rank = server.rank_client().await;
    let mut codes = Vec::new();
    for r in heavy(10) {
        codes.push(rank.rank(r).await.map(|_| ()).map_err(|s| s.code()));
    }
    assert!(
        codes.contains(&Err(Code::DeadlineExceeded)),
        "a 2000-candidate rank takes longer than 1 us: {codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| c.is_ok() || *c == Err(Code::DeadlineExceeded)),
        "{codes:?}"
    );
    // The caller's own shorter deadline is honoured too.
    let server = TestServer::start().await;
    let mut rank = server.rank_client().await;
    let mut r = tonic::Request::new(heavy(1).remove(0));
    r.set_timeout(Duration::from_micros(1));
    let code = rank.rank(r).await.unwrap_err().code();
    assert!(
        matches!(code, Code::DeadlineExceeded | Code::Cancelled),
        "{code:?}"
    );
}
