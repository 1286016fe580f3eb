//! `fairflow serve`: the gRPC server until SIGINT or SIGTERM.

use anyhow::Context;
use fairflow::config::Config;
use fairflow::server::{self, State};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A future that resolves on SIGINT or SIGTERM. The handlers are in place
/// once this returns, not when the future is first polled: a signal sent as
/// soon as the server says it is listening is a clean stop, not the default
/// action's kill.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

pub(crate) async fn serve(
    config_path: Option<PathBuf>,
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    events_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    // SIGHUP's, SIGINT's and SIGTERM's default actions end the process:
    // take them over before anything is announced, so one sent as soon as
    // the server says it is listening cannot kill it (the reload watcher
    // reads its own SIGHUP stream).
    #[cfg(unix)]
    drop(tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::hangup(),
    )?);
    let shutdown = shutdown_signal()?;
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
    server::run(listeners, state, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}
