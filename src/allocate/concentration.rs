//! How concentrated exposure is across streamers: the numbers the quotas
//! are judged by, in monitoring, evaluation and replay alike.

/// Gini coefficient of non-negative values (0: equal, toward 1: concentrated).
pub fn gini(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().map(|x| x.max(0.0)).collect();
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len() as f64;
    let sum: f64 = v.iter().sum();
    if v.is_empty() || sum <= 0.0 {
        return 0.0;
    }
    let weighted: f64 = v
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x)
        .sum();
    (2.0 * weighted) / (n * sum) - (n + 1.0) / n
}

/// Share of the total held by the top `fraction` of values.
pub fn top_share(values: &[f64], fraction: f64) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_unstable_by(|a, b| b.total_cmp(a));
    let k = ((v.len() as f64 * fraction).ceil() as usize)
        .max(1)
        .min(v.len());
    let sum: f64 = v.iter().sum();
    if sum <= 0.0 {
        0.0
    } else {
        v[..k].iter().sum::<f64>() / sum
    }
}

/// Each tier's share of a total (zeros when there is none).
pub fn shares(exposure: [f64; 3]) -> [f64; 3] {
    let sum: f64 = exposure.iter().sum();
    exposure.map(|e| if sum > 0.0 { e / sum } else { 0.0 })
}

/// The largest gap, in percentage points, between a period's tier share
/// and its target, over the periods with any exposure.
pub fn max_gap_pp<'a>(periods: impl IntoIterator<Item = &'a [f64; 3]>, targets: [f64; 3]) -> f64 {
    periods
        .into_iter()
        .filter(|h| h.iter().sum::<f64>() > 0.0)
        .flat_map(|&h| {
            let s = shares(h);
            (0..3).map(move |t| (s[t] - targets[t]).abs())
        })
        .fold(0.0, f64::max)
        * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_and_top_share() {
        assert_eq!(gini(&[1.0, 1.0, 1.0, 1.0]), 0.0);
        assert!((gini(&[0.0, 0.0, 0.0, 1.0]) - 0.75).abs() < 1e-12);
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(top_share(&[1.0, 1.0, 2.0, 4.0], 0.25), 0.5);
    }
}
