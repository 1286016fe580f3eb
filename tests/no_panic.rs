//! The server never panics on input: arbitrary `RankRequest`s (any strings,
//! enum values, counts and floats, NaN and infinities included) go through
//! the wire conversion and the engine and come out as a ranking or a field
//! error, never a crash.

use fairflow::catalog::Catalog;
use fairflow::config::Config;
use fairflow::domain::Millis;
use fairflow::engine::RankState;
use fairflow::engine::{Engine, RankError};
use fairflow::model::Model;
use fairflow::proto::v1 as pb;
use fairflow::server::convert;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

fn fixture() -> &'static (Engine, Catalog) {
    static FIXTURE: OnceLock<(Engine, Catalog)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config =
            Config::from_toml("[limits]\nmax_candidates = 40\nmax_slots = 30\n", "t", None)
                .unwrap();
        let engine = Engine::new(config.engine, Arc::new(Model::embedded().unwrap()));
        (engine, Catalog::embedded_demo(128).unwrap())
    })
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        -2.0f64..2.0,
        any::<f64>(),
    ]
}

fn any_id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("g000001".to_string()),
        Just("live-s00235".to_string()),
        Just("s00008".to_string()),
        "[a-z0-9-]{1,12}",
        ".{0,200}",
    ]
}

fn any_candidate() -> impl Strategy<Value = pb::Candidate> {
    (
        any_id(),
        -1i32..4,
        proptest::option::of(any_id()),
        proptest::option::of(any_id()),
        proptest::option::of(any_f64()),
        proptest::option::of(any_f64()),
        proptest::option::of(any_f64()),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(item_id, kind, streamer_id, brand_id, price, pctr, pcvr, user_follows)| {
                pb::Candidate {
                    item_id,
                    kind,
                    streamer_id,
                    brand_id,
                    price,
                    pctr,
                    pcvr,
                    user_follows,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn arbitrary_requests_rank_or_are_refused(
        request_id in any_id(),
        user_id in any_id(),
        scene in -1i32..7,
        slots in prop_oneof![Just(0u32), 1u32..40, Just(u32::MAX)],
        candidates in proptest::collection::vec(any_candidate(), 0..50),
        time in proptest::option::of(prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()]),
    ) {
        let (engine, catalog) = fixture();
        let req = pb::RankRequest { request_id, user_id, scene, slots, candidates, request_time_ms: time };
        let query = match convert::rank_query(req, Millis(1_795_132_800_000)) {
            Ok(q) => q,
            Err(e) => {
                prop_assert!(!e.field.is_empty());
                return Ok(());
            }
        };
        match engine.rank(catalog, &RankState::new(), &query) {
            Ok(r) => {
                prop_assert!(r.slots.len() <= query.slots as usize);
                prop_assert!(r.slots.iter().all(|s| s.score.is_finite() && s.score >= 0.0));
            }
            Err(RankError::InvalidArgument(e)) => prop_assert!(!e.field.is_empty()),
        }
    }
}

fn valid_candidate() -> impl Strategy<Value = pb::Candidate> {
    (
        prop_oneof![
            Just("g000001"),
            Just("g000002"),
            Just("live-s00235"),
            Just("live-s00001"),
            Just("nowhere")
        ],
        1i32..3,
        proptest::option::of(prop_oneof![
            Just("s00008".to_string()),
            Just("ghost".to_string())
        ]),
        proptest::option::of(prop_oneof![
            Just(0.0),
            Just(fairflow::domain::MAX_PRICE),
            0.0f64..1e6
        ]),
        proptest::option::of(0.0f64..=1.0),
        proptest::option::of(0.0f64..=1.0),
    )
        .prop_map(|(id, kind, streamer_id, price, pctr, pcvr)| pb::Candidate {
            item_id: id.to_string(),
            kind,
            streamer_id,
            brand_id: None,
            price,
            pctr,
            pcvr,
            user_follows: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Mostly valid requests, extreme times and magnitudes: every one ranks.
    #[test]
    fn valid_requests_with_extreme_values_rank(
        scene in 1i32..6,
        slots in 1u32..30,
        candidates in proptest::collection::vec(valid_candidate(), 0..30),
        time in proptest::option::of(prop_oneof![
            Just(*fairflow::domain::PLAUSIBLE_TIMES.start()),
            Just(*fairflow::domain::PLAUSIBLE_TIMES.end()),
            fairflow::domain::PLAUSIBLE_TIMES,
        ]),
    ) {
        let (engine, catalog) = fixture();
        // Duplicate ids are a refusal, not a crash; keep the first of each.
        let mut seen = std::collections::HashSet::new();
        let candidates: Vec<_> = candidates.into_iter().filter(|c| seen.insert((c.item_id.clone(), c.kind))).collect();
        let req = pb::RankRequest {
            request_id: "r".into(),
            user_id: "u".into(),
            scene,
            slots,
            candidates,
            request_time_ms: time,
        };
        let query = convert::rank_query(req, Millis(0)).unwrap();
        let ranking = engine.rank(catalog, &RankState::new(), &query).unwrap();
        prop_assert!(ranking.slots.len() <= slots as usize);
        prop_assert!(ranking.slots.iter().all(|s| s.score.is_finite() && s.score >= 0.0));
    }
}
