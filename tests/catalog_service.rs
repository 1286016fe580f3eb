//! `CatalogService` over real gRPC. Rules checked: upserts round-trip through
//! the getters; an update takes effect in the next `Rank` (tier, gates, cold
//! start); a bad batch is refused whole with the record's field path; stats
//! count by tier.

mod common;

use common::*;
use fairflow::proto::v1::{self as pb, ItemKind, ReasonCode, StreamerKind, Tier};
use tonic::Code;

/// The demo catalog's "now" (requests in `common` use it).
const NOW: i64 = 1_795_132_800_000;
const DAY: i64 = 86_400_000;

fn streamer(id: &str, followers: u64) -> pb::Streamer {
    pb::Streamer {
        id: id.into(),
        followers,
        kind: StreamerKind::Influencer as i32,
        created_at_ms: NOW - 400 * DAY,
        ..Default::default()
    }
}

fn goods(id: &str, seller: &str) -> pb::Goods {
    pb::Goods {
        id: id.into(),
        brand_id: "brand-x".into(),
        price: 100.0,
        product_score: None,
        seller_id: seller.into(),
    }
}

#[tokio::test]
async fn upserts_round_trip_and_report_created() {
    let server = TestServer::start().await;
    let mut catalog = server.catalog_client().await;
    let reply = catalog
        .upsert_streamers(pb::UpsertStreamersRequest {
            streamers: vec![
                pb::Streamer {
                    reputation_score: Some(91.5),
                    ..streamer("it-a", 6_000_000)
                },
                streamer("it-b", 50),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.upserted, reply.created), (2, 2));
    catalog
        .upsert_goods(pb::UpsertGoodsRequest {
            goods: vec![goods("it-g1", "it-a")],
        })
        .await
        .unwrap();
    catalog
        .upsert_streams(pb::UpsertStreamsRequest {
            streams: vec![pb::Stream {
                id: "it-live".into(),
                streamer_id: "it-a".into(),
                live: true,
                goods_ids: vec!["it-g1".into()],
            }],
        })
        .await
        .unwrap();

    let got = catalog
        .get_streamers(pb::GetRequest {
            ids: vec!["it-a".into(), "missing".into(), "it-b".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.missing_ids, ["missing"]);
    assert_eq!(got.streamers.len(), 2);
    assert_eq!(got.streamers[0].reputation_score, Some(91.5));
    assert_eq!(got.streamers[0].tier, Tier::Top as i32);
    assert_eq!(got.streamers[1].tier, Tier::Small as i32);

    let g = catalog
        .get_goods(pb::GetRequest {
            ids: vec!["it-g1".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.goods, vec![goods("it-g1", "it-a")]);
    let s = catalog
        .get_streams(pb::GetRequest {
            ids: vec!["it-live".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.streams[0].goods_ids, ["it-g1"]);

    // Replacing is not creating.
    let reply = catalog
        .upsert_streamers(pb::UpsertStreamersRequest {
            streamers: vec![streamer("it-b", 60)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.upserted, reply.created), (1, 0));
}

#[tokio::test]
async fn catalog_updates_take_effect_in_rank() {
    let server = TestServer::start().await;
    let mut catalog = server.catalog_client().await;
    let mut rank = server.rank_client().await;
    catalog
        .upsert_streamers(pb::UpsertStreamersRequest {
            streamers: vec![streamer("it-s", 1_000)],
        })
        .await
        .unwrap();
    catalog
        .upsert_goods(pb::UpsertGoodsRequest {
            goods: vec![goods("it-g", "it-s")],
        })
        .await
        .unwrap();
    let req = || request(vec![candidate("it-g", ItemKind::Goods)], 1);

    let before = rank.rank(req()).await.unwrap().into_inner();
    assert_eq!(before.slots[0].tier, Tier::Small as i32);
    assert!(before.slots[0].resolved);
    let neutral = before.slots[0].score;

    // Grows to the top tier, loses reputation, and turns out to be new.
    catalog
        .upsert_streamers(pb::UpsertStreamersRequest {
            streamers: vec![pb::Streamer {
                reputation_score: Some(10.0),
                created_at_ms: NOW - DAY,
                ..streamer("it-s", 7_000_000)
            }],
        })
        .await
        .unwrap();
    let after = rank.rank(req()).await.unwrap().into_inner();
    let slot = &after.slots[0];
    assert_eq!(slot.tier, Tier::Top as i32);
    assert!(
        slot.reasons.contains(&(ReasonCode::GatePenalty as i32)),
        "{:?}",
        slot.reasons
    );
    assert!(
        slot.reasons.contains(&(ReasonCode::ColdStart as i32)),
        "{:?}",
        slot.reasons
    );
    assert_ne!(slot.score, neutral);
}

#[tokio::test]
async fn a_bad_batch_is_refused_whole_with_the_field_path() {
    let server = TestServer::start().await;
    let mut catalog = server.catalog_client().await;
    let bad = catalog
        .upsert_streamers(pb::UpsertStreamersRequest {
            streamers: vec![
                streamer("it-ok", 10),
                pb::Streamer {
                    shop_experience_score: Some(120.0),
                    ..streamer("it-bad", 10)
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message()
            .starts_with("streamers[1].shop_experience_score: "),
        "{}",
        bad.message()
    );
    let got = catalog
        .get_streamers(pb::GetRequest {
            ids: vec!["it-ok".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.missing_ids,
        ["it-ok"],
        "nothing of a refused batch is applied"
    );

    let cases = [
        (
            catalog
                .upsert_streamers(pb::UpsertStreamersRequest {
                    streamers: vec![pb::Streamer {
                        kind: 0,
                        ..streamer("x", 1)
                    }],
                })
                .await,
            "streamers[0].kind",
        ),
        (
            // An account started "in the future" would keep its cold-start
            // boost for as long as it stays ahead.
            catalog
                .upsert_streamers(pb::UpsertStreamersRequest {
                    streamers: vec![pb::Streamer {
                        created_at_ms: 4_000_000_000_000,
                        ..streamer("x", 1)
                    }],
                })
                .await,
            "streamers[0].created_at_ms",
        ),
        (
            catalog
                .upsert_streamers(pb::UpsertStreamersRequest {
                    streamers: vec![pb::Streamer {
                        created_at_ms: 1_795_132_800,
                        ..streamer("x", 1)
                    }],
                })
                .await,
            "streamers[0].created_at_ms",
        ),
        (
            catalog
                .upsert_goods(pb::UpsertGoodsRequest {
                    goods: vec![goods("x", "nobody")],
                })
                .await,
            "goods[0].seller_id",
        ),
        (
            catalog
                .upsert_goods(pb::UpsertGoodsRequest {
                    goods: vec![pb::Goods {
                        price: f64::NAN,
                        ..goods("x", "s00000")
                    }],
                })
                .await,
            "goods[0].price",
        ),
        (
            catalog
                .upsert_streams(pb::UpsertStreamsRequest {
                    streams: vec![pb::Stream {
                        id: "x".into(),
                        streamer_id: "s00000".into(),
                        live: true,
                        goods_ids: vec!["g000000".into(), "ghost".into()],
                    }],
                })
                .await,
            "streams[0].goods_ids[1]",
        ),
    ];
    for (result, field) in cases {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{}",
            status.message()
        );
    }
}

#[tokio::test]
async fn stats_count_the_demo_catalog_by_tier() {
    let server = TestServer::start().await;
    let mut catalog = server.catalog_client().await;
    let stats = catalog
        .get_catalog_stats(pb::GetCatalogStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.streamers, 3000);
    assert_eq!(
        stats.top_streamers + stats.mid_streamers + stats.small_streamers,
        stats.streamers
    );
    assert!(stats.top_streamers > 0 && stats.mid_streamers > 1000 && stats.small_streamers > 1000);
    assert!(stats.goods > 20_000);
    assert!(stats.live_streams > 0 && stats.live_streams < stats.streams);
    assert_eq!(stats.brand_self_streamers, 300);
}
