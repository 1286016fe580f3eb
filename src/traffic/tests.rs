//! Rules checked: records round-trip through writer and reader; malformed
//! lines are reported with their line number and skipped or fatal as asked;
//! unknown fields and record types are tolerated; newer versions refused.

use super::*;
use crate::domain::{ItemKind, Millis, Scene};

fn sample() -> Vec<Record> {
    let mut header = Header::new("test");
    header.seed = Some(7);
    vec![
        Record::Header(header),
        Record::StreamStatus(StreamStatus {
            time: Millis(1),
            stream_id: "live-s1".into(),
            live: true,
        }),
        Record::Rank(RankRecord {
            time: Millis(2),
            request_id: "r1".into(),
            user_id: "u1".into(),
            scene: Scene::Recommend,
            slots: 2,
            candidates: vec![
                Candidate::new("live-s1", ItemKind::LiveStream),
                Candidate {
                    price: Some(9.9),
                    ..Candidate::new("g1", ItemKind::Goods)
                },
            ],
            served: vec![ServedSlot {
                item_id: "g1".into(),
                kind: ItemKind::Goods,
                position: Some(1),
                // Seventeen significant digits: must read back bit for bit.
                propensity: Some(0.012492697114229725),
                propensity_kind: Some(PropensityKind::Marginal),
            }],
            policy: Some("sim".into()),
            arms: Some("targets:a".into()),
        }),
        Record::Impression(Impression {
            time: Millis(2),
            event_id: "e1".into(),
            request_id: "r1".into(),
            user_id: "u1".into(),
            item_id: "g1".into(),
            kind: ItemKind::Goods,
            position: 0,
            streamer_id: Some("s1".into()),
        }),
        Record::Click(Click {
            time: Millis(3),
            event_id: "e2".into(),
            request_id: "r1".into(),
            user_id: "u1".into(),
            item_id: "g1".into(),
            kind: ItemKind::Goods,
            position: 0,
        }),
        Record::Purchase(Purchase {
            time: Millis(4),
            event_id: "e3".into(),
            user_id: "u1".into(),
            goods_id: "g1".into(),
            brand_id: "b1".into(),
            seller_id: "s1".into(),
            channel: Channel::Influencer,
            price: 9.9,
            venue: Some(crate::domain::Venue::LiveStream),
            request_id: Some("r1".into()),
            slot_item_id: Some("g1".into()),
        }),
    ]
}

fn read_all(text: &str, on_error: OnError) -> (Vec<(usize, Record)>, Option<LogError>, usize) {
    let mut reader = TrafficReader::new(text.as_bytes(), "t.jsonl", on_error);
    let mut records = Vec::new();
    let mut error = None;
    for r in reader.by_ref() {
        match r {
            Ok(rec) => records.push(rec),
            Err(e) => error = Some(e),
        }
    }
    (records, error, reader.skipped_count())
}

#[test]
fn records_round_trip() {
    let mut w = TrafficWriter::new(Vec::new());
    for r in sample() {
        w.write(&r).unwrap();
    }
    let bytes = w.finish().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (records, error, _) = read_all(&text, OnError::Fail);
    assert!(error.is_none());
    let back: Vec<Record> = records.into_iter().map(|(_, r)| r).collect();
    assert_eq!(back, sample());
}

#[test]
fn malformed_lines_are_reported_with_their_line_number() {
    let good = r#"{"type":"stream_status","time":5,"stream_id":"x","live":false}"#;
    let text = format!("{good}\n\n{{not json\n{good}\n{{\"type\":\"click\",\"time\":1}}\n");
    let (records, error, skipped) = read_all(&text, OnError::Skip);
    assert!(error.is_none());
    assert_eq!(records.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 4]);
    assert_eq!(skipped, 2);

    let mut reader = TrafficReader::new(text.as_bytes(), "t.jsonl", OnError::Skip);
    reader.by_ref().for_each(drop);
    let lines: Vec<String> = reader.skipped().iter().map(|e| e.to_string()).collect();
    assert!(lines[0].starts_with("t.jsonl line 3: "), "{lines:?}");
    assert!(
        lines[1].starts_with("t.jsonl line 5: ") && lines[1].contains("missing field"),
        "{lines:?}"
    );

    let (records, error, _) = read_all(&text, OnError::Fail);
    assert_eq!(records.len(), 1);
    assert!(error.unwrap().to_string().starts_with("t.jsonl line 3: "));
}

#[test]
fn a_propensity_outside_its_range_refuses_the_record_with_line_and_field() {
    let rank = |served: &str| {
        format!(
            r#"{{"type":"rank","time":1,"request_id":"r","user_id":"u","scene":"mall","slots":3,"candidates":[],"served":[{served}]}}"#
        )
    };
    let good = rank(
        r#"{"item_id":"g1","kind":"goods","position":2,"propensity":0.5,"propensity_kind":"marginal"}"#,
    );
    let text = [
        good.clone(),
        rank(r#"{"item_id":"g1","kind":"goods","propensity":1.5}"#),
        rank(r#"{"item_id":"g1","kind":"goods"},{"item_id":"g2","kind":"goods","propensity":0}"#),
        good,
    ]
    .join("\n");
    let (records, error, skipped) = read_all(&text, OnError::Skip);
    assert!(error.is_none());
    assert_eq!(records.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 4]);
    assert_eq!(skipped, 2);
    let (_, error, _) = read_all(&text, OnError::Fail);
    assert_eq!(
        error.unwrap().to_string(),
        "t.jsonl line 2: served[0].propensity: 1.5 is outside (0, 1]"
    );
}

#[test]
fn a_version_1_page_reads_as_slots_from_0_with_cascade_propensities() {
    let text = r#"{"type":"header","format":"fairflow.traffic","version":1}
{"type":"rank","time":1,"request_id":"r","user_id":"u","scene":"mall","slots":3,"candidates":[],"served":[{"item_id":"g1","kind":"goods","propensity":0.5},{"item_id":"g2","kind":"goods","propensity":0.25}]}"#;
    let (records, error, _) = read_all(text, OnError::Fail);
    assert!(error.is_none());
    let Record::Rank(r) = &records[1].1 else {
        panic!("{records:?}")
    };
    assert_eq!(ServedSlot::positions(&r.served).collect::<Vec<_>>(), [0, 1]);
    assert!(r.served.iter().all(|s| s.propensity_kind.is_none()));
}

#[test]
fn unknown_fields_and_types_are_tolerated() {
    let text = r#"{"type":"stream_status","time":5,"stream_id":"x","live":true,"shard":3}
{"type":"coupon_redeemed","time":6,"coupon":"c1"}"#;
    let (records, error, _) = read_all(text, OnError::Fail);
    assert!(error.is_none());
    assert!(matches!(records[0].1, Record::StreamStatus(_)));
    assert_eq!(records[1].1, Record::Unknown);
}

#[test]
fn a_line_parses_to_the_same_record_whatever_the_order_of_its_keys() {
    for record in sample() {
        let mut line = Vec::new();
        record.write_line(&mut line);
        let text = std::str::from_utf8(&line).unwrap().trim();
        assert!(text.starts_with(r#"{"type":""#), "{text}");
        // The tag moved last: the generic path.
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let object = value.as_object().unwrap();
        let mut moved = serde_json::Map::new();
        for (k, v) in object.iter().filter(|(k, _)| *k != "type") {
            moved.insert(k.clone(), v.clone());
        }
        moved.insert("type".into(), object["type"].clone());
        let moved = serde_json::to_string(&moved).unwrap();
        assert!(!moved.starts_with(r#"{"type""#));
        let generic: Record = serde_json::from_str(text).unwrap();
        assert_eq!(Record::from_json(text).unwrap(), record);
        assert_eq!(Record::from_json(&moved).unwrap(), record);
        assert_eq!(generic, record);
    }
    // A field the record lacks is refused on both paths.
    for text in [
        r#"{"type":"purchase","time":1}"#,
        r#"{"time":1,"type":"purchase"}"#,
    ] {
        let error = Record::from_json(text).unwrap_err().to_string();
        assert!(error.contains("missing field"), "{error}");
    }
}

#[test]
fn newer_versions_and_other_formats_are_refused_even_when_skipping() {
    let newer = r#"{"type":"header","format":"fairflow.traffic","version":99}"#;
    let (_, error, _) = read_all(newer, OnError::Skip);
    assert!(error.unwrap().to_string().contains("version 99 is newer"));
    let other = r#"{"type":"header","format":"other","version":1}"#;
    assert!(read_all(other, OnError::Skip).1.is_some());
}

#[test]
fn the_parallel_reader_reads_what_the_line_reader_reads_across_blocks() {
    let mut text = Vec::new();
    for _ in 0..30 {
        for r in sample() {
            r.write_line(&mut text);
        }
        text.extend_from_slice(b"\n{\"type\": \"rank\", broken\n");
    }
    let serial = |on_error| -> Result<(Vec<Record>, usize), LogError> {
        let mut reader = TrafficReader::new(&text[..], "t", on_error);
        let records = (&mut reader)
            .map(|r| r.map(|(_, r)| r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, reader.skipped_count()))
    };
    for block in [64, 200, 1 << 20] {
        let parallel = |on_error| -> Result<(Vec<Record>, usize), LogError> {
            let mut records = Vec::new();
            let skipped =
                reader::read_blocks(&text[..], "t", on_error, block, &[], |b| records.extend(b))?;
            Ok((records, skipped))
        };
        assert_eq!(
            parallel(OnError::Skip),
            serial(OnError::Skip),
            "block {block}"
        );
        assert_eq!(
            parallel(OnError::Fail),
            serial(OnError::Fail),
            "block {block}"
        );
    }
    assert_eq!(serial(OnError::Skip).unwrap().1, 30);
    // Skipped types are not delivered; the rest is.
    let mut kept = Vec::new();
    reader::read_blocks(&text[..], "t", OnError::Skip, 200, &["rank"], |b| {
        kept.extend(b)
    })
    .unwrap();
    let (all, _) = serial(OnError::Skip).unwrap();
    let expected: Vec<Record> = all
        .into_iter()
        .filter(|r| !matches!(r, Record::Rank(_)))
        .collect();
    assert_eq!(kept, expected);
}

mod parquet_log {
    //! Rules checked: a Parquet log reads back the records written, in log
    //! order across tables (by `seq`), with its header; unknown pages stay
    //! unknown; newer versions and tables without `seq` are refused; an
    //! existing output is not overwritten; the documented schema is the
    //! written one.
    use super::super::parquet::{self, ParquetLogWriter, Table};
    use super::*;

    /// The sample plus what makes order and optional fields matter: a
    /// request with no known page, and records of different tables at equal
    /// times in an order a sort by time and table would not give.
    fn records() -> Vec<Record> {
        let mut all = sample();
        let Record::Rank(rank) = all[2].clone() else {
            unreachable!()
        };
        all.push(Record::Rank(RankRecord {
            time: Millis(4),
            request_id: "r2".into(),
            served: Vec::new(),
            policy: None,
            arms: None,
            ..rank
        }));
        all.push(Record::StreamStatus(StreamStatus {
            time: Millis(4),
            stream_id: "live-s1".into(),
            live: false,
        }));
        all
    }

    fn write(dir: &std::path::Path, records: &[Record]) -> parquet::TableCounts {
        let mut w = ParquetLogWriter::create(dir).unwrap();
        for r in records {
            w.write(r.clone()).unwrap();
        }
        w.finish().unwrap().0
    }

    #[test]
    fn records_round_trip_in_log_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let counts = write(&dir, &records());
        assert_eq!((counts.rank, counts.stream_status, counts.click), (2, 2, 1));
        assert!(parquet::is_parquet_log(&dir));
        assert!(!tmp.path().join("log.partial").exists());
        let back = parquet::read_log(&dir, &Table::ALL, OnError::Fail)
            .unwrap()
            .0;
        assert_eq!(back, records()[1..]);
        let Some(Record::Header(header)) = records().first().cloned() else {
            unreachable!()
        };
        assert_eq!(parquet::read_header(&dir).unwrap(), Some(header));
        // Only the tables asked for are read.
        let ranks = parquet::read_log(&dir, &[Table::Rank], OnError::Fail)
            .unwrap()
            .0;
        assert_eq!(ranks.len(), 2);
        assert!(ranks.iter().all(|r| matches!(r, Record::Rank(_))));
    }

    #[test]
    fn a_refused_rank_row_is_named_by_table_and_row_or_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let mut all = records();
        let Record::Rank(mut bad) = all[2].clone() else {
            unreachable!()
        };
        bad.served[0].propensity = Some(-0.5);
        all.push(Record::Rank(bad));
        write(&dir, &all);
        let err = parquet::read_log(&dir, &[Table::Rank], OnError::Fail).unwrap_err();
        let expected = format!(
            "{} row 3: served[0].propensity: -0.5 is outside (0, 1]",
            dir.join("rank.parquet").display()
        );
        assert_eq!(err.to_string(), expected);
        let (ranks, skipped) = parquet::read_log(&dir, &[Table::Rank], OnError::Skip).unwrap();
        assert_eq!((ranks.len(), skipped), (2, 1));
    }

    /// A rank row as version 1 wrote it: served slots without `position`
    /// and `propensity_kind`.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct RankV1 {
        time: Millis,
        request_id: String,
        user_id: String,
        scene: Scene,
        slots: u32,
        candidates: Vec<Candidate>,
        served: Vec<ServedV1>,
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct ServedV1 {
        item_id: String,
        kind: ItemKind,
        propensity: Option<f64>,
    }

    #[test]
    fn a_version_1_parquet_log_still_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v1");
        std::fs::create_dir(&dir).unwrap();
        let mut w =
            parquet::RowWriter::<RankV1>::create(&dir.join("rank.parquet"), true, 16).unwrap();
        let served = |item: &str, p| ServedV1 {
            item_id: item.into(),
            kind: ItemKind::Goods,
            propensity: Some(p),
        };
        w.push(
            1,
            RankV1 {
                time: Millis(1),
                request_id: "r".into(),
                user_id: "u".into(),
                scene: Scene::Mall,
                slots: 3,
                candidates: vec![Candidate::new("g1", ItemKind::Goods)],
                served: vec![served("g1", 0.5), served("g2", 0.25)],
            },
        )
        .unwrap();
        w.finish(Vec::new()).unwrap();
        let (ranks, _) = parquet::read_log(&dir, &[Table::Rank], OnError::Fail).unwrap();
        let [Record::Rank(r)] = &ranks[..] else {
            panic!("{ranks:?}")
        };
        assert_eq!(r.served.len(), 2);
        assert_eq!(ServedSlot::positions(&r.served).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(r.served[1].propensity, Some(0.25));
        assert_eq!(r.served[1].propensity_kind, None);
    }

    #[test]
    fn an_existing_output_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ParquetLogWriter::create(tmp.path()).err().unwrap();
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    #[test]
    fn newer_versions_and_tables_without_seq_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let newer = tmp.path().join("newer");
        let mut header = Header::new("test");
        header.version = VERSION + 1;
        let mut all = records();
        all[0] = Record::Header(header);
        write(&newer, &all);
        let err = parquet::read_log(&newer, &[Table::Rank], OnError::Fail).unwrap_err();
        assert!(err.to_string().contains("newer than this build"), "{err}");

        let bare = tmp.path().join("bare");
        std::fs::create_dir(&bare).unwrap();
        let mut w = parquet::RowWriter::<RankRecord>::create(&bare.join("rank.parquet"), false, 16)
            .unwrap();
        let Record::Rank(r) = records()[2].clone() else {
            unreachable!()
        };
        w.push(0, r).unwrap();
        w.finish(Vec::new()).unwrap();
        let err = parquet::read_log(&bare, &[Table::Rank], OnError::Fail).unwrap_err();
        assert!(err.to_string().contains("no `seq` column"), "{err}");
    }

    #[test]
    fn convert_goes_both_ways_and_a_failed_one_leaves_nothing() {
        use super::super::{Encoding, convert};
        let tmp = tempfile::tempdir().unwrap();
        let jsonl = tmp.path().join("in.jsonl");
        let mut text = Vec::new();
        for r in records() {
            r.write_line(&mut text);
        }
        // A second file of the same log, with its own header and a record
        // type from a newer build.
        let more = tmp.path().join("more.jsonl");
        let mut more_text = Vec::new();
        records()[0].write_line(&mut more_text);
        more_text.extend_from_slice(b"{\"type\":\"refund\",\"time\":9}\n");
        records()[3].write_line(&mut more_text);
        std::fs::write(&jsonl, &text).unwrap();
        std::fs::write(&more, &more_text).unwrap();

        let inputs = [jsonl.clone(), more];
        let pq = tmp.path().join("log");
        let done = convert(&inputs, &pq, Encoding::Parquet, OnError::Fail).unwrap();
        let mut expected = records();
        expected.push(records()[3].clone());
        assert_eq!(done.records, expected.len() as u64);
        assert_eq!(done.unknown, 1);
        let back = tmp.path().join("back.jsonl");
        convert(&[pq], &back, Encoding::Jsonl, OnError::Fail).unwrap();
        let read: Vec<Record> = std::fs::read_to_string(&back)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(read, expected);

        // A malformed line part-way: an error naming it, and neither the
        // output nor a partial one left behind.
        text.extend_from_slice(b"{\"type\":\"click\",\"time\":\n");
        std::fs::write(&jsonl, &text).unwrap();
        for (to, name) in [(Encoding::Parquet, "bad"), (Encoding::Jsonl, "bad.jsonl")] {
            let out = tmp.path().join(name);
            let err = convert(std::slice::from_ref(&jsonl), &out, to, OnError::Fail).unwrap_err();
            let line = format!("in.jsonl line {}: ", records().len() + 1);
            assert!(err.to_string().contains(&line), "{err}");
            let left: Vec<_> = std::fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("bad"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }

    #[test]
    fn the_documented_schema_is_the_written_one() {
        let doc = include_str!("../../docs/traffic-log.md");
        for table in Table::ALL {
            let heading = format!("#### `{}`", table.file());
            let section = doc
                .split(&heading)
                .nth(1)
                .unwrap_or_else(|| panic!("docs/traffic-log.md has no `{heading}`"));
            let section = section.split("\n#").next().unwrap();
            for (name, ty, nullable) in parquet::describe(table) {
                let null = if nullable { "yes" } else { "no" };
                let row = format!("| `{name}` | `{ty}` | {null} |");
                assert!(
                    section.contains(&row),
                    "docs/traffic-log.md, {heading}: no row `{row}`"
                );
            }
        }
    }
}
