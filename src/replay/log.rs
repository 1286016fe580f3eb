//! Reading traffic logs for a replay: every log named (JSONL files,
//! directories of `traffic-*.jsonl`, Parquet logs), the records a replay
//! uses, in time order.

use crate::domain::Event;
use crate::engine::RankQuery;
use crate::traffic::{self, OnError, Record, ServedSlot, Source, SourceError, StreamStatus};
use foldhash::HashMap;
use std::path::PathBuf;

/// A logged request: the query to rank again (owned once, ranked by
/// reference) and the page the log says was served (empty when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub query: RankQuery,
    pub served: Vec<ServedSlot>,
}

/// One step of a replay.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Rank(Request),
    Purchase(Event),
    Status(StreamStatus),
}

impl Step {
    pub fn time(&self) -> i64 {
        match self {
            Step::Rank(r) => r.query.now.0,
            Step::Purchase(e) => e.time.0,
            Step::Status(s) => s.time.0,
        }
    }

    pub fn user(&self) -> Option<&str> {
        match self {
            Step::Rank(r) => Some(&r.query.user_id),
            Step::Purchase(e) => Some(&e.user_id),
            Step::Status(_) => None,
        }
    }
}

/// The steps of some logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    /// In time order; records with equal times keep their order in the
    /// logs (logs in the order given).
    pub steps: Vec<Step>,
    /// The files (a Parquet log: its directory) read.
    pub files: Vec<PathBuf>,
    /// The first header read, if any (a simulated log's names its world).
    pub header: Option<traffic::Header>,
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
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0}")]
    Record(#[from] traffic::LogError),
    #[error("the logs hold no rank requests to replay ({0})")]
    NoRequests(String),
}

/// Record types a replay does not use, passed over unparsed (most of a
/// simulated log's lines are impressions).
const UNUSED: &[&str] = &["impression"];

impl Log {
    /// How many rank requests the log holds.
    pub fn requests(&self) -> u64 {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Rank(_)))
            .count() as u64
    }

    /// Takes one record into the log (steps stay in arrival order until
    /// [`read`] sorts them).
    pub fn absorb(&mut self, record: Record) {
        match record {
            Record::Rank(r) => {
                self.served += usize::from(!r.served.is_empty());
                let (query, served) = r.into_query();
                self.steps.push(Step::Rank(Request { query, served }));
            }
            Record::Purchase(p) => {
                if let (Some(request), Some(item)) = (&p.request_id, &p.slot_item_id) {
                    let r = self.rewards.entry(request.clone()).or_default();
                    r.purchases.push((item.clone(), p.price));
                }
                self.steps.push(Step::Purchase(Event::from(&p)));
            }
            Record::Click(c) => {
                let r = self.rewards.entry(c.request_id).or_default();
                r.clicks.push(c.position);
            }
            Record::StreamStatus(s) => self.steps.push(Step::Status(s)),
            Record::Header(h) => {
                self.header.get_or_insert(h);
            }
            Record::Impression(_) | Record::Unknown => {}
        }
    }
}

/// Reads `paths` (files, directories of traffic files, Parquet logs).
pub fn read(paths: &[PathBuf], on_error: OnError) -> Result<Log, LogReadError> {
    let mut sources: Vec<Source> = Vec::new();
    for path in paths {
        sources.extend(traffic::sources(path)?);
    }
    let mut log = Log {
        files: sources.iter().map(|s| s.path().to_path_buf()).collect(),
        ..Log::default()
    };
    for source in &sources {
        let skipped = traffic::read_source(source, on_error, UNUSED, |records| {
            for record in records {
                log.absorb(record);
            }
        })?;
        log.skipped += skipped;
    }
    // Stable: equal times keep log order (a request before the purchase
    // it led to, when they share a millisecond).
    log.steps.sort_by_key(Step::time);
    if !log.steps.iter().any(|s| matches!(s, Step::Rank(_))) {
        let names: Vec<String> = log.files.iter().map(|f| f.display().to_string()).collect();
        return Err(LogReadError::NoRequests(names.join(", ")));
    }
    Ok(log)
}
