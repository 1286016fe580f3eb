//! Piecewise-linear curves from a quality score to a traffic multiplier.

use serde::Serialize;

/// A validated curve: at least one point, strictly increasing x, finite
/// positive y. Built only through [`Curve::new`], so evaluation never has to
/// handle a malformed curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curve {
    points: Vec<(f64, f64)>,
    /// Per point, the slope of the segment that starts there (0 for the
    /// last, which is flat): evaluating is a multiply-add, not a division.
    #[serde(skip)]
    slopes: Vec<f64>,
}

impl Curve {
    /// Validates the points; the error says which point and why, and the caller
    /// prefixes the config key.
    pub fn new(points: Vec<(f64, f64)>) -> Result<Curve, String> {
        if points.is_empty() {
            return Err("needs at least one [score, multiplier] point".into());
        }
        for (i, &(x, y)) in points.iter().enumerate() {
            if !x.is_finite() || !y.is_finite() {
                return Err(format!("point {i} is not finite"));
            }
            if !(y > 0.0 && y <= 10.0) {
                return Err(format!("point {i}: multiplier {y} is outside (0, 10]"));
            }
            if i > 0 && x <= points[i - 1].0 {
                return Err(format!(
                    "point {i}: score {x} does not increase (previous {})",
                    points[i - 1].0
                ));
            }
        }
        Ok(Curve::with_slopes(points))
    }

    fn with_slopes(points: Vec<(f64, f64)>) -> Curve {
        let slopes = (0..points.len())
            .map(|i| match points.get(i + 1) {
                Some(&(xb, yb)) => (yb - points[i].1) / (xb - points[i].0),
                None => 0.0,
            })
            .collect();
        Curve { points, slopes }
    }

    /// A curve that maps everything to 1 (no effect).
    pub fn neutral() -> Curve {
        Curve::with_slopes(vec![(0.0, 1.0)])
    }

    /// The multiplier at `x`: linear between points, flat beyond the ends.
    #[inline]
    pub fn eval(&self, x: f64) -> f64 {
        let pts = &self.points;
        let (x0, y0) = pts[0];
        if x <= x0 {
            return y0;
        }
        // The segment is the last point at or left of x, found by counting
        // those points (x increases strictly) rather than by a search: a
        // gate evaluates three curves per candidate, and scores fall on
        // either side of a point at random, which a search's branches
        // mispredict.
        let i = pts
            .iter()
            .map(|&(px, _)| usize::from(px <= x))
            .sum::<usize>()
            - 1;
        let (xa, ya) = pts[i];
        if i == pts.len() - 1 {
            return ya;
        }
        ya + self.slopes[i] * (x - xa)
    }

    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn interpolates_and_clamps() {
        let c = Curve::new(vec![(0.0, 0.5), (50.0, 1.0), (100.0, 2.0)]).unwrap();
        assert_eq!(c.eval(-5.0), 0.5);
        assert_eq!(c.eval(0.0), 0.5);
        assert_eq!(c.eval(25.0), 0.75);
        assert_eq!(c.eval(50.0), 1.0);
        assert_eq!(c.eval(75.0), 1.5);
        assert_eq!(c.eval(1000.0), 2.0);
    }

    #[test]
    fn rejects_bad_points() {
        assert!(Curve::new(vec![]).is_err());
        assert!(
            Curve::new(vec![(0.0, 1.0), (0.0, 2.0)])
                .unwrap_err()
                .contains("point 1")
        );
        assert!(
            Curve::new(vec![(0.0, 0.0)])
                .unwrap_err()
                .contains("outside")
        );
        assert!(Curve::new(vec![(f64::NAN, 1.0)]).is_err());
    }

    /// The definition: a search for the segment, interpolated between its
    /// ends.
    fn eval_by_search(c: &Curve, x: f64) -> f64 {
        let pts = c.points();
        match pts.iter().position(|&(px, _)| px > x) {
            None => pts[pts.len() - 1].1,
            Some(0) => pts[0].1,
            Some(i) => {
                let ((xa, ya), (xb, yb)) = (pts[i - 1], pts[i]);
                ya + (yb - ya) * (x - xa) / (xb - xa)
            }
        }
    }

    proptest! {
        /// Counting the points left of `x` finds the segment a search finds,
        /// at the points themselves too, and the slope's multiply-add agrees
        /// with interpolating between the segment's ends.
        #[test]
        fn counting_finds_the_segment_a_search_finds(
            ys in proptest::collection::vec(0.01f64..10.0, 1..8),
            x in -10.0f64..200.0,
            at_point in 0usize..8,
        ) {
            let pts: Vec<_> = ys.iter().enumerate().map(|(i, &y)| (i as f64 * 25.0, y)).collect();
            let c = Curve::new(pts).unwrap();
            let px = at_point as f64 * 25.0;
            for x in [x, px] {
                let (fast, slow) = (c.eval(x), eval_by_search(&c, x));
                prop_assert!((fast - slow).abs() <= 1e-12 * slow, "at {}: {} against {}", x, fast, slow);
            }
        }

        /// A curve with non-decreasing multipliers is monotone and stays within
        /// its end values: a better score never loses traffic.
        #[test]
        fn monotone_curves_stay_monotone(
            mut ys in proptest::collection::vec(0.01f64..10.0, 1..6),
            a in -10.0f64..110.0, b in -10.0f64..110.0,
        ) {
            ys.sort_by(f64::total_cmp);
            let pts: Vec<_> = ys.iter().enumerate().map(|(i, &y)| (i as f64 * 25.0, y)).collect();
            let c = Curve::new(pts).unwrap();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(c.eval(lo) <= c.eval(hi) + 1e-12);
            prop_assert!(c.eval(lo) >= ys[0] - 1e-12);
            prop_assert!(c.eval(hi) <= ys[ys.len() - 1] + 1e-12);
        }
    }
}
