//! The traffic-log format (docs/traffic-log.md): one JSON record per line,
//! tagged by `type`. The simulator writes it, the replay reads it, and the
//! server's own traffic log uses it.
//!
//! Compatibility: unknown fields are ignored; an unknown record `type` is
//! read as [`Record::Unknown`] and skipped by consumers; a header with a newer
//! `version` is refused.

mod check;
mod convert;
mod impressions;
pub mod parquet;
mod rank_columns;
mod rank_line;
mod reader;
mod sink;
mod source;

pub use convert::{ConvertError, Converted, Encoding, convert};
pub use impressions::records as csv_records;
pub use impressions::{CsvColumns, CsvImport, ImportError, Imported, import_csv, parse_time};
pub use reader::{LogError, OnError, TrafficReader, read_parallel};
pub use sink::{SinkCounts, SinkEvent, SinkOptions, TrafficSink, files_in};
pub use source::{Source, SourceError, read_source, sources};

pub use crate::domain::Channel;
use crate::domain::{ItemKind, Millis, Scene, Venue};
use crate::engine::Candidate;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// The `format` a header must name.
pub const FORMAT: &str = "fairflow.traffic";
/// The version this build writes and the newest it reads. Version 2 gave
/// served slots their `position` and `propensity_kind`; a version-1 log
/// reads as before (served slots from slot 0 in order, cascade
/// propensities).
pub const VERSION: u32 = 2;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Header(Header),
    Rank(RankRecord),
    Impression(Impression),
    Click(Click),
    Purchase(Purchase),
    StreamStatus(StreamStatus),
    /// A record type this version does not know (written by a newer one).
    #[serde(other)]
    Unknown,
}

impl Record {
    /// The record's time; the header and unknown records have none.
    pub fn time(&self) -> Option<Millis> {
        match self {
            Record::Header(_) | Record::Unknown => None,
            Record::Rank(r) => Some(r.time),
            Record::Impression(r) => Some(r.time),
            Record::Click(r) => Some(r.time),
            Record::Purchase(r) => Some(r.time),
            Record::StreamStatus(r) => Some(r.time),
        }
    }

    /// Parses one line of JSON. serde reads an internally tagged enum by
    /// first buffering every field of the line into a generic tree, then
    /// deserializing the variant from that tree: on a rank record of 200
    /// candidates that is most of the parse. This crate writes the tag
    /// first (`{"type":"rank",`), so such a line is parsed straight into
    /// its record type (which ignores the `type` field), a rank line's
    /// candidates scanned by hand when they are in the layout this crate
    /// writes (`rank_line`); any other line (keys in another order, an
    /// unknown type) goes the generic way, with the same result.
    pub fn from_json(text: &str) -> serde_json::Result<Record> {
        let tag = text
            .strip_prefix(r#"{"type":""#)
            .and_then(|rest| rest.split_once('"'))
            .map(|(tag, _)| tag);
        match tag {
            Some("rank") => match rank_line::rank(text) {
                Some(record) => Ok(Record::Rank(record)),
                None => serde_json::from_str(text).map(Record::Rank),
            },
            Some("impression") => serde_json::from_str(text).map(Record::Impression),
            Some("click") => serde_json::from_str(text).map(Record::Click),
            Some("purchase") => serde_json::from_str(text).map(Record::Purchase),
            Some("stream_status") => serde_json::from_str(text).map(Record::StreamStatus),
            _ => serde_json::from_str(text),
        }
    }

    /// Appends the record as one line (JSON plus `\n`).
    pub fn write_line(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(&mut *out, self).expect("records serialize infallibly");
        out.push(b'\n');
    }
}

/// First line of a log: what it is and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// What wrote the log, e.g. `fairflow simulate` or `fairflow serve`.
    #[serde(default)]
    pub source: String,
    /// The simulator's seed, for simulated logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The catalog directory the ids refer to, relative to the log's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// For simulated logs: what the world was built from (`sim::Simulation`,
    /// which the log carries without knowing), so a replay can have the same
    /// simulated users answer other rankings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulation: Option<Box<serde_json::Value>>,
}

impl Header {
    pub fn new(source: &str) -> Header {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            source: source.into(),
            seed: None,
            catalog: None,
            simulation: None,
        }
    }
}

/// A feed request as the ranker received it and, where known, what was served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankRecord {
    pub time: Millis,
    pub request_id: String,
    pub user_id: String,
    pub scene: Scene,
    pub slots: u32,
    pub candidates: Vec<Candidate>,
    /// The served page in slot order; empty when not known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served: Vec<ServedSlot>,
    /// Names the policy that produced `served` (e.g. a config version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The experiment arms the request was ranked under, as
    /// `experiment:arm` joined by `,`; absent when in none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arms: Option<String>,
}

impl RankRecord {
    /// A request as ranked, with the page served (the server's log).
    pub fn served(query: crate::engine::RankQuery, ranking: &crate::engine::Ranking) -> RankRecord {
        RankRecord {
            time: query.now,
            request_id: query.request_id,
            user_id: query.user_id,
            scene: query.scene,
            slots: query.slots,
            candidates: query.candidates,
            served: ranking
                .slots
                .iter()
                .map(|s| ServedSlot {
                    item_id: s.item_id.clone(),
                    kind: s.kind,
                    position: Some(s.position),
                    propensity: None,
                    propensity_kind: None,
                })
                .collect(),
            policy: Some(ranking.config_version.clone()),
            arms: None,
        }
    }

    /// The record of a request ranked under experiment arms `arms`.
    pub fn under(self, arms: &[crate::domain::ArmRef]) -> RankRecord {
        let arms = (!arms.is_empty()).then(|| {
            let names: Vec<String> = arms.iter().map(ToString::to_string).collect();
            names.join(",")
        });
        RankRecord { arms, ..self }
    }

    /// The request itself, to rank again, and the page served.
    pub fn into_query(self) -> (crate::engine::RankQuery, Vec<ServedSlot>) {
        let query = crate::engine::RankQuery {
            request_id: self.request_id,
            user_id: self.user_id,
            scene: self.scene,
            slots: self.slots,
            candidates: self.candidates,
            now: self.time,
        };
        (query, self.served)
    }
}

impl From<&Purchase> for crate::domain::Event {
    /// A purchase from a traffic log, as the event intake would have taken it.
    fn from(p: &Purchase) -> crate::domain::Event {
        crate::domain::Event {
            event_id: p.event_id.clone(),
            time: p.time,
            user_id: p.user_id.clone(),
            kind: crate::domain::EventKind::Purchase {
                item_id: p.goods_id.clone(),
                brand_id: p.brand_id.clone(),
                seller_streamer_id: p.seller_id.clone(),
                channel: p.channel,
                price: p.price,
                venue: p.venue,
            },
        }
    }
}

impl crate::domain::Event {
    /// An impression from a traffic log as the event intake would have
    /// taken it for the flow, resolved against `catalog`: `None` unless it
    /// shows a brand's own stream (nothing else matters to the flow).
    pub fn flow_impression(i: &Impression, catalog: &crate::catalog::Catalog) -> Option<Self> {
        let brand = catalog.own_stream_of(&i.item_id)?;
        Some(crate::domain::Event {
            event_id: i.event_id.clone(),
            time: i.time,
            user_id: i.user_id.clone(),
            kind: crate::domain::EventKind::Impression {
                item_id: i.item_id.clone(),
                streamer_id: i.streamer_id.clone(),
                request_id: Some(i.request_id.clone()),
                position: i.position,
                own_stream_of: Some(brand.into()),
            },
        })
    }
}

impl Purchase {
    /// The purchase an ingested event is, if it is one.
    pub fn of(e: &crate::domain::Event) -> Option<Purchase> {
        let crate::domain::EventKind::Purchase {
            item_id,
            brand_id,
            seller_streamer_id,
            channel,
            price,
            venue,
        } = &e.kind
        else {
            return None;
        };
        Some(Purchase {
            time: e.time,
            event_id: e.event_id.clone(),
            user_id: e.user_id.clone(),
            goods_id: item_id.clone(),
            brand_id: brand_id.clone(),
            seller_id: seller_streamer_id.clone(),
            channel: *channel,
            price: *price,
            venue: *venue,
            request_id: None,
            slot_item_id: None,
        })
    }
}

/// One served slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedSlot {
    pub item_id: String,
    pub kind: ItemKind,
    /// The 0-based slot. Absent: the slot after the previous entry's (slot
    /// 0 for the first), which is how version-1 logs list a page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// The logging policy's probability of this item in this slot, in
    /// (0, 1], read as `propensity_kind` says; absent for a deterministic
    /// policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
    /// What `propensity` is a probability of; absent: cascade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity_kind: Option<PropensityKind>,
}

/// What a served slot's propensity is the probability of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropensityKind {
    /// Of this item in this slot given the items in the slots above (the
    /// page's probability is the product down the page).
    Cascade,
    /// Of this item in this slot, over every page the policy could serve
    /// (a public impression log's per-position propensity).
    Marginal,
}

/// A slot was shown to the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impression {
    pub time: Millis,
    pub event_id: String,
    pub request_id: String,
    pub user_id: String,
    pub item_id: String,
    pub kind: ItemKind,
    pub position: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamer_id: Option<String>,
}

/// The user opened a shown slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Click {
    pub time: Millis,
    pub event_id: String,
    pub request_id: String,
    pub user_id: String,
    pub item_id: String,
    pub kind: ItemKind,
    pub position: u32,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    pub time: Millis,
    pub event_id: String,
    pub user_id: String,
    pub goods_id: String,
    pub brand_id: String,
    /// The streamer account that sold it.
    pub seller_id: String,
    pub channel: Channel,
    /// Yuan.
    pub price: f64,
    /// Where it was bought (unset: in the seller's live stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<Venue>,
    /// The request whose slot led to the order, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The ranked item (a stream or the goods itself) the order came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_item_id: Option<String>,
}

/// A stream went on or off air (a catalog change replays apply in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub time: Millis,
    pub stream_id: String,
    pub live: bool,
}

/// Writes records as lines, buffered.
pub struct TrafficWriter<W: Write> {
    out: std::io::BufWriter<W>,
    line: Vec<u8>,
}

impl<W: Write> TrafficWriter<W> {
    pub fn new(out: W) -> TrafficWriter<W> {
        TrafficWriter {
            out: std::io::BufWriter::with_capacity(1 << 20, out),
            line: Vec::with_capacity(4096),
        }
    }

    pub fn write(&mut self, record: &Record) -> std::io::Result<()> {
        self.line.clear();
        record.write_line(&mut self.line);
        self.out.write_all(&self.line)
    }

    /// Writes lines already serialized with [`Record::write_line`].
    pub fn write_raw(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.out.write_all(lines)
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests;
