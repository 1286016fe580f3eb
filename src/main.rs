//! The `fairflow` binary: `serve`, `simulate`, `replay`, `convert`, `check-config`, ...

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use fairflow::catalog::Catalog;
use fairflow::config::Config;
use fairflow::domain::Scene;
use fairflow::engine::Engine;
use fairflow::load;
use fairflow::model::Model;
use fairflow::server::{self, State};
use fairflow::sim::SimParams;
use fairflow::sim::{self, CatalogSpec, report};
use fairflow::traffic::{self, OnError, TrafficReader, TrafficWriter};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

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

#[derive(Clone, Copy, ValueEnum)]
enum OnErrorArg {
    /// Report the line and go on.
    Skip,
    /// Stop at the first malformed line.
    Fail,
}

impl From<OnErrorArg> for OnError {
    fn from(a: OnErrorArg) -> OnError {
        match a {
            OnErrorArg::Skip => OnError::Skip,
            OnErrorArg::Fail => OnError::Fail,
        }
    }
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
        /// Metrics endpoint address, overriding `server.metrics_listen`.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Event log directory, overriding `events.dir`.
        #[arg(long)]
        events_dir: Option<PathBuf>,
    },
    /// Simulate the ecosystem: write DIR/catalog/*.jsonl and, with users,
    /// DIR/traffic.jsonl (the traffic log) and DIR/summary.json.
    Simulate(SimulateArgs),
    /// Fit the scoring model (logistic pCTR and pCVR heads) on a traffic log.
    Train {
        /// The traffic log (JSONL).
        #[arg(long)]
        log: PathBuf,
        /// The catalog the log refers to (default: `catalog/` beside the log).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Where to write the model file.
        #[arg(long)]
        out: PathBuf,
        /// Config used to compute features (default: embedded).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The model's version name.
        #[arg(long, default_value = "sim-v1")]
        version: String,
        /// What to do with a malformed log line.
        #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
        on_error: OnErrorArg,
    },
    /// Serve simulated traffic with the engine's own ranking under one or more
    /// configs (interactive: simulated users respond) and compare exposure
    /// shares, Gini, expected and simulated GMV, and the hindsight optimum.
    Evaluate(EvaluateArgs),
    /// Replay traffic logs through the engine under a config (and another to
    /// compare) and report exposure, Gini, expected GMV and the flow, beside
    /// what the log says was served (docs/replay.md).
    Replay(ReplayArgs),
    /// Convert a traffic log between JSONL and Parquet (docs/traffic-log.md).
    Convert(ConvertArgs),
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
        /// Hostile traffic instead: requests of this many empty candidates
        /// (2 bytes each on the wire), to see what refusing them costs.
        #[arg(long)]
        flood: Option<usize>,
    },
    /// Print the tier floor table (minimum slots per tier in every prefix) a
    /// config gives for a page length.
    Mtable {
        /// Config file (default: embedded).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Page length.
        #[arg(long, default_value_t = 20)]
        slots: usize,
    },
    /// Validate a config file and print a short summary of it.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
    /// Check or repair the event log (docs/events.md).
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Report every damage in an event log and exactly which acknowledged
    /// events a repair would drop. Exit 0: a server starts on it; 1: it
    /// refuses. Reads only.
    Check {
        /// The event log directory (`events.dir`).
        dir: PathBuf,
        /// List every record a repair would drop (default: the first 20 per damage).
        #[arg(long)]
        all: bool,
    },
    /// Cut the log at one damage `check` reported; what is cut moves to
    /// DIR/dropped/, nothing is deleted.
    Repair {
        dir: PathBuf,
        /// Where to cut, as `check` prints it: FILE:OFFSET.
        #[arg(long)]
        at: String,
    },
}

/// Writes to stdout; a reader that went away (`| head`) ends the output
/// quietly instead of a panic.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn events(command: EventsCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        EventsCommand::Check { dir, all } => {
            let report = fairflow::events::check(&dir)?;
            print_out(&report.render(&dir, (!all).then_some(20)))?;
            Ok(if report.starts() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        EventsCommand::Repair { dir, at } => {
            let (file, offset) = at
                .rsplit_once(':')
                .and_then(|(f, o)| Some((f, o.parse::<u64>().ok()?)))
                .with_context(|| {
                    format!("--at {at}: expected FILE:OFFSET, as `fairflow events check` prints it")
                })?;
            let repaired = fairflow::events::repair(&dir, Path::new(file), offset)?;
            let lost: Vec<_> = repaired.damage.lost().collect();
            let mut text = format!(
                "cut {at}: dropped {} acknowledged records not in the snapshot, kept in {}\n",
                lost.len(),
                repaired.kept_in.display()
            );
            for r in lost {
                text.push_str(&format!("    {}\n", r.name));
            }
            text.push_str("a server now starts on this log\n");
            print_out(&text)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn init_logging(format: LogFormat) {
    server::logging::init(matches!(format, LogFormat::Json));
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

async fn serve(
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

/// An engine from a config file (or the embedded default) and, optionally, a
/// model file overriding the config's.
fn load_engine(config: Option<&Path>, model: Option<&Path>) -> anyhow::Result<Engine> {
    let config = Config::load(config)?;
    let model = match model {
        Some(path) => Model::load(path)?,
        None => Model::from_source(&config.model)?,
    };
    Ok(Engine::new(Arc::new(config), Arc::new(model)))
}

/// A progress bar on a terminal, nothing otherwise (or when asked for quiet).
fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

#[derive(Args)]
struct ReplayArgs {
    /// Traffic logs: JSONL files, directories of `traffic-*.jsonl` files,
    /// Parquet logs (`fairflow convert`).
    #[arg(long = "log", required = true)]
    logs: Vec<PathBuf>,
    /// The config to replay under (default: the embedded one). Its catalog
    /// and model are used for both configs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The catalog directory the log's requests refer to, in place of the
    /// config's (with `--interactive`, in place of the simulated world's).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// A second config, reported beside the first with the difference.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Where `report.json` goes (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Shards (replicas) users are split over, each with its own state.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Write every replayed ranking of the first config: Parquet when the
    /// name ends in `.parquet`, JSON lines otherwise.
    #[arg(long)]
    write_rankings: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Start every shard's chuanliu flow from a server's snapshot: a
    /// `snapshot-*.bin` file, or an events directory (its newest one).
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Simulated users answer every replayed page (and the logged one), so
    /// clicks, purchases and GMV are measured; needs a log written by
    /// `fairflow simulate`.
    #[arg(long)]
    interactive: bool,
    /// Largest importance weight in the off-policy estimates.
    #[arg(long, default_value_t = 100.0)]
    max_weight: f64,
    /// What to do with a malformed log line.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum EncodingArg {
    /// A directory with one Parquet file per record type.
    Parquet,
    /// One JSON record per line.
    Jsonl,
}

#[derive(Args)]
struct ConvertArgs {
    /// Logs to read, as replay names them: JSONL files, directories of
    /// `traffic-*.jsonl` files, Parquet logs. Read in the order given.
    #[arg(long = "log", required = true)]
    logs: Vec<PathBuf>,
    /// The log to write; must not exist yet.
    #[arg(long)]
    out: PathBuf,
    /// The encoding to write.
    #[arg(long, value_enum, default_value_t = EncodingArg::Parquet)]
    to: EncodingArg,
    /// What to do with a malformed log line.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,
}

#[expect(clippy::disallowed_methods, reason = "the binary times its own run")]
fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let to = match args.to {
        EncodingArg::Parquet => traffic::Encoding::Parquet,
        EncodingArg::Jsonl => traffic::Encoding::Jsonl,
    };
    let converted = traffic::convert(&args.logs, &args.out, to, args.on_error.into())?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = disk_usage(&args.out)?;
    print!(
        "wrote {}: {} records, {:.1} MB in {seconds:.1} s",
        args.out.display(),
        converted.records,
        bytes as f64 / 1e6
    );
    if let Some(t) = converted.tables {
        print!(
            " (rank {}, impression {}, click {}, purchase {}, stream_status {})",
            t.rank, t.impression, t.click, t.purchase, t.stream_status
        );
    }
    println!();
    if converted.unknown > 0 || converted.skipped > 0 {
        println!(
            "dropped {} records of unknown types and skipped {} malformed lines",
            converted.unknown, converted.skipped
        );
    }
    Ok(())
}

/// Bytes in a file, or in the files of a directory.
fn disk_usage(path: &Path) -> std::io::Result<u64> {
    if !path.is_dir() {
        return Ok(std::fs::metadata(path)?.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

#[derive(Args)]
struct EvaluateArgs {
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Config files to compare (default: the embedded one).
    #[arg(long = "config")]
    configs: Vec<PathBuf>,
    /// Also print exposure shares per local hour.
    #[arg(long)]
    hourly: bool,
    /// Solve the hindsight optimum on each config's pages (tier prices
    /// hitting its targets exactly) and report how close the config came.
    #[arg(long)]
    hindsight: bool,
    /// Trace the hindsight fairness/value frontier on the first config's
    /// pages, with its tier targets, and place every config against it.
    #[arg(long)]
    frontier: bool,
    /// Scenes measured, comma-separated (default: the embedded config's
    /// quota scenes).
    #[arg(long)]
    scenes: Option<String>,
}

#[derive(Args)]
struct SimulateArgs {
    #[arg(long, default_value_t = CatalogSpec::default().seed)]
    seed: u64,
    /// Simulated users (0 writes the catalog only).
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Candidates per request from the retrieval model.
    #[arg(long, default_value_t = 200)]
    candidates: usize,
    /// Streamer accounts, brands' own included.
    #[arg(long, default_value_t = CatalogSpec::default().streamers)]
    streamers: usize,
    /// Mean goods per brand.
    #[arg(long, default_value_t = CatalogSpec::default().goods_per_brand)]
    goods_per_brand: usize,
    /// Temperature of the Plackett-Luce logging policy (lower: closer to the ranking).
    #[arg(long, default_value_t = 0.5)]
    temperature: f64,
    /// Config of the logging policy's engine (default: embedded).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model of the logging policy's engine (default: the config's).
    #[arg(long)]
    model: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

#[expect(clippy::disallowed_methods, reason = "the binary times its own run")]
fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let spec = CatalogSpec {
        seed: args.seed,
        streamers: args.streamers,
        goods_per_brand: args.goods_per_brand,
        arrival_days: if args.users > 0 {
            f64::from(args.days)
        } else {
            0.0
        },
        ..CatalogSpec::default()
    };
    let mut catalog = sim::generate(&spec).context("generating the catalog")?;
    let catalog_dir = args.out.join("catalog");
    catalog
        .write_dir(&catalog_dir)
        .with_context(|| format!("writing {}", catalog_dir.display()))?;
    let stats = catalog.stats(&Config::embedded_default()?.tiers);
    println!(
        "wrote {}: {} streamers (top {}, mid {}, small {}), {} goods, {} streams",
        catalog_dir.display(),
        stats.streamers,
        stats.per_tier[0],
        stats.per_tier[1],
        stats.per_tier[2],
        stats.goods,
        stats.streams,
    );
    if args.users == 0 {
        return Ok(());
    }
    anyhow::ensure!(args.temperature > 0.0, "--temperature must be positive");
    let engine = load_engine(args.config.as_deref(), args.model.as_deref())?;
    let mut params = SimParams::new(args.seed, args.users);
    params.candidates = args.candidates;
    params.policy_temperature = args.temperature;
    let world = sim::World::build(&catalog, params, spec.as_of);
    let log_path = args.out.join("traffic.jsonl");
    let file = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut writer = TrafficWriter::new(file);
    let bar = progress_bar(u64::from(args.days) * 144, args.quiet);
    let summary = sim::simulate(
        &spec,
        &world,
        &engine,
        &mut catalog,
        args.days,
        &mut writer,
        &|done, _| bar.set_position(done),
    )?;
    writer.finish()?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let report = serde_json::json!({ "summary": summary, "seconds": seconds });
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!(
        "wrote {}: {} requests ({} candidates), {} impressions, {} clicks, {} purchases, GMV {:.0} yuan; {} records, {:.1} MB in {:.1}s ({:.0} requests/s)",
        log_path.display(),
        summary.requests,
        summary.candidates,
        summary.outcome.impressions,
        summary.outcome.clicks,
        summary.outcome.purchases,
        summary.outcome.gmv,
        summary.records,
        summary.bytes as f64 / 1e6,
        seconds,
        summary.requests as f64 / seconds,
    );
    Ok(())
}

fn train(
    log: PathBuf,
    catalog: Option<PathBuf>,
    out: PathBuf,
    config: Option<PathBuf>,
    version: String,
    on_error: OnError,
) -> anyhow::Result<()> {
    let engine = load_engine(config.as_deref(), None)?;
    let catalog_dir =
        catalog.unwrap_or_else(|| log.parent().unwrap_or(Path::new(".")).join("catalog"));
    let mut catalog =
        Catalog::load_dir(&catalog_dir, engine.config().limits.max_id_bytes as usize)?;
    let file = std::fs::File::open(&log).with_context(|| format!("opening {}", log.display()))?;
    let mut reader = TrafficReader::new(
        std::io::BufReader::new(file),
        log.display().to_string(),
        on_error,
    );
    let params = fairflow::train::TrainParams {
        version,
        ..Default::default()
    };
    let trained = fairflow::train::train(
        &engine,
        &mut catalog,
        reader.by_ref().map(|r| r.map(|(_, rec)| rec)),
        &params,
    );
    // Report what was skipped whether or not training then succeeded.
    for skipped in reader.skipped() {
        eprintln!("skipped {skipped}");
    }
    if reader.skipped_count() > reader.skipped().len() {
        eprintln!(
            "... {} malformed lines skipped in all",
            reader.skipped_count()
        );
    }
    let (model, report) = trained?;
    // Check that what we write is a model the service loads.
    let text = serde_json::to_string_pretty(&model)? + "\n";
    Model::from_json(&text, &out.display().to_string())?;
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    let EvaluateArgs {
        seed,
        users,
        days,
        configs,
        hourly,
        hindsight,
        frontier,
        scenes,
    } = args;
    let spec = CatalogSpec {
        seed,
        arrival_days: f64::from(days),
        ..CatalogSpec::default()
    };
    let start = sim::generate(&spec)?;
    let world = sim::World::build(&start, SimParams::new(seed, users), spec.as_of);
    let configs: Vec<Option<PathBuf>> = if configs.is_empty() {
        vec![None]
    } else {
        configs.into_iter().map(Some).collect()
    };
    let measured = match scenes {
        Some(names) => names
            .split(',')
            .map(|n| Scene::from_name(n.trim()).with_context(|| format!("unknown scene `{n}`")))
            .collect::<anyhow::Result<Vec<Scene>>>()?,
        None => {
            let default = Config::embedded_default()?;
            Scene::ALL
                .into_iter()
                .filter(|&s| default.quotas.applies_to(s))
                .collect()
        }
    };
    let engines = configs
        .iter()
        .map(|path| {
            Ok((
                config_name(path.as_deref()),
                load_engine(path.as_deref(), None)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let extras = report::Extras {
        hindsight,
        frontier,
        hourly,
    };
    let comparison = report::compare(&world, &start, &engines, days, &measured, extras);
    print_out(&comparison.to_string())
}

/// A config's name in reports: its file name.
fn config_name(path: Option<&Path>) -> String {
    path.and_then(|p| p.file_name())
        .map_or("<embedded>".to_string(), |f| {
            f.to_string_lossy().into_owned()
        })
}

#[expect(clippy::disallowed_methods, reason = "the binary times its own run")]
fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    use fairflow::replay::{self, report};
    let ReplayArgs {
        logs,
        catalog,
        config,
        compare,
        out,
        shards,
        write_rankings,
        quiet,
        snapshot,
        interactive,
        max_weight,
        on_error,
    } = args;
    anyhow::ensure!(
        max_weight >= 1.0,
        "--max-weight must be at least 1 (got {max_weight})"
    );
    anyhow::ensure!(shards >= 1, "--shards must be at least 1");
    let catalog_given = catalog.is_some();
    // Everything that can be refused is checked before any work.
    let a = load_engine(config.as_deref(), None)?;
    let b = compare
        .as_deref()
        .map(|p| load_engine(Some(p), None))
        .transpose()?;
    let max_id = a.config().limits.max_id_bytes as usize;
    let source = catalog.map_or_else(
        || a.config().catalog.clone(),
        fairflow::catalog::CatalogSource::Dir,
    );
    let given = Catalog::from_source(&source, max_id)?;
    let start = snapshot
        .as_deref()
        .map(replay::StartState::read)
        .transpose()?;
    let started = std::time::Instant::now();
    let log = replay::read(&logs, on_error.into())?;
    let read_seconds = started.elapsed().as_secs_f64();
    let responder = interactive
        .then(|| replay::Responder::from_header(log.header.as_ref()))
        .transpose()?;
    // A simulated world's users answer about its own catalog, so that is
    // the one ranked against unless one is named.
    let catalog = match &responder {
        Some(r) if !catalog_given => r.catalog(),
        _ => &given,
    };
    let requests = log.requests();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let run = |engine: &Engine, keep_rankings: bool, label: &str| {
        let bar = progress_bar(requests, quiet);
        bar.set_message(label.to_string());
        let done = std::sync::atomic::AtomicU64::new(0);
        let options = replay::Options {
            shards,
            keep_rankings,
            responder: responder.as_ref(),
            start: start.as_ref(),
        };
        let started = std::time::Instant::now();
        let replayed = std::thread::scope(|s| {
            let worker = s.spawn(|| replay::run(engine, catalog, &log, &options, &done));
            while !worker.is_finished() {
                bar.set_position(done.load(std::sync::atomic::Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            worker.join().expect("replay does not panic")
        });
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{label}: replayed {requests} requests in {seconds:.2} s ({:.0} requests/s)",
            requests as f64 / seconds
        );
        replayed
    };
    eprintln!(
        "read {} steps from {} file(s) in {read_seconds:.2} s",
        log.steps.len(),
        log.files.len()
    );
    if let Some(r) = &responder {
        eprintln!(
            "interactive: {} simulated users answer the pages",
            r.users()
        );
    }
    if let Some(s) = &start {
        eprintln!(
            "each shard's flow starts from {} (event log position {})",
            s.path.display(),
            s.seq
        );
    }
    let replayed_a = run(&a, write_rankings.is_some(), "A");
    let report_a =
        report::PolicyReport::of(&a, config_name(config.as_deref()), &replayed_a, max_weight);
    let report_b = b.as_ref().map(|b| {
        let r = run(b, false, "B");
        report::PolicyReport::of(b, config_name(compare.as_deref()), &r, max_weight)
    });
    let report = report::Report::new(&log, shards, report_a, report_b);
    if let Some(path) = &write_rankings {
        report::write_rankings(path, replayed_a.rankings)?;
    }
    let (path, charts) = report.write(&out)?;
    print!("{report}");
    println!(
        "wrote {} and charts ({}, lorenz) as SVG and PNG",
        path.display(),
        charts.join(", ")
    );
    Ok(())
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    run(cli.command)
}

fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    let done: anyhow::Result<()> = match command {
        // The one command whose exit code says more than success.
        Command::Events(command) => return events(command),
        Command::Serve {
            config,
            listen,
            metrics_listen,
            events_dir,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(config, listen, metrics_listen, events_dir)),
        Command::Simulate(args) => simulate(args),
        Command::Train {
            log,
            catalog,
            out,
            config,
            version,
            on_error,
        } => train(log, catalog, out, config, version, on_error.into()),
        Command::Evaluate(args) => evaluate(args),
        Command::Replay(args) => replay(args),
        Command::Convert(args) => convert(args),
        Command::Load {
            addr,
            concurrency,
            seconds,
            requests,
            candidates,
            slots,
            seed,
            flood,
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
            let pool = match flood {
                Some(n) => load::flood_pool(&spec, n),
                None => load::request_pool(&catalog, &spec, 1024),
            };
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
        Command::Mtable { config, slots } => {
            let config = Config::load(config.as_deref())?;
            let table = config.quotas.floors.table(slots);
            println!("floors: {:?}", config.quotas.floors);
            if let Some(alpha_c) = table.alpha_c {
                println!("corrected alpha (top, mid, small): {alpha_c:?}");
            }
            println!("{:>6} {:>5} {:>5} {:>5}", "prefix", "top", "mid", "small");
            for i in 1..=slots {
                let [top, mid, small] = [0, 1, 2].map(|t| table.table[t][i - 1]);
                println!("{i:>6} {top:>5} {mid:>5} {small:>5}");
            }
            Ok(())
        }
        Command::CheckConfig { path } => {
            let config = Config::load(Some(&path))?;
            print_out(&format!("{}: ok\n{}", path.display(), config.summary()))
        }
    };
    done.map(|()| std::process::ExitCode::SUCCESS)
}
