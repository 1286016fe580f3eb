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
        (
            "request_time_ms",
            Box::new(|r| r.request_time_ms = Some(-1)),
        ),
        (
            "request_time_ms",
            Box::new(|r| r.request_time_ms = Some(1 << 62)),
        ),
        // Seconds, not milliseconds.
        (
            "request_time_ms",
            Box::new(|r| r.request_time_ms = Some(1_795_132_800)),
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

/// Sends `bytes` as the body of a `Rank` call, whatever they are.
async fn raw_rank(server: &TestServer, bytes: Vec<u8>) -> tonic::Status {
    raw_call(server, "/fairflow.v1.RankService/Rank", bytes).await
}

/// Calls `path` with `bytes` as the message; the call must be refused.
async fn raw_call(server: &TestServer, path: &'static str, bytes: Vec<u8>) -> tonic::Status {
    use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    #[derive(Default)]
    struct Raw;
    struct RawEncoder;
    struct RawDecoder;
    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
            use bytes::BufMut;
            buf.put_slice(&item);
            Ok(())
        }
        fn buffer_settings(&self) -> BufferSettings {
            BufferSettings::default()
        }
    }
    impl Decoder for RawDecoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Self::Error> {
            use bytes::Buf;
            Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
        }
        fn buffer_settings(&self) -> BufferSettings {
            BufferSettings::default()
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawEncoder;
        type Decoder = RawDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> RawDecoder {
            RawDecoder
        }
    }
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(bytes), path, Raw)
        .await
        .expect_err("refused")
}

fn decode_failures(metrics: &str, code: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("fairflow_rpc_decode_failures_total")
                && l.contains(&format!("code=\"{code}\""))
                && l.contains("rpc=\"Rank\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_rank_longer_than_any_valid_one_is_refused_on_its_length_and_counted() {
    let server = TestServer::with_config(LIMITS).await;
    let limit = server
        .state
        .live()
        .config
        .engine
        .limits
        .max_rank_message_bytes();
    let mut client = server.rank_client().await;
    // The largest valid request fits: every id at its longest, every field set.
    let id = |p: &str, i: usize| format!("{p}{i:0>31}");
    let mut largest = request(
        (0..100)
            .map(|i| pb::Candidate {
                item_id: id("g", i),
                kind: ItemKind::Goods as i32,
                streamer_id: Some(id("s", i)),
                brand_id: Some(id("b", i)),
                price: Some(1e8),
                pctr: Some(0.5),
                pcvr: Some(0.5),
                user_follows: Some(true),
            })
            .collect(),
        50,
    );
    largest.user_id = "u".repeat(32);
    largest.request_id = "r".repeat(32);
    largest.request_time_ms = Some(1_795_132_800_000);
    let size = prost::Message::encoded_len(&largest);
    assert!(size <= limit && size * 10 > limit * 9, "{size} of {limit}");
    client
        .rank(largest)
        .await
        .expect("the largest valid request");

    // Thousands of tiny candidates: refused before decoding.
    let before = decode_failures(&server.scrape().await, "RESOURCE_EXHAUSTED");
    let flood = request(
        (0..5000)
            .map(|i| candidate(&format!("g{i}"), ItemKind::Goods))
            .collect(),
        10,
    );
    assert!(prost::Message::encoded_len(&flood) > limit);
    let status = client.rank(flood).await.expect_err("oversized");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("limits.max_candidates"),
        "{}",
        status.message()
    );
    let after = decode_failures(&server.scrape().await, "RESOURCE_EXHAUSTED");
    assert_eq!(after, before + 1);
    // The connection and the server survive it.
    let resp = client.rank(ok_request()).await.unwrap().into_inner();
    assert_eq!(resp.slots.len(), 2);
}

#[tokio::test]
async fn a_method_the_rank_service_does_not_have_is_unimplemented() {
    let server = TestServer::with_config(LIMITS).await;
    let status = raw_call(&server, "/fairflow.v1.RankService/Rerank", vec![]).await;
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_invalid_argument_saying_why_and_counted() {
    let server = TestServer::with_config(LIMITS).await;
    let before = decode_failures(&server.scrape().await, "INVALID_ARGUMENT");
    // Field 5 (candidates), length-delimited, claiming 100 bytes of 3.
    let status = raw_rank(&server, vec![0x2a, 100, 1, 2, 3]).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.message(),
        "the request is not a valid fairflow.v1.RankRequest: candidates[0] at byte 1: a length past the end of the message",
    );
    let after = decode_failures(&server.scrape().await, "INVALID_ARGUMENT");
    assert_eq!(after, before + 1);

    // Within the size limit but packed with empty candidates (2 bytes
    // each): counted and refused before any is decoded.
    let empties: Vec<u8> = std::iter::repeat_n([0x2a, 0], 5000).flatten().collect();
    let status = raw_rank(&server, empties).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("candidates: more than the limit of 100")
            && status.message().contains("before decoding"),
        "{}",
        status.message()
    );
    assert_eq!(
        decode_failures(&server.scrape().await, "INVALID_ARGUMENT"),
        before + 2
    );
    let mut client = server.rank_client().await;
    assert_eq!(
        client
            .rank(ok_request())
            .await
            .unwrap()
            .into_inner()
            .slots
            .len(),
        2
    );
}
