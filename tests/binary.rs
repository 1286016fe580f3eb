//! The `fairflow` binary as a user runs it. Rules checked: `serve` starts on
//! the embedded defaults, answers `Rank`, and exits cleanly on SIGTERM;
//! SIGHUP reloads its config file; a bad config file is refused at start with
//! file, key and reason; `check-config` accepts the shipped default.

mod common;

use common::*;
use fairflow::proto::v1::ItemKind;
use fairflow::proto::v1::rank_service_client::RankServiceClient;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn serve_on_embedded_defaults_then_stop_on_sigterm() {
    let (mut child, addr, reader, _events) = spawn_server(&[]);
    let mut client = RankServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let resp = client
        .rank(request(
            vec![
                candidate("g000001", ItemKind::Goods),
                candidate("g000002", ItemKind::Goods),
            ],
            2,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.slots.len(), 2);
    assert!(
        resp.slots.iter().all(|s| s.resolved),
        "demo catalog is loaded"
    );
    drop(client);

    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "clean exit on SIGTERM, got {status:?}");
    let logs = reader.join().unwrap().join("\n");
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(logs.contains("\"stopped\""), "{logs}");
}

#[test]
fn a_bad_config_is_refused_at_start_with_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[tiers]\ntop_min_followers = 100\nmid_min_followers = 1000\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(path.to_str().unwrap()),
        "names the file: {err}"
    );
    assert!(
        err.contains("tiers.mid_min_followers"),
        "names the key: {err}"
    );
    assert!(err.contains("must be below"), "says why: {err}");
}

#[test]
fn check_config_accepts_the_shipped_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let out = Command::new(BIN)
        .args(["check-config", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(": ok\nversion "), "{text}");
    for line in [
        "tiers ",
        "quotas ",
        "targets ",
        "flow ",
        "budget 1000000 impressions/day",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert!(text.lines().count() < 15, "a summary, not a dump: {text}");
}

#[test]
fn check_config_exits_cleanly_on_a_closed_pipe_and_fails_on_a_broken_file() {
    use std::process::Stdio;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let mut child = Command::new(BIN)
        .args(["check-config", path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is read.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));

    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.toml");
    std::fs::write(&cut, "[chuanliu.budget]\ndaily_impressions = 12").unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.toml") && err.contains("newline"), "{err}");
}

#[tokio::test]
async fn sighup_reloads_the_config_file() {
    use fairflow::proto::v1 as pb;
    use fairflow::proto::v1::admin_service_client::AdminServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fairflow.toml");
    // No polling: only the signal can bring the change in.
    std::fs::write(&path, "[server]\nwatch_config_seconds = 0\n").unwrap();
    let (mut child, addr, reader, _events) = spawn_server(&["--config", path.to_str().unwrap()]);
    let mut admin = AdminServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let version = |c: pb::GetConfigResponse| c.version;
    let before = version(
        admin
            .get_config(pb::GetConfigRequest {})
            .await
            .unwrap()
            .into_inner(),
    );
    std::fs::write(
        &path,
        "[server]\nwatch_config_seconds = 0\n[quotas]\nmax_items_per_streamer = 1\n",
    )
    .unwrap();
    signal(&child, "HUP");
    let mut after = before.clone();
    for _ in 0..100 {
        after = version(
            admin
                .get_config(pb::GetConfigRequest {})
                .await
                .unwrap()
                .into_inner(),
        );
        if after != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(after, before, "SIGHUP reloaded the file");
    drop(admin);
    signal(&child, "TERM");
    assert!(
        wait_exit(&mut child, Duration::from_secs(20))
            .await
            .success()
    );
    let logs = reader.join().unwrap().join("\n");
    assert!(logs.contains("config reloaded"), "{logs}");
}

/// The affinities `user` has in the server at `addr`, as (brand, sources).
async fn affinities(addr: &str, user: &str) -> Vec<(String, Vec<String>)> {
    use fairflow::proto::v1 as pb;
    use fairflow::proto::v1::admin_service_client::AdminServiceClient;
    let mut admin = AdminServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let reply = admin
        .get_user_affinities(pb::GetUserAffinitiesRequest {
            user_id: user.into(),
        })
        .await
        .unwrap()
        .into_inner();
    reply
        .affinities
        .into_iter()
        .map(|a| (a.brand_id, a.source_streamer_ids))
        .collect()
}

#[tokio::test]
async fn acknowledged_events_survive_sigkill_and_a_snapshot_replaces_the_log() {
    use fairflow::proto::v1 as pb;
    use fairflow::proto::v1::event_service_client::EventServiceClient;
    let events_dir = tempfile::tempdir().unwrap();
    let batch = |from: usize| pb::IngestRequest {
        events: (from..from + 50)
            .map(|i| pb::Event {
                event_id: format!("evt-{i:05}"),
                time_ms: common::recent_ms() + i as i64,
                user_id: format!("u{}", i % 7),
                kind: Some(pb::event::Kind::Purchase(pb::Purchase {
                    item_id: "g000001".into(),
                    brand_id: "b0001".into(),
                    seller_streamer_id: "s00300".into(),
                    channel: pb::SaleChannel::Distribution as i32,
                    price: 10.0 + i as f64,
                    venue: pb::SaleVenue::LiveStream.into(),
                })),
            })
            .collect(),
    };
    let (mut child, addr, _reader) = spawn_server_with_events(&[], events_dir.path());
    let mut client = EventServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    for b in 0..4 {
        let reply = client.ingest(batch(b * 50)).await.unwrap().into_inner();
        assert_eq!(reply.accepted, 50);
    }
    // Killed the instant the last acknowledgement arrived: no shutdown
    // hook, no flush, no snapshot.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, addr, reader) = spawn_server_with_events(&[], events_dir.path());
    let mut client = EventServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    for b in 0..4 {
        let reply = client.ingest(batch(b * 50)).await.unwrap().into_inner();
        assert_eq!(
            (reply.accepted, reply.duplicates),
            (0, 50),
            "every acknowledged event is still there"
        );
    }
    // ... and so is what they did to the flow.
    let expected = vec![("b0001".to_string(), vec!["s00300".to_string()])];
    assert_eq!(affinities(&addr, "u3").await, expected);
    let fresh = client.ingest(batch(200)).await.unwrap().into_inner();
    assert_eq!(fresh.accepted, 50);
    signal(&child, "TERM");
    assert!(
        wait_exit(&mut child, Duration::from_secs(20))
            .await
            .success()
    );
    let logs = reader.join().unwrap();
    assert_eq!(log_line(&logs, "event log opened")["fields"]["events"], 200);
    // The clean stop wrote a snapshot of all 250.
    assert_eq!(
        log_line(&logs, "flow snapshot written")["fields"]["seq"],
        250
    );
    let snapshots: Vec<_> = std::fs::read_dir(events_dir.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with("snapshot-"))
        .collect();
    assert_eq!(snapshots, ["snapshot-00000000000000000250.bin"]);

    // The next start loads it and replays nothing; ids and affinities are
    // all there.
    let (mut child, addr, reader) = spawn_server_with_events(&[], events_dir.path());
    let mut client = EventServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let again = client.ingest(batch(200)).await.unwrap().into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 50));
    assert_eq!(affinities(&addr, "u3").await, expected);
    signal(&child, "TERM");
    wait_exit(&mut child, Duration::from_secs(20)).await;
    let logs = reader.join().unwrap();
    let opened = &log_line(&logs, "event log opened")["fields"];
    assert_eq!(
        (opened["snapshot_seq"].as_u64(), opened["replayed"].as_u64()),
        (Some(250), Some(0))
    );
}

#[tokio::test]
async fn a_sigterm_as_soon_as_the_server_listens_is_a_clean_stop() {
    // The handlers are in place before the server announces its address,
    // so the default action (kill) never runs, and the stop snapshots.
    for _ in 0..5 {
        let (mut child, _addr, reader, _events) = spawn_server(&[]);
        signal(&child, "TERM");
        let status = wait_exit(&mut child, Duration::from_secs(10)).await;
        assert!(status.success(), "{status:?}");
        let logs = reader.join().unwrap();
        log_line(&logs, "stopped");
    }
}

#[tokio::test]
async fn a_client_that_never_hangs_up_does_not_block_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grace.toml");
    std::fs::write(&path, "[server]\ndrain_grace_seconds = 0.5\n").unwrap();
    let (mut child, addr, _reader, _events) = spawn_server(&["--config", path.to_str().unwrap()]);
    // A connection that opens and then says nothing, forever.
    let _silent = std::net::TcpStream::connect(&addr).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

#[test]
fn simulate_then_train_report_malformed_lines_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let sim = Command::new(BIN)
        .args([
            "simulate",
            "--seed",
            "3",
            "--users",
            "30",
            "--streamers",
            "100",
            "--goods-per-brand",
            "10",
        ])
        .args(["--days", "1", "--quiet", "--out", out])
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let log = dir.path().join("traffic.jsonl");
    assert!(dir.path().join("catalog/streamers.jsonl").exists());
    assert!(dir.path().join("summary.json").exists());

    // Break line 5.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 10);
    lines[4] = "{\"type\":\"click\",\"time\":";
    std::fs::write(&log, lines.join("\n")).unwrap();

    let train = |on_error: &str| {
        Command::new(BIN)
            .args([
                "train",
                "--log",
                log.to_str().unwrap(),
                "--on-error",
                on_error,
            ])
            .args(["--out", dir.path().join("m.json").to_str().unwrap()])
            .output()
            .unwrap()
    };
    let fail = train("fail");
    assert!(!fail.status.success());
    let err = String::from_utf8_lossy(&fail.stderr);
    assert!(err.contains("traffic.jsonl line 5: "), "{err}");

    let skip = train("skip");
    let err = String::from_utf8_lossy(&skip.stderr);
    assert!(
        err.contains("skipped ") && err.contains("traffic.jsonl line 5: "),
        "{err}"
    );
}

/// `simulate` of a small world (seed 4: 40 users, 120 streamers, 10 goods
/// a brand, one day) into `out`, with `extra` flags.
fn simulate_small(extra: &[&str], out: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args([
            "simulate",
            "--seed",
            "4",
            "--users",
            "40",
            "--streamers",
            "120",
        ])
        .args(["--goods-per-brand", "10", "--days", "1", "--quiet"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn replay_writes_its_report_and_refuses_bad_input_without_writing_one() {
    let dir = tempfile::tempdir().unwrap();
    let sim_dir = dir.path().join("sim");
    let sim = simulate_small(&[], &sim_dir);
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let config = dir.path().join("replay.toml");
    std::fs::write(
        &config,
        format!(
            "[catalog]\ndir = \"{}\"\n",
            sim_dir.join("catalog").display()
        ),
    )
    .unwrap();
    let replay = |log: &std::path::Path, config: &std::path::Path, out: &std::path::Path| {
        Command::new(BIN)
            .arg("replay")
            .arg("--log")
            .arg(log)
            .arg("--config")
            .arg(config)
            .arg("--compare")
            .arg(config)
            .arg("--out")
            .arg(out)
            .args(["--shards", "2", "--quiet", "--write-rankings"])
            .arg(out.join("rankings.jsonl"))
            .output()
            .unwrap()
    };
    let out = dir.path().join("report");
    let ok = replay(&sim_dir.join("traffic.jsonl"), &config, &out);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("logged (what happened"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 0);
    assert_eq!(report["a"]["replayed"]["requests"].as_u64(), Some(requests));
    // The same config twice: no difference at all.
    assert_eq!(report["difference"]["expected_gmv"].as_f64(), Some(0.0));
    assert_eq!(report["a"]["replayed"], report["b"]["replayed"]);
    // The simulator logs propensities, clicks and purchases.
    let ope = &report["a"]["off_policy"];
    assert!(ope["requests"].as_u64().unwrap() > 0, "{ope}");
    assert!(ope["clicks_per_request"]["dr"]["value"].is_number());
    for chart in ["tiers-logged", "tiers-a", "tiers-b", "lorenz"] {
        let svg = std::fs::read_to_string(out.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{chart}");
        let png = std::fs::read(out.join(format!("{chart}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{chart}");
    }
    let rankings = std::fs::read_to_string(out.join("rankings.jsonl")).unwrap();
    assert_eq!(rankings.lines().count() as u64, requests);

    // The same log as Parquet: converted, replayed, the same report; the
    // rankings as Parquet hold the same rows.
    let convert = |log: &std::path::Path, out: &std::path::Path, to: &str| {
        Command::new(BIN)
            .arg("convert")
            .arg("--log")
            .arg(log)
            .arg("--out")
            .arg(out)
            .args(["--to", to])
            .output()
            .unwrap()
    };
    let parquet = dir.path().join("traffic.parquet");
    let converted = convert(&sim_dir.join("traffic.jsonl"), &parquet, "parquet");
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    assert!(String::from_utf8_lossy(&converted.stdout).contains(" records, "));
    let again = convert(&sim_dir.join("traffic.jsonl"), &parquet, "parquet");
    assert!(!again.status.success(), "an existing output is kept");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let back = dir.path().join("back.jsonl");
    assert!(convert(&parquet, &back, "jsonl").status.success());
    let original = std::fs::read_to_string(sim_dir.join("traffic.jsonl")).unwrap();
    let parse = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert_eq!(
        parse(&std::fs::read_to_string(&back).unwrap()),
        parse(&original),
        "JSONL -> Parquet -> JSONL gives the records back, in order"
    );
    let from_parquet = dir.path().join("report-parquet");
    let ok = Command::new(BIN)
        .arg("replay")
        .arg("--log")
        .arg(&parquet)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&from_parquet)
        .args(["--shards", "2", "--quiet", "--write-rankings"])
        .arg(from_parquet.join("rankings.parquet"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report_parquet: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from_parquet.join("report.json")).unwrap()).unwrap();
    assert_eq!(report_parquet["a"], report["a"]);
    let file = std::fs::File::open(from_parquet.join("rankings.parquet")).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(
        reader.metadata().file_metadata().num_rows() as u64,
        requests
    );

    // Interactive: the Parquet log's header still names its world, whose
    // users answer the pages.
    let interactive = dir.path().join("report-interactive");
    let ok = Command::new(BIN)
        .arg("replay")
        .arg("--log")
        .arg(&parquet)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&interactive)
        .args(["--quiet", "--interactive"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("simulated users (interactive)"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(interactive.join("report.json")).unwrap()).unwrap();
    assert!(
        report["a"]["replayed"]["realized"]["clicks"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        report["a"]["logged"]["realized"]["impressions"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Bad input: an error naming the problem, a non-zero exit, no report.
    let missing = replay(
        &dir.path().join("nope.jsonl"),
        &config,
        &dir.path().join("r2"),
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));
    assert!(!dir.path().join("r2/report.json").exists());
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[chuanliu]\nmax_per_page = -1\n").unwrap();
    let refused = replay(
        &sim_dir.join("traffic.jsonl"),
        &bad_config,
        &dir.path().join("r3"),
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("chuanliu.max_per_page"), "{err}");
    assert!(!dir.path().join("r3/report.json").exists());
    let no_snapshot = Command::new(BIN)
        .arg("replay")
        .arg("--log")
        .arg(sim_dir.join("traffic.jsonl"))
        .arg("--config")
        .arg(&config)
        .arg("--snapshot")
        .arg(&sim_dir)
        .arg("--out")
        .arg(dir.path().join("r4"))
        .output()
        .unwrap();
    assert!(!no_snapshot.status.success());
    let err = String::from_utf8_lossy(&no_snapshot.stderr);
    assert!(err.contains("holds no snapshot"), "{err}");
    assert!(!dir.path().join("r4/report.json").exists());
}

#[tokio::test]
async fn the_server_outlives_its_log_reader() {
    // A log collector that restarts closes the server's stderr: the server
    // must go on starting and serving, not die writing its next line.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &addr,
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--events-dir")
        .arg(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    drop(stderr);
    let channel = loop {
        assert!(child.try_wait().unwrap().is_none(), "the server died");
        match tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    // Something more to log: a reload refused (no config file to reload).
    let mut admin =
        fairflow::proto::v1::admin_service_client::AdminServiceClient::new(channel.clone());
    assert!(
        admin
            .reload_config(fairflow::proto::v1::ReloadConfigRequest {})
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "the server died");
    let mut client = RankServiceClient::new(channel);
    let page = client
        .rank(request(vec![candidate("g000001", ItemKind::Goods)], 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.slots.len(), 1);
    signal(&child, "TERM");
    wait_exit(&mut child, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_sighup_as_soon_as_it_listens_does_not_kill_the_server() {
    for _ in 0..3 {
        let (mut child, _addr, _reader, _dir) = spawn_server(&[]);
        signal(&child, "HUP");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(child.try_wait().unwrap().is_none(), "killed by SIGHUP");
        signal(&child, "TERM");
        assert!(
            wait_exit(&mut child, Duration::from_secs(20))
                .await
                .success()
        );
    }
}

#[test]
fn simulate_takes_the_response_knobs_and_refuses_bad_ones_by_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, knobs: &[&str]| {
        let out = dir.path().join(name);
        (simulate_small(knobs, &out), out.join("traffic.jsonl"))
    };
    for (knobs, reason) in [
        (
            &["--fatigue=-1"][..],
            "--fatigue must be at least 0, got -1",
        ),
        (
            &["--memory-half-life-days", "0"][..],
            "--memory-half-life-days must be positive",
        ),
        (
            &["--fatigue-half-life-hours", "NaN"][..],
            "--fatigue-half-life-hours must be positive",
        ),
    ] {
        let (out, _) = run("bad", knobs);
        assert!(!out.status.success(), "{knobs:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{knobs:?}: {stderr}");
    }
    let (plain, plain_log) = run("plain", &[]);
    let (tired, tired_log) = run("tired", &["--fatigue", "3"]);
    assert!(plain.status.success() && tired.status.success());
    let clicks = |log: &std::path::Path| {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"type\":\"click\""))
            .count()
    };
    // Same requests; a heavy fatigue leaves fewer clicks.
    assert!(
        clicks(&tired_log) < clicks(&plain_log),
        "{} vs {}",
        clicks(&tired_log),
        clicks(&plain_log)
    );
}
