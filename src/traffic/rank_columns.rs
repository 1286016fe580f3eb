//! Rank rows read straight from a Parquet log's Arrow columns.
//!
//! serde_arrow reads a row by walking every field of every candidate through
//! serde's visitor machinery (a field-name match per value), which made
//! reading a Parquet log slower than parsing the same log as JSON. The rank
//! table's layout is fixed by the record types (`parquet::describe`), so a
//! batch whose columns are exactly the ones this version writes is decoded
//! here column by column; any other layout (an older version's log) goes
//! the generic way. `tests::hand_and_generic_decoding_agree` keeps the two
//! the same.

use super::{PropensityKind, RankRecord, ServedSlot};
use crate::domain::{ItemKind, Millis, Scene};
use crate::engine::Candidate;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, ListArray, RecordBatch, StringArray, StructArray,
    UInt32Array,
};
use arrow_schema::FieldRef;
use serde::de::DeserializeOwned;
use serde::de::value::{Error as ValueError, StrDeserializer};

/// Whether `batch` has exactly the columns `seq` then `fields` (names,
/// types, nullability), in order.
pub(super) fn is_current(batch: &RecordBatch, fields: &[FieldRef]) -> bool {
    let schema = batch.schema();
    let columns = schema.fields();
    columns.len() == fields.len() + 1
        && columns[0].name() == "seq"
        && columns[1..].iter().zip(fields).all(|(a, b)| {
            a.name() == b.name()
                && a.data_type() == b.data_type()
                && a.is_nullable() == b.is_nullable()
        })
}

/// The rows of a batch [`is_current`] accepted, each with its `seq`. An
/// enum's dictionary value this version does not know is an error naming
/// the column.
pub(super) fn decode(batch: &RecordBatch) -> Result<Vec<(u64, RankRecord)>, String> {
    let column = |name: &str| batch.column_by_name(name).expect("checked by is_current");
    let seq = column("seq").as_primitive::<UInt64Type>();
    let time = column("time").as_primitive::<TimestampMillisecondType>();
    let request_id = column("request_id").as_string::<i32>();
    let user_id = column("user_id").as_string::<i32>();
    let scene = Dictionary::<Scene>::of(column("scene"), "scene");
    let slots = column("slots").as_primitive::<UInt32Type>();
    let candidates = Candidates::of(column("candidates"));
    let served = Served::of(column("served"));
    let policy = column("policy").as_string::<i32>();
    let arms = column("arms").as_string::<i32>();
    (0..batch.num_rows())
        .map(|row| {
            Ok((
                seq.value(row),
                RankRecord {
                    time: Millis(time.value(row)),
                    request_id: request_id.value(row).to_string(),
                    user_id: user_id.value(row).to_string(),
                    scene: scene.required(row)?,
                    slots: slots.value(row),
                    candidates: candidates.row(row)?,
                    served: served.row(row)?,
                    policy: optional(policy, row),
                    arms: optional(arms, row),
                },
            ))
        })
        .collect()
}

fn optional<T: for<'a> From<&'a str>>(strings: &StringArray, i: usize) -> Option<T> {
    strings.is_valid(i).then(|| T::from(strings.value(i)))
}

fn optional_f64(values: &Float64Array, i: usize) -> Option<f64> {
    values.is_valid(i).then(|| values.value(i))
}

/// The value range of list `row` of a (possibly null) list column.
fn range(offsets: &[i32], row: usize) -> std::ops::Range<usize> {
    offsets[row] as usize..offsets[row + 1] as usize
}

/// A dictionary-encoded enum column: its values decoded once per batch by
/// their serde names, then looked up by key per row. A value this version
/// does not know is an error only where a row uses it.
struct Dictionary<'a, T> {
    name: &'static str,
    keys: &'a UInt32Array,
    values: Vec<Option<T>>,
    names: &'a StringArray,
}

impl<'a, T: DeserializeOwned + Copy> Dictionary<'a, T> {
    fn of(column: &'a ArrayRef, name: &'static str) -> Dictionary<'a, T> {
        let dictionary = column.as_dictionary::<UInt32Type>();
        let names = dictionary.values().as_string::<i32>();
        let values = names
            .iter()
            .map(|v| T::deserialize(StrDeserializer::<ValueError>::new(v?)).ok())
            .collect();
        Dictionary {
            name,
            keys: dictionary.keys(),
            values,
            names,
        }
    }

    /// Row `i`'s value; `None` for a null.
    fn get(&self, i: usize) -> Result<Option<T>, String> {
        if self.keys.is_null(i) {
            return Ok(None);
        }
        let key = self.keys.value(i) as usize;
        match self.values.get(key) {
            Some(Some(v)) => Ok(Some(*v)),
            _ => Err(format!(
                "column `{}`: unknown value `{}`",
                self.name,
                if key < self.names.len() {
                    self.names.value(key)
                } else {
                    ""
                }
            )),
        }
    }

    /// Row `i`'s value in a column that cannot be null.
    fn required(&self, i: usize) -> Result<T, String> {
        self.get(i)?
            .ok_or_else(|| format!("column `{}`: null", self.name))
    }
}

/// The `candidates` column: a list of structs per row.
struct Candidates<'a> {
    offsets: &'a [i32],
    item_id: &'a StringArray,
    kind: Dictionary<'a, ItemKind>,
    streamer_id: &'a StringArray,
    brand_id: &'a StringArray,
    price: &'a Float64Array,
    pctr: &'a Float64Array,
    pcvr: &'a Float64Array,
    user_follows: &'a BooleanArray,
}

/// `read` of every row of `rows`, in a list made to size at once:
/// collecting results into a list starts it empty (the error could come
/// first), and growing it moved a row's candidates several times over.
fn sized<T>(
    rows: std::ops::Range<usize>,
    read: impl Fn(usize) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(rows.len());
    for i in rows {
        out.push(read(i)?);
    }
    Ok(out)
}

fn field<'a>(values: &'a StructArray, name: &str) -> &'a ArrayRef {
    values.column_by_name(name).expect("checked by is_current")
}

impl<'a> Candidates<'a> {
    fn of(column: &'a ArrayRef) -> Candidates<'a> {
        let list = column.as_list::<i32>();
        let values = list.values().as_struct();
        Candidates {
            offsets: list.value_offsets(),
            item_id: field(values, "item_id").as_string::<i32>(),
            kind: Dictionary::of(field(values, "kind"), "candidates.kind"),
            streamer_id: field(values, "streamer_id").as_string::<i32>(),
            brand_id: field(values, "brand_id").as_string::<i32>(),
            price: field(values, "price").as_primitive::<Float64Type>(),
            pctr: field(values, "pctr").as_primitive::<Float64Type>(),
            pcvr: field(values, "pcvr").as_primitive::<Float64Type>(),
            user_follows: field(values, "user_follows").as_boolean(),
        }
    }

    fn row(&self, row: usize) -> Result<Vec<Candidate>, String> {
        sized(range(self.offsets, row), |i| {
            Ok(Candidate {
                item_id: self.item_id.value(i).into(),
                kind: self.kind.required(i)?,
                streamer_id: optional(self.streamer_id, i),
                brand_id: optional(self.brand_id, i),
                price: optional_f64(self.price, i),
                pctr: optional_f64(self.pctr, i),
                pcvr: optional_f64(self.pcvr, i),
                user_follows: self
                    .user_follows
                    .is_valid(i)
                    .then(|| self.user_follows.value(i)),
            })
        })
    }
}

/// The `served` column: a list of structs per row, null for none.
struct Served<'a> {
    list: &'a ListArray,
    item_id: &'a StringArray,
    kind: Dictionary<'a, ItemKind>,
    position: &'a UInt32Array,
    propensity: &'a Float64Array,
    propensity_kind: Dictionary<'a, PropensityKind>,
}

impl<'a> Served<'a> {
    fn of(column: &'a ArrayRef) -> Served<'a> {
        let list = column.as_list::<i32>();
        let values = list.values().as_struct();
        Served {
            list,
            item_id: field(values, "item_id").as_string::<i32>(),
            kind: Dictionary::of(field(values, "kind"), "served.kind"),
            position: field(values, "position").as_primitive::<UInt32Type>(),
            propensity: field(values, "propensity").as_primitive::<Float64Type>(),
            propensity_kind: Dictionary::of(
                field(values, "propensity_kind"),
                "served.propensity_kind",
            ),
        }
    }

    fn row(&self, row: usize) -> Result<Vec<ServedSlot>, String> {
        if self.list.is_null(row) {
            return Ok(Vec::new());
        }
        sized(range(self.list.value_offsets(), row), |i| {
            Ok(ServedSlot {
                item_id: self.item_id.value(i).to_string(),
                kind: self.kind.required(i)?,
                position: self.position.is_valid(i).then(|| self.position.value(i)),
                propensity: optional_f64(self.propensity, i),
                propensity_kind: self.propensity_kind.get(i)?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    //! Rules checked: the batches this version writes are decoded by hand,
    //! to exactly what the generic (serde_arrow) reading gives, whichever
    //! optional fields are present.
    use super::*;
    use crate::traffic::parquet::{ParquetLogWriter, Table};
    use crate::traffic::{Header, Record};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rand::{Rng, SeedableRng};

    fn maybe<R: Rng, T>(rng: &mut R, value: impl FnOnce(&mut R) -> T) -> Option<T> {
        rng.random_bool(0.5).then(|| value(rng))
    }

    fn record(rng: &mut impl Rng, i: usize) -> RankRecord {
        let kind = |rng: &mut dyn rand::RngCore| {
            if rng.random_bool(0.5) {
                ItemKind::Goods
            } else {
                ItemKind::LiveStream
            }
        };
        let candidates = (0..rng.random_range(1..30))
            .map(|c| Candidate {
                item_id: format!("item-{i}-{c}").into(),
                kind: kind(rng),
                streamer_id: maybe(rng, |_| format!("s{c}").into()),
                brand_id: maybe(rng, |_| format!("b{}", c % 3).into()),
                price: maybe(rng, |r| r.random_range(0.1..999.0)),
                pctr: maybe(rng, |r| r.random::<f64>()),
                pcvr: maybe(rng, |r| r.random::<f64>()),
                user_follows: maybe(rng, |r| r.random_bool(0.5)),
            })
            .collect::<Vec<_>>();
        let served = if rng.random_bool(0.3) {
            Vec::new()
        } else {
            (0..rng.random_range(1..8u32))
                .map(|p| ServedSlot {
                    item_id: format!("item-{i}-{p}"),
                    kind: kind(rng),
                    position: maybe(rng, |_| p),
                    propensity: maybe(rng, |r| r.random_range(0.01..1.0)),
                    propensity_kind: if rng.random_bool(0.5) {
                        None
                    } else if rng.random_bool(0.5) {
                        Some(PropensityKind::Cascade)
                    } else {
                        Some(PropensityKind::Marginal)
                    },
                })
                .collect()
        };
        RankRecord {
            time: Millis(1_795_000_000_000 + i as i64),
            request_id: format!("r{i}"),
            user_id: format!("u{}", i % 17),
            scene: Scene::ALL[i % Scene::ALL.len()],
            slots: rng.random_range(1..40),
            candidates,
            served,
            policy: maybe(rng, |_| format!("p{i}")),
            arms: maybe(rng, |_| "targets:a".to_string()),
        }
    }

    #[test]
    fn hand_and_generic_decoding_agree() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let mut writer = ParquetLogWriter::create(&dir).unwrap();
        writer.write(Record::Header(Header::new("test"))).unwrap();
        let written: Vec<RankRecord> = (0..3000).map(|i| record(&mut rng, i)).collect();
        for r in &written {
            writer.write(Record::Rank(r.clone())).unwrap();
        }
        writer.finish().unwrap();

        let file = std::fs::File::open(dir.join(Table::Rank.file())).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let fields = crate::traffic::parquet::rank_fields();
        let mut read = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            assert!(is_current(&batch, &fields), "{:?}", batch.schema());
            let generic: Vec<RankRecord> = serde_arrow::from_record_batch(&batch).unwrap();
            let by_hand = decode(&batch).unwrap();
            assert_eq!(
                by_hand.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
                generic
            );
            read.extend(by_hand.into_iter().map(|(_, r)| r));
        }
        assert_eq!(read, written);
        // A layout that is not this version's goes the generic way.
        assert!(!is_current(
            &RecordBatch::new_empty(std::sync::Arc::new(arrow_schema::Schema::empty())),
            &fields
        ));
    }
}
