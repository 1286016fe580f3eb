//! User events (purchases, impressions, clicks) and their durable,
//! idempotent intake.
//!
//! [`EventLog::ingest`] appends new events to the write-ahead log ([`crate::wal`])
//! and returns only once they are on disk; an event id seen before is a
//! duplicate: acknowledged, not appended again. Brand settings of the flow
//! go through the same log. On start, [`EventLog::open`] replays the log
//! after a snapshot's position, so what was acknowledged before a crash is
//! there after it, and ids stay deduplicated across restarts (for the
//! dedupe window: ids are forgotten once their events are older).

use crate::chuanliu::{BrandSetting, Secs};
use crate::domain::{Event, EventKind, Millis};
use crate::wal::{Wal, WalError, WalOptions};
use compact_str::CompactString;
use foldhash::{HashMap, HashSet};
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogRecord {
    Event(Event),
    Brand(BrandSetting),
}

/// [`LogRecord`] borrowed, to write one without copying it.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogRecordRef<'a> {
    Event(&'a Event),
    Brand(&'a BrandSetting),
}

pub(crate) fn encode(record: LogRecordRef) -> Vec<u8> {
    serde_json::to_vec(&record).expect("records serialize")
}

pub(crate) fn decode(bytes: &[u8]) -> Result<LogRecord, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// A record named for people, or why its bytes are not one.
pub fn describe(bytes: &[u8]) -> Result<String, String> {
    Ok(match decode(bytes)? {
        LogRecord::Event(e) => {
            let kind = match &e.kind {
                EventKind::Purchase { .. } => "purchase",
                EventKind::Impression { .. } => "impression",
                EventKind::Click { .. } => "click",
            };
            format!(
                "event {} ({kind}, user {}, time_ms {})",
                e.event_id, e.user_id, e.time.0
            )
        }
        LogRecord::Brand(b) => format!("brand setting for {}", b.brand_id),
    })
}

/// The event log in `dir` checked against its newest snapshot (read only).
pub fn check(dir: &Path) -> Result<crate::wal::check::Report, CheckError> {
    let after = crate::snapshot::latest(dir)?.map_or(0, |s| s.seq);
    Ok(crate::wal::check::check(dir, after, describe)?)
}

/// Cuts the event log in `dir` at a damage `check` reports.
pub fn repair(
    dir: &Path,
    segment: &Path,
    offset: u64,
) -> Result<crate::wal::check::Repaired, CheckError> {
    let after = crate::snapshot::latest(dir)?.map_or(0, |s| s.seq);
    let segment = dir.join(segment.file_name().unwrap_or(segment.as_os_str()));
    Ok(crate::wal::check::repair(
        dir, after, &segment, offset, describe,
    )?)
}

/// Why a check or repair could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Wal(#[from] WalError),
    #[error("snapshot: {0}")]
    Snapshot(#[from] crate::snapshot::SnapshotError),
}

/// What one ingest did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ingested {
    /// Newly accepted, now durable, in input order.
    pub accepted: Vec<Event>,
    /// Ids accepted before (or earlier in the same batch).
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("event log: {0}")]
    Wal(#[from] WalError),
    /// The fleet's stream did not take the records (unreachable, or no
    /// acknowledgement in time): nothing of them is acknowledged.
    #[error("event stream: {0}")]
    Stream(String),
    #[error(
        "event log: {path}: record {seq} at byte {offset} is not a log record ({reason}); refusing to start, which could drop acknowledged records (`fairflow events check` lists what a repair would drop)"
    )]
    Record {
        path: std::path::PathBuf,
        seq: u64,
        offset: u64,
        reason: String,
    },
}

/// A durable record and its position in the event stream: what the flow is
/// fed, in position order.
#[derive(Debug, Clone, PartialEq)]
pub struct Durable {
    pub seq: u64,
    pub record: LogRecord,
}

/// Where durable records go: each one once, in position order. The
/// server's flow is the one feed; a store calls it for every record it
/// makes durable (the local log) or reads from its stream (a replica).
pub trait Feed: Send + Sync {
    fn event(&self, event: &Event);
    fn brand(&self, setting: &BrandSetting);
}

/// Where the flow's events are made durable and numbered. The server talks
/// to its event store only through this, so a second backend is one more
/// implementation, with nothing in the flow or the engine to change.
/// [`EventLog`] is the single-process one (the local write-ahead log);
/// `cluster::Stream` the fleet's (a JetStream stream every replica reads).
///
/// An implementation MUST make a record durable before it returns `Ok`,
/// have it applied to the feed before it returns (a store that reads its
/// records back from a stream waits until its reader has), give records
/// increasing positions in the order the feed must apply them, and
/// acknowledge an event id accepted before (within the dedupe window) as a
/// duplicate, never twice as accepted.
pub trait EventStore: Send + Sync {
    /// Makes the events not seen before durable and applies them; returns
    /// them, in input order, and how many were duplicates. Blocking.
    fn ingest(&self, events: Vec<Event>, feed: &dyn Feed) -> Result<Ingested, EventLogError>;
    /// Makes a brand setting durable and applies it. Blocking.
    fn append_brand(&self, setting: &BrandSetting, feed: &dyn Feed) -> Result<(), EventLogError>;
    /// Runs `copy` while nothing is being applied, and returns the position
    /// of the last record applied: what a snapshot taken by `copy` holds.
    fn quiet_point(&self, copy: &mut dyn FnMut()) -> u64;
    /// The event ids remembered for deduplication, for a snapshot.
    fn remembered_ids(&self) -> Vec<(CompactString, Secs)>;
    /// The latest event time accepted: the clock of the dedupe window.
    fn newest(&self) -> Millis;
    /// Forgets ids of events older than `cutoff`; returns how many remain.
    fn forget_before(&self, cutoff: Millis) -> usize;
    /// Lets go of the records up to `seq`, which a snapshot now holds;
    /// returns how many storage units (segments) were released.
    fn release_through(&self, seq: u64) -> Result<usize, EventLogError>;
}

impl EventStore for EventLog {
    fn ingest(&self, events: Vec<Event>, feed: &dyn Feed) -> Result<Ingested, EventLogError> {
        let _feeding = self.feeding.read();
        let ingested = EventLog::ingest(self, events)?;
        for event in &ingested.accepted {
            feed.event(event);
        }
        Ok(ingested)
    }

    fn append_brand(&self, setting: &BrandSetting, feed: &dyn Feed) -> Result<(), EventLogError> {
        let _feeding = self.feeding.read();
        EventLog::append_brand(self, setting)?;
        feed.brand(setting);
        Ok(())
    }

    fn quiet_point(&self, copy: &mut dyn FnMut()) -> u64 {
        let _quiet = self.feeding.write();
        copy();
        self.last_seq()
    }

    fn remembered_ids(&self) -> Vec<(CompactString, Secs)> {
        self.ids()
    }

    fn newest(&self) -> Millis {
        EventLog::newest(self)
    }

    fn forget_before(&self, cutoff: Millis) -> usize {
        EventLog::forget_before(self, cutoff)
    }

    fn release_through(&self, seq: u64) -> Result<usize, EventLogError> {
        self.truncate_through(seq)
    }
}

/// The durable intake.
pub struct EventLog {
    wal: Wal,
    ids: Mutex<Ids>,
    /// Signalled whenever pending ids become durable (or fail).
    settled: Condvar,
    /// Sequence number of the last record appended.
    last_seq: AtomicU64,
    /// The latest event time accepted (Unix ms): the log's own clock for
    /// the dedupe window, so it does not depend on the server's.
    newest: AtomicI64,
    /// Held shared while records are appended and fed, exclusively while a
    /// snapshot copies the flow: the copy then holds exactly the log up to
    /// [`EventLog::last_seq`].
    feeding: parking_lot::RwLock<()>,
}

#[derive(Default)]
struct Ids {
    /// Every event id accepted and durable (within the dedupe window), with
    /// its event's time.
    seen: HashMap<CompactString, Secs>,
    /// Ids being appended right now. A batch carrying one of them waits for
    /// that append's outcome: answering "duplicate" before it is durable
    /// could acknowledge an event that is then lost; appending it again
    /// would apply it twice.
    pending: HashSet<CompactString>,
}

impl EventLog {
    /// Opens the log in `dir` and returns the records after sequence number
    /// `after` (a snapshot's; 0 for all), oldest first, to rebuild state
    /// from. `ids` are the event ids the snapshot remembered.
    pub fn open(
        dir: &Path,
        after: u64,
        ids: Vec<(CompactString, Secs)>,
    ) -> Result<(EventLog, Vec<Durable>), EventLogError> {
        EventLog::open_with(dir, after, ids, WalOptions::default())
    }

    /// [`EventLog::open`] with the log's own settings.
    pub fn open_with(
        dir: &Path,
        after: u64,
        ids: Vec<(CompactString, Secs)>,
        options: WalOptions,
    ) -> Result<(EventLog, Vec<Durable>), EventLogError> {
        let (wal, recovered) = Wal::open(dir, after, options)?;
        let records = recovered
            .records
            .into_iter()
            .map(|r| match decode(&r.payload) {
                Ok(record) => Ok(Durable { seq: r.seq, record }),
                Err(reason) => Err(EventLogError::Record {
                    path: r.path,
                    seq: r.seq,
                    offset: r.offset,
                    reason,
                }),
            })
            .collect::<Result<Vec<Durable>, _>>()?;
        let mut seen: HashMap<CompactString, Secs> = ids.into_iter().collect();
        seen.extend(records.iter().filter_map(|r| match &r.record {
            LogRecord::Event(e) => Some((CompactString::from(e.event_id.as_str()), e.time.into())),
            LogRecord::Brand(_) => None,
        }));
        let newest = seen.values().max().map_or(0, |s| s.0 as i64 * 1000);
        Ok((
            EventLog {
                wal,
                ids: Mutex::new(Ids {
                    seen,
                    pending: HashSet::default(),
                }),
                settled: Condvar::new(),
                last_seq: AtomicU64::new(recovered.last_seq),
                newest: AtomicI64::new(newest),
                feeding: parking_lot::RwLock::new(()),
            },
            records,
        ))
    }

    fn append(&self, records: Vec<Vec<u8>>) -> Result<(), WalError> {
        let last = self.wal.append(records)?;
        self.last_seq.fetch_max(last, Ordering::AcqRel);
        Ok(())
    }

    /// Appends a brand setting; returns once it is durable.
    pub fn append_brand(&self, setting: &BrandSetting) -> Result<(), EventLogError> {
        Ok(self.append(vec![encode(LogRecordRef::Brand(setting))])?)
    }

    /// The sequence number of the last record appended: with no append in
    /// flight, everything up to it has been applied by the caller.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// The remembered event ids, for a snapshot.
    pub fn ids(&self) -> Vec<(CompactString, Secs)> {
        let ids = self.ids.lock();
        ids.seen.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The latest event time accepted so far.
    pub fn newest(&self) -> Millis {
        Millis(self.newest.load(Ordering::Acquire))
    }

    /// Forgets the ids of events older than `cutoff` (the dedupe window);
    /// returns how many are still remembered.
    pub fn forget_before(&self, cutoff: Millis) -> usize {
        let cutoff = Secs::from(cutoff);
        let mut ids = self.ids.lock();
        ids.seen.retain(|_, t| *t >= cutoff);
        ids.seen.len()
    }

    /// Deletes the log segments a snapshot at `seq` covers.
    pub fn truncate_through(&self, seq: u64) -> Result<usize, EventLogError> {
        Ok(self.wal.truncate_through(seq)?)
    }

    /// Appends the events not seen before; returns once they are durable.
    /// Blocking (a disk sync): call it from a blocking thread. Concurrent
    /// calls share syncs (the log's group commit).
    pub fn ingest(&self, events: Vec<Event>) -> Result<Ingested, EventLogError> {
        let mut ids = self.ids.lock();
        while events
            .iter()
            .any(|e| ids.pending.contains(e.event_id.as_str()))
        {
            self.settled.wait(&mut ids);
        }
        let mut outcome = Ingested::default();
        for event in events {
            let id = event.event_id.as_str();
            if ids.seen.contains_key(id) || !ids.pending.insert(CompactString::from(id)) {
                outcome.duplicates += 1;
            } else {
                outcome.accepted.push(event);
            }
        }
        drop(ids);
        if outcome.accepted.is_empty() {
            return Ok(outcome);
        }
        let records = outcome
            .accepted
            .iter()
            .map(|e| encode(LogRecordRef::Event(e)))
            .collect();
        let appended = self.append(records);
        let mut ids = self.ids.lock();
        for e in &outcome.accepted {
            let id = ids
                .pending
                .take(e.event_id.as_str())
                .expect("pending until settled");
            if appended.is_ok() {
                ids.seen.insert(id, e.time.into());
                self.newest.fetch_max(e.time.0, Ordering::AcqRel);
            }
        }
        drop(ids);
        self.settled.notify_all();
        appended?;
        Ok(outcome)
    }

    /// Event ids remembered for deduplication.
    pub fn len(&self) -> usize {
        self.ids.lock().seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;

    fn purchase(id: &str) -> Event {
        Event {
            event_id: id.into(),
            time: Millis(1_795_132_800_000),
            user_id: "u1".into(),
            kind: EventKind::Purchase {
                item_id: "g000001".into(),
                brand_id: "b001".into(),
                seller_streamer_id: "s00042".into(),
                channel: Channel::Influencer,
                price: 99.0,
                venue: None,
            },
        }
    }

    #[test]
    fn duplicates_are_acknowledged_once_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, old) = EventLog::open(dir.path(), 0, Vec::new()).unwrap();
            assert!(old.is_empty());
            let out = log
                .ingest(vec![purchase("e1"), purchase("e2"), purchase("e1")])
                .unwrap();
            assert_eq!(out.accepted.len(), 2);
            assert_eq!(out.duplicates, 1);
        }
        let (log, old) = EventLog::open(dir.path(), 0, Vec::new()).unwrap();
        let old: Vec<LogRecord> = old.into_iter().map(|d| d.record).collect();
        assert_eq!(
            old,
            vec![
                LogRecord::Event(purchase("e1")),
                LogRecord::Event(purchase("e2"))
            ]
        );
        let out = log.ingest(vec![purchase("e2"), purchase("e3")]).unwrap();
        assert_eq!(out.accepted, vec![purchase("e3")]);
        assert_eq!(out.duplicates, 1);
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn concurrent_batches_with_shared_ids_append_each_id_once() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(dir.path(), 0, Vec::new()).unwrap();
        let ids: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        let accepted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let (log, ids) = (&log, &ids);
                    s.spawn(move || {
                        // Every thread sends every id, in its own order.
                        let batch = (0..ids.len())
                            .map(|i| purchase(&ids[(i * 7 + t * 3) % ids.len()]))
                            .collect();
                        log.ingest(batch).unwrap().accepted.len()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(accepted, 40, "each id accepted by exactly one batch");
        drop(log);
        let (_, replayed) = EventLog::open(dir.path(), 0, Vec::new()).unwrap();
        assert_eq!(replayed.len(), 40, "and on disk once");
    }

    #[test]
    fn a_snapshots_ids_and_position_carry_over_and_old_ids_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(dir.path(), 0, Vec::new()).unwrap();
        log.ingest(vec![purchase("e1"), purchase("e2")]).unwrap();
        let setting = BrandSetting {
            brand_id: "b001".into(),
            enrollment: crate::chuanliu::Enrollment::Paused,
            daily_impressions: Some(5),
        };
        log.append_brand(&setting).unwrap();
        assert_eq!(log.last_seq(), 3);
        let ids = log.ids();
        drop(log);
        // A snapshot at 2: records 1 and 2 are in it, the brand record is not.
        let (log, tail) = EventLog::open(dir.path(), 2, ids).unwrap();
        assert_eq!(
            tail,
            vec![Durable {
                seq: 3,
                record: LogRecord::Brand(setting)
            }]
        );
        assert_eq!(log.ingest(vec![purchase("e1")]).unwrap().duplicates, 1);
        let event_secs = purchase("e1").time.0 / 1000;
        assert_eq!(log.forget_before(Millis((event_secs + 1) * 1000)), 0);
        assert_eq!(log.ingest(vec![purchase("e1")]).unwrap().accepted.len(), 1);
    }
}
