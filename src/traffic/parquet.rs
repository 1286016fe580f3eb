//! The traffic log as Parquet (docs/traffic-log.md, "Parquet"): a directory
//! with one file per record type (`rank.parquet`, `impression.parquet`,
//! `click.parquet`, `purchase.parquet`, `stream_status.parquet`), each with
//! the JSONL record's fields as columns plus `seq`, the record's position in
//! the log. Tables lose the interleaving of record types; `seq` keeps it, so
//! a Parquet log replays exactly like the JSONL it was converted from.
//!
//! Columns follow the serde types field for field (serde_arrow traces them),
//! so the two encodings cannot drift apart: a field added to a record is a
//! column in the next Parquet log. `time` is a UTC millisecond timestamp;
//! enums are dictionary-encoded strings, as in the JSON.

use super::{Click, FORMAT, Header, Impression, LogError, OnError, Purchase, RankRecord, Record};
use super::{StreamStatus, VERSION, rank_columns};
use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, FieldRef, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::schema::{SchemaLike, TracingOptions};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The key-value metadata entry every file carries: the log's header as JSON.
pub const HEADER_KEY: &str = "fairflow.traffic.header";

/// One record type's file in a Parquet log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Rank,
    Impression,
    Click,
    Purchase,
    StreamStatus,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Rank,
        Table::Impression,
        Table::Click,
        Table::Purchase,
        Table::StreamStatus,
    ];

    /// The record `type` it holds, and its file's stem.
    pub fn name(self) -> &'static str {
        match self {
            Table::Rank => "rank",
            Table::Impression => "impression",
            Table::Click => "click",
            Table::Purchase => "purchase",
            Table::StreamStatus => "stream_status",
        }
    }

    pub fn file(self) -> String {
        format!("{}.parquet", self.name())
    }

    /// Rows buffered before they are encoded: rank rows carry ~200
    /// candidates each, so they go in smaller batches.
    fn batch_rows(self) -> usize {
        match self {
            Table::Rank => 1024,
            _ => 32 * 1024,
        }
    }
}

/// Whether `path` is a Parquet log (a directory with `rank.parquet`).
pub fn is_parquet_log(path: &Path) -> bool {
    path.join(Table::Rank.file()).is_file()
}

/// Columns of a record type: its serde fields, `time` as a timestamp and
/// `served` nullable (the JSON leaves it out when the page is unknown).
fn record_fields<T: Serialize + DeserializeOwned>() -> Vec<FieldRef> {
    let options = TracingOptions::default()
        .enums_without_data_as_strings(true)
        .strings_as_large_utf8(false)
        .sequence_as_large_list(false);
    let traced =
        Vec::<FieldRef>::from_type::<T>(options).expect("record types trace to Arrow fields");
    traced
        .into_iter()
        .map(|f| match f.name().as_str() {
            "time" => Arc::new(Field::new(
                "time",
                DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into())),
                f.is_nullable(),
            )),
            "served" => Arc::new(f.as_ref().clone().with_nullable(true)),
            _ => f,
        })
        .collect()
}

/// The rank table's columns after `seq`.
pub(super) fn rank_fields() -> Vec<FieldRef> {
    record_fields::<RankRecord>()
}

/// A write that failed: the file and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct WriteError {
    pub path: PathBuf,
    pub reason: String,
}

impl WriteError {
    pub(super) fn new(path: &Path, reason: impl std::fmt::Display) -> WriteError {
        WriteError {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Writes rows of one type to a Parquet file, a batch at a time.
pub struct RowWriter<T> {
    path: PathBuf,
    fields: Vec<FieldRef>,
    schema: Arc<Schema>,
    with_seq: bool,
    batch_rows: usize,
    seqs: Vec<u64>,
    rows: Vec<T>,
    writer: ArrowWriter<File>,
    written: u64,
}

impl<T: Serialize + DeserializeOwned> RowWriter<T> {
    /// A new file at `path`; `with_seq` adds the `seq` column first.
    pub fn create(path: &Path, with_seq: bool, batch_rows: usize) -> Result<Self, WriteError> {
        let fields = record_fields::<T>();
        let mut columns = Vec::with_capacity(fields.len() + 1);
        if with_seq {
            columns.push(Arc::new(Field::new("seq", DataType::UInt64, false)));
        }
        columns.extend(fields.iter().cloned());
        let schema = Arc::new(Schema::new(columns));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(batch_rows * 8))
            .build();
        let file = File::create(path).map_err(|e| WriteError::new(path, e))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| WriteError::new(path, e))?;
        Ok(RowWriter {
            path: path.to_path_buf(),
            fields,
            schema,
            with_seq,
            batch_rows,
            seqs: Vec::new(),
            rows: Vec::new(),
            writer,
            written: 0,
        })
    }

    /// The file of `table` in the log directory `dir`, with `seq`.
    fn for_table(dir: &Path, table: Table) -> Result<Self, WriteError> {
        RowWriter::create(&dir.join(table.file()), true, table.batch_rows())
    }

    /// Adds a row (`seq` is ignored without the column).
    pub fn push(&mut self, seq: u64, row: T) -> Result<(), WriteError> {
        if self.with_seq {
            self.seqs.push(seq);
        }
        self.rows.push(row);
        if self.rows.len() >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let err = |e: &dyn std::fmt::Display| WriteError::new(&self.path, e);
        let batch = serde_arrow::to_record_batch(&self.fields, &self.rows).map_err(|e| err(&e))?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + 1);
        if self.with_seq {
            columns.push(Arc::new(UInt64Array::from(std::mem::take(&mut self.seqs))));
        }
        columns.extend(batch.columns().iter().cloned());
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| err(&e))?;
        self.writer.write(&batch).map_err(|e| err(&e))?;
        self.written += self.rows.len() as u64;
        self.rows.clear();
        Ok(())
    }

    /// Writes what is buffered, adds `metadata` and closes the file; returns
    /// the rows written.
    pub fn finish(mut self, metadata: Vec<KeyValue>) -> Result<u64, WriteError> {
        self.flush()?;
        for kv in metadata {
            self.writer.append_key_value_metadata(kv);
        }
        self.writer
            .close()
            .map_err(|e| WriteError::new(&self.path, e))?;
        Ok(self.written)
    }
}

/// Rows per record type in a Parquet log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableCounts {
    pub rank: u64,
    pub impression: u64,
    pub click: u64,
    pub purchase: u64,
    pub stream_status: u64,
}

/// Where an output is written before it is complete: `out` with
/// `.partial` added to its name. Refuses an `out` that exists: a converted
/// log never replaces another.
pub(super) fn partial_path(out: &Path) -> Result<PathBuf, WriteError> {
    if out.exists() {
        return Err(WriteError::new(
            out,
            "already exists; remove it or choose another output",
        ));
    }
    let mut name = out
        .file_name()
        .ok_or_else(|| WriteError::new(out, "names no file or directory"))?
        .to_os_string();
    name.push(".partial");
    Ok(out.with_file_name(name))
}

/// Writes a Parquet log. Files go to a `.partial` directory beside `out`
/// that becomes `out` only when every file is complete, so a failed write
/// leaves nothing that looks like a log.
pub struct ParquetLogWriter {
    out: PathBuf,
    partial: PathBuf,
    header: Option<Header>,
    seq: u64,
    unknown: u64,
    rank: RowWriter<RankRecord>,
    impression: RowWriter<Impression>,
    click: RowWriter<Click>,
    purchase: RowWriter<Purchase>,
    stream_status: RowWriter<StreamStatus>,
}

impl ParquetLogWriter {
    /// Starts a log at `out`, which must not exist yet.
    pub fn create(out: &Path) -> Result<ParquetLogWriter, WriteError> {
        let partial = partial_path(out)?;
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| WriteError::new(&partial, e))?;
        }
        std::fs::create_dir_all(&partial).map_err(|e| WriteError::new(&partial, e))?;
        Ok(ParquetLogWriter {
            rank: RowWriter::for_table(&partial, Table::Rank)?,
            impression: RowWriter::for_table(&partial, Table::Impression)?,
            click: RowWriter::for_table(&partial, Table::Click)?,
            purchase: RowWriter::for_table(&partial, Table::Purchase)?,
            stream_status: RowWriter::for_table(&partial, Table::StreamStatus)?,
            out: out.to_path_buf(),
            partial,
            header: None,
            seq: 0,
            unknown: 0,
        })
    }

    /// Appends a record. The first header is the log's (later ones, from
    /// further files of the same log, are dropped); unknown records are
    /// counted and dropped.
    pub fn write(&mut self, record: Record) -> Result<(), WriteError> {
        let seq = self.seq;
        self.seq += 1;
        match record {
            Record::Header(h) => {
                self.header.get_or_insert(h);
                Ok(())
            }
            Record::Rank(r) => self.rank.push(seq, r),
            Record::Impression(r) => self.impression.push(seq, r),
            Record::Click(r) => self.click.push(seq, r),
            Record::Purchase(r) => self.purchase.push(seq, r),
            Record::StreamStatus(r) => self.stream_status.push(seq, r),
            Record::Unknown => {
                self.unknown += 1;
                Ok(())
            }
        }
    }

    /// Gives the log up: its partial files are removed (best effort; a
    /// `.partial` directory is never read as a log anyway).
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.partial);
    }

    /// Closes every file and moves the log into place; returns the rows per
    /// table and the unknown records dropped.
    pub fn finish(self) -> Result<(TableCounts, u64), WriteError> {
        let header = self.header.unwrap_or_else(|| Header::new("unknown"));
        let json = serde_json::to_string(&header).expect("headers serialize");
        let meta = || vec![KeyValue::new(HEADER_KEY.to_string(), json.clone())];
        let counts = TableCounts {
            rank: self.rank.finish(meta())?,
            impression: self.impression.finish(meta())?,
            click: self.click.finish(meta())?,
            purchase: self.purchase.finish(meta())?,
            stream_status: self.stream_status.finish(meta())?,
        };
        std::fs::rename(&self.partial, &self.out).map_err(|e| WriteError::new(&self.out, e))?;
        Ok((counts, self.unknown))
    }
}

/// The header a Parquet log carries (in every file; the rank table's is
/// read), checked like a JSONL header. `None` when the file has none.
pub fn read_header(dir: &Path) -> Result<Option<Header>, LogError> {
    let path = dir.join(Table::Rank.file());
    let meta = open(&path)?;
    header_of(&path, &meta)
}

fn open(path: &Path) -> Result<ArrowReaderMetadata, LogError> {
    let file = File::open(path).map_err(|e| LogError::Read {
        origin: path.display().to_string(),
        reason: e.to_string(),
    })?;
    ArrowReaderMetadata::load(&file, ArrowReaderOptions::default()).map_err(|e| unreadable(path, e))
}

fn unreadable(path: &Path, reason: impl std::fmt::Display) -> LogError {
    LogError::Unreadable {
        origin: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn header_of(path: &Path, meta: &ArrowReaderMetadata) -> Result<Option<Header>, LogError> {
    let Some(json) = meta
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == HEADER_KEY))
        .and_then(|kv| kv.value.as_deref())
    else {
        return Ok(None);
    };
    let header: Header = serde_json::from_str(json)
        .map_err(|e| unreadable(path, format!("metadata `{HEADER_KEY}`: {e}")))?;
    let refuse = |reason: String| unreadable(path, reason);
    if header.format != FORMAT {
        return Err(refuse(format!(
            "format `{}` is not `{FORMAT}`",
            header.format
        )));
    }
    if header.version > VERSION {
        return Err(refuse(format!(
            "version {} is newer than this build reads ({VERSION})",
            header.version
        )));
    }
    Ok(Some(header))
}

#[derive(serde::Deserialize)]
struct Seq {
    seq: u64,
}

/// A table's own decoder: the columns it reads (after `seq`) and the
/// decoding, for batches with exactly those columns.
type ByHand<T> = (
    Vec<FieldRef>,
    fn(&RecordBatch) -> Result<Vec<(u64, T)>, String>,
);

/// Reads the rows of one table of the log in `dir`, row groups in parallel:
/// each with its `seq`, in file order. A table whose file is missing has no
/// rows.
fn read_table<T: DeserializeOwned + Send>(
    dir: &Path,
    table: Table,
    by_hand: Option<ByHand<T>>,
) -> Result<Vec<(u64, T)>, LogError> {
    let path = dir.join(table.file());
    if table != Table::Rank && !path.exists() {
        return Ok(Vec::new());
    }
    let meta = open(&path)?;
    header_of(&path, &meta)?;
    let groups = meta.metadata().num_row_groups();
    let parts: Vec<Result<Vec<(u64, T)>, LogError>> = (0..groups)
        .into_par_iter()
        .map(|group| {
            let file = File::open(&path).map_err(|e| unreadable(&path, e))?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
                .with_row_groups(vec![group])
                .with_batch_size(1024)
                .build()
                .map_err(|e| unreadable(&path, e))?;
            let mut rows = Vec::new();
            for batch in reader {
                let batch = batch.map_err(|e| unreadable(&path, e))?;
                if let Some((fields, decode)) = &by_hand
                    && rank_columns::is_current(&batch, fields)
                {
                    rows.extend(decode(&batch).map_err(|e| unreadable(&path, e))?);
                    continue;
                }
                let seq_column = batch
                    .schema()
                    .index_of("seq")
                    .map_err(|_| unreadable(&path, "no `seq` column"))?;
                let seqs: Vec<Seq> = serde_arrow::from_record_batch(
                    &batch
                        .project(&[seq_column])
                        .map_err(|e| unreadable(&path, e))?,
                )
                .map_err(|e| unreadable(&path, format!("column `seq`: {e}")))?;
                let records: Vec<T> =
                    serde_arrow::from_record_batch(&batch).map_err(|e| unreadable(&path, e))?;
                rows.extend(seqs.into_iter().map(|s| s.seq).zip(records));
            }
            Ok(rows)
        })
        .collect();
    let mut rows = Vec::new();
    for part in parts {
        rows.extend(part?);
    }
    Ok(rows)
}

/// Reads the records of `tables` from the Parquet log in `dir`, in log
/// order (by `seq`). Tables left out are not opened. A rank row the format
/// refuses ([`RankRecord::check`]) stops the read, or with
/// [`OnError::Skip`] is left out and counted (the second value).
pub fn read_log(
    dir: &Path,
    tables: &[Table],
    on_error: OnError,
) -> Result<(Vec<Record>, usize), LogError> {
    let mut all: Vec<(u64, Record)> = Vec::new();
    let mut skipped = 0;
    for &table in tables {
        match table {
            Table::Rank => {
                let by_hand = (rank_fields(), rank_columns::decode as _);
                let mut rows: Vec<(u64, RankRecord)> = read_table(dir, table, Some(by_hand))?;
                let mut refused = None;
                let mut row = 0;
                rows.retain(|(_, r)| {
                    row += 1;
                    match r.check() {
                        Ok(()) => true,
                        Err(reason) => {
                            skipped += 1;
                            refused.get_or_insert((row, reason));
                            false
                        }
                    }
                });
                if let Some((row, reason)) = refused.filter(|_| on_error == OnError::Fail) {
                    return Err(LogError::BadRow {
                        origin: dir.join(table.file()).display().to_string(),
                        row,
                        reason,
                    });
                }
                extend(&mut all, rows, Record::Rank);
            }
            Table::Impression => {
                extend(&mut all, read_table(dir, table, None)?, Record::Impression)
            }
            Table::Click => extend(&mut all, read_table(dir, table, None)?, Record::Click),
            Table::Purchase => extend(&mut all, read_table(dir, table, None)?, Record::Purchase),
            Table::StreamStatus => extend(
                &mut all,
                read_table(dir, table, None)?,
                Record::StreamStatus,
            ),
        }
    }
    // Stable, so equal (hand-edited) seqs keep table order.
    all.sort_by_key(|(seq, _)| *seq);
    Ok((all.into_iter().map(|(_, r)| r).collect(), skipped))
}

fn extend<T>(all: &mut Vec<(u64, Record)>, rows: Vec<(u64, T)>, wrap: fn(T) -> Record) {
    all.extend(rows.into_iter().map(|(seq, r)| (seq, wrap(r))));
}

/// The columns of a table: name, Arrow type as text, nullable; for the
/// docs' schema and the test that keeps them in step.
pub fn describe(table: Table) -> Vec<(String, String, bool)> {
    let fields = match table {
        Table::Rank => record_fields::<RankRecord>(),
        Table::Impression => record_fields::<Impression>(),
        Table::Click => record_fields::<Click>(),
        Table::Purchase => record_fields::<Purchase>(),
        Table::StreamStatus => record_fields::<StreamStatus>(),
    };
    std::iter::once(("seq".to_string(), "UInt64".to_string(), false))
        .chain(
            fields
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string(), f.is_nullable())),
        )
        .collect()
}
