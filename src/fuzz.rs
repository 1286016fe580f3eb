//! The properties the fuzz targets (`fuzz/`, docs/fuzzing.md) check on
//! arbitrary bytes, as plain functions that panic when one fails, so the
//! coverage-guided fuzzers and the proptest smoke in `tests/fuzz_smoke.rs`
//! check exactly the same thing. Every input a fuzzer found a failure with
//! is kept in `fuzz/regressions/` and replayed by that test.

use crate::catalog::Catalog;
use crate::config::{Config, DEFAULT_TOML, changes, content_version};
use crate::domain::{FieldError, Millis};
use crate::engine::{Engine, RankQuery, RankState};
use crate::model::Model;
use crate::proto::v1 as pb;
use crate::server::{convert, decode};
use crate::traffic::{OnError, TrafficReader};
use crate::wal::{Wal, WalError, WalOptions, frame};
use prost::Message;
use std::sync::{Arc, OnceLock};

/// 2026-11-21 00:00 UTC: the demo catalog's "now".
const NOW: Millis = Millis(1_795_132_800_000);

fn engine() -> &'static (Engine, Catalog) {
    static FIXTURE: OnceLock<(Engine, Catalog)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = Config::embedded_default().expect("embedded config");
        let model = Model::embedded().expect("embedded model");
        let catalog = Catalog::embedded_demo(128).expect("demo catalog");
        (Engine::new(config.engine, Arc::new(model)), catalog)
    })
}

/// A `Rank` body: the server's decoder reads it as prost and conversion
/// read it ([`rank_decoding`]), and refuses it, or refuses its query with a
/// field, or yields a query; a query ranks, or is refused with a field; a
/// page holds at most `slots` distinct candidates with finite, non-negative
/// scores. Bytes that do not decode are read as a request over the demo
/// catalog instead (`structured`), so most inputs reach the engine.
pub fn rank(data: &[u8]) {
    let decoded = rank_decoding(data).unwrap_or_else(|| {
        rank_decoding(&structured(data).encode_to_vec())
            .expect("a request encoded by prost decodes")
    });
    let query = match decoded {
        Ok(q) => q,
        Err(e) => return assert!(!e.field.is_empty()),
    };
    let (engine, catalog) = engine();
    let ranking = match engine.rank(catalog, &RankState::new(), &query) {
        Ok(r) => r,
        Err(e) => return assert!(!e.to_string().is_empty()),
    };
    assert!(ranking.slots.len() <= query.slots as usize);
    let mut seen = std::collections::HashSet::new();
    for slot in &ranking.slots {
        assert!(slot.score.is_finite() && slot.score >= 0.0, "{slot:?}");
        assert!(
            seen.insert((&slot.item_id, slot.kind)),
            "placed twice: {slot:?}"
        );
        assert!(
            query
                .candidates
                .iter()
                .any(|c| c.item_id == slot.item_id && c.kind == slot.kind),
            "not a candidate: {slot:?}"
        );
    }
}

/// Bytes read by the server's `Rank` decoder and by prost followed by
/// conversion (the reference) agree: both refuse them, or both yield the
/// same query, or both refuse the query naming the same field. `None` when
/// the bytes are not a `RankRequest`.
pub fn rank_decoding(data: &[u8]) -> Option<Result<RankQuery, FieldError>> {
    let reference = pb::RankRequest::decode(data)
        .map(|r| (convert::scene(r.scene).ok(), convert::rank_query(r, NOW)));
    let decoded = decode::rank_request(data, NOW);
    match (reference, decoded) {
        (Err(_), Err(refused)) => {
            assert!(refused.offset <= data.len(), "{refused}");
            None
        }
        (Ok((scene, expected)), Ok(decoded)) => {
            // Debug, not ==: a NaN estimate is the same NaN on both sides.
            assert_eq!(format!("{:?}", decoded.query), format!("{expected:?}"));
            assert_eq!(decoded.scene, scene);
            Some(decoded.query)
        }
        (reference, decoded) => panic!("prost: {reference:?}\ndecoder: {decoded:?}"),
    }
}

/// A request whose every choice is read from `data`: scene, slots, time,
/// and per candidate a catalog item (or an unknown id), its kind, and which
/// of the caller's estimates it carries, with what values (any `f64`).
fn structured(data: &[u8]) -> pb::RankRequest {
    static IDS: OnceLock<Vec<String>> = OnceLock::new();
    let ids = IDS.get_or_init(|| {
        let catalog = &engine().1;
        let mut ids: Vec<String> = catalog.streams().map(|e| e.stream.id.clone()).collect();
        ids.extend(["g000001", "g000112", "g034826", "unknown", ""].map(String::from));
        ids
    });
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next().unwrap_or(0);
    let f64_from = |next: &mut dyn FnMut() -> u8| {
        let raw = u64::from_le_bytes(std::array::from_fn(|_| next()));
        // Mostly probabilities and prices; sometimes any bit pattern.
        if raw & 3 == 0 {
            f64::from_bits(raw)
        } else {
            (raw >> 11) as f64 / (1u64 << 53) as f64 * if raw & 4 == 0 { 1.0 } else { 500.0 }
        }
    };
    let scene = i32::from(next() % 7) - 1;
    let slots = u32::from(next() % 40);
    let time = match next() % 4 {
        0 => None,
        1 => Some(1_795_132_800_000 + i64::from(next()) * 60_000),
        2 => Some(i64::from(next()) << 40),
        _ => Some(-i64::from(next())),
    };
    let n = usize::from(next() % 64);
    let candidates = (0..n)
        .map(|_| {
            let pick = usize::from(next()) << 8 | usize::from(next());
            let flags = next();
            let item_id = ids[pick % ids.len()].clone();
            let kind = if item_id.starts_with('g') {
                2
            } else {
                i32::from(flags & 1) + 1
            };
            pb::Candidate {
                item_id,
                kind: if flags & 0x80 != 0 {
                    i32::from(flags % 5) - 1
                } else {
                    kind
                },
                streamer_id: (flags & 2 != 0).then(|| format!("s{:05}", pick % 3000)),
                brand_id: None,
                price: (flags & 4 != 0).then(|| f64_from(&mut next)),
                pctr: (flags & 8 != 0).then(|| f64_from(&mut next)),
                pcvr: (flags & 16 != 0).then(|| f64_from(&mut next)),
                user_follows: (flags & 32 != 0).then_some(flags & 64 != 0),
            }
        })
        .collect();
    pb::RankRequest {
        request_id: "fuzz".into(),
        user_id: format!("u{}", next()),
        scene,
        slots,
        candidates,
        request_time_ms: time,
    }
}

/// A segment of arbitrary bytes: reading it back covers every byte once
/// and finds only intact records; recovery either refuses naming the file
/// and an offset inside it, or returns intact records, and recovering a
/// second time returns the same ones (a cut torn tail stays cut).
pub fn wal(data: &[u8]) {
    let scanned = frame::scan(data);
    let mut at = if scanned.first_seq.is_some() {
        frame::SEGMENT_HEADER as u64
    } else {
        0
    };
    for piece in &scanned.pieces {
        assert_eq!(piece.offset(), at, "pieces are contiguous");
        at = match piece {
            frame::Piece::Record { payload, .. } => payload.end as u64,
            frame::Piece::Bad { end, .. } => *end,
        };
    }
    assert!(at == data.len() as u64 || scanned.pieces.is_empty() && at >= data.len() as u64);

    let dir = Scratch::new();
    let segment = dir.0.join(format!("wal-{:020}.log", 1));
    std::fs::write(&segment, data).expect("write segment");
    let first = match Wal::open(&dir.0, 0, WalOptions::default()) {
        Ok((wal, recovered)) => {
            drop(wal);
            recovered
        }
        Err(WalError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, segment);
            assert!(offset <= data.len() as u64);
            return;
        }
        Err(e) => panic!("{e}"),
    };
    for r in &first.records {
        let start = r.offset as usize + frame::RECORD_HEADER;
        assert_eq!(&data[start..start + r.payload.len()], &r.payload[..]);
    }
    let (_, again) = Wal::open(&dir.0, 0, WalOptions::default()).expect("reopens");
    assert_eq!(again.records, first.records);
    assert_eq!(again.torn_bytes, 0);
}

/// A fresh directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Scratch {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fairflow-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config text: it validates or is refused naming a key; a valid one has
/// a summary, a content version, and a list of changes from the default.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text, "fuzz.toml", None) {
        Ok(config) => {
            assert_eq!(config.version, content_version(text));
            assert!(config.summary().contains(&config.version));
            let _ = changes(DEFAULT_TOML, text);
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml: ")),
    }
}

/// A traffic log: every line parses or is reported with its number, a
/// parsed record written back parses to the same record, and a line reads
/// the same through `Record::from_json`'s shortcuts (the tag first, a rank
/// line's candidates scanned by hand) as the generic way.
pub fn traffic(data: &[u8]) {
    // The shortcuts read every line as the generic way does.
    for line in data.split(|&b| b == b'\n') {
        if let Ok(text) = std::str::from_utf8(line) {
            let generic = serde_json::from_str::<crate::traffic::Record>(text);
            match (crate::traffic::Record::from_json(text), generic) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{text}: shortcut {a:?}, generic {b:?}"),
            }
        }
    }
    let reader = TrafficReader::new(data, "fuzz.jsonl", OnError::Skip);
    for item in reader {
        let Ok((_, record)) = item else { continue };
        let line = serde_json::to_string(&record).expect("records serialize");
        let back = TrafficReader::new(line.as_bytes(), "again", OnError::Fail)
            .next()
            .expect("one record")
            .expect("parses back");
        assert_eq!(back.1, record);
    }
}

/// An impression CSV (`convert --csv`): imported, or refused with the
/// file and a row and column (or the missing column); an import is a log
/// every record of which the traffic reader reads back as written.
pub fn impressions(data: &[u8]) {
    use crate::traffic::{CsvColumns, CsvImport, ImportError, csv_records};
    let import = CsvImport {
        columns: CsvColumns {
            timestamp: "t".into(),
            item: "item".into(),
            position: "pos".into(),
            click: "click".into(),
            propensity: "p".into(),
            user: None,
            request: Some("req".into()),
        },
        position_base: 1,
        scene: crate::domain::Scene::Recommend,
    };
    let mut lines = Vec::new();
    let origin = std::path::Path::new("fuzz.csv");
    match csv_records(data, origin, &import, |r| {
        r.write_line(&mut lines);
        Ok(())
    }) {
        Ok((done, _)) => {
            let back: Vec<_> = TrafficReader::new(&lines[..], "import", OnError::Fail)
                .collect::<Result<_, _>>()
                .expect("an import reads back");
            assert!(back.len() as u64 >= 1 + done.requests + done.rows + done.clicks);
        }
        Err(e @ (ImportError::Row { .. } | ImportError::MissingColumn { .. })) => {
            assert!(e.to_string().starts_with("fuzz.csv"), "{e}");
        }
        Err(ImportError::Read { .. }) => {}
        Err(ImportError::Write(e)) => panic!("nothing is written: {e}"),
    }
}

/// A catalog upsert (first byte: streamers, goods or streams): a batch is
/// applied whole, and every record of it reads back, or refused whole with
/// a field, and nothing changes.
pub fn catalog(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let mut catalog = small_catalog().clone();
    let tiers = engine().0.params().tiers;
    let before = catalog.stats(&tiers);
    let outcome = match which % 3 {
        0 => {
            let Ok(r) = pb::UpsertStreamersRequest::decode(body) else {
                return;
            };
            let batch: Result<Vec<_>, _> = r
                .streamers
                .into_iter()
                .map(|s| convert::streamer(s, NOW))
                .collect();
            let Ok(batch) = batch else { return };
            let ids: Vec<String> = batch.iter().map(|s| s.id.clone()).collect();
            let wanted = batch.clone();
            catalog.upsert_streamers(batch, 64).map(|_| {
                for (id, s) in ids.iter().zip(wanted) {
                    assert_eq!(catalog.streamer(id), Some(&s));
                }
            })
        }
        1 => {
            let Ok(r) = pb::UpsertGoodsRequest::decode(body) else {
                return;
            };
            let batch: Vec<_> = r.goods.into_iter().map(convert::goods).collect();
            let wanted = batch.clone();
            catalog.upsert_goods(batch, 64).map(|_| {
                for g in wanted {
                    assert_eq!(catalog.goods(&g.id), Some(&g));
                }
            })
        }
        _ => {
            let Ok(r) = pb::UpsertStreamsRequest::decode(body) else {
                return;
            };
            let batch: Vec<_> = r.streams.into_iter().map(convert::stream).collect();
            let wanted = batch.clone();
            catalog.upsert_streams(batch, 64).map(|_| {
                for s in wanted {
                    assert_eq!(catalog.stream(&s.id).map(|e| &e.stream), Some(&s));
                }
            })
        }
    };
    if let Err(e) = outcome {
        assert!(!e.to_string().is_empty());
        assert_eq!(
            catalog.stats(&tiers),
            before,
            "a refused batch changes nothing"
        );
    }
}

/// A few streamers, goods and streams, so upserts can refer to them.
fn small_catalog() -> &'static Catalog {
    static SMALL: OnceLock<Catalog> = OnceLock::new();
    SMALL.get_or_init(|| {
        let demo = &engine().1;
        let mut c = Catalog::default();
        let streamers = ["s00000", "s00001", "s00300"]
            .map(|id| demo.streamer(id).expect("demo streamer").clone());
        c.upsert_streamers(streamers.to_vec(), 64)
            .expect("streamers");
        c
    })
}
