//! `RankService`: admit, call the engine on the query the codec decoded
//! (on the async worker, or off it for a large request), convert back.
//!
//! The service is written out here rather than generated, because its
//! request is not the generated `RankRequest`: [`RankCodec`] reads the
//! bytes straight into the engine's query.

use super::codec::RankCodec;
use super::decode::DecodedRank;
use super::status::Unanswered;
use super::{Live, State, caps, convert, metrics};
use crate::chuanliu::{CapHolds, CapScope};
use crate::engine::{RankError, RankQuery, Ranking};
use crate::proto::v1 as pb;
use crate::traffic::{RankRecord, Record};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::codegen::{Body, StdError, http};
use tonic::{Code, Request, Response, Status};

pub struct RankApi {
    pub(super) state: Arc<State>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// `fairflow.v1.RankService` over HTTP/2: routes `Rank` to [`RankApi`]
/// through [`RankCodec`], and answers any other path `UNIMPLEMENTED`.
#[derive(Clone)]
pub struct RankServer {
    api: Arc<RankApi>,
    max_decoding: usize,
    max_encoding: usize,
}

impl RankServer {
    /// Refuses requests longer than `max_decoding` bytes before reading
    /// them, and answers no longer than `max_encoding`.
    pub fn new(api: RankApi, max_decoding: usize, max_encoding: usize) -> RankServer {
        RankServer {
            api: Arc::new(api),
            max_decoding,
            max_encoding,
        }
    }
}

impl tonic::server::NamedService for RankServer {
    const NAME: &'static str = "fairflow.v1.RankService";
}

/// The path of the one method.
const RANK_PATH: &str = "/fairflow.v1.RankService/Rank";

impl<B> tonic::codegen::Service<http::Request<B>> for RankServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != RANK_PATH {
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(Status::GRPC_STATUS, (Code::Unimplemented as i32).into());
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let method = RankMethod(self.api.clone());
        let mut grpc = tonic::server::Grpc::new(RankCodec)
            .apply_max_message_size_config(Some(self.max_decoding), Some(self.max_encoding));
        Box::pin(async move { Ok(grpc.unary(method, request).await) })
    }
}

/// One `Rank` call, as tonic's unary path wants it.
struct RankMethod(Arc<RankApi>);

impl tonic::server::UnaryService<DecodedRank> for RankMethod {
    type Response = pb::RankResponse;
    type Future = BoxFuture<Response<pb::RankResponse>, Status>;

    fn call(&mut self, request: Request<DecodedRank>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.rank(request).await })
    }
}

/// The caller's deadline from the `grpc-timeout` header (`<digits><unit>`,
/// units H M S m u n, per the gRPC HTTP/2 spec). A header that does not
/// parse is ignored, as the spec asks.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl RankApi {
    async fn rank(
        &self,
        request: Request<DecodedRank>,
    ) -> Result<Response<pb::RankResponse>, Status> {
        let started = super::monotonic_now();
        let scene = request.get_ref().scene;
        let answer = self.rank_inner(request, started).await;
        let code = answer.as_ref().map_or_else(Status::code, |_| Code::Ok);
        metrics::record_rpc("Rank", scene, code, started.elapsed());
        answer
    }

    async fn rank_inner(
        &self,
        request: Request<DecodedRank>,
        started: Instant,
    ) -> Result<Response<pb::RankResponse>, Status> {
        // The engine snapshot is taken once: a reload mid-request does not
        // change the config this request is ranked under.
        let live = self.state.live();
        let limits = &live.config.server;
        let Some(admitted) = self.state.admit(limits.max_concurrent_requests) else {
            metrics::record_shed("concurrency");
            return Err(Unanswered::Overloaded {
                limit: limits.max_concurrent_requests,
            }
            .into());
        };
        let deadline = grpc_timeout(request.metadata())
            .map_or(limits.request_timeout, |t| t.min(limits.request_timeout));
        let query =
            (request.into_inner().query).map_err(|e| super::status::invalid_argument(&e))?;
        let candidates = query.candidates.len();
        let scene = query.scene;
        let variant = live.config.experiments.variant_of(&query.user_id);
        let holds = caps::hold(&self.state, &live, variant, &query).await;
        let state = self.state.clone();
        let answer_live = live.clone();
        let work = move || {
            let _admitted = admitted;
            rank_and_log(&state, &live, variant, query, holds.as_ref())
        };
        // A request of ordinary size is ranked right here, on the async
        // worker: it takes tens of microseconds, less than handing it to
        // another thread and waking this one again would cost. A large one
        // goes to the blocking pool, so the workers keep accepting (and
        // refusing) requests under load; the admission permit moves along,
        // so a request that outlives its deadline still counts until its
        // work is done.
        let (request_id, ranking) = if candidates <= INLINE_MAX_CANDIDATES {
            let done = work();
            if started.elapsed() > deadline {
                return Err(deadline_passed(deadline));
            }
            done
        } else {
            let left = deadline.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, tokio::task::spawn_blocking(work)).await {
                Ok(Ok(done)) => done,
                Ok(Err(error)) => {
                    return Err(Unanswered::TaskFailed {
                        what: "rank",
                        error,
                    }
                    .into());
                }
                Err(_) => return Err(deadline_passed(deadline)),
            }
        };
        let (_, variant) = answer_live.variant(variant);
        match ranking {
            Ok(ranking) => {
                metrics::record_ranking(scene, &variant.label, candidates, &ranking);
                tracing::debug!(
                    request_id = %ranking.request_id,
                    scene = %scene,
                    candidates,
                    slots = ranking.slots.len(),
                    unresolved = ranking.unresolved,
                    "ranked"
                );
                Ok(Response::new(convert::rank_response(
                    ranking,
                    &variant.arms,
                )))
            }
            Err(e) => {
                tracing::info!(request_id = %request_id, error = %e, "rank refused");
                Err(e.into())
            }
        }
    }
}

/// Requests with at most this many candidates are ranked on the async
/// worker that decoded them (see `rank_inner`): about 0.3 us of work per
/// candidate, so at most a few hundred microseconds.
const INLINE_MAX_CANDIDATES: usize = 1_000;

/// Ranks `query` and logs the served page: right after ranking, so the
/// log's order is the order pages updated the state in. Returns the
/// request id beside the answer (the query itself moves into the log).
fn rank_and_log(
    state: &Arc<State>,
    live: &Live,
    variant: usize,
    query: RankQuery,
    holds: Option<&CapHolds>,
) -> (String, Result<Ranking, RankError>) {
    // The user's experiment variant: its engine, and its own controller
    // beside the flow every arm shares.
    let (engine, variant) = live.variant(variant);
    let ranking = {
        let catalog = state.catalog.read();
        let scope = holds.map_or(CapScope::Process, CapScope::Fleet);
        let ranking = &state.ranking;
        ranking.with_exposure(&variant.label, |exposure| {
            engine.rank_in(&catalog, exposure, &ranking.flow, &query, scope)
        })
    };
    if let Some(holds) = holds {
        caps::release(state, query.user_id.clone(), holds);
    }
    if let Ok(served) = &ranking {
        state.arms.ranked(&variant.label, served);
    }
    match &ranking {
        Ok(served) if state.logs_traffic(&live.config, &query.user_id) => {
            let request_id = query.request_id.clone();
            let record = RankRecord::served(query, served).under(&variant.arms);
            state.log_traffic(Record::Rank(record));
            (request_id, ranking)
        }
        _ => (query.request_id, ranking),
    }
}

fn deadline_passed(deadline: Duration) -> Status {
    metrics::record_shed("deadline");
    Unanswered::Deadline {
        ms: deadline.as_millis(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_parses_per_spec() {
        let parse = |v: &str| {
            let mut m = tonic::metadata::MetadataMap::new();
            m.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&m)
        };
        assert_eq!(parse("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse("123456789m"), None, "at most 8 digits");
        assert_eq!(parse("10x"), None);
        assert_eq!(parse("m"), None);
        assert_eq!(grpc_timeout(&tonic::metadata::MetadataMap::new()), None);
    }
}
