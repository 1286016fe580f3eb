//! Prometheus metrics through the `metrics` facade, served as text on their
//! own port (`GET /metrics`).
//!
//! Labels are bounded: RPC names, scenes, tiers, status codes and fixed
//! reasons; never user, item or streamer ids. docs/operations.md lists every
//! series.

use crate::allocate::ControllerView;
use crate::chuanliu::{Applied, FlowTotals};
use crate::domain::{Reason, Scene, Tier};
use crate::engine::Ranking;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Latency buckets (seconds): a `Rank` takes tens of microseconds in the
/// engine, milliseconds over the wire, and anything near a second is an
/// incident.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const GROUP_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
const CANDIDATE_BUCKETS: [f64; 10] = [
    10.0, 25.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// The process-wide recorder, installed on first use: the `metrics` facade
/// has one global recorder, so servers started in one process (tests)
/// share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("fairflow_rank_candidates".into()),
                        &CANDIDATE_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("fairflow_wal_group_batches".into()),
                        &GROUP_BUCKETS,
                    )
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then the
            // handle renders nothing, which the metrics test would catch.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "fairflow_rpc_requests_total",
        "RPCs answered, by method, scene and status code"
    );
    describe_histogram!(
        "fairflow_rpc_duration_seconds",
        Unit::Seconds,
        "Time from the handler's start to its answer, by method and scene"
    );
    describe_counter!(
        "fairflow_purchases_total",
        "Purchases taken into the flow by this process (ingested here, or read from the fleet's event stream; not those replayed from the local log at start), by the channel the catalog counted them in (unverified: no reward, no affinity)"
    );
    describe_counter!(
        "fairflow_rpc_decode_failures_total",
        "Requests refused while their message was read (over the size limit, or not a valid message), by method and status code"
    );
    describe_histogram!(
        "fairflow_rank_candidates",
        Unit::Count,
        "Candidates per Rank request"
    );
    describe_counter!(
        "fairflow_exposure_served_total",
        "Position-weighted exposure served, by scene and tier"
    );
    describe_counter!(
        "fairflow_flow_leases_total",
        "A replica: leases of flow budget asked of Redis, by result (failed: Redis did not answer)"
    );
    describe_counter!(
        "fairflow_flow_leased_impressions_total",
        "A replica: flow impressions leased from the fleet's budgets"
    );
    describe_counter!(
        "fairflow_flow_cap_holds_total",
        "A replica: requests that asked Redis for places under the flow's frequency caps, by result (held, capped: none free, failed: Redis did not answer in time)"
    );
    describe_counter!(
        "fairflow_flow_cap_places_total",
        "A replica: places under the flow's frequency caps, by what became of them (held, returned: not used by the page)"
    );
    describe_gauge!(
        "fairflow_stream_applied_seq",
        "A replica: the event stream's sequence its flow holds"
    );
    describe_gauge!(
        "fairflow_stream_lag_events",
        "A replica: records in the event stream not yet applied to its flow"
    );
    describe_gauge!(
        "fairflow_stream_reading",
        "A replica: 1 while its reader is connected to the event stream, 0 while NATS is away"
    );
    describe_gauge!(
        "fairflow_exposure_share",
        "Tier share of exposure over the controller's decayed window"
    );
    describe_gauge!(
        "fairflow_exposure_target_share",
        "Tier target share (absent when targets are off)"
    );
    describe_gauge!(
        "fairflow_controller_price",
        "The exposure controller's price per tier, in mean served scores"
    );
    describe_gauge!(
        "fairflow_exposure_gini",
        "Gini coefficient of recent exposure across the streamers tracked"
    );
    describe_gauge!(
        "fairflow_exposure_tracked_streamers",
        "Streamers whose recent exposure is tracked"
    );
    describe_gauge!(
        "fairflow_requests_in_flight",
        "Rank requests admitted and not yet answered"
    );
    describe_counter!(
        "fairflow_requests_shed_total",
        "Rank requests refused by overload protection, by reason"
    );
    describe_counter!(
        "fairflow_events_total",
        "Events taken in, by result (accepted: newly durable; duplicate)"
    );
    describe_histogram!(
        "fairflow_wal_sync_seconds",
        Unit::Seconds,
        "Time of one write-ahead log sync (one per group commit)"
    );
    describe_histogram!(
        "fairflow_wal_group_batches",
        Unit::Count,
        "Ingest batches made durable by one sync"
    );
    describe_counter!(
        "fairflow_config_reloads_total",
        "Config reload attempts, by result (ok, failed, unchanged)"
    );
    describe_counter!(
        "fairflow_flow_impressions_total",
        "Slots served with the chuanliu reason (a brand's own stream shown through the flow), by scene"
    );
    describe_counter!(
        "fairflow_flow_reward_slots_total",
        "Slots served with the flow-reward reason (an influencer's traffic reward), by scene"
    );
    describe_counter!(
        "fairflow_flow_affinity_purchases_total",
        "Purchases through influencers that made or strengthened a user-brand affinity"
    );
    describe_counter!(
        "fairflow_flow_seen_impressions_total",
        "Impression events showing a brand's own stream within an hour after the flow served it to the user: flow impressions seen, from which attribution counts"
    );
    describe_counter!(
        "fairflow_flow_attributed_conversions_total",
        "Purchases in brands' own live streams attributed to the flow (after a seen flow impression)"
    );
    describe_counter!(
        "fairflow_flow_attributed_gmv_fen_total",
        "GMV of those purchases, in fen (0.01 yuan)"
    );
    describe_counter!(
        "fairflow_flow_ghost_conversions_total",
        "Purchases in brands' own live streams that followed a ghost impression (the holdout's would-be attribution)"
    );
    describe_gauge!(
        "fairflow_flow_holdout_units",
        "User-brand affinities in each arm of the flow's holdout, by arm (treated, holdout)"
    );
    describe_gauge!(
        "fairflow_flow_ghost_impressions",
        "Ghost impressions this process counted for the holdout (cap and budget spent, nothing shown)"
    );
    describe_gauge!(
        "fairflow_flow_gmv_increment_yuan",
        "What the flow added over the holdout, yuan over the treated units, by outcome (own_live, total) and bound (estimate, low, high: the 95% interval); absent until each arm has two units"
    );
    describe_gauge!(
        "fairflow_flow_budget_daily",
        "The flow's daily impression budget for this process"
    );
    describe_gauge!(
        "fairflow_flow_budget_spent_today",
        "Flow impressions spent in the current budget day"
    );
    describe_gauge!(
        "fairflow_flow_budget_remaining",
        "Flow impressions left in the current budget day"
    );
    describe_gauge!(
        "fairflow_flow_active_affinities",
        "User-brand affinities alive (not expired) at the last sweep"
    );
    describe_gauge!(
        "fairflow_flow_users",
        "Users with at least one affinity at the last sweep"
    );
    describe_gauge!(
        "fairflow_flow_rewarded_streamers",
        "Influencers with a traffic reward at the last sweep"
    );
    describe_gauge!(
        "fairflow_event_ids_remembered",
        "Event ids kept to refuse duplicates (within events.dedupe_hours)"
    );
    describe_counter!(
        "fairflow_snapshots_total",
        "Flow snapshots, by result (ok, failed)"
    );
    describe_histogram!(
        "fairflow_snapshot_seconds",
        Unit::Seconds,
        "Time to copy, write and sync one flow snapshot"
    );
}

fn scene_label(scene: Option<Scene>) -> &'static str {
    scene.map_or("", Scene::name)
}

/// The series every `Rank` answered `OK` touches, each looked up once.
/// Finding a series by its labels hashes them and takes the registry's
/// lock: seven lookups a request were 2% of the server's CPU at 200
/// candidates. A handle is the series itself, so what it records is what a
/// lookup would have recorded.
struct RankSeries {
    /// By scene ([`Scene::index`], then one for a request with none).
    ok: [Counter; Scene::ALL.len() + 1],
    duration: [Histogram; Scene::ALL.len() + 1],
    candidates: [Histogram; Scene::ALL.len()],
    /// By scene and tier, for the base arm (every request outside an
    /// experiment).
    served_base: [[Counter; Tier::ALL.len()]; Scene::ALL.len()],
}

fn rank_series() -> &'static RankSeries {
    static SERIES: OnceLock<RankSeries> = OnceLock::new();
    SERIES.get_or_init(|| {
        // A handle taken before the recorder is installed records nothing.
        handle();
        let scene = |i: usize| scene_label(Scene::ALL.get(i).copied());
        RankSeries {
            ok: std::array::from_fn(|i| {
                counter!("fairflow_rpc_requests_total", "rpc" => "Rank", "scene" => scene(i), "code" => "OK")
            }),
            duration: std::array::from_fn(|i| {
                histogram!("fairflow_rpc_duration_seconds", "rpc" => "Rank", "scene" => scene(i))
            }),
            candidates: Scene::ALL
                .map(|s| histogram!("fairflow_rank_candidates", "scene" => s.name())),
            served_base: Scene::ALL.map(|s| Tier::ALL.map(|t| served_counter(s, t, arm_label(crate::engine::BASE)))),
        }
    })
}

fn served_counter(scene: Scene, tier: Tier, arm: metrics::SharedString) -> Counter {
    counter!(
        "fairflow_exposure_served_total",
        "scene" => scene.name(),
        "tier" => tier.name(),
        "arm" => arm
    )
}

/// One answered RPC.
pub fn record_rpc(rpc: &'static str, scene: Option<Scene>, code: tonic::Code, elapsed: Duration) {
    if rpc == "Rank" && code == tonic::Code::Ok {
        let series = rank_series();
        let i = scene.map_or(Scene::ALL.len(), Scene::index);
        series.ok[i].increment(1);
        series.duration[i].record(elapsed.as_secs_f64());
        return;
    }
    let scene = scene_label(scene);
    counter!(
        "fairflow_rpc_requests_total",
        "rpc" => rpc,
        "scene" => scene,
        "code" => code_name(code)
    )
    .increment(1);
    histogram!("fairflow_rpc_duration_seconds", "rpc" => rpc, "scene" => scene)
        .record(elapsed.as_secs_f64());
}

/// What one ranked page served.
/// A page ranked in `scene` for a user of experiment variant `arm` (`base`
/// outside every experiment; at most `config::MAX_VARIANTS` labels).
pub fn record_ranking(scene: Scene, arm: &str, candidates: usize, ranking: &Ranking) {
    let series = rank_series();
    series.candidates[scene.index()].record(candidates as f64);
    let mut served = [0.0; 3];
    for slot in &ranking.slots {
        served[slot.tier.index()] += slot.exposure;
    }
    let base = arm == crate::engine::BASE;
    let arm = arm_label(arm);
    for tier in Tier::ALL {
        // Counters are integers: exposure is counted in thousandths of a
        // first slot.
        let thousandths = (served[tier.index()] * 1000.0).round() as u64;
        if base {
            series.served_base[scene.index()][tier.index()].increment(thousandths);
        } else {
            served_counter(scene, tier, arm.clone()).increment(thousandths);
        }
    }
    let count = |reason| {
        ranking
            .slots
            .iter()
            .filter(|s| s.reasons.contains(reason))
            .count()
    };
    let flow = count(Reason::Chuanliu);
    if flow > 0 {
        counter!("fairflow_flow_impressions_total", "scene" => scene.name(), "arm" => arm)
            .increment(flow as u64);
    }
    let rewarded = count(Reason::FlowReward);
    if rewarded > 0 {
        counter!("fairflow_flow_reward_slots_total", "scene" => scene.name())
            .increment(rewarded as u64);
    }
}

/// An experiment variant's label as a metric label: the base's without an
/// allocation.
fn arm_label(arm: &str) -> metrics::SharedString {
    if arm == crate::engine::BASE {
        metrics::SharedString::const_str(crate::engine::BASE)
    } else {
        metrics::SharedString::from(arm.to_string())
    }
}

/// What one durable event did to the flow.
pub fn record_flow_event(applied: &Applied) {
    if applied.affinity {
        counter!("fairflow_flow_affinity_purchases_total").increment(1);
    }
    if applied.seen {
        counter!("fairflow_flow_seen_impressions_total").increment(1);
    }
    if let Some(price) = applied.attributed {
        counter!("fairflow_flow_attributed_conversions_total").increment(1);
        counter!("fairflow_flow_attributed_gmv_fen_total")
            .increment((price * 100.0).round().max(0.0) as u64);
    }
    if applied.ghost.is_some() {
        counter!("fairflow_flow_ghost_conversions_total").increment(1);
    }
}

/// The flow's state after a sweep.
pub fn record_flow_totals(totals: &FlowTotals, event_ids: Option<usize>) {
    gauge!("fairflow_flow_budget_daily").set(totals.daily_impressions as f64);
    gauge!("fairflow_flow_budget_spent_today").set(totals.spent_today as f64);
    gauge!("fairflow_flow_budget_remaining").set(totals.remaining_today as f64);
    gauge!("fairflow_flow_active_affinities").set(totals.active_affinities as f64);
    gauge!("fairflow_flow_users").set(totals.users as f64);
    gauge!("fairflow_flow_rewarded_streamers").set(totals.rewarded_streamers as f64);
    let h = &totals.holdout;
    gauge!("fairflow_flow_holdout_units", "arm" => "treated").set(h.treated_units as f64);
    gauge!("fairflow_flow_holdout_units", "arm" => "holdout").set(h.holdout_units as f64);
    gauge!("fairflow_flow_ghost_impressions").set(h.ghost.impressions as f64);
    for (outcome, increment) in [("own_live", h.own_live_gmv), ("total", h.total_gmv)] {
        let Some(i) = increment else { continue };
        for (bound, v) in [("estimate", i.total), ("low", i.low), ("high", i.high)] {
            gauge!("fairflow_flow_gmv_increment_yuan", "outcome" => outcome, "bound" => bound)
                .set(v);
        }
    }
    if let Some(n) = event_ids {
        gauge!("fairflow_event_ids_remembered").set(n as f64);
    }
}

/// One lease of flow budget from the fleet's counts: the impressions
/// granted, or `None` when Redis did not answer.
pub fn record_lease(granted: Option<u64>) {
    match granted {
        Some(n) => {
            counter!("fairflow_flow_leases_total", "result" => "ok").increment(1);
            counter!("fairflow_flow_leased_impressions_total").increment(n);
        }
        None => counter!("fairflow_flow_leases_total", "result" => "failed").increment(1),
    }
}

/// One request's hold of places under the fleet's frequency caps: how
/// many it got, or `None` when Redis did not answer in time.
pub fn record_cap_hold(held: Option<usize>) {
    let result = match held {
        None => "failed",
        Some(0) => "capped",
        Some(_) => "held",
    };
    counter!("fairflow_flow_cap_holds_total", "result" => result).increment(1);
    if let Some(n) = held {
        counter!("fairflow_flow_cap_places_total", "fate" => "held").increment(n as u64);
    }
}

/// Places held under the fleet's caps that a page did not use, given back.
pub fn record_cap_returned(n: u64) {
    counter!("fairflow_flow_cap_places_total", "fate" => "returned").increment(n);
}

/// A replica's reader of the event stream.
pub fn record_stream(applied: u64, lag: u64, reading: bool) {
    gauge!("fairflow_stream_applied_seq").set(applied as f64);
    gauge!("fairflow_stream_lag_events").set(lag as f64);
    gauge!("fairflow_stream_reading").set(if reading { 1.0 } else { 0.0 });
}

/// One snapshot attempt.
pub fn record_snapshot(ok: bool, elapsed: Duration) {
    counter!("fairflow_snapshots_total", "result" => if ok { "ok" } else { "failed" }).increment(1);
    histogram!("fairflow_snapshot_seconds").record(elapsed.as_secs_f64());
}

/// The controller's state, published periodically.
/// The exposure controller of experiment variant `arm` (`base` outside
/// every experiment).
pub fn record_controller(arm: &str, view: &ControllerView) {
    let arm = arm_label(arm);
    for tier in Tier::ALL {
        let t = tier.index();
        let tier = tier.name();
        gauge!("fairflow_exposure_share", "tier" => tier, "arm" => arm.clone())
            .set(view.realized_shares[t]);
        gauge!("fairflow_controller_price", "tier" => tier, "arm" => arm.clone())
            .set(view.prices[t]);
        if let Some(targets) = view.targets {
            gauge!("fairflow_exposure_target_share", "tier" => tier, "arm" => arm.clone())
                .set(targets[t]);
        }
    }
    gauge!("fairflow_exposure_gini", "arm" => arm.clone()).set(view.gini);
    gauge!("fairflow_exposure_top1_share", "arm" => arm.clone()).set(view.top1);
    gauge!("fairflow_exposure_tracked_streamers", "arm" => arm).set(view.tracked_streamers as f64);
}

/// Requests admitted and not yet answered; set twice a request, so the
/// series is looked up once (see [`RankSeries`]).
pub fn set_in_flight(n: usize) {
    static IN_FLIGHT: OnceLock<Gauge> = OnceLock::new();
    IN_FLIGHT
        .get_or_init(|| {
            handle();
            gauge!("fairflow_requests_in_flight")
        })
        .set(n as f64);
}

/// A request refused by overload protection (`concurrency` or `deadline`).
pub fn record_shed(reason: &'static str) {
    counter!("fairflow_requests_shed_total", "reason" => reason).increment(1);
}

/// One ingested batch.
pub fn record_events(accepted: usize, duplicates: usize) {
    counter!("fairflow_events_total", "result" => "accepted").increment(accepted as u64);
    counter!("fairflow_events_total", "result" => "duplicate").increment(duplicates as u64);
}

/// A config reload attempt: `ok`, `failed` or `unchanged`.
/// One group commit of the event log.
pub fn record_wal_commit(commit: crate::wal::Commit) {
    histogram!("fairflow_wal_sync_seconds").record(commit.sync_seconds);
    histogram!("fairflow_wal_group_batches").record(commit.batches as f64);
}

/// What the traffic log did with a record or a file.
pub fn record_traffic_log(event: crate::traffic::SinkEvent) {
    use crate::traffic::SinkEvent;
    let result = match event {
        SinkEvent::Written => "written",
        SinkEvent::Dropped => "dropped",
        SinkEvent::Failed => "failed",
        SinkEvent::FileStarted => {
            counter!("fairflow_traffic_log_files_total").increment(1);
            return;
        }
    };
    counter!("fairflow_traffic_log_records_total", "result" => result).increment(1);
}

/// A purchase accepted, by the channel the catalog counted it in.
pub fn record_purchase(channel: crate::domain::Channel) {
    use crate::domain::Channel;
    let channel = match channel {
        Channel::Influencer => "influencer",
        Channel::BrandSelf => "brand_self",
        Channel::Unverified => "unverified",
    };
    counter!("fairflow_purchases_total", "channel" => channel).increment(1);
}

/// A request refused while its message was read (too large, or not a
/// valid message), before any handler ran.
pub fn record_decode_failure(rpc: &'static str, code: tonic::Code) {
    counter!("fairflow_rpc_decode_failures_total", "rpc" => rpc, "code" => code_name(code))
        .increment(1);
}

pub fn record_reload(result: &'static str) {
    counter!("fairflow_config_reloads_total", "result" => result).increment(1);
}

/// The gRPC status code's canonical name, as Prometheus label values go.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The route of `GET /metrics`.
pub fn router() -> axum::Router {
    let handle = handle();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

#[cfg(test)]
mod tests;
