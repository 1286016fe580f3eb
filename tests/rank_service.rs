//! `Rank` over real gRPC on an ephemeral port. Rules checked: ranking order
//! follows expected value; every slot carries its streamer's tier and reason
//! codes; the response names the config and model versions; unknown items are
//! ranked and flagged; off-air streams are not placed.

mod common;

use common::*;
use fairflow::domain::TierThresholds;
use fairflow::proto::v1::{self as pb, ItemKind, ReasonCode, Tier};

fn tier_pb(t: fairflow::domain::Tier) -> i32 {
    match t {
        fairflow::domain::Tier::Top => Tier::Top as i32,
        fairflow::domain::Tier::Mid => Tier::Mid as i32,
        fairflow::domain::Tier::Small => Tier::Small as i32,
    }
}

#[tokio::test]
async fn ranks_demo_streams_with_tiers_reasons_and_versions() {
    let server = TestServer::start().await;
    // 200 live streams from the demo catalog, of every tier.
    let (candidates, tier_of) = {
        let catalog = server.state.catalog.read();
        let tiers = TierThresholds::new(5_000_000, 100_000).unwrap();
        let mut live: Vec<_> = catalog.streams().filter(|e| e.stream.live).collect();
        live.sort_by(|a, b| a.stream.id.cmp(&b.stream.id));
        let mut tier_of = std::collections::HashMap::new();
        let mut candidates = Vec::new();
        for e in live.iter().take(200) {
            let t = catalog.tier_of(&e.stream.streamer_id, &tiers).unwrap();
            tier_of.insert(e.stream.id.clone(), tier_pb(t));
            candidates.push(candidate(&e.stream.id, ItemKind::LiveStream));
        }
        (candidates, tier_of)
    };
    let mut client = server.rank_client().await;
    let resp = client
        .rank(request(candidates, 20))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(resp.request_id, "it-1");
    assert_eq!(resp.slots.len(), 20);
    assert_eq!(resp.config_version, server.state.live().config.version);
    assert!(
        resp.model_version.starts_with("sim-v1@"),
        "{}",
        resp.model_version
    );
    assert_eq!(resp.unresolved_candidates, 0);
    for (i, slot) in resp.slots.iter().enumerate() {
        assert_eq!(slot.position, i as u32);
        assert_eq!(slot.kind, ItemKind::LiveStream as i32);
        assert_eq!(
            slot.tier, tier_of[&slot.item_id],
            "tier of {}",
            slot.item_id
        );
        assert!(slot.reasons.contains(&(ReasonCode::Organic as i32)));
        assert!(slot.resolved);
        assert!(slot.pctr > 0.0 && slot.pctr < 1.0 && slot.pcvr > 0.0 && slot.pcvr < 1.0);
        assert!(slot.expected_value > 0.0);
    }
    assert!(
        resp.slots.windows(2).all(|w| w[0].score >= w[1].score),
        "score order"
    );
    server.stop().await;
}

#[tokio::test]
async fn upstream_estimates_order_the_page_when_configured() {
    // Neutral gates and no quotas (the three goods share a seller), so only
    // the expected value orders the page.
    let server = TestServer::with_config(concat!(
        "[quotas]\nscenes = []\n",
        "[scoring]\nsource = \"upstream\"\n",
        "[gates.product]\npoints = [[0.0, 1.0]]\n",
        "[gates.shop_experience]\npoints = [[0.0, 1.0]]\n",
        "[gates.reputation]\npoints = [[0.0, 1.0]]\n",
        "[gates.cold_start]\nmax_age_days = 0\n",
    ))
    .await;
    let goods: Vec<(String, f64)> = {
        let catalog = server.state.catalog.read();
        let mut g: Vec<_> = catalog
            .goods_iter()
            .map(|g| (g.id.clone(), g.price))
            .collect();
        g.sort_by(|a, b| a.0.cmp(&b.0));
        g.into_iter().take(3).collect()
    };
    // Choose pCTR so that expected value = 1, 3, 2 yuan exactly.
    let targets = [1.0, 3.0, 2.0];
    let candidates = goods
        .iter()
        .zip(targets)
        .map(|((id, _catalog_price), ev)| pb::Candidate {
            // The caller's price wins over the catalog's.
            price: Some(100.0),
            ..goods_with(id, ev / 100.0 / 0.5, 0.5)
        })
        .collect();
    let mut client = server.rank_client().await;
    let resp = client
        .rank(request(candidates, 3))
        .await
        .unwrap()
        .into_inner();
    let expected: Vec<String> = [1usize, 2, 0].iter().map(|&i| goods[i].0.clone()).collect();
    assert_eq!(item_ids(&resp), expected);
    assert!((resp.slots[0].expected_value - 3.0).abs() < 1e-9);
}

#[tokio::test]
async fn unknown_candidates_are_ranked_and_flagged() {
    let server = TestServer::start().await;
    let unknown = pb::Candidate {
        streamer_id: Some("not-in-catalog".into()),
        price: Some(500.0),
        ..goods_with("g-unknown", 0.2, 0.2)
    };
    let mut client = server.rank_client().await;
    let resp = client
        .rank(request(
            vec![unknown, candidate("g000001", ItemKind::Goods)],
            2,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.unresolved_candidates, 1);
    let slot = resp
        .slots
        .iter()
        .find(|s| s.item_id == "g-unknown")
        .expect("unknown item is ranked");
    assert!(!slot.resolved);
    assert_eq!(slot.tier, Tier::Small as i32);
    assert_eq!(slot.streamer_id, "not-in-catalog");
    let known = resp.slots.iter().find(|s| s.item_id == "g000001").unwrap();
    assert!(known.resolved);
}

#[tokio::test]
async fn off_air_streams_are_not_placed() {
    let server = TestServer::start().await;
    let (live, off) = {
        let catalog = server.state.catalog.read();
        let mut live = None;
        let mut off = None;
        let mut all: Vec<_> = catalog.streams().collect();
        all.sort_by(|a, b| a.stream.id.cmp(&b.stream.id));
        for e in all {
            match e.stream.live {
                true if live.is_none() => live = Some(e.stream.id.clone()),
                false if off.is_none() => off = Some(e.stream.id.clone()),
                _ => {}
            }
        }
        (live.unwrap(), off.unwrap())
    };
    let mut client = server.rank_client().await;
    let resp = client
        .rank(request(
            vec![
                candidate(&off, ItemKind::LiveStream),
                candidate(&live, ItemKind::LiveStream),
            ],
            2,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(item_ids(&resp), vec![live]);
    assert_eq!(resp.ineligible_candidates, 1);
}
