//! The series kept for `Rank` against the ones a lookup finds.

use super::*;

/// The value of one series in the rendered text, 0 when absent.
fn sample(series: &str) -> f64 {
    handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn the_series_kept_for_rank_are_the_ones_a_lookup_finds() {
    let ok = "fairflow_rpc_requests_total{rpc=\"Rank\",scene=\"shop\",code=\"OK\"}";
    let none = "fairflow_rpc_requests_total{rpc=\"Rank\",scene=\"\",code=\"OK\"}";
    let latency = "fairflow_rpc_duration_seconds_count{rpc=\"Rank\",scene=\"shop\"}";
    let before = [sample(ok), sample(none), sample(latency)];
    let elapsed = Duration::from_micros(80);
    record_rpc("Rank", Some(Scene::Shop), tonic::Code::Ok, elapsed);
    record_rpc("Rank", Some(Scene::Shop), tonic::Code::Ok, elapsed);
    record_rpc("Rank", None, tonic::Code::Ok, elapsed);
    // Other codes and methods are looked up: the same series family.
    record_rpc("Rank", Some(Scene::Shop), tonic::Code::Internal, elapsed);
    let after = [sample(ok), sample(none), sample(latency)];
    assert_eq!(after[0] - before[0], 2.0);
    assert_eq!(after[1] - before[1], 1.0);
    assert_eq!(after[2] - before[2], 3.0);

    let served = |arm: &str| {
        format!("fairflow_exposure_served_total{{scene=\"shop\",tier=\"top\",arm=\"{arm}\"}}")
    };
    let before = [sample(&served("base")), sample(&served("b-test"))];
    let ranking = Ranking {
        request_id: "r".into(),
        slots: vec![crate::engine::Slot {
            position: 1,
            candidate: 0,
            item_id: "g1".into(),
            kind: crate::domain::ItemKind::Goods,
            streamer_id: None,
            tier: Tier::Top,
            score: 1.0,
            expected_value: 1.0,
            exposure: 0.5,
            pctr: 0.1,
            pcvr: 0.1,
            reasons: Default::default(),
            resolved: true,
        }],
        config_version: String::new(),
        model_version: String::new(),
        unresolved: 0,
        ineligible: 0,
    };
    record_ranking(Scene::Shop, crate::engine::BASE, 10, &ranking);
    record_ranking(Scene::Shop, "b-test", 10, &ranking);
    let after = [sample(&served("base")), sample(&served("b-test"))];
    assert_eq!([after[0] - before[0], after[1] - before[1]], [500.0, 500.0]);

    set_in_flight(7);
    assert_eq!(sample("fairflow_requests_in_flight"), 7.0);
}
