//! What the console charts over time: samples of each experiment variant's
//! controller (tier shares, prices, Gini, top-1% share) and of the flow's
//! budget against its pacing plan, taken when the metrics refresh
//! (`server.metrics_refresh_seconds`), over the last [`SPAN_MS`] (six
//! hours), at most [`KEPT`] of them.

use crate::allocate::ControllerView;
use crate::chuanliu::FlowParams;
use crate::domain::Millis;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// How far back samples are kept.
pub const SPAN_MS: i64 = 6 * 3_600_000;
/// Samples kept at most (six hours at one per 2.2 s).
pub const KEPT: usize = 10_000;

/// One variant's controller at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmSample {
    pub label: String,
    pub shares: [f64; 3],
    pub targets: Option<[f64; 3]>,
    pub prices: [f64; 3],
    pub gini: f64,
    pub top1: f64,
}

/// Everything charted, at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Millis,
    pub arms: Vec<ArmSample>,
    /// The flow's day: impressions spent, and what the pacing plan allows
    /// by now.
    pub spent_today: u64,
    pub planned_today: f64,
    pub daily: u64,
}

#[derive(Debug)]
pub struct History {
    /// Samples are at least this far apart.
    every_ms: i64,
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    pub fn new(every: std::time::Duration) -> History {
        History {
            every_ms: every.as_millis().max(1) as i64,
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `views` (each variant's label and controller) and the flow's
    /// budget at `now` (spent, and the share of the day's budget its
    /// pacing plans spent by then), unless the last sample is more recent
    /// than the spacing; drops what is older than [`SPAN_MS`].
    pub fn sample(
        &self,
        now: Millis,
        views: &[(&str, ControllerView)],
        spent_today: u64,
        planned_share: f64,
        flow: &FlowParams,
    ) {
        let mut samples = self.samples.lock();
        if samples
            .back()
            .is_some_and(|last| now.since(last.at) < self.every_ms)
        {
            return;
        }
        while samples.len() >= KEPT || samples.front().is_some_and(|s| now.since(s.at) > SPAN_MS) {
            samples.pop_front();
        }
        samples.push_back(Sample {
            at: now,
            arms: views
                .iter()
                .map(|(label, v)| ArmSample {
                    label: label.to_string(),
                    shares: v.realized_shares,
                    targets: v.targets,
                    prices: v.prices,
                    gini: v.gini,
                    top1: v.top1,
                })
                .collect(),
            spent_today,
            planned_today: flow.daily_impressions as f64 * planned_share,
            daily: flow.daily_impressions,
        });
    }

    /// The samples kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn view(share: f64) -> ControllerView {
        ControllerView {
            prices: [0.1, 0.0, -0.1],
            score_unit: 1.0,
            realized_shares: [share, 1.0 - share, 0.0],
            targets: Some([0.5, 0.5, 0.0]),
            tracked_streamers: 3,
            gini: 0.4,
            top1: 0.2,
        }
    }

    #[test]
    fn samples_are_spaced_and_the_oldest_go_first() {
        let config = Config::embedded_default().unwrap();
        let flow = &config.engine.chuanliu;
        let every = 30_000;
        let h = History::new(std::time::Duration::from_millis(every as u64));
        h.sample(Millis(0), &[("base", view(0.1))], 5, 0.0, flow);
        h.sample(Millis(every - 1), &[("base", view(0.9))], 6, 0.0, flow);
        assert_eq!(h.samples().len(), 1, "too soon after the last");
        let last = SPAN_MS / every + 10;
        for i in 1..=last {
            h.sample(Millis(i * every), &[("base", view(0.2))], 7, 0.0, flow);
        }
        let samples = h.samples();
        assert_eq!(
            samples.len() as i64,
            SPAN_MS / every + 1,
            "six hours of them"
        );
        assert_eq!(samples[0].at, Millis((last - SPAN_MS / every) * every));
        assert_eq!(samples[0].arms[0].shares[0], 0.2);
        assert_eq!(samples[0].spent_today, 7);
        assert_eq!(samples[0].daily, flow.daily_impressions);
    }
}
