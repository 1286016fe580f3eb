//! The `fairflow` binary: `serve`, `simulate`, `replay`, `convert`,
//! `check-config`, ... Arguments are parsed here and each command's work is
//! the library's; the files beside this one hold the longer commands'
//! arguments and their printing.

mod events;
mod replay;
mod serve;
mod sim;

use clap::{Parser, Subcommand, ValueEnum};
use fairflow::config::Config;
use fairflow::engine::Engine;
use fairflow::load;
use fairflow::model::Model;
use fairflow::server;
use fairflow::traffic::OnError;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every command allocates many small, short-lived buffers (a `Rank` a few
/// hundred); mimalloc's thread-local free lists serve them without glibc's
/// arena locks and consolidation passes (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
pub(crate) enum OnErrorArg {
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
    Simulate(sim::SimulateArgs),
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
    Evaluate(sim::EvaluateArgs),
    /// Run the exposure controller on a seeded head-heavy input (Zipf
    /// popularity, tiers 1/19/80, a head every user prefers) against the
    /// hindsight optimum and frontier solved on the same pages.
    Powerlaw(sim::PowerlawArgs),
    /// Replay traffic logs through the engine under a config (and another to
    /// compare) and report exposure, Gini, expected GMV and the flow, beside
    /// what the log says was served (docs/replay.md).
    Replay(replay::ReplayArgs),
    /// Convert a traffic log between JSONL and Parquet (docs/traffic-log.md).
    Convert(replay::ConvertArgs),
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
        /// Requests from this many users only, each first sent one purchase
        /// through an influencer (EventService.Ingest), so the flow can act
        /// on every request where the brands take part (enrolled, or
        /// `chuanliu.enroll_all_brands`): measures the flow's path (and a
        /// fleet replica's Redis cap holds). The report counts flow slots.
        #[arg(long)]
        buyers: Option<u64>,
        /// Write the requests as encoded `RankRequest` files
        /// (`req-0000.bin` ...) into this directory and send nothing: the
        /// payloads an independent load generator sends.
        #[arg(long)]
        write_payloads: Option<PathBuf>,
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
        /// FA*IR only: print the table at the configured alpha itself, as
        /// well, without the correction for testing every prefix.
        #[arg(long)]
        no_adjust: bool,
    },
    /// Validate a config file and print a short summary of it.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
    /// Check or repair the event log (docs/events.md).
    #[command(subcommand)]
    Events(events::EventsCommand),
}

/// Writes to stdout; a reader that went away (`| head`) ends the output
/// quietly instead of a panic.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn init_logging(format: LogFormat) {
    server::logging::init(matches!(format, LogFormat::Json));
}

/// A config file (or the embedded default) and the engine it builds with
/// its model, or a model file overriding the config's.
pub(crate) fn load_engine(
    config: Option<&Path>,
    model: Option<&Path>,
) -> anyhow::Result<(Config, Engine)> {
    let config = Config::load(config)?;
    let model = match model {
        Some(path) => Model::load(path)?,
        None => Model::from_source(&config.model)?,
    };
    let engine = Engine::new(config.engine.clone(), model.into());
    Ok((config, engine))
}

/// A progress bar on a terminal, nothing otherwise (or when asked for quiet).
pub(crate) fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
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

/// A config's name in reports: its file name.
pub(crate) fn config_name(path: Option<&Path>) -> String {
    path.and_then(|p| p.file_name())
        .map_or("<embedded>".to_string(), |f| {
            f.to_string_lossy().into_owned()
        })
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    run(cli.command)
}

fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    let done: anyhow::Result<()> = match command {
        // The one command whose exit code says more than success.
        Command::Events(command) => return events::events(command),
        Command::Serve {
            config,
            listen,
            metrics_listen,
            events_dir,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve::serve(config, listen, metrics_listen, events_dir)),
        Command::Simulate(args) => sim::simulate(args),
        Command::Train {
            log,
            catalog,
            out,
            config,
            version,
            on_error,
        } => sim::train(log, catalog, out, config, version, on_error.into()),
        Command::Evaluate(args) => sim::evaluate(args),
        Command::Powerlaw(args) => sim::powerlaw(args),
        Command::Replay(args) => replay::replay(args),
        Command::Convert(args) => replay::convert(args),
        Command::Load {
            addr,
            concurrency,
            seconds,
            requests,
            candidates,
            slots,
            seed,
            flood,
            buyers,
            write_payloads,
        } => {
            let spec = load::LoadSpec {
                addr,
                concurrency: concurrency.max(1),
                duration: std::time::Duration::from_secs_f64(seconds),
                max_requests: requests,
                candidates,
                slots,
                seed,
                users: buyers,
            };
            let catalog = fairflow::catalog::Catalog::embedded_demo(128)?;
            let pool = match flood {
                Some(n) => load::flood_pool(&spec, n),
                None => load::request_pool(&catalog, &spec, 1024),
            };
            if let Some(dir) = write_payloads {
                let n = load::write_payloads(&dir, &pool)?;
                println!("{n} requests written to {}", dir.display());
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            if let Some(users) = buyers {
                let taken = runtime.block_on(load::ingest_buyers(&spec.addr, &catalog, users))?;
                println!("{taken} buyers' purchases ingested");
            }
            let report = runtime.block_on(load::run(spec.clone(), pool))?;
            println!(
                "load {} x{} ({} candidates, {} slots): {report}",
                spec.addr, spec.concurrency, spec.candidates, spec.slots
            );
            Ok(())
        }
        Command::Mtable {
            config,
            slots,
            no_adjust,
        } => {
            let config = Config::load(config.as_deref())?;
            let floors = &config.engine.quotas.floors;
            let table = floors.table(slots);
            println!("floors: {floors:?}");
            if let Some(alpha_c) = table.alpha_c {
                println!("corrected alpha (top, mid, small): {alpha_c:?}");
            }
            let raw = if no_adjust {
                let raw = floors.unadjusted_table(slots);
                if raw.is_none() {
                    println!("--no-adjust: only FA*IR floors have an adjustment");
                }
                raw
            } else {
                None
            };
            let row =
                |t: &fairflow::allocate::MTable, i: usize| [0, 1, 2].map(|k| t.table[k][i - 1]);
            match &raw {
                Some(_) => println!(
                    "{:>6} {:>5} {:>5} {:>5}   unadjusted: {:>5} {:>5} {:>5}",
                    "prefix", "top", "mid", "small", "top", "mid", "small"
                ),
                None => println!("{:>6} {:>5} {:>5} {:>5}", "prefix", "top", "mid", "small"),
            }
            for i in 1..=slots {
                let [top, mid, small] = row(&table, i);
                match &raw {
                    Some(raw) => {
                        let [rt, rm, rs] = row(raw, i);
                        println!(
                            "{i:>6} {top:>5} {mid:>5} {small:>5}               {rt:>5} {rm:>5} {rs:>5}"
                        );
                    }
                    None => println!("{i:>6} {top:>5} {mid:>5} {small:>5}"),
                }
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
