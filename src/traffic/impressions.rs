//! Impression logs from elsewhere into the traffic-log format: a CSV with
//! one row per impression (item, position, click, the logging policy's
//! marginal propensity), as public bandit datasets publish them, becomes a
//! log with a catalog of its items, so it can be replayed as is.
//!
//! Rows of one request (the `request` column, consecutive rows with one
//! value; without it, every row is its own request) become one `rank`
//! record whose candidates are every item of the file (the action space)
//! and whose served entries are the rows, at their positions with marginal
//! propensities; each row is also an `impression`, and a `click` where it
//! was clicked. Each item is goods of its own seller in the catalog, so no
//! per-seller cap binds and the engine ranks on the items alone.

use super::parquet::{WriteError, partial_path};
use super::{Click, Header, Impression, PropensityKind, RankRecord, Record, ServedSlot};
use super::{TrafficWriter, VERSION};
use crate::domain::{ItemKind, Millis, Scene};
use crate::engine::Candidate;
use std::path::{Path, PathBuf};

/// The CSV's column names.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvColumns {
    /// Unix milliseconds, or a date and time (`2019-11-24 00:00:17.967439+00:00`).
    pub timestamp: String,
    pub item: String,
    pub position: String,
    /// 0 or 1.
    pub click: String,
    /// In (0, 1]: the item's probability at that position.
    pub propensity: String,
    pub user: Option<String>,
    pub request: Option<String>,
}

/// How to read the CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvImport {
    pub columns: CsvColumns,
    /// The CSV's first position (1 when positions count from 1).
    pub position_base: u32,
    /// The scene the requests are ranked as.
    pub scene: Scene,
}

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imported {
    pub rows: u64,
    pub requests: u64,
    pub items: usize,
    pub clicks: u64,
    pub slots: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: no column `{column}` (it has: {have})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        have: String,
    },
    #[error("{path} row {row}: column `{column}`: {reason}")]
    Row {
        path: PathBuf,
        row: u64,
        column: String,
        reason: String,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// One impression, as read.
struct Row {
    time: Millis,
    item: String,
    position: u32,
    click: bool,
    propensity: f64,
    user: Option<String>,
    request: Option<String>,
    number: u64,
}

/// Unix milliseconds from an integer, or from `YYYY-MM-DD[ T]HH:MM:SS[.f]`
/// with an optional `Z` or `+HH:MM` / `-HH:MM` offset (UTC without one).
pub fn parse_time(text: &str) -> Result<Millis, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(Millis(ms));
    }
    let bad = || format!("`{text}` is neither Unix milliseconds nor a date and time");
    let b = text.as_bytes();
    // A date and time is ASCII; anything else is refused before it is cut
    // up by byte offsets.
    if !text.is_ascii()
        || b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        text.get(range)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let (f, tail) = frac.split_at(digits);
        if digits == 0 {
            return Err(bad());
        }
        // Milliseconds: the first three digits, padded.
        ms = format!("{f:0<3}")[..3].parse::<i64>().map_err(|_| bad())?;
        rest = tail;
    }
    let offset_min = match rest {
        "" | "Z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let oh = rest[1..3].parse::<i64>().map_err(|_| bad())?;
            let om = rest[4..6].parse::<i64>().map_err(|_| bad())?;
            sign * (oh * 60 + om)
        }
        _ => return Err(bad()),
    };
    // Days from the civil date (proleptic Gregorian), as in H. Hinnant's
    // `days_from_civil`.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60;
    Ok(Millis(seconds * 1000 + ms))
}

fn read_rows(
    input: impl std::io::Read,
    path: &Path,
    import: &CsvImport,
) -> Result<Vec<Row>, ImportError> {
    let read = |e: csv::Error| ImportError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader.headers().map_err(read)?.clone();
    let index = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| ImportError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
                have: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let c = &import.columns;
    let (time_i, item_i, pos_i) = (index(&c.timestamp)?, index(&c.item)?, index(&c.position)?);
    let (click_i, prop_i) = (index(&c.click)?, index(&c.propensity)?);
    let user_i = c.user.as_deref().map(index).transpose()?;
    let request_i = c.request.as_deref().map(index).transpose()?;
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(read)?;
        // Row 1 is the header line.
        let number = n as u64 + 2;
        let field = |i: usize, column: &str| -> Result<&str, ImportError> {
            record
                .get(i)
                .map(str::trim)
                .ok_or_else(|| ImportError::Row {
                    path: path.to_path_buf(),
                    row: number,
                    column: column.to_string(),
                    reason: "missing".into(),
                })
        };
        let refuse = |column: &str, reason: String| ImportError::Row {
            path: path.to_path_buf(),
            row: number,
            column: column.to_string(),
            reason,
        };
        let time = parse_time(field(time_i, &c.timestamp)?).map_err(|r| refuse(&c.timestamp, r))?;
        let item = field(item_i, &c.item)?.to_string();
        if item.is_empty() {
            return Err(refuse(&c.item, "empty".into()));
        }
        let position = field(pos_i, &c.position)?
            .parse::<u32>()
            .ok()
            .and_then(|p| p.checked_sub(import.position_base))
            .ok_or_else(|| {
                refuse(
                    &c.position,
                    format!("not a whole number from {}", import.position_base),
                )
            })?;
        let click = match field(click_i, &c.click)? {
            "1" | "true" | "1.0" => true,
            "0" | "false" | "0.0" => false,
            other => return Err(refuse(&c.click, format!("`{other}` is not 0 or 1"))),
        };
        let propensity = field(prop_i, &c.propensity)?
            .parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 1.0)
            .ok_or_else(|| refuse(&c.propensity, "not a number in (0, 1]".into()))?;
        rows.push(Row {
            time,
            item,
            position,
            click,
            propensity,
            user: user_i
                .map(|i| field(i, "user"))
                .transpose()?
                .map(str::to_string),
            request: request_i
                .map(|i| field(i, "request"))
                .transpose()?
                .map(str::to_string),
            number,
        });
    }
    Ok(rows)
}

/// Writes the catalog of `items` into `dir`: each item goods of its own
/// seller and brand, at a nominal price of 1 yuan.
fn write_catalog(dir: &Path, items: &[String]) -> Result<(), WriteError> {
    use crate::catalog::{Catalog, Goods, QualityScores, Streamer};
    use crate::domain::StreamerKind;
    let seller = |item: &str| format!("seller-{item}");
    let streamers = items
        .iter()
        .map(|i| Streamer {
            id: seller(i),
            followers: 0,
            kind: StreamerKind::Influencer,
            brand_id: None,
            scores: QualityScores::default(),
            created_at: Millis(0),
        })
        .collect();
    let goods = items
        .iter()
        .map(|i| Goods {
            id: i.clone(),
            brand_id: format!("brand-{i}"),
            price: 1.0,
            product_score: None,
            seller_id: seller(i),
        })
        .collect();
    // Ids are checked against the config's limit where the catalog is
    // loaded; everything else holds by construction.
    let mut catalog = Catalog::new();
    let refused = |e: crate::catalog::RecordError| WriteError::new(dir, e);
    catalog
        .upsert_streamers(streamers, usize::MAX)
        .map_err(refused)?;
    catalog.upsert_goods(goods, usize::MAX).map_err(refused)?;
    catalog.write_dir(dir).map_err(|e| WriteError::new(dir, e))
}

/// Imports the CSV at `input` into the directory `out` (which must not
/// exist): `out/traffic.jsonl` and `out/catalog/`, written under
/// `out.partial` and renamed when complete.
pub fn import_csv(input: &Path, out: &Path, import: &CsvImport) -> Result<Imported, ImportError> {
    let file = std::fs::File::open(input).map_err(|e| ImportError::Read {
        path: input.to_path_buf(),
        reason: e.to_string(),
    })?;
    let partial = partial_path(out)?;
    std::fs::create_dir_all(&partial).map_err(|e| WriteError::new(&partial, e))?;
    let result = write_import(file, input, &partial, import);
    match result {
        Ok(done) => {
            std::fs::rename(&partial, out).map_err(|e| WriteError::new(out, e))?;
            Ok(done)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

fn write_import(
    input: impl std::io::Read,
    origin: &Path,
    dir: &Path,
    import: &CsvImport,
) -> Result<Imported, ImportError> {
    let path = dir.join("traffic.jsonl");
    let file = std::fs::File::create(&path).map_err(|e| WriteError::new(&path, e))?;
    let mut writer = TrafficWriter::new(file);
    let (done, items) = records(input, origin, import, |record| {
        writer.write(&record).map_err(|e| WriteError::new(&path, e))
    })?;
    let file = writer.finish().map_err(|e| WriteError::new(&path, e))?;
    file.sync_all().map_err(|e| WriteError::new(&path, e))?;
    write_catalog(&dir.join("catalog"), &items)?;
    Ok(done)
}

/// The log of the CSV `input` (named `origin` in errors), record by record
/// into `put`, in time order; returns what was imported and the items, in
/// order of first appearance.
pub fn records(
    input: impl std::io::Read,
    origin: &Path,
    import: &CsvImport,
    mut put: impl FnMut(Record) -> Result<(), WriteError>,
) -> Result<(Imported, Vec<String>), ImportError> {
    let mut rows = read_rows(input, origin, import)?;
    // Time order, rows of a request together, positions top first.
    rows.sort_by_key(|r| r.time);
    let mut items: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        if seen.insert(r.item.as_str()) {
            items.push(r.item.clone());
        }
    }
    let slots = rows.iter().map(|r| r.position + 1).max().unwrap_or(1);
    let candidates: Vec<Candidate> = items
        .iter()
        .map(|i| Candidate::new(i, ItemKind::Goods))
        .collect();
    let mut header = Header::new(&format!(
        "fairflow convert --csv {}",
        origin.file_name().unwrap_or_default().to_string_lossy()
    ));
    header.version = VERSION;
    header.catalog = Some("catalog".into());
    put(Record::Header(header))?;
    let mut done = Imported {
        items: items.len(),
        slots,
        ..Imported::default()
    };
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        if rows[start].request.is_some() {
            while end < rows.len() && rows[end].request == rows[start].request {
                end += 1;
            }
        }
        let page = &mut rows[start..end];
        page.sort_by_key(|r| r.position);
        if let Some(pair) = page.windows(2).find(|w| w[0].position == w[1].position) {
            return Err(ImportError::Row {
                path: origin.to_path_buf(),
                row: pair[1].number,
                column: import.columns.position.clone(),
                reason: format!(
                    "position {} is in its request twice",
                    pair[1].position + import.position_base
                ),
            });
        }
        let first = &page[0];
        let request_id = first
            .request
            .clone()
            .unwrap_or_else(|| format!("row-{}", first.number));
        let user_id = first.user.clone().unwrap_or_else(|| "anonymous".into());
        put(Record::Rank(RankRecord {
            time: first.time,
            request_id: request_id.clone(),
            user_id: user_id.clone(),
            scene: import.scene,
            slots,
            candidates: candidates.clone(),
            served: page
                .iter()
                .map(|r| ServedSlot {
                    item_id: r.item.clone(),
                    kind: ItemKind::Goods,
                    position: Some(r.position),
                    propensity: Some(r.propensity),
                    propensity_kind: Some(PropensityKind::Marginal),
                })
                .collect(),
            policy: Some("logged".into()),
            arms: None,
        }))?;
        for r in page.iter() {
            let event_id = format!("row-{}", r.number);
            put(Record::Impression(Impression {
                time: r.time,
                event_id: event_id.clone(),
                request_id: request_id.clone(),
                user_id: user_id.clone(),
                item_id: r.item.clone(),
                kind: ItemKind::Goods,
                position: r.position,
                streamer_id: Some(format!("seller-{}", r.item)),
            }))?;
            if r.click {
                done.clicks += 1;
                put(Record::Click(Click {
                    time: r.time,
                    event_id: format!("{event_id}-click"),
                    request_id: request_id.clone(),
                    user_id: user_id.clone(),
                    item_id: r.item.clone(),
                    kind: ItemKind::Goods,
                    position: r.position,
                }))?;
            }
        }
        done.rows += page.len() as u64;
        done.requests += 1;
        start = end;
    }
    Ok((done, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_milliseconds_or_dates_with_offsets() {
        assert_eq!(parse_time("1795104000000"), Ok(Millis(1_795_104_000_000)));
        assert_eq!(parse_time("1970-01-01 00:00:00"), Ok(Millis(0)));
        assert_eq!(
            parse_time("2019-11-24 00:00:17.967439+00:00"),
            Ok(Millis(1_574_553_617_967))
        );
        assert_eq!(
            parse_time("2019-11-24T08:00:17.9+08:00"),
            Ok(Millis(1_574_553_617_900))
        );
        assert_eq!(
            parse_time("2000-03-01T00:00:00Z"),
            Ok(Millis(951_868_800_000))
        );
        for bad in [
            "",
            "yesterday",
            "2019-13-01 00:00:00",
            "2019-11-24 00:00:17+0000",
            // Not ASCII where the offset or the seconds are (a fuzzer's).
            "2019-11-24 00:00:13.9+0\u{43e}20",
            "2019-11-24 00:00:1\u{e9}",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
