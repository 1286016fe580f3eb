use super::*;
use crate::config::Config;
use crate::model::Model;
use crate::sim::{CatalogSpec, SimParams, generate};
use std::sync::Arc;

/// A 200-streamer catalog and a world of 40 users drawn with `seed`.
fn small_world(seed: u64) -> (Catalog, World) {
    let spec = CatalogSpec {
        streamers: 200,
        ..CatalogSpec::default()
    };
    let start = generate(&spec).unwrap();
    let world = World::build(&start, SimParams::new(seed, 40), spec.as_of);
    (start, world)
}

fn engine(toml: &str) -> Engine {
    let config = Config::from_toml(toml, "t.toml", None).unwrap();
    Engine::new(config.engine, Arc::new(Model::embedded().unwrap()))
}

#[test]
fn a_comparison_has_a_row_per_config_and_prints_what_was_asked() {
    let (start, world) = small_world(3);
    let engines = vec![
        (
            "default".to_string(),
            engine("[tiers]\ntop_min_followers = 5_000_000\n"),
        ),
        ("no-quotas".to_string(), engine("[quotas]\nscenes = []\n")),
    ];
    let extras = Extras {
        hourly: true,
        ..Extras::default()
    };
    let measured = [Scene::Recommend];
    let c = compare(
        &world,
        &start,
        &engines,
        1,
        &measured,
        Design::default(),
        extras,
    );
    assert_eq!(c.rows.len(), 2);
    assert_eq!(c.hourly.len(), 2);
    assert!(c.frontier.is_none());
    assert!(c.rows[0].measured_requests > 0, "traffic was served");
    let text = c.to_string();
    assert!(
        text.contains("default: exposure share per local hour"),
        "{text}"
    );
    assert!(text.contains("no-quotas"), "{text}");
}

#[test]
fn each_config_is_measured_against_the_frontier_of_its_own_pages() {
    let (start, world) = small_world(5);
    let targets = "[quotas.targets]\nenabled = true\ntop = 0.04\nmid = 0.5\nsmall = 0.46\n";
    let engines = vec![
        ("no-quotas".to_string(), engine("[quotas]\nscenes = []\n")),
        (
            "spread".to_string(),
            engine(&format!("{targets}[quotas.spreading]\nstrength = 0.5\n")),
        ),
        ("targets".to_string(), engine(targets)),
    ];
    let extras = Extras {
        frontier: true,
        ..Extras::default()
    };
    let c = compare(
        &world,
        &start,
        &engines,
        1,
        &[Scene::Recommend],
        Design::default(),
        extras,
    );
    // The first config's frontier is printed even without targets.
    assert!(c.frontier.is_some());
    assert_eq!(c.rows[0].vs_frontier, None, "no targets, no frontier");
    // Spreading lands inside its own pages' frontier, whose best
    // allocation at its Gini bounds it (up to the solver's tolerance and
    // the linear interpolation); without spreading a config sits at the
    // frontier's edge, inside or a hair outside.
    assert!(c.rows[1].vs_frontier.is_some(), "{:?}", c.rows[1]);
    for row in &c.rows[1..] {
        if let Some(ratio) = row.vs_frontier {
            assert!(ratio <= 1.01 && ratio > 0.8, "{}: {ratio}", row.name);
        }
    }
}

#[test]
fn a_paired_lift_is_the_relative_change_with_the_standard_error_of_the_differences() {
    let same = Lift::paired(&[2.0, 2.0, 2.0, 2.0], &[1.0; 4]).unwrap();
    assert_eq!((same.change, same.standard_error), (1.0, 0.0));
    // Differences 2 and 0: mean 1, variance 2, so the total's standard
    // error is sqrt(2 * 2) over the baseline's 2.
    let spread = Lift::paired(&[3.0, 1.0], &[1.0, 1.0]).unwrap();
    assert_eq!((spread.change, spread.standard_error), (1.0, 1.0));
    assert_eq!(spread.to_string(), "+100.0±100.0");
    assert_eq!(Lift::paired(&[1.0], &[0.0]), None);
}
