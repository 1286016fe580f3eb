//! The holdout through the engine: a held-out user's page is the page
//! without the flow, while its ghost spends the cap and budget a real
//! impression would have, only when the flow's page would have shown it;
//! purchases after a ghost are ghost conversions, not attributions; the
//! increment is the difference of the arms' means, and survives a snapshot.

use super::attribution::saw_b1;
use super::*;

/// `n` users in the holdout at `share`, and `n` not.
fn arms(share: f64, n: usize) -> (Vec<String>, Vec<String>) {
    let users = (0..).map(|i| format!("user-{i}"));
    let held = users
        .clone()
        .filter(|u| crate::chuanliu::holdout::in_holdout(u, share));
    let treated = users.filter(|u| !crate::chuanliu::holdout::in_holdout(u, share));
    (held.take(n).collect(), treated.take(n).collect())
}

fn held_engine() -> Engine {
    engine(
        &format!("{ALL}\nholdout_share = 0.5\nfrequency_cap = 2"),
        "",
    )
}

#[test]
fn a_held_out_user_is_served_the_page_without_the_flow_and_its_ghost_spends_cap_and_budget() {
    let (e, c, state) = (held_engine(), catalog(), RankState::new());
    let plain = engine("enabled = false", "");
    let params = &e.params().chuanliu;
    let (held, treated) = arms(0.5, 1);
    let (h, t) = (held[0].as_str(), treated[0].as_str());
    for u in [h, t] {
        let p = purchase(&format!("p-{u}"), u, Channel::Influencer, NOON);
        state.flow.apply(&p, params);
    }
    let later = Millis(NOON.0 + HOUR);
    let candidates = ["inf-live", "other-live"];
    let r = e
        .rank(&c, &state, &query(t, &candidates, 3, later))
        .unwrap();
    assert_eq!(flow_items(&r), ["b1-live"]);
    for round in 0..3 {
        let q = query(h, &candidates, 3, later);
        let r = e.rank(&c, &state, &q).unwrap();
        let without = plain.rank(&c, &RankState::new(), &q).unwrap();
        let ids = |r: &Ranking| {
            r.slots
                .iter()
                .map(|s| s.item_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&r), ids(&without), "round {round}");
        assert_eq!(
            (r.ineligible, r.unresolved),
            (0, 0),
            "the ghost's stream is not counted"
        );
    }
    let totals = state.flow.totals(later, params);
    assert_eq!(totals.counts.impressions, 1, "only the treated user's");
    // The cap of 2 stops the ghosts as it would stop impressions.
    assert_eq!(totals.holdout.ghost.impressions, 2);
    assert_eq!(totals.spent_today, 3);
    let affinity = &state.flow.affinities_of(h)[0].1;
    assert!(affinity.holdout && affinity.window_count == 2);
}

#[test]
fn a_ghost_the_flows_page_would_not_have_shown_is_not_counted() {
    let (e, c, state) = (held_engine(), catalog(), RankState::new());
    let params = &e.params().chuanliu;
    let (held, _) = arms(0.5, 1);
    let h = held[0].as_str();
    state
        .flow
        .apply(&purchase("p1", h, Channel::Influencer, NOON), params);
    let mut q = query(h, &["other-live"], 1, NOON);
    unbeatable(&mut q);
    let r = e.rank(&c, &state, &q).unwrap();
    assert_eq!(r.slots[0].item_id, "other-live");
    let totals = state.flow.totals(NOON, params);
    assert_eq!(
        (totals.holdout.ghost.impressions, totals.spent_today),
        (0, 0)
    );
    assert_eq!(
        state.flow.affinities_of(h)[0].1.window_count,
        0,
        "cap place given back"
    );
}

#[test]
fn purchases_after_a_ghost_are_ghost_conversions_and_the_increment_is_the_difference_of_means() {
    let (e, c, state) = (held_engine(), catalog(), RankState::new());
    let params = &e.params().chuanliu;
    let (held, treated) = arms(0.5, 3);
    let later = Millis(NOON.0 + HOUR);
    for u in held.iter().chain(&treated) {
        let p = purchase(&format!("p-{u}"), u, Channel::Influencer, NOON);
        state.flow.apply(&p, params);
        let q = query(u, &["inf-live", "other-live"], 3, later);
        e.rank(&c, &state, &q).unwrap();
        state.flow.apply(&saw_b1(u, later), params);
    }
    // Own-channel purchases (88 each): two treated users and one held out.
    let buy = |u: &str, n: usize| {
        let mut p = purchase(&format!("own-{u}-{n}"), u, Channel::BrandSelf, later);
        p.time = Millis(later.0 + n as i64);
        state.flow.apply(&p, params)
    };
    assert_eq!(buy(&treated[0], 0).attributed, Some(88.0));
    buy(&treated[1], 0);
    buy(&treated[1], 1);
    let ghost = buy(&held[0], 0);
    assert_eq!((ghost.attributed, ghost.ghost), (None, Some(88.0)));

    let totals = state.flow.totals(later, params);
    let h = totals.holdout;
    assert_eq!((h.treated_units, h.holdout_units), (3, 3));
    assert_eq!((h.ghost.impressions, h.ghost.conversions), (3, 1));
    assert_eq!(
        totals.counts.conversions, 3,
        "attribution counts the treated only"
    );
    let own = h.own_live_gmv.unwrap();
    // Treated outcomes 88, 176, 0; held out 88, 0, 0.
    assert!(
        (own.per_unit - (264.0 / 3.0 - 88.0 / 3.0)).abs() < 1e-6,
        "{own:?}"
    );
    assert!((own.total - 3.0 * own.per_unit).abs() < 1e-9);
    assert!(own.low < own.total && own.total < own.high);
    // Every channel: the same purchases (the users have one affinity each).
    assert!((h.total_gmv.unwrap().per_unit - own.per_unit).abs() < 1e-6);
    // The brand's figures are the whole's here, and a snapshot keeps them.
    let brand = &state.flow.brand_stats(&["b1".into()], later, params)[0];
    assert_eq!(brand.holdout, h);
    let restored = Flow::restore(state.flow.snapshot()).unwrap();
    assert_eq!(restored.totals(later, params).holdout, h);
    assert!(restored.affinities_of(&held[0])[0].1.holdout);
}

#[test]
fn affinities_made_with_the_holdout_off_are_treated_in_neither_arm() {
    let (off, on, state) = (engine(ALL, ""), held_engine(), RankState::new());
    let (held, treated) = arms(0.5, 4);
    let buy = |u: &str, id: &str, channel, e: &Engine| {
        let p = purchase(&format!("{id}-{u}"), u, channel, NOON);
        state.flow.apply(&p, &e.params().chuanliu)
    };
    // Before the holdout is switched on: affinities, no units.
    for u in held[..2].iter().chain(&treated[..2]) {
        buy(u, "before", Channel::Influencer, &off);
    }
    let units = |s: &RankState| {
        let h = s.flow.totals(NOON, &on.params().chuanliu).holdout;
        (h.treated_units, h.holdout_units)
    };
    assert_eq!(units(&state), (0, 0));
    assert!(
        !state.flow.affinities_of(&held[0])[0].1.holdout,
        "made with the holdout off: treated, whatever the hash says"
    );
    // Switched on: new affinities are units; the older ones' purchases
    // move neither arm.
    for u in held[2..].iter().chain(&treated[2..]) {
        buy(u, "after", Channel::Influencer, &on);
    }
    assert_eq!(units(&state), (2, 2));
    buy(&treated[0], "own", Channel::BrandSelf, &on);
    let own = state
        .flow
        .totals(NOON, &on.params().chuanliu)
        .holdout
        .own_live_gmv
        .unwrap();
    assert_eq!((own.per_unit, own.total), (0.0, 0.0), "{own:?}");
    buy(&treated[2], "own", Channel::BrandSelf, &on);
    let own = state.flow.totals(NOON, &on.params().chuanliu).holdout;
    assert!((own.own_live_gmv.unwrap().per_unit - 44.0).abs() < 1e-9);
}
