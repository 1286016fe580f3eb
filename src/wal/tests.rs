//! The log's rules: what is appended comes back in order across segments
//! and restarts; a torn tail is cut and the log goes on; damage, a missing
//! or misnamed segment, or a log behind its snapshot refuses to open, naming
//! file and offset.

use super::*;
use std::sync::Arc;

pub(super) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    segment_files(dir)
}

pub(super) fn small() -> WalOptions {
    WalOptions {
        segment_bytes: 256,
        ..WalOptions::default()
    }
}

fn payloads(recovered: &Recovered) -> Vec<String> {
    recovered
        .records
        .iter()
        .map(|r| String::from_utf8(r.payload.clone()).unwrap())
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
    assert_eq!(rec.records.last().unwrap().seq, 50);
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
    bytes[frame::SEGMENT_HEADER + frame::RECORD_HEADER] ^= 0xff;
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
    assert_eq!(rec.records.first().unwrap().seq, covered + 1);
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
    let seqs: Vec<u64> = rec.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (26..=40).collect::<Vec<_>>());
    assert_eq!(payloads(&rec)[0], "record-25");
}

#[test]
fn a_log_behind_its_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Wal::open(dir.path(), 1000, small()).err().expect("refused");
    assert!(err.to_string().contains("no log segments"), "{err}");
    {
        let (wal, _) = Wal::open(dir.path(), 0, small()).unwrap();
        wal.append(vec![b"x".to_vec()]).unwrap();
    }
    let err = Wal::open(dir.path(), 5, small()).err().expect("refused");
    assert!(
        err.to_string().contains("ends at record 1") && err.to_string().contains("wal-"),
        "{err}"
    );
}

/// Writes `n` records of about 10 bytes into small segments.
pub(super) fn filled(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, small()).unwrap();
    for i in 0..n {
        wal.append(vec![format!("record-{i:03}").into_bytes()])
            .unwrap();
    }
    dir
}

#[test]
fn a_flipped_byte_mid_way_through_the_last_segment_refuses_and_changes_nothing() {
    let dir = filled(40);
    let (_, last) = segments(dir.path()).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    assert!(bytes.len() > 100, "several records in the last segment");
    let second = frame::SEGMENT_HEADER + frame::RECORD_HEADER + 10;
    bytes[second + frame::RECORD_HEADER + 3] ^= 0x20;
    std::fs::write(&last, &bytes).unwrap();
    let err = Wal::open(dir.path(), 0, small()).err().expect("refused");
    let WalError::Corrupt { path, offset, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((path, *offset), (&last, second as u64));
    assert!(err.to_string().contains("intact records follow"), "{err}");
    assert_eq!(std::fs::read(&last).unwrap(), bytes, "nothing cut");
}

#[test]
fn a_zero_filled_tail_is_cut_and_every_record_kept() {
    let dir = filled(40);
    let (_, last) = segments(dir.path()).unwrap().pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let f = OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len + 8192).unwrap();
    drop(f);
    let (wal, rec) = Wal::open(dir.path(), 0, small()).unwrap();
    assert_eq!(rec.records.len(), 40);
    assert_eq!(rec.torn_bytes, 8192);
    assert_eq!(wal.append(vec![b"next".to_vec()]).unwrap(), 41);
}

#[test]
fn a_missing_first_segment_is_refused() {
    let dir = filled(40);
    let segs = segments(dir.path()).unwrap();
    std::fs::remove_file(&segs[0].1).unwrap();
    let err = Wal::open(dir.path(), 0, small()).err().expect("refused");
    let WalError::Corrupt { path, seq, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((path, *seq), (&segs[1].1, 1));
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn a_renamed_segment_is_refused() {
    let dir = filled(40);
    let segs = segments(dir.path()).unwrap();
    // Swap two segments' names: their headers disagree with them.
    let tmp = dir.path().join("tmp");
    std::fs::rename(&segs[1].1, &tmp).unwrap();
    std::fs::rename(&segs[2].1, &segs[1].1).unwrap();
    std::fs::rename(&tmp, &segs[2].1).unwrap();
    let err = Wal::open(dir.path(), 0, small()).err().expect("refused");
    assert!(err.to_string().contains("renamed"), "{err}");
}

#[test]
fn damage_in_segments_the_snapshot_covers_is_not_read() {
    let dir = filled(40);
    let segs = segments(dir.path()).unwrap();
    std::fs::write(&segs[0].1, b"garbage that is no log").unwrap();
    let covered = segs[1].0 - 1;
    let (_, rec) = Wal::open(dir.path(), covered, small()).unwrap();
    assert_eq!(rec.records.first().unwrap().seq, covered + 1);
    assert_eq!(rec.records.len() as u64, 40 - covered);
}

#[test]
fn empty_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, small()).unwrap();
    assert!(matches!(
        wal.append(vec![Vec::new()]),
        Err(WalError::TooLarge(0))
    ));
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
        assert_ne!(pair[0].payload, b"pair");
        assert_eq!(pair[1].payload, b"pair");
    }
}
