//! A small catalog where tiers score apart: ten streamers per tier with one
//! goods item each, top streamers' items scoring highest, so exposure
//! control has something to move.

use super::goods_with;
use fairflow::proto::v1::{self as pb, StreamerKind, Tier};
use rand::Rng;

/// Ten streamers per tier, one goods item each.
pub fn streamers() -> Vec<(String, Tier, u64)> {
    let mut out = Vec::new();
    for (tier, followers, n) in [
        (Tier::Top, 9_000_000, 10),
        (Tier::Mid, 500_000, 10),
        (Tier::Small, 5_000, 10),
    ] {
        for i in 0..n {
            out.push((format!("cq-{tier:?}{i}"), tier, followers));
        }
    }
    out
}

/// Catalog upserts are per replica: every replica is sent the same.
pub async fn seed(addr: &str) {
    let mut catalog =
        pb::catalog_service_client::CatalogServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
    let all = streamers();
    catalog
        .upsert_streamers(pb::UpsertStreamersRequest {
            streamers: all
                .iter()
                .map(|(id, _, followers)| pb::Streamer {
                    id: id.clone(),
                    followers: *followers,
                    kind: StreamerKind::Influencer as i32,
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .unwrap();
    catalog
        .upsert_goods(pb::UpsertGoodsRequest {
            goods: all
                .iter()
                .map(|(id, _, _)| pb::Goods {
                    id: format!("{id}-g"),
                    brand_id: "cq-brand".into(),
                    price: 100.0,
                    product_score: None,
                    seller_id: id.clone(),
                })
                .collect(),
        })
        .await
        .unwrap();
}

/// One request's candidates: every goods item, top streamers' scoring
/// highest, with noise of the request's own.
pub fn candidates(rng: &mut impl Rng) -> Vec<pb::Candidate> {
    streamers()
        .iter()
        .map(|(id, tier, _)| {
            let base = match tier {
                Tier::Top => 0.10,
                Tier::Mid => 0.06,
                _ => 0.03,
            };
            goods_with(&format!("{id}-g"), base * rng.random_range(0.7..1.3), 0.1)
        })
        .collect()
}
