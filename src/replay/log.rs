//! Reading traffic logs for a replay: every log named (JSONL files,
//! directories of `traffic-*.jsonl`, Parquet logs), the records a replay
//! uses, in time order.

use crate::domain::Event;
use crate::domain::ItemKind;
use crate::engine::RankQuery;
use crate::traffic::{
    self, OnError, PropensityKind, Record, ServedSlot, Source, SourceError, StreamStatus,
};
use foldhash::HashMap;
use std::path::PathBuf;

/// A logged request: the query to rank again (owned once, ranked by
/// reference) and the page the log says was served (empty when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub query: RankQuery,
    pub served: Vec<Entry>,
    /// The experiment arms the log says it ran under (`experiment:arm`
    /// joined by `,`).
    pub arms: Option<String>,
}

impl Request {
    /// Whether it ran under `arm` (`experiment:arm`).
    pub fn ran_under(&self, arm: &str) -> bool {
        self.arms
            .as_deref()
            .is_some_and(|arms| arms.split(',').any(|a| a == arm))
    }
}

/// One served slot of a logged page, as the reader checked it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub item_id: String,
    pub kind: ItemKind,
    /// The log's number for the item ([`Log::item`]).
    pub item: u32,
    /// 0-based; a page's entries are in increasing slot order, possibly
    /// with gaps (a sparse page).
    pub position: u32,
    pub propensity: Option<Propensity>,
}

/// A logging propensity: in (0, 1], and what it is the probability of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Propensity {
    pub value: f64,
    pub kind: PropensityKind,
}

impl Entry {
    pub fn is(&self, item_id: &str, kind: ItemKind) -> bool {
        self.kind == kind && self.item_id == item_id
    }

    /// The propensity, if the entry has one of this kind.
    pub fn propensity_of(&self, kind: PropensityKind) -> Option<f64> {
        self.propensity.filter(|p| p.kind == kind).map(|p| p.value)
    }
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
    /// Every item a logged page served, numbered densely in order of first
    /// appearance (the off-policy reward model's key); live streams first,
    /// then goods, so a lookup borrows the id.
    pub items: [HashMap<String, u32>; 2],
}

/// What a request's page earned, as the log records it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestRewards {
    /// Clicks: the position and the item clicked there (a click joins the
    /// served entry with both).
    pub clicks: Vec<(u32, ItemKind, String)>,
    /// Purchases: the slot's item they came through, and the price.
    pub purchases: Vec<(String, f64)>,
}

impl RequestRewards {
    /// Whether the log has a click on `entry`.
    pub fn clicked(&self, entry: &Entry) -> bool {
        self.clicks
            .iter()
            .any(|(p, kind, item)| *p == entry.position && entry.is(item, *kind))
    }

    /// GMV of the purchases that came through `entry`'s item.
    pub fn gmv(&self, entry: &Entry) -> f64 {
        self.purchases
            .iter()
            .filter(|(item, _)| *item == entry.item_id)
            .map(|(_, price)| price)
            .sum()
    }
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

    /// The logging policy's clicks per logged slot, by position: a click
    /// counts for the slot of its request at its position with its item.
    pub fn position_ctr(&self) -> crate::replay::ope::PositionCtr {
        let slots = self.steps.iter().flat_map(|step| {
            let (served, rewards) = match step {
                Step::Rank(r) => (&r.served[..], self.rewards.get(&r.query.request_id)),
                _ => (&[][..], None),
            };
            served
                .iter()
                .map(move |e| (e.position, rewards.is_some_and(|r| r.clicked(e))))
        });
        crate::replay::ope::PositionCtr::of(slots)
    }

    /// The log's number for an item a logged page served.
    pub fn item(&self, kind: ItemKind, item_id: &str) -> Option<u32> {
        self.items[kind as usize].get(item_id).copied()
    }

    /// How many items logged pages served.
    pub fn item_count(&self) -> usize {
        self.items.iter().map(HashMap::len).sum()
    }

    /// The id of every item a logged page served, by its number.
    pub fn item_ids(&self) -> Vec<String> {
        let mut ids = vec![String::new(); self.item_count()];
        for (id, &n) in self.items.iter().flatten() {
            ids[n as usize] = id.clone();
        }
        ids
    }

    fn number(&mut self, kind: ItemKind, item_id: &str) -> u32 {
        if let Some(&n) = self.items[kind as usize].get(item_id) {
            return n;
        }
        let n = self.item_count() as u32;
        self.items[kind as usize].insert(item_id.to_string(), n);
        n
    }

    /// Takes one record into the log (steps stay in arrival order until
    /// [`read`] sorts them). Rank records were checked by the reader
    /// ([`traffic::RankRecord::check`]).
    pub fn absorb(&mut self, record: Record) {
        match record {
            Record::Rank(r) => {
                self.served += usize::from(!r.served.is_empty());
                let positions: Vec<u32> = ServedSlot::positions(&r.served).collect();
                let arms = r.arms.clone();
                let (query, served) = r.into_query();
                let served = served
                    .into_iter()
                    .zip(positions)
                    .map(|(s, position)| Entry {
                        item: self.number(s.kind, &s.item_id),
                        position,
                        propensity: s.propensity.map(|value| Propensity {
                            value,
                            kind: s.propensity_kind.unwrap_or(PropensityKind::Cascade),
                        }),
                        item_id: s.item_id,
                        kind: s.kind,
                    })
                    .collect();
                self.steps.push(Step::Rank(Request {
                    query,
                    served,
                    arms,
                }));
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
                r.clicks.push((c.position, c.kind, c.item_id));
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
