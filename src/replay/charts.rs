//! The replay's charts, as SVG (plotters) and PNG (the SVG rasterized by
//! resvg): tier exposure shares against their targets over time, and the
//! Lorenz curve of exposure across streamers.
//!
//! Text is written as SVG text in `DejaVu Sans`; the PNG renderer is given
//! that font from the repository (`fonts/`), so the charts look the same on
//! any machine and need no system font library.

use super::Summary;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const FAMILY: &str = "DejaVu Sans";
const SIZE: (u32, u32) = (960, 540);

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing {0}: {1}")]
    Draw(String, String),
    #[error("rendering {0} as PNG: {1}")]
    Png(String, String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn draw_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> ChartError + '_ {
    move |e| ChartError::Draw(what.to_string(), e.to_string())
}

const TIER_COLORS: [RGBColor; 3] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
];
const TIER_NAMES: [&str; 3] = ["top", "mid", "small"];

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What a chart is about: both charts plot shares (0 to 1) against `x`.
struct Frame<'t> {
    title: &'t str,
    x_max: f64,
    x_desc: &'t str,
    y_desc: &'t str,
    legend: SeriesLabelPosition,
}

/// An SVG line chart: the frame, the mesh and the legend around what
/// `series` draws.
fn line_chart(
    frame: Frame,
    series: impl FnOnce(&mut Chart) -> Result<(), ChartError>,
) -> Result<String, ChartError> {
    let title = frame.title;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(title))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..frame.x_max, 0f64..1f64)
            .map_err(draw_err(title))?;
        chart
            .configure_mesh()
            .x_desc(frame.x_desc)
            .y_desc(frame.y_desc)
            .label_style((FAMILY, 14))
            .draw()
            .map_err(draw_err(title))?;
        series(&mut chart)?;
        chart
            .configure_series_labels()
            .position(frame.legend)
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err(title))?;
        root.present().map_err(draw_err(title))?;
    }
    Ok(svg)
}

/// A labelled line, with its legend entry.
fn line(
    chart: &mut Chart,
    title: &str,
    points: impl IntoIterator<Item = (f64, f64)>,
    color: RGBColor,
    label: String,
) -> Result<(), ChartError> {
    chart
        .draw_series(LineSeries::new(points, color.stroke_width(2)))
        .map_err(draw_err(title))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

/// Tier shares per hour for one policy, with its targets as dashed lines.
pub fn tier_shares_svg(title: &str, s: &Summary) -> Result<String, ChartError> {
    let hours = s.hourly.len().max(2) as f64;
    let frame = Frame {
        title,
        x_max: hours - 1.0,
        x_desc: "hour of the log (UTC)",
        y_desc: "share of position-weighted exposure",
        legend: SeriesLabelPosition::MiddleRight,
    };
    line_chart(frame, |chart| {
        for t in 0..3 {
            let color = TIER_COLORS[t];
            let points = s
                .hourly
                .iter()
                .enumerate()
                .map(|(h, (_, sh))| (h as f64, sh[t]));
            line(chart, title, points, color, TIER_NAMES[t].to_string())?;
            if let Some(targets) = s.targets {
                // Dashes: short segments along the target.
                let steps = (hours as usize).max(2) * 2;
                let dash: Vec<PathElement<(f64, f64)>> = (0..steps)
                    .step_by(2)
                    .map(|i| {
                        let x0 = i as f64 * (hours - 1.0) / steps as f64;
                        let x1 = (i + 1) as f64 * (hours - 1.0) / steps as f64;
                        PathElement::new(
                            vec![(x0, targets[t]), (x1, targets[t])],
                            color.stroke_width(1),
                        )
                    })
                    .collect();
                chart.draw_series(dash).map_err(draw_err(title))?;
            }
        }
        Ok(())
    })
}

/// Lorenz curves of several policies, with the line of equality.
pub fn lorenz_svg(title: &str, curves: &[(&str, &Summary)]) -> Result<String, ChartError> {
    const COLORS: [RGBColor; 4] = [
        RGBColor(127, 127, 127),
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
    ];
    let frame = Frame {
        title,
        x_max: 1.0,
        x_desc: "share of streamers (least exposed first)",
        y_desc: "share of exposure",
        legend: SeriesLabelPosition::UpperLeft,
    };
    line_chart(frame, |chart| {
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                BLACK.mix(0.3),
            ))
            .map_err(draw_err(title))?;
        for (i, (name, s)) in curves.iter().enumerate() {
            let label = format!("{name} (Gini {:.3})", s.gini);
            line(
                chart,
                title,
                s.lorenz.iter().copied(),
                COLORS[i % COLORS.len()],
                label,
            )?;
        }
        Ok(())
    })
}

/// The SVG as a PNG, text in the shipped font.
pub fn png(name: &str, svg: &str) -> Result<Vec<u8>, ChartError> {
    let fail = |e: String| ChartError::Png(name.to_string(), e);
    let mut options = resvg::usvg::Options {
        font_family: FAMILY.to_string(),
        ..resvg::usvg::Options::default()
    };
    options
        .fontdb_mut()
        .load_font_source(resvg::usvg::fontdb::Source::Binary(Arc::new(FONT)));
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| fail(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| fail("empty image".into()))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| fail(e.to_string()))
}

/// Writes `name.svg` and `name.png` into `dir`; returns their paths.
pub fn write(dir: &Path, name: &str, svg: &str) -> Result<[PathBuf; 2], ChartError> {
    let png_bytes = png(name, svg)?;
    let svg_path = dir.join(format!("{name}.svg"));
    let png_path = dir.join(format!("{name}.png"));
    for (path, bytes) in [(&svg_path, svg.as_bytes()), (&png_path, &png_bytes[..])] {
        super::report::write_atomically(path, bytes).map_err(|source| ChartError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok([svg_path, png_path])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Figures;

    #[test]
    fn charts_render_as_svg_with_their_text_and_as_png() {
        let mut f = Figures::new(4, 0);
        f.streamer_exposure = vec![0.0, 1.0, 2.0, 5.0];
        f.hourly.insert(100, [1.0, 5.0, 4.0]);
        f.hourly.insert(101, [0.5, 5.0, 4.5]);
        let s = f.summary(Some([0.04, 0.5, 0.46]));
        let svg = tier_shares_svg("tiers", &s).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("\nsmall\n"),
            "{svg}"
        );
        let lorenz = lorenz_svg("lorenz", &[("replayed", &s)]).unwrap();
        assert!(lorenz.contains("Gini 0."), "{lorenz}");
        let png = png("lorenz", &lorenz).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let dir = tempfile::tempdir().unwrap();
        let [a, b] = write(dir.path(), "tiers", &svg).unwrap();
        assert!(a.exists() && b.exists());
    }
}
