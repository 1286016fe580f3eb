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
        let record: Record = serde_json::from_str(text).map_err(|e| LogError::Malformed {
            origin: self.origin.clone(),
            line: self.line_no,
            reason: e.to_string(),
        })?;
        if let Record::Header(h) = &record {
            let refuse = |reason: String| LogError::Incompatible {
                origin: self.origin.clone(),
                line: self.line_no,
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
