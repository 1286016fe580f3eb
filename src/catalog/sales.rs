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
        let Some(s) = self.streamers.get(seller) else {
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

    /// Sets a purchase's channel to the one [`Catalog::sale_channel`]
    /// counts it in; returns why, when that is not the channel claimed.
    /// Other events are left as they are.
    pub fn count_sale(&self, event: &mut Event) -> Option<&'static str> {
        let EventKind::Purchase {
            brand_id,
            seller_streamer_id,
            channel,
            ..
        } = &mut event.kind
        else {
            return None;
        };
        let (counted, note) = self.sale_channel(brand_id, seller_streamer_id, *channel);
        *channel = counted;
        note
    }
}
