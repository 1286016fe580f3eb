//! `fairflow convert`: a log from one encoding to the other. Records keep
//! their log order; the first header is the output's; unknown record types
//! are dropped and counted. The output appears only when complete.

use super::parquet::{ParquetLogWriter, TableCounts, WriteError};
use super::{LogError, OnError, Record, SourceError, TrafficWriter, read_source, sources};
use std::path::{Path, PathBuf};

/// The encodings a log can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One JSON record per line (one file).
    Jsonl,
    /// One Parquet file per record type (a directory).
    Parquet,
}

/// What a conversion wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Converted {
    /// Records written: the first header and every known record.
    pub records: u64,
    /// Unknown record types dropped.
    pub unknown: u64,
    /// Malformed lines skipped (with `OnError::Skip`).
    pub skipped: usize,
    /// Rows per table, for Parquet output.
    pub tables: Option<TableCounts>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Read(#[from] LogError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Where records go: one writer per encoding.
enum Output {
    Jsonl {
        out: PathBuf,
        partial: PathBuf,
        writer: TrafficWriter<std::fs::File>,
    },
    Parquet(Box<ParquetLogWriter>),
}

impl Output {
    fn create(out: &Path, to: Encoding) -> Result<Output, WriteError> {
        match to {
            Encoding::Parquet => Ok(Output::Parquet(Box::new(ParquetLogWriter::create(out)?))),
            Encoding::Jsonl => {
                let partial = super::parquet::partial_path(out)?;
                let file =
                    std::fs::File::create(&partial).map_err(|e| WriteError::new(&partial, e))?;
                Ok(Output::Jsonl {
                    out: out.to_path_buf(),
                    partial,
                    writer: TrafficWriter::new(file),
                })
            }
        }
    }

    fn write(&mut self, record: Record) -> Result<(), WriteError> {
        match self {
            Output::Parquet(w) => w.write(record),
            Output::Jsonl {
                partial, writer, ..
            } => writer
                .write(&record)
                .map_err(|e| WriteError::new(partial, e)),
        }
    }

    /// Removes what was written (a failed conversion leaves no output).
    fn abandon(self) {
        match self {
            Output::Parquet(w) => w.abandon(),
            Output::Jsonl { partial, .. } => {
                let _ = std::fs::remove_file(partial);
            }
        }
    }

    fn finish(self) -> Result<Option<TableCounts>, WriteError> {
        match self {
            Output::Parquet(w) => Ok(Some(w.finish()?.0)),
            Output::Jsonl {
                out,
                partial,
                writer,
                ..
            } => {
                let file = writer.finish().map_err(|e| WriteError::new(&partial, e))?;
                file.sync_all().map_err(|e| WriteError::new(&partial, e))?;
                std::fs::rename(&partial, &out).map_err(|e| WriteError::new(&out, e))?;
                Ok(None)
            }
        }
    }
}

/// Converts the logs `inputs` names (as replay names them) into one log at
/// `out`, which must not exist yet.
pub fn convert(
    inputs: &[PathBuf],
    out: &Path,
    to: Encoding,
    on_error: OnError,
) -> Result<Converted, ConvertError> {
    let mut all = Vec::new();
    for input in inputs {
        all.extend(sources(input)?);
    }
    let mut output = Output::create(out, to)?;
    let mut converted = Converted::default();
    if let Err(e) = copy(&all, on_error, &mut output, &mut converted) {
        output.abandon();
        return Err(e);
    }
    converted.tables = output.finish()?;
    Ok(converted)
}

/// Copies every source's records to `output`.
fn copy(
    all: &[super::Source],
    on_error: OnError,
    output: &mut Output,
    converted: &mut Converted,
) -> Result<(), ConvertError> {
    // The reader hands records over in blocks and cannot be told to stop:
    // the first write error is kept and the rest of the input ignored.
    let mut failed: Option<WriteError> = None;
    let mut header_seen = false;
    for source in all {
        converted.skipped += read_source(source, on_error, &[], |records| {
            for record in records {
                if failed.is_some() {
                    return;
                }
                match record {
                    Record::Unknown => {
                        converted.unknown += 1;
                        continue;
                    }
                    // One log, one header: the server's rotated files each
                    // start with their own.
                    Record::Header(_) if header_seen => continue,
                    Record::Header(_) => header_seen = true,
                    _ => {}
                }
                match output.write(record) {
                    Ok(()) => converted.records += 1,
                    Err(e) => failed = Some(e),
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    Ok(())
}
