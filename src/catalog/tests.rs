//! Rules checked: batches are all-or-nothing; references must resolve;
//! a stream's order value follows its cart and its goods' prices.
use super::*;
use crate::domain::{Magnitude, Millis};

pub fn streamer(id: &str, followers: u64) -> Streamer {
    Streamer {
        id: id.into(),
        followers,
        kind: StreamerKind::Influencer,
        brand_id: None,
        scores: QualityScores::default(),
        created_at: Millis(0),
    }
}

pub fn goods(id: &str, seller: &str, price: f64) -> Goods {
    Goods {
        id: id.into(),
        brand_id: "b1".into(),
        price,
        product_score: None,
        seller_id: seller.into(),
    }
}

pub fn stream(id: &str, streamer: &str, goods: &[&str]) -> Stream {
    Stream {
        id: id.into(),
        streamer_id: streamer.into(),
        live: true,
        goods_ids: goods.iter().map(|g| g.to_string()).collect(),
    }
}

fn small_catalog() -> Catalog {
    let mut c = Catalog::new();
    c.upsert_streamers(vec![streamer("s1", 10), streamer("s2", 6_000_000)], 64)
        .unwrap();
    c.upsert_goods(vec![goods("g1", "s1", 10.0), goods("g2", "s1", 30.0)], 64)
        .unwrap();
    c.upsert_streams(vec![stream("live1", "s1", &["g1", "g2"])], 64)
        .unwrap();
    c
}

#[test]
fn an_item_resolves_to_its_streamer_as_last_upserted() {
    let mut c = small_catalog();
    let (g, s) = c.goods_and_seller("g1").unwrap();
    let s = s.streamer();
    assert_eq!(
        (g.goods().price, s.id.as_str(), s.followers),
        (10.0, "s1", 10)
    );
    // What ranking reads as logarithms is the record's, computed once.
    assert_eq!(g.price(), Magnitude::new(10.0));
    assert_eq!(c.listed("s1").unwrap().followers(), Magnitude::new(10.0));
    let (e, s) = c.stream_and_streamer("live1").unwrap();
    assert_eq!(
        (
            e.order_value().map(Magnitude::value),
            s.streamer().id.as_str()
        ),
        (Some(20.0), "s1")
    );
    // The streamer changes after its goods and stream were indexed, and
    // a streamer added later takes a new place without moving others.
    c.upsert_streamers(vec![streamer("s3", 7), streamer("s1", 200_000)], 64)
        .unwrap();
    assert_eq!(
        c.goods_and_seller("g1").unwrap().1.streamer().followers,
        200_000
    );
    assert_eq!(
        c.stream_and_streamer("live1")
            .unwrap()
            .1
            .streamer()
            .followers,
        200_000
    );
    assert_eq!(c.streamer("s2").unwrap().followers, 6_000_000);
    assert_eq!(c.streamer("s3").unwrap().followers, 7);
    assert_eq!(c.streamers().count(), 3);
    // A goods item moved to another seller resolves to that one.
    c.upsert_goods(vec![goods("g1", "s2", 12.0)], 64).unwrap();
    let (g, s) = c.goods_and_seller("g1").unwrap();
    assert_eq!((g.goods().price, s.streamer().id.as_str()), (12.0, "s2"));
    assert_eq!(
        c.listed("s1").unwrap().followers(),
        Magnitude::new(200_000.0)
    );
    assert!(c.goods_and_seller("nope").is_none());
    assert!(c.stream_and_streamer("nope").is_none());
}

/// What ranking reads beside a goods item's key (brand, product score)
/// follows the record through upserts, and key and fields fit one cache
/// line of the map.
#[test]
fn a_goods_items_ranking_fields_follow_its_record() {
    assert_eq!(std::mem::size_of::<(CompactString, GoodsEntry)>(), 64);
    let mut c = small_catalog();
    let (g, _) = c.goods_and_seller("g1").unwrap();
    assert_eq!((c.brand_of(g), g.product_score()), ("b1", None));
    let rebranded = Goods {
        brand_id: "b2".into(),
        product_score: Some(0.0),
        ..goods("g1", "s1", 10.0)
    };
    c.upsert_goods(vec![rebranded.clone()], 64).unwrap();
    let (g, _) = c.goods_and_seller("g1").unwrap();
    assert_eq!((c.brand_of(g), g.product_score()), ("b2", Some(0.0)));
    assert_eq!(g.goods(), &rebranded);
    let (g2, _) = c.goods_and_seller("g2").unwrap();
    assert_eq!((c.brand_of(g2), g2.product_score()), ("b1", None));
    // Back to the first brand: its place is reused, not added again.
    c.upsert_goods(vec![goods("g1", "s1", 10.0)], 64).unwrap();
    assert_eq!(c.brand_of(c.goods_and_seller("g1").unwrap().0), "b1");
    assert_eq!(c.brand_list.len(), 2);
}

#[test]
fn a_bad_record_rejects_the_whole_batch() {
    let mut c = small_catalog();
    let mut bad = streamer("s3", 1);
    bad.scores.reputation = Some(101.0);
    let err = c
        .upsert_streamers(vec![streamer("s4", 1), bad], 64)
        .unwrap_err();
    assert_eq!(err.index, 1);
    assert_eq!(err.error.field, "reputation_score");
    assert!(
        c.streamer("s4").is_none(),
        "nothing of a refused batch is applied"
    );
}

#[test]
fn references_must_resolve() {
    let mut c = small_catalog();
    let err = c
        .upsert_goods(vec![goods("g9", "nobody", 1.0)], 64)
        .unwrap_err();
    assert_eq!(err.error.field, "seller_id");
    let err = c
        .upsert_streams(vec![stream("x", "s1", &["g1", "nope"])], 64)
        .unwrap_err();
    assert_eq!(err.error.field, "goods_ids[1]");
    let err = c
        .upsert_streams(vec![stream("x", "ghost", &[])], 64)
        .unwrap_err();
    assert_eq!(err.error.field, "streamer_id");
}

#[test]
fn duplicate_ids_in_a_batch_are_refused() {
    let mut c = Catalog::new();
    let err = c
        .upsert_streamers(vec![streamer("a", 1), streamer("a", 2)], 64)
        .unwrap_err();
    assert_eq!(err.index, 1);
    assert!(err.error.reason.contains("twice"));
}

#[test]
fn brand_self_needs_a_brand() {
    let mut s = streamer("brand", 1);
    s.kind = StreamerKind::BrandSelf;
    assert_eq!(s.validate(64).unwrap_err().field, "brand_id");
    s.brand_id = Some("b".into());
    assert!(s.validate(64).is_ok());
}

/// The order value of `live1`, in yuan.
fn live1_order_value(c: &Catalog) -> Option<f64> {
    c.stream("live1")
        .unwrap()
        .order_value()
        .map(Magnitude::value)
}

#[test]
fn order_value_follows_cart_and_prices() {
    let mut c = small_catalog();
    assert_eq!(live1_order_value(&c), Some(20.0));
    c.upsert_goods(vec![goods("g2", "s1", 50.0)], 64).unwrap();
    assert_eq!(live1_order_value(&c), Some(30.0));
    c.upsert_streams(vec![stream("live1", "s1", &["g2"])], 64)
        .unwrap();
    assert_eq!(live1_order_value(&c), Some(50.0));
    assert_eq!(c.stream("live1").unwrap().cart(), Magnitude::new(1.0));
    // g1 left the cart: its price no longer moves the stream.
    c.upsert_goods(vec![goods("g1", "s1", 1000.0)], 64).unwrap();
    assert_eq!(live1_order_value(&c), Some(50.0));
    c.upsert_streams(vec![stream("live1", "s1", &[])], 64)
        .unwrap();
    assert_eq!(c.stream("live1").unwrap().order_value(), None);
    assert_eq!(c.stream("live1").unwrap().cart(), Magnitude::new(0.0));
}

#[test]
fn set_live_flips_known_streams_only() {
    let mut c = small_catalog();
    assert!(c.set_live("live1", false));
    assert!(!c.stream("live1").unwrap().stream.live);
    assert!(!c.set_live("nope", true));
}

#[test]
fn upsert_counts_new_and_replaced() {
    let mut c = small_catalog();
    let n = c
        .upsert_streamers(vec![streamer("s1", 20), streamer("s5", 1)], 64)
        .unwrap();
    assert_eq!(
        n,
        UpsertCount {
            upserted: 2,
            created: 1
        }
    );
    assert_eq!(c.streamer("s1").unwrap().followers, 20);
}

#[test]
fn stats_follow_thresholds() {
    let c = small_catalog();
    let t = TierThresholds::new(5_000_000, 100_000).unwrap();
    let s = c.stats(&t);
    assert_eq!(
        (s.streamers, s.goods, s.streams, s.live_streams),
        (2, 2, 1, 1)
    );
    assert_eq!(s.per_tier, [1, 0, 1]);
    let lower = TierThresholds::new(5, 1).unwrap();
    assert_eq!(c.stats(&lower).per_tier, [2, 0, 0]);
}

#[test]
fn a_brands_live_self_stream_follows_upserts_and_status() {
    let mut c = small_catalog();
    let mut own = streamer("b1-own", 1000);
    own.kind = StreamerKind::BrandSelf;
    own.brand_id = Some("b1".into());
    c.upsert_streamers(vec![own.clone()], 64).unwrap();
    assert_eq!(c.live_self_stream("b1"), None);
    c.upsert_streams(vec![stream("own-live", "b1-own", &[])], 64)
        .unwrap();
    assert_eq!(c.live_self_stream("b1"), Some("own-live"));
    c.set_live("own-live", false);
    assert_eq!(c.live_self_stream("b1"), None, "off air");
    c.set_live("own-live", true);
    // The stream moves to an influencer: no longer the brand's own.
    c.upsert_streams(vec![stream("own-live", "s1", &[])], 64)
        .unwrap();
    assert_eq!(c.live_self_stream("b1"), None);
    c.upsert_streams(vec![stream("own-live", "b1-own", &[])], 64)
        .unwrap();
    // The account changes brand.
    own.brand_id = Some("b2".into());
    c.upsert_streamers(vec![own], 64).unwrap();
    assert_eq!(c.live_self_stream("b1"), None);
    assert_eq!(c.live_self_stream("b2"), Some("own-live"));
}
