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
            brand_id: "b001".into(),
            seller_streamer_id: "s00042".into(),
            channel: pb::SaleChannel::Distribution as i32,
            price,
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
            (5, "e6", "user_id")
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
    assert_eq!(server.state.events.len(), 2);
}
