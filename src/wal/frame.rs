//! The bytes of a segment and how they are read back.
//!
//! A segment opens with a 16-byte header, the magic `FFWALSG1` and the
//! sequence number of its first record (u64 LE), so a file renamed into the
//! wrong place is noticed. Segments written before the header existed have
//! none and are still read. Then come records,
//! `[len: u32 LE][crc32(payload): u32 LE][payload]`, with `1 <= len <=`
//! [`MAX_RECORD`].
//!
//! [`scan`] reads a segment into [`Piece`]s: intact records, and the byte
//! ranges between them that are not records. A bad range ends where the next
//! intact record begins (found by trying every later offset), so damage in
//! the middle of a segment does not hide the records after it. Whether a bad
//! range is a *torn tail* (what a crash mid-write leaves, safe to cut) or
//! *damage* (acknowledged records may be lost) is [`Piece::is_torn_tail`]'s
//! call. Pure functions over bytes: the fuzz targets call them directly.

use std::ops::Range;

/// A record's frame header: length and checksum.
pub const RECORD_HEADER: usize = 8;
/// Larger records are refused: a length beyond it in a file is damage.
pub const MAX_RECORD: usize = 16 << 20;
/// `FFWALSG1` and the first record's sequence number.
pub const SEGMENT_HEADER: usize = 16;
const SEGMENT_MAGIC: &[u8; 8] = b"FFWALSG1";
/// A disk writes a sector whole or not at all; a torn write leaves whole
/// sectors unwritten (zeros on a preallocated or extended file).
const SECTOR: u64 = 512;

/// Why the bytes at an offset are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Fewer than 8 bytes left: a header cut short.
    ShortHeader,
    /// The segment header is cut short or names another first record.
    SegmentHeader,
    /// A length of 0: never written (zeros).
    ZeroLength,
    /// A length above [`MAX_RECORD`].
    TooLong,
    /// The length runs past the end of the file.
    ShortPayload,
    /// The payload does not match its checksum.
    Checksum,
}

impl Defect {
    pub fn describe(self) -> &'static str {
        match self {
            Defect::ShortHeader => "record header cut short",
            Defect::SegmentHeader => "segment header cut short",
            Defect::ZeroLength => "zero length",
            Defect::TooLong => "impossible length",
            Defect::ShortPayload => "payload cut short",
            Defect::Checksum => "checksum mismatch",
        }
    }
}

/// One stretch of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// An intact record starting at `offset`; `payload` indexes the bytes.
    Record { offset: u64, payload: Range<usize> },
    /// Bytes from `offset` to `end` that are not records: the first of them
    /// is `defect`; `end` is where the next intact record starts, or the end
    /// of the file.
    Bad {
        offset: u64,
        end: u64,
        defect: Defect,
    },
}

/// A segment read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scanned {
    /// The first record's sequence number, from the segment header (`None`
    /// for a segment written without one).
    pub first_seq: Option<u64>,
    pub pieces: Vec<Piece>,
}

/// Appends the segment header for a segment whose first record is `first_seq`.
pub fn segment_header(out: &mut Vec<u8>, first_seq: u64) {
    out.extend_from_slice(SEGMENT_MAGIC);
    out.extend_from_slice(&first_seq.to_le_bytes());
}

/// Appends one framed record.
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_RECORD);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The record at `at`, or what is wrong with it.
fn record_at(bytes: &[u8], at: usize) -> Result<Range<usize>, Defect> {
    let rest = &bytes[at..];
    if rest.len() < RECORD_HEADER {
        return Err(Defect::ShortHeader);
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len == 0 {
        return Err(Defect::ZeroLength);
    }
    if len > MAX_RECORD {
        return Err(Defect::TooLong);
    }
    if rest.len() - RECORD_HEADER < len {
        return Err(Defect::ShortPayload);
    }
    let payload = at + RECORD_HEADER..at + RECORD_HEADER + len;
    if crc32fast::hash(&bytes[payload.clone()]) != crc {
        return Err(Defect::Checksum);
    }
    Ok(payload)
}

/// The first offset after `after` where an intact record starts.
fn next_record(bytes: &[u8], after: usize) -> Option<usize> {
    (after + 1..bytes.len().saturating_sub(RECORD_HEADER - 1))
        .find(|&at| record_at(bytes, at).is_ok())
}

/// Reads a segment's bytes into pieces.
pub fn scan(bytes: &[u8]) -> Scanned {
    let mut scanned = Scanned::default();
    let mut at = 0;
    if bytes.len() >= SEGMENT_MAGIC.len() && bytes.starts_with(SEGMENT_MAGIC)
        || !bytes.is_empty() && SEGMENT_MAGIC.starts_with(bytes)
    {
        if bytes.len() < SEGMENT_HEADER {
            scanned.pieces.push(Piece::Bad {
                offset: 0,
                end: bytes.len() as u64,
                defect: Defect::SegmentHeader,
            });
            return scanned;
        }
        let seq = &bytes[SEGMENT_MAGIC.len()..SEGMENT_HEADER];
        scanned.first_seq = Some(u64::from_le_bytes(seq.try_into().expect("8 bytes")));
        at = SEGMENT_HEADER;
    }
    while at < bytes.len() {
        match record_at(bytes, at) {
            Ok(payload) => {
                let end = payload.end;
                scanned.pieces.push(Piece::Record {
                    offset: at as u64,
                    payload,
                });
                at = end;
            }
            Err(defect) => {
                let end = next_record(bytes, at).unwrap_or(bytes.len());
                scanned.pieces.push(Piece::Bad {
                    offset: at as u64,
                    end: end as u64,
                    defect,
                });
                at = end;
            }
        }
    }
    scanned
}

impl Piece {
    pub fn offset(&self) -> u64 {
        match self {
            Piece::Record { offset, .. } | Piece::Bad { offset, .. } => *offset,
        }
    }

    /// Whether this bad stretch is what a crash mid-write leaves at the end
    /// of the segment being written: it runs to the end of the file (no
    /// intact record after it) and is either all zeros, a record cut short
    /// (header or payload), or a record with a checksum mismatch one of
    /// whose sectors is all zeros (a sector the crash never wrote). Any other
    /// bad stretch, such as a flipped byte, is damage. Call it only on the
    /// last segment's last piece.
    pub fn is_torn_tail(&self, bytes: &[u8]) -> bool {
        let Piece::Bad {
            offset,
            end,
            defect,
        } = *self
        else {
            return false;
        };
        if end != bytes.len() as u64 {
            return false;
        }
        let rest = &bytes[offset as usize..];
        match defect {
            Defect::ShortHeader | Defect::ShortPayload | Defect::SegmentHeader => true,
            _ if rest.iter().all(|&b| b == 0) => true,
            Defect::Checksum => {
                let payload = offset + RECORD_HEADER as u64..end;
                has_zero_sector(bytes, payload)
            }
            Defect::ZeroLength | Defect::TooLong => false,
        }
    }
}

/// Whether some sector-aligned stretch of `range` is all zeros.
fn has_zero_sector(bytes: &[u8], range: Range<u64>) -> bool {
    let mut start = range.start;
    while start < range.end {
        let stop = ((start / SECTOR + 1) * SECTOR).min(range.end);
        if bytes[start as usize..stop as usize].iter().all(|&b| b == 0) {
            return true;
        }
        start = stop;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        segment_header(&mut out, first);
        for p in payloads {
            frame(&mut out, p);
        }
        out
    }

    fn records(s: &Scanned) -> usize {
        s.pieces
            .iter()
            .filter(|p| matches!(p, Piece::Record { .. }))
            .count()
    }

    #[test]
    fn intact_segments_read_back_whole() {
        let bytes = segment(7, &[b"one", b"two", b"three"]);
        let s = scan(&bytes);
        assert_eq!(s.first_seq, Some(7));
        assert_eq!(records(&s), 3);
        let Piece::Record { payload, .. } = &s.pieces[2] else {
            panic!()
        };
        assert_eq!(&bytes[payload.clone()], b"three");
    }

    #[test]
    fn a_flipped_byte_mid_segment_is_damage_and_the_records_after_it_are_found() {
        let mut bytes = segment(1, &[b"aaaa", b"bbbb", b"cccc", b"dddd"]);
        let second = SEGMENT_HEADER + RECORD_HEADER + 4;
        bytes[second + RECORD_HEADER + 1] ^= 1;
        let s = scan(&bytes);
        assert_eq!(records(&s), 3);
        let bad = &s.pieces[1];
        assert_eq!(
            *bad,
            Piece::Bad {
                offset: second as u64,
                end: (second + RECORD_HEADER + 4) as u64,
                defect: Defect::Checksum
            }
        );
        assert!(!bad.is_torn_tail(&bytes));
    }

    #[test]
    fn a_flipped_length_is_damage_not_a_torn_tail() {
        let mut bytes = segment(1, &[b"aaaa", b"bbbb", b"cccc"]);
        let second = SEGMENT_HEADER + RECORD_HEADER + 4;
        // The length now runs past the end of the file.
        bytes[second + 2] = 0x10;
        let s = scan(&bytes);
        assert_eq!(records(&s), 2, "the third record is still found");
        assert!(
            s.pieces
                .iter()
                .all(|p| !p.is_torn_tail(&bytes) || p.offset() != second as u64)
        );
    }

    #[test]
    fn a_cut_or_zero_filled_tail_is_torn() {
        let whole = segment(1, &[b"aaaa", b"bbbbbbbbbbbb"]);
        for cut in [whole.len() - 1, whole.len() - 12, whole.len() - 17] {
            let s = scan(&whole[..cut]);
            let last = s.pieces.last().unwrap();
            assert!(last.is_torn_tail(&whole[..cut]), "cut at {cut}: {last:?}");
            assert_eq!(records(&s), 1);
        }
        let mut zeros = whole.clone();
        zeros.resize(whole.len() + 4096, 0);
        let s = scan(&zeros);
        assert_eq!(records(&s), 2);
        assert!(s.pieces.last().unwrap().is_torn_tail(&zeros));
    }

    #[test]
    fn a_checksum_failure_at_the_end_is_torn_only_with_an_unwritten_sector() {
        let big = vec![b'x'; 1500];
        let whole = segment(1, &[b"aaaa", &big]);
        let mut flipped = whole.clone();
        let n = flipped.len();
        flipped[n - 3] ^= 1;
        assert!(!scan(&flipped).pieces.last().unwrap().is_torn_tail(&flipped));
        let mut unwritten = whole.clone();
        let sector_start = (n / 512) * 512;
        unwritten[sector_start - 512..sector_start].fill(0);
        assert!(
            scan(&unwritten)
                .pieces
                .last()
                .unwrap()
                .is_torn_tail(&unwritten)
        );
    }

    #[test]
    fn segments_without_a_header_still_read() {
        let mut bytes = Vec::new();
        frame(&mut bytes, b"legacy");
        let s = scan(&bytes);
        assert_eq!(s.first_seq, None);
        assert_eq!(records(&s), 1);
        let cut = scan(&SEGMENT_MAGIC[..5]);
        assert!(cut.pieces[0].is_torn_tail(&SEGMENT_MAGIC[..5]));
    }
}
