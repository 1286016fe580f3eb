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
                propensity: Some(0.75),
            }],
            policy: Some("sim".into()),
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
fn unknown_fields_and_types_are_tolerated() {
    let text = r#"{"type":"stream_status","time":5,"stream_id":"x","live":true,"shard":3}
{"type":"coupon_redeemed","time":6,"coupon":"c1"}"#;
    let (records, error, _) = read_all(text, OnError::Fail);
    assert!(error.is_none());
    assert!(matches!(records[0].1, Record::StreamStatus(_)));
    assert_eq!(records[1].1, Record::Unknown);
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
