//! Bad input over real gRPC: every case gets INVALID_ARGUMENT whose message
//! names the field and whose BadRequest detail carries the same field; an
//! oversized message is refused by the transport; the server keeps serving.

mod common;

use common::*;
use fairflow::proto::v1::{self as pb, ItemKind, Scene};
use tonic::Code;
use tonic_types::StatusExt;

/// Config with small limits so the limit cases are cheap to build.
const LIMITS: &str = "[limits]\nmax_slots = 50\nmax_candidates = 100\nmax_id_bytes = 32\n";

async fn expect_invalid(
    client: &mut pb::rank_service_client::RankServiceClient<tonic::transport::Channel>,
    req: pb::RankRequest,
    field: &str,
) {
    let status = client.rank(req).await.expect_err(field);
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "message `{}` should name {field}",
        status.message()
    );
    let details = status.get_error_details();
    let bad = details.bad_request().expect("BadRequest detail");
    assert_eq!(bad.field_violations[0].field, field);
    assert!(!bad.field_violations[0].description.is_empty());
}

fn ok_request() -> pb::RankRequest {
    request(
        vec![
            goods_with("g000001", 0.1, 0.1),
            goods_with("g000002", 0.1, 0.1),
        ],
        2,
    )
}

#[tokio::test]
async fn each_bad_input_is_invalid_argument_naming_the_field() {
    let server = TestServer::with_config(LIMITS).await;
    let mut client = server.rank_client().await;

    type Mutation = Box<dyn Fn(&mut pb::RankRequest)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("user_id", Box::new(|r| r.user_id.clear())),
        ("user_id", Box::new(|r| r.user_id = "u".repeat(33))),
        ("request_id", Box::new(|r| r.request_id = "r".repeat(33))),
        ("slots", Box::new(|r| r.slots = 0)),
        ("slots", Box::new(|r| r.slots = 51)),
        ("scene", Box::new(|r| r.scene = Scene::Unspecified as i32)),
        ("scene", Box::new(|r| r.scene = 99)),
        (
            "candidates",
            Box::new(|r| {
                r.candidates = (0..101)
                    .map(|i| candidate(&format!("g{i}"), ItemKind::Goods))
                    .collect()
            }),
        ),
        (
            "candidates[1].item_id",
            Box::new(|r| r.candidates[1].item_id = r.candidates[0].item_id.clone()),
        ),
        (
            "candidates[0].item_id",
            Box::new(|r| r.candidates[0].item_id.clear()),
        ),
        (
            "candidates[1].kind",
            Box::new(|r| r.candidates[1].kind = ItemKind::Unspecified as i32),
        ),
        ("candidates[0].kind", Box::new(|r| r.candidates[0].kind = 7)),
        (
            "candidates[0].pctr",
            Box::new(|r| r.candidates[0].pctr = Some(f64::NAN)),
        ),
        (
            "candidates[1].pctr",
            Box::new(|r| r.candidates[1].pctr = Some(1.01)),
        ),
        (
            "candidates[0].pcvr",
            Box::new(|r| r.candidates[0].pcvr = Some(-0.1)),
        ),
        (
            "candidates[1].pcvr",
            Box::new(|r| r.candidates[1].pcvr = Some(f64::INFINITY)),
        ),
        (
            "candidates[0].price",
            Box::new(|r| r.candidates[0].price = Some(f64::NEG_INFINITY)),
        ),
        (
            "candidates[1].price",
            Box::new(|r| r.candidates[1].price = Some(-1.0)),
        ),
        (
            "candidates[0].streamer_id",
            Box::new(|r| r.candidates[0].streamer_id = Some(String::new())),
        ),
        (
            "candidates[1].brand_id",
            Box::new(|r| r.candidates[1].brand_id = Some("b".repeat(40))),
        ),
    ];
    for (field, mutate) in cases {
        let mut req = ok_request();
        mutate(&mut req);
        expect_invalid(&mut client, req, field).await;
    }
    // Still serving after all of that.
    let resp = client.rank(ok_request()).await.unwrap().into_inner();
    assert_eq!(resp.slots.len(), 2);
}

#[tokio::test]
async fn oversized_messages_are_refused_cleanly() {
    let server = TestServer::with_config("[server]\nmax_message_bytes = 4096\n").await;
    let mut client = server.rank_client().await;
    let big = request(
        (0..200)
            .map(|i| candidate(&format!("goods-item-{i:06}"), ItemKind::Goods))
            .collect(),
        10,
    );
    let status = client.rank(big).await.expect_err("oversized");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "unexpected {status:?}"
    );
    assert!(
        status.message().contains("message length too large"),
        "{}",
        status.message()
    );
    // The connection and the server survive it.
    let resp = client.rank(ok_request()).await.unwrap().into_inner();
    assert_eq!(resp.slots.len(), 2);
}
