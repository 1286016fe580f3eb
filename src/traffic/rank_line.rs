//! A rank record's line read with its candidates scanned by hand.
//!
//! The candidates are nearly all of a rank line (200 of a few dozen bytes
//! each), and serde reads each of their fields through a generic visitor.
//! This crate writes a candidate in one layout: `item_id` and `kind`
//! first, then whichever optional fields are set, strings without escapes
//! for ordinary ids, no whitespace. [`rank`] scans that layout
//! directly and leaves the rest of the line to serde; anything else (a
//! space, an escape, an unknown or repeated field, a `null`, another
//! order) makes it give up, and the caller reads the whole line the
//! generic way, which decides what it means or what is wrong with it.

use super::RankRecord;
use crate::domain::ItemKind;
use crate::engine::Candidate;
use serde::Deserialize;
use serde::de::value::{Error as ValueError, StrDeserializer};

/// Where a rank line's candidates start, right after their key: a key can
/// only be matched here outside a string, since a string's quotes are
/// escaped.
const KEY: &str = r#","candidates":"#;

/// The rank record on `line`, when its candidates are in this crate's
/// layout and the rest of the line is a rank record; `None` otherwise.
pub(super) fn rank(line: &str) -> Option<RankRecord> {
    let at = line.find(KEY)? + KEY.len();
    let (candidates, used) = candidates(&line[at..])?;
    // The rest of the line, with an empty list where the candidates were.
    let mut rest = String::with_capacity(line.len() - used + 2);
    rest.push_str(&line[..at]);
    rest.push_str("[]");
    rest.push_str(&line[at + used..]);
    let mut record: RankRecord = serde_json::from_str(&rest).ok()?;
    // Non-empty: the key matched was not the record's own (it was inside
    // another field's object), so what was scanned is not its candidates.
    if !record.candidates.is_empty() {
        return None;
    }
    record.candidates = candidates;
    Some(record)
}

/// The candidates of a JSON array at the start of `text` in this crate's
/// layout, and the bytes the array took.
fn candidates(text: &str) -> Option<(Vec<Candidate>, usize)> {
    let mut s = Scan { text, at: 0 };
    s.expect("[")?;
    if s.eat("]") {
        return Some((Vec::new(), s.at));
    }
    // Room for as many as the rest of the line could hold, so the list is
    // never moved as it grows (growing it from empty moved 200 candidates'
    // worth of bytes and more), given back once they are counted.
    let mut out = Vec::with_capacity(text.len() / MIN_CANDIDATE_BYTES + 1);
    loop {
        s.expect(r#"{"item_id":"#)?;
        let id = s.string()?;
        s.expect(r#","kind":"#)?;
        // By the kind's serde name, as the generic way reads it.
        let kind = ItemKind::deserialize(StrDeserializer::<ValueError>::new(s.string()?)).ok()?;
        let mut c = Candidate::new(id, kind);
        while !s.eat("}") {
            s.expect(",")?;
            let key = s.string()?;
            s.expect(":")?;
            // A field seen twice is left to serde, which refuses it.
            match key {
                "streamer_id" if c.streamer_id.is_none() => {
                    c.streamer_id = Some(s.string()?.into())
                }
                "brand_id" if c.brand_id.is_none() => c.brand_id = Some(s.string()?.into()),
                "price" if c.price.is_none() => c.price = Some(s.number()?),
                "pctr" if c.pctr.is_none() => c.pctr = Some(s.number()?),
                "pcvr" if c.pcvr.is_none() => c.pcvr = Some(s.number()?),
                "user_follows" if c.user_follows.is_none() => c.user_follows = Some(s.boolean()?),
                _ => return None,
            }
        }
        out.push(c);
        if s.eat("]") {
            out.shrink_to_fit();
            return Some((out, s.at));
        }
        s.expect(",")?;
    }
}

/// The fewest bytes a candidate takes in the layout, its comma included:
/// `{"item_id":"","kind":"goods"},`.
const MIN_CANDIDATE_BYTES: usize = 30;

struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.at..]
    }

    fn eat(&mut self, literal: &str) -> bool {
        let found = self.rest().starts_with(literal.as_bytes());
        if found {
            self.at += literal.len();
        }
        found
    }

    fn expect(&mut self, literal: &str) -> Option<()> {
        self.eat(literal).then_some(())
    }

    /// A string without escapes or control characters (JSON refuses the
    /// latter raw; serde reads the former).
    fn string(&mut self) -> Option<&'a str> {
        self.expect("\"")?;
        let len = self
            .rest()
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.rest()[len] != b'"' {
            return None;
        }
        // Both ends are ASCII quotes, so the slice is whole characters.
        let s = &self.text[self.at..self.at + len];
        self.at += len + 1;
        Some(s)
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.eat("true") {
            Some(true)
        } else if self.eat("false") {
            Some(false)
        } else {
            None
        }
    }

    /// A JSON number, read as serde_json reads one into an `f64`: an
    /// integer whose magnitude fits a `u64` converted from it, anything
    /// else parsed (both correctly rounded, as serde_json with
    /// `float_roundtrip` does).
    fn number(&mut self) -> Option<f64> {
        let bytes = self.rest();
        let digits = |from: usize| {
            bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut end = usize::from(bytes.first() == Some(&b'-'));
        let int = digits(end);
        // No leading zeros, at least one digit.
        if int == 0 || (int > 1 && bytes[end] == b'0') {
            return None;
        }
        end += int;
        let mut integer = true;
        if bytes.get(end) == Some(&b'.') {
            let frac = digits(end + 1);
            if frac == 0 {
                return None;
            }
            end += 1 + frac;
            integer = false;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            end += 1;
            if matches!(bytes.get(end), Some(b'+' | b'-')) {
                end += 1;
            }
            let exp = digits(end);
            if exp == 0 {
                return None;
            }
            end += exp;
            integer = false;
        }
        let token = &self.text[self.at..self.at + end];
        self.at += end;
        // serde_json negates the magnitude, so `-0` is `-0.0`.
        let exact = || match token.strip_prefix('-') {
            Some(magnitude) => magnitude.parse::<u64>().ok().map(|m| -(m as f64)),
            None => token.parse::<u64>().ok().map(|m| m as f64),
        };
        // serde_json refuses what does not fit an `f64` finitely.
        match integer.then(exact).flatten() {
            Some(v) => Some(v),
            None => token.parse().ok().filter(|v: &f64| v.is_finite()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::Record;
    use proptest::prelude::*;

    fn line_of(candidates: Vec<Candidate>) -> String {
        let record = Record::Rank(RankRecord {
            time: crate::domain::Millis(1),
            request_id: "r".into(),
            user_id: "u".into(),
            scene: crate::domain::Scene::Recommend,
            slots: 20,
            candidates,
            served: Vec::new(),
            policy: None,
            arms: None,
        });
        serde_json::to_string(&record).unwrap()
    }

    fn id() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z0-9_-]{0,24}",
            1 => any::<String>(),
            1 => r#"[a-z"\\\x00-\x1f é]{0,8}"#,
        ]
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            (0u64..1000).prop_map(|v| v as f64),
            Just(-0.0),
            Just(1e300),
            Just(5e-324),
            Just(18446744073709551616.0),
        ]
    }

    fn candidate() -> impl Strategy<Value = Candidate> {
        (
            id(),
            any::<bool>(),
            proptest::option::of(id()),
            proptest::option::of(id()),
            proptest::option::of(number()),
            proptest::option::of(number()),
            proptest::option::of(number()),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(id, live, streamer, brand, price, pctr, pcvr, follows)| {
                let kind = if live {
                    ItemKind::LiveStream
                } else {
                    ItemKind::Goods
                };
                Candidate {
                    streamer_id: streamer.map(Into::into),
                    brand_id: brand.map(Into::into),
                    price,
                    pctr,
                    pcvr,
                    user_follows: follows,
                    ..Candidate::new(id, kind)
                }
            })
    }

    /// Bitwise, so that a sign of zero or a last bit counts.
    fn same(a: &[Candidate], b: &[Candidate]) -> bool {
        let bits = |v: Option<f64>| v.map(f64::to_bits);
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x == y
                    && bits(x.price) == bits(y.price)
                    && bits(x.pctr) == bits(y.pctr)
                    && bits(x.pcvr) == bits(y.pcvr)
            })
    }

    proptest! {
        /// Whatever the candidates, a line this crate wrote reads as serde
        /// reads it, to the bit; and the scan reads it itself whenever no
        /// string needs an escape.
        #[test]
        fn reads_what_serde_reads(candidates in proptest::collection::vec(candidate(), 0..20)) {
            let line = line_of(candidates.clone());
            let Ok(Record::Rank(generic)) = serde_json::from_str::<Record>(&line) else {
                panic!("serde reads what it wrote: {line}");
            };
            prop_assert!(same(&generic.candidates, &candidates));
            let plain = !line.contains('\\');
            match rank(&line) {
                Some(scanned) => {
                    prop_assert!(same(&scanned.candidates, &generic.candidates), "{}", line);
                    prop_assert_eq!(scanned, generic);
                }
                None => prop_assert!(!plain, "a plain line was not scanned: {}", line),
            }
        }
    }

    #[test]
    fn numbers_read_as_serde_reads_them() {
        for token in [
            "0",
            "-0",
            "-0.0",
            "12",
            "-12",
            "1.5",
            "1e3",
            "1E+3",
            "2.5e-3",
            "123456789012345678901",
            "-9223372036854775809",
            "18446744073709551615",
            "9007199254740993",
            "0.1",
        ] {
            let mut scan = Scan { text: token, at: 0 };
            let ours = scan.number().unwrap();
            let theirs: f64 = serde_json::from_str(token).unwrap();
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{token}");
            assert_eq!(scan.at, token.len());
        }
        for token in [
            "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "--1", "1e400", "-1e400",
        ] {
            let mut scan = Scan { text: token, at: 0 };
            let taken = scan.number();
            // Either refused, or only a valid prefix taken (and the caller
            // then finds the rest out of place).
            assert!(taken.is_none() || scan.at < token.len(), "{token}");
        }
    }

    /// Lines in another layout are left to serde, which then decides.
    #[test]
    fn other_layouts_are_left_to_serde() {
        let base = r#"{"type":"rank","time":1,"request_id":"r","user_id":"u","scene":"recommend","slots":2,"candidates":"#;
        for candidates in [
            r#"[ {"item_id":"g1","kind":"goods"}]"#,
            r#"[{"kind":"goods","item_id":"g1"}]"#,
            r#"[{"item_id":"g\u0031","kind":"goods"}]"#,
            r#"[{"item_id":"g1","kind":"goods","price":null}]"#,
            r#"[{"item_id":"g1","kind":"goods","price":1,"price":2}]"#,
            r#"[{"item_id":"g1","kind":"goods","extra":1}]"#,
            r#"[{"item_id":"g1","kind":"book"}]"#,
            r#"[{"item_id":"g1","kind":"goods","price":01}]"#,
            r#"[{"item_id":"g1","kind":"goods"}"#,
        ] {
            let line = format!("{base}{candidates}}}");
            assert_eq!(rank(&line), None, "{line}");
        }
        // The key inside another field's object, where the record's own
        // comes later: what was scanned is not its candidates.
        let record = |x: &str| {
            format!(
                r#"{{"type":"rank","time":1,"request_id":"r","user_id":"u","scene":"recommend","slots":2,"x":{x},"candidates":[{{"item_id":"g1","kind":"goods"}}]}}"#
            )
        };
        let decoy = record(r#"{"a":1,"candidates":[{"item_id":"decoy","kind":"goods"}]}"#);
        assert_eq!(rank(&decoy), None);
        let first = record(r#"{"candidates":[{"item_id":"decoy","kind":"goods"}]}"#);
        for line in [decoy, first] {
            let Ok(Record::Rank(read)) = Record::from_json(&line) else {
                panic!("a rank record: {line}");
            };
            assert_eq!(read.candidates, vec![Candidate::new("g1", ItemKind::Goods)]);
        }
    }

    #[test]
    fn the_scanned_layout_is_read() {
        let line = line_of(vec![
            Candidate::new("g1", ItemKind::Goods),
            Candidate {
                streamer_id: Some("s1".into()),
                price: Some(12.5),
                user_follows: Some(true),
                ..Candidate::new("l1", ItemKind::LiveStream)
            },
        ]);
        let scanned = rank(&line).expect("this crate's layout is scanned");
        assert_eq!(scanned.candidates.len(), 2);
        assert_eq!(scanned.candidates[1].price, Some(12.5));
        assert_eq!(scanned.request_id, "r");
    }
}
