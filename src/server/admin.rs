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
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn get_quota_state(
        &self,
        _request: Request<pb::GetQuotaStateRequest>,
    ) -> Result<Response<pb::QuotaState>, Status> {
        let engine = self.state.engine();
        let view = self.state.exposure.view(&engine.config().quotas.exposure);
        Ok(Response::new(quota_state(
            view,
            engine.config().version.clone(),
        )))
    }
}
