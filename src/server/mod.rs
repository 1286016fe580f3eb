//! The gRPC server: `RankService`, `CatalogService`, the standard health
//! service and server reflection, on one port.
//!
//! Handlers are thin: convert the request ([`convert`]), call the engine or
//! the catalog, convert back; errors become statuses in [`status`] only.
//! [`run`] is handed its listener and a shutdown future, so tests start it
//! on port 0 and stop it at will.

mod admin;
mod catalog;
pub mod convert;
mod rank;
pub mod status;

use crate::allocate::ExposureState;
use crate::catalog::{Catalog, CatalogError};
use crate::config::{CatalogSource, Config, ModelSource};
use crate::engine::Engine;
use crate::model::{Model, ModelError};
use crate::proto::v1::admin_service_server::AdminServiceServer;
use crate::proto::v1::catalog_service_server::CatalogServiceServer;
use crate::proto::v1::rank_service_server::RankServiceServer;
use arc_swap::ArcSwap;
use parking_lot::RwLock;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

/// What the server shares between requests.
pub struct State {
    /// Config and model, swapped whole on reload; a request holds the `Arc`
    /// it started with.
    engine: ArcSwap<Engine>,
    /// Read by every `Rank`, written by catalog upserts. Upserts are rare next
    /// to ranks and hold the lock only to validate and apply one batch, so one
    /// read-write lock is the simple choice.
    pub catalog: RwLock<Catalog>,
    /// The exposure controller's state: per process, outside the engine, so
    /// it carries over config reloads.
    pub exposure: ExposureState,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl State {
    pub fn new(engine: Engine, catalog: Catalog) -> Arc<State> {
        Arc::new(State {
            engine: ArcSwap::from_pointee(engine),
            catalog: RwLock::new(catalog),
            exposure: ExposureState::new(),
        })
    }

    /// Loads the model and catalog the config names.
    pub fn load(config: Config) -> Result<Arc<State>, StartError> {
        let model = match &config.model {
            ModelSource::Embedded => Model::embedded()?,
            ModelSource::File(path) => Model::load(path)?,
        };
        let max_id = config.limits.max_id_bytes as usize;
        let catalog = match &config.catalog {
            CatalogSource::Embedded => Catalog::embedded_demo(max_id)?,
            CatalogSource::Dir(dir) => Catalog::load_dir(dir, max_id)?,
        };
        Ok(State::new(
            Engine::new(Arc::new(config), Arc::new(model)),
            catalog,
        ))
    }

    /// The engine in force now.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }
}

/// Serves until `shutdown` resolves, then reports NOT_SERVING on health,
/// stops accepting, and lets requests in flight finish.
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<RankServiceServer<rank::RankApi>>()
        .await;
    health
        .set_serving::<CatalogServiceServer<catalog::CatalogApi>>()
        .await;
    health
        .set_serving::<AdminServiceServer<admin::AdminApi>>()
        .await;

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let max_bytes = state.engine().config().server.max_message_bytes;
    let state_grace = state.engine().config().server.drain_grace;
    let rank = RankServiceServer::new(rank::RankApi {
        state: state.clone(),
    })
    .max_decoding_message_size(max_bytes)
    .max_encoding_message_size(max_bytes);
    let admin = AdminServiceServer::new(admin::AdminApi {
        state: state.clone(),
    });
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
        health
            .set_not_serving::<RankServiceServer<rank::RankApi>>()
            .await;
        health
            .set_not_serving::<CatalogServiceServer<catalog::CatalogApi>>()
            .await;
        health
            .set_not_serving::<AdminServiceServer<admin::AdminApi>>()
            .await;
        let _ = draining_tx.send(());
    };
    let serve = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(rank)
        .add_service(catalog)
        .add_service(admin)
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
