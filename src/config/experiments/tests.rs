//! Rules checked: arms take their shares of users by a salted hash,
//! stable and independent between experiments; ramping an arm moves users
//! between it and the base only; every variant is
//! validated whole; bad shares, unknown keys, restart-only keys, keys of
//! state every arm shares, and one key in two experiments are refused
//! naming the key.

use crate::config::{Config, ConfigError};

const TWO_ARMS: &str = r#"
[[experiments]]
name = "targets"
[[experiments.arms]]
name = "a"
share = 0.25
[experiments.arms.overlay.quotas.targets]
top = 0.10
mid = 0.50
small = 0.40
[[experiments.arms]]
name = "b"
share = 0.25
[experiments.arms.overlay.quotas.spreading]
strength = 0.5
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "exp.toml", None)
}

fn refused(text: &str) -> (String, String) {
    match parse(text) {
        Err(ConfigError::Invalid { key, reason, .. }) => (key, reason),
        other => panic!("expected a refused config, got {other:?}"),
    }
}

#[test]
fn arms_take_their_share_of_users_stably_and_rank_under_their_overlay() {
    let config = parse(TWO_ARMS).unwrap();
    let e = &config.experiments;
    let labels: Vec<&str> = e.variants().iter().map(|v| v.label.as_str()).collect();
    assert_eq!(labels, ["base", "targets:a", "targets:b"]);
    let a = e.find("targets:a").unwrap();
    assert_eq!(a.engine.quotas.exposure.targets, Some([0.10, 0.50, 0.40]));
    assert_eq!(
        a.engine.quotas.exposure.spread_strength,
        config.engine.quotas.exposure.spread_strength
    );
    let b = e.find("targets:b").unwrap();
    assert_eq!(b.engine.quotas.exposure.spread_strength, 0.5);
    assert_eq!(e.variants()[0].engine, config.engine);
    let mut counts = [0usize; 3];
    for u in 0..40_000 {
        counts[e.variant_of(&format!("user-{u}"))] += 1;
    }
    let share = |n: usize| n as f64 / 40_000.0;
    assert!((share(counts[1]) - 0.25).abs() < 0.01, "{counts:?}");
    assert!((share(counts[2]) - 0.25).abs() < 0.01, "{counts:?}");
    // The same text parsed again (a reload, a restart, another replica)
    // puts every user in the same arm; so does a change elsewhere.
    let again = parse(&format!("[limits]\nmax_candidates = 1500\n{TWO_ARMS}")).unwrap();
    for u in 0..2_000 {
        let user = format!("user-{u}");
        assert_eq!(again.experiments.variant_of(&user), e.variant_of(&user));
    }
}

#[test]
fn experiments_are_independent_layers() {
    let text = format!(
        "{TWO_ARMS}\n[[experiments]]\nname = \"flow\"\n[[experiments.arms]]\nname = \"boost8\"\nshare = 0.5\n[experiments.arms.overlay.chuanliu.scenes.recommend]\nmode = \"inject\"\nboost = 8.0\n"
    );
    let config = parse(&text).unwrap();
    let e = &config.experiments;
    assert_eq!(e.variants().len(), 3 * 2);
    let both = e.find("targets:a,flow:boost8").unwrap();
    assert_eq!(
        both.engine.quotas.exposure.targets,
        Some([0.10, 0.50, 0.40])
    );
    assert_eq!(
        both.engine
            .chuanliu
            .scene(crate::domain::Scene::Recommend)
            .boost,
        8.0
    );
    // Being in an arm of one says nothing of the other: a quarter of
    // each half of "flow" is in "targets:a".
    let (mut in_flow, mut in_both) = (0usize, 0usize);
    for u in 0..40_000 {
        let label = &e.variants()[e.variant_of(&format!("u{u}"))].label;
        if label.contains("flow:boost8") {
            in_flow += 1;
            in_both += usize::from(label.contains("targets:a"));
        }
    }
    let within = in_both as f64 / in_flow as f64;
    assert!((within - 0.25).abs() < 0.015, "{within}");
}

#[test]
fn an_arm_wider_than_its_slice_is_refused() {
    let text = TWO_ARMS.replace(
        "share = 0.25\n[experiments.arms.overlay.quotas.spreading]",
        "share = 0.6\n[experiments.arms.overlay.quotas.spreading]",
    );
    let (key, reason) = refused(&text);
    assert_eq!(key, "experiments.targets.arms.b.share");
    assert!(reason.contains("more than 1/2"), "{reason}");
    // Up to its slice is fine, and one arm may take everyone.
    assert!(parse(&text.replace("share = 0.6", "share = 0.5")).is_ok());
    let one = "[[experiments]]\nname = \"all\"\n[[experiments.arms]]\nname = \"x\"\nshare = 1.0\n[experiments.arms.overlay.quotas.spreading]\nstrength = 0.5\n";
    let all = parse(one).unwrap();
    assert!((0..1000).all(|u| all.experiments.variant_of(&format!("u{u}")) == 1));
}

#[test]
fn ramping_an_arm_moves_users_between_it_and_the_base_only() {
    let before = parse(TWO_ARMS).unwrap();
    let up = parse(&TWO_ARMS.replacen("share = 0.25", "share = 0.45", 1)).unwrap();
    let down = parse(&TWO_ARMS.replacen("share = 0.25", "share = 0.05", 1)).unwrap();
    let label = |c: &Config, u: &str| {
        let e = &c.experiments;
        e.variants()[e.variant_of(u)].label.clone()
    };
    let (mut joined, mut left) = (0, 0);
    for u in 0..20_000 {
        let user = format!("user-{u}");
        let (was, grown, shrunk) = (
            label(&before, &user),
            label(&up, &user),
            label(&down, &user),
        );
        // Arm b's users stay in b, and b gains no one.
        assert_eq!(was == "targets:b", grown == "targets:b", "{user}");
        assert_eq!(was == "targets:b", shrunk == "targets:b", "{user}");
        // Arm a grows from the base and shrinks into it.
        if grown != was {
            assert_eq!((was.as_str(), grown.as_str()), ("base", "targets:a"));
            joined += 1;
        }
        if shrunk != was {
            assert_eq!((was.as_str(), shrunk.as_str()), ("targets:a", "base"));
            left += 1;
        }
    }
    // 0.20 and 0.20 of the users, give or take.
    assert!((joined as f64 / 20_000.0 - 0.20).abs() < 0.015, "{joined}");
    assert!((left as f64 / 20_000.0 - 0.20).abs() < 0.015, "{left}");
}

#[test]
fn an_unknown_key_in_an_overlay_names_its_arm() {
    let text = TWO_ARMS.replace("strength = 0.5", "strenght = 0.5");
    let (key, _) = refused(&text);
    assert_eq!(
        key,
        "experiments.targets.arms.b.overlay.quotas.spreading.strenght"
    );
}

#[test]
fn an_invalid_value_in_an_overlay_names_its_arm() {
    let text = TWO_ARMS.replace("strength = 0.5", "strength = -1.0");
    let (key, _) = refused(&text);
    assert_eq!(
        key,
        "experiments.targets.arms.b.overlay.quotas.spreading.strength"
    );
}

#[test]
fn keys_an_arm_may_not_set_are_refused_with_why() {
    for (overlay, key, why) in [
        (
            "[experiments.arms.overlay.server]\nlisten = \"0.0.0.0:1\"",
            "server.listen",
            "read once at start",
        ),
        (
            "[experiments.arms.overlay.server]\nrequest_timeout_seconds = 1.0",
            "server.request_timeout_seconds",
            "per request",
        ),
        (
            "[experiments.arms.overlay.chuanliu.budget]\ndaily_impressions = 5",
            "chuanliu.budget.daily_impressions",
            "every arm shares",
        ),
    ] {
        let text = TWO_ARMS.replace(
            "[experiments.arms.overlay.quotas.spreading]\nstrength = 0.5",
            overlay,
        );
        let (k, reason) = refused(&text);
        assert_eq!(k, format!("experiments.targets.arms.b.overlay.{key}"));
        assert!(reason.contains(why), "{key}: {reason}");
    }
}

#[test]
fn one_key_in_two_experiments_is_refused() {
    let text = format!(
        "{TWO_ARMS}\n[[experiments]]\nname = \"again\"\n[[experiments.arms]]\nname = \"c\"\nshare = 0.5\n[experiments.arms.overlay.quotas.spreading]\nstrength = 1.0\n"
    );
    let (key, reason) = refused(&text);
    assert_eq!(
        key,
        "experiments.again.arms.c.overlay.quotas.spreading.strength"
    );
    assert!(reason.contains("`targets`"), "{reason}");
}

#[test]
fn names_are_plain_and_unique() {
    let (key, _) = refused(&TWO_ARMS.replace("name = \"a\"", "name = \"A b\""));
    assert_eq!(key, "experiments.targets.arms.A b");
    let (key, _) = refused(&TWO_ARMS.replace("name = \"a\"", "name = \"b\""));
    assert_eq!(key, "experiments.targets.arms.b");
    let (key, _) = refused(&TWO_ARMS.replace("name = \"targets\"", "name = \"base\""));
    assert_eq!(key, "experiments[0].name");
}
