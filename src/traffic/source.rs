//! Where a log's records come from: a JSONL file, a directory of the
//! server's `traffic-*.jsonl` files, or a Parquet log directory. Every
//! consumer (replay, convert) names logs the same way and gets records in
//! log order whatever the encoding.

use super::parquet::{self, Table};
use super::{LogError, OnError, Record, files_in, read_parallel};
use std::path::{Path, PathBuf};

/// One readable log file or Parquet log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Jsonl(PathBuf),
    Parquet(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Jsonl(p) | Source::Parquet(p) => p,
        }
    }
}

/// A log that cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: holds no traffic-*.jsonl files and is not a Parquet log (no rank.parquet)")]
    EmptyDir(PathBuf),
}

/// The sources `path` names: a Parquet log, the `traffic-*.jsonl` files of
/// a directory in time order, or one JSONL file.
pub fn sources(path: &Path) -> Result<Vec<Source>, SourceError> {
    if parquet::is_parquet_log(path) {
        Ok(vec![Source::Parquet(path.to_path_buf())])
    } else if path.is_dir() {
        let files = files_in(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if files.is_empty() {
            return Err(SourceError::EmptyDir(path.to_path_buf()));
        }
        Ok(files.into_iter().map(Source::Jsonl).collect())
    } else if path.exists() {
        Ok(vec![Source::Jsonl(path.to_path_buf())])
    } else {
        Err(SourceError::Missing(path.to_path_buf()))
    }
}

/// Reads one source's records in log order, handing them to `sink` in
/// blocks; returns how many malformed lines or rows were skipped. Record
/// types named in `skip` are not read (JSONL lines are passed over
/// unparsed, Parquet tables not opened). A Parquet log's header comes
/// first, as in JSONL.
pub fn read_source(
    source: &Source,
    on_error: OnError,
    skip: &[&str],
    mut sink: impl FnMut(Vec<Record>),
) -> Result<usize, LogError> {
    match source {
        Source::Jsonl(path) => {
            let origin = path.display().to_string();
            let input = std::fs::File::open(path).map_err(|e| LogError::Read {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
            read_parallel(input, &origin, on_error, skip, sink)
        }
        Source::Parquet(dir) => {
            if let Some(header) = parquet::read_header(dir)? {
                sink(vec![Record::Header(header)]);
            }
            let tables: Vec<Table> = Table::ALL
                .into_iter()
                .filter(|t| !skip.contains(&t.name()))
                .collect();
            let (records, skipped) = parquet::read_log(dir, &tables, on_error)?;
            sink(records);
            Ok(skipped)
        }
    }
}
