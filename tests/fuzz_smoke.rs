//! A short smoke of the fuzz targets' properties (`fairflow::fuzz`, run at
//! length by `cargo fuzz`, docs/fuzzing.md): random and mutated inputs for
//! each, and every input a fuzzer ever failed on, from `fuzz/regressions/`.

use proptest::prelude::*;

/// The regression inputs of one target.
fn regressions(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn every_kept_failure_input_now_passes() {
    type Check = fn(&[u8]);
    let targets: [(&str, Check); 6] = [
        ("rank", fairflow::fuzz::rank),
        ("wal", fairflow::fuzz::wal),
        ("config", fairflow::fuzz::config),
        ("traffic", fairflow::fuzz::traffic),
        ("catalog", fairflow::fuzz::catalog),
        ("impressions", fairflow::fuzz::impressions),
    ];
    for (name, check) in targets {
        for input in regressions(name) {
            check(&input);
        }
    }
}

/// Bytes near the valid shape: a valid encoding with a few bytes changed.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len().max(1);
    proptest::collection::vec((0..len, any::<u8>()), 0..6).prop_map(move |edits| {
        let mut bytes = valid.clone();
        for (i, b) in edits {
            if i < bytes.len() {
                bytes[i] = b;
            }
        }
        bytes
    })
}

fn a_segment() -> Vec<u8> {
    let mut bytes = Vec::new();
    fairflow::wal::frame::segment_header(&mut bytes, 1);
    for i in 0..6 {
        fairflow::wal::frame::frame(&mut bytes, format!("{{\"record\":{i}}}").as_bytes());
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn wal(bytes in prop_oneof![mutated(a_segment()), proptest::collection::vec(any::<u8>(), 0..300)]) {
        fairflow::fuzz::wal(&bytes);
    }

    #[test]
    fn config(cut in 0usize..fairflow::config::DEFAULT_TOML.len(), edits in mutated(b"[tiers]\nmid_min_followers = 200_000\n".to_vec())) {
        fairflow::fuzz::config(&fairflow::config::DEFAULT_TOML.as_bytes()[..cut]);
        fairflow::fuzz::config(&edits);
    }

    #[test]
    fn rank(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        fairflow::fuzz::rank(&bytes);
    }

    #[test]
    fn traffic(bytes in mutated(br#"{"type":"purchase","event_id":"e1","time":1795132800000,"user_id":"u","goods_id":"g","brand_id":"b","seller_id":"s","channel":"influencer","price":9.5}"#.to_vec())) {
        fairflow::fuzz::traffic(&bytes);
    }

    #[test]
    fn traffic_pages(bytes in mutated(br#"{"type":"rank","time":1,"request_id":"r","user_id":"u","scene":"mall","slots":3,"candidates":[],"served":[{"item_id":"g1","kind":"goods","position":1,"propensity":0.5,"propensity_kind":"marginal"},{"item_id":"g2","kind":"goods","position":2}]}"#.to_vec())) {
        fairflow::fuzz::traffic(&bytes);
    }

    /// A rank line whose candidates the scan reads by hand, mutated: the
    /// scan and the generic way must agree on every variant.
    #[test]
    fn traffic_candidates(bytes in mutated(br#"{"type":"rank","time":1,"request_id":"r","user_id":"u","scene":"mall","slots":3,"candidates":[{"item_id":"g1","kind":"goods","price":12.5,"pctr":-0.0},{"item_id":"l2","kind":"live_stream","streamer_id":"s1","brand_id":"b1","pcvr":1e-3,"user_follows":true}],"served":[{"item_id":"g1","kind":"goods","position":1}]}"#.to_vec())) {
        fairflow::fuzz::traffic(&bytes);
    }

    #[test]
    fn impressions(bytes in mutated(b"t,item,pos,click,p,req\n1000,a,1,0,0.5,r1\n1000,b,2,1,0.25,r1\n2019-11-24 00:00:17.9+00:00,a,3,1,1,r2\n".to_vec())) {
        fairflow::fuzz::impressions(&bytes);
    }

    #[test]
    fn catalog(which in 0u8..3, bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut input = vec![which];
        input.extend(bytes);
        fairflow::fuzz::catalog(&input);
    }
}
