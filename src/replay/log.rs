//! Reading traffic logs for a replay: every file named (or every
//! `traffic-*.jsonl` in a directory named), the records a replay uses, in
//! time order.

use crate::events::Event;
use crate::traffic::{self, OnError, RankRecord, Record, StreamStatus};
use foldhash::HashMap;
use std::path::{Path, PathBuf};

/// One step of a replay.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Rank(RankRecord),
    Purchase(Event),
    Status(StreamStatus),
}

impl Step {
    fn time(&self) -> i64 {
        match self {
            Step::Rank(r) => r.time.0,
            Step::Purchase(e) => e.time.0,
            Step::Status(s) => s.time.0,
        }
    }

    pub fn user(&self) -> Option<&str> {
        match self {
            Step::Rank(r) => Some(&r.user_id),
            Step::Purchase(e) => Some(&e.user_id),
            Step::Status(_) => None,
        }
    }
}

/// The steps of some logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    /// In time order; records with equal times keep their order in the
    /// files (files in the order given).
    pub steps: Vec<Step>,
    pub files: Vec<PathBuf>,
    /// Malformed lines skipped (with `OnError::Skip`).
    pub skipped: usize,
    /// Rank records that carry the served page.
    pub served: usize,
    /// Clicks and purchases by the request they came from (for off-policy
    /// estimates).
    pub rewards: HashMap<String, RequestRewards>,
}

/// What a request's page earned, as the log records it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestRewards {
    /// Positions clicked.
    pub clicks: Vec<u32>,
    /// Purchases: the slot's item they came through, and the price.
    pub purchases: Vec<(String, f64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Record(#[from] traffic::LogError),
    #[error("{0}: holds no traffic-*.jsonl files")]
    EmptyDir(PathBuf),
    #[error("the logs hold no rank requests to replay ({0})")]
    NoRequests(String),
}

fn files_of(path: &Path) -> Result<Vec<PathBuf>, LogReadError> {
    if path.is_dir() {
        let files = traffic::files_in(path).map_err(|source| LogReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if files.is_empty() {
            return Err(LogReadError::EmptyDir(path.to_path_buf()));
        }
        Ok(files)
    } else if path.exists() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(LogReadError::Missing(path.to_path_buf()))
    }
}

/// Record types a replay does not use, passed over unparsed (most of a
/// simulated log's lines are impressions).
const UNUSED: &[&str] = &["impression"];

/// Reads `paths` (files, or directories of traffic files).
pub fn read(paths: &[PathBuf], on_error: OnError) -> Result<Log, LogReadError> {
    let mut log = Log::default();
    for path in paths {
        log.files.extend(files_of(path)?);
    }
    for file in &log.files {
        let input = std::fs::File::open(file).map_err(|source| LogReadError::Io {
            path: file.clone(),
            source,
        })?;
        let (steps, served, rewards) = (&mut log.steps, &mut log.served, &mut log.rewards);
        log.skipped += traffic::read_parallel(
            input,
            &file.display().to_string(),
            on_error,
            UNUSED,
            |records| {
                for record in records {
                    match record {
                        Record::Rank(r) => {
                            *served += usize::from(!r.served.is_empty());
                            steps.push(Step::Rank(r));
                        }
                        Record::Purchase(p) => {
                            if let (Some(request), Some(item)) = (&p.request_id, &p.slot_item_id) {
                                let r: &mut RequestRewards =
                                    rewards.entry(request.clone()).or_default();
                                r.purchases.push((item.clone(), p.price));
                            }
                            steps.push(Step::Purchase(Event::from(&p)));
                        }
                        Record::Click(c) => {
                            let r: &mut RequestRewards = rewards.entry(c.request_id).or_default();
                            r.clicks.push(c.position);
                        }
                        Record::StreamStatus(s) => steps.push(Step::Status(s)),
                        Record::Header(_) | Record::Impression(_) | Record::Unknown => {}
                    }
                }
            },
        )?;
    }
    // Stable: equal times keep file order (a request before the purchase
    // it led to, when they share a millisecond).
    log.steps.sort_by_key(Step::time);
    if !log.steps.iter().any(|s| matches!(s, Step::Rank(_))) {
        let names: Vec<String> = log.files.iter().map(|f| f.display().to_string()).collect();
        return Err(LogReadError::NoRequests(names.join(", ")));
    }
    Ok(log)
}
