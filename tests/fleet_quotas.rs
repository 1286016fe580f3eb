//! Each replica of a fleet keeps its own exposure controller, with no
//! coordination (docs/scale-out.md): behind a balancer that sends every
//! request to a replica drawn at random, each replica's realized tier
//! shares still converge to the targets, within 1 pp. Three replicas as
//! separate processes on loopback, on the machine's NATS and Redis
//! (skipped, saying so, without them).

mod common;

use common::fleet::*;
use common::tiers::{candidates, seed};
use common::*;
use fairflow::proto::v1::{self as pb, Tier};
use rand::{Rng, SeedableRng};

const TARGETS: [(Tier, f64); 3] = [(Tier::Top, 0.35), (Tier::Mid, 0.35), (Tier::Small, 0.30)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_a_random_balancer_each_converge_to_the_targets() {
    if !services_are_up() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let stream = fresh_stream(work.path(), "quotas");
    let [(_, top), (_, mid), (_, small)] = TARGETS;
    let config = fleet_config(
        work.path(),
        &stream,
        &format!(
            "[scoring]\nsource = \"upstream\"\n[quotas]\nscenes = [\"recommend\"]\n[quotas.floors]\npolicy = \"none\"\n[quotas.spreading]\nstrength = 0.0\n[quotas.targets]\nenabled = true\ntop = {top}\nmid = {mid}\nsmall = {small}\nhalf_life_seconds = 300.0\n[chuanliu]\nenabled = false\n"
        ),
    );
    let (_dirs, replicas) = replicas(&config, 3);
    let mut clients = Vec::new();
    for r in &replicas {
        seed(&r.addr).await;
        clients.push(rank_client(&r.addr).await);
    }
    // 2,400 pages, one a second of request time, each to a replica drawn
    // at random: about 800 each, at uneven intervals.
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let start = 1_795_132_800_000i64;
    let mut sent = [0usize; 3];
    for i in 0..2_400 {
        let to = rng.random_range(0..replicas.len());
        sent[to] += 1;
        let mut page = request(candidates(&mut rng), 10);
        page.request_time_ms = Some(start + i * 1000);
        let served = clients[to].rank(page).await.unwrap().into_inner();
        assert_eq!(served.slots.len(), 10);
    }
    assert!(sent.iter().all(|&n| n > 600), "a random balancer: {sent:?}");
    for (r, p) in replicas.iter().enumerate() {
        let mut admin =
            pb::admin_service_client::AdminServiceClient::connect(format!("http://{}", p.addr))
                .await
                .unwrap();
        let state = admin
            .get_quota_state(pb::GetQuotaStateRequest {})
            .await
            .unwrap()
            .into_inner();
        for (tier, target) in TARGETS {
            let t = state.tiers.iter().find(|t| t.tier == tier as i32).unwrap();
            assert!(
                (t.realized_share - target).abs() <= 0.01,
                "replica {r} ({} pages): {tier:?} at {:.4}, target {target}; {state:?}",
                sent[r],
                t.realized_share
            );
        }
    }
    // Without the controller the head would take far more than its target
    // (what makes the check above mean something): ranked by score alone,
    // top streamers fill most of the page.
    let mut plain = request(candidates(&mut rng), 10);
    plain.scene = pb::Scene::Mall as i32;
    plain.request_time_ms = Some(start + 2_400_000);
    let page = clients[0].rank(plain).await.unwrap().into_inner();
    let head = page
        .slots
        .iter()
        .filter(|s| s.tier == Tier::Top as i32)
        .count();
    assert!(head >= 7, "{head} of 10 slots to the head without quotas");
    for p in replicas {
        p.stop();
    }
    delete_stream(&stream).await;
}
