//! A `RankRequest`'s bytes read straight into the engine's query.
//!
//! `Rank` is the one call made on every feed request, and its message is
//! mostly candidates. Decoding it into the generated wire type and then
//! moving that into [`RankQuery`] walked every candidate twice and built a
//! vector only to take it apart; here each field is read once, into the
//! place the engine reads it from.
//!
//! The bytes mean exactly what they mean to prost, which the clients encode
//! with, and [`super::convert::rank_query`] stays as the reference:
//! last-one-wins for a repeated scalar, unknown fields skipped (groups
//! included, nested as deep as prost allows), proto3 `optional` present
//! even when empty, enums and `uint32` truncated from their varints as
//! prost truncates them. Bytes that prost refuses are refused here too,
//! with the field and byte offset where reading stopped; a message that
//! decodes but holds a bad value is a [`FieldError`] naming the same field
//! conversion names (the property test beside this checks all of it on
//! arbitrary and on mangled bytes).

use super::convert;
use crate::domain::{FieldError, ItemKind, Millis, Scene, check_time};
use crate::engine::{Candidate, Id, RankQuery};
use std::fmt;

/// A `RankRequest` that decoded: its scene when that was valid (a metric
/// label even for a refused query), and the query or what is wrong in it.
#[derive(Debug)]
pub struct DecodedRank {
    pub scene: Option<Scene>,
    pub query: Result<RankQuery, FieldError>,
}

/// Why bytes are not a `RankRequest` at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The field being read, `message` when it was a key or an unknown field.
    pub field: String,
    /// Where in the message reading stopped.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.field, self.offset, self.reason)
    }
}

impl std::error::Error for Malformed {}

/// How deep unknown groups may nest, counted as prost counts them (its
/// default recursion limit), so that what one refuses the other refuses.
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Decodes a `RankRequest`; `now` is the query's time when the request
/// carries none.
pub fn rank_request(bytes: &[u8], now: Millis) -> Result<DecodedRank, Malformed> {
    let mut wire = Wire {
        bytes,
        pos: 0,
        end: bytes.len(),
    };
    let mut request_id = String::new();
    let mut user_id = String::new();
    let mut scene = 0i32;
    let mut slots = 0u32;
    let mut request_time = None;
    let mut candidates = Vec::new();
    // The first candidate with a bad kind, reported as conversion reports
    // it: before the scene and the time, and only once the whole message
    // is known to decode.
    let mut bad_kind = None;
    while wire.pos < wire.end {
        let at = wire.pos;
        let (tag, wire_type) = wire.key().map_err(|r| malformed("message", at, r))?;
        let field = FIELDS.get(tag as usize).copied().unwrap_or("message");
        let at = wire.pos;
        let read = |r| malformed(field, at, r);
        match tag {
            1 => request_id = wire.string(wire_type).map_err(read)?.to_owned(),
            2 => user_id = wire.string(wire_type).map_err(read)?.to_owned(),
            3 => scene = wire.varint_field(wire_type).map_err(read)? as i32,
            4 => slots = wire.varint_field(wire_type).map_err(read)? as u32,
            5 => {
                // Read in place: a candidate is large, and moving each
                // into the vector after reading it cost a third more.
                let index = candidates.len();
                candidates.push(Candidate::new(Id::default(), ItemKind::Goods));
                let candidate = candidates.last_mut().expect("just pushed");
                let kind = wire.candidate(wire_type, index, candidate)?;
                if let (Err(e), None) = (kind, &bad_kind) {
                    bad_kind = Some(e);
                }
            }
            6 => request_time = Some(wire.varint_field(wire_type).map_err(read)? as i64),
            _ => wire.skip(wire_type, tag, RECURSION_LIMIT).map_err(read)?,
        }
    }
    let scene = convert::scene(scene);
    let label = scene.as_ref().ok().copied();
    let query = bad_kind.map_or(Ok(()), Err).and_then(|()| {
        Ok(RankQuery {
            request_id,
            user_id,
            scene: scene?,
            slots,
            candidates,
            now: match request_time {
                Some(ms) => check_time("request_time_ms", ms)?,
                None => now,
            },
        })
    });
    Ok(DecodedRank {
        scene: label,
        query,
    })
}

/// `RankRequest`'s field names by number, for errors.
const FIELDS: [&str; 7] = [
    "message",
    "request_id",
    "user_id",
    "scene",
    "slots",
    "candidates",
    "request_time_ms",
];

/// `Candidate`'s field names by number, for errors.
const CANDIDATE_FIELDS: [&str; 9] = [
    "",
    "item_id",
    "kind",
    "streamer_id",
    "brand_id",
    "price",
    "pctr",
    "pcvr",
    "user_follows",
];

fn malformed(field: impl Into<String>, offset: usize, reason: &'static str) -> Malformed {
    Malformed {
        field: field.into(),
        offset,
        reason,
    }
}

/// A cursor over one message's bytes: `bytes[pos..end]` is what is left of
/// it (`end` is short of the buffer's end inside an embedded message, so
/// offsets stay those of the whole request).
struct Wire<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Wire<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, &'static str> {
        // Keys, lengths and kinds are one byte nearly always.
        if let Some(&b) = self.bytes.get(self.pos)
            && self.pos < self.end
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for i in 0..10 {
            if self.pos == self.end {
                return Err("the message ends inside a varint");
            }
            let b = self.bytes[self.pos];
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                // The tenth byte may carry only the 64th bit.
                return if i == 9 && b > 1 {
                    Err("a varint overflows 64 bits")
                } else {
                    Ok(value)
                };
            }
        }
        Err("a varint runs past 10 bytes")
    }

    fn key(&mut self) -> Result<(u32, u8), &'static str> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err("a field key over 32 bits");
        }
        let wire_type = (key & 7) as u8;
        if wire_type > FIXED32 {
            return Err("an unknown wire type (6 or 7)");
        }
        let tag = key as u32 >> 3;
        if tag == 0 {
            return Err("field number 0");
        }
        Ok((tag, wire_type))
    }

    fn expect(wire_type: u8, expected: u8) -> Result<(), &'static str> {
        if wire_type == expected {
            return Ok(());
        }
        Err(match expected {
            VARINT => "the wrong wire type for a varint field",
            FIXED64 => "the wrong wire type for a double field",
            _ => "the wrong wire type for a length-delimited field",
        })
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], &'static str> {
        let left = (self.end - self.pos) as u64;
        if len > left {
            return Err("a length past the end of the message");
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn delimited(&mut self, wire_type: u8) -> Result<&'a [u8], &'static str> {
        Self::expect(wire_type, DELIMITED)?;
        let len = self.varint()?;
        self.take(len)
    }

    fn string(&mut self, wire_type: u8) -> Result<&'a str, &'static str> {
        let bytes = self.delimited(wire_type)?;
        std::str::from_utf8(bytes).map_err(|_| "a string that is not UTF-8")
    }

    fn varint_field(&mut self, wire_type: u8) -> Result<u64, &'static str> {
        Self::expect(wire_type, VARINT)?;
        self.varint()
    }

    fn double(&mut self, wire_type: u8) -> Result<f64, &'static str> {
        Self::expect(wire_type, FIXED64)?;
        let bytes = self.take(8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// Steps over a field this reader does not know, as prost does: groups
    /// up to their matching end, each level spending one of `depth`.
    fn skip(&mut self, wire_type: u8, tag: u32, depth: u32) -> Result<(), &'static str> {
        if depth == 0 {
            return Err("unknown groups nested too deep");
        }
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            FIXED32 => self.take(4).map(drop),
            DELIMITED => {
                let len = self.varint()?;
                self.take(len).map(drop)
            }
            START_GROUP => loop {
                let (inner, inner_type) = self.key()?;
                if inner_type == END_GROUP {
                    if inner != tag {
                        return Err("a group ends with another group's tag");
                    }
                    return Ok(());
                }
                self.skip(inner_type, inner, depth - 1)?;
            },
            _ => Err("a group end with no group open"),
        }
    }

    /// Reads candidate number `index` into `candidate`, and its kind as
    /// conversion reads it.
    fn candidate(
        &mut self,
        wire_type: u8,
        index: usize,
        candidate: &mut Candidate,
    ) -> Result<Result<(), FieldError>, Malformed> {
        let at = self.pos;
        let field = || format!("candidates[{index}]");
        let body = self
            .delimited(wire_type)
            .map_err(|r| malformed(field(), at, r))?;
        let mut inner = Wire {
            bytes: self.bytes,
            pos: self.pos - body.len(),
            end: self.pos,
        };
        let mut kind = 0i32;
        while inner.pos < inner.end {
            let at = inner.pos;
            let (tag, wire_type) = inner.key().map_err(|r| malformed(field(), at, r))?;
            let at = inner.pos;
            let read = |r| {
                let name = CANDIDATE_FIELDS.get(tag as usize).copied().unwrap_or("");
                let sep = if name.is_empty() { "" } else { "." };
                malformed(format!("{}{sep}{name}", field()), at, r)
            };
            match tag {
                1 => candidate.item_id = Id::from(inner.string(wire_type).map_err(read)?),
                2 => kind = inner.varint_field(wire_type).map_err(read)? as i32,
                3 => candidate.streamer_id = Some(Id::from(inner.string(wire_type).map_err(read)?)),
                4 => candidate.brand_id = Some(Id::from(inner.string(wire_type).map_err(read)?)),
                5 => candidate.price = Some(inner.double(wire_type).map_err(read)?),
                6 => candidate.pctr = Some(inner.double(wire_type).map_err(read)?),
                7 => candidate.pcvr = Some(inner.double(wire_type).map_err(read)?),
                8 => {
                    candidate.user_follows = Some(inner.varint_field(wire_type).map_err(read)? != 0)
                }
                // An embedded message starts one level down.
                _ => inner
                    .skip(wire_type, tag, RECURSION_LIMIT - 1)
                    .map_err(read)?,
            }
        }
        Ok(
            convert::item_kind(|| format!("candidates[{index}].kind"), kind).map(|k| {
                candidate.kind = k;
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::rank_decoding;
    use crate::proto::v1 as pb;
    use proptest::prelude::*;
    use prost::Message;

    fn key(tag: u32, wire_type: u8, out: &mut Vec<u8>) {
        prost::encoding::encode_varint(u64::from(tag) << 3 | u64::from(wire_type), out);
    }

    /// A field this decoder does not know: any wire type, groups nested.
    fn unknown() -> impl Strategy<Value = Vec<u8>> {
        let leaf = (
            9u32..40,
            0u8..6,
            proptest::collection::vec(any::<u8>(), 0..12),
        )
            .prop_map(|(tag, wire_type, payload)| {
                let mut out = Vec::new();
                match wire_type {
                    VARINT => {
                        key(tag, VARINT, &mut out);
                        prost::encoding::encode_varint(payload.len() as u64 * 977, &mut out);
                    }
                    FIXED64 => {
                        key(tag, FIXED64, &mut out);
                        out.extend([7; 8]);
                    }
                    FIXED32 | END_GROUP => {
                        key(tag, FIXED32, &mut out);
                        out.extend([7; 4]);
                    }
                    _ => {
                        key(tag, DELIMITED, &mut out);
                        prost::encoding::encode_varint(payload.len() as u64, &mut out);
                        out.extend(payload);
                    }
                }
                out
            });
        leaf.prop_recursive(3, 16, 4, |inner| {
            (9u32..40, proptest::collection::vec(inner, 0..4)).prop_map(|(tag, fields)| {
                let mut out = Vec::new();
                key(tag, START_GROUP, &mut out);
                out.extend(fields.concat());
                key(tag, END_GROUP, &mut out);
                out
            })
        })
    }

    fn candidate() -> impl Strategy<Value = pb::Candidate> {
        (
            (0u8..4, -1i32..4, proptest::option::of("[a-z0-9]{0,3}")),
            proptest::option::of("s[0-9]{0,2}"),
            proptest::option::of(any::<f64>()),
            proptest::option::of(0.0f64..1.0),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|((id, kind, brand), streamer, price, pctr, follows)| {
                pb::Candidate {
                    item_id: ["g000001", "ls0001", "", "x"][id as usize].into(),
                    kind,
                    streamer_id: streamer,
                    brand_id: brand,
                    price,
                    pctr,
                    pcvr: pctr.map(|p| p / 2.0),
                    user_follows: follows,
                }
            })
    }

    fn request() -> impl Strategy<Value = pb::RankRequest> {
        (
            ("[a-z]{0,4}", "u[0-9]{0,3}", -1i32..7, any::<u32>()),
            proptest::collection::vec(candidate(), 0..5),
            proptest::option::of(prop_oneof![
                Just(1_795_132_800_000i64),
                any::<i64>(),
                Just(-1),
            ]),
        )
            .prop_map(|((request_id, user_id, scene, slots), candidates, time)| {
                pb::RankRequest {
                    request_id,
                    user_id,
                    scene,
                    slots,
                    candidates,
                    request_time_ms: time,
                }
            })
    }

    /// A candidate field whose body mixes encodings of candidates (merged,
    /// as protobuf merges them) with unknown fields.
    fn raw_candidate() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![candidate().prop_map(|c| c.encode_to_vec()), unknown()],
            0..4,
        )
        .prop_map(|parts| {
            let body = parts.concat();
            let mut out = Vec::new();
            key(5, DELIMITED, &mut out);
            prost::encoding::encode_varint(body.len() as u64, &mut out);
            out.extend(body);
            out
        })
    }

    /// Encodings concatenated (a protobuf message is the merge of its
    /// parts), with unknown fields between them.
    fn message() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                3 => request().prop_map(|r| r.encode_to_vec()),
                2 => unknown(),
                2 => raw_candidate(),
            ],
            0..5,
        )
        .prop_map(|parts| parts.concat())
    }

    /// A few bytes changed, cut short, or spliced.
    fn mangled() -> impl Strategy<Value = Vec<u8>> {
        (
            message(),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            proptest::option::of(any::<prop::sample::Index>()),
        )
            .prop_map(|(mut bytes, edits, cut)| {
                if !bytes.is_empty() {
                    for (at, b) in edits {
                        let i = at.index(bytes.len());
                        bytes[i] = b;
                    }
                    if let Some(cut) = cut {
                        bytes.truncate(cut.index(bytes.len()));
                    }
                }
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn reads_every_well_formed_message_as_prost_and_conversion_do(bytes in message()) {
            prop_assert!(rank_decoding(&bytes).is_some(), "refused a message prost reads");
        }

        #[test]
        fn refuses_exactly_what_prost_refuses(bytes in mangled()) {
            rank_decoding(&bytes);
        }

        #[test]
        fn agrees_with_prost_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            rank_decoding(&bytes);
        }
    }

    fn refusal(bytes: &[u8]) -> String {
        rank_request(bytes, Millis(0)).unwrap_err().to_string()
    }

    #[test]
    fn a_refusal_names_the_field_and_the_byte_where_reading_stopped() {
        // Field 5 (candidates), length-delimited, claiming 100 bytes of 3.
        assert_eq!(
            refusal(&[0x2a, 100, 1, 2, 3]),
            "candidates[0] at byte 1: a length past the end of the message"
        );
        let mut bytes = pb::RankRequest {
            candidates: vec![pb::Candidate::default(); 2],
            ..Default::default()
        }
        .encode_to_vec();
        // The second candidate's item_id: 2 bytes, one not UTF-8.
        bytes.extend([0x2a, 4, 0x0a, 2, b'g', 0xff]);
        assert_eq!(
            refusal(&bytes),
            "candidates[2].item_id at byte 7: a string that is not UTF-8"
        );
        assert_eq!(
            refusal(&[0x18, 0x80]),
            "scene at byte 1: the message ends inside a varint"
        );
        assert_eq!(
            refusal(&[0x1d, 0, 0, 0, 0]),
            "scene at byte 1: the wrong wire type for a varint field"
        );
        assert_eq!(refusal(&[0x00]), "message at byte 0: field number 0");
    }

    #[test]
    fn a_bad_value_is_a_field_error_once_the_message_decodes() {
        let request = pb::RankRequest {
            scene: 99,
            candidates: vec![
                pb::Candidate {
                    item_id: "a".into(),
                    kind: 1,
                    ..Default::default()
                },
                pb::Candidate::default(),
            ],
            ..Default::default()
        };
        let decoded = rank_request(&request.encode_to_vec(), Millis(0)).unwrap();
        assert_eq!(decoded.scene, None);
        let refused = decoded.query.unwrap_err();
        assert_eq!(
            (refused.field.as_str(), refused.reason.as_str()),
            ("candidates[1].kind", "must be set")
        );
    }

    /// Unknown groups nested as deep as prost allows are skipped, one
    /// level more is refused, as prost refuses it.
    #[test]
    fn unknown_groups_nest_exactly_as_deep_as_prost_allows() {
        for (depth, readable) in [(100, true), (101, false)] {
            let mut bytes = Vec::new();
            for _ in 0..depth {
                key(9, START_GROUP, &mut bytes);
            }
            for _ in 0..depth {
                key(9, END_GROUP, &mut bytes);
            }
            assert_eq!(rank_decoding(&bytes).is_some(), readable, "depth {depth}");
        }
    }

    #[test]
    fn the_tenth_byte_of_a_varint_carries_one_bit() {
        let mut max = vec![0x18, 1, 0x20];
        max.extend([0xff; 9]);
        max.push(0x01);
        assert_eq!(
            rank_decoding(&max).map(|q| q.unwrap().slots),
            Some(u32::MAX),
            "u64::MAX truncated to uint32"
        );
        *max.last_mut().unwrap() = 0x02;
        assert!(rank_decoding(&max).is_none());
    }
}
