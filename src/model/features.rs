//! The model's input features. The list is part of the model file format: a
//! model names the features it was trained on, and loading refuses a model
//! whose list differs from [`FEATURES`], so a stale model can never be fed
//! columns it does not expect.

use crate::catalog::QualityScores;
use crate::domain::{Magnitude, Scene};
use ndarray::{Array2, ShapeBuilder};

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
    pub followers: Option<Magnitude>,
    pub user_follows: bool,
    /// Yuan; the order value for streams.
    pub price: Magnitude,
    pub scores: QualityScores,
    pub is_brand_self: bool,
    pub scene: Scene,
    /// Goods on the cart, for streams the catalog knows.
    pub cart: Option<Magnitude>,
    pub resolved: bool,
}

/// Centers a 0..=100 quality score at the typical 75 and scales it to about
/// [-3, 1]; an unknown score is 0, the typical value.
fn centered(score: Option<f64>) -> f32 {
    // Times 1/25, not divided by 25: a row has six of these scalings, and
    // a division costs several multiplies (the result can differ from the
    // quotient in the last bit of an f64, which the f32 seldom keeps).
    score.map_or(0.0, |s| ((s - 75.0) * (1.0 / 25.0)) as f32)
}

fn flag(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

/// The logarithms' scales as factors (see [`centered`] for why):
/// 1 / ln(10M), 1 / ln(10001), 1 / ln(101).
const PER_LN_10M: f64 = 1.0 / 16.118_095_650_958_32;
const PER_LN_10K: f64 = 1.0 / 9.210_440_366_976_517;
const PER_LN_100: f64 = 1.0 / 4.615_120_516_841_26;

impl FeatureInput {
    /// Writes the feature row into `row` (length [`N_FEATURES`]).
    pub fn write(&self, row: &mut [f32]) {
        row.copy_from_slice(&self.values());
    }

    /// The feature row, in [`FEATURES`] order.
    pub fn values(&self) -> [f32; N_FEATURES] {
        // ln(1 + followers) / ln(10M): 0 for nobody, 1 for 10M followers.
        let log_followers = self
            .followers
            .map_or(0.0, |f| (f.ln_1p() * PER_LN_10M) as f32);
        // ln(1 + price) / ln(10001): 0 for free, 1 for 10k yuan.
        let log_price = (self.price.ln_1p() * PER_LN_10K) as f32;
        let log_cart = self.cart.map_or(0.0, |n| (n.ln_1p() * PER_LN_100) as f32);
        [
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
        ]
    }
}

/// The feature matrix of `rows`, one row each, column-major: the layout
/// [`super::Model::score`] reads without a copy.
pub fn feature_matrix(rows: impl ExactSizeIterator<Item = FeatureInput>) -> Array2<f32> {
    let n = rows.len();
    let mut data = vec![0.0f32; n * N_FEATURES];
    for (i, row) in rows.enumerate() {
        for (k, v) in row.values().into_iter().enumerate() {
            data[k * n + i] = v;
        }
    }
    Array2::from_shape_vec((n, N_FEATURES).f(), data).expect("n rows of N_FEATURES values")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(followers: f64, price: f64) -> FeatureInput {
        FeatureInput {
            is_live_stream: true,
            followers: Some(Magnitude::new(followers)),
            user_follows: false,
            price: Magnitude::new(price),
            scores: QualityScores::default(),
            is_brand_self: false,
            scene: Scene::Mall,
            cart: Some(Magnitude::new(100.0)),
            resolved: true,
        }
    }

    #[test]
    fn the_scales_are_the_logarithms_reciprocals() {
        for (factor, x) in [
            (PER_LN_10M, 1e7),
            (PER_LN_10K, 10_001.0),
            (PER_LN_100, 101.0),
        ] {
            assert!((factor * f64::ln(x) - 1.0).abs() < 1e-15, "{x}: {factor}");
        }
    }

    /// The scales the model file format documents (models/README.md), and
    /// the matrix holds each row's values at its row, in column order.
    #[test]
    fn rows_scale_as_documented_and_land_in_their_rows() {
        let rows = [input(9_999_999.0, 10_000.0), input(0.0, 0.0)];
        let full = rows[0].values();
        assert!((full[1] - 1.0).abs() < 1e-6, "10M followers: {}", full[1]);
        assert!((full[3] - 1.0).abs() < 1e-6, "10k yuan: {}", full[3]);
        assert!((full[13] - 1.0).abs() < 1e-6, "100 goods: {}", full[13]);
        assert_eq!(full[10], 1.0, "scene_mall");
        assert_eq!((rows[1].values()[1], rows[1].values()[3]), (0.0, 0.0));
        let x = feature_matrix(rows.iter().copied());
        assert!(x.t().is_standard_layout(), "column-major");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(x.row(i).to_vec(), row.values().to_vec());
        }
    }
}
