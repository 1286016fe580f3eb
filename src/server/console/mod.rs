//! `GET /console`: one page for the people tuning the service, served on the
//! metrics port. Live tier shares against each arm's targets over the last
//! hours, the controllers' prices, streamer concentration, the flow's budget
//! against its pacing plan and per-brand figures, the arms side by side with
//! intervals, the config in force and the last reload's changes, and a box
//! that checks a pasted config (`GET /console/check?toml=...`).
//!
//! Read-only: nothing on the page changes the service (the check validates
//! text and keeps nothing). The page is HTML with inline CSS and
//! server-drawn SVG ([`svg`]): no script, no external asset, so it works
//! offline; it reloads itself every [`REFRESH_SECONDS`].

mod svg;

use super::State;
use super::history::Sample;
use super::reload::ReloadNote;
use crate::allocate::ControllerView;
use crate::config::Config;
use crate::domain::Millis;
use crate::engine::BASE;
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use svg::{COLORS, Line, Whisker, escape};

/// How often the page reloads itself.
pub const REFRESH_SECONDS: u32 = 10;
/// Brands listed in the flow's table, by impressions.
const BRANDS_SHOWN: usize = 20;
/// Points drawn per line at most (samples are thinned evenly).
const POINTS: usize = 240;

/// The console's routes, to merge with `/metrics`.
pub fn router(state: Arc<State>) -> axum::Router {
    let page_state = state.clone();
    axum::Router::new()
        .route(
            "/console",
            axum::routing::get(move || {
                let state = page_state.clone();
                async move { axum::response::Html(page(&state, None)) }
            }),
        )
        .route(
            "/console/check",
            axum::routing::get(move |query: axum::extract::RawQuery| {
                let state = state.clone();
                async move {
                    let text = pasted(query.0.as_deref().unwrap_or_default());
                    axum::response::Html(page(&state, Some(check(&text))))
                }
            }),
        )
}

/// The `toml` field of a query string, decoded.
fn pasted(query: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "toml")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// What the check box says about a pasted config.
struct Checked {
    text: String,
    /// A summary of the valid config, or the refusal with file, key and
    /// reason.
    outcome: Result<String, String>,
}

fn check(text: &str) -> Checked {
    Checked {
        text: text.to_string(),
        outcome: Config::from_toml(text, "pasted.toml", None)
            .map(|config| config.summary())
            .map_err(|e| e.to_string()),
    }
}

/// An id fragment for a variant label (`targets:a,flow:b` ->
/// `targets-a-flow-b`).
pub fn id_of(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

const TIERS: [&str; 3] = ["top", "mid", "small"];

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:16px 24px;color:#222}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:13px;margin:4px 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}\
th{background:#f4f4f4}td.l,th.l{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:12px}\
.chart{border:1px solid #e4e4e4;background:#fff}.chart-title{font-size:13px;font-weight:600}\
.tick,.legend{font-size:10px;fill:#444}.ok{color:#1a7f37}.error{color:#b42318;font-weight:600}\
textarea{width:100%;max-width:760px;height:140px;font-family:monospace}pre{background:#f6f6f6;padding:6px;max-width:900px;overflow:auto}\
.muted{color:#666;font-size:12px}";

/// The whole page; `checked` when it answers the check box.
fn page(state: &State, checked: Option<Checked>) -> String {
    let live = state.live();
    let now = super::wall_clock();
    let mut out = String::with_capacity(64 * 1024);
    let refresh = if checked.is_none() {
        format!(r#"<meta http-equiv="refresh" content="{REFRESH_SECONDS}">"#)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fairflow console</title>{refresh}<style>{STYLE}</style></head><body>"#
    );
    let config = &live.config;
    let _ = write!(
        out,
        r#"<h1>fairflow console</h1><p class="muted">config <code id="config-version">{}</code> from <code>{}</code>, model <code>{}</code>; read-only; reloads every {REFRESH_SECONDS} s; {} UTC</p>"#,
        escape(&config.version),
        escape(&config.origin),
        escape(live.engine.model().version()),
        format_time(now),
    );
    let samples = state.history.samples();
    // One view per variant, taken once: each reads its controller under
    // the lock ranking takes.
    let views = state.controller_views(&live);
    quotas(&mut out, &views, &samples, now);
    concentration(&mut out, &views, &samples, now);
    flow(&mut out, state, &live, &samples, now);
    arms(&mut out, state, &live);
    config_section(
        &mut out,
        &live.config,
        &state.events_dir,
        state.last_reload.lock().clone(),
    );
    check_box(&mut out, checked);
    out.push_str("</body></html>");
    out
}

/// `2026-12-06 14:05:09`.
fn format_time(t: Millis) -> String {
    let secs = t.0.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Minutes before `now` of each sample, thinned to at most [`POINTS`].
fn thinned(samples: &[Sample]) -> impl Iterator<Item = &Sample> {
    let step = samples.len().div_ceil(POINTS).max(1);
    let last = samples.len().saturating_sub(1);
    samples
        .iter()
        .enumerate()
        .filter(move |(i, _)| i % step == 0 || *i == last)
        .map(|(_, s)| s)
}

fn minutes_ago(at: Millis, now: Millis) -> f64 {
    -(now.since(at) as f64) / 60_000.0
}

/// The x range of the charts: from the oldest sample to now, in minutes.
fn x_range(samples: &[Sample], now: Millis) -> (f64, f64) {
    let oldest = samples.first().map_or(-1.0, |s| minutes_ago(s.at, now));
    (oldest.min(-1.0), 0.0)
}

/// Each variant's label and its controller's view.
type Views<'l> = [(&'l str, ControllerView)];

fn quotas(out: &mut String, views: &Views, samples: &[Sample], now: Millis) {
    out.push_str(r#"<h2 id="quotas">Tier exposure against targets</h2>"#);
    out.push_str(r#"<table id="quota-table"><tr><th class="l">arm</th><th class="l">tier</th><th>realized share</th><th>target</th><th>controller price (score units)</th></tr>"#);
    for (label, view) in views {
        let id = id_of(label);
        for (t, tier) in TIERS.iter().enumerate() {
            let target = view
                .targets
                .map_or("-".to_string(), |x| format!("{:.3}", x[t]));
            let _ = write!(
                out,
                r#"<tr><td class="l">{}</td><td class="l">{tier}</td><td id="share-{id}-{tier}">{:.3}</td><td id="target-{id}-{tier}">{target}</td><td id="price-{id}-{tier}">{:+.3}</td></tr>"#,
                escape(label),
                view.realized_shares[t],
                view.prices[t],
            );
        }
    }
    out.push_str("</table><div class=\"charts\">");
    let x = x_range(samples, now);
    for (label, _) in views {
        let mut lines = Vec::new();
        for (t, tier) in TIERS.iter().enumerate() {
            let of = |s: &Sample| s.arms.iter().find(|a| a.label == *label).cloned();
            lines.push(Line {
                label: format!("{tier} share"),
                color: COLORS[t],
                dashed: false,
                points: thinned(samples)
                    .filter_map(|s| of(s).map(|a| (minutes_ago(s.at, now), a.shares[t])))
                    .collect(),
            });
            lines.push(Line {
                label: format!("{tier} target"),
                color: COLORS[t],
                dashed: true,
                points: thinned(samples)
                    .filter_map(|s| {
                        let target = of(s)?.targets?[t];
                        Some((minutes_ago(s.at, now), target))
                    })
                    .collect(),
            });
        }
        out.push_str(&svg::line_chart(
            &format!("chart-shares-{}", id_of(label)),
            &format!("{label}: tier shares (solid) and targets (dashed)"),
            &lines,
            x,
            (0.0, 1.0),
            "minutes ago",
            |y| format!("{y:.2}"),
        ));
    }
    out.push_str("</div>");
}

fn concentration(out: &mut String, views: &Views, samples: &[Sample], now: Millis) {
    out.push_str(r#"<h2 id="concentration">Streamer concentration</h2>"#);
    out.push_str(r#"<table><tr><th class="l">arm</th><th>Gini</th><th>top-1% share</th><th>streamers tracked</th><th>score unit</th></tr>"#);
    for (label, view) in views {
        let id = id_of(label);
        let _ = write!(
            out,
            r#"<tr><td class="l">{}</td><td id="gini-{id}">{:.3}</td><td id="top1-{id}">{:.3}</td><td>{}</td><td>{:.4}</td></tr>"#,
            escape(label),
            view.gini,
            view.top1,
            view.tracked_streamers,
            view.score_unit
        );
    }
    out.push_str("</table>");
    let mut lines = Vec::new();
    for (i, (label, _)) in views.iter().enumerate() {
        let series = |f: fn(&super::history::ArmSample) -> f64| -> Vec<(f64, f64)> {
            thinned(samples)
                .filter_map(|s| {
                    let a = s.arms.iter().find(|a| a.label == *label)?;
                    Some((minutes_ago(s.at, now), f(a)))
                })
                .collect()
        };
        let color = COLORS[i % COLORS.len()];
        lines.push(Line {
            label: format!("{label} Gini"),
            color,
            dashed: false,
            points: series(|a| a.gini),
        });
        lines.push(Line {
            label: format!("{label} top 1%"),
            color,
            dashed: true,
            points: series(|a| a.top1),
        });
    }
    out.push_str(&svg::line_chart(
        "chart-concentration",
        "Gini (solid) and top-1% share (dashed) of streamer exposure",
        &lines,
        x_range(samples, now),
        (0.0, 1.0),
        "minutes ago",
        |y| format!("{y:.2}"),
    ));
}

fn flow(out: &mut String, state: &State, live: &super::Live, samples: &[Sample], now: Millis) {
    let params = &live.config.engine.chuanliu;
    let flow = &state.ranking.flow;
    let totals = flow.totals(now, params);
    let plan = params.daily_impressions as f64 * flow.planned_share(now, params);
    let _ = write!(
        out,
        r#"<h2 id="flow">Flow budget and brands</h2><p>{}; today <b id="flow-spent">{}</b> of <span id="flow-daily">{}</span> impressions spent against <span id="flow-plan">{:.0}</span> planned by now; since start {} impressions, {} attributed conversions, {:.2} yuan attributed.</p>"#,
        if params.enabled { "on" } else { "off" },
        totals.spent_today,
        totals.daily_impressions,
        plan,
        totals.counts.impressions,
        totals.counts.conversions,
        totals.counts.gmv(),
    );
    let day = params.pacing.day_of(now);
    let today: Vec<Sample> = samples
        .iter()
        .filter(|s| params.pacing.day_of(s.at) == day)
        .cloned()
        .collect();
    let top = today
        .iter()
        .map(|s| s.planned_today.max(s.spent_today as f64))
        .fold(plan.max(totals.spent_today as f64), f64::max)
        .max(1.0);
    let lines = [
        Line {
            label: "spent".into(),
            color: COLORS[1],
            dashed: false,
            points: thinned(&today)
                .map(|s| (minutes_ago(s.at, now), s.spent_today as f64))
                .collect(),
        },
        Line {
            label: "pacing plan".into(),
            color: COLORS[3],
            dashed: true,
            points: thinned(&today)
                .map(|s| (minutes_ago(s.at, now), s.planned_today))
                .collect(),
        },
    ];
    out.push_str(&svg::line_chart(
        "chart-budget",
        "Flow impressions spent today against the pacing plan",
        &lines,
        x_range(&today, now),
        (0.0, top * 1.05),
        "minutes ago",
        svg::compact,
    ));
    let mut brands = flow.brand_stats(&[], now, params);
    brands.sort_by(|a, b| {
        b.counts
            .impressions
            .cmp(&a.counts.impressions)
            .then(a.brand_id.cmp(&b.brand_id))
    });
    let _ = write!(
        out,
        r#"<table id="brands"><tr><th class="l">brand</th><th class="l">enrollment</th><th>own budget</th><th>spent today</th><th>impressions</th><th>attributed</th><th>attributed GMV</th><th>affinities</th><th>holdout increment, own live (95%)</th></tr>"#
    );
    for b in brands.iter().take(BRANDS_SHOWN) {
        let increment = b.holdout.own_live_gmv.map_or("-".to_string(), |i| {
            format!("{:+.0} [{:+.0}, {:+.0}]", i.total, i.low, i.high)
        });
        let _ = write!(
            out,
            r#"<tr><td class="l">{}</td><td class="l">{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{increment}</td></tr>"#,
            escape(&b.brand_id),
            b.enrollment,
            b.daily_impressions
                .map_or("-".to_string(), |d| d.to_string()),
            b.spent_today,
            b.counts.impressions,
            b.counts.conversions,
            b.counts.gmv(),
            b.affinities,
        );
    }
    let _ = write!(
        out,
        r#"</table><p class="muted">{} brands with flow state; the {} with the most impressions shown.</p>"#,
        brands.len(),
        BRANDS_SHOWN.min(brands.len())
    );
}

fn arms(out: &mut String, state: &State, live: &super::Live) {
    out.push_str(r#"<h2 id="arms">Arms compared</h2>"#);
    let experiments = &live.config.experiments;
    if experiments.is_empty() {
        out.push_str(
            "<p>No experiments in the config in force: every user ranks under the base config.</p>",
        );
    } else {
        let _ = write!(out, "<p>{}</p>", escape(&experiments.describe()));
    }
    out.push_str(r#"<table id="arm-table"><tr><th class="l">arm</th><th>pages</th><th>expected GMV per page</th><th>95% interval</th><th>flow impressions</th><th>purchases</th><th>GMV</th><th>GMV per page</th><th>attributed GMV</th></tr>"#);
    let figures = state.arms.all();
    let mut whiskers = Vec::new();
    for (label, fig) in &figures {
        let id = id_of(label);
        let value = fig.page_value();
        let (mean, interval) = value.map_or(("-".to_string(), "-".to_string()), |v| {
            (
                format!("{:.3}", v.mean),
                format!("[{:.3}, {:.3}]", v.low, v.high),
            )
        });
        if let Some(v) = value {
            whiskers.push(Whisker {
                label: label.clone(),
                mean: v.mean,
                low: v.low,
                high: v.high,
            });
        }
        let _ = write!(
            out,
            r#"<tr><td class="l">{}</td><td id="pages-{id}">{}</td><td id="value-{id}">{mean}</td><td>{interval}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.3}</td><td>{:.2}</td></tr>"#,
            escape(label),
            fig.requests,
            fig.flow_impressions,
            fig.purchases,
            fig.gmv,
            fig.gmv_per_request(),
            fig.attributed_gmv,
        );
    }
    out.push_str("</table>");
    if whiskers.len() > 1 || figures.iter().any(|(l, _)| l != BASE) {
        out.push_str(&svg::interval_chart(
            "chart-arms",
            "Expected GMV per page, per arm",
            &whiskers,
            |y| format!("{y:.2}"),
        ));
    }
    out.push_str(r#"<p class="muted">Intervals are over pages; a user's pages are not independent draws, so they are somewhat narrow for users with many pages. Purchases count under the buyer's arm in the config in force when they arrive.</p>"#);
}

fn config_section(out: &mut String, config: &Config, events_dir: &Path, last: Option<ReloadNote>) {
    out.push_str(r#"<h2 id="config">Config in force</h2>"#);
    let _ = write!(
        out,
        "<pre id=\"config-summary\">{}</pre>",
        escape(&config.summary())
    );
    // `--events-dir` overrides the config's, and a reload cannot move the
    // log: say which directory is in use when it is not the config's.
    if events_dir != config.events_dir {
        let _ = write!(
            out,
            r#"<p id="events-dir">The event log is in {} (set at the start), not the config's {}.</p>"#,
            escape(&events_dir.display().to_string()),
            escape(&config.events_dir.display().to_string()),
        );
    }
    match last {
        None => out.push_str(r#"<p id="last-reload">No reload since the start.</p>"#),
        Some(ReloadNote { at, outcome: Ok(r) }) => {
            let _ = write!(
                out,
                r#"<p id="last-reload" class="ok">Reloaded at {} UTC: {} -&gt; {}{}.</p><ul id="reload-changes">"#,
                format_time(at),
                escape(&r.previous_version),
                escape(&r.version),
                if r.restart_required.is_empty() {
                    String::new()
                } else {
                    format!("; needs a restart for {}", r.restart_required.join(", "))
                }
            );
            for c in &r.changes {
                let _ = write!(out, "<li><code>{}</code></li>", escape(&c.to_string()));
            }
            out.push_str("</ul>");
        }
        Some(ReloadNote {
            at,
            outcome: Err(why),
        }) => {
            let _ = write!(
                out,
                r#"<p id="last-reload" class="error">Reload refused at {} UTC, the config above stays: {}</p>"#,
                format_time(at),
                escape(&why)
            );
        }
    }
}

fn check_box(out: &mut String, checked: Option<Checked>) {
    out.push_str(r#"<h2 id="check">Check a config</h2><p class="muted">Paste a config file: it is validated as a reload would (file, key and reason when refused) and nothing is changed.</p><form method="get" action="/console/check">"#);
    let text = checked.as_ref().map_or("", |c| c.text.as_str());
    let _ = write!(
        out,
        r#"<textarea name="toml" id="toml" spellcheck="false">{}</textarea><br><button type="submit" id="check-button">Check</button></form>"#,
        escape(text)
    );
    match checked.map(|c| c.outcome) {
        None => {}
        Some(Ok(summary)) => {
            let _ = write!(
                out,
                r#"<div id="check-result" class="ok">valid<pre>{}</pre></div>"#,
                escape(&summary)
            );
        }
        Some(Err(why)) => {
            let _ = write!(
                out,
                r#"<div id="check-result" class="error">{}</div>"#,
                escape(&why)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_config_is_checked_with_file_key_and_reason() {
        let text = pasted("toml=%5Bquotas.spreading%5D%0Astrenght+%3D+0.5%0A");
        assert_eq!(text, "[quotas.spreading]\nstrenght = 0.5\n");
        let checked = check(&text);
        let why = checked.outcome.unwrap_err();
        assert!(
            why.starts_with("pasted.toml: key `quotas.spreading.strenght`"),
            "{why}"
        );
        assert!(
            check("[quotas.spreading]\nstrength = 0.5\n")
                .outcome
                .is_ok()
        );
    }

    #[test]
    fn labels_become_ids_and_times_read_as_utc() {
        assert_eq!(id_of("targets:a,flow:b8"), "targets-a-flow-b8");
        assert_eq!(
            format_time(Millis(1_795_132_800_000)),
            "2026-11-20 00:00:00"
        );
        assert_eq!(format_time(Millis(0)), "1970-01-01 00:00:00");
    }

    #[test]
    fn samples_are_thinned_to_a_few_hundred_points_keeping_the_last() {
        let sample = |i: i64| Sample {
            at: Millis(i),
            arms: Vec::new(),
            spent_today: 0,
            planned_today: 0.0,
            daily: 0,
        };
        let samples: Vec<Sample> = (0..1000).map(sample).collect();
        let kept: Vec<i64> = thinned(&samples).map(|s| s.at.0).collect();
        assert!(kept.len() <= POINTS + 1, "{}", kept.len());
        assert_eq!((kept[0], *kept.last().unwrap()), (0, 999));
    }
}
