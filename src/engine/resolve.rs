//! Stage 1: resolve each candidate against the catalog. What the request
//! carries wins over the catalog; what neither knows takes a documented
//! default (unknown streamer: small tier; unknown price: the configured
//! order value; unknown scores: neutral).

use super::EngineParams;
use super::query::Candidate;
use crate::catalog::{Catalog, Listed, QualityScores};
use crate::domain::{ItemKind, Magnitude, Millis, Scene, StreamerKind, Tier};
use crate::model::FeatureInput;
use std::ops::Deref;

/// Where a candidate came from.
#[derive(Debug, Clone)]
pub enum Source<'a> {
    /// The request's own.
    Request(&'a Candidate),
    /// Added by the engine (a stream the chuanliu flow injects). Boxed: a
    /// page holds hundreds of request candidates and at most a few of
    /// these, and a candidate inline would make every entry of the page's
    /// vector eight times wider, all of it copied as the vector is built.
    Injected(Box<Candidate>),
}

impl Deref for Source<'_> {
    type Target = Candidate;

    fn deref(&self) -> &Candidate {
        match self {
            Source::Request(c) => c,
            Source::Injected(c) => c,
        }
    }
}

/// A candidate with everything the later stages need, borrowed from the
/// request and the catalog.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    pub candidate: Source<'a>,
    pub streamer_id: Option<&'a str>,
    /// The streamer, when the catalog knows it.
    pub streamer: Option<&'a Listed>,
    pub tier: Tier,
    /// Yuan; the order value for streams.
    pub price: Magnitude,
    pub scores: QualityScores,
    /// The address of the catalog record the item resolved to (`None`: the
    /// catalog does not know it): within one request it stands for the
    /// item's kind and id (the duplicate check).
    pub record: Option<usize>,
    /// False for a stream the catalog knows to be off air: it cannot be watched.
    pub eligible: bool,
    /// Goods on the cart, for streams the catalog knows.
    pub cart: Option<Magnitude>,
    /// The brand of a goods item, or of a brand's own stream, the catalog
    /// knows (the flow reads a brand's items on the page as the user's
    /// taste for it).
    pub brand_id: Option<&'a str>,
}

impl<'a> Resolved<'a> {
    // Inlined so the struct is built in the page's vector rather than
    // built aside and copied in (the copy was 5% of a 500-candidate rank).
    #[inline]
    pub fn new(c: Source<'a>, catalog: &'a Catalog, params: &EngineParams) -> Resolved<'a> {
        // One probe finds the item and its streamer; a request naming
        // another streamer than the catalog's pays a second, by id.
        let (record, catalog_streamer, catalog_price, cart, item_product, brand_id, eligible) =
            match c.kind {
                ItemKind::LiveStream => match catalog.stream_and_streamer(&c.item_id) {
                    Some((e, s)) => (
                        Some(address(e)),
                        Some(s),
                        e.order_value(),
                        Some(e.cart()),
                        None,
                        // A brand's own stream is one of its items.
                        s.streamer()
                            .brand_id
                            .as_deref()
                            .filter(|_| s.streamer().kind == StreamerKind::BrandSelf),
                        e.stream.live,
                    ),
                    None => (None, None, None, None, None, None, true),
                },
                ItemKind::Goods => match catalog.goods_and_seller(&c.item_id) {
                    Some((g, s)) => (
                        Some(address(g)),
                        Some(s),
                        Some(g.price()),
                        None,
                        g.product_score(),
                        Some(catalog.brand_of(g)),
                        true,
                    ),
                    None => (None, None, None, None, None, None, true),
                },
            };
        // Only a request's own candidate can name a streamer the catalog does
        // not; one the engine added carries nothing but its id.
        let requested_streamer = match &c {
            Source::Request(c) => c.streamer_id.as_deref(),
            Source::Injected(_) => None,
        };
        let (streamer_id, listed) = match (requested_streamer, catalog_streamer) {
            (Some(id), Some(s)) if s.streamer().id == id => {
                (Some(s.streamer().id.as_str()), Some(s))
            }
            (Some(id), _) => (Some(id), catalog.listed(id)),
            (None, s) => (s.map(|s| s.streamer().id.as_str()), s),
        };
        let streamer = listed.map(Listed::streamer);
        let seller_scores = streamer.map(|s| s.scores).unwrap_or_default();
        // The request's price is the one amount whose logarithm is taken here.
        let price = c
            .price
            .map(Magnitude::new)
            .or(catalog_price)
            .unwrap_or(params.scoring.default_order_value);
        Resolved {
            candidate: c,
            streamer_id,
            streamer: listed,
            // A streamer the catalog does not know is most likely new, hence small.
            tier: streamer.map_or(Tier::Small, |s| params.tiers.classify(s.followers)),
            price,
            scores: QualityScores {
                product: item_product.or(seller_scores.product),
                ..seller_scores
            },
            record,
            eligible,
            cart,
            brand_id,
        }
    }

    /// The address of the streamer's catalog record: within one request
    /// it stands for the streamer (allocation numbers streamers by it).
    pub fn streamer_record(&self) -> Option<usize> {
        self.streamer.map(address)
    }

    /// The item itself was found in the catalog.
    pub fn resolved(&self) -> bool {
        self.record.is_some()
    }

    pub fn created_at(&self) -> Option<Millis> {
        self.streamer.map(|s| s.streamer().created_at)
    }

    pub fn features(&self, scene: Scene) -> FeatureInput {
        FeatureInput {
            is_live_stream: self.candidate.kind == ItemKind::LiveStream,
            followers: self.streamer.map(Listed::followers),
            user_follows: self.candidate.user_follows.unwrap_or(false),
            price: self.price,
            scores: self.scores,
            is_brand_self: self
                .streamer
                .is_some_and(|s| s.streamer().kind == StreamerKind::BrandSelf),
            scene,
            cart: self.cart,
            resolved: self.resolved(),
        }
    }
}

/// Where a catalog record is: one request's candidates are checked and
/// numbered by it, a word, instead of by their ids' bytes.
fn address<T>(record: &T) -> usize {
    std::ptr::from_ref(record).addr()
}
