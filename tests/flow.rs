//! The chuanliu flow over gRPC, end to end: a brand enrolled through
//! `AdminService`, a purchase through an influencer ingested through
//! `EventService`, the brand's own stream injected into that user's `Rank`
//! with the chuanliu reason, a purchase in the brand's stream attributed,
//! the influencer's reward visible on its items, and the figures in
//! `GetFlowStats`, `GetUserAffinities` and `/metrics`.

mod common;

use common::TestServer;
use fairflow::proto::v1 as pb;
use fairflow::proto::v1::admin_service_client::AdminServiceClient;
use fairflow::proto::v1::event_service_client::EventServiceClient;
use tonic::Code;

/// 2026-11-21 00:00 UTC: the demo catalog's "now".
const T0: i64 = 1_795_132_800_000;
const HOUR: i64 = 3_600_000;

/// Flow on for enrolled brands only; no quotas, so the page is easy to read.
const CONFIG: &str = r#"
[quotas]
scenes = []
[chuanliu.budget]
daily_impressions = 1000
"#;

async fn add_brand(server: &TestServer) {
    let mut catalog = server.catalog_client().await;
    let streamer = |id: &str, followers, kind: pb::StreamerKind, brand: &str| pb::Streamer {
        id: id.into(),
        followers,
        kind: kind as i32,
        brand_id: brand.into(),
        ..Default::default()
    };
    catalog
        .upsert_streamers(pb::UpsertStreamersRequest {
            streamers: vec![
                streamer("it-inf", 50_000, pb::StreamerKind::Influencer, ""),
                streamer("it-own", 900_000, pb::StreamerKind::BrandSelf, "it-brand"),
            ],
        })
        .await
        .unwrap();
    catalog
        .upsert_goods(pb::UpsertGoodsRequest {
            goods: vec![pb::Goods {
                id: "it-g1".into(),
                brand_id: "it-brand".into(),
                price: 59.0,
                seller_id: "it-inf".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let stream = |id: &str, streamer: &str| pb::Stream {
        id: id.into(),
        streamer_id: streamer.into(),
        live: true,
        goods_ids: vec!["it-g1".into()],
    };
    catalog
        .upsert_streams(pb::UpsertStreamsRequest {
            streams: vec![
                stream("it-own-live", "it-own"),
                stream("it-inf-live", "it-inf"),
            ],
        })
        .await
        .unwrap();
}

fn purchase(id: &str, user: &str, channel: pb::SaleChannel, time_ms: i64) -> pb::Event {
    let seller = match channel {
        pb::SaleChannel::SelfBroadcast => "it-own",
        _ => "it-inf",
    };
    pb::Event {
        event_id: id.into(),
        time_ms,
        user_id: user.into(),
        kind: Some(pb::event::Kind::Purchase(pb::Purchase {
            item_id: "it-g1".into(),
            brand_id: "it-brand".into(),
            seller_streamer_id: seller.into(),
            channel: channel as i32,
            price: 59.0,
            venue: pb::SaleVenue::LiveStream.into(),
        })),
    }
}

fn rank_request(user: &str, time_ms: i64) -> pb::RankRequest {
    pb::RankRequest {
        request_id: format!("flow-{user}"),
        user_id: user.into(),
        scene: pb::Scene::Recommend as i32,
        slots: 5,
        candidates: vec![
            common::candidate("it-inf-live", pb::ItemKind::LiveStream),
            common::candidate("live-s00008", pb::ItemKind::LiveStream),
        ],
        request_time_ms: Some(time_ms),
    }
}

fn has(slot: &pb::RankedSlot, reason: pb::ReasonCode) -> bool {
    slot.reasons.contains(&(reason as i32))
}

#[tokio::test]
async fn a_buyer_through_an_influencer_is_sent_to_the_brands_own_stream() {
    let server = TestServer::with_config(CONFIG).await;
    add_brand(&server).await;
    let channel = server.channel().await;
    let mut admin = AdminServiceClient::new(channel.clone());
    let mut events = EventServiceClient::new(channel);
    let mut rank = server.rank_client().await;

    let bought = purchase("f1", "fan", pb::SaleChannel::Distribution, T0);
    let reply = events
        .ingest(pb::IngestRequest {
            events: vec![bought],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 1);

    // Not enrolled yet (enroll_all_brands is off): no flow.
    let page = rank
        .rank(rank_request("fan", T0 + HOUR))
        .await
        .unwrap()
        .into_inner();
    assert!(page.slots.iter().all(|s| s.item_id != "it-own-live"));

    let enrolled = admin
        .set_brand_flow(pb::SetBrandFlowRequest {
            brand_id: "it-brand".into(),
            enrollment: pb::FlowEnrollment::Enrolled as i32,
            daily_impressions: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(enrolled.active);

    let page = rank
        .rank(rank_request("fan", T0 + HOUR))
        .await
        .unwrap()
        .into_inner();
    let own = page
        .slots
        .iter()
        .find(|s| s.item_id == "it-own-live")
        .expect("the brand's own stream is injected");
    assert!(has(own, pb::ReasonCode::Chuanliu));
    assert_eq!(own.streamer_id, "it-own");
    // A user with no affinity does not get it.
    let other = rank
        .rank(rank_request("stranger", T0 + HOUR))
        .await
        .unwrap()
        .into_inner();
    assert!(other.slots.iter().all(|s| s.item_id != "it-own-live"));

    // The fan scrolls to the brand's stream (the intake resolves the
    // impression to the brand) and buys in it: attributed to the flow, and
    // the influencer earns a reward its items then carry.
    let seen = pb::Event {
        event_id: "f-seen".into(),
        time_ms: T0 + HOUR + 5_000,
        user_id: "fan".into(),
        kind: Some(pb::event::Kind::Impression(pb::Impression {
            item_id: "it-own-live".into(),
            streamer_id: "it-own".into(),
            request_id: "flow-fan".into(),
            position: 0,
        })),
    };
    let own_purchase = purchase("f2", "fan", pb::SaleChannel::SelfBroadcast, T0 + 2 * HOUR);
    events
        .ingest(pb::IngestRequest {
            events: vec![seen, own_purchase],
        })
        .await
        .unwrap();
    let stats = admin
        .get_flow_stats(pb::GetFlowStatsRequest {
            brand_ids: vec!["it-brand".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.impressions, 1);
    assert_eq!(stats.attributed_conversions, 1);
    assert!((stats.attributed_gmv - 59.0).abs() < 1e-9);
    assert_eq!(stats.daily_impressions, 1000);
    let brand = &stats.brands[0];
    assert_eq!(brand.enrollment, pb::FlowEnrollment::Enrolled as i32);
    assert_eq!((brand.impressions, brand.attributed_conversions), (1, 1));

    let page = rank
        .rank(rank_request("stranger", T0 + 2 * HOUR))
        .await
        .unwrap()
        .into_inner();
    let influencer = page
        .slots
        .iter()
        .find(|s| s.item_id == "it-inf-live")
        .unwrap();
    assert!(has(influencer, pb::ReasonCode::FlowReward));

    let affinities = admin
        .get_user_affinities(pb::GetUserAffinitiesRequest {
            user_id: "fan".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let a = &affinities.affinities[0];
    assert_eq!(a.brand_id, "it-brand");
    assert_eq!(a.source_streamer_ids, ["it-inf"]);
    assert_eq!(a.updated_ms, T0);
    assert_eq!(a.last_shown_ms, T0 + HOUR);
    // Two pages ranked for the fan, neither with the brand's items.
    assert_eq!((a.taste, a.taste_requests), (0.0, 2));

    // Paused: the fan no longer gets the stream.
    admin
        .set_brand_flow(pb::SetBrandFlowRequest {
            brand_id: "it-brand".into(),
            enrollment: pb::FlowEnrollment::Paused as i32,
            daily_impressions: None,
        })
        .await
        .unwrap();
    let page = rank
        .rank(rank_request("fan", T0 + 3 * HOUR))
        .await
        .unwrap()
        .into_inner();
    assert!(page.slots.iter().all(|s| s.item_id != "it-own-live"));

    let text = server.scrape().await;
    for series in [
        "fairflow_flow_impressions_total{scene=\"recommend\",arm=\"base\"} 1",
        "fairflow_flow_attributed_conversions_total 1",
        "fairflow_flow_attributed_gmv_fen_total 5900",
    ] {
        assert!(text.contains(series), "{series} in {text}");
    }
}

#[tokio::test]
async fn bad_flow_requests_are_refused_with_the_field() {
    let server = TestServer::with_config(CONFIG).await;
    let channel = server.channel().await;
    let mut admin = AdminServiceClient::new(channel.clone());
    let err = admin
        .set_brand_flow(pb::SetBrandFlowRequest {
            brand_id: "b1".into(),
            enrollment: pb::FlowEnrollment::Unspecified as i32,
            daily_impressions: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("enrollment:"),
        "{}",
        err.message()
    );
    let err = admin
        .set_brand_flow(pb::SetBrandFlowRequest {
            brand_id: String::new(),
            enrollment: pb::FlowEnrollment::Enrolled as i32,
            daily_impressions: None,
        })
        .await
        .unwrap_err();
    assert!(err.message().starts_with("brand_id:"), "{}", err.message());
    // A brand the catalog does not know is refused, not reported active.
    let err = admin
        .set_brand_flow(pb::SetBrandFlowRequest {
            brand_id: "no-such-brand".into(),
            enrollment: pb::FlowEnrollment::Enrolled as i32,
            daily_impressions: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("brand_id:")
            && err.message().contains("not a brand the catalog knows"),
        "{}",
        err.message()
    );
    let err = admin
        .get_user_affinities(pb::GetUserAffinitiesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Events outside the dedupe window (behind the latest event taken) or
    // far ahead of the server's clock are refused one by one.
    let mut events = EventServiceClient::new(channel);
    let first = pb::IngestRequest {
        events: vec![purchase("new", "u", pb::SaleChannel::Distribution, T0)],
    };
    assert_eq!(events.ingest(first).await.unwrap().into_inner().accepted, 1);
    let reply = events
        .ingest(pb::IngestRequest {
            events: vec![
                purchase(
                    "within",
                    "u",
                    pb::SaleChannel::Distribution,
                    T0 - 100 * HOUR,
                ),
                purchase("old", "u", pb::SaleChannel::Distribution, T0 - 200 * HOUR),
                purchase("future", "u", pb::SaleChannel::Distribution, i64::MAX / 2),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 1);
    let rejected: Vec<(&str, &str)> = reply
        .rejected
        .iter()
        .map(|r| (r.event_id.as_str(), r.field.as_str()))
        .collect();
    assert_eq!(rejected, [("old", "time_ms"), ("future", "time_ms")]);
}
