//! `CatalogService`: batch upserts (atomic per call) and reads.

use super::status::{in_batch, record_error};
use super::{State, convert};
use crate::catalog::{Catalog, RecordError, UpsertCount};
use crate::proto::v1 as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct CatalogApi {
    pub(super) state: Arc<State>,
}

type UpsertFn<T> = fn(&mut Catalog, Vec<T>, usize) -> Result<UpsertCount, RecordError>;

impl CatalogApi {
    /// Applies one batch under the write lock; a refused record is reported
    /// with its path in the batch (`{name}[i].field`).
    fn upsert<T>(
        &self,
        name: &str,
        batch: Vec<T>,
        apply: UpsertFn<T>,
    ) -> Result<Response<pb::UpsertReply>, Status> {
        let max_id = self.state.live().config.engine.limits.max_id_bytes as usize;
        let count = apply(&mut self.state.catalog.write(), batch, max_id)
            .map_err(|e| record_error(name, e))?;
        Ok(Response::new(pb::UpsertReply {
            upserted: count.upserted,
            created: count.created,
        }))
    }
}

/// Splits requested ids into found records and missing ids.
fn lookup<T, P>(
    ids: Vec<String>,
    find: impl Fn(&str) -> Option<T>,
    to_pb: impl Fn(T) -> P,
) -> (Vec<P>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match find(&id) {
            Some(r) => found.push(to_pb(r)),
            None => missing.push(id),
        }
    }
    (found, missing)
}

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogApi {
    async fn upsert_streamers(
        &self,
        request: Request<pb::UpsertStreamersRequest>,
    ) -> Result<Response<pb::UpsertReply>, Status> {
        let batch = request
            .into_inner()
            .streamers
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                convert::streamer(s, super::wall_clock()).map_err(|e| in_batch("streamers", i, e))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.upsert("streamers", batch, Catalog::upsert_streamers)
    }

    async fn upsert_goods(
        &self,
        request: Request<pb::UpsertGoodsRequest>,
    ) -> Result<Response<pb::UpsertReply>, Status> {
        let batch = request
            .into_inner()
            .goods
            .into_iter()
            .map(convert::goods)
            .collect();
        self.upsert("goods", batch, Catalog::upsert_goods)
    }

    async fn upsert_streams(
        &self,
        request: Request<pb::UpsertStreamsRequest>,
    ) -> Result<Response<pb::UpsertReply>, Status> {
        let batch = request
            .into_inner()
            .streams
            .into_iter()
            .map(convert::stream)
            .collect();
        self.upsert("streams", batch, Catalog::upsert_streams)
    }

    async fn get_streamers(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetStreamersReply>, Status> {
        let live = self.state.live();
        let tiers = live.config.engine.tiers;
        let catalog = self.state.catalog.read();
        let (streamers, missing_ids) = lookup(
            request.into_inner().ids,
            |id| catalog.streamer(id),
            |s| convert::streamer_to_pb(s, &tiers),
        );
        Ok(Response::new(pb::GetStreamersReply {
            streamers,
            missing_ids,
        }))
    }

    async fn get_goods(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetGoodsReply>, Status> {
        let catalog = self.state.catalog.read();
        let (goods, missing_ids) = lookup(
            request.into_inner().ids,
            |id| catalog.goods(id),
            convert::goods_to_pb,
        );
        Ok(Response::new(pb::GetGoodsReply { goods, missing_ids }))
    }

    async fn get_streams(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetStreamsReply>, Status> {
        let catalog = self.state.catalog.read();
        let (streams, missing_ids) = lookup(
            request.into_inner().ids,
            |id| catalog.stream(id),
            |e| convert::stream_to_pb(&e.stream),
        );
        Ok(Response::new(pb::GetStreamsReply {
            streams,
            missing_ids,
        }))
    }

    async fn get_catalog_stats(
        &self,
        _request: Request<pb::GetCatalogStatsRequest>,
    ) -> Result<Response<pb::CatalogStats>, Status> {
        let tiers = self.state.live().config.engine.tiers;
        let stats = self.state.catalog.read().stats(&tiers);
        Ok(Response::new(convert::catalog_stats(stats)))
    }
}
