//! The organic order: the `k` best scores, highest first, ties broken by
//! candidate order so the result is deterministic. Used where quotas are off
//! for the scene, and as the reference the quota allocator must equal when
//! no quota binds.

use std::cmp::Ordering;

/// Descending by score, then ascending by index.
fn by_score_desc(scores: &[f64]) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    move |&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b))
}

/// Indices of the `k` highest-scoring eligible candidates, in slot order.
/// O(n + k log k): a selection, then a sort of the winners only.
pub fn top_k(scores: &[f64], eligible: &[bool], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).filter(|&i| eligible[i]).collect();
    let cmp = by_score_desc(scores);
    if k < idx.len() {
        idx.select_nth_unstable_by(k, &cmp);
        idx.truncate(k);
    }
    idx.sort_unstable_by(&cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ties_keep_candidate_order() {
        assert_eq!(top_k(&[1.0, 2.0, 2.0, 0.5], &[true; 4], 3), vec![1, 2, 0]);
    }

    #[test]
    fn ineligible_candidates_are_never_placed() {
        assert_eq!(top_k(&[9.0, 1.0, 5.0], &[false, true, true], 3), vec![2, 1]);
    }

    proptest! {
        /// The selection equals sort-and-truncate of the eligible candidates.
        #[test]
        fn equals_sort_and_truncate(
            items in proptest::collection::vec((0u8..20, any::<bool>()), 0..60),
            k in 0usize..70,
        ) {
            let scores: Vec<f64> = items.iter().map(|(s, _)| f64::from(*s) / 4.0).collect();
            let eligible: Vec<bool> = items.iter().map(|(_, e)| *e).collect();
            let mut naive: Vec<usize> = (0..scores.len()).filter(|&i| eligible[i]).collect();
            naive.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            naive.truncate(k);
            prop_assert_eq!(top_k(&scores, &eligible, k), naive);
        }
    }
}
