//! The `fairflow` binary: `serve`, `simulate`, `check-config`.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use fairflow::config::Config;
use fairflow::load;
use fairflow::server::{self, State};
use fairflow::sim::{self, CatalogSpec};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "fairflow",
    version,
    about = "Traffic allocation for live-stream e-commerce"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server (Rank, Catalog, health, reflection).
    Serve {
        /// Config file; without it the embedded config/default.toml is used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding `server.listen` (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Generate a synthetic catalog (streamers, goods, streams) as JSONL files.
    Simulate {
        #[arg(long, default_value_t = CatalogSpec::default().seed)]
        seed: u64,
        /// Streamer accounts, brands' own included.
        #[arg(long, default_value_t = CatalogSpec::default().streamers)]
        streamers: usize,
        /// Mean goods per brand.
        #[arg(long, default_value_t = CatalogSpec::default().goods_per_brand)]
        goods_per_brand: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Send `Rank` load to a running server and report throughput and latency.
    Load {
        /// Server address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        /// Concurrent workers, one connection each.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Stop after this many requests.
        #[arg(long)]
        requests: Option<u64>,
        /// Candidates per request (half live streams, half goods from the demo catalog).
        #[arg(long, default_value_t = 200)]
        candidates: usize,
        #[arg(long, default_value_t = 20)]
        slots: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Validate a config file and print what it resolves to.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
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

async fn serve(config: Option<PathBuf>, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = Config::load(config.as_deref())?;
    let addr = listen.unwrap_or(config.server.listen);
    tracing::info!(config = %config.origin, version = %config.version, "config loaded");
    let state = State::load(config)?;
    {
        let engine = state.engine();
        let stats = state.catalog.read().stats(&engine.config().tiers);
        tracing::info!(
            model = engine.model().version(),
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
    server::run(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve { config, listen } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(config, listen)),
        Command::Simulate {
            seed,
            streamers,
            goods_per_brand,
            out,
        } => {
            let spec = CatalogSpec {
                seed,
                streamers,
                goods_per_brand,
                ..CatalogSpec::default()
            };
            let catalog = sim::generate(&spec).context("generating the catalog")?;
            catalog
                .write_dir(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            let stats = catalog.stats(&Config::embedded_default()?.tiers);
            println!(
                "wrote {}: {} streamers (top {}, mid {}, small {}), {} goods, {} streams ({} live)",
                out.display(),
                stats.streamers,
                stats.per_tier[0],
                stats.per_tier[1],
                stats.per_tier[2],
                stats.goods,
                stats.streams,
                stats.live_streams
            );
            Ok(())
        }
        Command::Load {
            addr,
            concurrency,
            seconds,
            requests,
            candidates,
            slots,
            seed,
        } => {
            let spec = load::LoadSpec {
                addr,
                concurrency: concurrency.max(1),
                duration: std::time::Duration::from_secs_f64(seconds),
                max_requests: requests,
                candidates,
                slots,
                seed,
            };
            let catalog = fairflow::catalog::Catalog::embedded_demo(128)?;
            let pool = load::request_pool(&catalog, &spec, 1024);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(load::run(spec.clone(), pool))?;
            println!(
                "load {} x{} ({} candidates, {} slots): {report}",
                spec.addr, spec.concurrency, spec.candidates, spec.slots
            );
            Ok(())
        }
        Command::CheckConfig { path } => {
            let config = Config::load(Some(&path))?;
            println!("{}: ok, version {}", path.display(), config.version);
            println!("{config:#?}");
            Ok(())
        }
    }
}
