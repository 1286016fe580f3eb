//! The replay's report as a table for people (`Display` of [`Report`]).

use super::report::Report;
use super::{Summary, ope};
use crate::chuanliu::{HoldoutStats, Increment};
use crate::sim::PageOutcome;
use crate::sim::frontier::Standing;
use std::fmt;

fn row(f: &mut fmt::Formatter, label: &str, s: &Summary) -> fmt::Result {
    writeln!(
        f,
        "{label:<34} {:>6.3} {:>6.3} {:>6.3} {:>7} {:>6.3} {:>6.3} {:>6.3} {:>12.0} {:>8} {:>7} {:>10.0}",
        s.tier_shares[0],
        s.tier_shares[1],
        s.tier_shares[2],
        s.max_hourly_gap_pp
            .map_or("-".to_string(), |g| format!("{g:.2}")),
        s.gini,
        s.top1,
        s.top10,
        s.expected_gmv,
        s.flow_impressions,
        s.attributed_conversions,
        s.attributed_gmv,
    )
}

/// The replayed value against both hindsight bounds (docs/quotas.md).
fn hindsight_line(f: &mut fmt::Formatter, name: &str, h: &Standing) -> fmt::Result {
    writeln!(
        f,
        "hindsight, {name}: over {} quota-scene pages, value {:.1}% of the hindsight optimum for exact shares (tier prices; its largest gap {:.2} pp) and {} of the frontier at Gini {:.3} (tier prices + within-tier concentration penalty)",
        h.pages,
        h.of_hindsight * 100.0,
        h.hindsight_gap_pp,
        h.of_frontier
            .map_or("- (outside its range)".to_string(), |x| format!(
                "{:.1}%",
                x * 100.0
            )),
        h.gini,
    )
}

/// The flow's holdout estimate under one policy (docs/chuanliu.md).
fn holdout_line(f: &mut fmt::Formatter, name: &str, h: &HoldoutStats) -> fmt::Result {
    let increment = |i: Option<Increment>| {
        i.map_or("- (fewer than two units in an arm)".to_string(), |i| {
            i.to_string()
        })
    };
    writeln!(
        f,
        "flow holdout, {name}: {} treated / {} held-out units; what the flow added, yuan over the treated units [95% interval]: own live {}, all GMV {}; ghost conversions {} ({:.0} yuan)",
        h.treated_units,
        h.holdout_units,
        increment(h.own_live_gmv),
        increment(h.total_gmv),
        h.ghost.conversions,
        h.ghost.gmv(),
    )
}

fn realized_row(f: &mut fmt::Formatter, label: &str, o: &PageOutcome) -> fmt::Result {
    writeln!(
        f,
        "{label:<34} {:>10} {:>8} {:>7} {:>12.0} {:>7} {:>10.0}",
        o.impressions, o.clicks, o.purchases, o.gmv, o.flow_purchases, o.flow_gmv
    )
}

impl Report {
    /// What simulated users did (interactive replay), when they did.
    fn realized_table(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.a.replayed.realized.is_none() {
            return Ok(());
        }
        writeln!(
            f,
            "{:<34} {:>10} {:>8} {:>7} {:>12} {:>7} {:>10}",
            "simulated users (interactive)", "impr", "clicks", "purch", "GMV", "flow.p", "flow.GMV"
        )?;
        let logged = std::iter::once(&self.a)
            .chain(&self.b)
            .find_map(|p| Some((p.with_logged_page, p.logged.as_ref()?.realized?)));
        if let Some((requests, o)) = logged {
            realized_row(f, &format!("logged (what happened, {requests} req)"), &o)?;
        }
        for p in std::iter::once(&self.a).chain(&self.b) {
            if let Some(o) = &p.replayed.realized {
                realized_row(f, &format!("replayed {}", p.name), o)?;
            }
        }
        if let Some(d) = self.difference.as_ref().and_then(|d| d.realized.as_ref()) {
            writeln!(
                f,
                "{:<34} {:>+10} {:>+8} {:>+7} {:>+11.1}% {:>+7} {:>+10.0}",
                "B - A",
                d.impressions,
                d.clicks,
                d.purchases,
                d.gmv_relative * 100.0,
                d.flow_purchases,
                d.flow_gmv
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "{} requests from {} file(s), {} shard(s){}",
            self.requests,
            self.logs.len(),
            self.shards,
            if self.skipped_lines > 0 {
                format!(", {} malformed lines skipped", self.skipped_lines)
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "{:<34} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>12} {:>8} {:>7} {:>10}",
            "policy",
            "top",
            "mid",
            "small",
            "gap(pp)",
            "gini",
            "top1%",
            "top10%",
            "exp.GMV",
            "flow.imp",
            "attr",
            "attr.GMV"
        )?;
        for p in std::iter::once(&self.a).chain(&self.b) {
            if let Some(logged) = &p.logged {
                row(
                    f,
                    &format!("logged (what happened, {} req)", p.with_logged_page),
                    logged,
                )?;
                break;
            }
        }
        for p in std::iter::once(&self.a).chain(&self.b) {
            row(f, &format!("replayed {}", p.name), &p.replayed)?;
            for arm in &p.by_arm {
                row(
                    f,
                    &format!("  arm {} ({} req)", arm.arm, arm.replayed.requests),
                    &arm.replayed,
                )?;
            }
        }
        if let Some(d) = &self.difference {
            writeln!(
                f,
                "{:<34} {:>+6.3} {:>+6.3} {:>+6.3} {:>7} {:>+6.3} {:>+6.3} {:>+6.3} {:>+11.1}% {:>+8} {:>+7} {:>+10.0}",
                "B - A",
                d.tier_shares[0],
                d.tier_shares[1],
                d.tier_shares[2],
                "",
                d.gini,
                d.top1,
                d.top10,
                d.expected_gmv_relative * 100.0,
                d.flow_impressions,
                d.attributed_conversions,
                d.attributed_gmv,
            )?;
        }
        let logged = [&self.a]
            .into_iter()
            .chain(&self.b)
            .find_map(|p| p.logged.as_ref());
        let mut items: Vec<String> = logged
            .map(|l| format!("logged {:.3}", l.item_gini))
            .into_iter()
            .collect();
        for p in std::iter::once(&self.a).chain(&self.b) {
            items.push(format!("{} {:.3}", p.name, p.replayed.item_gini));
        }
        writeln!(f, "exposure Gini over catalog items: {}", items.join(", "))?;
        self.realized_table(f)?;
        for p in std::iter::once(&self.a).chain(&self.b) {
            if let Some(h) = &p.replayed.holdout {
                holdout_line(f, &p.name, h)?;
            }
        }
        for p in std::iter::once(&self.a).chain(&self.b) {
            if let Some(h) = &p.hindsight {
                hindsight_line(f, &p.name, h)?;
            }
        }
        if !self.logged_ctr.ctr.is_empty() {
            let ctr: Vec<String> = self
                .logged_ctr
                .ctr
                .iter()
                .map(|c| format!("{c:.4}"))
                .collect();
            writeln!(f, "logged CTR by position: {}", ctr.join(" "))?;
        }
        for p in std::iter::once(&self.a).chain(&self.b) {
            if let Some(o) = &p.off_policy {
                ope::cascade::write_lines(f, &p.name, o)?;
            }
            if let Some(o) = &p.position_based {
                ope::position::write_lines(f, &p.name, o)?;
            }
            if p.requests_without_propensities > 0 && p.off_policy.is_none() {
                writeln!(
                    f,
                    "off-policy, {}: {} logged pages without propensities, not estimated from",
                    p.name, p.requests_without_propensities
                )?;
            }
        }
        for p in std::iter::once(&self.a).chain(&self.b) {
            if p.with_logged_page > 0 {
                writeln!(
                    f,
                    "{}: {} of {} logged pages replayed identically",
                    p.name, p.identical, p.with_logged_page
                )?;
            }
            if p.unanswered > 0 {
                writeln!(
                    f,
                    "{}: {} requests from users the simulated world does not know, not answered",
                    p.name, p.unanswered
                )?;
            }
            if let Some(reason) = &p.first_refusal {
                writeln!(
                    f,
                    "{}: {} requests refused, first: {reason}",
                    p.name, p.refused
                )?;
            }
        }
        Ok(())
    }
}
