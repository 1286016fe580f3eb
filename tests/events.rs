//! `EventService` over gRPC: per-event validation, partial acceptance,
//! idempotency by event id, on one call and across a stream.

mod common;

use common::TestServer;
use fairflow::proto::v1 as pb;
use fairflow::proto::v1::event_service_client::EventServiceClient;

pub fn purchase(id: &str, price: f64) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        time_ms: 1_795_132_800_000,
        user_id: "u1".into(),
        kind: Some(pb::event::Kind::Purchase(pb::Purchase {
            item_id: "g000001".into(),
            brand_id: "b0001".into(),
            seller_streamer_id: "s00300".into(),
            channel: pb::SaleChannel::Distribution as i32,
            price,
            venue: pb::SaleVenue::LiveStream.into(),
        })),
    }
}

fn impression(id: &str) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        time_ms: 1_795_132_800_000,
        user_id: "u1".into(),
        kind: Some(pb::event::Kind::Impression(pb::Impression {
            item_id: "live-s00008".into(),
            streamer_id: String::new(),
            request_id: "r1".into(),
            position: 3,
        })),
    }
}

#[tokio::test]
async fn invalid_events_are_rejected_one_by_one_and_the_rest_accepted_once() {
    let server = TestServer::start().await;
    let mut client = EventServiceClient::new(server.channel().await);
    let mut no_kind = impression("e5");
    no_kind.kind = None;
    let mut no_user = impression("e6");
    no_user.user_id.clear();
    let mut bad_venue = purchase("e8", 10.0);
    if let Some(pb::event::Kind::Purchase(p)) = &mut bad_venue.kind {
        p.venue = 9;
    }
    let events = vec![
        purchase("e1", 99.0),
        purchase("e2", -1.0),
        impression("e3"),
        purchase("e1", 99.0),
        no_kind,
        no_user,
        pb::Event {
            kind: Some(pb::event::Kind::Click(pb::Click {
                item_id: "g000001".into(),
                request_id: String::new(),
            })),
            ..impression("e7")
        },
        bad_venue,
    ];
    let reply = client
        .ingest(pb::IngestRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 3, "{reply:?}");
    assert_eq!(reply.duplicates, 1, "{reply:?}");
    let rejected: Vec<(u32, &str, &str)> = reply
        .rejected
        .iter()
        .map(|r| (r.index, r.event_id.as_str(), r.field.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "e2", "purchase.price"),
            (4, "e5", "kind"),
            (5, "e6", "user_id"),
            (7, "e8", "purchase.venue")
        ]
    );
    assert!(reply.rejected[0].reason.contains("-1"), "{reply:?}");

    // A retry of the whole batch is all duplicates (and the same rejects).
    let again = client
        .ingest(pb::IngestRequest {
            events: vec![purchase("e1", 99.0), impression("e3")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 2));
}

#[tokio::test]
async fn a_stream_of_batches_is_counted_across_batches() {
    let server = TestServer::start().await;
    let mut client = EventServiceClient::new(server.channel().await);
    let batches = vec![
        pb::IngestRequest {
            events: vec![purchase("s1", 10.0), purchase("s2", 0.0)],
        },
        pb::IngestRequest {
            events: vec![purchase("s1", 10.0), impression("s3")],
        },
    ];
    let reply = client
        .ingest_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.accepted, reply.duplicates), (2, 1));
    assert_eq!(reply.rejected.len(), 1);
    assert_eq!(reply.rejected[0].index, 1);
    assert_eq!(server.state.events.remembered_ids().len(), 2);
}

/// A purchase of `brand` sold by `seller`, claimed as `channel`.
fn sale(id: &str, user: &str, brand: &str, seller: &str, channel: pb::SaleChannel) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        time_ms: 1_795_132_800_000,
        user_id: user.into(),
        kind: Some(pb::event::Kind::Purchase(pb::Purchase {
            item_id: "g000112".into(),
            brand_id: brand.into(),
            seller_streamer_id: seller.into(),
            channel: channel as i32,
            price: 50.0,
            venue: pb::SaleVenue::LiveStream.into(),
        })),
    }
}

#[tokio::test]
async fn a_sale_is_counted_by_who_sold_it_and_unverified_sales_earn_nothing() {
    use fairflow::proto::v1::admin_service_client::AdminServiceClient;
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut client = EventServiceClient::new(channel.clone());
    let mut admin = AdminServiceClient::new(channel);
    let distribution = pb::SaleChannel::Distribution;
    let events = vec![
        // s00300 is an influencer: the sale counts.
        sale("v1", "u-ok", "b0001", "s00300", distribution),
        // Nobody the catalog knows.
        sale("v2", "u-nobody", "b0001", "s-unknown", distribution),
        // s00001 is b0001's own account: a self-broadcast sale.
        sale("v3", "u-own", "b0001", "s00001", distribution),
        // s00002 is another brand's own account.
        sale("v4", "u-other", "b0001", "s00002", distribution),
        // Claimed self-broadcast, sold by an influencer.
        sale(
            "v5",
            "u-claim",
            "b0001",
            "s00300",
            pb::SaleChannel::SelfBroadcast,
        ),
    ];
    let reply = client
        .ingest(pb::IngestRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 5, "all are kept: {reply:?}");
    let notes: Vec<(u32, &str)> = reply
        .notes
        .iter()
        .map(|n| (n.index, n.note.as_str()))
        .collect();
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert!(notes[0] == (1, notes[0].1) && notes[0].1.contains("not in the catalog"));
    assert!(notes[1] == (2, notes[1].1) && notes[1].1.contains("brand's own account"));
    assert!(notes[2] == (3, notes[2].1) && notes[2].1.contains("another brand"));
    assert!(notes[3] == (4, notes[3].1) && notes[3].1.contains("not attributed"));
    for (user, brands) in [
        ("u-ok", 1),
        ("u-nobody", 0),
        ("u-own", 0),
        ("u-other", 0),
        ("u-claim", 0),
    ] {
        let got = admin
            .get_user_affinities(pb::GetUserAffinitiesRequest {
                user_id: user.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.affinities.len(), brands, "{user}: {got:?}");
    }
    let text = server.scrape().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("fairflow_purchases_total{channel=\"unverified\"} 3")),
        "{text}"
    );
}

#[tokio::test]
async fn implausible_times_are_refused_with_the_field() {
    let server = TestServer::start().await;
    let mut client = EventServiceClient::new(server.channel().await);
    for time_ms in [-1, 0, 1 << 62, 1_795_132_800] {
        let mut e = purchase("t1", 9.0);
        e.time_ms = time_ms;
        let reply = client
            .ingest(pb::IngestRequest { events: vec![e] })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.rejected.len(), 1, "{time_ms}");
        assert_eq!(reply.rejected[0].field, "time_ms");
    }
}
