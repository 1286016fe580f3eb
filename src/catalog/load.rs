//! Loading a catalog from JSONL files (one record per line; format in
//! docs/catalog.md): streamers first, then goods, then streams, so every
//! reference resolves. Errors name the file and line.

use super::{Catalog, Goods, RecordError, Stream, Streamer};
use serde::de::DeserializeOwned;
use std::path::Path;

pub const STREAMERS_FILE: &str = "streamers.jsonl";
pub const GOODS_FILE: &str = "goods.jsonl";
pub const STREAMS_FILE: &str = "streams.jsonl";

/// Names the embedded demo catalog in errors and logs.
pub const DEMO_ORIGIN: &str = "<embedded config/demo/catalog>";

const DEMO_STREAMERS: &str = include_str!("../../config/demo/catalog/streamers.jsonl");
const DEMO_GOODS: &str = include_str!("../../config/demo/catalog/goods.jsonl");
const DEMO_STREAMS: &str = include_str!("../../config/demo/catalog/streams.jsonl");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file} line {line}: {reason}")]
    Record {
        file: String,
        line: usize,
        reason: String,
    },
}

/// One parsed file: records with the line each came from.
struct Rows<T> {
    file: String,
    lines: Vec<usize>,
    records: Vec<T>,
}

impl<T: DeserializeOwned> Rows<T> {
    fn parse(file: String, text: &str) -> Result<Rows<T>, CatalogError> {
        let mut rows = Rows {
            file,
            lines: Vec::new(),
            records: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record = serde_json::from_str(line).map_err(|e| CatalogError::Record {
                file: rows.file.clone(),
                line: i + 1,
                reason: e.to_string(),
            })?;
            rows.lines.push(i + 1);
            rows.records.push(record);
        }
        Ok(rows)
    }

    /// Hands the records to an upsert, mapping a refused record back to its line.
    fn apply<F>(self, upsert: F) -> Result<(), CatalogError>
    where
        F: FnOnce(Vec<T>) -> Result<super::UpsertCount, RecordError>,
    {
        let Rows {
            file,
            lines,
            records,
        } = self;
        upsert(records)
            .map(|_| ())
            .map_err(|e| CatalogError::Record {
                file,
                line: lines[e.index],
                reason: e.error.to_string(),
            })
    }
}

impl Catalog {
    /// Builds a catalog from the three files' texts; `origin` prefixes the
    /// file names in errors.
    pub fn from_jsonl(
        origin: &str,
        streamers: &str,
        goods: &str,
        streams: &str,
        max_id: usize,
    ) -> Result<Catalog, CatalogError> {
        let name = |f: &str| format!("{origin}/{f}");
        let mut catalog = Catalog::new();
        Rows::<Streamer>::parse(name(STREAMERS_FILE), streamers)?
            .apply(|b| catalog.upsert_streamers(b, max_id))?;
        Rows::<Goods>::parse(name(GOODS_FILE), goods)?
            .apply(|b| catalog.upsert_goods(b, max_id))?;
        Rows::<Stream>::parse(name(STREAMS_FILE), streams)?
            .apply(|b| catalog.upsert_streams(b, max_id))?;
        Ok(catalog)
    }

    /// Loads `dir/{streamers,goods,streams}.jsonl`.
    pub fn load_dir(dir: &Path, max_id: usize) -> Result<Catalog, CatalogError> {
        let read = |f: &str| {
            let path = dir.join(f);
            std::fs::read_to_string(&path).map_err(|source| CatalogError::Read {
                file: path.display().to_string(),
                source,
            })
        };
        Catalog::from_jsonl(
            &dir.display().to_string(),
            &read(STREAMERS_FILE)?,
            &read(GOODS_FILE)?,
            &read(STREAMS_FILE)?,
            max_id,
        )
    }

    /// The catalog a config names: the embedded demo or a directory.
    pub fn from_source(
        source: &super::CatalogSource,
        max_id: usize,
    ) -> Result<Catalog, CatalogError> {
        match source {
            super::CatalogSource::Embedded => Catalog::embedded_demo(max_id),
            super::CatalogSource::Dir(dir) => Catalog::load_dir(dir, max_id),
        }
    }

    /// The demo catalog compiled into the binary.
    pub fn embedded_demo(max_id: usize) -> Result<Catalog, CatalogError> {
        Catalog::from_jsonl(
            DEMO_ORIGIN,
            DEMO_STREAMERS,
            DEMO_GOODS,
            DEMO_STREAMS,
            max_id,
        )
    }

    /// Writes the catalog as the three JSONL files, in id order so the output
    /// is byte-identical for the same content.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_sorted(&dir.join(STREAMERS_FILE), self.streamers(), |s| &s.id)?;
        write_sorted(&dir.join(GOODS_FILE), self.goods_iter(), |g| &g.id)?;
        write_sorted(
            &dir.join(STREAMS_FILE),
            self.streams().map(|e| &e.stream),
            |s| &s.id,
        )?;
        Ok(())
    }
}

fn write_sorted<'a, T: serde::Serialize + 'a>(
    path: &Path,
    records: impl Iterator<Item = &'a T>,
    id: impl Fn(&T) -> &String,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut records: Vec<&T> = records.collect();
    records.sort_by(|a, b| id(a).cmp(id(b)));
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in records {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_and_line() {
        let streamers = r#"{"id":"s1","followers":10,"kind":"influencer","created_at":0}

{"id":"s2","followers":10,"kind":"brand_self","created_at":0}
"#;
        let err = Catalog::from_jsonl("d", streamers, "", "", 64)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "d/streamers.jsonl line 3: brand_id: a brand self-broadcast account needs its brand id"
        );
        let err = Catalog::from_jsonl("d", "{not json", "", "", 64)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("d/streamers.jsonl line 1: "), "{err}");
    }

    #[test]
    fn write_then_load_round_trips() {
        let demo = Catalog::embedded_demo(128).unwrap();
        let dir = tempfile::tempdir().unwrap();
        demo.write_dir(dir.path()).unwrap();
        let back = Catalog::load_dir(dir.path(), 128).unwrap();
        assert_eq!(back.streamer_list.len(), demo.streamer_list.len());
        for s in demo.streamers() {
            assert_eq!(back.streamer(&s.id), Some(s));
        }
        for e in demo.streams() {
            assert_eq!(back.stream(&e.stream.id), Some(e));
        }
    }

    #[test]
    fn missing_dir_names_the_file() {
        let err = Catalog::load_dir(Path::new("/nonexistent/x"), 64)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/nonexistent/x/streamers.jsonl: cannot read"),
            "{err}"
        );
    }
}
