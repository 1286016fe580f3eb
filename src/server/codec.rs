//! What happens to a request before a handler runs: the wire codec, and the
//! refusals made while reading a message.
//!
//! - [`Refusals`] wraps the whole gRPC router. A message longer than its
//!   method's limit is refused by tonic after reading the 5-byte length
//!   prefix, before any of it is buffered or decoded; the layer turns
//!   tonic's `OUT_OF_RANGE` into `RESOURCE_EXHAUSTED` (the code the gRPC spec
//!   gives a server for a message over its limit). It also tells the codec,
//!   through a task-local, which method the call is and how many candidates
//!   the config in force allows.
//! - [`Codec`] is prost's, with one difference: a message that does not
//!   decode is `INVALID_ARGUMENT` saying which message and why (prost's
//!   error names the field), not a bare `INTERNAL`.
//! - [`RankCodec`] reads a `RankRequest` straight into the engine's query
//!   ([`decode`]), refusing bytes that are not one with the field and byte
//!   offset; and a request with more candidates than
//!   `limits.max_candidates` is refused after counting its entries, before
//!   any is decoded (a message of empty candidates holds one per 2 bytes,
//!   so the size limit alone would let hundreds of thousands be decoded).
//!
//! Every such refusal is counted by method and code
//! (`fairflow_rpc_decode_failures_total`), so operators see hostile or
//! broken clients.

use super::decode::{self, DecodedRank};
use super::{metrics, status};
use crate::domain::FieldError;
use crate::proto::v1 as pb;
use prost::Message;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;

/// What the codec knows of the call it decodes for, set by [`Refusals`].
#[derive(Debug, Clone, Copy)]
struct Call {
    rpc: &'static str,
    max_candidates: usize,
}

tokio::task_local! {
    static CALL: Call;
}

/// The number of top-level `candidates` entries (field 5) in an encoded
/// `RankRequest`, counting no further than `limit + 1`; `None` when the
/// bytes are not well-formed (decoding then says why).
fn count_candidates(mut bytes: &[u8], limit: usize) -> Option<usize> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut count = 0;
    while !bytes.is_empty() && count <= limit {
        let key = varint(&mut bytes)?;
        let skip = match key & 7 {
            0 => {
                varint(&mut bytes)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut bytes)?).ok()?,
            5 => 4,
            _ => return None,
        };
        if key >> 3 == 5 {
            count += 1;
        }
        bytes = bytes.get(skip..)?;
    }
    Some(count)
}

/// Refuses a `Rank` body with more candidates than the limit, uncounted
/// when it is too short to hold that many (2 bytes each at least).
fn check_candidates(bytes: &[u8], call: Option<Call>) -> Result<(), Status> {
    let Some(call) = call else { return Ok(()) };
    if bytes.len() / 2 <= call.max_candidates {
        return Ok(());
    }
    match count_candidates(bytes, call.max_candidates) {
        Some(n) if n > call.max_candidates => Err(status::invalid_argument(&FieldError::new(
            "candidates",
            format!(
                "more than the limit of {} (limits.max_candidates); refused before decoding",
                call.max_candidates
            ),
        ))),
        _ => Ok(()),
    }
}

/// Starts the message of a status for a request that does not decode.
const UNDECODABLE: &str = "the request is not a valid ";
/// Starts the message tonic gives a request over the size limit.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// The generated services' codec (`build.rs` names it).
#[derive(Debug, Clone, Copy)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct ProstEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ProstEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding the answer: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[derive(Debug)]
pub struct ProstDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ProstDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let call = CALL.try_with(|c| *c).ok();
        let decoded = U::decode(buf).map_err(|e| {
            let name = std::any::type_name::<U>()
                .rsplit("::")
                .next()
                .unwrap_or("message");
            Status::invalid_argument(format!("{UNDECODABLE}fairflow.v1.{name}: {e}"))
        });
        count_failure(call, &decoded);
        decoded.map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Counts a message refused while it was read.
fn count_failure<T>(call: Option<Call>, decoded: &Result<T, Status>) {
    if let (Err(status), Some(call)) = (decoded, call) {
        metrics::record_decode_failure(call.rpc, status.code());
    }
}

/// `Rank`'s codec: the request is read straight into the engine's query
/// ([`decode::rank_request`]); the answer is encoded by prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct RankCodec;

impl tonic::codec::Codec for RankCodec {
    type Encode = pb::RankResponse;
    type Decode = DecodedRank;
    type Encoder = ProstEncoder<pb::RankResponse>;
    type Decoder = RankDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RankDecoder
    }
}

#[derive(Debug)]
pub struct RankDecoder;

impl Decoder for RankDecoder {
    type Item = DecodedRank;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<DecodedRank>, Status> {
        use bytes::Buf;
        let call = CALL.try_with(|c| *c).ok();
        let len = buf.remaining();
        // Tonic hands over the whole message in one buffer; should a later
        // version not, it is gathered first.
        let gathered;
        let bytes = if buf.chunk().len() == len {
            buf.chunk()
        } else {
            gathered = buf.copy_to_bytes(len);
            &gathered[..]
        };
        let decoded = check_candidates(bytes, call).and_then(|()| {
            decode::rank_request(bytes, super::wall_clock()).map_err(|e| {
                Status::invalid_argument(format!("{UNDECODABLE}fairflow.v1.RankRequest: {e}"))
            })
        });
        if buf.remaining() == len {
            buf.advance(len);
        }
        count_failure(call, &decoded);
        decoded.map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The method a path names, from a fixed list (paths are the caller's
/// text: metric labels must stay bounded).
fn method(path: &str) -> &'static str {
    const METHODS: [&str; 14] = [
        "Rank",
        "Ingest",
        "IngestStream",
        "UpsertStreamers",
        "UpsertGoods",
        "UpsertStreams",
        "SetStreamStatus",
        "GetQuotaState",
        "GetConfig",
        "ReloadConfig",
        "SetBrandFlow",
        "GetFlowStats",
        "GetUserAffinities",
        "Check",
    ];
    let name = path.rsplit('/').next().unwrap_or("");
    METHODS.into_iter().find(|m| *m == name).unwrap_or("other")
}

/// Rewrites and counts tonic's refusal of a message over the size limit.
fn refusal(rpc: &'static str, headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if status.code() != tonic::Code::OutOfRange || !status.message().starts_with(TOO_LARGE) {
        return;
    }
    let status = Status::resource_exhausted(format!(
        "the request message is over this method's size limit ({}; Rank's limit follows from limits.max_candidates and limits.max_id_bytes, the others' is server.max_message_bytes)",
        status.message().trim_start_matches("Error, ")
    ));
    metrics::record_decode_failure(rpc, status.code());
    if status.add_header(headers).is_err() {
        tracing::warn!("a refusal's status did not fit in headers");
    }
}

/// The most candidates a `Rank` may carry now (the config in force).
pub type MaxCandidates = std::sync::Arc<dyn Fn() -> usize + Send + Sync>;

/// The layer that tells the codec about each call and applies `refusal`
/// to every response.
#[derive(Clone)]
pub struct Refusals(pub MaxCandidates);

impl<S> tower::Layer<S> for Refusals {
    type Service = RefusalsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefusalsService(inner, self.0.clone())
    }
}

#[derive(Clone)]
pub struct RefusalsService<S>(S, MaxCandidates);

impl<S, B, R> tower::Service<http::Request<B>> for RefusalsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = Call {
            rpc: method(request.uri().path()),
            max_candidates: (self.1)(),
        };
        // The codec runs while the inner future is polled, inside the scope.
        let answer = CALL.scope(call, self.0.call(request));
        Box::pin(async move {
            let mut response = answer.await?;
            refusal(call.rpc, response.headers_mut());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(candidates: usize) -> Vec<u8> {
        pb::RankRequest {
            user_id: "u".into(),
            slots: 3,
            candidates: (0..candidates)
                .map(|i| pb::Candidate {
                    item_id: format!("g{i}"),
                    price: Some(9.0),
                    ..Default::default()
                })
                .collect(),
            request_time_ms: Some(1),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn candidates_are_counted_without_decoding_up_to_one_past_the_limit() {
        assert_eq!(count_candidates(&encoded(7), 100), Some(7));
        assert_eq!(count_candidates(&encoded(500), 100), Some(101));
        assert_eq!(count_candidates(&[0x2a, 100, 1], 100), None, "cut short");
        let call = Some(Call {
            rpc: "Rank",
            max_candidates: 10,
        });
        assert!(check_candidates(&encoded(10), call).is_ok());
        let refused = check_candidates(&encoded(11), call).unwrap_err();
        assert!(
            refused
                .message()
                .starts_with("candidates: more than the limit of 10")
        );
    }
}
