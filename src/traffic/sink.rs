//! Writing a traffic log off the request path: callers offer records to a
//! bounded queue and never wait; one writer thread appends them to rotating
//! files. When the queue is full the record is dropped and counted, so a slow
//! disk costs log completeness, never request latency.
//!
//! Files are `traffic-<first record's Unix ms, 13+ digits>-<seq>.jsonl` in
//! the log directory, each starting with a header, so sorting names sorts
//! them in time and any one can be read alone. A file is closed and the next
//! begun when it passes `rotate_bytes`, or when a record is `rotate_ms` past
//! the file's first record (record time, not the clock: a replay of the log
//! sees the same boundaries).

use super::{Header, Record};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub dir: PathBuf,
    pub rotate_bytes: u64,
    pub rotate_ms: i64,
    /// Records waiting at most; more are dropped.
    pub queue: usize,
    /// The header's `source`.
    pub source: String,
    /// Told of what happens to records and files (the server's metrics):
    /// the sink names no metrics itself.
    pub on_event: fn(SinkEvent),
}

/// What the sink tells `on_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkEvent {
    Written,
    Dropped,
    Failed,
    FileStarted,
}

/// Counts, readable while the sink runs.
#[derive(Debug, Default)]
pub struct SinkCounts {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub files: AtomicU64,
}

pub struct TrafficSink {
    to_writer: Option<SyncSender<Record>>,
    writer: Option<JoinHandle<()>>,
    counts: Arc<SinkCounts>,
    on_event: fn(SinkEvent),
}

impl TrafficSink {
    /// Creates the directory and starts the writer thread.
    pub fn open(options: SinkOptions) -> std::io::Result<TrafficSink> {
        std::fs::create_dir_all(&options.dir)?;
        let (tx, rx) = sync_channel(options.queue.max(1));
        let counts = Arc::new(SinkCounts::default());
        let writer_counts = counts.clone();
        let on_event = options.on_event;
        let writer = std::thread::Builder::new()
            .name("traffic-log".into())
            .spawn(move || Writer::new(options, writer_counts).run(rx))?;
        Ok(TrafficSink {
            on_event,
            to_writer: Some(tx),
            writer: Some(writer),
            counts,
        })
    }

    /// Queues `record` for writing; false (and counted) when the queue is
    /// full. Never blocks.
    pub fn offer(&self, record: Record) -> bool {
        let tx = self.to_writer.as_ref().expect("open until dropped");
        match tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                (self.on_event)(SinkEvent::Dropped);
                false
            }
        }
    }

    pub fn counts(&self) -> &SinkCounts {
        &self.counts
    }
}

impl Drop for TrafficSink {
    /// Writes everything queued, flushes and closes the file.
    fn drop(&mut self) {
        drop(self.to_writer.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

struct Open {
    out: BufWriter<File>,
    path: PathBuf,
    bytes: u64,
    first_ms: i64,
}

struct Writer {
    options: SinkOptions,
    counts: Arc<SinkCounts>,
    file: Option<Open>,
    seq: u64,
    line: Vec<u8>,
}

impl Writer {
    fn new(options: SinkOptions, counts: Arc<SinkCounts>) -> Writer {
        // Numbering continues after files a previous run left.
        let seq = existing(&options.dir);
        Writer {
            options,
            counts,
            file: None,
            seq,
            line: Vec::with_capacity(4096),
        }
    }

    fn run(mut self, rx: Receiver<Record>) {
        while let Ok(record) = rx.recv() {
            self.write(&record);
            // Drain what is waiting, then flush: readers see whole lines soon
            // after a burst, and a busy writer flushes once per burst.
            while let Ok(record) = rx.try_recv() {
                self.write(&record);
            }
            self.flush();
        }
        self.flush();
    }

    fn write(&mut self, record: &Record) {
        let time = record.time().map_or(0, |t| t.0);
        let rotate = self.file.as_ref().is_some_and(|f| {
            f.bytes >= self.options.rotate_bytes || time - f.first_ms >= self.options.rotate_ms
        });
        if rotate {
            self.flush();
            self.file = None;
        }
        if self.file.is_none()
            && let Err(e) = self.start(time)
        {
            self.fail(&e);
            return;
        }
        self.line.clear();
        record.write_line(&mut self.line);
        let f = self.file.as_mut().expect("started above");
        match f.out.write_all(&self.line) {
            Ok(()) => {
                f.bytes += self.line.len() as u64;
                self.counts.written.fetch_add(1, Ordering::Relaxed);
                (self.options.on_event)(SinkEvent::Written);
            }
            Err(e) => {
                self.fail(&e);
                // Start afresh on the next record rather than append after
                // a half-written line.
                self.file = None;
            }
        }
    }

    fn start(&mut self, first_ms: i64) -> std::io::Result<()> {
        self.seq += 1;
        let path = self.options.dir.join(format!(
            "traffic-{:013}-{:06}.jsonl",
            first_ms.max(0),
            self.seq
        ));
        let mut out = BufWriter::new(File::create_new(&path)?);
        let mut header = Vec::new();
        Record::Header(Header::new(&self.options.source)).write_line(&mut header);
        out.write_all(&header)?;
        self.counts.files.fetch_add(1, Ordering::Relaxed);
        (self.options.on_event)(SinkEvent::FileStarted);
        tracing::info!(path = %path.display(), "traffic log file started");
        self.file = Some(Open {
            out,
            path,
            bytes: header.len() as u64,
            first_ms,
        });
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.out.flush()
        {
            let path = f.path.clone();
            tracing::error!(path = %path.display(), error = %e, "traffic log flush failed");
            self.file = None;
        }
    }

    fn fail(&self, e: &std::io::Error) {
        self.counts.failed.fetch_add(1, Ordering::Relaxed);
        (self.options.on_event)(SinkEvent::Failed);
        tracing::error!(dir = %self.options.dir.display(), error = %e, "traffic log write failed");
    }
}

/// How many traffic files `dir` holds already.
fn existing(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("traffic-") && n.ends_with(".jsonl"))
            })
            .count() as u64
    })
}

/// The traffic files of `dir` in time order (their names sort so).
pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("traffic-") && n.ends_with(".jsonl"))
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Millis;
    use crate::traffic::{OnError, StreamStatus, TrafficReader};

    fn status(t: i64) -> Record {
        Record::StreamStatus(StreamStatus {
            time: Millis(t),
            stream_id: "live-1".into(),
            live: t % 2 == 0,
        })
    }

    fn read_all(dir: &Path) -> Vec<Vec<Record>> {
        files_in(dir)
            .unwrap()
            .iter()
            .map(|p| {
                let file = std::io::BufReader::new(File::open(p).unwrap());
                TrafficReader::new(file, p.display().to_string(), OnError::Fail)
                    .map(|r| r.unwrap().1)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn records_rotate_by_time_and_size_and_every_file_has_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let options = SinkOptions {
            dir: dir.path().to_path_buf(),
            rotate_bytes: u64::MAX,
            rotate_ms: 1000,
            queue: 10_000,
            source: "test".into(),
            on_event: |_| {},
        };
        let sink = TrafficSink::open(options.clone()).unwrap();
        for t in 0..2500 {
            assert!(sink.offer(status(t)));
        }
        drop(sink);
        let files = read_all(dir.path());
        assert_eq!(files.len(), 3, "one per second of record time");
        for f in &files {
            assert!(matches!(f[0], Record::Header(_)));
        }
        let records: Vec<&Record> = files.iter().flat_map(|f| &f[1..]).collect();
        assert_eq!(records.len(), 2500);
        assert_eq!(records[1234], &status(1234), "in order");

        // By size: ~60 bytes a record, 10 kB a file. A second run continues
        // the numbering after the files already there.
        let sink = TrafficSink::open(SinkOptions {
            rotate_ms: i64::MAX,
            rotate_bytes: 10_000,
            ..options
        })
        .unwrap();
        for _ in 0..1000 {
            assert!(sink.offer(status(5000)));
        }
        drop(sink);
        let files = read_all(dir.path());
        assert!(files.len() >= 3 + 5, "{}", files.len());
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let sink = TrafficSink::open(SinkOptions {
            dir: dir.path().to_path_buf(),
            rotate_bytes: u64::MAX,
            rotate_ms: i64::MAX,
            queue: 1,
            source: "test".into(),
            on_event: |_| {},
        })
        .unwrap();
        let offered = 20_000;
        let accepted = (0..offered).filter(|&t| sink.offer(status(t))).count() as u64;
        let dropped = sink.counts().dropped.load(Ordering::Relaxed);
        assert_eq!(accepted + dropped, offered as u64);
        assert!(dropped > 0, "a queue of 1 cannot keep up with a tight loop");
        drop(sink);
        let written: usize = read_all(dir.path()).iter().map(|f| f.len() - 1).sum();
        assert_eq!(written as u64, accepted, "everything accepted is written");
    }
}
