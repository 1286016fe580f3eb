//! How a purchase counts for the flow is decided by who sold it, as the
//! catalog knows them, not by the channel the caller claims.

use super::Catalog;
use crate::domain::{Channel, Event, EventKind, StreamerKind};

impl Catalog {
    /// How a purchase of `brand`'s goods sold by `seller` counts for the
    /// flow, whatever channel the caller `claimed`: a sale by the brand's
    /// own account is a self-broadcast sale; a distribution sale needs a
    /// known influencer as its seller; anything else is
    /// [`Channel::Unverified`]. The note says why when the answer is not
    /// what was claimed.
    pub fn sale_channel(
        &self,
        brand: &str,
        seller: &str,
        claimed: Channel,
    ) -> (Channel, Option<&'static str>) {
        let Some(s) = self.streamer(seller) else {
            return (
                Channel::Unverified,
                Some("the seller is not in the catalog: no reward, no affinity"),
            );
        };
        match (s.kind, s.brand_id.as_deref() == Some(brand), claimed) {
            (StreamerKind::BrandSelf, true, Channel::BrandSelf) => (Channel::BrandSelf, None),
            (StreamerKind::BrandSelf, true, _) => (
                Channel::BrandSelf,
                Some("the seller is the brand's own account: counted as a self-broadcast sale"),
            ),
            (StreamerKind::BrandSelf, false, _) => (
                Channel::Unverified,
                Some("the seller is another brand's own account: no reward, no affinity"),
            ),
            (StreamerKind::Influencer, _, Channel::Influencer) => (Channel::Influencer, None),
            (StreamerKind::Influencer, _, _) => (
                Channel::Unverified,
                Some(
                    "a self-broadcast sale whose seller is not the brand's own account: not attributed",
                ),
            ),
        }
    }

    /// Resolves what the flow needs of an event against the catalog, once,
    /// before it is logged: a purchase's channel becomes the one
    /// [`Catalog::sale_channel`] counts it in (returning why, when that is
    /// not the channel claimed); an impression of a brand's own stream
    /// names the brand. Clicks are left as they are.
    pub fn resolve_for_flow(&self, event: &mut Event) -> Option<&'static str> {
        match &mut event.kind {
            EventKind::Purchase {
                brand_id,
                seller_streamer_id,
                channel,
                ..
            } => {
                let (counted, note) = self.sale_channel(brand_id, seller_streamer_id, *channel);
                *channel = counted;
                note
            }
            EventKind::Impression {
                item_id,
                own_stream_of,
                ..
            } => {
                *own_stream_of = self.own_stream_of(item_id).map(String::from);
                None
            }
            EventKind::Click { .. } => None,
        }
    }

    /// The brand whose own account broadcasts the stream `item`, if it is
    /// one (goods and unknown items are none).
    pub fn own_stream_of(&self, item: &str) -> Option<&str> {
        self.self_brand_of(&self.streams.get(item)?.stream)
    }
}
