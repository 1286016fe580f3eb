//! Replicas sharing the flow through NATS JetStream, as separate processes
//! on loopback against the machine's NATS (docs/scale-out.md). Rules
//! checked:
//! - events ingested round-robin on three replicas, one of them SIGKILLed
//!   mid-ingest and restarted, are all on every replica afterwards: the
//!   same affinities everywhere, each acknowledged event applied exactly
//!   once (resends through any replica are duplicates);
//! - a replica restarted from its snapshot reads the stream after it;
//! - a budget hit by concurrent traffic on every replica is spent exactly,
//!   never more, and `GetFlowStats` says so for the fleet;
//! - a user whose requests land on every replica at once is shown a brand
//!   exactly the frequency cap's number of times, and the fleet's figures
//!   count those impressions and the purchases that follow once each;
//! - while NATS is away an ingest answers UNAVAILABLE and ranking goes on;
//!   both recover by themselves;
//! - while Redis is away no flow impression is served (no place under a
//!   cap can be held), ranking goes on, and the flow comes back with Redis;
//! - a replica refuses to start when NATS is unreachable, naming it.
//!
//! Needs NATS with JetStream on 127.0.0.1:4222 and Redis on 127.0.0.1:6379;
//! skipped, saying so, when it
//! is not there (`.ci/run` starts it).

mod common;

use common::fleet::*;
use common::*;
use fairflow::proto::v1 as pb;
use fairflow::proto::v1::admin_service_client::AdminServiceClient;
use fairflow::proto::v1::event_service_client::EventServiceClient;
use std::path::Path;
use std::time::Duration;

fn purchase(i: usize) -> pb::Event {
    pb::Event {
        event_id: format!("fleet-{i:05}"),
        time_ms: recent_ms() + i as i64 * 1000,
        user_id: format!("u{}", i % 40),
        kind: Some(pb::event::Kind::Purchase(pb::Purchase {
            item_id: "g000001".into(),
            brand_id: "b0001".into(),
            seller_streamer_id: "s00300".into(),
            channel: pb::SaleChannel::Distribution as i32,
            price: 10.0 + i as f64,
            venue: pb::SaleVenue::LiveStream.into(),
        })),
    }
}

async fn events_client(addr: &str) -> EventServiceClient<tonic::transport::Channel> {
    EventServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// What a replica holds for a user: (brand, sources, last purchase, weight).
async fn held(addr: &str, user: &str) -> Vec<(String, Vec<String>, i64, f64)> {
    let mut admin = AdminServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    admin
        .get_user_affinities(pb::GetUserAffinitiesRequest {
            user_id: user.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .affinities
        .into_iter()
        .map(|a| (a.brand_id, a.source_streamer_ids, a.updated_ms, a.weight))
        .collect()
}

/// Ingests purchases through influencers on the first replica, all new,
/// and waits until every replica holds the last one's affinity.
async fn ingest_everywhere(replicas: &[Process], events: Vec<pb::Event>) {
    let (n, last) = (events.len(), events.last().unwrap().user_id.clone());
    let reply = events_client(&replicas[0].addr)
        .await
        .ingest(pb::IngestRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted as usize, n);
    for r in replicas {
        let patience = Patience::new(Duration::from_secs(20));
        while held(&r.addr, &last).await.is_empty() {
            patience.wait().await;
        }
    }
}

async fn flow_stats(addr: &str) -> pb::FlowStats {
    AdminServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .get_flow_stats(pb::GetFlowStatsRequest::default())
        .await
        .unwrap()
        .into_inner()
}

/// Purchases applied by a replica since it started, from its metrics.
async fn purchases_applied(metrics: &str) -> f64 {
    metric_sum(&scrape(metrics).await, "fairflow_purchases_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_reaches_every_replica_once_through_a_sigkill() {
    if !services_are_up() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let stream = fresh_stream(work.path(), "roundrobin");
    let config = fleet_config(work.path(), &stream, "");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let args = ["--config", config.as_str()];
    let mut replicas: Vec<Option<Process>> =
        dirs.iter().map(|d| Some(spawn(&args, d.path()))).collect();

    const N: usize = 600;
    const BATCH: usize = 20;
    let mut acknowledged = std::collections::BTreeSet::new();
    let mut killed = false;
    for (b, from) in (0..N).step_by(BATCH).enumerate() {
        let events: Vec<pb::Event> = (from..from + BATCH).map(purchase).collect();
        let target = b % 3;
        if b == 12 && !killed {
            // Mid-ingest: a batch is on its way to replica 1 when it dies.
            let p = replicas[1].take().unwrap();
            let mut client = events_client(&p.addr).await;
            let in_flight = events.clone();
            let sent = tokio::spawn(async move {
                client.ingest(pb::IngestRequest { events: in_flight }).await
            });
            tokio::time::sleep(Duration::from_millis(2)).await;
            p.kill();
            if let Ok(Ok(reply)) = sent.await {
                assert_eq!(reply.get_ref().accepted as usize, BATCH);
                acknowledged.extend(events.iter().map(|e| e.event_id.clone()));
            }
            killed = true;
            // The client retries what was not acknowledged elsewhere.
            let mut other = events_client(&replicas[2].as_ref().unwrap().addr).await;
            let reply = other
                .ingest(pb::IngestRequest {
                    events: events.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(reply.accepted + reply.duplicates, BATCH as u32);
            acknowledged.extend(events.iter().map(|e| e.event_id.clone()));
            // ... and the killed replica comes back on the same disk.
            replicas[1] = Some(spawn(&args, dirs[1].path()));
            continue;
        }
        let addr = replicas[target].as_ref().unwrap().addr.clone();
        let reply = events_client(&addr)
            .await
            .ingest(pb::IngestRequest {
                events: events.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.accepted as usize, BATCH, "batch {b}");
        acknowledged.extend(events.iter().map(|e| e.event_id.clone()));
    }
    assert_eq!(acknowledged.len(), N);

    // Every acknowledged event on every replica: each has what the others
    // have, for every user. (An ingest answers once its own replica has
    // applied it; the others read the stream a moment later.)
    let addrs: Vec<String> = replicas
        .iter()
        .map(|r| r.as_ref().unwrap().addr.clone())
        .collect();
    let patience = Patience::new(Duration::from_secs(20));
    for user in (0..40).map(|u| format!("u{u}")) {
        loop {
            let views = [
                held(&addrs[0], &user).await,
                held(&addrs[1], &user).await,
                held(&addrs[2], &user).await,
            ];
            let same = views.iter().all(|v| {
                v.len() == views[0].len()
                    && v.iter().zip(&views[0]).all(|(a, b)| {
                        (&a.0, &a.1, a.2) == (&b.0, &b.1, b.2)
                            && (a.3 - b.3).abs() <= 1e-6 * b.3.abs()
                    })
            });
            let newest = recent_ms()
                + (0..N)
                    .filter(|i| i % 40 == user[1..].parse::<usize>().unwrap())
                    .max()
                    .unwrap() as i64
                    * 1000;
            if same && views[0].len() == 1 && views[0][0].2 == newest {
                break;
            }
            assert!(!patience.exhausted(), "{user}: {views:?}");
            patience.wait().await;
        }
    }

    // Applied exactly once: the replicas never restarted count each
    // acknowledged purchase once, and resends through any replica are
    // duplicates that change nothing.
    for r in [0, 2] {
        let metrics = &replicas[r].as_ref().unwrap().metrics;
        assert_eq!(purchases_applied(metrics).await, N as f64, "replica {r}");
    }
    for (r, addr) in addrs.iter().enumerate() {
        let events: Vec<pb::Event> = (r * 100..r * 100 + 100).map(purchase).collect();
        let reply = events_client(addr)
            .await
            .ingest(pb::IngestRequest { events })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((reply.accepted, reply.duplicates), (0, 100), "replica {r}");
    }
    for r in [0, 2] {
        let metrics = &replicas[r].as_ref().unwrap().metrics;
        assert_eq!(purchases_applied(metrics).await, N as f64, "replica {r}");
    }
    for r in replicas.into_iter().flatten() {
        r.stop();
    }
    delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_from_its_snapshot_reads_the_stream_after_it() {
    if !services_are_up() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let stream = fresh_stream(work.path(), "snapshot");
    let config = fleet_config(work.path(), &stream, "");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--config", config.as_str()];
    let a = spawn(&args, a_dir.path());
    let b = spawn(&args, b_dir.path());
    let ingest = |addr: String, range: std::ops::Range<usize>| async move {
        events_client(&addr)
            .await
            .ingest(pb::IngestRequest {
                events: range.map(purchase).collect(),
            })
            .await
            .unwrap()
            .into_inner()
    };
    assert_eq!(ingest(a.addr.clone(), 0..50).await.accepted, 50);
    // B stops cleanly: its snapshot holds the stream through 50.
    let b_logs = b.stop();
    let written = b_logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "flow snapshot written")
        .expect("a snapshot at shutdown");
    assert_eq!(written["fields"]["seq"], 50);
    // While B is down the fleet goes on.
    assert_eq!(ingest(a.addr.clone(), 50..80).await.accepted, 30);
    let b = spawn(&args, b_dir.path());
    // B applied only the 30 after its snapshot, and holds all 80.
    assert_eq!(purchases_applied(&b.metrics).await, 30.0);
    assert_eq!(held(&b.addr, "u9").await, held(&a.addr, "u9").await);
    assert_eq!(ingest(b.addr.clone(), 0..80).await.duplicates, 80);
    a.stop();
    let logs = b.stop();
    let opened = log_line(&logs, "event stream opened");
    assert_eq!(opened["fields"]["snapshot_seq"], 50);
    delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_hit_on_every_replica_is_spent_exactly() {
    if !services_are_up() {
        return;
    }
    const BUDGET: u64 = 50;
    const HOUR: i64 = 3_600_000;
    let now = wall_clock_ms();
    // The whole day's budget in its first hour, and the day two hours old:
    // all of it is allowed now.
    let day_start = (now / HOUR + 22) % 24;
    let mut weights = vec!["0.0"; 24];
    weights[0] = "1.0";
    let work = tempfile::tempdir().unwrap();
    let stream = fresh_stream(work.path(), "budget");
    let config = fleet_config(
        work.path(),
        &stream,
        &format!(
            "lease_impressions = 4\n[quotas]\nscenes = []\n[chuanliu]\nenroll_all_brands = true\n[chuanliu.budget]\ndaily_impressions = {BUDGET}\nday_starts_at_utc_hour = {day_start}\nhourly_weights = [{}]\n",
            weights.join(", ")
        ),
    );
    let (_dirs, replicas) = replicas(&config, 3);
    // Thirty buyers of b0001 through an influencer, ingested on one replica.
    let users: Vec<String> = (0..30).map(|u| format!("buyer{u}")).collect();
    let events = users
        .iter()
        .enumerate()
        .map(|(i, u)| pb::Event {
            user_id: u.clone(),
            time_ms: now - 60_000 + i as i64,
            ..purchase(10_000 + i)
        })
        .collect();
    ingest_everywhere(&replicas, events).await;
    // Every replica ranks for every buyer, concurrently, until the fleet has
    // nothing left to lease.
    let rank = |addr: String| async move {
        let mut client = rank_client(&addr).await;
        let mut flow = 0u64;
        for round in 0..12 {
            for u in 0..30 {
                let id = format!("{addr}-{round}-{u}");
                flow += flow_slots(&mut client, &format!("buyer{u}"), id).await;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        flow
    };
    let running: Vec<_> = replicas
        .iter()
        .map(|r| tokio::spawn(rank(r.addr.clone())))
        .collect();
    let mut served = Vec::new();
    for r in running {
        served.push(r.await.unwrap());
    }
    assert_eq!(
        served.iter().sum::<u64>(),
        BUDGET,
        "served per replica: {served:?}"
    );
    assert!(
        served.iter().filter(|&&n| n > 0).count() >= 2,
        "the budget was shared: {served:?}"
    );
    for (r, p) in replicas.iter().enumerate() {
        let stats = flow_stats(&p.addr).await;
        assert!(stats.fleet);
        assert_eq!(
            (stats.spent_today, stats.remaining_today),
            (BUDGET, 0),
            "replica {r}"
        );
        assert_eq!(stats.replica_spent_today, served[r], "replica {r}");
    }
    for p in replicas {
        p.stop();
    }
    delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frequency_cap_holds_for_a_user_spread_over_replicas() {
    if !services_are_up() {
        return;
    }
    const CAP: u64 = 4;
    let work = tempfile::tempdir().unwrap();
    let stream = fresh_stream(work.path(), "cap");
    let config = fleet_config(
        work.path(),
        &stream,
        &format!(
            "[quotas]\nscenes = []\n[chuanliu]\nenroll_all_brands = true\nfrequency_cap = {CAP}\n"
        ),
    );
    let (_dirs, replicas) = replicas(&config, 3);
    let now = wall_clock_ms();
    let users: Vec<String> = (0..6).map(|u| format!("capped{u}")).collect();
    let events = users
        .iter()
        .enumerate()
        .map(|(i, u)| buyer(u, i, now))
        .collect();
    ingest_everywhere(&replicas, events).await;
    // Every replica asks for every user's page at once, 8 times each: 24
    // requests per user, each able to show the user b0001's stream.
    let rank = |addr: String, users: Vec<String>| async move {
        let mut client = rank_client(&addr).await;
        let mut served = vec![0u64; users.len()];
        for round in 0..8 {
            for (u, user) in users.iter().enumerate() {
                served[u] += flow_slots(&mut client, user, format!("{addr}-{round}-{u}")).await;
            }
        }
        served
    };
    let running: Vec<_> = replicas
        .iter()
        .map(|r| tokio::spawn(rank(r.addr.clone(), users.clone())))
        .collect();
    let mut per_replica = Vec::new();
    for r in running {
        per_replica.push(r.await.unwrap());
    }
    for (u, user) in users.iter().enumerate() {
        let shown: Vec<u64> = per_replica.iter().map(|s| s[u]).collect();
        assert_eq!(
            shown.iter().sum::<u64>(),
            CAP,
            "{user}, per replica: {shown:?}"
        );
    }
    let spread = (0..users.len())
        .filter(|&u| per_replica.iter().filter(|s| s[u] > 0).count() >= 2)
        .count();
    assert!(
        spread > 0,
        "some user was shown the brand by two replicas: {per_replica:?}"
    );
    let mut capped = 0.0;
    for p in &replicas {
        let text = scrape(&p.metrics).await;
        capped += metric_sum(&text, "fairflow_flow_cap_holds_total{result=\"capped\"}");
    }
    assert!(
        capped > 0.0,
        "requests past the cap were refused by the fleet's count"
    );

    // Every user then scrolls to b0001's own stream and buys in it: each
    // replica that showed the user the brand attributes the purchase; the
    // fleet counts it once.
    let now = wall_clock_ms();
    let seen = users.iter().enumerate().map(|(i, u)| pb::Event {
        event_id: format!("cap-seen-{i}"),
        time_ms: now,
        user_id: u.clone(),
        kind: Some(pb::event::Kind::Impression(pb::Impression {
            item_id: "live-s00001".into(), // b0001's own stream
            streamer_id: "s00001".into(),
            request_id: String::new(),
            position: 0,
        })),
    });
    let events = seen
        .chain(users.iter().enumerate().map(|(i, u)| pb::Event {
            event_id: format!("cap-self-{i}"),
            time_ms: now + i as i64,
            user_id: u.clone(),
            kind: Some(pb::event::Kind::Purchase(pb::Purchase {
                item_id: "g000001".into(),
                brand_id: "b0001".into(),
                seller_streamer_id: "s00001".into(), // b0001's own account
                channel: pb::SaleChannel::SelfBroadcast as i32,
                price: 20.0,
                venue: pb::SaleVenue::LiveStream.into(),
            })),
        }))
        .collect();
    let reply = events_client(&replicas[1].addr)
        .await
        .ingest(pb::IngestRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.accepted, reply.notes.len()), (12, 0), "{reply:?}");
    let showed: u64 = (0..users.len())
        .map(|u| per_replica.iter().filter(|s| s[u] > 0).count() as u64)
        .sum();
    let expected = pb::FleetFlowDay {
        impressions: CAP * users.len() as u64,
        attributed_conversions: users.len() as u64,
        attributed_gmv: 20.0 * users.len() as f64,
    };
    let patience = Patience::new(Duration::from_secs(20));
    loop {
        let mut own = 0;
        let mut fleet = Vec::new();
        for p in &replicas {
            let stats = flow_stats(&p.addr).await;
            own += stats.attributed_conversions;
            fleet.push(stats.fleet_today.unwrap());
        }
        if own == showed && fleet.iter().all(|f| *f == expected) {
            break;
        }
        assert!(
            !patience.exhausted(),
            "replicas' own attributions {own} (showed {showed}); fleet's figures {fleet:?}"
        );
        patience.wait().await;
    }
    for p in replicas {
        p.stop();
    }
    delete_stream(&stream).await;
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A NATS or Redis server of the test's own, to stop and start again.
struct Private {
    program: &'static str,
    args: Vec<String>,
    port: u16,
    child: Option<std::process::Child>,
}

impl Private {
    fn nats(dir: &Path) -> Private {
        let port = free_port();
        let args = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.display().to_string()])
            .collect();
        Private::start("nats-server", args, port)
    }

    fn redis() -> Private {
        let port = free_port();
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Private::start("redis-server", args, port)
    }

    fn start(program: &'static str, args: Vec<String>, port: u16) -> Private {
        let mut p = Private {
            program,
            args,
            port,
            child: None,
        };
        p.up();
        p
    }

    fn up(&mut self) {
        let child = std::process::Command::new(self.program)
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.program));
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not listen on {}", self.program, self.port);
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.down();
    }
}

fn buyer(user: &str, i: usize, now: i64) -> pb::Event {
    pb::Event {
        user_id: user.into(),
        time_ms: now - 60_000 + i as i64 * 1000,
        ..purchase(20_000 + i)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_nats_is_away_ingest_is_unavailable_and_ranking_goes_on() {
    if !services_are_up() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut nats = Private::nats(&work.path().join("nats"));
    let path = config_at(
        work.path(),
        &format!("127.0.0.1:{}", nats.port),
        REDIS,
        &fresh_stream(work.path(), "natsaway"),
        "ack_timeout_seconds = 1.0\n",
    );
    let replica = spawn(&["--config", path.as_str()], &work.path().join("events"));
    let now = wall_clock_ms();
    let mut events = events_client(&replica.addr).await;
    let one = |i: usize| pb::IngestRequest {
        events: vec![buyer("away", i, now)],
    };
    assert_eq!(
        events.ingest(one(0)).await.unwrap().into_inner().accepted,
        1
    );

    nats.down();
    let refused = events.ingest(one(1)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let mut rank = rank_client(&replica.addr).await;
    let page = rank
        .rank(request(vec![candidate("g000001", pb::ItemKind::Goods)], 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.slots.len(), 1, "ranking goes on without NATS");

    // NATS back (same storage): the retried event is taken, and applied
    // once. UNAVAILABLE meant "not acknowledged", not "not stored": the
    // client's buffered publish may have reached the stream on reconnect,
    // and then the retry is its duplicate.
    nats.up();
    let patience = Patience::new(Duration::from_secs(30));
    loop {
        match events.ingest(one(1)).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                assert_eq!(reply.accepted + reply.duplicates, 1);
                break;
            }
            Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable),
        }
        patience.wait().await;
    }
    // Applied here once the reader is back (affinities keep whole seconds).
    let second = (now - 60_000 + 1000) / 1000 * 1000;
    while held(&replica.addr, "away").await[0].2 != second {
        patience.wait().await;
    }
    replica.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_no_flow_impression_is_served_and_ranking_goes_on() {
    if !services_are_up() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut redis = Private::redis();
    let stream = fresh_stream(work.path(), "redisaway");
    let path = config_at(
        work.path(),
        NATS,
        &format!("127.0.0.1:{}", redis.port),
        &stream,
        "lease_impressions = 2\n[quotas]\nscenes = []\n[chuanliu]\nenroll_all_brands = true\nfrequency_cap = 1000\n",
    );
    let replica = spawn(&["--config", path.as_str()], &work.path().join("events"));
    let now = wall_clock_ms();
    let users: Vec<String> = (0..20).map(|u| format!("r{u}")).collect();
    let reply = events_client(&replica.addr)
        .await
        .ingest(pb::IngestRequest {
            events: users
                .iter()
                .enumerate()
                .map(|(i, u)| buyer(u, i, now))
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 20);
    let mut rank = rank_client(&replica.addr).await;
    let round = |rank: &mut RankClient| {
        let mut rank = rank.clone();
        let users = users.clone();
        async move {
            let mut flow = 0;
            for u in &users {
                flow += flow_slots(&mut rank, u, String::new()).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            flow
        }
    };
    assert!(round(&mut rank).await > 0, "flow impressions with Redis");
    redis.down();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let without: u64 = {
        let mut n = 0;
        for _ in 0..3 {
            n += round(&mut rank).await;
        }
        n
    };
    // Without Redis no place under a cap can be held, so nothing is shown
    // (the leased budget the replica holds stays for later).
    assert_eq!(without, 0, "no flow impression without Redis");
    redis.up();
    let patience = Patience::new(Duration::from_secs(30));
    while round(&mut rank).await == 0 {
        patience.wait().await;
    }
    let text = scrape(&replica.metrics).await;
    let failed = metric_sum(&text, "fairflow_flow_cap_holds_total{result=\"failed\"}");
    assert!(
        failed >= 60.0,
        "every request of the three rounds counted: {failed}"
    );
    replica.stop();
    delete_stream(&stream).await;
}

#[test]
fn a_replica_refuses_to_start_when_nats_is_unreachable() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("replica.toml");
    // Nothing listens on port 9 of loopback.
    std::fs::write(
        &path,
        "[cluster]\nnats_urls = [\"nats://127.0.0.1:9\"]\nredis_urls = [\"redis://127.0.0.1:6379\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--events-dir")
        .arg(work.path().join("events"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach NATS at nats://127.0.0.1:9"),
        "{stderr}"
    );
}
