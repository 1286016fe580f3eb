//! The gRPC server: `RankService`, `CatalogService`, `AdminService`,
//! `EventService`, the standard health service and server reflection, on one
//! port; Prometheus metrics on another.
//!
//! Handlers are thin: convert the request ([`convert`]), call the engine or
//! the catalog, convert back; errors become statuses in [`status`] only.
//! [`run`] is handed its listener and a shutdown future, so tests start it
//! on port 0 and stop it at will.

mod admin;
mod arms;
mod caps;
mod catalog;
pub mod codec;
mod console;
pub mod convert;
pub mod decode;
mod events;
mod flow;
mod history;
pub mod logging;
pub mod metrics;
mod rank;
mod reflection;
mod reload;
pub mod status;

pub use reload::{ReloadError, ReloadNote, Reloaded};

use crate::allocate::ControllerView;
use crate::catalog::{Catalog, CatalogError};
use crate::cluster::{Budgets, Caps, Stream};
use crate::config::{Config, Variant};
use crate::domain::Millis;
use crate::engine::{Engine, RankState};
use crate::events::{EventLogError, EventStore};
use crate::model::{Model, ModelError};
use crate::proto::v1::admin_service_server::AdminServiceServer;
use crate::proto::v1::catalog_service_server::CatalogServiceServer;
use crate::proto::v1::event_service_server::EventServiceServer;
use crate::snapshot::SnapshotError;
use crate::traffic::{Record, SinkOptions, TrafficSink};
use arc_swap::ArcSwap;
use parking_lot::RwLock;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

/// The server's clock, read in the server layer only: the engine takes
/// time as input.
#[expect(
    clippy::disallowed_methods,
    reason = "the server boundary stamps requests that carry no time"
)]
pub(crate) fn wall_clock() -> Millis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Millis(since_epoch.as_millis() as i64)
}

/// The monotonic clock for latencies and deadlines, read in the server
/// layer only.
#[expect(
    clippy::disallowed_methods,
    reason = "request latency and deadlines are measured at the server boundary"
)]
pub(crate) fn monotonic_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// How long a replica may take to apply the stream up to where it stood
/// at start.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(300);

/// What the server shares between requests.
pub struct State {
    /// Config, model and the engine built from them, swapped whole on
    /// reload; a request holds the `Arc` it started with.
    live: ArcSwap<Live>,
    /// Read by every `Rank`, written by catalog upserts. Upserts are rare next
    /// to ranks and hold the lock only to validate and apply one batch, so one
    /// read-write lock is the simple choice.
    pub catalog: RwLock<Catalog>,
    /// The exposure controller's and the flow's state: per process,
    /// outside the engine, so it carries over config reloads.
    pub ranking: RankState,
    /// Acknowledged events, durable.
    pub events: Arc<dyn EventStore>,
    /// The fleet's event stream, when this server is a replica (it is also
    /// `events`): its reader's position and lag.
    pub stream: Option<Arc<Stream>>,
    /// The fleet's budget and frequency-cap counts, when this server is a
    /// replica.
    pub budgets: Option<Budgets>,
    pub caps: Option<Caps>,
    /// On a replica: conversions this replica attributed, waiting to be
    /// counted in the fleet's figures (`flow::fleet_figures`).
    attributed: parking_lot::Mutex<Vec<flow::Attributed>>,
    /// Where the event log and the flow's snapshots are.
    events_dir: PathBuf,
    /// The traffic log's writer, when `traffic_log.dir` is set.
    traffic: Option<TrafficSink>,
    /// The file the config came from; `None` on the embedded default.
    config_path: Option<PathBuf>,
    reload_lock: parking_lot::Mutex<()>,
    /// `Rank` requests admitted and not yet answered.
    in_flight: AtomicUsize,
    /// What each experiment variant served and earned.
    arms: arms::Arms,
    /// What the console charts over the last hours.
    history: history::History,
    /// The last reload that changed the config or was refused.
    last_reload: parking_lot::Mutex<Option<ReloadNote>>,
}

/// The config in force and the engines built from it: one value, so a
/// request never sees one without the other.
pub struct Live {
    pub config: Config,
    /// The base config's engine (users in no experiment's arm).
    pub engine: Engine,
    /// One engine per experiment variant, in `config.experiments` order
    /// (the first is `engine`).
    variants: Vec<Engine>,
}

impl Live {
    pub fn new(config: Config, model: Arc<Model>) -> Live {
        let variants = config
            .experiments
            .variants()
            .iter()
            .map(|v| Engine::new(v.engine.clone(), model.clone()))
            .collect();
        Live {
            engine: Engine::new(config.engine.clone(), model),
            config,
            variants,
        }
    }

    /// The engine `user` ranks under, and its experiment variant (`base`
    /// outside every experiment).
    pub fn engine_for(&self, user: &str) -> (&Engine, &Variant) {
        self.variant(self.config.experiments.variant_of(user))
    }

    /// Variant `i` of the config's experiments, and its engine.
    pub fn variant(&self, i: usize) -> (&Engine, &Variant) {
        (&self.variants[i], &self.config.experiments.variants()[i])
    }
}

/// One admitted `Rank`; dropping it frees the place.
struct Admitted(Arc<State>);

impl Drop for Admitted {
    fn drop(&mut self) {
        let left = self.0.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::set_in_flight(left);
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("reflection: descriptors do not decode: {0}")]
    Reflection(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Events(#[from] EventLogError),
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("{0}")]
    Stream(#[from] crate::cluster::StreamError),
    #[error("{0}")]
    Store(#[from] crate::cluster::StoreError),
    #[error(
        "event stream: applied only through sequence {applied} of {seq} in {CATCH_UP:?}; not serving with part of the fleet's events"
    )]
    CatchUp { seq: u64, applied: u64 },
    #[error("traffic log {dir}: {source}")]
    TrafficLog {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// The sockets a server answers on: gRPC, and optionally `GET /metrics`.
pub struct Listeners {
    pub grpc: TcpListener,
    pub metrics: Option<TcpListener>,
}

impl State {
    /// `config_path` is the file the engine's config came from, for reloads;
    /// `recovered` the flow and the event store that feeds it.
    pub fn new(
        live: Live,
        catalog: Catalog,
        recovered: flow::Recovered,
        traffic: Option<TrafficSink>,
        config_path: Option<PathBuf>,
    ) -> Arc<State> {
        let history = history::History::new(live.config.server.metrics_refresh);
        Arc::new(State {
            live: ArcSwap::from_pointee(live),
            catalog: RwLock::new(catalog),
            ranking: RankState::with_flow(recovered.flow),
            events: recovered.events,
            stream: recovered.stream.map(|(s, _)| s),
            budgets: recovered.budgets,
            caps: recovered.caps,
            events_dir: recovered.dir,
            traffic,
            config_path,
            reload_lock: parking_lot::Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            arms: arms::Arms::default(),
            history,
            last_reload: parking_lot::Mutex::new(None),
            attributed: parking_lot::Mutex::new(Vec::new()),
        })
    }

    /// Loads the model and catalog the config names, and recovers the flow
    /// from the latest snapshot and the event log after it (in `events_dir`
    /// when given, else the config's `events.dir`). `config_path` is the
    /// file `config` was read from (reloads read it again).
    pub fn load(
        config: Config,
        config_path: Option<PathBuf>,
        events_dir: Option<PathBuf>,
    ) -> Result<Arc<State>, StartError> {
        // Before anything is counted: a replica's catch-up with the stream
        // is.
        metrics::handle();
        let model = Model::from_source(&config.model)?;
        let max_id = config.engine.limits.max_id_bytes as usize;
        let catalog = Catalog::from_source(&config.catalog, max_id)?;
        let events_dir = events_dir.unwrap_or_else(|| config.events_dir.clone());
        let recovered = flow::recover(
            &events_dir,
            &config.engine.chuanliu,
            config.cluster.as_ref(),
        )?;
        let catch_up = recovered.stream.as_ref().map(|(_, last)| *last);
        let traffic = match &config.traffic_log.dir {
            None => None,
            Some(dir) => Some(
                TrafficSink::open(SinkOptions {
                    dir: dir.clone(),
                    rotate_bytes: config.traffic_log.rotate_bytes,
                    rotate_ms: config.traffic_log.rotate_ms,
                    queue: config.traffic_log.queue,
                    source: "fairflow serve".into(),
                    on_event: metrics::record_traffic_log,
                })
                .map_err(|source| StartError::TrafficLog {
                    dir: dir.clone(),
                    source,
                })?,
            ),
        };
        let state = State::new(
            Live::new(config, Arc::new(model)),
            catalog,
            recovered,
            traffic,
            config_path,
        );
        if let (Some(stream), Some(last)) = (&state.stream, catch_up) {
            stream.start(Arc::downgrade(&state) as std::sync::Weak<dyn crate::events::Feed>);
            // A replica serves once it holds what the fleet acknowledged
            // before it started.
            let started = monotonic_now();
            if !tokio::task::block_in_place(|| stream.wait_applied(last, CATCH_UP)) {
                return Err(StartError::CatchUp {
                    seq: last,
                    applied: stream.lag().0,
                });
            }
            tracing::info!(
                seq = last,
                ms = started.elapsed().as_millis() as u64,
                "caught up with the event stream"
            );
        }
        Ok(state)
    }

    /// Admits one more `Rank` if fewer than `limit` are in flight; the
    /// permit gives the place back when dropped.
    fn admit(self: &Arc<State>, limit: usize) -> Option<Admitted> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| {
            metrics::set_in_flight(self.in_flight.load(Ordering::Relaxed));
            Admitted(self.clone())
        })
    }

    /// Each experiment variant's exposure controller under `live`, by
    /// label (`base` first).
    pub(super) fn controller_views<'l>(&self, live: &'l Live) -> Vec<(&'l str, ControllerView)> {
        live.config
            .experiments
            .variants()
            .iter()
            .map(|v| {
                let params = &v.engine.quotas.exposure;
                let view = self.ranking.with_exposure(&v.label, |e| e.view(params));
                (v.label.as_str(), view)
            })
            .collect()
    }

    /// The config and engine in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Whether `user`'s traffic goes to the traffic log: there is one and
    /// the user is sampled. Checked before a record is built, so requests
    /// that are not logged build nothing.
    fn logs_traffic(&self, config: &Config, user: &str) -> bool {
        self.traffic.is_some() && config.traffic_log.samples(user)
    }

    /// Offers a record to the traffic log. Never blocks.
    fn log_traffic(&self, record: Record) {
        if let Some(sink) = &self.traffic {
            sink.offer(record);
        }
    }
}

/// Serves until `shutdown` resolves, then reports NOT_SERVING on health,
/// stops accepting, lets requests in flight finish, and snapshots the flow.
/// Beside the gRPC services it runs the metrics endpoint, the periodic
/// metrics refresh and flow sweep, flow snapshots and the config watcher.
pub async fn run(
    listeners: Listeners,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let server_config = state.live().config.server.clone();
    // Background tasks end with the server: aborted on return (the metrics
    // endpoint closes its listener when its task is dropped).
    let mut background = tokio::task::JoinSet::new();
    metrics::handle();
    if let Some(listener) = listeners.metrics {
        // `/metrics` and the console share the port.
        let app = metrics::router().merge(console::router(state.clone()));
        background.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }
    background.spawn(refresh_metrics(
        state.clone(),
        server_config.metrics_refresh,
    ));
    background.spawn(reload::watch(state.clone(), server_config.watch_config));
    background.spawn(flow::sweeps(state.clone()));
    background.spawn(flow::snapshots(state.clone()));
    if let Some(budgets) = state.budgets.clone() {
        background.spawn(flow::leases(state.clone(), budgets.clone()));
        background.spawn(flow::fleet_figures(state.clone(), budgets));
    }
    let served = serve_grpc(listeners.grpc, state.clone(), shutdown).await;
    background.abort_all();
    flow::return_leases(&state).await;
    // What the flow learned goes to a snapshot, so the next start replays
    // nothing. Failing it loses nothing: the log still holds every event.
    let _ = tokio::task::spawn_blocking(move || state.snapshot()).await;
    served
}

/// Publishes the controller's state (shares, prices, Gini) every
/// `every`: the Gini sorts every tracked streamer, too much per request.
async fn refresh_metrics(state: Arc<State>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let live = state.live();
            let views = state.controller_views(&live);
            for (label, view) in &views {
                metrics::record_controller(label, view);
            }
            let now = wall_clock();
            let flow = &live.config.engine.chuanliu;
            let spent = state.ranking.flow.totals(now, flow).spent_today;
            let planned = state.ranking.flow.planned_share(now, flow);
            state.history.sample(now, &views, spent, planned, flow);
            state.publish_flow(wall_clock());
            if let Some(stream) = &state.stream {
                let (applied, lag) = stream.lag();
                metrics::record_stream(applied, lag, stream.reading());
            }
        })
        .await;
    }
}

/// The services health reports on, by their gRPC names.
const SERVICES: [&str; 4] = [
    <rank::RankServer as tonic::server::NamedService>::NAME,
    <CatalogServiceServer<catalog::CatalogApi> as tonic::server::NamedService>::NAME,
    <AdminServiceServer<admin::AdminApi> as tonic::server::NamedService>::NAME,
    <EventServiceServer<events::EventApi> as tonic::server::NamedService>::NAME,
];

async fn serve_grpc(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in SERVICES {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }

    let index = reflection::index().map_err(|e| StartError::Reflection(e.to_string()))?;
    let reflection_v1 = reflection::v1::server(index.clone());
    let reflection_alpha = reflection::v1alpha::server(index);

    let max_bytes = state.live().config.server.max_message_bytes;
    // A Rank longer than any valid one is refused on its length alone.
    let max_rank_bytes = state.live().config.engine.limits.max_rank_message_bytes();
    let state_grace = state.live().config.server.drain_grace;
    let rank = rank::RankServer::new(
        rank::RankApi {
            state: state.clone(),
        },
        max_rank_bytes,
        max_bytes,
    );
    let admin = AdminServiceServer::new(admin::AdminApi {
        state: state.clone(),
    });
    let events = EventServiceServer::new(events::EventApi {
        state: state.clone(),
    })
    .max_decoding_message_size(max_bytes)
    .max_encoding_message_size(max_bytes);
    let max_candidates: codec::MaxCandidates = {
        let state = state.clone();
        Arc::new(move || state.live.load().config.engine.limits.max_candidates as usize)
    };
    let catalog = CatalogServiceServer::new(catalog::CatalogApi { state })
        .max_decoding_message_size(max_bytes)
        .max_encoding_message_size(max_bytes);

    let grace = state_grace;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (draining_tx, draining) = tokio::sync::oneshot::channel::<()>();
    let drain = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, draining requests in flight");
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in SERVICES {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let _ = draining_tx.send(());
    };
    let serve = tonic::transport::Server::builder()
        .layer(codec::Refusals(max_candidates))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_alpha)
        .add_service(rank)
        .add_service(catalog)
        .add_service(admin)
        .add_service(events)
        .serve_with_incoming_shutdown(incoming, drain);
    // Draining waits for clients to finish and hang up; one that never does
    // must not keep the process alive, so the drain is bounded.
    let deadline = async {
        if draining.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = serve => served?,
        () = deadline => tracing::warn!(grace_ms = grace.as_millis() as u64, "drain timed out; closing remaining connections"),
    }
    Ok(())
}
