//! The replay's report: `report.json` for machines, a table for people,
//! written so that nothing half-written is ever presented as a result.

use super::ope::{self, OffPolicy, PositionCtr, Settings, position::PositionBased};
use super::{Log, RankingRow, Replayed, Summary, charts};
use crate::allocate::concentration::shares;
use crate::domain::Scene;
use crate::engine::Engine;
use crate::sim::PageOutcome;
use crate::sim::frontier::{Standing, standing};
use crate::traffic::parquet::{RowWriter, WriteError};
use serde::Serialize;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One config's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// The config file (or the embedded default).
    pub name: String,
    pub config_version: String,
    /// What the config would have done.
    pub replayed: Summary,
    /// What the log says was served, over the requests that carry it.
    pub logged: Option<Summary>,
    /// Requests whose replayed page equals the logged one, and how many
    /// carry a logged page.
    pub identical: u64,
    pub with_logged_page: u64,
    /// Requests the engine refused, and the first reason.
    pub refused: u64,
    pub first_refusal: Option<String>,
    /// Interactive replay: requests whose user the simulated world does not
    /// know (not answered).
    pub unanswered: u64,
    /// Off-policy estimates of the replayed policy's value per request,
    /// where the log carries cascade propensities (docs/replay.md).
    pub off_policy: Option<OffPolicy>,
    /// Per impression, where it carries marginal ones.
    pub position_based: Option<PositionBased>,
    /// Logged pages that neither family can use: no propensities (or a
    /// cascade page with a slot without one).
    pub requests_without_propensities: usize,
    /// The replayed value against the hindsight optimum and frontier on the
    /// replayed pages of quota scenes (with `--hindsight`).
    pub hindsight: Option<Standing>,
    /// The replayed figures per experiment arm the log names (`base` for
    /// requests in none), each against its own arm's targets in this config
    /// where it has that arm; empty for a log without arms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_arm: Vec<ArmReport>,
}

/// One arm's share of a replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    pub arm: String,
    pub replayed: Summary,
}

impl PolicyReport {
    /// The report of `engine`'s replay, named `name`. Targets are only a
    /// yardstick for a config whose quotas act on some scene.
    pub fn of(engine: &Engine, name: String, r: &Replayed, ope: &Settings) -> PolicyReport {
        let quotas = &engine.params().quotas;
        let acts = Scene::ALL.iter().any(|&s| quotas.applies_to(s));
        let rec = &r.recorded;
        PolicyReport {
            // Without targets, measured at the shares the replay reached.
            hindsight: (!rec.pages.is_empty()).then(|| {
                let targets = quotas.exposure.targets.unwrap_or(shares(rec.tier_exposure));
                standing(
                    &rec.pages,
                    quotas,
                    targets,
                    rec.objective,
                    &rec.streamer_exposure,
                )
            }),
            ..PolicyReport::new(
                name,
                engine.params().version.clone(),
                quotas.exposure.targets.filter(|_| acts),
                r,
                ope,
            )
        }
    }

    pub fn new(
        name: String,
        config_version: String,
        targets: Option<[f64; 3]>,
        r: &Replayed,
        ope: &Settings,
    ) -> PolicyReport {
        PolicyReport {
            name,
            config_version,
            replayed: r.replayed.summary(targets),
            logged: (r.logged.requests > 0).then(|| r.logged.summary(targets)),
            identical: r.identical,
            with_logged_page: r.logged.requests,
            refused: r.refused,
            first_refusal: r.first_refusal.clone(),
            unanswered: r.unanswered,
            off_policy: (!r.ope_samples.is_empty())
                .then(|| ope::evaluate(&r.ope_samples, r.without_propensities, ope.max_weight)),
            position_based: ope::position::evaluate(&r.rounds, ope.max_weight, ope.reward_model),
            requests_without_propensities: r.without_propensities,
            hindsight: None,
            by_arm: arm_reports(r, |_| targets),
        }
    }

    /// The per-arm figures measured against each arm's own targets:
    /// `targets_of` gives them for an arm label (`None`: no yardstick).
    pub fn with_arm_targets(
        self,
        r: &Replayed,
        targets_of: impl Fn(&str) -> Option<[f64; 3]>,
    ) -> PolicyReport {
        PolicyReport {
            by_arm: arm_reports(r, targets_of),
            ..self
        }
    }
}

fn arm_reports(r: &Replayed, targets_of: impl Fn(&str) -> Option<[f64; 3]>) -> Vec<ArmReport> {
    r.by_arm
        .iter()
        .map(|(arm, figures)| ArmReport {
            arm: arm.clone(),
            replayed: figures.summary(targets_of(arm)),
        })
        .collect()
}

/// B minus A, for the headline figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub tier_shares: [f64; 3],
    pub gini: f64,
    pub top1: f64,
    pub top10: f64,
    pub expected_gmv: f64,
    /// B over A, minus 1.
    pub expected_gmv_relative: f64,
    pub flow_impressions: i64,
    pub attributed_conversions: i64,
    pub attributed_gmv: f64,
    /// Interactive replay: B's simulated outcome minus A's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realized: Option<RealizedDifference>,
}

/// B minus A in what simulated users did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealizedDifference {
    pub impressions: i64,
    pub clicks: i64,
    pub purchases: i64,
    pub gmv: f64,
    /// B over A, minus 1.
    pub gmv_relative: f64,
    pub flow_purchases: i64,
    pub flow_gmv: f64,
}

/// `b / a - 1`, or 0 when `a` is not positive.
fn relative(a: f64, b: f64) -> f64 {
    if a > 0.0 { b / a - 1.0 } else { 0.0 }
}

impl RealizedDifference {
    fn between(a: &PageOutcome, b: &PageOutcome) -> RealizedDifference {
        let d = |a: u64, b: u64| b as i64 - a as i64;
        RealizedDifference {
            impressions: d(a.impressions, b.impressions),
            clicks: d(a.clicks, b.clicks),
            purchases: d(a.purchases, b.purchases),
            gmv: b.gmv - a.gmv,
            gmv_relative: relative(a.gmv, b.gmv),
            flow_purchases: d(a.flow_purchases, b.flow_purchases),
            flow_gmv: b.flow_gmv - a.flow_gmv,
        }
    }
}

impl Difference {
    pub fn between(a: &Summary, b: &Summary) -> Difference {
        Difference {
            tier_shares: [0, 1, 2].map(|i| b.tier_shares[i] - a.tier_shares[i]),
            gini: b.gini - a.gini,
            top1: b.top1 - a.top1,
            top10: b.top10 - a.top10,
            expected_gmv: b.expected_gmv - a.expected_gmv,
            expected_gmv_relative: relative(a.expected_gmv, b.expected_gmv),
            flow_impressions: b.flow_impressions as i64 - a.flow_impressions as i64,
            attributed_conversions: b.attributed_conversions as i64
                - a.attributed_conversions as i64,
            attributed_gmv: b.attributed_gmv - a.attributed_gmv,
            realized: a
                .realized
                .zip(b.realized)
                .map(|(a, b)| RealizedDifference::between(&a, &b)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub logs: Vec<String>,
    pub requests: u64,
    pub shards: usize,
    pub skipped_lines: usize,
    /// The logging policy's click-through rate per position.
    pub logged_ctr: PositionCtr,
    pub a: PolicyReport,
    pub b: Option<PolicyReport>,
    /// B's replay minus A's.
    pub difference: Option<Difference>,
}

impl Report {
    /// The report of replaying `log` under A, and B when given.
    pub fn new(log: &Log, shards: usize, a: PolicyReport, b: Option<PolicyReport>) -> Report {
        Report {
            logs: log.files.iter().map(|f| f.display().to_string()).collect(),
            requests: log.requests(),
            shards,
            skipped_lines: log.skipped,
            logged_ctr: log.position_ctr(),
            difference: b
                .as_ref()
                .map(|b| Difference::between(&a.replayed, &b.replayed)),
            a,
            b,
        }
    }

    /// Writes the charts (tier shares of the logged pages and of each
    /// replay, and the Lorenz curves), then `report.json`, into `out`:
    /// a `report.json` there means the whole result is. Returns the
    /// report's path and the charts' names.
    pub fn write(&self, out: &Path) -> Result<(PathBuf, Vec<&'static str>), ReportError> {
        let mut charts: Vec<(&'static str, String, &Summary)> = Vec::new();
        let mut curves: Vec<(&str, &Summary)> = Vec::new();
        let logged = std::iter::once(&self.a)
            .chain(&self.b)
            .find_map(|p| p.logged.as_ref());
        if let Some(logged) = logged {
            charts.push(("tiers-logged", "logged (what happened)".to_string(), logged));
            curves.push(("logged", logged));
        }
        for (file, p) in
            std::iter::once(("tiers-a", &self.a)).chain(self.b.as_ref().map(|b| ("tiers-b", b)))
        {
            charts.push((file, format!("replayed {}", p.name), &p.replayed));
            curves.push((p.name.as_str(), &p.replayed));
        }
        for (file, what, summary) in &charts {
            let title = format!("Exposure share per tier, {what} (dashed: targets)");
            charts::write(out, file, &charts::tier_shares_svg(&title, summary)?)?;
        }
        let lorenz = charts::lorenz_svg("Exposure across streamers (Lorenz curve)", &curves)?;
        charts::write(out, "lorenz", &lorenz)?;
        let path = out.join("report.json");
        let json = serde_json::to_vec_pretty(self).expect("reports serialize");
        write_atomically(&path, &json).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        Ok((path, charts.into_iter().map(|c| c.0).collect()))
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Chart(#[from] charts::ChartError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes replayed rankings to `path`: Parquet when its name ends in
/// `.parquet`, JSON lines otherwise; through a temporary file and a rename,
/// like [`write_atomically`].
pub fn write_rankings(path: &Path, rows: Vec<RankingRow>) -> Result<(), WriteError> {
    let failed = |e: &dyn fmt::Display| WriteError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if path.extension().is_some_and(|e| e == "parquet") {
        let tmp = path.with_extension("tmp");
        let mut writer = RowWriter::create(&tmp, false, 4096)?;
        for row in rows {
            writer.push(0, row)?;
        }
        writer.finish(Vec::new())?;
        return std::fs::rename(&tmp, path).map_err(|e| failed(&e));
    }
    let mut bytes = Vec::new();
    for row in &rows {
        serde_json::to_writer(&mut bytes, row).expect("rankings serialize");
        bytes.push(b'\n');
    }
    write_atomically(path, &bytes).map_err(|e| failed(&e))
}

/// Writes `bytes` to `path` through a temporary file and a rename: a reader
/// finds the whole file or none.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    //! Rules checked: a report names the targets only of a config whose
    //! quotas act; it writes its charts, then report.json, and B minus A is
    //! there exactly when B is.
    use super::*;
    use crate::config::Config;
    use crate::model::Model;
    use std::sync::Arc;

    fn engine(toml: &str) -> Engine {
        let config = Config::from_toml(toml, "t.toml", None).unwrap();
        Engine::new(config.engine, Arc::new(Model::embedded().unwrap()))
    }

    fn replayed() -> Replayed {
        let mut r = Replayed {
            replayed: super::super::Figures::new(3, 0),
            logged: super::super::Figures::new(3, 0),
            ..Replayed::default()
        };
        r.replayed.streamer_exposure = vec![1.0, 2.0, 3.0];
        r.replayed.hourly.insert(10, [1.0, 3.0, 2.0]);
        r
    }

    #[test]
    fn a_report_is_assembled_from_both_replays_and_written_whole() {
        let with_quotas = engine("[quotas.targets]\nenabled = true\n");
        let without = engine("[quotas]\nscenes = []\n");
        let a = PolicyReport::of(
            &with_quotas,
            "a.toml".into(),
            &replayed(),
            &Settings::default(),
        );
        assert!(a.replayed.targets.is_some());
        assert!(a.logged.is_none(), "no logged pages, no logged figures");
        let b = PolicyReport::of(&without, "b.toml".into(), &replayed(), &Settings::default());
        assert!(b.replayed.targets.is_none(), "no quotas act: no yardstick");
        let log = Log {
            files: vec!["traffic.jsonl".into()],
            ..Log::default()
        };
        let report = Report::new(&log, 2, a, Some(b));
        assert_eq!((report.requests, report.shards), (0, 2));
        assert!(report.difference.is_some());
        let dir = tempfile::tempdir().unwrap();
        let (path, charts) = report.write(dir.path()).unwrap();
        assert_eq!(charts, ["tiers-a", "tiers-b"]);
        for name in ["tiers-a.svg", "tiers-b.png", "lorenz.svg", "report.json"] {
            assert!(dir.path().join(name).exists(), "{name}");
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(json["logs"][0], "traffic.jsonl");
    }
}
