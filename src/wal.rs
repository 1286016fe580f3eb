//! A write-ahead log: records are appended to segment files and synced to
//! disk before they are acknowledged, so an acknowledged record survives a
//! crash of the process or the machine.
//!
//! - **Framing**: each record is `[len: u32 LE][crc32(payload): u32 LE][payload]`.
//! - **Segments**: `wal-<first sequence number, 20 digits>.log`; a new one
//!   starts when the current one passes `segment_bytes`. Sequence numbers
//!   start at 1 and count records across segments.
//! - **Group commit**: appends from any thread go to one committer thread,
//!   which writes every batch waiting, syncs once (`fdatasync`) and then
//!   acknowledges them all: one sync per group, not per record.
//! - **Recovery**: [`Wal::open`] reads every segment in order. A record that
//!   is cut short or fails its checksum at the end of the *last* segment is
//!   what a crash mid-write leaves: it was never acknowledged, so it is
//!   dropped (the file is truncated there) with a warning. The same damage
//!   anywhere else is corruption of acknowledged data and refuses to open.
//! - **Truncation**: after a snapshot covers records up to `seq`,
//!   [`Wal::truncate_through`] deletes the segments holding only older ones.
//!
//! Plain blocking I/O on a thread of its own: the async server calls
//! [`Wal::append`] from its blocking pool.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

const HEADER: usize = 8;
/// Larger records are refused: a length beyond it in a file is damage.
pub const MAX_RECORD: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path}: record {seq} at byte {offset} is damaged ({reason}) and is not the last one written; refusing to drop acknowledged records"
    )]
    Corrupt {
        path: PathBuf,
        seq: u64,
        offset: u64,
        reason: &'static str,
    },
    #[error("record of {0} bytes is larger than the {MAX_RECORD}-byte limit")]
    TooLarge(usize),
    #[error("the log's writer has stopped: {0}")]
    Stopped(String),
    #[error("{0}: in use by another process (one writer per log directory)")]
    Locked(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`Wal::open`] found on disk.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    /// Every intact record after `after`, oldest first, with its sequence number.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Bytes dropped from a torn last record (0 when the log ended cleanly).
    pub torn_bytes: u64,
    /// The sequence number of the last record (or `after`, if later): the
    /// next append is numbered one more.
    pub last_seq: u64,
}

/// A segment file and the sequence number of its first record.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("wal-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("wal-{first:020}.log"))
}

/// A segment's intact records and, if it ends in a damaged record, its byte
/// offset and what is wrong with it.
type SegmentRead = (Vec<(u64, Vec<u8>)>, Option<(u64, &'static str)>);

/// Reads one segment whose first record is number `seq`.
fn read_segment(path: &Path, mut seq: u64) -> Result<SegmentRead, WalError> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut offset = 0u64;
    while offset < len {
        let mut header = [0u8; HEADER];
        if len - offset < HEADER as u64 {
            return Ok((records, Some((offset, "cut short in its header"))));
        }
        reader.read_exact(&mut header).map_err(io_err(path))?;
        let size = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if size > MAX_RECORD {
            return Ok((records, Some((offset, "impossible length"))));
        }
        if len - offset - (HEADER as u64) < size as u64 {
            return Ok((records, Some((offset, "cut short in its payload"))));
        }
        let mut payload = vec![0u8; size];
        reader.read_exact(&mut payload).map_err(io_err(path))?;
        if crc32fast::hash(&payload) != crc {
            return Ok((records, Some((offset, "checksum mismatch"))));
        }
        records.push((seq, payload));
        seq += 1;
        offset += (HEADER + size) as u64;
    }
    Ok((records, None))
}

#[expect(
    clippy::disallowed_methods,
    reason = "sync latency is an operational measurement, not an input"
)]
fn clock() -> std::time::Instant {
    std::time::Instant::now()
}

/// Settings.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A new segment starts once the current one is this large.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
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
}

impl Tail {
    fn write(&mut self, records: &[Vec<u8>]) -> io::Result<u64> {
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.len() + HEADER).sum());
        for r in records {
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(r).to_le_bytes());
            buf.extend_from_slice(r);
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
        let path = segment_path(&self.dir, self.next_seq);
        self.file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.bytes = 0;
        // The new file's directory entry must survive a crash too.
        File::open(&self.dir)?.sync_all()
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
                metrics::histogram!("fairflow_wal_sync_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("fairflow_wal_group_batches").record(group.len() as f64);
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
        let segs = segments(dir)?;
        let mut recovered = Recovered::default();
        let mut next_seq = segs.first().map_or(after + 1, |s| s.0);
        for (i, (first, path)) in segs.iter().enumerate() {
            // A gap is fine only where the snapshot covers it.
            let gap_covered = *first > next_seq && *first <= after + 1;
            if *first != next_seq && !gap_covered {
                return Err(WalError::Corrupt {
                    path: path.clone(),
                    seq: next_seq,
                    offset: 0,
                    reason: "a segment is missing before this one",
                });
            }
            let (records, damage) = read_segment(path, *first)?;
            next_seq = first + records.len() as u64;
            recovered
                .records
                .extend(records.into_iter().filter(|(seq, _)| *seq > after));
            if let Some((offset, reason)) = damage {
                if i + 1 != segs.len() {
                    return Err(WalError::Corrupt {
                        path: path.clone(),
                        seq: next_seq,
                        offset,
                        reason,
                    });
                }
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(path))?;
                let len = file.metadata().map_err(io_err(path))?.len();
                recovered.torn_bytes = len - offset;
                file.set_len(offset).map_err(io_err(path))?;
                file.sync_all().map_err(io_err(path))?;
                tracing::warn!(
                    path = %path.display(),
                    seq = next_seq,
                    offset,
                    bytes = len - offset,
                    reason,
                    "dropped a torn last record (a crash mid-write; it was never acknowledged)"
                );
            }
        }
        // A snapshot past everything on disk (the log's tail was lost
        // with nothing acknowledged in it): numbering resumes after the
        // snapshot, in a segment of its own so names and numbers agree.
        let path = match segs.last() {
            Some((_, path)) if next_seq > after => path.clone(),
            _ => segment_path(dir, after + 1),
        };
        let next_seq = next_seq.max(after + 1);
        recovered.last_seq = next_seq - 1;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let bytes = file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
        let tail = Tail {
            dir: dir.to_path_buf(),
            file,
            bytes,
            next_seq,
            segment_bytes: options.segment_bytes,
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
        if let Some(r) = records.iter().find(|r| r.len() > MAX_RECORD) {
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
        let segs = segments(&self.dir)?;
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
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&self.dir))?;
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
mod tests {
    use super::*;
    use std::sync::Arc;

    fn small() -> WalOptions {
        WalOptions { segment_bytes: 256 }
    }

    fn payloads(recovered: &Recovered) -> Vec<String> {
        recovered
            .records
            .iter()
            .map(|(_, p)| String::from_utf8(p.clone()).unwrap())
            .collect()
    }

    #[test]
    fn appended_records_come_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, rec) = Wal::open(dir.path(), 0, small()).unwrap();
            assert!(rec.records.is_empty());
            for i in 0..50 {
                let seq = wal
                    .append(vec![format!("event-{i:03}").into_bytes()])
                    .unwrap();
                assert_eq!(seq, i + 1);
            }
        }
        assert!(segments(dir.path()).unwrap().len() > 2, "rotated");
        let (wal, rec) = Wal::open(dir.path(), 0, small()).unwrap();
        let got = payloads(&rec);
        assert_eq!(got.len(), 50);
        assert_eq!(got[0], "event-000");
        assert_eq!(got[49], "event-049");
        assert_eq!(rec.records.last().unwrap().0, 50);
        // Appends continue the numbering.
        assert_eq!(wal.append(vec![b"next".to_vec()]).unwrap(), 51);
    }

    #[test]
    fn one_writer_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 0, small()).unwrap();
        let err = Wal::open(dir.path(), 0, small()).err().expect("locked");
        assert!(matches!(err, WalError::Locked(_)), "{err}");
        drop(wal);
        assert!(
            Wal::open(dir.path(), 0, small()).is_ok(),
            "released on drop"
        );
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
            wal.append(vec![b"one".to_vec(), b"two".to_vec()]).unwrap();
        }
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        // A crash mid-write: a header announcing 100 bytes, then 5 of them.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&100u32.to_le_bytes()).unwrap();
        f.write_all(&0u32.to_le_bytes()).unwrap();
        f.write_all(b"three").unwrap();
        drop(f);
        let (wal, rec) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
        assert_eq!(payloads(&rec), ["one", "two"]);
        assert_eq!(rec.torn_bytes, 13);
        assert_eq!(wal.append(vec![b"three".to_vec()]).unwrap(), 3);
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
        assert_eq!(payloads(&rec), ["one", "two", "three"]);
        assert_eq!(rec.torn_bytes, 0);
    }

    #[test]
    fn a_checksum_failure_at_the_tail_is_torn_but_inside_the_log_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path(), 0, small()).unwrap();
            for i in 0..40 {
                wal.append(vec![format!("record-{i}").into_bytes()])
                    .unwrap();
            }
        }
        let segs = segments(dir.path()).unwrap();
        // Flip a payload byte of the first record of the first segment.
        let first = &segs[0].1;
        let mut bytes = std::fs::read(first).unwrap();
        bytes[HEADER] ^= 0xff;
        std::fs::write(first, bytes).unwrap();
        let err = Wal::open(dir.path(), 0, small()).err().expect("refused");
        assert!(matches!(err, WalError::Corrupt { seq: 1, .. }), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn a_missing_segment_the_snapshot_does_not_cover_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path(), 0, small()).unwrap();
            for i in 0..40 {
                wal.append(vec![format!("record-{i:02}").into_bytes()])
                    .unwrap();
            }
        }
        let segs = segments(dir.path()).unwrap();
        assert!(segs.len() >= 3);
        std::fs::remove_file(&segs[1].1).unwrap();
        let err = Wal::open(dir.path(), 0, small()).err().expect("refused");
        assert!(err.to_string().contains("missing"), "{err}");
        // With a snapshot covering the hole, it opens.
        let covered = segs[2].0 - 1;
        let (_, rec) = Wal::open(dir.path(), covered, small()).unwrap();
        assert_eq!(rec.records.first().unwrap().0, covered + 1);
    }

    #[test]
    fn records_before_a_snapshot_are_skipped_and_their_segments_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 0, small()).unwrap();
        for i in 0..40 {
            wal.append(vec![format!("record-{i:02}").into_bytes()])
                .unwrap();
        }
        let before = segments(dir.path()).unwrap().len();
        let removed = wal.truncate_through(25).unwrap();
        assert!(removed > 0 && removed < before);
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), 25, small()).unwrap();
        let seqs: Vec<u64> = rec.records.iter().map(|r| r.0).collect();
        assert_eq!(seqs, (26..=40).collect::<Vec<_>>());
        assert_eq!(payloads(&rec)[0], "record-25");
    }

    #[test]
    fn a_log_behind_its_snapshot_resumes_numbering_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, rec) = Wal::open(dir.path(), 1000, small()).unwrap();
        assert!(rec.records.is_empty());
        assert_eq!(wal.append(vec![b"x".to_vec()]).unwrap(), 1001);
        drop(wal);
        let (wal, rec) = Wal::open(dir.path(), 2000, small()).unwrap();
        assert!(rec.records.is_empty());
        assert_eq!(wal.append(vec![b"y".to_vec()]).unwrap(), 2001);
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), 2000, small()).unwrap();
        assert_eq!(payloads(&rec), ["y"]);
    }

    #[test]
    fn concurrent_appends_are_all_durable_and_numbered_once() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
        let wal = Arc::new(wal);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            wal.append(vec![format!("{t}-{i}").into_bytes(), b"pair".to_vec()])
                                .unwrap()
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut last: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        last.sort_unstable();
        last.dedup();
        assert_eq!(last.len(), 400, "every batch got its own sequence number");
        drop(Arc::try_unwrap(wal).ok().unwrap());
        let (_, rec) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
        assert_eq!(rec.records.len(), 800);
        // A batch stays together: each "t-i" is followed by its "pair".
        for pair in rec.records.chunks(2) {
            assert_ne!(pair[0].1, b"pair");
            assert_eq!(pair[1].1, b"pair");
        }
    }
}
