//! `RankService`: validate and convert, call the engine, convert back.

use super::{State, convert};
use crate::domain::Millis;
use crate::proto::v1 as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct RankApi {
    pub(super) state: Arc<State>,
}

/// The server's clock, read here and only here: the engine takes time as input.
#[expect(
    clippy::disallowed_methods,
    reason = "the server boundary stamps requests that carry no time"
)]
fn wall_clock() -> Millis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Millis(since_epoch.as_millis() as i64)
}

#[tonic::async_trait]
impl pb::rank_service_server::RankService for RankApi {
    async fn rank(
        &self,
        request: Request<pb::RankRequest>,
    ) -> Result<Response<pb::RankResponse>, Status> {
        let query = convert::rank_query(request.into_inner(), wall_clock())
            .map_err(|e| super::status::invalid_argument(&e))?;
        // The engine snapshot is taken once: a reload mid-request does not
        // change the config this request is ranked under.
        let engine = self.state.engine();
        let ranking = {
            let catalog = self.state.catalog.read();
            engine.rank(&catalog, &self.state.exposure, &query)
        };
        match ranking {
            Ok(ranking) => {
                tracing::debug!(
                    request_id = %ranking.request_id,
                    scene = %query.scene,
                    candidates = query.candidates.len(),
                    slots = ranking.slots.len(),
                    unresolved = ranking.unresolved,
                    "ranked"
                );
                Ok(Response::new(convert::rank_response(ranking)))
            }
            Err(e) => {
                tracing::info!(request_id = %query.request_id, error = %e, "rank refused");
                Err(e.into())
            }
        }
    }
}
