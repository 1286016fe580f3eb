//! What each experiment variant served and earned in this process, for the
//! per-arm answers of `GetFlowStats`, the metrics and the console.
//!
//! Counted by variant label (`base` for users in no arm): requests ranked,
//! the expected value of their pages (mean, and a 95% interval per
//! request), flow impressions, and purchases by the variant's users, with
//! those the flow was credited for. The label a purchase counts under is the
//! buyer's variant in the config in force when the event is applied.

use crate::domain::Reason;
use crate::engine::{BASE, Ranking};
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// One variant's figures since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArmFigures {
    pub requests: u64,
    /// Over requests: sum and sum of squares of the page's expected value
    /// (`exposure x expected_value` summed over its slots, yuan).
    value_sum: f64,
    value_squares: f64,
    pub flow_impressions: u64,
    pub purchases: u64,
    pub gmv: f64,
    pub attributed_conversions: u64,
    pub attributed_gmv: f64,
}

/// A mean with its normal 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

impl ArmFigures {
    /// Expected value per page with its 95% interval over requests (a
    /// user's requests are not independent draws, so it is somewhat narrow
    /// for users who rank many pages); `None` before two requests.
    pub fn page_value(&self) -> Option<Interval> {
        if self.requests < 2 {
            return None;
        }
        let n = self.requests as f64;
        let mean = self.value_sum / n;
        let variance = ((self.value_squares - n * mean * mean) / (n - 1.0)).max(0.0);
        let half = 1.96 * (variance / n).sqrt();
        Some(Interval {
            mean,
            low: mean - half,
            high: mean + half,
        })
    }

    /// GMV of the variant's users per request ranked for them.
    pub fn gmv_per_request(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.gmv / self.requests as f64
        }
    }
}

/// Every variant's figures, by label.
#[derive(Debug, Default)]
pub struct Arms {
    figures: Mutex<BTreeMap<String, ArmFigures>>,
}

impl Arms {
    fn update(&self, label: &str, f: impl FnOnce(&mut ArmFigures)) {
        let mut figures = self.figures.lock();
        match figures.get_mut(label) {
            Some(fig) => f(fig),
            None => f(figures.entry(label.to_string()).or_default()),
        }
    }

    /// A page served under `label`.
    pub fn ranked(&self, label: &str, ranking: &Ranking) {
        let value: f64 = ranking
            .slots
            .iter()
            .map(|s| s.exposure * s.expected_value)
            .sum();
        let flow = ranking
            .slots
            .iter()
            .filter(|s| s.reasons.contains(Reason::Chuanliu))
            .count() as u64;
        self.update(label, |fig| {
            fig.requests += 1;
            fig.value_sum += value;
            fig.value_squares += value * value;
            fig.flow_impressions += flow;
        });
    }

    /// A purchase of `price` by a user of `label`, and whether the flow was
    /// credited for it.
    pub fn purchased(&self, label: &str, price: f64, attributed: bool) {
        self.update(label, |fig| {
            fig.purchases += 1;
            fig.gmv += price;
            if attributed {
                fig.attributed_conversions += 1;
                fig.attributed_gmv += price;
            }
        });
    }

    /// Every label seen so far (`base` first), with its figures.
    pub fn all(&self) -> Vec<(String, ArmFigures)> {
        let figures = self.figures.lock();
        let base = figures.get(BASE).map(|f| (BASE.to_string(), *f));
        base.into_iter()
            .chain(
                figures
                    .iter()
                    .filter(|(label, _)| label.as_str() != BASE)
                    .map(|(label, f)| (label.clone(), *f)),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ItemKind, Reasons, Tier};
    use crate::engine::Slot;

    fn page(values: &[f64], flow_at: Option<usize>) -> Ranking {
        let slots = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let mut reasons = Reasons::default();
                if flow_at == Some(i) {
                    reasons.insert(Reason::Chuanliu);
                }
                Slot {
                    position: i as u32,
                    candidate: i as u32,
                    item_id: format!("i{i}"),
                    kind: ItemKind::Goods,
                    streamer_id: None,
                    tier: Tier::Small,
                    score: v,
                    expected_value: v,
                    exposure: 1.0,
                    pctr: 0.1,
                    pcvr: 0.1,
                    reasons,
                    resolved: true,
                }
            })
            .collect();
        Ranking {
            request_id: "r".into(),
            slots,
            config_version: "v".into(),
            model_version: "m".into(),
            unresolved: 0,
            ineligible: 0,
        }
    }

    #[test]
    fn figures_are_kept_per_label_with_an_interval_for_the_page_value() {
        let arms = Arms::default();
        arms.ranked("exp:a", &page(&[1.0, 1.0], Some(0)));
        arms.ranked("exp:a", &page(&[2.0, 2.0], None));
        arms.ranked(BASE, &page(&[1.0], None));
        arms.purchased("exp:a", 50.0, true);
        arms.purchased("exp:a", 30.0, false);
        let all = arms.all();
        assert_eq!(all[0].0, BASE, "base first");
        let a = all.iter().find(|(l, _)| l == "exp:a").unwrap().1;
        assert_eq!((a.requests, a.flow_impressions, a.purchases), (2, 1, 2));
        assert_eq!((a.attributed_conversions, a.attributed_gmv), (1, 50.0));
        assert_eq!(a.gmv_per_request(), 40.0);
        // Pages worth 2 and 4: mean 3, sample sd sqrt(2).
        let v = a.page_value().unwrap();
        assert!((v.mean - 3.0).abs() < 1e-12);
        assert!((v.high - v.mean - 1.96 * (2.0f64 / 2.0).sqrt()).abs() < 1e-9);
        assert_eq!(all[0].1.page_value(), None, "one request");
    }
}
