//! What goes into and comes out of [`super::Engine::rank`], and the checks a
//! query must pass. These types are the engine's own: the server maps the
//! wire types onto them, the replay CLI builds them from log records.

use super::Limits;
use crate::allocate::WordTable;
use crate::domain::{
    FieldError, ItemKind, Millis, Reasons, Scene, Tier, check_id, id_problem, price_problem,
};
use foldhash::{HashSet, HashSetExt};
use serde::{Deserialize, Serialize};

/// One feed request to rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankQuery {
    #[serde(default)]
    pub request_id: String,
    pub user_id: String,
    pub scene: Scene,
    pub slots: u32,
    pub candidates: Vec<Candidate>,
    /// The request's time. The engine reads no clock; the caller decides.
    pub now: Millis,
}

/// A candidate's id as the query holds it: inline when it is at most 24
/// bytes (every id a catalog of this platform issues), on the heap past
/// that. A request carries hundreds of candidates, and a heap string per id
/// was a large share of what reading one cost.
pub type Id = compact_str::CompactString;

/// A candidate from upstream retrieval, with what the caller already knows.
/// Every `Some` field takes precedence over the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub item_id: Id,
    pub kind: ItemKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamer_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pctr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcvr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_follows: Option<bool>,
}

impl Candidate {
    /// A candidate that carries nothing but its identity.
    pub fn new(item_id: impl Into<Id>, kind: ItemKind) -> Candidate {
        Candidate {
            item_id: item_id.into(),
            kind,
            streamer_id: None,
            brand_id: None,
            price: None,
            pctr: None,
            pcvr: None,
            user_follows: None,
        }
    }
}

/// One filled slot of the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    pub position: u32,
    /// Index of the item in the query's candidates.
    pub candidate: u32,
    pub item_id: String,
    pub kind: ItemKind,
    /// The streamer the exposure is credited to, when known.
    pub streamer_id: Option<String>,
    pub tier: Tier,
    /// What the slot was ranked by.
    pub score: f64,
    /// pCTR x pCVR x price, before gates.
    pub expected_value: f64,
    /// The exposure the slot gives (`quotas.position_weights`).
    pub exposure: f64,
    pub pctr: f64,
    pub pcvr: f64,
    #[serde(with = "reasons_serde")]
    pub reasons: Reasons,
    /// False when the item was missing from the catalog.
    pub resolved: bool,
}

/// The ranked page and what it was ranked under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    pub request_id: String,
    pub slots: Vec<Slot>,
    pub config_version: String,
    pub model_version: String,
    /// Candidates missing from the catalog (ranked with what the request carried).
    pub unresolved: u32,
    /// Candidates that could not be placed: streams the catalog knows to be
    /// off air, and items of streamers at their exposure share cap.
    pub ineligible: u32,
}

/// Reason sets serialize as a list of names, stable and readable in logs.
mod reasons_serde {
    use crate::domain::{Reason, Reasons};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(r: &Reasons, s: S) -> Result<S::Ok, S::Error> {
        r.iter().collect::<Vec<Reason>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Reasons, D::Error> {
        Ok(Vec::<Reason>::deserialize(d)?.into_iter().collect())
    }
}

fn check_probability(field: impl Fn() -> String, p: Option<f64>) -> Result<(), FieldError> {
    match p {
        Some(v) if !(0.0..=1.0).contains(&v) => Err(FieldError::new(
            field(),
            format!("{v} is not a probability in [0, 1]"),
        )),
        _ => Ok(()),
    }
}

impl RankQuery {
    /// Checks the query against the limits; the error names the first bad
    /// field, or else the first candidate that repeats an earlier one.
    pub fn validate(&self, limits: &Limits) -> Result<(), FieldError> {
        self.validate_fields(limits)?;
        self.check_duplicates(|_| None)
    }

    /// Every check of [`RankQuery::validate`] but duplicates.
    pub(super) fn validate_fields(&self, limits: &Limits) -> Result<(), FieldError> {
        let max_id = limits.max_id_bytes as usize;
        check_id("user_id", &self.user_id, max_id)?;
        if self.request_id.len() > max_id {
            return Err(FieldError::new(
                "request_id",
                format!(
                    "is {} bytes, longer than the limit of {max_id}",
                    self.request_id.len()
                ),
            ));
        }
        if self.slots == 0 || self.slots > limits.max_slots {
            return Err(FieldError::new(
                "slots",
                format!(
                    "{} is outside 1 ..= {} (limits.max_slots)",
                    self.slots, limits.max_slots
                ),
            ));
        }
        if self.candidates.len() > limits.max_candidates as usize {
            return Err(FieldError::new(
                "candidates",
                format!(
                    "{} candidates, more than the limit of {} (limits.max_candidates)",
                    self.candidates.len(),
                    limits.max_candidates
                ),
            ));
        }
        for (i, c) in self.candidates.iter().enumerate() {
            // Field names are only formatted on failure: this loop runs for
            // every candidate of every request.
            let at = |f: &str| format!("candidates[{i}].{f}");
            let id_ok = |f: &str, id: &str| match id_problem(id, max_id) {
                Some(reason) => Err(FieldError::new(at(f), reason)),
                None => Ok(()),
            };
            id_ok("item_id", &c.item_id)?;
            if let Some(s) = &c.streamer_id {
                id_ok("streamer_id", s)?;
            }
            if let Some(b) = &c.brand_id {
                id_ok("brand_id", b)?;
            }
            if let Some(reason) = c.price.and_then(price_problem) {
                return Err(FieldError::new(at("price"), reason));
            }
            check_probability(|| at("pctr"), c.pctr)?;
            check_probability(|| at("pcvr"), c.pcvr)?;
        }
        Ok(())
    }

    /// The first candidate of the same kind and id as an earlier one.
    /// `record(i)` is a word that stands for candidate `i`'s kind and id
    /// (the address of the catalog record it resolved to), `None` where
    /// there is none: those are compared by kind and id. Two candidates of
    /// one kind and id resolve alike, so either both have a word or neither.
    pub(super) fn check_duplicates(
        &self,
        record: impl Fn(usize) -> Option<usize>,
    ) -> Result<(), FieldError> {
        let n = self.candidates.len();
        // Numbered by candidate index, a repeated record answers with an
        // earlier one.
        let mut records = None;
        let mut ids = HashSet::new();
        for (i, c) in self.candidates.iter().enumerate() {
            let repeated = match record(i) {
                Some(word) => {
                    let records = records.get_or_insert_with(|| WordTable::for_page(n));
                    records.number(word, i as u32) != i as u32
                }
                None => !ids.insert((c.kind, c.item_id.as_str())),
            };
            if repeated {
                return Err(FieldError::new(
                    format!("candidates[{i}].item_id"),
                    format!("duplicate candidate `{}`", c.item_id),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Rules checked: each bad input names its field; limits come from config.
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_slots: 10,
            max_candidates: 3,
            max_id_bytes: 16,
        }
    }

    fn query() -> RankQuery {
        RankQuery {
            request_id: "r".into(),
            user_id: "u".into(),
            scene: Scene::Recommend,
            slots: 2,
            candidates: vec![
                Candidate::new("a", ItemKind::Goods),
                Candidate::new("a", ItemKind::LiveStream),
            ],
            now: Millis(0),
        }
    }

    fn field_of(q: RankQuery) -> String {
        q.validate(&limits()).unwrap_err().field
    }

    #[test]
    fn a_good_query_passes_and_same_id_of_other_kind_is_not_a_duplicate() {
        assert_eq!(query().validate(&limits()), Ok(()));
    }

    #[test]
    fn each_bad_input_names_its_field() {
        let mut q = query();
        q.user_id.clear();
        assert_eq!(field_of(q), "user_id");

        let mut q = query();
        q.slots = 0;
        assert_eq!(field_of(q), "slots");
        let mut q = query();
        q.slots = 11;
        assert_eq!(field_of(q), "slots");

        let mut q = query();
        q.candidates
            .extend((0..2).map(|i| Candidate::new(format!("x{i}"), ItemKind::Goods)));
        assert_eq!(field_of(q), "candidates");

        let mut q = query();
        q.candidates[1] = Candidate::new("a", ItemKind::Goods);
        assert_eq!(field_of(q), "candidates[1].item_id");

        let mut q = query();
        q.candidates[0].pctr = Some(f64::NAN);
        assert_eq!(field_of(q), "candidates[0].pctr");
        let mut q = query();
        q.candidates[1].pcvr = Some(1.5);
        assert_eq!(field_of(q), "candidates[1].pcvr");
        let mut q = query();
        q.candidates[1].price = Some(f64::INFINITY);
        assert_eq!(field_of(q), "candidates[1].price");
        let mut q = query();
        q.candidates[0].streamer_id = Some(Id::default());
        assert_eq!(field_of(q), "candidates[0].streamer_id");
        let mut q = query();
        q.user_id = "u".repeat(17);
        assert_eq!(field_of(q), "user_id");
    }
}
