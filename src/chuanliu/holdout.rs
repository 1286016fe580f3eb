//! The flow's holdout: what it adds, measured by randomization rather than
//! by attribution.
//!
//! When an affinity is made, a hash of the user decides whether it is in
//! the holdout (`chuanliu.holdout_share` of users). For a holdout affinity
//! the flow goes through the same triggers, cap and budget, and allocation
//! places the brand's stream on a copy of the page as it would have; when
//! that copy shows it, the impression is counted as a *ghost* (cap and
//! budget spent, nothing shown, no reward). Every affinity made while the
//! share is above 0 is a unit of the experiment from the moment it is made
//! (one made with the holdout off is treated, in neither arm); its outcomes are the user's GMV in
//! the brand's own live stream since then, and the user's GMV in every channel
//! since then, split equally among the user's live affinities (so that a
//! user's GMV is counted once over all brands). The intent-to-treat
//! increment per unit is the difference of the two arms' mean outcomes; the
//! flow's increment is that times the treated units, with a normal 95%
//! interval from the arms' variances (Neyman's, conservative).
//!
//! Attribution says which purchases followed a flow impression; the holdout
//! says how many would have happened anyway: ghost conversions are purchases
//! that followed a ghost impression, the attribution a flow that showed
//! nothing would have claimed.

use serde::{Deserialize, Serialize};

/// Whether affinities `user` makes now belong to the holdout: a fixed hash
/// of the user id against `share`, so a user is in the same arm on every
/// replica and after every restart, and raising the share only moves users
/// into the holdout (those hashed below the old share stay there).
pub fn in_holdout(user: &str, share: f64) -> bool {
    share > 0.0 && crate::domain::hash_fraction(b"fairflow.chuanliu.holdout/", user) < share
}

/// Ghost impressions, and own-live purchases attributed to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ghosts {
    pub impressions: u64,
    pub conversions: u64,
    /// In fen (0.01 yuan), as attributed GMV is.
    pub gmv_fen: u64,
}

impl Ghosts {
    pub fn gmv(&self) -> f64 {
        self.gmv_fen as f64 / 100.0
    }
}

/// Sums over units of one outcome: all a mean and its variance need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    /// One unit's outcome moved from `before` to `after`.
    pub fn moved(&mut self, before: f64, after: f64) {
        self.sum += after - before;
        self.sum_sq += after * after - before * before;
    }

    fn add(&mut self, other: &Moments) {
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }
}

/// One arm: its units and their two outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub units: u64,
    /// GMV in the brand's own live stream.
    pub own: Moments,
    /// The user's GMV in every channel, split among its live affinities.
    pub all: Moments,
}

impl Arm {
    fn add(&mut self, other: &Arm) {
        self.units += other.units;
        self.own.add(&other.own);
        self.all.add(&other.all);
    }
}

/// The holdout's state for one brand (or summed over brands).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HoldoutState {
    pub treated: Arm,
    pub holdout: Arm,
    /// Ghost impressions, and purchases in the brand's own live stream
    /// attributed to them.
    pub ghost: Ghosts,
}

impl HoldoutState {
    pub fn arm_mut(&mut self, holdout: bool) -> &mut Arm {
        if holdout {
            &mut self.holdout
        } else {
            &mut self.treated
        }
    }

    pub fn add(&mut self, other: &HoldoutState) {
        self.treated.add(&other.treated);
        self.holdout.add(&other.holdout);
        self.ghost.impressions += other.ghost.impressions;
        self.ghost.conversions += other.ghost.conversions;
        self.ghost.gmv_fen += other.ghost.gmv_fen;
    }

    pub fn stats(&self) -> HoldoutStats {
        HoldoutStats {
            treated_units: self.treated.units,
            holdout_units: self.holdout.units,
            ghost: self.ghost,
            own_live_gmv: increment(
                (self.treated.units, &self.treated.own),
                (self.holdout.units, &self.holdout.own),
            ),
            total_gmv: increment(
                (self.treated.units, &self.treated.all),
                (self.holdout.units, &self.holdout.all),
            ),
        }
    }
}

/// What the flow added to one outcome, estimated from the holdout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Increment {
    /// Yuan per unit: treated mean minus holdout mean.
    pub per_unit: f64,
    pub per_unit_se: f64,
    /// Yuan over the treated units (`per_unit` times their number), and
    /// its 95% interval.
    pub total: f64,
    pub low: f64,
    pub high: f64,
}

impl std::fmt::Display for Increment {
    /// The total and its interval, in whole yuan: `+120 [+80, +160]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:+.0} [{:+.0}, {:+.0}]",
            self.total, self.low, self.high
        )
    }
}

/// The holdout's figures for one brand or overall.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct HoldoutStats {
    pub treated_units: u64,
    pub holdout_units: u64,
    pub ghost: Ghosts,
    /// `None` until each arm has two units.
    pub own_live_gmv: Option<Increment>,
    pub total_gmv: Option<Increment>,
}

/// Normal quantile of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

fn mean_and_variance(units: u64, m: &Moments) -> Option<(f64, f64)> {
    if units < 2 {
        return None;
    }
    let n = units as f64;
    let mean = m.sum / n;
    // Cancellation can leave a tiny negative for outcomes that are all
    // equal: the variance is 0 then.
    let variance = ((m.sum_sq - n * mean * mean) / (n - 1.0)).max(0.0);
    Some((mean, variance))
}

fn increment(treated: (u64, &Moments), holdout: (u64, &Moments)) -> Option<Increment> {
    let (mt, vt) = mean_and_variance(treated.0, treated.1)?;
    let (mh, vh) = mean_and_variance(holdout.0, holdout.1)?;
    let per_unit = mt - mh;
    let per_unit_se = (vt / treated.0 as f64 + vh / holdout.0 as f64).sqrt();
    let n = treated.0 as f64;
    Some(Increment {
        per_unit,
        per_unit_se,
        total: per_unit * n,
        low: (per_unit - Z95 * per_unit_se) * n,
        high: (per_unit + Z95 * per_unit_se) * n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_users_in_the_holdout_is_the_configured_share_and_nested() {
        let users: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        let held = |share| users.iter().filter(|u| in_holdout(u, share)).count();
        let (five, ten) = (held(0.05), held(0.10));
        assert!((900..1100).contains(&five), "{five}");
        assert!((1850..2150).contains(&ten), "{ten}");
        assert!(
            users
                .iter()
                .all(|u| !in_holdout(u, 0.05) || in_holdout(u, 0.10)),
            "raising the share only adds users"
        );
        assert_eq!(held(0.0), 0);
    }

    #[test]
    fn the_increment_is_the_difference_of_means_with_neymans_standard_error() {
        let treated = [3.0, 0.0, 5.0, 0.0, 2.0];
        let holdout = [1.0, 0.0, 2.0];
        let mut state = HoldoutState::default();
        for (arm, ys) in [(false, &treated[..]), (true, &holdout[..])] {
            for &y in ys {
                let a = state.arm_mut(arm);
                a.units += 1;
                // Outcomes arrive in pieces; the moments see only moves.
                a.own.moved(0.0, y / 2.0);
                a.own.moved(y / 2.0, y);
            }
        }
        let inc = state.stats().own_live_gmv.unwrap();
        let var = |ys: &[f64]| {
            let m = ys.iter().sum::<f64>() / ys.len() as f64;
            ys.iter().map(|y| (y - m).powi(2)).sum::<f64>() / (ys.len() - 1) as f64
        };
        let se = (var(&treated) / 5.0 + var(&holdout) / 3.0).sqrt();
        assert!((inc.per_unit - (2.0 - 1.0)).abs() < 1e-12);
        assert!((inc.per_unit_se - se).abs() < 1e-12);
        assert!((inc.total - 5.0).abs() < 1e-12);
        assert!((inc.high - inc.total - Z95 * se * 5.0).abs() < 1e-9);
        assert_eq!(state.stats().total_gmv.unwrap().per_unit, 0.0);
        let mut sum = HoldoutState::default();
        sum.add(&state);
        sum.add(&state);
        assert_eq!(sum.treated.units, 10);
        assert!(HoldoutState::default().stats().own_live_gmv.is_none());
    }
}
