//! The flow's durable side in the server: recovery at start (the latest
//! snapshot, then the log after it), applying what was made durable,
//! snapshots (periodic and at shutdown) with log truncation, and the
//! periodic sweep that expires state and publishes the flow's gauges.

use super::{StartError, State, metrics, wall_clock};
use crate::chuanliu::{Applied, BrandSetting, Flow, FlowParams};
use crate::cluster::{Budgets, Caps, Connection, Stream};
use crate::config::ClusterConfig;
use crate::domain::Event;
use crate::domain::Millis;
use crate::events::{EventLog, EventLogError, EventStore, Feed, Ingested, LogRecord};
use crate::snapshot::{self, Snapshot, SnapshotError};
use crate::traffic::{Purchase, Record};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The flow rebuilt from its newest snapshot, and the store that feeds it
/// from there on.
pub struct Recovered {
    pub events: Arc<dyn EventStore>,
    /// Where the snapshots (and the local log) are.
    pub dir: PathBuf,
    pub flow: Flow,
    /// The fleet's stream, when this server is a replica, and the sequence
    /// its reader must reach before the replica serves.
    pub stream: Option<(Arc<Stream>, u64)>,
    /// The fleet's budget and frequency-cap counts, when this server is a
    /// replica.
    pub budgets: Option<Budgets>,
    pub caps: Option<Caps>,
}

/// Rebuilds the flow from the newest snapshot in `dir`, then opens the
/// store after it: the local event log in `dir`, whose records after the
/// snapshot are applied here, or (with `cluster`) the fleet's stream, whose
/// reader applies them once started.
pub(super) fn recover(
    dir: &Path,
    params: &FlowParams,
    cluster: Option<&ClusterConfig>,
) -> Result<Recovered, StartError> {
    let started = super::monotonic_now();
    let (seq, flow, ids) = match snapshot::latest(dir)? {
        Some(s) => {
            let flow = Flow::restore(s.flow).map_err(|e| SnapshotError::Damaged {
                path: dir.to_path_buf(),
                reason: format!("affinities do not decode: {e}"),
            })?;
            (s.seq, flow, s.event_ids)
        }
        None => (0, Flow::new(), Vec::new()),
    };
    if let Some(cluster) = cluster {
        let replica = crate::cluster::replica_id(cluster);
        let ((stream, last), redis) = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let redis = Connection::open(cluster).await?;
                let stream = Stream::open(cluster, &replica, seq, ids).await?;
                Ok::<_, StartError>((stream, redis))
            })
        })?;
        // A replica spends only what it leases from the fleet's counts.
        flow.share_budgets();
        tracing::info!(
            stream = %cluster.stream,
            replica = %replica,
            snapshot_seq = seq,
            stream_last = last,
            "event stream opened"
        );
        let stream = Arc::new(stream);
        return Ok(Recovered {
            events: stream.clone(),
            dir: dir.to_path_buf(),
            flow,
            stream: Some((stream, last)),
            budgets: Some(Budgets::new(redis.clone(), cluster)),
            caps: Some(Caps::new(redis, cluster)),
        });
    }
    let options = crate::wal::WalOptions {
        on_commit: metrics::record_wal_commit,
        ..Default::default()
    };
    let (events, records) = EventLog::open_with(dir, seq, ids, options)?;
    // The flow is fed what was durable, in position order.
    for durable in &records {
        apply(&flow, &durable.record, params);
    }
    tracing::info!(
        dir = %dir.display(),
        snapshot_seq = seq,
        replayed = records.len(),
        events = records
            .iter()
            .filter(|r| matches!(r.record, LogRecord::Event(_)))
            .count(),
        ms = started.elapsed().as_millis() as u64,
        "event log opened"
    );
    Ok(Recovered {
        events: Arc::new(events),
        dir: dir.to_path_buf(),
        flow,
        stream: None,
        budgets: None,
        caps: None,
    })
}

/// Keeps this replica's shared budgets stocked: every 50 ms, leases more of
/// each budget running low from the fleet's counts. While Redis is away the
/// replica spends what it holds, then serves no flow impressions.
pub(super) async fn leases(state: Arc<State>, mut budgets: Budgets) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let live = state.live();
        let params = &live.config.engine.chuanliu;
        let requests =
            state
                .ranking
                .flow
                .lease_requests(wall_clock(), params, budgets.lease_size());
        for (key, request) in requests {
            match budgets.lease(&key, &request).await {
                Ok(granted) => {
                    state.ranking.flow.grant(&key, request.day, granted);
                    metrics::record_lease(Some(granted));
                    if std::mem::take(&mut failing) {
                        tracing::info!("leasing flow budgets from Redis again");
                    }
                }
                Err(e) => {
                    metrics::record_lease(None);
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "cannot lease flow budget from Redis; no flow impressions beyond those held");
                    }
                    break;
                }
            }
        }
    }
}

/// A conversion a replica attributed to the flow, for the fleet's figures.
pub(super) struct Attributed {
    day: i64,
    event_id: String,
    price: f64,
}

/// Most attributed conversions a replica keeps while Redis is away; later
/// ones are left out of the fleet's figures (the replica's own still count
/// them).
const ATTRIBUTED_WAITING: usize = 100_000;

/// Adds this replica's part to the fleet's daily figures in Redis, every
/// second: the flow impressions it served since the last time, and the
/// conversions it attributed (each counted once however many replicas
/// attributed it). While Redis is away they wait, and go in when it is
/// back.
pub(super) async fn fleet_figures(state: Arc<State>, mut budgets: Budgets) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut counted = state.ranking.flow.counts().impressions;
    loop {
        tick.tick().await;
        let now = wall_clock();
        let day = state.live().config.engine.chuanliu.pacing.day_of(now);
        let served = state.ranking.flow.counts().impressions;
        if served > counted && budgets.count_served(day, served - counted).await.is_ok() {
            counted = served;
        }
        let waiting = std::mem::take(&mut *state.attributed.lock());
        let mut unsent = Vec::new();
        for a in waiting {
            if !unsent.is_empty() {
                unsent.push(a);
            } else if let Err(e) = budgets.count_attributed(a.day, &a.event_id, a.price).await {
                tracing::debug!(error = %e, "attributed conversions wait for Redis");
                unsent.push(a);
            }
        }
        if !unsent.is_empty() {
            // Before the ones attributed meanwhile: the figures keep order.
            let mut queue = state.attributed.lock();
            unsent.append(&mut queue);
            *queue = unsent;
        }
    }
}

/// At shutdown: gives the leased impressions not spent back to the fleet's
/// counts (what cannot be given back stays counted: unspent, never spent
/// twice).
pub(super) async fn return_leases(state: &State) {
    let Some(mut budgets) = state.budgets.clone() else {
        return;
    };
    for (key, day, n) in state.ranking.flow.release_leases() {
        match budgets.give_back(&key, day, n).await {
            Ok(back) => tracing::info!(?key, day, back, "leased flow impressions returned"),
            Err(e) => tracing::warn!(error = %e, ?key, n, "leased flow impressions not returned"),
        }
    }
}

fn apply(flow: &Flow, record: &LogRecord, params: &FlowParams) -> Applied {
    match record {
        LogRecord::Event(e) => flow.apply(e, params),
        LogRecord::Brand(setting) => {
            flow.set_brand(setting);
            Applied::default()
        }
    }
}

/// What a snapshot wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTaken {
    pub seq: u64,
    pub bytes: u64,
    pub segments_removed: usize,
}

/// The flow is fed from the event store: each durable record once, in
/// position order, whichever backend holds them.
impl Feed for State {
    fn event(&self, event: &Event) {
        let live = self.live();
        let params = &live.config.engine.chuanliu;
        let applied = self.ranking.flow.apply(event, params);
        metrics::record_flow_event(&applied);
        if let (Some(price), Some(_)) = (applied.attributed, &self.budgets) {
            let mut waiting = self.attributed.lock();
            if waiting.len() < ATTRIBUTED_WAITING {
                waiting.push(Attributed {
                    day: params.pacing.day_of(event.time),
                    event_id: event.event_id.clone(),
                    price,
                });
            }
        }
        if let crate::domain::EventKind::Purchase { channel, price, .. } = &event.kind {
            metrics::record_purchase(*channel);
            let (_, variant) = live.engine_for(&event.user_id);
            let attributed = applied.attributed.is_some();
            self.arms.purchased(&variant.label, *price, attributed);
        }
        if self.logs_traffic(&live.config, &event.user_id)
            && let Some(purchase) = Purchase::of(event)
        {
            self.log_traffic(Record::Purchase(purchase));
        }
    }

    fn brand(&self, setting: &BrandSetting) {
        self.ranking.flow.set_brand(setting);
    }
}

impl State {
    /// Makes `events` durable and applies the new ones to the flow, in that
    /// order: what the flow holds is always in the log. Blocking.
    pub(super) fn ingest(&self, events: Vec<Event>) -> Result<Ingested, EventLogError> {
        self.events.ingest(events, self)
    }

    /// Makes a brand setting durable, then applies it. Blocking.
    pub(super) fn set_brand(&self, setting: &BrandSetting) -> Result<(), EventLogError> {
        self.events.append_brand(setting, self)
    }

    /// Writes a snapshot of the flow and the remembered event ids, then
    /// deletes the log segments it covers. Ingestion waits while the state
    /// is copied (not while it is written). Blocking.
    pub fn snapshot(&self) -> Result<SnapshotTaken, StartError> {
        let started = super::monotonic_now();
        let mut copied = None;
        let seq = self.events.quiet_point(&mut || {
            copied = Some((self.ranking.flow.snapshot(), self.events.remembered_ids()));
        });
        let (flow, event_ids) = copied.expect("quiet_point runs the copy");
        let snapshot = Snapshot {
            seq,
            flow,
            event_ids,
        };
        let outcome = snapshot::write(&self.events_dir, &snapshot)
            .map_err(StartError::from)
            .and_then(|(_, bytes)| {
                let segments_removed = self.events.release_through(snapshot.seq)?;
                Ok(SnapshotTaken {
                    seq: snapshot.seq,
                    bytes,
                    segments_removed,
                })
            });
        metrics::record_snapshot(outcome.is_ok(), started.elapsed());
        match &outcome {
            Ok(taken) => tracing::info!(
                seq = taken.seq,
                bytes = taken.bytes,
                segments_removed = taken.segments_removed,
                ms = started.elapsed().as_millis() as u64,
                "flow snapshot written"
            ),
            Err(e) => tracing::error!(error = %e, "flow snapshot failed"),
        }
        outcome
    }

    /// The oldest event time still taken in: the dedupe window back from
    /// the latest event accepted. Ids of older events are forgotten, so an
    /// older event could be a resend that would be applied twice.
    pub(super) fn event_horizon(&self) -> Millis {
        let window = self.live().config.dedupe_window_ms;
        Millis(self.events.newest().0.saturating_sub(window))
    }

    /// Expires affinities, rewards and event ids past the horizon, and
    /// publishes the flow's gauges. Walks every affinity: periodic, off the
    /// request path.
    pub(super) fn sweep_flow(&self, now: Millis) {
        let totals = self
            .ranking
            .flow
            .sweep(now, &self.live().config.engine.chuanliu);
        let remembered = self.events.forget_before(self.event_horizon());
        metrics::record_flow_totals(&totals, Some(remembered));
    }

    /// Publishes the flow's gauges without a sweep (the budget moves
    /// faster than affinities expire).
    pub(super) fn publish_flow(&self, now: Millis) {
        let totals = self
            .ranking
            .flow
            .totals(now, &self.live().config.engine.chuanliu);
        metrics::record_flow_totals(&totals, None);
    }
}

/// Snapshots every `events.snapshot_interval_seconds` (read each time, so a
/// reload changes it).
pub(super) async fn snapshots(state: Arc<State>) {
    loop {
        let every = state.live().config.snapshot_interval;
        tokio::time::sleep(every.unwrap_or(Duration::from_secs(60))).await;
        if every.is_none() || state.live().config.snapshot_interval.is_none() {
            continue;
        }
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || state.snapshot()).await;
    }
}

/// The periodic sweep, every `chuanliu.sweep_interval_seconds` (read each
/// time, so a reload changes it).
pub(super) async fn sweeps(state: Arc<State>) {
    loop {
        let sweeping = state.clone();
        let _ = tokio::task::spawn_blocking(move || sweeping.sweep_flow(wall_clock())).await;
        let every = state.live().config.engine.chuanliu.sweep_interval;
        tokio::time::sleep(every).await;
    }
}
