//! Per-request tier floors: the minimum number of slots each tier must hold in
//! every prefix of the page (when it has candidates to fill them).
//!
//! Two policies:
//! - **proportional**: `floor(p_t * i)` or `ceil(p_t * i)` for prefix length `i`;
//! - **FA*IR** (Zehlike et al., CIKM 2017): the minimum at prefix `i` is the
//!   smallest `m` with `BinomialCDF(m; i, p_t) > alpha_c`, where `alpha_c` is the
//!   significance corrected for testing all `k` prefixes of a `k`-slot page: the
//!   largest value whose table a fair ranking (each slot from the tier with
//!   probability `p_t`, independently) fails with probability at most `alpha`.
//!   The fail probability of a table is computed exactly by dynamic
//!   programming over the count of tier items, and `alpha_c` by bisection.

use crate::domain::Tier;
use serde::Serialize;
use std::sync::{Arc, OnceLock};

/// Rounding of the proportional policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Rounding {
    Floor,
    Ceil,
}

/// The minimum counts per tier for every prefix of a `k`-slot page:
/// `table[t][i - 1]` is tier `t`'s minimum among the first `i` slots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MTable {
    pub slots: usize,
    /// The corrected significance per tier (FA*IR only).
    pub alpha_c: Option<[f64; 3]>,
    pub table: [Vec<u32>; 3],
}

impl MTable {
    pub fn min(&self, tier: Tier, prefix: usize) -> u32 {
        if prefix == 0 {
            0
        } else {
            self.table[tier.index()][prefix - 1]
        }
    }
}

/// A validated floor policy. FA*IR tables depend on the page length, so they
/// are computed on first use for each length and cached (a pure function of
/// the config, shared by all requests).
#[derive(Clone)]
pub enum Floors {
    None,
    Proportional {
        shares: [f64; 3],
        rounding: Rounding,
    },
    Fair {
        shares: [f64; 3],
        alpha: f64,
        cache: Arc<Vec<OnceLock<Arc<MTable>>>>,
    },
}

impl std::fmt::Debug for Floors {
    /// The policy and its parameters (not the table cache).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Floors::None => f.write_str("none"),
            Floors::Proportional { shares, rounding } => {
                write!(
                    f,
                    "proportional {rounding:?} (top, mid, small) = {shares:?}"
                )
            }
            Floors::Fair { shares, alpha, .. } => {
                write!(f, "fair alpha {alpha} (top, mid, small) = {shares:?}")
            }
        }
    }
}

impl PartialEq for Floors {
    fn eq(&self, other: &Floors) -> bool {
        match (self, other) {
            (Floors::None, Floors::None) => true,
            (
                Floors::Proportional {
                    shares: a,
                    rounding: r,
                },
                Floors::Proportional {
                    shares: b,
                    rounding: s,
                },
            ) => a == b && r == s,
            (
                Floors::Fair {
                    shares: a,
                    alpha: x,
                    ..
                },
                Floors::Fair {
                    shares: b,
                    alpha: y,
                    ..
                },
            ) => a == b && x == y,
            _ => false,
        }
    }
}

impl Floors {
    /// Validates shares (each in [0, 1], summing to at most 1) and, for the
    /// proportional ceiling, that the floors fit in every prefix up to
    /// `max_slots`. Errors name the offending key relative to `[quotas.floors]`.
    pub fn proportional(
        shares: [f64; 3],
        rounding: Rounding,
        max_slots: usize,
    ) -> Result<Floors, (String, String)> {
        check_shares(&shares)?;
        let floors = Floors::Proportional { shares, rounding };
        for i in 1..=max_slots {
            let total: u32 = Tier::ALL
                .iter()
                .map(|&t| floors.proportional_min(t, i))
                .sum();
            if total as usize > i {
                return Err((
                    "rounding".into(),
                    format!(
                        "with \"ceil\" the floors need {total} of the first {i} slots; use \"floor\" or lower shares"
                    ),
                ));
            }
        }
        Ok(floors)
    }

    pub fn fair(
        shares: [f64; 3],
        alpha: f64,
        max_slots: usize,
    ) -> Result<Floors, (String, String)> {
        check_shares(&shares)?;
        if !(alpha > 0.0 && alpha <= 0.5) {
            return Err(("alpha".into(), format!("{alpha} is outside (0, 0.5]")));
        }
        let cache = (0..=max_slots).map(|_| OnceLock::new()).collect();
        Ok(Floors::Fair {
            shares,
            alpha,
            cache: Arc::new(cache),
        })
    }

    fn proportional_min(&self, tier: Tier, prefix: usize) -> u32 {
        let Floors::Proportional { shares, rounding } = self else {
            return 0;
        };
        let x = shares[tier.index()] * prefix as f64;
        // A hair of tolerance so that 0.35 * 20 counts as 7, not 6.999...
        match rounding {
            Rounding::Floor => (x + 1e-9).floor() as u32,
            Rounding::Ceil => (x - 1e-9).ceil().max(0.0) as u32,
        }
    }

    /// The table for a `slots`-slot page.
    pub fn table(&self, slots: usize) -> Arc<MTable> {
        match self {
            Floors::None => Arc::new(MTable {
                slots,
                alpha_c: None,
                table: [vec![0; slots], vec![0; slots], vec![0; slots]],
            }),
            Floors::Proportional { .. } => Arc::new(MTable {
                slots,
                alpha_c: None,
                table: Tier::ALL
                    .map(|t| (1..=slots).map(|i| self.proportional_min(t, i)).collect()),
            }),
            Floors::Fair {
                shares,
                alpha,
                cache,
            } => match cache.get(slots) {
                Some(cell) => cell
                    .get_or_init(|| Arc::new(fair_table(shares, *alpha, slots)))
                    .clone(),
                // Longer than any page the limits allow: computed, not cached.
                None => Arc::new(fair_table(shares, *alpha, slots)),
            },
        }
    }

    /// FA*IR's table at the configured alpha itself, without the
    /// correction for testing every prefix (`None` for other policies): what
    /// the reference implementation prints before its adjustment, to read
    /// beside [`Floors::table`]. Ranking never uses it.
    pub fn unadjusted_table(&self, slots: usize) -> Option<MTable> {
        let Floors::Fair { shares, alpha, .. } = self else {
            return None;
        };
        Some(MTable {
            slots,
            alpha_c: None,
            table: shares.map(|p| {
                if p <= 0.0 {
                    vec![0; slots]
                } else {
                    mtable(p, *alpha, slots)
                }
            }),
        })
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Floors::None)
    }
}

fn check_shares(shares: &[f64; 3]) -> Result<(), (String, String)> {
    for t in Tier::ALL {
        let p = shares[t.index()];
        if !(0.0..=1.0).contains(&p) {
            return Err((t.name().into(), format!("{p} is outside [0, 1]")));
        }
    }
    let sum: f64 = shares.iter().sum();
    if sum > 1.0 + 1e-9 {
        // Not one key's fault: the caller names the whole table.
        return Err((
            String::new(),
            format!("tier shares top + mid + small sum to {sum}, more than 1"),
        ));
    }
    Ok(())
}

/// FA*IR's table: smallest m with CDF(m; i, p) > alpha, for i = 1..=k.
pub fn mtable(p: f64, alpha: f64, k: usize) -> Vec<u32> {
    let mut dist = vec![1.0f64]; // Binomial(0, p)
    let mut out = Vec::with_capacity(k);
    for _ in 1..=k {
        dist = step(&dist, p);
        let mut cdf = 0.0;
        let mut m = dist.len() - 1;
        for (c, &mass) in dist.iter().enumerate() {
            cdf += mass;
            if cdf > alpha {
                m = c;
                break;
            }
        }
        out.push(m as u32);
    }
    out
}

/// One more Bernoulli(p) trial.
fn step(dist: &[f64], p: f64) -> Vec<f64> {
    let mut next = vec![0.0; dist.len() + 1];
    for (c, &mass) in dist.iter().enumerate() {
        next[c] += mass * (1.0 - p);
        next[c + 1] += mass * p;
    }
    next
}

/// Probability that a fair ranking (Bernoulli(p) per slot) falls below the
/// table at some prefix.
pub fn fail_probability(p: f64, table: &[u32]) -> f64 {
    let mut dist = vec![1.0f64];
    for &m in table {
        dist = step(&dist, p);
        for mass in dist.iter_mut().take(m as usize) {
            *mass = 0.0;
        }
    }
    1.0 - dist.iter().sum::<f64>()
}

/// The corrected significance: the largest alpha_c in (0, alpha] whose table
/// fails a fair ranking with probability at most alpha.
pub fn corrected_alpha(p: f64, alpha: f64, k: usize) -> f64 {
    if p <= 0.0 || k == 0 {
        return alpha;
    }
    let (mut lo, mut hi) = (0.0, alpha);
    if fail_probability(p, &mtable(p, hi, k)) <= alpha {
        return hi;
    }
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if fail_probability(p, &mtable(p, mid, k)) <= alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn fair_table(shares: &[f64; 3], alpha: f64, k: usize) -> MTable {
    let alpha_c = shares.map(|p| corrected_alpha(p, alpha, k));
    let table = Tier::ALL.map(|t| {
        let p = shares[t.index()];
        if p <= 0.0 {
            vec![0; k]
        } else {
            mtable(p, alpha_c[t.index()], k)
        }
    });
    MTable {
        slots: k,
        alpha_c: Some(alpha_c),
        table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtable_matches_the_binomial_quantile() {
        // p = 0.5, alpha = 0.1: at i = 10, CDF(2) = 0.0547, CDF(3) = 0.1719 -> m = 3.
        let t = mtable(0.5, 0.1, 10);
        assert_eq!(t[9], 3);
        assert_eq!(t[0], 0, "one slot: CDF(0) = 0.5 > 0.1");
        assert!(
            t.windows(2).all(|w| w[1] >= w[0] && w[1] <= w[0] + 1),
            "{t:?}"
        );
    }

    #[test]
    fn corrected_alpha_bounds_the_overall_failure_rate() {
        for (p, k) in [(0.25, 20), (0.35, 20), (0.5, 50), (0.1, 100)] {
            let ac = corrected_alpha(p, 0.1, k);
            assert!(ac <= 0.1 && ac > 0.0);
            let fail = fail_probability(p, &mtable(p, ac, k));
            assert!(fail <= 0.1 + 1e-12, "p {p} k {k}: {fail}");
            // Uncorrected, testing every prefix fails fair rankings more often.
            assert!(fail_probability(p, &mtable(p, 0.1, k)) >= fail);
        }
    }

    #[test]
    fn fail_probability_by_hand() {
        // Table [1]: one slot must be the tier's: fails with probability 1 - p.
        assert!((fail_probability(0.3, &[1]) - 0.7).abs() < 1e-12);
        // [0, 1]: fails if neither of two slots is: (1 - p)^2.
        assert!((fail_probability(0.3, &[0, 1]) - 0.49).abs() < 1e-12);
    }

    #[test]
    fn proportional_rounding_and_feasibility() {
        let f = Floors::proportional([0.0, 0.35, 0.25], Rounding::Floor, 100).unwrap();
        let t = f.table(20);
        assert_eq!(t.min(Tier::Mid, 20), 7);
        assert_eq!(t.min(Tier::Small, 4), 1);
        assert_eq!(t.min(Tier::Small, 3), 0);
        let err = Floors::proportional([0.0, 0.35, 0.25], Rounding::Ceil, 100).unwrap_err();
        assert_eq!(err.0, "rounding");
        assert!(Floors::proportional([0.5, 0.5, 0.2], Rounding::Floor, 10).is_err());
        assert!(Floors::fair([0.0, 0.4, 0.3], 0.0, 10).is_err());
    }

    #[test]
    fn fair_tables_are_cached_per_page_length() {
        let f = Floors::fair([0.0, 0.35, 0.25], 0.1, 50).unwrap();
        let a = f.table(20);
        let b = f.table(20);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.table[Tier::Top.index()], vec![0; 20]);
        assert!(
            a.min(Tier::Mid, 20) >= 3 && a.min(Tier::Mid, 20) <= 7,
            "{a:?}"
        );
        assert_eq!(f.table(200).slots, 200, "beyond the cache is still served");
    }

    #[test]
    fn the_unadjusted_table_is_the_stricter_one_at_alpha_itself() {
        let f = Floors::fair([0.0, 0.35, 0.25], 0.1, 50).unwrap();
        let raw = f.unadjusted_table(20).unwrap();
        let adjusted = f.table(20);
        assert_eq!(raw.table[Tier::Mid.index()], mtable(0.35, 0.1, 20));
        assert_eq!(raw.table[Tier::Top.index()], vec![0; 20]);
        // A smaller (corrected) alpha asks for fewer items in each prefix.
        for t in 0..3 {
            assert!(
                raw.table[t]
                    .iter()
                    .zip(&adjusted.table[t])
                    .all(|(r, a)| r >= a)
            );
        }
        assert_ne!(
            raw.table, adjusted.table,
            "the correction binds at 20 slots"
        );
        assert!(Floors::None.unadjusted_table(20).is_none());
    }
}
