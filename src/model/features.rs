//! The model's input features. The list is part of the model file format: a
//! model names the features it was trained on, and loading refuses a model
//! whose list differs from [`FEATURES`], so a stale model can never be fed
//! columns it does not expect.

use crate::catalog::QualityScores;
use crate::domain::Scene;

/// Feature names, in column order. Meanings are in models/README.md.
pub const FEATURES: [&str; 15] = [
    "is_live_stream",
    "log_followers",
    "user_follows",
    "log_price",
    "product_score",
    "shop_experience_score",
    "reputation_score",
    "is_brand_self",
    "scene_recommend",
    "scene_follow",
    "scene_mall",
    "scene_search",
    "scene_shop",
    "log_cart_size",
    "resolved",
];

pub const N_FEATURES: usize = FEATURES.len();

/// What the features are computed from: one candidate as resolved against
/// the catalog and the request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureInput {
    pub is_live_stream: bool,
    /// `None` when the streamer is unknown.
    pub followers: Option<u64>,
    pub user_follows: bool,
    /// Yuan; the order value for streams.
    pub price: f64,
    pub scores: QualityScores,
    pub is_brand_self: bool,
    pub scene: Scene,
    /// Goods on the cart, for streams the catalog knows.
    pub cart_size: Option<usize>,
    pub resolved: bool,
}

/// Centers a 0..=100 quality score at the typical 75 and scales it to about
/// [-3, 1]; an unknown score is 0, the typical value.
fn centered(score: Option<f64>) -> f32 {
    score.map_or(0.0, |s| ((s - 75.0) / 25.0) as f32)
}

fn flag(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

impl FeatureInput {
    /// Writes the feature row into `row` (length [`N_FEATURES`]).
    pub fn write(&self, row: &mut [f32]) {
        debug_assert_eq!(row.len(), N_FEATURES);
        // log10(1 + followers) / 7: 0 for nobody, 1 for 10M followers.
        let log_followers = self
            .followers
            .map_or(0.0, |f| ((1.0 + f as f64).log10() / 7.0) as f32);
        // ln(1 + price) / ln(10001): 0 for free, 1 for 10k yuan.
        let log_price = ((1.0 + self.price.max(0.0)).ln() / 10_001f64.ln()) as f32;
        let log_cart = self
            .cart_size
            .map_or(0.0, |n| ((1.0 + n as f64).ln() / 101f64.ln()) as f32);
        let values = [
            flag(self.is_live_stream),
            log_followers,
            flag(self.user_follows),
            log_price,
            centered(self.scores.product),
            centered(self.scores.shop_experience),
            centered(self.scores.reputation),
            flag(self.is_brand_self),
            flag(self.scene == Scene::Recommend),
            flag(self.scene == Scene::Follow),
            flag(self.scene == Scene::Mall),
            flag(self.scene == Scene::Search),
            flag(self.scene == Scene::Shop),
            log_cart,
            flag(self.resolved),
        ];
        row.copy_from_slice(&values);
    }
}
