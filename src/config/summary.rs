//! A config in a few lines for people (`fairflow check-config`): what an
//! engineer checks after an edit, not every resolved value.

use super::Config;
use crate::allocate::Floors;
use crate::domain::Scene;
use std::fmt::Write;

impl Config {
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "version      {}", self.version);
        let t = &self.engine.tiers;
        let _ = writeln!(
            out,
            "tiers        top >= {} followers, mid >= {}, small below",
            t.top_min(),
            t.mid_min()
        );
        let scenes: Vec<&str> = Scene::ALL
            .iter()
            .filter(|s| self.engine.quotas.applies_to(**s))
            .map(|s| s.name())
            .collect();
        let floors = match &self.engine.quotas.floors {
            Floors::None => "none".to_string(),
            Floors::Proportional { shares, .. } => format!("proportional {}", shares_text(shares)),
            Floors::Fair { shares, alpha, .. } => {
                format!("fair {} (alpha {alpha})", shares_text(shares))
            }
        };
        let _ = writeln!(
            out,
            "quotas       on {}; floors {floors}; at most {} items per streamer",
            if scenes.is_empty() {
                "no scene".to_string()
            } else {
                scenes.join(", ")
            },
            self.engine.quotas.max_items_per_streamer
        );
        let targets = match self.engine.quotas.exposure.targets {
            Some(t) => shares_text(&t),
            None => "off".to_string(),
        };
        let _ = writeln!(out, "targets      {targets}");
        let flow = &self.engine.chuanliu;
        let _ = writeln!(
            out,
            "flow         {}; budget {} impressions/day{}{}; cap {} per user and brand",
            if flow.enabled { "on" } else { "off" },
            flow.daily_impressions,
            if flow.pacing.rollover {
                ", unspent rolls over"
            } else {
                ""
            },
            if flow.pacing.follow_demand_days > 0.0 {
                format!(
                    ", paced by the demand of about {} days",
                    flow.pacing.follow_demand_days
                )
            } else {
                String::new()
            },
            flow.frequency_cap
        );
        let l = &self.engine.limits;
        let _ = writeln!(
            out,
            "limits       {} candidates, {} slots, ids of {} bytes; Rank messages up to {} bytes",
            l.max_candidates,
            l.max_slots,
            l.max_id_bytes,
            l.max_rank_message_bytes()
        );
        let _ = writeln!(out, "events       {}", self.events_dir.display());
        if !self.experiments.is_empty() {
            let _ = writeln!(
                out,
                "experiments  {}; {} variants",
                self.experiments.describe(),
                self.experiments.variants().len()
            );
        }
        out
    }
}

fn shares_text(shares: &[f64; 3]) -> String {
    format!(
        "top {:.2} / mid {:.2} / small {:.2}",
        shares[0], shares[1], shares[2]
    )
}
