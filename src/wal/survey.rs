//! Reading a whole log directory back: every segment in order, checked for
//! continuity (no missing, extra or misnamed segment) and read into pieces
//! ([`super::frame`]), with every place where acknowledged records may have
//! been lost listed as a [`Problem`]. [`super::Wal::open`] refuses to start
//! on any problem; `fairflow events check` reports them all.

use super::frame::{self, Piece, Scanned};
use super::{WalError, io_err};
use std::path::{Path, PathBuf};

/// A segment file as found on disk.
#[derive(Debug)]
pub struct Segment {
    /// The first record's sequence number, from the file name.
    pub first: u64,
    pub path: PathBuf,
    /// Its bytes; empty when it was not read (wholly covered by the snapshot).
    pub bytes: Vec<u8>,
    pub scanned: Scanned,
    /// Not read: a later segment starts at or before the snapshot's
    /// position, so every record here is in the snapshot.
    pub covered: bool,
    /// How many pieces, from the first, are numbered records.
    numbered: usize,
}

impl Segment {
    /// The intact records before the first bad piece, with their sequence
    /// numbers (numbering is unknown past a bad piece).
    pub fn numbered(&self) -> impl Iterator<Item = (u64, &Piece)> {
        self.scanned.pieces[..self.numbered]
            .iter()
            .zip(self.first..)
            .map(|(p, seq)| (seq, p))
    }

    /// The sequence number of the piece at index `i`, where it can be
    /// known: only pieces before the first bad one are numbered.
    pub fn seq_of(&self, i: usize) -> Option<u64> {
        (i < self.numbered).then(|| self.first + i as u64)
    }

    /// The sequence number after the last numbered record.
    pub fn next_seq(&self) -> u64 {
        self.first + self.numbered as u64
    }

    pub fn payload(&self, piece: &Piece) -> &[u8] {
        match piece {
            Piece::Record { payload, .. } => &self.bytes[payload.clone()],
            Piece::Bad { .. } => &[],
        }
    }
}

/// A place where the log is not what was acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The segment where it is (for a missing segment: the one after the
    /// gap, or the one a missing tail would have been).
    pub path: PathBuf,
    /// The byte where the good log stops: a repair cuts here.
    pub offset: u64,
    /// The sequence number the first record lost here would have had.
    pub seq: u64,
    pub reason: String,
}

/// What [`survey`] found.
#[derive(Debug, Default)]
pub struct Survey {
    pub segments: Vec<Segment>,
    pub problems: Vec<Problem>,
    /// The last segment's torn tail: the piece to cut, as (segment, piece).
    pub torn: Option<(usize, usize)>,
    /// The number the next record appended gets.
    pub next_seq: u64,
}

/// Files `<prefix><number><suffix>` in `dir`, by number; none when `dir`
/// does not exist.
pub fn numbered_files(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            out.push((number, path));
        }
    }
    out.sort();
    Ok(out)
}

pub fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    numbered_files(dir, "wal-", ".log").map_err(io_err(dir))
}

pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("wal-{first:020}.log"))
}

/// Reads the log in `dir` against a snapshot holding records up to `after`
/// (0: none). With `read_covered` false, segments the snapshot wholly
/// covers are not read.
pub fn survey(dir: &Path, after: u64, read_covered: bool) -> Result<Survey, WalError> {
    let files = segment_files(dir)?;
    let mut survey = Survey {
        next_seq: after + 1,
        ..Survey::default()
    };
    let count = files.len();
    // Where the next segment must start; `None` after damage, where the
    // count of records lost is unknown.
    let mut expected = Some(1);
    for (i, (first, path)) in files.iter().enumerate() {
        let first = *first;
        let covered = files.get(i + 1).is_some_and(|(next, _)| *next <= after + 1);
        if let Some(want) = expected
            && first != want
            && !(first > want && first <= after + 1)
        {
            let reason = if first > want {
                format!(
                    "records {want}..={} are in no segment and not in the snapshot (which holds up to {after}): a segment is missing",
                    first - 1
                )
            } else {
                format!(
                    "starts at record {first}, but the segment before ends at {}: segments overlap",
                    want - 1
                )
            };
            survey.problems.push(Problem {
                path: path.clone(),
                offset: 0,
                seq: want,
                reason,
            });
        }
        let bytes = if covered && !read_covered {
            Vec::new()
        } else {
            std::fs::read(path).map_err(io_err(path))?
        };
        let scanned = frame::scan(&bytes);
        if let Some(named) = scanned.first_seq
            && named != first
        {
            survey.problems.push(Problem {
                path: path.clone(),
                offset: 0,
                seq: first,
                reason: format!(
                    "its header says its first record is {named}, its name says {first}: a segment renamed or moved"
                ),
            });
        }
        let numbered = scanned
            .pieces
            .iter()
            .take_while(|p| matches!(p, Piece::Record { .. }))
            .count();
        let segment = Segment {
            first,
            path: path.clone(),
            bytes,
            scanned,
            covered: covered && !read_covered,
            numbered,
        };
        let last_segment = i + 1 == count;
        let next = segment.next_seq();
        // Damage where the snapshot holds every record loses nothing.
        let pieces = if covered {
            &[][..]
        } else {
            &segment.scanned.pieces[..]
        };
        let mut damaged = false;
        for (p, piece) in pieces.iter().enumerate() {
            let Piece::Bad {
                offset,
                end,
                defect,
            } = *piece
            else {
                continue;
            };
            if last_segment && piece.is_torn_tail(&segment.bytes) {
                survey.torn = Some((i, p));
                continue;
            }
            let after_it = if end < segment.bytes.len() as u64 {
                format!("intact records follow at byte {end}")
            } else if last_segment {
                "not a torn write (no unwritten sector)".to_string()
            } else {
                "in a segment that is not the last".to_string()
            };
            survey.problems.push(Problem {
                path: path.clone(),
                offset,
                seq: next,
                reason: format!("{} ({after_it})", defect.describe()),
            });
            damaged = true;
            break;
        }
        expected = (!damaged).then_some(next);
        survey.segments.push(segment);
    }
    match (survey.segments.last(), expected) {
        (None, _) if after > 0 => survey.problems.push(Problem {
            path: segment_path(dir, after + 1),
            offset: 0,
            seq: after + 1,
            reason: format!(
                "no log segments, but a snapshot holds records up to {after}: the log after it is missing"
            ),
        }),
        (Some(last), Some(next)) if next <= after => survey.problems.push(Problem {
            path: last.path.clone(),
            offset: last.bytes.len() as u64,
            seq: next,
            reason: format!(
                "the log ends at record {}, but the snapshot holds records up to {after}: its tail is missing",
                next - 1
            ),
        }),
        _ => {}
    }
    survey.next_seq = expected.unwrap_or(after + 1).max(after + 1);
    Ok(survey)
}
