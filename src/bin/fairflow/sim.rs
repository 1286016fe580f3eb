//! `fairflow simulate`, `evaluate` and `train`: the simulated ecosystem,
//! configs compared in it, and the model fitted on its log.

use crate::{config_name, load_engine, print_out, progress_bar};
use anyhow::Context;
use clap::{Args, ValueEnum};
use fairflow::catalog::Catalog;
use fairflow::config::Config;
use fairflow::domain::Scene;
use fairflow::model::Model;
use fairflow::sim::{self, CatalogSpec, OracleKnows, SimParams, report};
use fairflow::traffic::{OnError, TrafficReader, TrafficWriter};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct EvaluateArgs {
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    /// Days measured (after the warm-up).
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Days served by the first config before measuring; every config then
    /// starts from that same warm world (affinities, memories, controller).
    #[arg(long, default_value_t = 0)]
    warmup_days: u32,
    /// Share of brands taking part in the flow (enrolled; the others are
    /// paused), chosen by hash before any traffic, so participants can be
    /// compared with brands that are not.
    #[arg(long, default_value_t = 1.0)]
    enrolled_share: f64,
    /// Add a row for the oracle router (knows who remembers which brand,
    /// shows the best live one at slot 0, same budget and cap as the first
    /// config with the flow on) and each flow config's efficiency against it.
    #[arg(long)]
    oracle: bool,
    /// What the oracle picks among a user's remembered brands by: `value`,
    /// the ground truth's expected GMV for the user (the opportunity), or
    /// `memory`, only how fresh each memory is (what placement alone can
    /// reach without learning the user's taste).
    #[arg(long, value_enum, default_value_t = OracleKnowsArg::Value)]
    oracle_knows: OracleKnowsArg,
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
    #[command(flatten)]
    response: ResponseKnobs,
}

/// The ground truth's knobs an analyst may vary to see how a comparison
/// depends on them (defaults and what they reproduce: docs/simulator.md).
#[derive(Args)]
pub(crate) struct ResponseKnobs {
    /// Days over which a brand memory's lift halves.
    #[arg(long)]
    memory_half_life_days: Option<f64>,
    /// Log-odds of clicking lost per earlier impression of the same item.
    #[arg(long)]
    fatigue: Option<f64>,
    /// Hours over which an impression's fatigue halves.
    #[arg(long)]
    fatigue_half_life_hours: Option<f64>,
}

impl ResponseKnobs {
    /// `SimParams::new(seed, users)` with the knobs given applied.
    fn params(&self, seed: u64, users: usize) -> anyhow::Result<SimParams> {
        let mut params = SimParams::new(seed, users);
        let r = &mut params.response;
        let knobs = [
            (
                "--memory-half-life-days",
                self.memory_half_life_days,
                &mut r.flow_memory_half_life_days,
                false,
            ),
            ("--fatigue", self.fatigue, &mut r.fatigue, true),
            (
                "--fatigue-half-life-hours",
                self.fatigue_half_life_hours,
                &mut r.fatigue_half_life_hours,
                false,
            ),
        ];
        for (flag, value, field, zero_ok) in knobs {
            if let Some(v) = value {
                anyhow::ensure!(
                    v.is_finite() && (v > 0.0 || zero_ok && v == 0.0),
                    "{flag} must be {}, got {v}",
                    if zero_ok { "at least 0" } else { "positive" }
                );
                *field = v;
            }
        }
        Ok(params)
    }
}

#[derive(Args)]
pub(crate) struct SimulateArgs {
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
    #[command(flatten)]
    response: ResponseKnobs,
}

#[expect(clippy::disallowed_methods, reason = "the binary times its own run")]
pub(crate) fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
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
    let stats = catalog.stats(&Config::embedded_default()?.engine.tiers);
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
    let (_, engine) = load_engine(args.config.as_deref(), args.model.as_deref())?;
    let mut params = args.response.params(args.seed, args.users)?;
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

pub(crate) fn train(
    log: PathBuf,
    catalog: Option<PathBuf>,
    out: PathBuf,
    config: Option<PathBuf>,
    version: String,
    on_error: OnError,
) -> anyhow::Result<()> {
    let (_, engine) = load_engine(config.as_deref(), None)?;
    let catalog_dir =
        catalog.unwrap_or_else(|| log.parent().unwrap_or(Path::new(".")).join("catalog"));
    let mut catalog =
        Catalog::load_dir(&catalog_dir, engine.params().limits.max_id_bytes as usize)?;
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

/// `--oracle-knows`: see [`OracleKnows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OracleKnowsArg {
    Value,
    Memory,
}

pub(crate) fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    let EvaluateArgs {
        seed,
        users,
        days,
        warmup_days,
        enrolled_share,
        oracle,
        oracle_knows,
        configs,
        hourly,
        hindsight,
        frontier,
        scenes,
        response,
    } = args;
    anyhow::ensure!(
        (0.0..=1.0).contains(&enrolled_share),
        "--enrolled-share must be between 0 and 1, got {enrolled_share}"
    );
    let spec = CatalogSpec {
        seed,
        arrival_days: f64::from(warmup_days + days),
        ..CatalogSpec::default()
    };
    let start = sim::generate(&spec)?;
    let world = sim::World::build(&start, response.params(seed, users)?, spec.as_of);
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
                .filter(|&s| default.engine.quotas.applies_to(s))
                .collect()
        }
    };
    let engines = configs
        .iter()
        .map(|path| {
            Ok((
                config_name(path.as_deref()),
                load_engine(path.as_deref(), None)?.1,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let extras = report::Extras {
        hindsight,
        frontier,
        hourly,
    };
    let design = report::Design {
        warmup_days,
        enrolled_share,
        oracle: oracle.then_some(match oracle_knows {
            OracleKnowsArg::Value => OracleKnows::Value,
            OracleKnowsArg::Memory => OracleKnows::Memory,
        }),
    };
    let comparison = report::compare(&world, &start, &engines, days, &measured, design, extras);
    print_out(&comparison.to_string())
}

#[derive(Args)]
pub(crate) struct PowerlawArgs {
    /// Seeds 1..=N, each a fresh draw of the pages.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    #[arg(long, default_value_t = 1000)]
    streamers: usize,
    /// Requests measured.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Requests served before the measured ones, not measured: the
    /// controllers start warm.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    #[arg(long, default_value_t = 100)]
    candidates: usize,
    #[arg(long, default_value_t = 20)]
    slots: usize,
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Tier targets top,mid,small (the config's own targets are replaced).
    #[arg(long, default_value = "0.40,0.35,0.25")]
    targets: String,
    /// Spreading strengths to run, comma-separated.
    #[arg(long, default_value = "0,0.25,1,4")]
    strengths: String,
    /// FairCo gains to run beside them, comma-separated (none by default).
    #[arg(long, default_value = "")]
    fairco: String,
    /// Config whose quotas (floors, cap, position weights, controller step)
    /// are used (default: the embedded one).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn numbers(flag: &str, text: &str) -> anyhow::Result<Vec<f64>> {
    text.split(',')
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .with_context(|| format!("{flag}: `{x}` is not a number"))
        })
        .collect()
}

/// `fairflow powerlaw`: the exposure controller on a seeded head-heavy input
/// against the hindsight optimum and frontier on the same pages.
pub(crate) fn powerlaw(args: PowerlawArgs) -> anyhow::Result<()> {
    let targets = numbers("--targets", &args.targets)?;
    let targets: [f64; 3] = targets
        .try_into()
        .map_err(|_| anyhow::anyhow!("--targets takes three shares: top,mid,small"))?;
    anyhow::ensure!(
        targets.iter().all(|t| (0.0..=1.0).contains(t))
            && (targets.iter().sum::<f64>() - 1.0).abs() < 1e-6,
        "--targets must be shares in [0, 1] summing to 1, got {targets:?}"
    );
    let strengths = numbers("--strengths", &args.strengths)?;
    anyhow::ensure!(
        strengths.iter().all(|s| s.is_finite() && *s >= 0.0),
        "--strengths must be finite and not negative"
    );
    anyhow::ensure!(
        args.streamers >= 100 && args.candidates > args.streamers / 100,
        "--streamers must be at least 100 and --candidates more than the head (1%)"
    );
    let fairco = if args.fairco.is_empty() {
        Vec::new()
    } else {
        numbers("--fairco", &args.fairco)?
    };
    anyhow::ensure!(
        fairco.iter().all(|s| s.is_finite() && *s >= 0.0),
        "--fairco must be finite and not negative"
    );
    use sim::powerlaw::Contender;
    let policies: Vec<Contender> = strengths
        .iter()
        .map(|&spread_strength| Contender::Fairflow { spread_strength })
        .chain(fairco.iter().map(|&lambda| Contender::FairCo { lambda }))
        .collect();
    let mut quotas = Config::load(args.config.as_deref())?.engine.quotas;
    quotas.exposure.targets = Some(targets);
    let runs: Vec<sim::powerlaw::HeadToHead> = (1..=args.seeds)
        .map(|seed| {
            let spec = sim::powerlaw::PowerLawSpec {
                seed,
                streamers: args.streamers,
                warmup: args.warmup,
                requests: args.requests,
                candidates: args.candidates,
                slots: args.slots,
                zipf: args.zipf,
                ..Default::default()
            };
            sim::powerlaw::head_to_head(&spec, &quotas, &policies)
        })
        .collect();
    if args.json {
        print_out(&(serde_json::to_string_pretty(&runs)? + "\n"))
    } else {
        print_out(&sim::powerlaw::Summary(&runs).to_string())
    }
}
