//! Which brand the flow shows when a user remembers several, and how high.
//! Rules checked:
//! - the offer whose stream is worth most on this page (its score times
//!   [`SceneFlow::lift`]) is reserved, not the strongest affinity;
//! - the brand's goods among the request's candidates raise its stream's
//!   score by `1 + relevance x goods`, and the user's earlier requests by
//!   `1 + taste x items per request`;
//! - a stream injected for an offer that was not reserved leaves the page
//!   (not placed, not counted as ineligible, its budget untouched).

use super::*;

/// Two brands, b1 and b2, each with its own account, a live stream of that
/// account (`b1-live`, `b2-live`, the same followers and cart price) and
/// goods (`b1-g*`, `b2-g*`); an influencer `inf` sold both.
fn two_brands() -> Catalog {
    let mut c = Catalog::new();
    let own = |brand: &str| {
        let mut s = streamer(&format!("{brand}-own"), 200_000);
        s.kind = StreamerKind::BrandSelf;
        s.brand_id = Some(brand.into());
        s
    };
    c.upsert_streamers(vec![streamer("inf", 50_000), own("b1"), own("b2")], 64)
        .unwrap();
    let brand_goods = |brand: &str, i: usize| {
        let mut g = goods(&format!("{brand}-g{i}"), &format!("{brand}-own"), 60.0);
        g.brand_id = brand.into();
        g
    };
    let all = (0..3).flat_map(|i| [brand_goods("b1", i), brand_goods("b2", i)]);
    c.upsert_goods(all.collect(), 64).unwrap();
    c.upsert_streams(
        vec![
            stream("b1-live", "b1-own", &["b1-g0"]),
            stream("b2-live", "b2-own", &["b2-g0"]),
        ],
        64,
    )
    .unwrap();
    c
}

/// `user` bought `brand`'s goods through the influencer at `at`.
fn bought(state: &RankState, e: &Engine, user: &str, brand: &str, at: Millis) {
    let event = Event {
        event_id: format!("{user}-{brand}-{}", at.0),
        time: at,
        user_id: user.into(),
        kind: EventKind::Purchase {
            item_id: format!("{brand}-g0"),
            brand_id: brand.into(),
            seller_streamer_id: "inf".into(),
            channel: Channel::Influencer,
            price: 60.0,
            venue: None,
        },
    };
    assert!(state.flow.apply(&event, &e.params().chuanliu).affinity);
}

/// A recommend page of `goods` for u1 at `now`, one slot per candidate and
/// one for the flow.
fn goods_page(goods: &[&str], now: Millis) -> RankQuery {
    let mut q = query("u1", &[], goods.len() as u32 + 1, now);
    q.candidates = goods
        .iter()
        .map(|id| Candidate::new(*id, ItemKind::Goods))
        .collect();
    q
}

/// u1 remembers b1 from a purchase at NOON and b2 from one a half-life
/// earlier, so b1's affinity is the stronger.
fn remembers_both(relevance: f64) -> (Engine, Catalog, RankState) {
    let e = engine(
        &format!(
            "{ALL}\n[chuanliu.scenes.recommend]\nmode = \"inject\"\nrelevance = {relevance}\ntaste = 1.0"
        ),
        "",
    );
    let state = RankState::new();
    let half_life = (e.params().chuanliu.affinity.half_life_s * 1000.0) as i64;
    bought(&state, &e, "u1", "b2", Millis(NOON.0 - half_life));
    bought(&state, &e, "u1", "b1", NOON);
    (e, two_brands(), state)
}

#[test]
fn the_brand_whose_goods_the_page_proposes_is_shown_over_a_fresher_memory() {
    let page = goods_page(&["b2-g0", "b2-g1", "b2-g2"], NOON);
    // Without relevance the fresher memory is worth more: b1.
    let (e, c, state) = remembers_both(0.0);
    assert_eq!(flow_items(&e.rank(&c, &state, &page).unwrap()), ["b1-live"]);
    // With it, three of b2's goods on the page: b2 at 5^0.5 x (1 + 3)
    // against b1 at 5 x 1.
    let (e, c, state) = remembers_both(1.0);
    let r = e.rank(&c, &state, &page).unwrap();
    assert_eq!(flow_items(&r), ["b2-live"]);
    let plain = engine("enabled = false", "");
    let mut alone = goods_page(&[], NOON);
    alone.candidates = vec![Candidate::new("b2-live", ItemKind::LiveStream)];
    let base = plain.rank(&c, &RankState::new(), &alone).unwrap().slots[0].score;
    let boost = e.params().chuanliu.scene(Scene::Recommend).boost;
    let score = r
        .slots
        .iter()
        .find(|s| s.item_id == "b2-live")
        .unwrap()
        .score;
    assert!(
        (score / base - boost.sqrt() * 4.0).abs() < 1e-6,
        "{score} / {base}"
    );
    // The other brand's offer was not reserved: its cap place is free.
    let affinities = state.flow.affinities_of("u1");
    let count = |brand: &str| {
        let (_, a, _) = affinities.iter().find(|(b, _, _)| b == brand).unwrap();
        a.window_count
    };
    assert_eq!((count("b1"), count("b2")), (0, 1));
}

#[test]
fn an_offer_not_reserved_leaves_no_injected_stream_behind() {
    let (e, c, state) = remembers_both(1.0);
    let page = goods_page(&["b1-g0"], NOON);
    let evaluation = e.evaluate(&c, &page, Some(&state.flow)).unwrap();
    assert_eq!(evaluation.len(), 2, "the request's goods and one stream");
    assert_eq!(evaluation.candidate(1).item_id, "b1-live");
    drop(evaluation);
    let r = e.rank(&c, &state, &page).unwrap();
    assert_eq!(flow_items(&r), ["b1-live"]);
    assert_eq!(r.ineligible, 0);
    assert_eq!(r.slots.len(), 2);
    let params = &e.params().chuanliu;
    assert_eq!(state.flow.totals(NOON, params).counts.impressions, 1);
}

#[test]
fn a_flow_streams_lift_leaves_the_exposure_controllers_score_unit_alone() {
    // Default quotas (targets and spreading price in mean served scores).
    let lifted = engine_from(&format!(
        "[chuanliu]\n{ALL}\n[chuanliu.scenes.recommend]\nmode = \"inject\"\nboost = 100.0"
    ));
    let plain = engine_from("[chuanliu]\nenabled = false");
    let c = catalog();
    let unit = |e: &Engine| {
        let state = RankState::new();
        state.flow.apply(
            &purchase("p1", "u1", Channel::Influencer, NOON),
            &e.params().chuanliu,
        );
        let r = e
            .rank(&c, &state, &query("u1", &["inf-live", "b1-live"], 2, NOON))
            .unwrap();
        assert_eq!(r.slots.len(), 2, "both streams on the page");
        let view = state.exposure.view(&e.params().quotas.exposure);
        (view.score_unit, flow_items(&r).len())
    };
    let (with_flow, shown) = unit(&lifted);
    let (without, _) = unit(&plain);
    assert_eq!(shown, 1);
    assert!(
        (with_flow - without).abs() < 1e-12 * without,
        "{with_flow} against {without}"
    );
}

#[test]
fn the_brand_the_users_earlier_pages_proposed_is_shown_on_a_page_without_it() {
    let (e, c, state) = remembers_both(0.0);
    // Two requests that proposed two of b2's goods each, before b2 was
    // live (nothing to offer, but the taste is taken).
    let mut c_off = c.clone();
    let mut off = c_off.stream("b2-live").unwrap().stream.clone();
    off.live = false;
    c_off.upsert_streams(vec![off], 64).unwrap();
    for minute in 0..2 {
        let at = Millis(NOON.0 - HOUR + minute * 60_000);
        let page = goods_page(&["b2-g0", "b2-g1"], at);
        let r = e.rank(&c_off, &state, &page).unwrap();
        assert_eq!(flow_items(&r), ["b1-live"]);
    }
    // A page with none of either brand's items: b2 at 5^0.5 x (1 + 2)
    // against b1 at 5 x (1 + 0).
    let r = e.rank(&c, &state, &goods_page(&["other-g"], NOON)).unwrap();
    assert_eq!(flow_items(&r), ["b2-live"]);
}
