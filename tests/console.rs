//! The console page in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads `/console` from a server
//! under load. Rules checked:
//! - it renders the tier shares of every arm, equal to `GetQuotaState`'s;
//! - it draws the charts (tier shares per arm, concentration, the flow's
//!   budget, the arms' intervals) as SVG with their series;
//! - it lists a brand the flow has state for;
//! - its check box shows the refusal of a pasted config with file, key and
//!   reason, and the summary of a good one.
//!
//! Without a `chromium` on the PATH the test says so and passes: `cargo
//! test` on a machine without it still runs everything else.

mod common;

use common::tiers::{candidates, seed};
use common::*;
use fairflow::proto::v1::admin_service_client::AdminServiceClient;
use fairflow::proto::v1::{self as pb, Tier};
use rand::{Rng, SeedableRng};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const CONFIG: &str = r#"
[server]
metrics_refresh_seconds = 0.1
[scoring]
source = "upstream"
[quotas]
scenes = ["recommend"]
[quotas.floors]
policy = "none"
[quotas.targets]
enabled = true
top = 0.35
mid = 0.35
small = 0.30
[chuanliu]
enabled = true

[[experiments]]
name = "targets"
[[experiments.arms]]
name = "a"
share = 0.4
[experiments.arms.overlay.quotas.targets]
top = 0.60
mid = 0.25
small = 0.15
"#;

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(|name| {
            let found = Command::new(name).arg("--version").output().ok()?;
            found.status.success().then(|| name.to_string())
        })
}

/// What the browser rendered at `url`, as its DOM after load.
fn dump_dom(browser: &str, url: &str, profile: &std::path::Path) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the element with `id` (a leaf: `<td id="...">text</td>`).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no element {id}"));
    let open = start + dom[start..].find('>').unwrap() + 1;
    let close = open + dom[open..].find('<').unwrap();
    &dom[open..close]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_renders_the_live_state_and_checks_a_pasted_config() {
    let Some(browser) = chromium() else {
        eprintln!("chromium not found: the console's browser test is skipped");
        return;
    };
    let server = TestServer::with_config(CONFIG).await;
    seed(&server.addr.to_string()).await;
    let mut admin = AdminServiceClient::new(server.channel().await);
    admin
        .set_brand_flow(pb::SetBrandFlowRequest {
            brand_id: "cq-brand".into(),
            enrollment: pb::FlowEnrollment::Enrolled as i32,
            daily_impressions: Some(500),
        })
        .await
        .unwrap();

    // Load from two tasks until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for task in 0..2u64 {
        let (stop, served) = (stop.clone(), served.clone());
        let mut rank = server.rank_client().await;
        load.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(task);
            let start = recent_ms() - 3_600_000;
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let mut page = request(candidates(&mut rng), 10);
                page.user_id = format!("u{}", rng.random_range(0..400));
                page.request_time_ms = Some(start + i * 100 + task as i64);
                i += 1;
                rank.rank(page).await.unwrap();
                served.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let patience = Patience::new(std::time::Duration::from_secs(30));
    while served.load(Ordering::Relaxed) < 1500 && !patience.exhausted() {
        patience.wait().await;
    }
    let url = format!("http://{}/console", server.metrics_addr);
    let profile = tempfile::tempdir().unwrap();
    let (b, u, p) = (browser.clone(), url.clone(), profile.path().to_path_buf());
    let under_load = tokio::task::spawn_blocking(move || dump_dom(&b, &u, &p))
        .await
        .unwrap();
    assert!(served.load(Ordering::Relaxed) > 0);
    for chart in [
        "chart-shares-base",
        "chart-shares-targets-a",
        "chart-concentration",
        "chart-budget",
        "chart-arms",
    ] {
        let at = under_load
            .find(&format!(r#"<svg class="chart" id="{chart}""#))
            .unwrap_or_else(|| panic!("no chart {chart}"));
        let end = at + under_load[at..].find("</svg>").unwrap();
        let drawn = &under_load[at..end];
        assert!(
            drawn.contains("<polyline") || drawn.contains(r#"class="interval""#),
            "{chart} has nothing drawn: {drawn}"
        );
    }
    assert!(
        under_load.contains(r#"<td class="l">cq-brand</td>"#),
        "the flow's brand"
    );

    // Load stopped: the page and GetQuotaState read the same controllers.
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let quota = admin
        .get_quota_state(pb::GetQuotaStateRequest {})
        .await
        .unwrap()
        .into_inner();
    let (b, u, p) = (browser.clone(), url.clone(), profile.path().to_path_buf());
    let still = tokio::task::spawn_blocking(move || dump_dom(&b, &u, &p))
        .await
        .unwrap();
    assert_eq!(quota.arms.len(), 2);
    for arm in &quota.arms {
        let q = arm.quota.as_ref().unwrap();
        let id = arm.label.replace(':', "-");
        for (tier, name) in [
            (Tier::Top, "top"),
            (Tier::Mid, "mid"),
            (Tier::Small, "small"),
        ] {
            let t = q.tiers.iter().find(|t| t.tier == tier as i32).unwrap();
            assert_eq!(
                text_of(&still, &format!("share-{id}-{name}")),
                format!("{:.3}", t.realized_share),
                "{} {name}",
                arm.label
            );
            assert_eq!(
                text_of(&still, &format!("target-{id}-{name}")),
                format!("{:.3}", t.target_share.unwrap())
            );
        }
        assert_eq!(
            text_of(&still, &format!("gini-{id}")),
            format!("{:.3}", q.exposure_gini)
        );
    }
    // Arm a's users were steered to its own targets, not the base's.
    assert_eq!(text_of(&still, "target-targets-a-top"), "0.600");
    assert_eq!(text_of(&still, "config-version"), quota.config_version);

    // The check box: a pasted overlay with a misspelt key, then a good one.
    let bad = CONFIG.replace("small = 0.15", "small = 0.15\nstep_size = 0.2");
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("toml", &bad)
        .finish();
    let (b, u, p) = (
        browser.clone(),
        format!("{url}/check?{query}"),
        profile.path().to_path_buf(),
    );
    let checked = tokio::task::spawn_blocking(move || dump_dom(&b, &u, &p))
        .await
        .unwrap();
    let result = text_of(&checked, "check-result");
    assert!(
        result.starts_with("pasted.toml: key `experiments.targets.arms.a.overlay.quotas.targets.step_size`: unknown field"),
        "{result}"
    );
    assert!(checked.contains(r#"id="check-result" class="error""#));
    let boxed = &checked[checked.find("<textarea").unwrap()..checked.find("</textarea>").unwrap()];
    assert!(
        boxed.contains("step_size = 0.2"),
        "the text stays in the box: {boxed}"
    );
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("toml", CONFIG)
        .finish();
    let (b, u, p) = (
        browser,
        format!("{url}/check?{query}"),
        profile.path().to_path_buf(),
    );
    let good = tokio::task::spawn_blocking(move || dump_dom(&b, &u, &p))
        .await
        .unwrap();
    assert!(
        good.contains(r#"id="check-result" class="ok""#),
        "a valid config"
    );
    assert!(
        good.contains("targets: a 40%"),
        "its summary names the experiment"
    );
}
