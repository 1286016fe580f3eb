//! The fleet's event store: a NATS JetStream stream every replica reads.
//!
//! `Ingest` on any replica publishes each new event with `Nats-Msg-Id` set
//! to its event id (so JetStream drops resends within its duplicate window)
//! and answers only once JetStream has acknowledged the write, durable at
//! the stream's replication factor. Each replica's reader consumes the whole
//! stream in stream order and feeds every record to its flow once (event ids
//! applied are remembered for `events.dedupe_hours`, as the local log does);
//! an ingest returns once its own replica's reader has applied what it
//! published, so a client reads its writes on the replica it wrote to.
//!
//! A replica starts from its newest snapshot (in `events.dir`), which
//! records the stream sequence it holds, and reads the stream after it.

use crate::chuanliu::{BrandSetting, Secs};
use crate::config::ClusterConfig;
use crate::domain::{Event, Millis};
use crate::events::{
    EventLogError, EventStore, Feed, Ingested, LogRecord, LogRecordRef, decode, encode,
};
use async_nats::jetstream::{self, consumer, stream};
use compact_str::CompactString;
use foldhash::{HashMap, HashSet};
use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_stream::StreamExt;

/// Why a replica could not open the stream: it refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot reach NATS at {urls}: {reason}")]
    Unreachable { urls: String, reason: String },
    #[error("stream {stream}: {reason}")]
    Misconfigured { stream: String, reason: String },
    #[error(
        "stream {stream}: this replica's snapshot holds the stream up to sequence {snapshot}, but the stream {reason}; starting would skip or re-apply events (move the snapshots in events.dir aside to rebuild from the stream's start)"
    )]
    Discontinuous {
        stream: String,
        snapshot: u64,
        reason: String,
    },
}

/// What the reader has applied.
#[derive(Default)]
struct Applied {
    /// The stream sequence of the last record applied.
    seq: u64,
    /// Event ids applied (within the dedupe window), with their time.
    seen: HashMap<CompactString, Secs>,
    /// The latest event time applied (Unix ms).
    newest: i64,
}

struct Inner {
    runtime: tokio::runtime::Handle,
    js: jetstream::Context,
    config: ClusterConfig,
    applied: Mutex<Applied>,
    /// Signalled whenever the reader applies records.
    advanced: Condvar,
    /// Held shared while the reader applies a record, exclusively while a
    /// snapshot copies the flow.
    feeding: RwLock<()>,
    /// Whether the reader is reading (false while NATS is away).
    reading: AtomicBool,
    /// The stream's last sequence as last seen: the lag is this minus the
    /// applied one.
    stream_last: AtomicU64,
}

/// The JetStream event store (see the module docs).
pub struct Stream {
    inner: Arc<Inner>,
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Stream {
    /// Connects, creates the stream when it is missing (or checks it when
    /// it is not), and checks that it continues this replica's snapshot at
    /// `after` (0: none) with its remembered `ids`. Returns the store and the
    /// stream's last sequence now: what the reader must reach before the
    /// replica serves.
    pub async fn open(
        config: &ClusterConfig,
        replica: &str,
        after: u64,
        ids: Vec<(CompactString, Secs)>,
    ) -> Result<(Stream, u64), StreamError> {
        let urls = config.nats_urls.join(",");
        let unreachable = |reason: String| StreamError::Unreachable {
            urls: urls.clone(),
            reason,
        };
        let client = async_nats::ConnectOptions::new()
            .name(format!("fairflow {replica}"))
            .connection_timeout(Duration::from_secs(3))
            .connect(config.nats_urls.clone())
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let js = jetstream::new(client);
        let misconfigured = |reason: String| StreamError::Misconfigured {
            stream: config.stream.clone(),
            reason,
        };
        let subjects = vec![format!("{}.>", config.stream)];
        let mut stream = js
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: subjects.clone(),
                num_replicas: config.stream_replicas,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .map_err(|e| misconfigured(e.to_string()))?;
        let info = stream
            .info()
            .await
            .map_err(|e| misconfigured(e.to_string()))?;
        if info.config.subjects != subjects {
            return Err(misconfigured(format!(
                "its subjects are {:?}, expected {subjects:?}",
                info.config.subjects
            )));
        }
        if info.config.num_replicas != config.stream_replicas {
            return Err(misconfigured(format!(
                "it keeps {} copies, cluster.stream_replicas says {}",
                info.config.num_replicas, config.stream_replicas
            )));
        }
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let discontinuous = |reason: String| StreamError::Discontinuous {
            stream: config.stream.clone(),
            snapshot: after,
            reason,
        };
        if after > last {
            return Err(discontinuous(format!("ends at {last}")));
        }
        if info.state.messages > 0 && first > after + 1 {
            return Err(discontinuous(format!("starts at {first}")));
        }
        let newest = ids
            .iter()
            .map(|(_, t)| t.0 as i64 * 1000)
            .max()
            .unwrap_or(0);
        let inner = Inner {
            runtime: tokio::runtime::Handle::current(),
            js,
            config: config.clone(),
            applied: Mutex::new(Applied {
                seq: after,
                seen: ids.into_iter().collect(),
                newest,
            }),
            advanced: Condvar::new(),
            feeding: RwLock::new(()),
            reading: AtomicBool::new(false),
            stream_last: AtomicU64::new(last),
        };
        Ok((
            Stream {
                inner: Arc::new(inner),
                reader: Mutex::new(None),
            },
            last,
        ))
    }

    /// Starts the reader that feeds `feed` the stream after the snapshot,
    /// in order, for as long as the store lives (reconnecting by itself).
    pub fn start(&self, feed: Weak<dyn Feed>) {
        let inner = self.inner.clone();
        let task = self.inner.runtime.spawn(read(inner, feed));
        *self.reader.lock() = Some(task);
    }

    /// Waits until the reader has applied the stream up to `seq`, or
    /// `timeout` passes; returns whether it did. Blocking.
    #[expect(
        clippy::disallowed_methods,
        reason = "a deadline for waiting on the reader, at the edge"
    )]
    pub fn wait_applied(&self, seq: u64, timeout: Duration) -> bool {
        let mut applied = self.inner.applied.lock();
        let deadline = std::time::Instant::now() + timeout;
        while applied.seq < seq {
            if self
                .inner
                .advanced
                .wait_until(&mut applied, deadline)
                .timed_out()
            {
                return applied.seq >= seq;
            }
        }
        true
    }

    /// The stream sequence applied, and how far behind the stream's end
    /// (as last seen) that is.
    pub fn lag(&self) -> (u64, u64) {
        let applied = self.inner.applied.lock().seq;
        let last = self.inner.stream_last.load(Ordering::Acquire);
        (applied, last.saturating_sub(applied))
    }

    /// Whether the reader is connected and reading.
    pub fn reading(&self) -> bool {
        self.inner.reading.load(Ordering::Acquire)
    }

    fn subject(&self, event: &Event) -> String {
        let partition = crc32fast::hash(event.user_id.as_bytes()) % self.inner.config.partitions;
        format!("{}.events.{partition}", self.inner.config.stream)
    }

    /// Publishes `records` (with their message ids) and waits for every
    /// acknowledgement; returns each one's (sequence, duplicate).
    fn publish(
        &self,
        records: Vec<(String, Option<String>, Vec<u8>)>,
    ) -> Result<Vec<(u64, bool)>, EventLogError> {
        let js = self.inner.js.clone();
        let timeout = self.inner.config.ack_timeout;
        let unavailable = |e: &dyn std::fmt::Display| EventLogError::Stream(e.to_string());
        self.inner.runtime.block_on(async move {
            let publishing = async {
                let mut pending = Vec::with_capacity(records.len());
                for (subject, id, payload) in records {
                    let mut message =
                        jetstream::message::PublishMessage::build().payload(payload.into());
                    if let Some(id) = id {
                        message = message.message_id(id);
                    }
                    pending.push(
                        js.send_publish(subject, message)
                            .await
                            .map_err(|e| unavailable(&e))?,
                    );
                }
                let mut acks = Vec::with_capacity(pending.len());
                for ack in pending {
                    let ack = ack.await.map_err(|e| unavailable(&e))?;
                    acks.push((ack.sequence, ack.duplicate));
                }
                Ok(acks)
            };
            tokio::time::timeout(timeout, publishing)
                .await
                .map_err(|_| {
                    EventLogError::Stream(format!(
                        "no acknowledgement from JetStream within {timeout:?}"
                    ))
                })?
        })
    }

    /// After a publish: waits (for at most the ack timeout) for this
    /// replica's reader to apply through `seq`, so the caller reads its
    /// writes here. The records are durable either way.
    fn settle(&self, seq: u64) {
        if !self.wait_applied(seq, self.inner.config.ack_timeout) {
            tracing::warn!(
                seq,
                "acknowledged by JetStream but not yet applied on this replica"
            );
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(task) = self.reader.lock().take() {
            task.abort();
        }
    }
}

impl EventStore for Stream {
    fn ingest(&self, events: Vec<Event>, _feed: &dyn Feed) -> Result<Ingested, EventLogError> {
        let mut outcome = Ingested::default();
        let mut fresh = Vec::with_capacity(events.len());
        {
            let applied = self.inner.applied.lock();
            let mut batch = HashSet::default();
            for event in events {
                let id = event.event_id.as_str();
                if applied.seen.contains_key(id) || !batch.insert(CompactString::from(id)) {
                    outcome.duplicates += 1;
                } else {
                    fresh.push(event);
                }
            }
        }
        if fresh.is_empty() {
            return Ok(outcome);
        }
        let records = fresh
            .iter()
            .map(|e| {
                (
                    self.subject(e),
                    Some(e.event_id.clone()),
                    encode(LogRecordRef::Event(e)),
                )
            })
            .collect();
        let acks = self.publish(records)?;
        let mut last = 0;
        for (event, (seq, duplicate)) in fresh.into_iter().zip(acks) {
            last = last.max(seq);
            if duplicate {
                outcome.duplicates += 1;
            } else {
                outcome.accepted.push(event);
            }
        }
        self.settle(last);
        Ok(outcome)
    }

    fn append_brand(&self, setting: &BrandSetting, _feed: &dyn Feed) -> Result<(), EventLogError> {
        let subject = format!("{}.brands", self.inner.config.stream);
        let acks = self.publish(vec![(subject, None, encode(LogRecordRef::Brand(setting)))])?;
        self.settle(acks.iter().map(|a| a.0).max().unwrap_or(0));
        Ok(())
    }

    fn quiet_point(&self, copy: &mut dyn FnMut()) -> u64 {
        let _quiet = self.inner.feeding.write();
        copy();
        self.inner.applied.lock().seq
    }

    fn remembered_ids(&self) -> Vec<(CompactString, Secs)> {
        let applied = self.inner.applied.lock();
        applied.seen.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn newest(&self) -> Millis {
        Millis(self.inner.applied.lock().newest)
    }

    fn forget_before(&self, cutoff: Millis) -> usize {
        let cutoff = Secs::from(cutoff);
        let mut applied = self.inner.applied.lock();
        applied.seen.retain(|_, t| *t >= cutoff);
        applied.seen.len()
    }

    /// The stream is the fleet's, kept by its own limits: a snapshot of one
    /// replica releases nothing of it.
    fn release_through(&self, _seq: u64) -> Result<usize, EventLogError> {
        Ok(0)
    }
}

/// The reader: consumes the stream after what is applied, in order, and
/// feeds each record once. When NATS goes away it starts again from what
/// it applied, once a second, until the store is dropped.
async fn read(inner: Arc<Inner>, feed: Weak<dyn Feed>) {
    loop {
        match read_until_error(&inner, &feed).await {
            Ok(()) => return, // the feed is gone: the server stopped
            Err(e) => {
                if inner.reading.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "event stream reader stopped; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn read_until_error(
    inner: &Inner,
    feed: &Weak<dyn Feed>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let from = inner.applied.lock().seq + 1;
    let stream = inner.js.get_stream(&inner.config.stream).await?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: format!("{}.>", inner.config.stream),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    if !inner.reading.swap(true, Ordering::AcqRel) {
        tracing::info!(from, "event stream reader reading");
    }
    while let Some(message) = messages.next().await {
        let message = message?;
        let info = message.info()?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        inner.stream_last.fetch_max(seq + pending, Ordering::AcqRel);
        let Some(feed) = feed.upgrade() else {
            return Ok(());
        };
        let record = decode(&message.payload)
            .map_err(|reason| format!("stream sequence {seq} is not a log record ({reason})"))?;
        apply(inner, &*feed, seq, &record);
    }
    Err("the stream's consumer ended".into())
}

/// Feeds one record at `seq` unless it was applied before (a replay after a
/// reconnect, or a resend JetStream's window did not catch). The applied
/// position moves only once the feed has the record, so a waiting ingest
/// never returns before its events are applied here.
fn apply(inner: &Inner, feed: &dyn Feed, seq: u64, record: &LogRecord) {
    let _feeding = inner.feeding.read();
    let fresh = {
        let mut applied = inner.applied.lock();
        if seq <= applied.seq {
            return;
        }
        match record {
            LogRecord::Event(event) => {
                applied.newest = applied.newest.max(event.time.0);
                let id = CompactString::from(event.event_id.as_str());
                applied.seen.insert(id, event.time.into()).is_none()
            }
            LogRecord::Brand(_) => true,
        }
    };
    if fresh {
        match record {
            LogRecord::Event(event) => feed.event(event),
            LogRecord::Brand(setting) => feed.brand(setting),
        }
    }
    inner.applied.lock().seq = seq;
    inner.advanced.notify_all();
}
