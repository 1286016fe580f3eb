//! What `fairflow events check` and `fairflow events repair` do: list every
//! place where the log may have lost acknowledged records and exactly which
//! intact records a repair there would drop; and cut the log at one such
//! place, only when told its file and offset, keeping what is cut.
//!
//! The log does not know what its records mean: the caller passes
//! `describe`, which names a record for people (an event id) or says why
//! its bytes are not a record, which is damage too.

use super::frame::Piece;
use super::survey::{self, Problem, Survey, segment_path};
use super::{WalError, create_segment, io_err, lock, sync_dir};
use std::path::{Path, PathBuf};

/// An intact record a repair would drop.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    pub path: PathBuf,
    pub offset: u64,
    /// Its sequence number, where it can be known (not after damage in the
    /// same segment).
    pub seq: Option<u64>,
    /// Held by the snapshot as well: dropping it from the log loses nothing.
    pub in_snapshot: bool,
    /// `describe`'s name for it.
    pub name: String,
}

/// One place where the log is damaged, and what cutting it there drops.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    pub problem: Problem,
    pub dropped: Vec<Dropped>,
    /// Bytes after the cut that are not intact records.
    pub unreadable_bytes: u64,
}

impl Damage {
    /// The acknowledged records a repair here loses for good.
    pub fn lost(&self) -> impl Iterator<Item = &Dropped> {
        self.dropped.iter().filter(|d| !d.in_snapshot)
    }
}

/// The log directory as `check` found it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub snapshot_seq: u64,
    pub segments: usize,
    pub records: usize,
    /// A torn tail a start would cut: file, offset and bytes.
    pub torn: Option<(PathBuf, u64, u64)>,
    /// Every damage, in log order; a start refuses while there is one.
    pub damage: Vec<Damage>,
}

/// Reads the log in `dir` against a snapshot at `after`. Reads only.
pub fn check(
    dir: &Path,
    after: u64,
    describe: impl Fn(&[u8]) -> Result<String, String>,
) -> Result<Report, WalError> {
    let survey = survey::survey(dir, after, true)?;
    let mut problems = survey.problems.clone();
    let mut records = 0;
    for segment in &survey.segments {
        for (i, piece) in segment.scanned.pieces.iter().enumerate() {
            if let Piece::Record { offset, .. } = piece {
                records += 1;
                if let Err(reason) = describe(segment.payload(piece)) {
                    problems.push(Problem {
                        path: segment.path.clone(),
                        offset: *offset,
                        seq: segment.seq_of(i).unwrap_or(0),
                        reason: format!("not a log record: {reason}"),
                    });
                }
            }
        }
    }
    let position = |p: &Problem| {
        let segment = survey.segments.iter().position(|s| s.path == p.path);
        (segment.unwrap_or(usize::MAX), p.offset)
    };
    problems.sort_by_key(position);
    problems.dedup_by_key(|p| position(p));
    let damage = problems
        .into_iter()
        .map(|problem| {
            let from = position(&problem);
            dropped_from(&survey, from, after, &describe, problem)
        })
        .collect();
    let torn = survey.torn.map(|(s, p)| {
        let segment = &survey.segments[s];
        let offset = segment.scanned.pieces[p].offset();
        (
            segment.path.clone(),
            offset,
            segment.bytes.len() as u64 - offset,
        )
    });
    Ok(Report {
        snapshot_seq: after,
        segments: survey.segments.len(),
        records,
        torn,
        damage,
    })
}

/// What cutting the log at `(segment, offset)` drops.
fn dropped_from(
    survey: &Survey,
    (from_segment, from_offset): (usize, u64),
    after: u64,
    describe: &impl Fn(&[u8]) -> Result<String, String>,
    problem: Problem,
) -> Damage {
    let mut damage = Damage {
        problem,
        dropped: Vec::new(),
        unreadable_bytes: 0,
    };
    for (s, segment) in survey.segments.iter().enumerate().skip(from_segment) {
        for (i, piece) in segment.scanned.pieces.iter().enumerate() {
            if s == from_segment && piece.offset() < from_offset {
                continue;
            }
            match piece {
                Piece::Record { offset, .. } => {
                    let seq = segment.seq_of(i);
                    damage.dropped.push(Dropped {
                        path: segment.path.clone(),
                        offset: *offset,
                        seq,
                        in_snapshot: seq.is_some_and(|seq| seq <= after),
                        name: describe(segment.payload(piece)).unwrap_or_else(|e| e),
                    });
                }
                Piece::Bad { offset, end, .. } => damage.unreadable_bytes += end - offset,
            }
        }
    }
    damage
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq)]
pub struct Repaired {
    /// Where the cut bytes and the segments after them were moved.
    pub kept_in: PathBuf,
    pub damage: Damage,
}

/// Cuts the log in `dir` at `path`:`offset`, which must be a damage `check`
/// reports: the bytes from there and every later segment move to
/// `dir/dropped/`, nothing is deleted. Takes the directory's lock, so it
/// never runs beside a server.
pub fn repair(
    dir: &Path,
    after: u64,
    path: &Path,
    offset: u64,
    describe: impl Fn(&[u8]) -> Result<String, String>,
) -> Result<Repaired, WalError> {
    let _lock = lock(dir)?;
    let report = check(dir, after, &describe)?;
    let same_file = |p: &Path| p.file_name() == path.file_name();
    let Some(damage) = report
        .damage
        .into_iter()
        .find(|d| same_file(&d.problem.path) && d.problem.offset == offset)
    else {
        return Err(WalError::Corrupt {
            path: path.to_path_buf(),
            seq: 0,
            offset,
            reason: "no damage starts here (`fairflow events check` lists where it does); refusing to cut intact records".into(),
        });
    };
    let kept_in = dir.join("dropped");
    std::fs::create_dir_all(&kept_in).map_err(io_err(&kept_in))?;
    let cut = &damage.problem.path;
    let name = |p: &Path, extra: &str| {
        let base = format!(
            "{}{extra}",
            p.file_name().unwrap_or_default().to_string_lossy()
        );
        (0..)
            .map(|n| {
                kept_in.join(if n == 0 {
                    base.clone()
                } else {
                    format!("{base}.{n}")
                })
            })
            .find(|p| !p.exists())
            .expect("a free name")
    };
    let mut later = false;
    for (_, segment) in survey::segment_files(dir)? {
        if later {
            let to = name(&segment, "");
            std::fs::rename(&segment, &to).map_err(io_err(&segment))?;
        } else if same_file(&segment) && segment == *cut {
            later = true;
            let bytes = std::fs::read(&segment).map_err(io_err(&segment))?;
            let tail = &bytes[(offset as usize).min(bytes.len())..];
            let to = name(&segment, &format!(".from-{offset}"));
            std::fs::write(&to, tail)
                .and_then(|()| std::fs::File::open(&to)?.sync_all())
                .map_err(io_err(&to))?;
            if offset == 0 {
                std::fs::remove_file(&segment).map_err(io_err(&segment))?;
            } else {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&segment)
                    .map_err(io_err(&segment))?;
                file.set_len(offset).map_err(io_err(&segment))?;
                file.sync_all().map_err(io_err(&segment))?;
            }
        }
    }
    sync_dir(&kept_in)?;
    sync_dir(dir)?;
    // A cut below the snapshot's position: the snapshot holds what was
    // cut, and numbering goes on after it.
    let mut after_cut = survey::survey(dir, after, false)?;
    if after_cut.problems.iter().any(|p| p.seq <= after) {
        let path = segment_path(dir, after + 1);
        create_segment(dir, after + 1).map_err(io_err(&path))?;
        after_cut = survey::survey(dir, after, false)?;
    }
    if let Some(left) = after_cut.problems.into_iter().next() {
        return Err(left.into());
    }
    Ok(Repaired { kept_in, damage })
}

impl Report {
    /// Whether a server starts on this log.
    pub fn starts(&self) -> bool {
        self.damage.is_empty()
    }

    /// The report for people; `limit` records listed per damage (`None`:
    /// all). `dir` is named in the repair commands it suggests.
    pub fn render(&self, dir: &Path, limit: Option<usize>) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let file = |p: &Path| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        let _ = writeln!(
            out,
            "{}: {} segments, {} intact records; snapshot holds records up to {}",
            dir.display(),
            self.segments,
            self.records,
            self.snapshot_seq
        );
        if let Some((path, offset, bytes)) = &self.torn {
            let _ = writeln!(
                out,
                "torn tail: {}:{offset} ({bytes} bytes): a start cuts it (a crash mid-write, never acknowledged)",
                file(path)
            );
        }
        for (i, d) in self.damage.iter().enumerate() {
            let p = &d.problem;
            let at = format!("{}:{}", file(&p.path), p.offset);
            let lost = d.lost().count();
            let held = d.dropped.len() - lost;
            let _ = writeln!(
                out,
                "damage {}: {at} (record {}): {}",
                i + 1,
                p.seq,
                p.reason
            );
            let _ = writeln!(
                out,
                "  `fairflow events repair {} --at {at}` would drop {lost} acknowledged records not in the snapshot ({held} more that it holds) and {} unreadable bytes",
                dir.display(),
                d.unreadable_bytes
            );
            for r in d.lost().take(limit.unwrap_or(usize::MAX)) {
                let seq = r.seq.map_or("?".to_string(), |s| s.to_string());
                let _ = writeln!(
                    out,
                    "    record {seq} at {}:{}: {}",
                    file(&r.path),
                    r.offset,
                    r.name
                );
            }
            if let Some(limit) = limit.filter(|l| lost > *l) {
                let _ = writeln!(out, "    ... {} more (--all lists them)", lost - limit);
            }
        }
        let _ = writeln!(
            out,
            "{}",
            if self.starts() {
                "ok: a server starts on this log and loses no acknowledged record"
            } else {
                "refused: a server will not start until each damage is repaired (docs/events.md)"
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::Wal;
    use super::super::frame::{RECORD_HEADER, SEGMENT_HEADER};
    use super::super::tests::{filled, segments, small};
    use super::*;

    fn describe(bytes: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        if text.starts_with("record-") {
            Ok(text.to_string())
        } else {
            Err(format!("unknown record `{text}`"))
        }
    }

    #[test]
    fn a_clean_log_has_no_damage() {
        let dir = filled(30);
        let report = check(dir.path(), 0, describe).unwrap();
        assert_eq!(report.records, 30);
        assert!(report.damage.is_empty() && report.torn.is_none());
    }

    #[test]
    fn check_names_exactly_what_a_repair_drops_and_repair_does_only_that() {
        let dir = filled(40);
        let segs = segments(dir.path()).unwrap();
        let last = &segs.last().unwrap().1;
        let mut bytes = std::fs::read(last).unwrap();
        let second = SEGMENT_HEADER + RECORD_HEADER + 10;
        bytes[second + RECORD_HEADER + 3] ^= 0x20;
        std::fs::write(last, &bytes).unwrap();
        let report = check(dir.path(), 0, describe).unwrap();
        assert_eq!(report.damage.len(), 1);
        let damage = &report.damage[0];
        assert_eq!(damage.problem.offset, second as u64);
        let in_last = std::fs::read(last).unwrap().len() as u64;
        // The flipped record is unreadable; every later one is listed.
        let records_after = (in_last - second as u64) / (RECORD_HEADER as u64 + 10) - 1;
        assert_eq!(damage.dropped.len() as u64, records_after);
        assert_eq!(damage.unreadable_bytes, RECORD_HEADER as u64 + 10);
        assert!(damage.dropped.iter().all(|d| d.seq.is_none()));

        // A wrong offset is refused and changes nothing.
        let err = repair(dir.path(), 0, last, second as u64 + 1, describe).unwrap_err();
        assert!(err.to_string().contains("no damage starts here"), "{err}");
        assert_eq!(std::fs::read(last).unwrap(), bytes);

        let repaired = repair(dir.path(), 0, last, second as u64, describe).unwrap();
        assert_eq!(repaired.damage, *damage);
        let kept = std::fs::read_dir(&repaired.kept_in).unwrap().count();
        assert_eq!(kept, 1, "the cut bytes are kept");
        let (_, rec) = Wal::open(dir.path(), 0, small()).unwrap();
        let expected = 40 - 1 - records_after as usize;
        assert_eq!(rec.records.len(), expected);
    }

    #[test]
    fn a_segment_damaged_from_its_first_byte_is_one_damage_not_a_gap_after_it() {
        let dir = filled(40);
        let segs = segments(dir.path()).unwrap();
        std::fs::write(&segs[0].1, vec![0x55; 300]).unwrap();
        let report = check(dir.path(), 0, describe).unwrap();
        assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
        assert_eq!(report.damage[0].problem.path, segs[0].1);
        assert_eq!(report.damage[0].problem.offset, 0);
    }

    #[test]
    fn an_undecodable_record_is_damage_too() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path(), 0, small()).unwrap();
            wal.append(vec![
                b"record-1".to_vec(),
                b"nonsense".to_vec(),
                b"record-3".to_vec(),
            ])
            .unwrap();
        }
        let report = check(dir.path(), 0, describe).unwrap();
        assert_eq!(report.damage.len(), 1);
        assert_eq!(report.damage[0].problem.seq, 2);
        assert!(report.damage[0].problem.reason.contains("unknown record"));
        assert_eq!(report.damage[0].lost().count(), 2, "itself and record-3");
    }

    #[test]
    fn a_missing_first_segment_is_reported_and_a_cut_below_the_snapshot_resumes_after_it() {
        let dir = filled(40);
        let segs = segments(dir.path()).unwrap();
        std::fs::remove_file(&segs[0].1).unwrap();
        let report = check(dir.path(), 0, describe).unwrap();
        assert_eq!(report.damage[0].problem.offset, 0);
        assert_eq!(report.damage[0].problem.path, segs[1].1);
        assert_eq!(
            report.damage[0].lost().count(),
            40 - (segs[1].0 as usize - 1)
        );

        // Damage in the last segment, with a snapshot holding every record:
        // past the damage numbering is unknown, so what follows counts as
        // lost, and a cut below the snapshot resumes numbering after it.
        let dir = filled(40);
        let (_, last) = segments(dir.path()).unwrap().pop().unwrap();
        let mut bytes = std::fs::read(&last).unwrap();
        bytes[SEGMENT_HEADER + RECORD_HEADER + 1] ^= 1;
        std::fs::write(&last, &bytes).unwrap();
        let after = 40;
        let report = check(dir.path(), after, describe).unwrap();
        let damage = &report.damage[0];
        assert!(
            damage
                .dropped
                .iter()
                .all(|d| d.seq.is_none() && !d.in_snapshot)
        );
        repair(dir.path(), after, &last, SEGMENT_HEADER as u64, describe).unwrap();
        let (wal, rec) = Wal::open(dir.path(), after, small()).unwrap();
        assert!(rec.records.is_empty());
        assert_eq!(wal.append(vec![b"record-x".to_vec()]).unwrap(), after + 1);
    }
}
