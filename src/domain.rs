//! Domain vocabulary shared by every layer: tiers, scenes, item kinds, reason
//! codes and time. Nothing here knows about protobuf; `server::convert` maps
//! these to and from the wire types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time, in Unix milliseconds. The engine never reads a clock: the
/// caller passes one in, which is what makes replays and tests exact.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    pub const MS_PER_HOUR: i64 = 3_600_000;
    pub const MS_PER_DAY: i64 = 86_400_000;

    /// Milliseconds elapsed since `earlier`, zero if `earlier` is in the future
    /// (clock skew between the catalog writer and the ranker). Saturates:
    /// times come from requests and must not be able to overflow.
    pub fn since(self, earlier: Millis) -> i64 {
        self.0.saturating_sub(earlier.0).max(0)
    }
}

/// The times a caller may send (Unix ms), from 2000-01-01 to 2100-01-01
/// UTC: a time outside them is a unit mistake (seconds, microseconds) or
/// garbage, and ranking or flow windows computed from it would be nonsense.
pub const PLAUSIBLE_TIMES: std::ops::RangeInclusive<i64> = 946_684_800_000..=4_102_444_800_000;

/// Checks a caller's time against [`PLAUSIBLE_TIMES`], naming `field`.
pub fn check_time(field: &str, ms: i64) -> Result<Millis, FieldError> {
    if PLAUSIBLE_TIMES.contains(&ms) {
        Ok(Millis(ms))
    } else {
        Err(FieldError::new(
            field,
            format!(
                "{ms} is not a plausible time: Unix milliseconds from {} (2000-01-01) to {} (2100-01-01)",
                PLAUSIBLE_TIMES.start(),
                PLAUSIBLE_TIMES.end()
            ),
        ))
    }
}

/// The highest price (yuan) accepted for a goods item or a candidate: far
/// above any real item, low enough that scores built from it stay finite.
pub const MAX_PRICE: f64 = 1e8;

/// Why an amount of money (a price, an order value) is unacceptable, if it
/// is: every amount is a finite number in `[0, MAX_PRICE]`.
pub fn price_problem(value: f64) -> Option<String> {
    // Written so that NaN fails too.
    (!(0.0..=MAX_PRICE).contains(&value))
        .then(|| format!("{value} is not an amount in [0, {MAX_PRICE}]"))
}

/// A non-negative quantity (a price, a follower count, a cart's size) with
/// its `ln(1 + value)`, computed once where the quantity is stored: ranking
/// reads the logarithm of all three for every candidate, and a logarithm
/// costs more than the rest of a candidate's features together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Magnitude {
    value: f64,
    ln_1p: f64,
}

impl Magnitude {
    /// `value` (negatives are taken as 0 in the logarithm).
    pub fn new(value: f64) -> Magnitude {
        Magnitude {
            value,
            ln_1p: (1.0 + value.max(0.0)).ln(),
        }
    }

    pub fn value(self) -> f64 {
        self.value
    }

    /// `ln(1 + max(value, 0))`.
    pub fn ln_1p(self) -> f64 {
        self.ln_1p
    }
}

/// Why an id is unacceptable (empty, or longer than `max_bytes`), if it is.
/// Returns the reason only, so hot callers build the field name lazily.
pub fn id_problem(id: &str, max_bytes: usize) -> Option<String> {
    if id.is_empty() {
        Some("must not be empty".into())
    } else if id.len() > max_bytes {
        Some(format!(
            "is {} bytes, longer than the limit of {max_bytes}",
            id.len()
        ))
    } else {
        None
    }
}

/// Checks an id, naming `field` in the error.
pub fn check_id(field: &str, id: &str, max_bytes: usize) -> Result<(), FieldError> {
    match id_problem(id, max_bytes) {
        Some(reason) => Err(FieldError::new(field, reason)),
        None => Ok(()),
    }
}
/// Follower thresholds of the tiers; `mid_min < top_min` by construction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierThresholds {
    top_min: u64,
    mid_min: u64,
}

impl TierThresholds {
    pub fn new(top_min: u64, mid_min: u64) -> Result<Self, String> {
        if mid_min >= top_min {
            return Err(format!(
                "mid_min_followers ({mid_min}) must be below top_min_followers ({top_min})"
            ));
        }
        Ok(TierThresholds { top_min, mid_min })
    }

    /// The fewest followers a top streamer has.
    pub fn top_min(&self) -> u64 {
        self.top_min
    }

    /// The fewest followers a mid-tier streamer has.
    pub fn mid_min(&self) -> u64 {
        self.mid_min
    }

    pub fn classify(&self, followers: u64) -> Tier {
        if followers >= self.top_min {
            Tier::Top
        } else if followers >= self.mid_min {
            Tier::Mid
        } else {
            Tier::Small
        }
    }
}

/// Streamer tier by follower count. Thresholds live in the config
/// ([`TierThresholds`], built from `[tiers]`) so they can be tuned without a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Top,
    Mid,
    Small,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Top, Tier::Mid, Tier::Small];

    /// Dense index, for per-tier arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Top => "top",
            Tier::Mid => "mid",
            Tier::Small => "small",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a feed request comes from; scenes can be configured differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scene {
    Recommend,
    Follow,
    Mall,
    Search,
    Shop,
}

impl Scene {
    pub const ALL: [Scene; 5] = [
        Scene::Recommend,
        Scene::Follow,
        Scene::Mall,
        Scene::Search,
        Scene::Shop,
    ];

    /// Dense index, for per-scene arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Scene::Recommend => "recommend",
            Scene::Follow => "follow",
            Scene::Mall => "mall",
            Scene::Search => "search",
            Scene::Shop => "shop",
        }
    }

    pub fn from_name(name: &str) -> Option<Scene> {
        Scene::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Scene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    LiveStream,
    Goods,
}

/// What a streamer account is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamerKind {
    /// Sells other merchants' goods for commission (distribution).
    Influencer,
    /// A brand's or shop's own account (self-broadcast).
    BrandSelf,
}

/// Who sold a purchase: an influencer distributing the brand's goods, or the
/// brand's own account (self-broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Influencer,
    BrandSelf,
    /// A sale the catalog cannot place: its seller is unknown, or is
    /// neither an influencer nor the brand's own account. Kept in the log,
    /// it earns no reward and creates no affinity.
    Unverified,
}

/// Where a purchase was made: in a live stream (its cart), or from the
/// goods' own card (a shop shelf, a goods slot). A brand's self-broadcast
/// sales are its own account's live-stream sales; its shelf sales are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Venue {
    LiveStream,
    Shelf,
}

/// What a user event is. Validated at the boundary (`server::convert`)
/// before it exists; the flow and the event log take this one shape. The
/// traffic log writes a purchase as its own flat row (`traffic::Purchase`,
/// the columns analysts query), converted to and from this in `traffic`
/// only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Purchase {
        item_id: String,
        brand_id: String,
        seller_streamer_id: String,
        channel: Channel,
        price: f64,
        /// Not said by the caller: taken as a live-stream sale (the seller
        /// is the streamer whose stream it was sold in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Venue>,
    },
    Impression {
        item_id: String,
        streamer_id: Option<String>,
        request_id: Option<String>,
        position: u32,
        /// The brand whose own live stream the item is, resolved against
        /// the catalog when the event was taken, so that applying the log
        /// again never depends on a later catalog.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        own_stream_of: Option<String>,
    },
    Click {
        item_id: String,
        request_id: Option<String>,
    },
}

/// One validated event (the server's conversion checks every field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub time: Millis,
    pub user_id: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Why an item sits where it does. Every code is reserved on the wire now so
/// that later pipeline stages only start emitting them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Organic,
    TierFloor,
    ExposureBoost,
    Chuanliu,
    ColdStart,
    GatePenalty,
    GateBoost,
    FlowReward,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Organic,
        Reason::TierFloor,
        Reason::ExposureBoost,
        Reason::Chuanliu,
        Reason::ColdStart,
        Reason::GatePenalty,
        Reason::GateBoost,
        Reason::FlowReward,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A small set of reasons, one bit each: slots carry several codes and the
/// hot path should not allocate for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reasons(u16);

impl Reasons {
    pub fn insert(&mut self, reason: Reason) {
        self.0 |= reason.bit();
    }

    /// Inserts `reason` when `on`, without a branch (for codes earned on
    /// data the branch predictor cannot guess, once per candidate).
    pub fn insert_if(&mut self, reason: Reason, on: bool) {
        self.0 |= reason.bit() * u16::from(on);
    }

    pub fn contains(self, reason: Reason) -> bool {
        self.0 & reason.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Reasons) -> Reasons {
        Reasons(self.0 | other.0)
    }

    /// The codes in a fixed order (declaration order), so output is stable.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl FromIterator<Reason> for Reasons {
    fn from_iter<I: IntoIterator<Item = Reason>>(iter: I) -> Self {
        let mut set = Reasons::default();
        for r in iter {
            set.insert(r);
        }
        set
    }
}

/// A rejected input value: which field (a path such as `candidates[3].pctr`)
/// and why. The server turns it into `INVALID_ARGUMENT` with a BadRequest
/// detail; the replay CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Where `id` falls in [0, 1) under `namespace`: the first 8 bytes of
/// SHA-256(namespace, id). Every randomized split of users (the flow's
/// holdout, experiment arms) is one of these, so a user lands on the same
/// side on every replica, after every restart and in every replay.
pub fn hash_fraction(namespace: &[u8], id: &str) -> f64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(namespace)
        .chain_update(id.as_bytes())
        .finalize();
    let x = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    x as f64 / 2f64.powi(64)
}

/// One arm of one experiment, as a ranking, a traffic-log record and a
/// metric name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ArmRef {
    pub experiment: String,
    pub arm: String,
}

impl fmt::Display for ArmRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.experiment, self.arm)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reason_is_inserted_if_and_only_if_earned() {
        for reason in Reason::ALL {
            let mut set = Reasons::default();
            set.insert_if(reason, false);
            assert!(set.is_empty());
            set.insert_if(Reason::Organic, true);
            set.insert_if(reason, true);
            assert!(set.contains(reason) && set.contains(Reason::Organic));
            assert_eq!(
                set.iter().count(),
                1 + usize::from(reason != Reason::Organic)
            );
        }
    }

    #[test]
    fn tiers_classify_at_the_thresholds() {
        let t = TierThresholds::new(5_000_000, 100_000).unwrap();
        assert_eq!(t.classify(5_000_000), Tier::Top);
        assert_eq!(t.classify(4_999_999), Tier::Mid);
        assert_eq!(t.classify(100_000), Tier::Mid);
        assert_eq!(t.classify(99_999), Tier::Small);
    }

    use super::*;

    #[test]
    fn reasons_set_keeps_declaration_order_and_no_duplicates() {
        let set: Reasons = [Reason::GatePenalty, Reason::Organic, Reason::GatePenalty]
            .into_iter()
            .collect();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Reason::Organic, Reason::GatePenalty]
        );
        assert!(!set.contains(Reason::Chuanliu));
    }

    #[test]
    fn scene_names_round_trip() {
        for s in Scene::ALL {
            assert_eq!(Scene::from_name(s.name()), Some(s));
        }
        assert_eq!(Scene::from_name("feed"), None);
    }

    #[test]
    fn age_is_never_negative_and_never_overflows() {
        assert_eq!(Millis(10).since(Millis(20)), 0);
        assert_eq!(Millis(20).since(Millis(5)), 15);
        assert_eq!(Millis(i64::MIN).since(Millis(1)), 0);
        assert_eq!(Millis(i64::MAX).since(Millis(-1)), i64::MAX);
    }
}
