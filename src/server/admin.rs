//! `AdminService`: read-outs of the process's stateful parts.

use super::State;
use crate::allocate::ControllerView;
use crate::domain::Tier;
use crate::proto::v1 as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AdminApi {
    pub(super) state: Arc<State>,
}

fn quota_state(view: ControllerView, config_version: String) -> pb::QuotaState {
    let ControllerView {
        multipliers,
        realized_shares,
        targets,
        tracked_streamers,
        gini,
    } = view;
    pb::QuotaState {
        tiers: Tier::ALL
            .iter()
            .map(|&t| pb::TierQuota {
                tier: super::convert::tier_to_pb(t) as i32,
                multiplier: multipliers[t.index()],
                realized_share: realized_shares[t.index()],
                target_share: targets.map(|x| x[t.index()]),
            })
            .collect(),
        targets_enabled: targets.is_some(),
        tracked_streamers: tracked_streamers as u64,
        config_version,
        exposure_gini: gini,
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn reload_config(
        &self,
        _request: Request<pb::ReloadConfigRequest>,
    ) -> Result<Response<pb::ReloadConfigResponse>, Status> {
        let state = self.state.clone();
        let outcome = tokio::task::spawn_blocking(move || state.reload())
            .await
            .map_err(|e| Status::internal(format!("reload task failed: {e}")))?;
        match outcome {
            Ok(r) => Ok(Response::new(pb::ReloadConfigResponse {
                version: r.version,
                previous_version: r.previous_version,
                changed: r.changed,
                restart_required: r.restart_required.into_iter().map(String::from).collect(),
            })),
            Err(e) => Err(Status::failed_precondition(e.to_string())),
        }
    }

    async fn get_config(
        &self,
        _request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        let engine = self.state.engine();
        let config = engine.config();
        Ok(Response::new(pb::GetConfigResponse {
            version: config.version.clone(),
            origin: config.origin.clone(),
            toml: config.text.clone(),
        }))
    }

    async fn get_quota_state(
        &self,
        _request: Request<pb::GetQuotaStateRequest>,
    ) -> Result<Response<pb::QuotaState>, Status> {
        let engine = self.state.engine();
        let view = self
            .state
            .ranking
            .exposure
            .view(&engine.config().quotas.exposure, super::wall_clock());
        Ok(Response::new(quota_state(
            view,
            engine.config().version.clone(),
        )))
    }
}
