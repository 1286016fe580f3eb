//! Reading a traffic log line by line, with malformed lines reported by line
//! number and either skipped or fatal.

use super::{FORMAT, Record, VERSION};
use std::io::BufRead;

/// What to do with a line that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Report it (see [`TrafficReader::skipped`]) and go on.
    Skip,
    /// Stop with the error.
    Fail,
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogError {
    #[error("{origin} line {line}: {reason}")]
    Malformed {
        origin: String,
        line: usize,
        reason: String,
    },
    #[error("{origin}: cannot read: {reason}")]
    Read { origin: String, reason: String },
    /// A row of a Parquet log's table that the format refuses.
    #[error("{origin} row {row}: {reason}")]
    BadRow {
        origin: String,
        row: usize,
        reason: String,
    },
    /// A file that is not a readable table (Parquet logs).
    #[error("{origin}: {reason}")]
    Unreadable { origin: String, reason: String },
    /// A header this build cannot read; always fatal.
    #[error("{origin} line {line}: {reason}")]
    Incompatible {
        origin: String,
        line: usize,
        reason: String,
    },
}

/// How many malformed lines a skipping reader keeps for its report; the
/// count covers all of them.
const KEEP_SKIPPED: usize = 100;

/// Iterates the records of a log with their line numbers.
pub struct TrafficReader<R: BufRead> {
    input: R,
    origin: String,
    on_error: OnError,
    line_no: usize,
    buf: String,
    skipped: Vec<LogError>,
    skipped_count: usize,
    done: bool,
}

impl<R: BufRead> TrafficReader<R> {
    pub fn new(input: R, origin: impl Into<String>, on_error: OnError) -> Self {
        TrafficReader {
            input,
            origin: origin.into(),
            on_error,
            line_no: 0,
            buf: String::new(),
            skipped: Vec::new(),
            skipped_count: 0,
            done: false,
        }
    }

    /// The first malformed lines skipped so far (at most 100).
    pub fn skipped(&self) -> &[LogError] {
        &self.skipped
    }

    /// How many malformed lines were skipped in all.
    pub fn skipped_count(&self) -> usize {
        self.skipped_count
    }

    fn parse(&self, text: &str) -> Result<Record, LogError> {
        parse_line(text, &self.origin, self.line_no)
    }
}

/// One line of a log (not empty), checked like the reader checks it.
fn parse_line(text: &str, origin: &str, line: usize) -> Result<Record, LogError> {
    let record = Record::from_json(text).map_err(|e| LogError::Malformed {
        origin: origin.to_string(),
        line,
        reason: e.to_string(),
    })?;
    if let Record::Rank(r) = &record {
        r.check().map_err(|reason| LogError::Malformed {
            origin: origin.to_string(),
            line,
            reason,
        })?;
    }
    if let Record::Header(h) = &record {
        let refuse = |reason: String| LogError::Incompatible {
            origin: origin.to_string(),
            line,
            reason,
        };
        if h.format != FORMAT {
            return Err(refuse(format!("format `{}` is not `{FORMAT}`", h.format)));
        }
        if h.version > VERSION {
            return Err(refuse(format!(
                "version {} is newer than this build reads ({VERSION})",
                h.version
            )));
        }
    }
    Ok(record)
}

/// Bytes of a log parsed at a time by [`read_parallel`].
const BLOCK: usize = 32 << 20;

/// Reads a whole log like [`TrafficReader`] does (same checks, same
/// errors, same skipping), parsing blocks of lines on every core, and hands
/// each block's records to `sink` in file order. Returns how many malformed
/// lines were skipped. For a big log on many cores: JSON parsing, not the
/// consumer, is otherwise the bottleneck.
///
/// Lines of the record types in `skip` are passed over without being
/// parsed when they start with their tag (`{"type":"impression"`, as this
/// crate writes them); others are parsed and delivered as usual.
pub fn read_parallel(
    input: impl std::io::Read,
    origin: &str,
    on_error: OnError,
    skip: &[&str],
    sink: impl FnMut(Vec<Record>),
) -> Result<usize, LogError> {
    read_blocks(input, origin, on_error, BLOCK, skip, sink)
}

pub(super) fn read_blocks(
    mut input: impl std::io::Read,
    origin: &str,
    on_error: OnError,
    block: usize,
    skip: &[&str],
    mut sink: impl FnMut(Vec<Record>),
) -> Result<usize, LogError> {
    use rayon::prelude::*;
    let prefixes: Vec<String> = skip.iter().map(|t| format!("{{\"type\":\"{t}\"")).collect();
    let read_err = |e: std::io::Error| LogError::Read {
        origin: origin.to_string(),
        reason: e.to_string(),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(block + 1024);
    let mut first_line = 1;
    let mut skipped = 0;
    let mut done = false;
    while !done {
        // Fill up to a block, then keep only whole lines (the rest waits).
        let start = buf.len();
        buf.resize(start + block, 0);
        let mut filled = start;
        while filled < buf.len() {
            match input.read(&mut buf[filled..]) {
                Ok(0) => {
                    done = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        buf.truncate(filled);
        let end = if done {
            buf.len()
        } else {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue, // a line longer than a block: read more
            }
        };
        let text = std::str::from_utf8(&buf[..end]).map_err(|e| LogError::Malformed {
            origin: origin.to_string(),
            line: first_line + bytecount_lines(&buf[..e.valid_up_to()]),
            reason: format!("not UTF-8: {e}"),
        })?;
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (first_line + i, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !prefixes.iter().any(|p| l.starts_with(p.as_str())))
            .collect();
        first_line += text.lines().count();
        let parsed: Vec<Result<Record, LogError>> = lines
            .par_iter()
            .map(|&(n, l)| parse_line(l, origin, n))
            .collect();
        let mut records = Vec::with_capacity(parsed.len());
        for p in parsed {
            match p {
                Ok(r) => records.push(r),
                Err(LogError::Malformed { .. }) if on_error == OnError::Skip => skipped += 1,
                Err(e) => return Err(e),
            }
        }
        sink(records);
        buf.drain(..end);
    }
    Ok(skipped)
}

fn bytecount_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

impl<R: BufRead> Iterator for TrafficReader<R> {
    /// A record and its 1-based line number.
    type Item = Result<(usize, Record), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            match self.input.read_line(&mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line_no += 1;
                    let text = self.buf.trim();
                    if text.is_empty() {
                        continue;
                    }
                    match self.parse(text) {
                        Ok(record) => return Some(Ok((self.line_no, record))),
                        Err(e @ LogError::Malformed { .. }) if self.on_error == OnError::Skip => {
                            self.skipped_count += 1;
                            if self.skipped.len() < KEEP_SKIPPED {
                                self.skipped.push(e);
                            }
                        }
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(LogError::Read {
                        origin: self.origin.clone(),
                        reason: e.to_string(),
                    }));
                }
            }
        }
        None
    }
}
