//! `fairflow replay` and `fairflow convert`: traffic logs through the
//! engine, and between their encodings.

use crate::{OnErrorArg, config_name, load_engine, progress_bar};
use anyhow::Context;
use clap::{Args, ValueEnum};
use fairflow::catalog::Catalog;
use fairflow::engine::Engine;
use fairflow::traffic;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct ReplayArgs {
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
    /// The policy the per-impression estimates evaluate: `engine` (the
    /// replayed pages), `epsilon-greedy:E` (a random order of the
    /// candidates with probability E, else the replayed page) or
    /// `plackett-luce:T[:SAMPLES]` (pages drawn with weights
    /// score^(1/T); exact at slot 0, SAMPLES seeded draws below it,
    /// default 1000).
    #[arg(long, default_value = "engine", value_parser = replay_policy)]
    policy: fairflow::replay::ope::TargetPolicy,
    /// The per-impression reward model of DM and DR: `item-position` or
    /// `item`.
    #[arg(long, default_value = "item-position")]
    reward_model: fairflow::replay::ope::position::RewardModel,
    /// Write the first config's per-impression rounds, with the target's
    /// probabilities and the reward model's values, as JSON (what
    /// `scripts/obp_reference.py` reads).
    #[arg(long)]
    ope_export: Option<PathBuf>,
    /// Solve the hindsight optimum (exact tier shares) and the value/Gini
    /// frontier on each config's replayed pages of quota scenes, and report
    /// its value as a share of each.
    #[arg(long)]
    hindsight: bool,
    /// What to do with a malformed log line.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,
    /// Replay only the requests the log says ran under this experiment arm
    /// (`experiment:arm`).
    #[arg(long)]
    arm: Option<String>,
    /// Rank every replayed request under this variant of the config's
    /// experiments (`experiment:arm`, arms of several experiments joined by
    /// `,`; `base` for none), whatever the user's own: with `--arm`, one
    /// arm's traffic under another arm's config.
    #[arg(long)]
    as_arm: Option<String>,
}

/// How a replay under `config` treats experiments: each user under their
/// arm (or all under variant `forced`), `only` the requests of one arm;
/// `None` for a config without experiments and no `--arm`.
fn arms_of<'a>(
    config: &'a fairflow::config::Config,
    engines: &'a [Engine],
    only: Option<&'a str>,
    forced: Option<usize>,
) -> Option<fairflow::replay::Arms<'a>> {
    (!config.experiments.is_empty() || only.is_some()).then_some(fairflow::replay::Arms {
        experiments: &config.experiments,
        engines,
        only,
        as_variant: forced,
    })
}

/// The targets of the variant labelled `label` in `config` (each arm
/// measured against its own).
fn arm_targets(config: &fairflow::config::Config, label: &str) -> Option<[f64; 3]> {
    config
        .experiments
        .find(label)?
        .engine
        .quotas
        .exposure
        .targets
}

/// The engine of every variant of `config`'s experiments, on `engine`'s
/// model.
fn variant_engines(config: &fairflow::config::Config, engine: &Engine) -> Vec<Engine> {
    let model = std::sync::Arc::new(engine.model().clone());
    config
        .experiments
        .variants()
        .iter()
        .map(|v| Engine::new(v.engine.clone(), model.clone()))
        .collect()
}

#[expect(clippy::disallowed_methods, reason = "the binary times its own run")]
pub(crate) fn replay(args: ReplayArgs) -> anyhow::Result<()> {
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
        policy,
        reward_model,
        ope_export,
        hindsight,
        on_error,
        arm,
        as_arm,
    } = args;
    let ope = replay::ope::Settings {
        max_weight,
        reward_model,
    };
    anyhow::ensure!(
        max_weight >= 1.0,
        "--max-weight must be at least 1 (got {max_weight})"
    );
    anyhow::ensure!(shards >= 1, "--shards must be at least 1");
    let catalog_given = catalog.is_some();
    // Everything that can be refused is checked before any work.
    let (a_config, a) = load_engine(config.as_deref(), None)?;
    let b_loaded = compare
        .as_deref()
        .map(|p| load_engine(Some(p), None))
        .transpose()?;
    let (b_config, b) = b_loaded.unzip();
    if let Some(arm) = &arm {
        anyhow::ensure!(
            arm.split_once(':')
                .is_some_and(|(e, a)| !e.is_empty() && !a.is_empty()),
            "--arm {arm}: an arm is named `experiment:arm`"
        );
    }
    // Each config ranks its users under their own arms (or all under
    // `--as-arm`), with one controller per variant, as a server does.
    let a_variants = variant_engines(&a_config, &a);
    let b_variants = b_config
        .as_ref()
        .zip(b.as_ref())
        .map(|(c, e)| variant_engines(c, e));
    let forced = |c: &fairflow::config::Config, name: &str| -> anyhow::Result<Option<usize>> {
        let Some(label) = &as_arm else {
            return Ok(None);
        };
        let labels: Vec<&str> = c
            .experiments
            .variants()
            .iter()
            .map(|v| v.label.as_str())
            .collect();
        match labels.iter().position(|l| l == label) {
            Some(i) => Ok(Some(i)),
            None => anyhow::bail!(
                "--as-arm {label}: {name} has no such variant (it has: {})",
                labels.join(", ")
            ),
        }
    };
    let a_forced = forced(&a_config, &config_name(config.as_deref()))?;
    let b_forced = b_config
        .as_ref()
        .map(|c| forced(c, &config_name(compare.as_deref())))
        .transpose()?
        .flatten();
    let max_id = a.params().limits.max_id_bytes as usize;
    let source = catalog.map_or_else(
        || a_config.catalog.clone(),
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

    let a_arms = arms_of(&a_config, &a_variants, arm.as_deref(), a_forced);
    let b_arms = b_config
        .as_ref()
        .zip(b_variants.as_deref())
        .and_then(|(c, e)| arms_of(c, e, arm.as_deref(), b_forced));
    let run = |engine: &Engine, arms: Option<replay::Arms>, keep_rankings: bool, label: &str| {
        let bar = progress_bar(requests, quiet);
        bar.set_message(label.to_string());
        let done = std::sync::atomic::AtomicU64::new(0);
        let options = replay::Options {
            shards,
            keep_rankings,
            responder: responder.as_ref(),
            start: start.as_ref(),
            hindsight,
            target: policy,
            arms,
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
    let replayed_a = run(&a, a_arms, write_rankings.is_some(), "A");
    let report_a = report::PolicyReport::of(&a, config_name(config.as_deref()), &replayed_a, &ope)
        .with_arm_targets(&replayed_a, |label| arm_targets(&a_config, label));
    let report_b = b.as_ref().zip(b_config.as_ref()).map(|(b, c)| {
        let r = run(b, b_arms, false, "B");
        report::PolicyReport::of(b, config_name(compare.as_deref()), &r, &ope)
            .with_arm_targets(&r, |label| arm_targets(c, label))
    });
    let report = report::Report::new(&log, shards, report_a, report_b);
    if let Some(path) = &ope_export {
        let export = replay::ope::position::export(
            &replayed_a.rounds,
            log.item_ids(),
            max_weight,
            reward_model,
        );
        let json = serde_json::to_vec(&export)?;
        report::write_atomically(path, &json)
            .with_context(|| format!("writing {}", path.display()))?;
    }
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

fn replay_policy(s: &str) -> Result<fairflow::replay::ope::TargetPolicy, String> {
    fairflow::replay::ope::TargetPolicy::parse(s)
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum EncodingArg {
    /// A directory with one Parquet file per record type.
    Parquet,
    /// One JSON record per line.
    Jsonl,
}

#[derive(Args)]
pub(crate) struct ConvertArgs {
    /// Logs to read, as replay names them: JSONL files, directories of
    /// `traffic-*.jsonl` files, Parquet logs. Read in the order given.
    #[arg(long = "log", required_unless_present = "csv", conflicts_with = "csv")]
    logs: Vec<PathBuf>,
    /// A CSV of impressions (one row per impression, as public bandit
    /// datasets publish them) to import: `--out` becomes a directory with
    /// `traffic.jsonl` and the `catalog/` of its items.
    #[arg(long)]
    csv: Option<PathBuf>,
    #[command(flatten)]
    columns: CsvColumnArgs,
    /// The log to write (with `--csv`, the directory); must not exist yet.
    #[arg(long)]
    out: PathBuf,
    /// The encoding to write.
    #[arg(long, value_enum, default_value_t = EncodingArg::Parquet)]
    to: EncodingArg,
    /// What to do with a malformed log line.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,
}

/// The columns of an impression CSV (`convert --csv`).
#[derive(Args)]
pub(crate) struct CsvColumnArgs {
    /// The column of each impression's time: Unix milliseconds, or a date
    /// and time such as `2019-11-24 00:00:17.967439+00:00`.
    #[arg(long, default_value = "timestamp")]
    timestamp_column: String,
    #[arg(long, default_value = "item_id")]
    item_column: String,
    #[arg(long, default_value = "position")]
    position_column: String,
    /// The CSV's first position: 1 when its positions count from 1.
    #[arg(long, default_value_t = 0)]
    position_base: u32,
    /// 0 or 1.
    #[arg(long, default_value = "click")]
    click_column: String,
    /// The logging policy's probability of the item at that position.
    #[arg(long, default_value = "propensity")]
    propensity_column: String,
    /// The user of each impression (else one anonymous user).
    #[arg(long)]
    user_column: Option<String>,
    /// Consecutive rows with one value of this column are one request's
    /// page (else every row is its own request).
    #[arg(long)]
    request_column: Option<String>,
    /// The scene the imported requests are ranked as.
    #[arg(long, default_value = "recommend", value_parser = scene)]
    scene: fairflow::domain::Scene,
}

fn scene(s: &str) -> Result<fairflow::domain::Scene, String> {
    fairflow::domain::Scene::from_name(s)
        .ok_or_else(|| format!("`{s}` is not a scene (recommend, follow, mall, search or shop)"))
}

fn import_csv(csv: &Path, out: &Path, c: CsvColumnArgs) -> anyhow::Result<()> {
    let import = traffic::CsvImport {
        columns: traffic::CsvColumns {
            timestamp: c.timestamp_column,
            item: c.item_column,
            position: c.position_column,
            click: c.click_column,
            propensity: c.propensity_column,
            user: c.user_column,
            request: c.request_column,
        },
        position_base: c.position_base,
        scene: c.scene,
    };
    let done = traffic::import_csv(csv, out, &import)?;
    println!(
        "wrote {}: {} impressions in {} requests ({} clicks) over {} items and {} slots; \
         replay it with --log {}/traffic.jsonl --catalog {}/catalog",
        out.display(),
        done.rows,
        done.requests,
        done.clicks,
        done.items,
        done.slots,
        out.display(),
        out.display()
    );
    Ok(())
}

#[expect(clippy::disallowed_methods, reason = "the binary times its own run")]
pub(crate) fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    if let Some(csv) = &args.csv {
        return import_csv(csv, &args.out, args.columns);
    }
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
pub(crate) fn disk_usage(path: &Path) -> std::io::Result<u64> {
    if !path.is_dir() {
        return Ok(std::fs::metadata(path)?.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}
