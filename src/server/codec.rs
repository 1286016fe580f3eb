//! What happens to a request before a handler runs: the wire codec, and the
//! refusals made while reading a message.
//!
//! - [`Codec`] is prost's, with one difference: a message that does not
//!   decode is `INVALID_ARGUMENT` saying which message and why (prost's
//!   error names the field), not a bare `INTERNAL`.
//! - [`Refusals`] wraps the whole gRPC router. A message longer than its
//!   method's limit is refused by tonic after reading the 5-byte length
//!   prefix, before any of it is buffered or decoded; the layer turns
//!   tonic's `OUT_OF_RANGE` into `RESOURCE_EXHAUSTED` (the code the gRPC spec
//!   gives a server for a message over its limit) and counts both kinds of
//!   refusal by method and code, so operators see hostile or broken
//!   clients (`fairflow_rpc_decode_failures_total`).

use super::metrics;
use prost::Message;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;

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
        U::decode(buf).map(Some).map_err(|e| {
            let name = std::any::type_name::<U>()
                .rsplit("::")
                .next()
                .unwrap_or("message");
            Status::invalid_argument(format!("{UNDECODABLE}fairflow.v1.{name}: {e}"))
        })
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

/// Rewrites and counts the refusals tonic makes before a handler runs.
fn refusal(path: &str, headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let status = if status.code() == tonic::Code::OutOfRange
        && status.message().starts_with(TOO_LARGE)
    {
        Status::resource_exhausted(format!(
            "the request message is over this method's size limit ({}; Rank's limit follows from limits.max_candidates and limits.max_id_bytes, the others' is server.max_message_bytes)",
            status.message().trim_start_matches("Error, ")
        ))
    } else if status.message().starts_with(UNDECODABLE) {
        status
    } else {
        return;
    };
    metrics::record_decode_failure(method(path), status.code());
    if status.add_header(headers).is_err() {
        tracing::warn!("a refusal's status did not fit in headers");
    }
}

/// The layer that applies [`refusal`] to every response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refusals;

impl<S> tower::Layer<S> for Refusals {
    type Service = RefusalsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefusalsService(inner)
    }
}

#[derive(Debug, Clone)]
pub struct RefusalsService<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for RefusalsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let uri = request.uri().clone();
        let answer = self.0.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            refusal(uri.path(), response.headers_mut());
            Ok(response)
        })
    }
}
