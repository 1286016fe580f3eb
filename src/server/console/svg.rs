//! The console's charts as inline SVG, drawn on the server: lines over time
//! (with dashed reference lines) and intervals per arm. No script, no
//! external asset: the page renders the same offline and in any browser.

use std::fmt::Write;

const WIDTH: f64 = 600.0;
/// The plot and its axes; the legend goes below, a row per two lines.
const HEIGHT: f64 = 220.0;
/// Room around the plot: left (y labels), right, top (the title), bottom
/// (x labels).
const PAD: (f64, f64, f64, f64) = (48.0, 14.0, 26.0, 34.0);
/// Height of a legend row.
const ROW: f64 = 15.0;

/// The colours of series, in order (top, mid, small for tiers).
pub const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One line: its points `(x, y)`, its colour and legend text; dashed for
/// a reference (a target, a plan).
pub struct Line<'a> {
    pub label: String,
    pub color: &'a str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a value lands in the plot area.
struct Scale {
    x: (f64, f64),
    y: (f64, f64),
}

impl Scale {
    fn px(&self, x: f64) -> f64 {
        let span = (self.x.1 - self.x.0).max(f64::EPSILON);
        PAD.0 + (x - self.x.0) / span * (WIDTH - PAD.0 - PAD.1)
    }

    fn py(&self, y: f64) -> f64 {
        let span = (self.y.1 - self.y.0).max(f64::EPSILON);
        HEIGHT - PAD.3 - (y - self.y.0) / span * (HEIGHT - PAD.2 - PAD.3)
    }
}

/// The frame: title, axes, y ticks and the x axis' description.
#[allow(clippy::too_many_arguments)]
fn frame(
    out: &mut String,
    id: &str,
    title: &str,
    scale: &Scale,
    x_desc: Option<&str>,
    y_fmt: impl Fn(f64) -> String,
    legend_rows: usize,
) {
    let height = if legend_rows == 0 {
        HEIGHT
    } else {
        HEIGHT + 6.0 + ROW * legend_rows as f64
    };
    let _ = write!(
        out,
        r#"<svg class="chart" id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{t}"><title>{t}</title><text x="{PAD0}" y="16" class="chart-title">{t}</text>"#,
        t = escape(title),
        PAD0 = PAD.0,
    );
    for i in 0..=4 {
        let y = scale.y.0 + (scale.y.1 - scale.y.0) * i as f64 / 4.0;
        let py = scale.py(y);
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            PAD.0,
            WIDTH - PAD.1,
            PAD.0 - 4.0,
            py + 4.0,
            escape(&y_fmt(y)),
        );
    }
    let Some(x_desc) = x_desc else { return };
    for (x, anchor) in [(scale.x.0, "start"), (scale.x.1, "end")] {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="{anchor}">{}</text>"#,
            scale.px(x),
            HEIGHT - PAD.3 + 12.0,
            escape(&compact(x)),
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
        (PAD.0 + WIDTH - PAD.1) / 2.0,
        HEIGHT - 6.0,
        escape(x_desc),
    );
}

/// A number in a few characters: `1.04M`, `783k`, `0.25`, `-12`.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A line chart of `lines` over `x` in `[x_min, x_max]`, y in
/// `[y_min, y_max]`, with a legend. Lines with no points are listed in the
/// legend only.
#[allow(clippy::too_many_arguments)]
pub fn line_chart(
    id: &str,
    title: &str,
    lines: &[Line],
    x: (f64, f64),
    y: (f64, f64),
    x_desc: &str,
    y_fmt: impl Fn(f64) -> String,
) -> String {
    let scale = Scale { x, y };
    let mut out = String::new();
    frame(
        &mut out,
        id,
        title,
        &scale,
        Some(x_desc),
        y_fmt,
        lines.len().div_ceil(2),
    );
    for (i, line) in lines.iter().enumerate() {
        let dash = if line.dashed {
            r#" stroke-dasharray="5 4""#
        } else {
            ""
        };
        if line.points.len() == 1 {
            let (px, py) = (scale.px(line.points[0].0), scale.py(line.points[0].1));
            let _ = write!(
                out,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="2.5" fill="{}"/>"#,
                line.color
            );
        } else if !line.points.is_empty() {
            let points: Vec<String> = line
                .points
                .iter()
                .map(|&(a, b)| format!("{:.1},{:.1}", scale.px(a), scale.py(b)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline class="series" fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
                line.color,
                points.join(" ")
            );
        }
        // Two entries a row, below the plot.
        let ly = HEIGHT + 6.0 + ROW * (i / 2) as f64;
        let lx = PAD.0 + (i % 2) as f64 * (WIDTH - PAD.0 - PAD.1) / 2.0;
        let _ = write!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}" class="legend">{}</text>"#,
            lx + 18.0,
            line.color,
            lx + 22.0,
            ly + 4.0,
            escape(&line.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// One labelled interval: a dot at `mean`, whiskers to `low` and `high`.
pub struct Whisker {
    pub label: String,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Intervals side by side, one per label, on a common y axis.
pub fn interval_chart(
    id: &str,
    title: &str,
    whiskers: &[Whisker],
    y_fmt: impl Fn(f64) -> String,
) -> String {
    let lo = whiskers.iter().map(|w| w.low).fold(f64::INFINITY, f64::min);
    let hi = whiskers
        .iter()
        .map(|w| w.high)
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        let pad = (hi - lo) * 0.15;
        (lo - pad, hi + pad)
    } else {
        (0.0, 1.0)
    };
    let scale = Scale {
        x: (0.0, whiskers.len().max(1) as f64),
        y: (lo, hi),
    };
    let mut out = String::new();
    frame(&mut out, id, title, &scale, None, y_fmt, 0);
    for (i, w) in whiskers.iter().enumerate() {
        let cx = scale.px(i as f64 + 0.5);
        let color = COLORS[i % COLORS.len()];
        let _ = write!(
            out,
            r#"<g class="interval"><line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"/><circle cx="{cx:.1}" cy="{:.1}" r="4" fill="{color}"/><text x="{cx:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text></g>"#,
            scale.py(w.low),
            scale.py(w.high),
            scale.py(w.mean),
            PAD.2 + 10.0,
            escape(&w.label)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_draws_each_series_and_escapes_its_text() {
        let lines = [
            Line {
                label: "top <a&b>".into(),
                color: COLORS[0],
                dashed: false,
                points: vec![(0.0, 0.0), (1.0, 1.0)],
            },
            Line {
                label: "target".into(),
                color: COLORS[0],
                dashed: true,
                points: vec![(0.0, 0.5), (1.0, 0.5)],
            },
        ];
        let svg = line_chart(
            "c1",
            "shares",
            &lines,
            (0.0, 1.0),
            (0.0, 1.0),
            "minutes",
            |y| format!("{y:.1}"),
        );
        assert!(svg.starts_with(r#"<svg class="chart" id="c1""#) && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains("top &lt;a&amp;b&gt;"));
        // The first point at the plot's bottom left, the last at its top right.
        assert!(svg.contains(&format!(
            "points=\"{:.1},{:.1} {:.1},{:.1}\"",
            PAD.0,
            HEIGHT - PAD.3,
            WIDTH - PAD.1,
            PAD.2
        )));
    }

    #[test]
    fn numbers_are_compact() {
        let shown: Vec<String> = [1_044_927.0, 783_695.0, 0.25, -12.0, 150.5]
            .map(compact)
            .to_vec();
        assert_eq!(shown, ["1.04M", "784k", "0.25", "-12", "150"]);
    }

    #[test]
    fn an_interval_chart_has_one_whisker_per_arm() {
        let w = |label: &str, mean: f64| Whisker {
            label: label.into(),
            mean,
            low: mean - 1.0,
            high: mean + 1.0,
        };
        let svg = interval_chart("c2", "value", &[w("base", 5.0), w("x:a", 7.0)], |y| {
            format!("{y:.0}")
        });
        assert_eq!(svg.matches(r#"class="interval""#).count(), 2);
        assert!(svg.contains(">x:a</text>"));
    }
}
