//! A write-ahead log: records are appended to segment files and synced to
//! disk before they are acknowledged, so an acknowledged record survives a
//! crash of the process or the machine.
//!
//! - **Framing** ([`frame`]): a segment header naming its first record, then
//!   records `[len: u32 LE][crc32(payload): u32 LE][payload]`.
//! - **Segments**: `wal-<first sequence number, 20 digits>.log`; a new one
//!   starts when the current one passes `segment_bytes`. Sequence numbers
//!   start at 1 and count records across segments.
//! - **Group commit**: appends from any thread go to one committer thread,
//!   which writes every batch waiting, syncs once (`fdatasync`) and then
//!   acknowledges them all: one sync per group, not per record.
//! - **Recovery** ([`survey`]): [`Wal::open`] reads every segment in order
//!   and checks that they follow on from each other and from the snapshot.
//!   Only a *torn tail* of the last segment (its final record cut short, or
//!   zeros after the last intact record, with nothing intact after) is what
//!   a crash mid-write leaves: it was never acknowledged, so it is cut with
//!   a warning naming file and offset. Anything else (a bad record with
//!   intact ones after it, damage in an earlier segment, a missing or
//!   misnamed segment) may hold acknowledged records: the log refuses to
//!   open, naming file, record and offset, and [`check`] says what a repair
//!   at that offset would drop (docs/events.md).
//! - **Truncation**: after a snapshot covers records up to `seq`,
//!   [`Wal::truncate_through`] deletes the segments holding only older ones.
//!
//! Plain blocking I/O on a thread of its own: the async server calls
//! [`Wal::append`] from its blocking pool.

pub mod check;
pub mod frame;
pub mod survey;

pub use frame::MAX_RECORD;
pub use survey::numbered_files;

use frame::Piece;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use survey::{segment_files, segment_path};

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path}: record {seq} at byte {offset}: {reason}; refusing to start, which could drop acknowledged records (`fairflow events check` lists what a repair would drop)"
    )]
    Corrupt {
        path: PathBuf,
        seq: u64,
        offset: u64,
        reason: String,
    },
    #[error("record of {0} bytes is outside the 1..={MAX_RECORD}-byte limit")]
    TooLarge(usize),
    #[error("the log's writer has stopped: {0}")]
    Stopped(String),
    #[error("{0}: in use by another process (one writer per log directory)")]
    Locked(PathBuf),
}

impl From<survey::Problem> for WalError {
    fn from(p: survey::Problem) -> WalError {
        WalError::Corrupt {
            path: p.path,
            seq: p.seq,
            offset: p.offset,
            reason: p.reason,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A recovered record: its number, bytes and where it is on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
    pub path: PathBuf,
    pub offset: u64,
}

/// What [`Wal::open`] found on disk.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    /// Every intact record after `after`, oldest first.
    pub records: Vec<Record>,
    /// Bytes cut from a torn tail (0 when the log ended cleanly).
    pub torn_bytes: u64,
    /// The sequence number of the last record (or `after`, if later): the
    /// next append is numbered one more.
    pub last_seq: u64,
}

/// Takes the directory's `LOCK`: one writer (server or repair) at a time.
fn lock(dir: &Path) -> Result<File, WalError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let lock_path = dir.join("LOCK");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock.try_lock()
        .map_err(|_| WalError::Locked(dir.to_path_buf()))?;
    Ok(lock)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Creates segment `first` with its header, synced with its directory
/// entry, and returns it open for appending.
fn create_segment(dir: &Path, first: u64) -> io::Result<File> {
    let path = segment_path(dir, first);
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    let mut header = Vec::with_capacity(frame::SEGMENT_HEADER);
    frame::segment_header(&mut header, first);
    file.write_all(&header)?;
    file.sync_data()?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

#[expect(
    clippy::disallowed_methods,
    reason = "sync latency is an operational measurement, not an input"
)]
fn clock() -> std::time::Instant {
    std::time::Instant::now()
}

/// One group commit, for whoever measures the log (the server's metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Commit {
    /// How long the sync took.
    pub sync_seconds: f64,
    /// How many appends it acknowledged at once.
    pub batches: usize,
}

/// Settings.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A new segment starts once the current one is this large.
    pub segment_bytes: u64,
    /// Told of every group commit, on the committer thread: the log names
    /// no metrics itself.
    pub on_commit: fn(Commit),
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            on_commit: |_| {},
        }
    }
}

type Batch = (Vec<Vec<u8>>, mpsc::SyncSender<Result<u64, String>>);

/// The log. Cloneable handles are not needed: share it behind an `Arc`.
pub struct Wal {
    dir: PathBuf,
    /// Holds an exclusive lock on `dir/LOCK` while the log is open.
    _lock: File,
    to_committer: Option<mpsc::Sender<Batch>>,
    committer: Option<JoinHandle<()>>,
}

/// The committer's open segment.
struct Tail {
    dir: PathBuf,
    file: File,
    bytes: u64,
    next_seq: u64,
    segment_bytes: u64,
    on_commit: fn(Commit),
}

impl Tail {
    fn write(&mut self, records: &[Vec<u8>]) -> io::Result<u64> {
        let size = records.iter().map(|r| r.len() + frame::RECORD_HEADER).sum();
        let mut buf = Vec::with_capacity(size);
        for r in records {
            frame::frame(&mut buf, r);
        }
        self.file.write_all(&buf)?;
        self.bytes += buf.len() as u64;
        self.next_seq += records.len() as u64;
        Ok(self.next_seq - 1)
    }

    /// Starts a new segment when this one is full (after a sync, so a
    /// segment is complete on disk before the next one exists).
    fn rotate_if_full(&mut self) -> io::Result<()> {
        if self.bytes < self.segment_bytes {
            return Ok(());
        }
        self.file = create_segment(&self.dir, self.next_seq)?;
        self.bytes = frame::SEGMENT_HEADER as u64;
        Ok(())
    }

    /// Serves batches until every sender is gone.
    fn run(mut self, batches: mpsc::Receiver<Batch>) {
        while let Ok(first) = batches.recv() {
            let mut group = vec![first];
            group.extend(batches.try_iter());
            let written: io::Result<Vec<u64>> = group
                .iter()
                .map(|(records, _)| self.write(records))
                .collect();
            let outcome = written.and_then(|last| {
                let started = clock();
                self.file.sync_data()?;
                (self.on_commit)(Commit {
                    sync_seconds: started.elapsed().as_secs_f64(),
                    batches: group.len(),
                });
                self.rotate_if_full()?;
                Ok(last)
            });
            match outcome {
                Ok(last) => {
                    for ((_, reply), seq) in group.into_iter().zip(last) {
                        let _ = reply.send(Ok(seq));
                    }
                }
                Err(e) => {
                    // Nothing after a failed write or sync can be trusted:
                    // refuse this group and every later one.
                    let message = e.to_string();
                    for (_, reply) in group {
                        let _ = reply.send(Err(message.clone()));
                    }
                    for (_, reply) in batches.iter() {
                        let _ = reply.send(Err(message.clone()));
                    }
                    return;
                }
            }
        }
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir` and returns the records after
    /// sequence number `after` (a snapshot's; 0 for all).
    pub fn open(dir: &Path, after: u64, options: WalOptions) -> Result<(Wal, Recovered), WalError> {
        let lock = lock(dir)?;
        let mut survey = survey::survey(dir, after, false)?;
        if let Some(problem) = survey.problems.first() {
            return Err(problem.clone().into());
        }
        let mut recovered = Recovered {
            last_seq: survey.next_seq - 1,
            ..Recovered::default()
        };
        if let Some((s, p)) = survey.torn {
            let segment = &mut survey.segments[s];
            let Piece::Bad { offset, defect, .. } = segment.scanned.pieces[p] else {
                unreachable!("a torn tail is a bad piece")
            };
            let path = &segment.path;
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            recovered.torn_bytes = segment.bytes.len() as u64 - offset;
            file.set_len(offset).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            tracing::warn!(
                path = %path.display(),
                seq = survey.next_seq,
                offset,
                bytes = recovered.torn_bytes,
                reason = defect.describe(),
                "cut a torn tail (a crash mid-write: never acknowledged)"
            );
            segment.bytes.truncate(offset as usize);
        }
        for segment in &survey.segments {
            for (seq, piece) in segment.numbered().filter(|(seq, _)| *seq > after) {
                recovered.records.push(Record {
                    seq,
                    payload: segment.payload(piece).to_vec(),
                    path: segment.path.clone(),
                    offset: piece.offset(),
                });
            }
        }
        let next_seq = survey.next_seq;
        // Appends go to the last segment, or to a new one when there is
        // none or the last one lost even its header to a torn write.
        let (file, bytes) = match survey.segments.last() {
            Some(last) if !last.bytes.is_empty() => {
                let path = &last.path;
                let mut file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(io_err(path))?;
                let bytes = file.seek(SeekFrom::End(0)).map_err(io_err(path))?;
                (file, bytes)
            }
            last => {
                let first = last.map_or(next_seq, |s| s.first);
                let path = segment_path(dir, first);
                if last.is_some() {
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                }
                let file = create_segment(dir, first).map_err(io_err(&path))?;
                (file, frame::SEGMENT_HEADER as u64)
            }
        };
        let tail = Tail {
            dir: dir.to_path_buf(),
            file,
            bytes,
            next_seq,
            segment_bytes: options.segment_bytes,
            on_commit: options.on_commit,
        };
        let (tx, rx) = mpsc::channel::<Batch>();
        let committer = std::thread::Builder::new()
            .name("wal-commit".into())
            .spawn(move || tail.run(rx))
            .map_err(io_err(dir))?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                _lock: lock,
                to_committer: Some(tx),
                committer: Some(committer),
            },
            recovered,
        ))
    }

    /// Appends `records` and returns once they are on disk, with the
    /// sequence number of the last one. Blocks the calling thread.
    pub fn append(&self, records: Vec<Vec<u8>>) -> Result<u64, WalError> {
        if let Some(r) = records
            .iter()
            .find(|r| r.is_empty() || r.len() > MAX_RECORD)
        {
            return Err(WalError::TooLarge(r.len()));
        }
        let (reply, done) = mpsc::sync_channel(1);
        self.to_committer
            .as_ref()
            .expect("open until dropped")
            .send((records, reply))
            .map_err(|_| WalError::Stopped("committer gone".into()))?;
        done.recv()
            .map_err(|_| WalError::Stopped("committer gone".into()))?
            .map_err(WalError::Stopped)
    }

    /// Deletes the segments whose records all have sequence numbers up to
    /// `seq` (a snapshot holds them). The open segment is never deleted.
    pub fn truncate_through(&self, seq: u64) -> Result<usize, WalError> {
        let segs = segment_files(&self.dir)?;
        let mut removed = 0;
        // A segment ends where the next begins; the last one is open.
        for pair in segs.windows(2) {
            let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
            if next_first - 1 <= seq {
                std::fs::remove_file(path).map_err(io_err(path))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Closing the channel ends the committer once it has served
        // everything already sent.
        drop(self.to_committer.take());
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
