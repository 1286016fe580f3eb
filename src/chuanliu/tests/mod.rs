//! The flow through the engine. Rules checked:
//! - a purchase through an influencer makes the brand's live own stream
//!   appear for that user (injected, or boosted when proposed), with the
//!   chuanliu reason; not for other users, paused or unenrolled brands;
//! - the daily budget is never exceeded, even by concurrent ranks, and an
//!   impression that was not placed gives its budget back; its pacing
//!   follows the hours the flow had pages in (`pacing`);
//! - the per-user, per-brand cap holds; under a fleet scope only the
//!   brands held fleet-wide are shown, and unused holds are left to give
//!   back; affinities expire;
//! - a purchase in the brand's own channel after a flow impression is
//!   attributed, and the influencer's items then carry the reward reason;
//! - fairness floors still hold on pages with a flow stream;
//! - a snapshot restores the same state;
//! - holdout users get ghosts, not impressions (`holdout`);
//! - of several brands, the one worth most on the page is shown (`offers`).

use super::*;
use crate::catalog::Catalog;
use crate::catalog::tests::{goods, stream, streamer};
use crate::config::Config;
use crate::domain::{ItemKind, Reason, StreamerKind};
use crate::engine::{Candidate, Engine, RankQuery, RankState, Ranking};
use crate::model::Model;
use std::sync::Arc;

mod attribution;
mod holdout;
mod offers;
mod pacing;

const HOUR: i64 = 3_600_000;
/// Noon UTC: with the budget day starting at 00:00 UTC, half the day's
/// allowance is available.
const NOON: Millis = Millis(20_000 * Millis::MS_PER_DAY + 12 * HOUR);

/// Every brand takes part unless a test says otherwise.
const ALL: &str = "enroll_all_brands = true";

/// Recommend pages lift a flow stream by the boost alone, whatever the
/// user's taste for the brand.
const NO_TASTE: &str =
    "[chuanliu.scenes.recommend]\nmode = \"inject\"\nrelevance = 0.0\ntaste = 0.0";

fn engine_from(text: &str) -> Engine {
    let config = Config::from_toml(text, "test.toml", None).unwrap();
    Engine::new(config.engine, Arc::new(Model::embedded().unwrap()))
}

/// No quotas; `chuanliu` holds `[chuanliu]` keys (and subtables other than
/// the budget), `budget` keys of `[chuanliu.budget]`, whose day starts at
/// 00:00 UTC.
fn engine(chuanliu: &str, budget: &str) -> Engine {
    engine_from(&format!(
        "[quotas]\nscenes = []\n[chuanliu]\n{chuanliu}\n[chuanliu.budget]\nday_starts_at_utc_hour = 0\n{budget}\n"
    ))
}

/// An influencer `inf` selling brand b1's goods `g1`, and b1's own account
/// with the live stream `b1-live`; plus a few other streams.
fn catalog() -> Catalog {
    let mut c = Catalog::new();
    let mut own = streamer("b1-own", 200_000);
    own.kind = StreamerKind::BrandSelf;
    own.brand_id = Some("b1".into());
    c.upsert_streamers(
        vec![streamer("inf", 50_000), own, streamer("other", 300_000)],
        64,
    )
    .unwrap();
    c.upsert_goods(
        vec![goods("g1", "inf", 50.0), goods("g-own", "b1-own", 60.0)],
        64,
    )
    .unwrap();
    c.upsert_streams(
        vec![
            stream("inf-live", "inf", &["g1"]),
            stream("b1-live", "b1-own", &["g-own"]),
            stream("other-live", "other", &[]),
        ],
        64,
    )
    .unwrap();
    c
}

fn purchase(id: &str, user: &str, channel: Channel, at: Millis) -> Event {
    Event {
        event_id: id.into(),
        time: at,
        user_id: user.into(),
        kind: EventKind::Purchase {
            item_id: "g1".into(),
            brand_id: "b1".into(),
            seller_streamer_id: match channel {
                Channel::Influencer => "inf".into(),
                Channel::BrandSelf => "b1-own".into(),
                Channel::Unverified => "nobody".into(),
            },
            channel,
            price: 88.0,
            venue: None,
        },
    }
}

fn query(user: &str, candidates: &[&str], slots: u32, now: Millis) -> RankQuery {
    RankQuery {
        request_id: format!("r-{user}"),
        user_id: user.into(),
        scene: Scene::Recommend,
        slots,
        candidates: candidates
            .iter()
            .map(|id| Candidate::new(*id, ItemKind::LiveStream))
            .collect(),
        now,
    }
}

/// The catalog, and a state where u1 bought b1's goods through the
/// influencer at noon.
fn u1_bought(e: &Engine) -> (Catalog, RankState) {
    let state = RankState::new();
    state.flow.apply(
        &purchase("p1", "u1", Channel::Influencer, NOON),
        &e.params().chuanliu,
    );
    (catalog(), state)
}

/// Makes the query's first candidate one no flow boost can beat.
fn unbeatable(q: &mut RankQuery) {
    q.candidates[0].pctr = Some(1.0);
    q.candidates[0].pcvr = Some(1.0);
    q.candidates[0].price = Some(1e6);
}

fn flow_items(r: &Ranking) -> Vec<&str> {
    r.slots
        .iter()
        .filter(|s| s.reasons.contains(Reason::Chuanliu))
        .map(|s| s.item_id.as_str())
        .collect()
}

#[test]
fn a_buyer_through_an_influencer_gets_the_brands_own_stream_injected() {
    let (e, c, state) = (engine(ALL, ""), catalog(), RankState::new());
    let params = &e.params().chuanliu;
    let applied = state
        .flow
        .apply(&purchase("p1", "u1", Channel::Influencer, NOON), params);
    assert!(applied.affinity);
    let later = Millis(NOON.0 + HOUR);
    let r = e
        .rank(
            &c,
            &state,
            &query("u1", &["inf-live", "other-live"], 3, later),
        )
        .unwrap();
    assert_eq!(flow_items(&r), ["b1-live"]);
    let slot = r.slots.iter().find(|s| s.item_id == "b1-live").unwrap();
    assert_eq!(slot.candidate, 2, "after the request's own candidates");
    assert_eq!(slot.streamer_id.as_deref(), Some("b1-own"));
    // Another user has no affinity.
    let r = e
        .rank(
            &c,
            &state,
            &query("u2", &["inf-live", "other-live"], 3, later),
        )
        .unwrap();
    assert!(flow_items(&r).is_empty());
    assert!(r.slots.iter().all(|s| s.item_id != "b1-live"));
    assert_eq!(state.flow.totals(later, params).counts.impressions, 1);
}

/// The score of brand b1's own stream on a page that shows it.
fn b1_score(r: &Ranking) -> f64 {
    r.slots
        .iter()
        .find(|s| s.item_id == "b1-live")
        .unwrap()
        .score
}

#[test]
fn a_proposed_stream_is_boosted_by_the_scene_factor_and_boost_mode_never_injects() {
    let c = catalog();
    let plain = engine("enabled = false", "");
    let e = engine(ALL, "");
    let state = RankState::new();
    state.flow.apply(
        &purchase("p1", "u1", Channel::Influencer, NOON),
        &e.params().chuanliu,
    );
    let q = query("u1", &["inf-live", "b1-live"], 2, NOON);
    let before = plain.rank(&c, &RankState::new(), &q).unwrap();
    let after = e.rank(&c, &state, &q).unwrap();
    let scene = e.params().chuanliu.scene(Scene::Recommend);
    assert!(scene.boost > 1.0);
    // The proposed stream is one of the brand's items on the page; the
    // user's taste is still unobserved.
    let lift = scene.boost * (1.0 + scene.relevance);
    assert!((b1_score(&after) / b1_score(&before) - lift).abs() < 1e-9);
    assert_eq!(flow_items(&after), ["b1-live"]);

    let boost_only = engine(
        &format!("{ALL}\n[chuanliu.scenes.recommend]\nmode = \"boost\""),
        "",
    );
    let r = boost_only
        .rank(&c, &state, &query("u1", &["inf-live"], 3, NOON))
        .unwrap();
    assert_eq!(r.slots.len(), 1, "nothing injected in boost mode");
}

#[test]
fn the_boost_fades_with_the_affinity_in_the_log_domain() {
    let c = catalog();
    let plain = engine("enabled = false", "");
    let e = engine(&format!("{ALL}\n{NO_TASTE}"), "");
    let params = &e.params().chuanliu;
    let state = RankState::new();
    state
        .flow
        .apply(&purchase("p1", "u1", Channel::Influencer, NOON), params);
    let half_life = Millis((params.affinity.half_life_s * 1000.0) as i64);
    let ratio = |at: Millis| {
        let q = query("u1", &["inf-live", "b1-live"], 2, at);
        b1_score(&e.rank(&c, &state, &q).unwrap())
            / b1_score(&plain.rank(&c, &RankState::new(), &q).unwrap())
    };
    let boost = params.scene(Scene::Recommend).boost;
    // Weight 1 at the purchase, 1/2 one half-life later: boost, sqrt(boost).
    assert!((ratio(NOON) - boost).abs() < 1e-9);
    assert!((ratio(Millis(NOON.0 + half_life.0)) - boost.sqrt()).abs() < 1e-6);
    // Two purchases are not a stronger memory than one fresh one.
    state.flow.apply(
        &purchase(
            "p2",
            "u1",
            Channel::Influencer,
            Millis(NOON.0 + half_life.0),
        ),
        params,
    );
    assert!((ratio(Millis(NOON.0 + half_life.0)) - boost).abs() < 1e-9);
}

#[test]
fn only_enrolled_brands_take_part_and_a_paused_one_stops() {
    let c = catalog();
    let e_explicit = engine("", "");
    let state = RankState::new();
    let params = &e_explicit.params().chuanliu;
    state
        .flow
        .apply(&purchase("p1", "u1", Channel::Influencer, NOON), params);
    let rank = |user: &str| {
        e_explicit
            .rank(&c, &state, &query(user, &["inf-live"], 3, NOON))
            .unwrap()
    };
    assert!(flow_items(&rank("u1")).is_empty(), "not enrolled");
    let set = |enrollment| {
        state.flow.set_brand(&BrandSetting {
            brand_id: "b1".into(),
            enrollment,
            daily_impressions: None,
        })
    };
    set(Enrollment::Enrolled);
    assert_eq!(flow_items(&rank("u1")), ["b1-live"]);
    set(Enrollment::Paused);
    assert!(flow_items(&rank("u1")).is_empty(), "paused");
    let stats = state.flow.brand_stats(&["b1".into()], NOON, params);
    assert_eq!(stats[0].enrollment, Enrollment::Paused);
    assert!(!stats[0].active);
    assert_eq!(stats[0].counts.impressions, 1);
}

#[test]
fn the_frequency_cap_holds_per_user_and_brand() {
    let e = engine(&format!("{ALL}\nfrequency_cap = 3"), "");
    let (c, state) = u1_bought(&e);
    let shown = (0..10)
        .filter(|i| {
            let r = e
                .rank(
                    &c,
                    &state,
                    &query("u1", &["inf-live"], 3, Millis(NOON.0 + i * 60_000)),
                )
                .unwrap();
            !flow_items(&r).is_empty()
        })
        .count();
    assert_eq!(shown, 3);
    // The window (24 h) passes: the brand may be shown again.
    let r = e
        .rank(
            &c,
            &state,
            &query("u1", &["inf-live"], 3, Millis(NOON.0 + 25 * HOUR)),
        )
        .unwrap();
    assert_eq!(flow_items(&r), ["b1-live"]);
}

#[test]
fn under_a_fleet_scope_only_held_brands_are_shown_and_the_held_place_is_the_cap() {
    let e = engine(&format!("{ALL}\nfrequency_cap = 1"), "");
    let (c, state) = u1_bought(&e);
    let q = query("u1", &["inf-live"], 3, NOON);
    let wanted = e.flow_wanted(&c, &state.flow, &q);
    let b1 = state.flow.brands.get("b1").unwrap();
    assert_eq!(
        wanted,
        [Wanted {
            brand: b1,
            name: "b1".into()
        }]
    );
    // Nothing held (the fleet's count is full, or away): nothing shown.
    let none = CapHolds::none();
    let r = e
        .rank_capped(&c, &state, &q, CapScope::Fleet(&none))
        .unwrap();
    assert!(flow_items(&r).is_empty());
    // Held: shown, and the place is used. This process's own count is at
    // the cap after it, yet a second held place is shown too: the fleet's
    // count decides.
    for _ in 0..2 {
        let holds = CapHolds::new([(b1, "b1".into(), "w".into())]);
        let r = e
            .rank_capped(&c, &state, &q, CapScope::Fleet(&holds))
            .unwrap();
        assert_eq!(flow_items(&r), ["b1-live"]);
        assert_eq!(holds.unused().count(), 0);
    }
    // The process's own count says capped: no more without a fleet scope.
    assert!(flow_items(&e.rank(&c, &state, &q).unwrap()).is_empty());
}

#[test]
fn a_held_place_the_page_does_not_use_is_left_unused_to_give_back() {
    let e = engine(ALL, "");
    let (c, state) = u1_bought(&e);
    let mut q = query("u1", &["inf-live"], 1, NOON);
    unbeatable(&mut q);
    let b1 = state.flow.brands.get("b1").unwrap();
    let holds = CapHolds::new([(b1, "b1".into(), "w".into())]);
    let r = e
        .rank_capped(&c, &state, &q, CapScope::Fleet(&holds))
        .unwrap();
    assert!(flow_items(&r).is_empty());
    let unused: Vec<&str> = holds.unused().map(|h| h.name.as_str()).collect();
    assert_eq!(unused, ["b1"]);
}

#[test]
fn nothing_is_wanted_for_a_user_without_affinity_a_refused_query_or_the_flow_off() {
    let (e, c, state) = (engine(ALL, ""), catalog(), RankState::new());
    let params = &e.params().chuanliu;
    assert!(
        e.flow_wanted(&c, &state.flow, &query("u1", &["inf-live"], 3, NOON))
            .is_empty()
    );
    state
        .flow
        .apply(&purchase("p1", "u1", Channel::Influencer, NOON), params);
    let mut refused = query("u1", &["inf-live"], 3, NOON);
    refused.slots = 0;
    assert!(
        e.flow_wanted(&c, &state.flow, &refused).is_empty(),
        "the limits refuse it"
    );
    assert!(
        !e.flow_wanted(&c, &state.flow, &query("u1", &["inf-live"], 3, NOON))
            .is_empty()
    );
    let off = engine(&format!("{ALL}\nenabled = false"), "");
    assert!(
        off.flow_wanted(&c, &state.flow, &query("u1", &["inf-live"], 3, NOON))
            .is_empty()
    );
}

#[test]
fn affinities_expire_after_their_ttl() {
    let e = engine(
        &format!("{ALL}\n[chuanliu.affinity]\nttl_hours = 2.0\nmin_weight = 0.0"),
        "",
    );
    let (c, state) = (catalog(), RankState::new());
    state.flow.apply(
        &purchase("p1", "u1", Channel::Influencer, NOON),
        &e.params().chuanliu,
    );
    let at = |h: i64| query("u1", &["inf-live"], 3, Millis(NOON.0 + h * HOUR));
    assert_eq!(
        flow_items(&e.rank(&c, &state, &at(1)).unwrap()),
        ["b1-live"]
    );
    assert!(flow_items(&e.rank(&c, &state, &at(3)).unwrap()).is_empty());
    let totals = state
        .flow
        .sweep(Millis(NOON.0 + 3 * HOUR), &e.params().chuanliu);
    assert_eq!(totals.active_affinities, 0);
}

/// Ranks one page for each of `users` users with affinities, from
/// `threads` threads at once; returns the flow slots served.
fn flood(e: &Engine, c: &Catalog, state: &RankState, users: usize, threads: usize) -> usize {
    let params = &e.params().chuanliu;
    for u in 0..users {
        let user = format!("u{u}");
        state.flow.apply(
            &purchase(&format!("p{u}"), &user, Channel::Influencer, NOON),
            params,
        );
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..users)
                        .step_by(threads)
                        .map(|u| {
                            let q = query(&format!("u{u}"), &["inf-live"], 3, NOON);
                            flow_items(&e.rank(c, state, &q).unwrap()).len()
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

#[test]
fn the_daily_budget_is_never_exceeded_by_concurrent_ranks() {
    // 240 a day, uniform: 120 allowed by noon.
    let e = engine(ALL, "daily_impressions = 240");
    let (c, state) = (catalog(), RankState::new());
    let served = flood(&e, &c, &state, 400, 8);
    assert_eq!(served, 120, "exactly the paced allowance, no more");
    let totals = state.flow.totals(NOON, &e.params().chuanliu);
    assert_eq!(totals.spent_today, 120);
    assert_eq!(totals.counts.impressions, 120);
    assert_eq!(totals.remaining_today, 120);
}

#[test]
fn a_brands_own_budget_caps_it_below_the_global_one() {
    let (e, c, state) = (engine(ALL, ""), catalog(), RankState::new());
    state.flow.set_brand(&BrandSetting {
        brand_id: "b1".into(),
        enrollment: Enrollment::Enrolled,
        daily_impressions: Some(48),
    });
    assert_eq!(flood(&e, &c, &state, 100, 4), 24);
    let stats = state.flow.brand_stats(&[], NOON, &e.params().chuanliu);
    assert_eq!(stats[0].brand_id, "b1");
    assert_eq!(stats[0].spent_today, 24);
    assert_eq!(
        state.flow.totals(NOON, &e.params().chuanliu).spent_today,
        24,
        "what the brand refused was given back to the global budget"
    );
}

#[test]
fn an_impression_that_is_not_placed_gives_its_budget_and_cap_place_back() {
    let e = engine(ALL, "");
    let params = &e.params().chuanliu;
    let (c, state) = u1_bought(&e);
    let mut q = query("u1", &["inf-live"], 1, NOON);
    unbeatable(&mut q);
    let r = e.rank(&c, &state, &q).unwrap();
    assert_eq!(r.slots[0].item_id, "inf-live");
    assert!(flow_items(&r).is_empty());
    assert_eq!(state.flow.totals(NOON, params).spent_today, 0);
    let a = &state.flow.affinities_of("u1")[0].1;
    assert_eq!((a.window_count, a.shown), (0, Secs(0)));
}

#[test]
fn tier_floors_still_hold_on_a_page_with_a_flow_stream() {
    // The brand's account is mid-tier; floors demand a small streamer in the
    // first two slots, and `inf` is the only small one.
    let text = r#"
[quotas]
scenes = ["recommend"]
[quotas.floors]
policy = "proportional"
rounding = "ceil"
top = 0.0
mid = 0.0
small = 0.5
[quotas.targets]
enabled = false
[quotas.spreading]
strength = 0.0
[chuanliu]
enroll_all_brands = true
"#;
    let e = engine_from(text);
    let (c, state) = (catalog(), RankState::new());
    state.flow.apply(
        &purchase("p1", "u1", Channel::Influencer, NOON),
        &e.params().chuanliu,
    );
    let mut q = query("u1", &["other-live", "inf-live"], 2, NOON);
    q.candidates[0].pctr = Some(0.9);
    q.candidates[0].pcvr = Some(0.9);
    q.candidates[1].pctr = Some(0.0001);
    let r = e.rank(&c, &state, &q).unwrap();
    let items: Vec<&str> = r.slots.iter().map(|s| s.item_id.as_str()).collect();
    assert!(
        items.contains(&"inf-live"),
        "the small floor holds: {items:?}"
    );
    assert_eq!(r.slots.len(), 2);
}

#[test]
fn a_snapshot_restores_the_same_state() {
    let (e, c, state) = (engine(ALL, ""), catalog(), RankState::new());
    let params = &e.params().chuanliu;
    state.flow.set_brand(&BrandSetting {
        brand_id: "b1".into(),
        enrollment: Enrollment::Enrolled,
        daily_impressions: Some(1000),
    });
    flood(&e, &c, &state, 20, 2);
    state
        .flow
        .apply(&purchase("x", "u3", Channel::BrandSelf, NOON), params);
    state.flow.sweep(NOON, params);
    let snapshot = state.flow.snapshot();
    let bytes = postcard::to_stdvec(&snapshot).unwrap();
    let restored = Flow::restore(postcard::from_bytes(&bytes).unwrap()).unwrap();
    let again = restored.snapshot();
    // The affinity shards are hash maps: compare them entry by entry below.
    assert_eq!(
        (
            again.brands,
            again.registry,
            again.budget,
            again.rewards,
            again.totals
        ),
        (
            snapshot.brands,
            snapshot.registry,
            snapshot.budget,
            snapshot.rewards,
            snapshot.totals
        )
    );
    for u in 0..20 {
        let user = format!("u{u}");
        assert_eq!(
            restored.affinities_of(&user),
            state.flow.affinities_of(&user)
        );
    }
    restored.sweep(NOON, params);
    assert_eq!(
        restored.totals(NOON, params),
        state.flow.totals(NOON, params)
    );
    assert_eq!(
        restored.brand_stats(&[], NOON, params),
        state.flow.brand_stats(&[], NOON, params)
    );
    assert_eq!(restored.affinities_of("u3"), state.flow.affinities_of("u3"));
}
