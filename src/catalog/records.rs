//! Catalog records and their validation. The same structs are the rows of the
//! catalog's JSONL files (docs/catalog.md), so a file and an upsert are
//! checked by the same rules.

use crate::domain::{FieldError, Millis, StreamerKind, check_id, price_problem};
use serde::{Deserialize, Serialize};

/// Quality scores (0..=100) that gate traffic; `None` means unknown and is
/// neutral.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityScores {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_experience: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation: Option<f64>,
}

/// A streamer account. Its tier is not stored: it is derived from `followers`
/// under the thresholds in force, so a threshold change applies at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Streamer {
    pub id: String,
    pub followers: u64,
    pub kind: StreamerKind,
    /// The brand a self-broadcast account broadcasts for (required for
    /// [`StreamerKind::BrandSelf`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_id: Option<String>,
    #[serde(default)]
    pub scores: QualityScores,
    /// When the account started selling; drives cold-start support.
    pub created_at: Millis,
}

/// A stream: its streamer, whether it is on air, and the goods on its cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub id: String,
    pub streamer_id: String,
    pub live: bool,
    #[serde(default)]
    pub goods_ids: Vec<String>,
}

/// A goods item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goods {
    pub id: String,
    pub brand_id: String,
    /// Yuan.
    pub price: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_score: Option<f64>,
    /// The streamer account whose shop lists the goods.
    pub seller_id: String,
}

fn check_score(field: &str, score: Option<f64>) -> Result<(), FieldError> {
    match score {
        Some(s) if !(0.0..=100.0).contains(&s) => Err(FieldError::new(
            field,
            format!("{s} is outside [0, 100] (or not a number)"),
        )),
        _ => Ok(()),
    }
}

impl Streamer {
    /// Field-level checks; fields are named relative to the record.
    pub fn validate(&self, max_id: usize) -> Result<(), FieldError> {
        check_id("id", &self.id, max_id)?;
        match (&self.kind, &self.brand_id) {
            (StreamerKind::BrandSelf, None) => {
                return Err(FieldError::new(
                    "brand_id",
                    "a brand self-broadcast account needs its brand id",
                ));
            }
            (_, Some(b)) => check_id("brand_id", b, max_id)?,
            _ => {}
        }
        check_score("product_score", self.scores.product)?;
        check_score("shop_experience_score", self.scores.shop_experience)?;
        check_score("reputation_score", self.scores.reputation)?;
        Ok(())
    }
}

impl Stream {
    pub fn validate(&self, max_id: usize) -> Result<(), FieldError> {
        check_id("id", &self.id, max_id)?;
        check_id("streamer_id", &self.streamer_id, max_id)?;
        for (i, g) in self.goods_ids.iter().enumerate() {
            check_id(&format!("goods_ids[{i}]"), g, max_id)?;
        }
        Ok(())
    }
}

impl Goods {
    pub fn validate(&self, max_id: usize) -> Result<(), FieldError> {
        check_id("id", &self.id, max_id)?;
        check_id("brand_id", &self.brand_id, max_id)?;
        check_id("seller_id", &self.seller_id, max_id)?;
        if let Some(reason) = price_problem(self.price) {
            return Err(FieldError::new("price", reason));
        }
        check_score("product_score", self.product_score)?;
        Ok(())
    }
}
