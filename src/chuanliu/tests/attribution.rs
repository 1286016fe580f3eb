//! Attribution through the engine: only seen flow impressions and sales in
//! the brand's own live stream count, and they reward the influencers.

use super::*;

/// `user` scrolled to b1's own stream `b1-live` at `at`, as the intake
/// takes it (resolved to the brand).
pub(super) fn saw_b1(user: &str, at: Millis) -> Event {
    Event {
        event_id: format!("seen-{user}-{}", at.0),
        time: at,
        user_id: user.into(),
        kind: EventKind::Impression {
            item_id: "b1-live".into(),
            streamer_id: Some("b1-own".into()),
            request_id: None,
            position: 0,
            own_stream_of: Some("b1".into()),
        },
    }
}

#[test]
fn attributed_purchases_count_and_reward_the_influencer() {
    let (e, c, state) = (engine(ALL, ""), catalog(), RankState::new());
    let params = &e.params().chuanliu;
    let flow = &state.flow;
    flow.apply(&purchase("p1", "u1", Channel::Influencer, NOON), params);
    // Bought in the brand's own stream before any flow impression: organic.
    let early = flow.apply(&purchase("p2", "u1", Channel::BrandSelf, NOON), params);
    assert_eq!(early.attributed, None);
    e.rank(&c, &state, &query("u1", &["other-live"], 3, NOON))
        .unwrap();
    let within = Millis(NOON.0 + 2 * HOUR);
    let unseen = flow.apply(
        &purchase("p-unseen", "u1", Channel::BrandSelf, within),
        params,
    );
    assert_eq!(unseen.attributed, None, "served, never seen");
    assert!(flow.apply(&saw_b1("u1", NOON), params).seen);
    let mut shelf = purchase("p-shelf", "u1", Channel::BrandSelf, within);
    if let EventKind::Purchase { venue, .. } = &mut shelf.kind {
        *venue = Some(crate::domain::Venue::Shelf);
    }
    assert_eq!(
        flow.apply(&shelf, params).attributed,
        None,
        "a shelf sale is not a self-broadcast sale"
    );
    let a = flow.affinities_of("u1")[0].1;
    assert_eq!(
        (a.own_gmv, a.all_gmv),
        (176.0, 264.0),
        "the shelf sale is in the total outcome only"
    );
    let bought = flow.apply(&purchase("p3", "u1", Channel::BrandSelf, within), params);
    assert_eq!(bought.attributed, Some(88.0));
    let too_late = Millis(NOON.0 + 25 * HOUR);
    let late = flow.apply(&purchase("p4", "u1", Channel::BrandSelf, too_late), params);
    assert_eq!(late.attributed, None, "outside the attribution window");
    let counts = flow.totals(within, params).counts;
    assert_eq!((counts.impressions, counts.conversions), (1, 1));
    assert!((counts.gmv() - 88.0).abs() < 1e-9);
    let level = flow.reward_level("inf", within, params);
    // The impression's credit has decayed for 2 hours, the purchase's not at all.
    let expected =
        params.reward.per_impression * 0.5f64.powf(2.0 / 24.0) + params.reward.per_conversion;
    assert!(
        (level - expected).abs() < 1e-3 * expected,
        "{level} vs {expected}"
    );
    // The influencer's items carry the reward reason, for any user.
    let r = e
        .rank(
            &c,
            &state,
            &query("u9", &["inf-live", "other-live"], 2, within),
        )
        .unwrap();
    let inf = r.slots.iter().find(|s| s.item_id == "inf-live").unwrap();
    assert!(inf.reasons.contains(Reason::FlowReward));
    let other = r.slots.iter().find(|s| s.item_id == "other-live").unwrap();
    assert!(!other.reasons.contains(Reason::FlowReward));
}

#[test]
fn the_reward_is_capped() {
    let (e, state) = (engine(ALL, ""), RankState::new());
    let params = &e.params().chuanliu;
    for i in 0..200 {
        let user = format!("u{i}");
        state.flow.apply(
            &purchase(&format!("a{i}"), &user, Channel::Influencer, NOON),
            params,
        );
        e.rank(&catalog(), &state, &query(&user, &["other-live"], 3, NOON))
            .unwrap();
        state.flow.apply(&saw_b1(&user, NOON), params);
        state.flow.apply(
            &purchase(&format!("b{i}"), &user, Channel::BrandSelf, NOON),
            params,
        );
    }
    assert_eq!(state.flow.totals(NOON, params).counts.conversions, 200);
    assert!((state.flow.reward_level("inf", NOON, params) - params.reward.cap).abs() < 1e-6);
}
