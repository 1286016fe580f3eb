//! `fairflow serve`: the gRPC server until SIGINT or SIGTERM.

use anyhow::Context;
use fairflow::config::Config;
use fairflow::server::{self, State};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub(crate) async fn serve(
    config_path: Option<PathBuf>,
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    events_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    // SIGHUP's default action ends the process: take it over before
    // anything is announced, so one sent as soon as the server says it is
    // listening cannot kill it (the reload watcher reads its own stream).
    #[cfg(unix)]
    drop(tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::hangup(),
    )?);
    let config = Config::load(config_path.as_deref())?;
    let addr = listen.unwrap_or(config.server.listen);
    let metrics_addr = metrics_listen.or(config.server.metrics_listen);
    tracing::info!(config = %config.origin, version = %config.version, "config loaded");
    let state = State::load(config, config_path, events_dir)?;
    {
        let live = state.live();
        let stats = state.catalog.read().stats(&live.config.engine.tiers);
        tracing::info!(
            model = live.engine.model().version(),
            streamers = stats.streamers,
            goods = stats.goods,
            streams = stats.streams,
            live = stats.live_streams,
            "model and catalog loaded"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "listening");
    let metrics = match metrics_addr {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics endpoint {addr}"))?;
            tracing::info!(addr = %l.local_addr()?, "metrics at GET /metrics");
            Some(l)
        }
        None => None,
    };
    let listeners = server::Listeners {
        grpc: listener,
        metrics,
    };
    server::run(listeners, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
