//! Fairness quotas over real gRPC: tier floors put small streamers on a page
//! that top streamers would otherwise fill, marked TIER_FLOOR; the per-page
//! streamer cap holds; scenes outside `quotas.scenes` are in score order.

mod common;

use common::*;
use fairflow::proto::v1::{self as pb, ReasonCode, Scene, StreamerKind, Tier};

const CONFIG: &str = concat!(
    "[scoring]\nsource = \"upstream\"\n",
    "[quotas]\nscenes = [\"recommend\"]\nmax_items_per_streamer = 1\n",
    "[quotas.floors]\npolicy = \"proportional\"\nmid = 0.0\nsmall = 0.25\n",
);

async fn seed(server: &TestServer) {
    let mut catalog = server.catalog_client().await;
    let mut streamers: Vec<pb::Streamer> = (0..10)
        .map(|i| pb::Streamer {
            id: format!("q-top{i}"),
            followers: 9_000_000,
            kind: StreamerKind::Influencer as i32,
            ..Default::default()
        })
        .collect();
    streamers.extend((0..3).map(|i| pb::Streamer {
        id: format!("q-small{i}"),
        followers: 5_000,
        kind: StreamerKind::Influencer as i32,
        ..Default::default()
    }));
    catalog
        .upsert_streamers(pb::UpsertStreamersRequest { streamers })
        .await
        .unwrap();
    let goods = |id: String, seller: String| pb::Goods {
        id,
        brand_id: "q-brand".into(),
        price: 100.0,
        product_score: None,
        seller_id: seller,
    };
    let mut all: Vec<pb::Goods> = (0..10)
        .map(|i| goods(format!("q-gt{i}"), format!("q-top{i}")))
        .collect();
    // A second item of the first top streamer: the cap keeps it off the page.
    all.push(goods("q-gt0b".into(), "q-top0".into()));
    all.extend((0..3).map(|i| goods(format!("q-gs{i}"), format!("q-small{i}"))));
    catalog
        .upsert_goods(pb::UpsertGoodsRequest { goods: all })
        .await
        .unwrap();
}

fn candidates() -> Vec<pb::Candidate> {
    let mut c: Vec<pb::Candidate> = (0..10)
        .map(|i| goods_with(&format!("q-gt{i}"), 0.3 - i as f64 * 0.01, 0.1))
        .collect();
    c.push(goods_with("q-gt0b", 0.5, 0.1));
    c.extend((0..3).map(|i| goods_with(&format!("q-gs{i}"), 0.01, 0.01)));
    c
}

#[tokio::test]
async fn floors_and_cap_shape_the_page() {
    let server = TestServer::with_config(CONFIG).await;
    seed(&server).await;
    let mut rank = server.rank_client().await;
    let page = rank
        .rank(request(candidates(), 8))
        .await
        .unwrap()
        .into_inner();
    let tiers: Vec<i32> = page.slots.iter().map(|s| s.tier).collect();
    for prefix in 1..=8 {
        let small = tiers[..prefix]
            .iter()
            .filter(|&&t| t == Tier::Small as i32)
            .count();
        assert!(
            small >= prefix / 4,
            "prefix {prefix}: {small} small slots in {tiers:?}"
        );
    }
    let floor_slots: Vec<&pb::RankedSlot> = page
        .slots
        .iter()
        .filter(|s| s.reasons.contains(&(ReasonCode::TierFloor as i32)))
        .collect();
    assert_eq!(floor_slots.len(), 2);
    assert!(floor_slots.iter().all(|s| s.tier == Tier::Small as i32));
    let top0 = page
        .slots
        .iter()
        .filter(|s| s.streamer_id == "q-top0")
        .count();
    assert_eq!(top0, 1, "one item per streamer");

    // Not a quota scene: score order, no floors.
    let mut mall = request(candidates(), 8);
    mall.scene = Scene::Mall as i32;
    let page = rank.rank(mall).await.unwrap().into_inner();
    assert!(page.slots.iter().all(|s| s.tier == Tier::Top as i32));
    assert_eq!(page.slots[0].item_id, "q-gt0b");
}

#[tokio::test]
async fn admin_reads_the_controller_state() {
    let server = TestServer::with_config(concat!(
        "[scoring]\nsource = \"upstream\"\n",
        "[quotas]\nscenes = [\"recommend\"]\n",
        "[quotas.floors]\npolicy = \"none\"\n",
        "[quotas.targets]\nenabled = true\ntop = 0.2\nmid = 0.0\nsmall = 0.8\n",
    ))
    .await;
    seed(&server).await;
    let mut rank = server.rank_client().await;
    for i in 0..20 {
        let mut req = request(candidates(), 4);
        req.request_time_ms = Some(1_795_132_800_000 + i * 1000);
        rank.rank(req).await.unwrap();
    }
    let mut admin = pb::admin_service_client::AdminServiceClient::new(server.channel().await);
    let state = admin
        .get_quota_state(pb::GetQuotaStateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(state.targets_enabled);
    assert_eq!(state.config_version, server.state.live().config.version);
    assert_eq!(state.tiers.len(), 3);
    let total: f64 = state.tiers.iter().map(|t| t.realized_share).sum();
    assert!((total - 1.0).abs() < 1e-9, "{state:?}");
    let small = state
        .tiers
        .iter()
        .find(|t| t.tier == Tier::Small as i32)
        .unwrap();
    let top = state
        .tiers
        .iter()
        .find(|t| t.tier == Tier::Top as i32)
        .unwrap();
    assert_eq!(small.target_share, Some(0.8));
    assert!(small.price > 0.0 && top.price < 0.0, "{state:?}");
    assert!(state.score_unit > 0.0, "{state:?}");
}
