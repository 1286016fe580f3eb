//! What a reader refuses in a `rank` record beyond its JSON types: served
//! slots whose positions or propensities cannot mean what the format says.
//! Refused per record, with the field, so `--on-error skip` drops only the
//! record and `fail` names it.

use super::{PropensityKind, RankRecord, ServedSlot};

impl ServedSlot {
    /// The 0-based slot of each entry of `served`: its `position`, or the
    /// slot after the previous entry's.
    pub fn positions(served: &[ServedSlot]) -> impl Iterator<Item = u32> + '_ {
        let mut next = 0u32;
        served.iter().map(move |s| {
            let p = s.position.unwrap_or(next);
            next = p.saturating_add(1);
            p
        })
    }
}

impl RankRecord {
    /// Refuses served slots out of order or beyond `slots`, propensities
    /// outside (0, 1], a `propensity_kind` without a propensity, and a
    /// cascade propensity on a slot whose slots above are not all logged
    /// (it is conditional on them, so without them it weights nothing).
    pub fn check(&self) -> Result<(), String> {
        let mut previous: Option<u32> = None;
        for (i, (s, position)) in self
            .served
            .iter()
            .zip(ServedSlot::positions(&self.served))
            .enumerate()
        {
            if position >= self.slots {
                return Err(format!(
                    "served[{i}].position: {position} is not below slots ({})",
                    self.slots
                ));
            }
            if previous.is_some_and(|p| position <= p) {
                return Err(format!(
                    "served[{i}].position: {position} does not follow the entry before it ({}); \
                     list a page's slots once each, top first",
                    previous.unwrap_or(0)
                ));
            }
            previous = Some(position);
            match (s.propensity, s.propensity_kind) {
                (None, Some(_)) => {
                    return Err(format!(
                        "served[{i}].propensity_kind: given without a propensity"
                    ));
                }
                (Some(p), kind) => {
                    if !(p > 0.0 && p <= 1.0) {
                        return Err(format!("served[{i}].propensity: {p} is outside (0, 1]"));
                    }
                    let cascade =
                        kind.unwrap_or(PropensityKind::Cascade) == PropensityKind::Cascade;
                    if cascade && position as usize != i {
                        return Err(format!(
                            "served[{i}].propensity: a cascade propensity at slot {position} needs \
                             every slot above it logged; give `propensity_kind: \"marginal\"` if \
                             it is the probability of the item at this slot alone"
                        ));
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ItemKind, Millis, Scene};

    fn record(served: Vec<ServedSlot>) -> RankRecord {
        RankRecord {
            time: Millis(0),
            request_id: "r".into(),
            user_id: "u".into(),
            scene: Scene::Recommend,
            slots: 5,
            candidates: Vec::new(),
            served,
            policy: None,
            arms: None,
        }
    }

    fn slot(position: Option<u32>, p: Option<f64>, kind: Option<PropensityKind>) -> ServedSlot {
        ServedSlot {
            item_id: "g".into(),
            kind: ItemKind::Goods,
            position,
            propensity: p,
            propensity_kind: kind,
        }
    }

    #[test]
    fn positions_default_to_the_slot_after_the_previous_entry() {
        let served = [
            slot(None, None, None),
            slot(Some(3), None, None),
            slot(None, None, None),
        ];
        assert_eq!(
            ServedSlot::positions(&served).collect::<Vec<_>>(),
            [0, 3, 4]
        );
    }

    #[test]
    fn a_sparse_page_of_marginal_propensities_is_accepted() {
        let m = Some(PropensityKind::Marginal);
        let r = record(vec![
            slot(Some(1), Some(0.2), m),
            slot(Some(4), Some(1.0), m),
        ]);
        assert_eq!(r.check(), Ok(()));
        // A version-1 page: a prefix with cascade propensities.
        let r = record(vec![
            slot(None, Some(0.5), None),
            slot(None, Some(0.25), None),
        ]);
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn every_refusal_names_the_entry_and_the_field() {
        let m = Some(PropensityKind::Marginal);
        let cases = [
            (
                vec![slot(None, Some(0.0), None)],
                "served[0].propensity: 0 is outside (0, 1]",
            ),
            (
                vec![slot(None, None, None), slot(None, Some(-0.5), m)],
                "served[1].propensity: -0.5 is outside (0, 1]",
            ),
            (
                vec![slot(None, Some(1.5), m)],
                "served[0].propensity: 1.5 is outside (0, 1]",
            ),
            (
                vec![slot(None, Some(f64::NAN), m)],
                "served[0].propensity: NaN is outside (0, 1]",
            ),
            (
                vec![slot(Some(5), None, None)],
                "served[0].position: 5 is not below slots (5)",
            ),
            (
                vec![slot(Some(2), None, None), slot(Some(2), None, None)],
                "served[1].position: 2 does not follow",
            ),
            (
                vec![slot(None, None, m)],
                "served[0].propensity_kind: given without a propensity",
            ),
            (
                vec![slot(Some(2), Some(0.5), Some(PropensityKind::Cascade))],
                "served[0].propensity: a cascade propensity at slot 2 needs every slot above",
            ),
        ];
        for (served, expected) in cases {
            let e = record(served).check().unwrap_err();
            assert!(e.starts_with(expected), "{e} (expected {expected})");
        }
    }
}
