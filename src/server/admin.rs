//! `AdminService`: read-outs of the process's stateful parts.

use super::State;
use super::arms::ArmFigures;
use super::status::{self, Unanswered};
use crate::allocate::ControllerView;
use crate::chuanliu::{BrandSetting, BrandStats, Enrollment, HoldoutStats, Increment};
use crate::config::Experiments;
use crate::domain::{ArmRef, check_id};
use crate::domain::{FieldError, Tier};
use crate::proto::v1 as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AdminApi {
    pub(super) state: Arc<State>,
}

fn quota_state(view: ControllerView, config_version: String) -> pb::QuotaState {
    let ControllerView {
        prices,
        score_unit,
        realized_shares,
        targets,
        tracked_streamers,
        gini,
        top1,
    } = view;
    pb::QuotaState {
        tiers: Tier::ALL
            .iter()
            .map(|&t| pb::TierQuota {
                tier: super::convert::tier_to_pb(t) as i32,
                price: prices[t.index()],
                realized_share: realized_shares[t.index()],
                target_share: targets.map(|x| x[t.index()]),
            })
            .collect(),
        targets_enabled: targets.is_some(),
        tracked_streamers: tracked_streamers as u64,
        config_version,
        exposure_gini: gini,
        score_unit,
        top1_share: top1,
        arms: Vec::new(),
    }
}

fn arms_to_pb(arms: &[ArmRef]) -> Vec<pb::ExperimentArm> {
    arms.iter()
        .map(|a| pb::ExperimentArm {
            experiment: a.experiment.clone(),
            arm: a.arm.clone(),
        })
        .collect()
}

fn arm_flow_to_pb(label: String, arms: &[ArmRef], fig: &ArmFigures) -> pb::ArmFlowStats {
    let value = fig.page_value();
    pb::ArmFlowStats {
        label,
        arms: arms_to_pb(arms),
        requests: fig.requests,
        impressions: fig.flow_impressions,
        purchases: fig.purchases,
        gmv: fig.gmv,
        attributed_conversions: fig.attributed_conversions,
        attributed_gmv: fig.attributed_gmv,
        page_value: value.map(|v| v.mean),
        page_value_low: value.map(|v| v.low),
        page_value_high: value.map(|v| v.high),
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
            .map_err(|error| Unanswered::TaskFailed {
                what: "reload",
                error,
            })?;
        match outcome {
            Ok(r) => Ok(Response::new(pb::ReloadConfigResponse {
                version: r.version,
                previous_version: r.previous_version,
                changed: r.changed,
                restart_required: r.restart_required.into_iter().map(String::from).collect(),
                changes: r.changes.iter().map(ToString::to_string).collect(),
            })),
            Err(e) => Err(Unanswered::Reload(e).into()),
        }
    }

    async fn get_config(
        &self,
        _request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        let live = self.state.live();
        let config = &live.config;
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
        let live = self.state.live();
        let version = &live.config.version;
        let experiments = &live.config.experiments;
        let mut views = self.state.controller_views(&live).into_iter();
        let (_, base) = views.next().expect("the base variant is always there");
        let mut state = quota_state(base.clone(), version.clone());
        if !experiments.is_empty() {
            let arm = |(label, view): (&str, ControllerView)| pb::ArmQuotaState {
                label: label.to_string(),
                arms: experiments
                    .find(label)
                    .map(|v| arms_to_pb(&v.arms))
                    .unwrap_or_default(),
                quota: Some(quota_state(view, version.clone())),
            };
            state.arms = std::iter::once((crate::engine::BASE, base))
                .chain(views)
                .map(arm)
                .collect();
        }
        Ok(Response::new(state))
    }

    async fn set_brand_flow(
        &self,
        request: Request<pb::SetBrandFlowRequest>,
    ) -> Result<Response<pb::BrandFlowStats>, Status> {
        self.store_brand_setting(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_flow_stats(
        &self,
        request: Request<pb::GetFlowStatsRequest>,
    ) -> Result<Response<pb::FlowStats>, Status> {
        let live = self.state.live();
        let params = &live.config.engine.chuanliu;
        let (flow, now) = (&self.state.ranking.flow, super::wall_clock());
        let totals = flow.totals(now, params);
        let brands = flow.brand_stats(&request.into_inner().brand_ids, now, params);
        let fleet = match self.state.budgets.clone() {
            None => None,
            Some(mut budgets) => {
                let day = params.pacing.day_of(now);
                let unreachable = |e: redis::RedisError| Unanswered::FleetUnreachable {
                    what: "the fleet's flow counts (Redis)",
                    error: e.to_string(),
                };
                let leased = budgets
                    .leased(&crate::chuanliu::BudgetKey::Flow, day)
                    .await
                    .map_err(unreachable)?;
                let figures = budgets.day(day).await.map_err(unreachable)?;
                Some((leased, figures))
            }
        };
        let (spent_today, remaining_today) = match &fleet {
            None => (totals.spent_today, totals.remaining_today),
            Some((leased, _)) => (*leased, totals.daily_impressions.saturating_sub(*leased)),
        };
        Ok(Response::new(pb::FlowStats {
            enabled: params.enabled,
            daily_impressions: totals.daily_impressions,
            spent_today,
            remaining_today,
            replica_spent_today: totals.spent_today,
            fleet: self.state.budgets.is_some(),
            impressions: totals.counts.impressions,
            attributed_conversions: totals.counts.conversions,
            attributed_gmv: totals.counts.gmv(),
            active_affinities: totals.active_affinities,
            users: totals.users,
            rewarded_streamers: totals.rewarded_streamers,
            brands: brands.into_iter().map(brand_stats_to_pb).collect(),
            config_version: live.config.version.clone(),
            fleet_today: fleet.map(|(_, day)| pb::FleetFlowDay {
                impressions: day.impressions,
                attributed_conversions: day.attributed_conversions,
                attributed_gmv: day.attributed_gmv,
            }),
            holdout: Some(holdout_to_pb(&totals.holdout)),
            arms: self.arm_flow(&live.config.experiments),
        }))
    }

    async fn get_user_affinities(
        &self,
        request: Request<pb::GetUserAffinitiesRequest>,
    ) -> Result<Response<pb::UserAffinities>, Status> {
        let live = self.state.live();
        let config = &live.config;
        let user_id = request.into_inner().user_id;
        check_id(
            "user_id",
            &user_id,
            config.engine.limits.max_id_bytes as usize,
        )
        .map_err(|e| status::invalid_argument(&e))?;
        let (flow, now) = (&self.state.ranking.flow, super::wall_clock());
        let seconds_to_ms = |s: crate::chuanliu::Secs| s.0 as i64 * 1000;
        let affinities = flow
            .affinities_of(&user_id)
            .into_iter()
            .map(|(brand_id, a, sources)| pb::UserAffinity {
                brand_id,
                weight: a.weight_at(now.into(), &config.engine.chuanliu.affinity),
                source_streamer_ids: sources,
                updated_ms: seconds_to_ms(a.updated),
                last_shown_ms: seconds_to_ms(a.shown),
                triggers: flow.can_trigger(&a, now, &config.engine.chuanliu),
                taste: f64::from(a.taste),
                taste_requests: u32::from(a.requests),
            })
            .collect();
        Ok(Response::new(pb::UserAffinities {
            user_id,
            affinities,
        }))
    }
}

impl AdminApi {
    /// Per variant, what its users were served and bought: every variant
    /// of the config in force (`base` first), then labels of earlier
    /// configs still counted; none without experiments.
    fn arm_flow(&self, experiments: &Experiments) -> Vec<pb::ArmFlowStats> {
        if experiments.is_empty() {
            return Vec::new();
        }
        let figures = self.state.arms.all();
        let of = |label: &str| figures.iter().find(|(l, _)| l == label).map(|(_, f)| *f);
        let current = experiments
            .variants()
            .iter()
            .map(|v| arm_flow_to_pb(v.label.clone(), &v.arms, &of(&v.label).unwrap_or_default()));
        let earlier = figures
            .iter()
            .filter(|(label, _)| experiments.find(label).is_none())
            .map(|(label, fig)| arm_flow_to_pb(label.clone(), &[], fig));
        current.chain(earlier).collect()
    }
}

fn enrollment_to_pb(e: Enrollment) -> pb::FlowEnrollment {
    match e {
        Enrollment::Unset => pb::FlowEnrollment::Unspecified,
        Enrollment::Enrolled => pb::FlowEnrollment::Enrolled,
        Enrollment::Paused => pb::FlowEnrollment::Paused,
    }
}

fn brand_stats_to_pb(b: BrandStats) -> pb::BrandFlowStats {
    pb::BrandFlowStats {
        enrollment: enrollment_to_pb(b.enrollment) as i32,
        active: b.active,
        daily_impressions: b.daily_impressions,
        spent_today: b.spent_today,
        impressions: b.counts.impressions,
        attributed_conversions: b.counts.conversions,
        attributed_gmv: b.counts.gmv(),
        affinities: b.affinities,
        holdout: Some(holdout_to_pb(&b.holdout)),
        brand_id: b.brand_id,
    }
}

fn holdout_to_pb(h: &HoldoutStats) -> pb::FlowHoldout {
    let increment = |i: &Increment| pb::GmvIncrement {
        per_unit: i.per_unit,
        per_unit_se: i.per_unit_se,
        total: i.total,
        low: i.low,
        high: i.high,
    };
    pb::FlowHoldout {
        treated_units: h.treated_units,
        holdout_units: h.holdout_units,
        ghost_impressions: h.ghost.impressions,
        ghost_conversions: h.ghost.conversions,
        ghost_gmv: h.ghost.gmv(),
        own_live_gmv: h.own_live_gmv.as_ref().map(increment),
        total_gmv: h.total_gmv.as_ref().map(increment),
    }
}

/// Checks a `SetBrandFlow` request.
fn brand_setting(r: pb::SetBrandFlowRequest, max_id: usize) -> Result<BrandSetting, FieldError> {
    check_id("brand_id", &r.brand_id, max_id)?;
    let enrollment = match pb::FlowEnrollment::try_from(r.enrollment) {
        Ok(pb::FlowEnrollment::Enrolled) => Enrollment::Enrolled,
        Ok(pb::FlowEnrollment::Paused) => Enrollment::Paused,
        _ => {
            return Err(FieldError::new(
                "enrollment",
                format!("{} is not ENROLLED or PAUSED", r.enrollment),
            ));
        }
    };
    Ok(BrandSetting {
        brand_id: r.brand_id,
        enrollment,
        daily_impressions: r.daily_impressions,
    })
}

impl AdminApi {
    async fn store_brand_setting(
        &self,
        request: pb::SetBrandFlowRequest,
    ) -> Result<pb::BrandFlowStats, Status> {
        let live = self.state.live();
        let setting = brand_setting(request, live.config.engine.limits.max_id_bytes as usize)
            .map_err(|e| status::invalid_argument(&e))?;
        if !self.state.catalog.read().knows_brand(&setting.brand_id) {
            return Err(status::invalid_argument(&crate::domain::FieldError::new(
                "brand_id",
                format!(
                    "`{}` is not a brand the catalog knows (no goods of it, no account of its own)",
                    setting.brand_id
                ),
            )));
        }
        let state = self.state.clone();
        let stored = setting.clone();
        tokio::task::spawn_blocking(move || state.set_brand(&stored))
            .await
            .map_err(|error| Unanswered::TaskFailed {
                what: "brand setting",
                error,
            })?
            .map_err(|error| {
                tracing::error!(error = %error, "brand setting not stored");
                Unanswered::NotStored {
                    what: "brand setting",
                    error,
                }
            })?;
        tracing::info!(
            brand = %setting.brand_id,
            enrollment = ?setting.enrollment,
            daily_impressions = ?setting.daily_impressions,
            "brand flow setting changed"
        );
        let stats = self.state.ranking.flow.brand_stats(
            &[setting.brand_id],
            super::wall_clock(),
            &live.config.engine.chuanliu,
        );
        Ok(brand_stats_to_pb(
            stats
                .into_iter()
                .next()
                .expect("one brand asked, one answered"),
        ))
    }
}
