//! The charts, drawn with `plotters` into SVG strings.
//!
//! Every function returns `Ok(None)` when there is nothing to draw (the page
//! then says so in a sentence), and maps every `plotters` error, and even a
//! panic inside `plotters`, into [`Error::Report`](crate::error::Error).

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, KeyPointWeight, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::html::{escape, sig};
use super::{FONT_FAMILY, report_error};
use crate::error::Result;
use crate::summary::{CurvePoint, FaultRecord, Percentiles};

/// Chart width in pixels (the SVG scales down with the page).
const WIDTH: u32 = 960;
/// Height of the line charts.
const HEIGHT: u32 = 440;
/// The highest percentile the nines axis reaches (99.9999 %).
const MAX_NINES: f64 = 6.0;

/// Line colours (Tableau 10, distinguishable in print and by most readers).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const TEXT: RGBColor = RGBColor(34, 34, 34);
const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);
const GRID_LIGHT: RGBColor = RGBColor(236, 236, 236);
const FAULT: RGBColor = RGBColor(214, 39, 40);

/// The colour of the `i`th series.
pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One latency distribution to draw.
pub(crate) struct Curve<'a> {
    /// The legend's label (unused when there is one curve).
    pub label: String,
    /// The points, percentile 0..=100 and microseconds.
    pub points: &'a [CurvePoint],
}

/// A chart of this module: on an SVG string, both axes ours.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Axis, Axis>>;
/// What drawing on an SVG string can fail with.
type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// The chart on `root` with the house's caption and margins, and label
/// areas of `labels` pixels (below, left).
fn build<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    (x, y): (Axis, Axis),
    labels: (u32, u32),
) -> std::result::Result<Chart<'a, 'b>, DrawError> {
    ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, 20).into_font().color(&TEXT))
        .margin(14)
        .margin_right(28)
        .x_label_area_size(labels.0)
        .y_label_area_size(labels.1)
        .build_cartesian_2d(x, y)
}

/// The grid, the axes' labels (`labels`: how many on x and y) and their
/// descriptions, in the house's style.
fn mesh(
    chart: &mut Chart<'_, '_>,
    labels: (usize, usize),
    x_fmt: &dyn Fn(&f64) -> String,
    y_fmt: &dyn Fn(&f64) -> String,
    x_desc: &str,
    y_desc: &str,
) -> std::result::Result<(), DrawError> {
    chart
        .configure_mesh()
        .x_labels(labels.0)
        .y_labels(labels.1)
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT_FAMILY, 13).into_font().color(&TEXT))
        .axis_desc_style((FONT_FAMILY, 14).into_font().color(&TEXT))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .axis_style(TEXT.mix(0.6))
        .draw()
}

/// The percentiles of `m` pointed out on the latency curve: p50 to p99.9
/// left of `x_max`, and the maximum at it.
fn draw_marks(
    chart: &mut Chart<'_, '_>,
    m: &Percentiles,
    x_max: f64,
    y_of: &dyn Fn(u64) -> f64,
) -> std::result::Result<(), DrawError> {
    let marks = [
        (50.0, "p50", m.p50),
        (90.0, "p90", m.p90),
        (99.0, "p99", m.p99),
        (99.9, "p99.9", m.p999),
    ];
    let mut shown: Vec<(f64, &str, u64)> = marks
        .into_iter()
        .map(|(p, name, us)| (nines(p), name, us))
        .filter(|&(x, _, _)| x < x_max - 1e-9)
        .collect();
    shown.push((x_max, "max", m.max));
    let dot = color(0).filled();
    for (x, name, us) in shown {
        let label = format!("{name} {}", super::html::fmt_us(us));
        // The curve rises to the right: below-right of a point is free,
        // and above-left of the rightmost one.
        let right = x > x_max - 0.5;
        let (anchor, offset) = if right {
            (Pos::new(HPos::Right, VPos::Bottom), (-7, -6))
        } else {
            (Pos::new(HPos::Left, VPos::Top), (8, 5))
        };
        let font = (FONT_FAMILY, 13).into_font().color(&TEXT).pos(anchor);
        chart.draw_series(std::iter::once(
            EmptyElement::at((x, y_of(us)))
                + Circle::new((0, 0), 4, dot)
                + Text::new(label, offset, font),
        ))?;
    }
    Ok(())
}

/// Each fault's window as a shaded band with its name, under the data.
fn draw_fault_bands(
    chart: &mut Chart<'_, '_>,
    faults: &[FaultRecord],
    x_end: f64,
    y_max: f64,
) -> std::result::Result<(), DrawError> {
    for (i, f) in faults.iter().enumerate() {
        let start = (f.start_ns as f64 / 1e9).clamp(0.0, x_end);
        let end = f
            .end_ns
            .map(|ns| ns as f64 / 1e9)
            .unwrap_or(x_end)
            .clamp(start, x_end);
        let band = Rectangle::new([(start, 0.0), (end, y_max)], FAULT.mix(0.14).filled());
        let drawn = chart.draw_series(std::iter::once(band))?;
        if i == 0 {
            drawn.label("fault window").legend(|(x, y)| {
                Rectangle::new([(x, y - 6), (x + 18, y + 6)], FAULT.mix(0.3).filled())
            });
        }
        let font = (FONT_FAMILY, 12)
            .into_font()
            .color(&FAULT)
            .pos(Pos::new(HPos::Left, VPos::Top));
        chart.draw_series(std::iter::once(
            EmptyElement::at((start, y_max)) + Text::new(f.label(), (4, 4), font),
        ))?;
    }
    Ok(())
}

/// The latency chart's y axis over the curves' points and the marks: its
/// unit, the divisor from µs to it, whether it is logarithmic (the values
/// span more than a factor of 20), and the axis.
fn latency_y(
    cleaned: &[(usize, Vec<(f64, u64)>)],
    marks: Option<&Percentiles>,
) -> (&'static str, f64, bool, Axis) {
    let all_us = cleaned
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|&(_, us)| us))
        .chain(
            marks
                .iter()
                .flat_map(|m| [m.p50, m.p90, m.p99, m.p999, m.max]),
        );
    let (mut max_us, mut min_pos_us) = (0_u64, u64::MAX);
    for us in all_us {
        max_us = max_us.max(us);
        if us > 0 {
            min_pos_us = min_pos_us.min(us);
        }
    }
    let (unit, div) = if max_us >= 1_000 {
        ("ms", 1_000.0)
    } else {
        ("µs", 1.0)
    };
    let log = max_us > 0 && min_pos_us != u64::MAX && max_us as f64 / min_pos_us as f64 > 20.0;
    let y_axis = if log {
        // A little room beyond the data; ticks fall on round values inside.
        Axis::new(
            min_pos_us as f64 / div / 1.5,
            max_us as f64 / div * 1.5,
            Scale::Log,
        )
    } else {
        let hi = if max_us == 0 {
            1.0
        } else {
            max_us as f64 / div * 1.1
        };
        Axis::new(0.0, hi, Scale::Linear)
    };
    (unit, div, log, y_axis)
}

/// The acquire-latency percentile chart: x on a "nines" scale
/// (`-log10(1 - p/100)`: 0 %, 90 %, 99 %, 99.9 % equally spaced), y the
/// latency, logarithmic when the values span more than a factor of 20.
///
/// With one curve, `marks` (its percentiles) are pointed out on it; with
/// several, a legend names them.
pub(crate) fn latency_chart(
    path: &Path,
    title: &str,
    curves: &[Curve<'_>],
    marks: Option<&Percentiles>,
) -> Result<Option<String>> {
    // Clean points: finite percentiles in 0..=100, sorted.
    let cleaned: Vec<(usize, Vec<(f64, u64)>)> = curves
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let mut pts: Vec<(f64, u64)> = c
                .points
                .iter()
                .filter(|p| p.percentile.is_finite())
                .map(|p| (p.percentile.clamp(0.0, 100.0), p.us))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            (!pts.is_empty()).then_some((i, pts))
        })
        .collect();
    if cleaned.is_empty() {
        return Ok(None);
    }
    let marks = marks.filter(|m| m.count > 0 && curves.len() == 1);

    // The x axis reaches one nine past the highest percentile below 100.
    let finite_max = cleaned
        .iter()
        .flat_map(|(_, pts)| pts.iter())
        .map(|&(p, _)| nines(p))
        .filter(|x| x.is_finite() && *x <= MAX_NINES)
        .fold(0.0_f64, f64::max);
    let x_max = ((finite_max + 1e-9).floor() + 1.0).clamp(1.0, MAX_NINES);
    let x_of = |p: f64| nines(p).min(x_max);

    let (unit, div, log, y_axis) = latency_y(&cleaned, marks);
    let y_of = |us: u64| (us as f64 / div).max(y_axis.lo);

    guarded(path, || {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            let err = |e| report_error(path, format!("drawing the latency chart: {e}"));
            root.fill(&WHITE).map_err(err)?;
            let axes = (Axis::new(0.0, x_max, Scale::Nines), y_axis.clone());
            let mut chart = build(&root, title, axes, (52, 76)).map_err(err)?;
            let y_desc = format!(
                "acquire latency ({unit}{})",
                if log { ", log scale" } else { "" }
            );
            mesh(
                &mut chart,
                (8, 10),
                &|x: &f64| nines_label(*x),
                &|y: &f64| sig(*y),
                "percentile (nines scale: each step adds a 9)",
                &y_desc,
            )
            .map_err(err)?;

            for (i, pts) in &cleaned {
                let style = color(*i).stroke_width(2);
                let series = pts.iter().map(|&(p, us)| (x_of(p), y_of(us)));
                let drawn = chart
                    .draw_series(LineSeries::new(series, style))
                    .map_err(err)?;
                if cleaned.len() > 1 || curves.len() > 1 {
                    drawn
                        .label(curves[*i].label.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                }
            }
            if curves.len() > 1 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.9))
                    .border_style(TEXT.mix(0.3))
                    .label_font((FONT_FAMILY, 13).into_font().color(&TEXT))
                    .draw()
                    .map_err(err)?;
            }

            if let Some(m) = marks {
                draw_marks(&mut chart, m, x_max, &y_of).map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(finish_svg(svg, title))
    })
    .map(Some)
}

/// Successful acquisitions per second over the run, with each fault window
/// shaded.
pub(crate) fn throughput_chart(
    path: &Path,
    timeline: &[u64],
    mean_per_s: f64,
    duration_s: f64,
    faults: &[FaultRecord],
) -> Result<Option<String>> {
    let duration = if duration_s.is_finite() && duration_s > 0.0 {
        duration_s
    } else {
        0.0
    };
    let fault_end_s = faults
        .iter()
        .filter_map(|f| f.end_ns)
        .map(|ns| ns as f64 / 1e9)
        .fold(0.0_f64, f64::max);
    let x_end = (timeline.len() as f64).max(duration).max(fault_end_s);
    if timeline.is_empty() || x_end <= 0.0 {
        return Ok(None);
    }
    let peak = timeline.iter().copied().max().unwrap_or(0) as f64;
    let mean = if mean_per_s.is_finite() && mean_per_s > 0.0 {
        Some(mean_per_s)
    } else {
        None
    };
    let y_max = (peak.max(mean.unwrap_or(0.0)) * 1.18).max(1.0);
    let title = "Throughput over time";

    guarded(path, || {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            let err = |e| report_error(path, format!("drawing the throughput chart: {e}"));
            root.fill(&WHITE).map_err(err)?;
            let axes = (
                Axis::new(0.0, x_end, Scale::Linear),
                Axis::new(0.0, y_max, Scale::Linear),
            );
            let mut chart = build(&root, title, axes, (52, 76)).map_err(err)?;
            let fmt = |v: &f64| sig(*v);
            mesh(
                &mut chart,
                (12, 8),
                &fmt,
                &fmt,
                "time since the clients started (s)",
                "successful acquisitions / s",
            )
            .map_err(err)?;
            // Fault windows first, under the data.
            draw_fault_bands(&mut chart, faults, x_end, y_max).map_err(err)?;

            // One step per one-second bucket.
            let line = color(0);
            let steps: Vec<(f64, f64)> = timeline
                .iter()
                .enumerate()
                .flat_map(|(i, &n)| [(i as f64, n as f64), (i as f64 + 1.0, n as f64)])
                .collect();
            chart
                .draw_series(
                    AreaSeries::new(steps, 0.0, line.mix(0.18)).border_style(line.stroke_width(2)),
                )
                .map_err(err)?
                .label("acquisitions in each second")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], line.stroke_width(2))
                });

            if let Some(mean) = mean {
                let style = TEXT.mix(0.75).stroke_width(1);
                chart
                    .draw_series(DashedLineSeries::new(
                        [(0.0, mean), (x_end, mean)],
                        6,
                        4,
                        style,
                    ))
                    .map_err(err)?
                    .label(format!("mean {} / s", super::html::fmt_rate(mean)))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }

            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.9))
                .border_style(TEXT.mix(0.3))
                .label_font((FONT_FAMILY, 13).into_font().color(&TEXT))
                .draw()
                .map_err(err)?;
            root.present().map_err(err)?;
        }
        Ok(finish_svg(svg, title))
    })
    .map(Some)
}

/// Horizontal bars, one per run: mean successful acquisitions per second.
pub(crate) fn throughput_bars(path: &Path, bars: &[(String, f64)]) -> Result<Option<String>> {
    let bars: Vec<(String, f64)> = bars
        .iter()
        .map(|(label, v)| {
            let v = if v.is_finite() && *v > 0.0 { *v } else { 0.0 };
            (shorten(label, 44), v)
        })
        .collect();
    if bars.is_empty() {
        return Ok(None);
    }
    let n = bars.len();
    let peak = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
    let x_max = (peak * 1.2).max(1.0);
    let longest = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(0);
    let label_width = (longest as u32 * 8 + 20).clamp(80, 380);
    let height = 120 + 40 * n as u32;
    let title = "Mean throughput";

    guarded(path, || {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            let err = |e| report_error(path, format!("drawing the throughput bars: {e}"));
            root.fill(&WHITE).map_err(err)?;
            let axes = (
                Axis::new(0.0, x_max, Scale::Linear),
                Axis::new(0.0, n as f64, Scale::Category),
            );
            let mut chart = build(&root, title, axes, (48, label_width)).map_err(err)?;
            let x_fmt = |v: &f64| sig(*v);
            // Category `i` is drawn top-down: row 0 at the top.
            let y_fmt = |v: &f64| {
                let row = n as f64 - v.floor() - 1.0;
                if row >= 0.0 {
                    bars.get(row as usize)
                        .map(|b| b.0.clone())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .disable_y_mesh()
                .x_labels(10)
                .y_labels(n)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .x_desc("successful acquisitions / s")
                .label_style((FONT_FAMILY, 13).into_font().color(&TEXT))
                .axis_desc_style((FONT_FAMILY, 14).into_font().color(&TEXT))
                .bold_line_style(GRID_BOLD)
                .light_line_style(GRID_LIGHT)
                .axis_style(TEXT.mix(0.6))
                .draw()
                .map_err(err)?;
            for (row, (_, v)) in bars.iter().enumerate() {
                let slot = (n - 1 - row) as f64;
                let c = color(row);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(0.0, slot + 0.2), (*v, slot + 0.8)],
                        c.mix(0.85).filled(),
                    )))
                    .map_err(err)?;
                let font = (FONT_FAMILY, 13)
                    .into_font()
                    .color(&TEXT)
                    .pos(Pos::new(HPos::Left, VPos::Center));
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((*v, slot + 0.5))
                            + Text::new(super::html::fmt_rate(*v), (6, 0), font),
                    ))
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(finish_svg(svg, title))
    })
    .map(Some)
}

/// Runs a drawing closure, turning a panic inside `plotters` into an error.
fn guarded(path: &Path, draw: impl FnOnce() -> Result<String>) -> Result<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(draw)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(report_error(
            path,
            format!("drawing a chart panicked: {msg}"),
        ))
    })
}

/// Labels the SVG for screen readers.
fn finish_svg(svg: String, title: &str) -> String {
    match svg.find("<svg") {
        Some(at) => {
            let mut out = String::with_capacity(svg.len() + 64);
            out.push_str(&svg[..at]);
            out.push_str("<svg role=\"img\" aria-label=\"");
            out.push_str(&escape(title));
            out.push('"');
            out.push_str(&svg[at + 4..]);
            out
        }
        None => svg,
    }
}

/// Cuts a label to `max` characters, with an ellipsis.
fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// `-log10(1 - p/100)`: 0 for 0 %, 1 for 90 %, 2 for 99 %; infinite at 100 %.
pub(crate) fn nines(percentile: f64) -> f64 {
    let rest = 1.0 - percentile / 100.0;
    if rest <= 0.0 {
        f64::INFINITY
    } else {
        -rest.log10()
    }
}

/// The percentile at `x` nines, as a tick label (`99.9%`).
pub(crate) fn nines_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10_f64.powf(-x));
    let digits = (x.round() as i64 - 2).clamp(0, 6) as usize;
    format!("{p:.digits$}%")
}

/// How an [`Axis`] maps and ticks its values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    /// Linear, ticks at 1/2/5 multiples.
    Linear,
    /// Logarithmic, ticks at powers of ten (and 2, 5 between when few).
    Log,
    /// Linear in nines; ticks at whole nines.
    Nines,
    /// Categories `0..hi`, one tick in the middle of each.
    Category,
}

/// A 1-D coordinate with ticks chosen for the charts here (`plotters`' own
/// log axis puts labels at awkward values).
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    scale: Scale,
}

impl Axis {
    fn new(lo: f64, hi: f64, scale: Scale) -> Self {
        let lo = if lo.is_finite() { lo } else { 0.0 };
        let lo = if scale == Scale::Log && lo <= 0.0 {
            1e-3
        } else {
            lo
        };
        let hi = if hi.is_finite() && hi > lo {
            hi
        } else if scale == Scale::Log {
            lo * 10.0
        } else {
            lo + 1.0
        };
        Axis { lo, hi, scale }
    }

    /// Where `v` falls, 0 at `lo` and 1 at `hi`.
    fn fraction(&self, v: f64) -> f64 {
        let f = match self.scale {
            Scale::Log => {
                let v = v.max(self.lo);
                (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
            }
            _ => (v - self.lo) / (self.hi - self.lo),
        };
        if f.is_finite() {
            f.clamp(-1.0, 2.0)
        } else {
            0.0
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let len = (limit.1 - limit.0) as f64;
        limit.0 + (len * self.fraction(*value) + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let max = hint.max_num_points();
        if max == 0 {
            return Vec::new();
        }
        let light = matches!(hint.weight(), KeyPointWeight::Any) && max > hint.bold_points();
        match self.scale {
            Scale::Linear => {
                let bold = hint.bold_points().clamp(1, max);
                let bold_step = nice_step((self.hi - self.lo) / bold as f64);
                let step = if light { bold_step / 5.0 } else { bold_step };
                let first = (self.lo / step).ceil() as i64;
                let last = (self.hi / step + 1e-9).floor() as i64;
                (first..=last).map(|k| k as f64 * step).collect()
            }
            Scale::Log => {
                let (d0, d1) = (
                    self.lo.log10().floor() as i32,
                    self.hi.log10().ceil() as i32,
                );
                let decades = (d1 - d0).max(1) as usize;
                let mantissas: &[f64] = if light && decades * 9 <= max {
                    &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
                } else if decades <= 2 && decades * 3 <= max {
                    &[1.0, 2.0, 5.0]
                } else {
                    &[1.0]
                };
                let every = decades.div_ceil(max).max(1);
                let mut out = Vec::new();
                for d in (d0..=d1).step_by(every) {
                    for m in mantissas {
                        let v = m * 10_f64.powi(d);
                        if v >= self.lo * (1.0 - 1e-9) && v <= self.hi * (1.0 + 1e-9) {
                            out.push(v);
                        }
                    }
                }
                out
            }
            Scale::Nines => {
                let whole = (self.hi + 1e-9).floor() as i64;
                let mut out: Vec<f64> = (0..=whole).map(|k| k as f64).collect();
                if light {
                    // 50 %, 80 % and the same a nine further (95 %, 98 %, …).
                    for k in 0..whole {
                        out.push(k as f64 + 2_f64.log10());
                        out.push(k as f64 + 5_f64.log10());
                    }
                }
                out
            }
            Scale::Category => {
                if light {
                    return Vec::new();
                }
                let n = (self.hi.floor().max(0.0) as usize).min(1000);
                (0..n).map(|i| i as f64 + 0.5).collect()
            }
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// The smallest of 1, 2, 5 × 10^k at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let base = 10_f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * base >= raw * (1.0 - 1e-9) {
            return m * base;
        }
    }
    10.0 * base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_scale() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!(nines(100.0).is_infinite());
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(4.0), "99.99%");
    }

    #[test]
    fn ticks_are_round() {
        let lin = Axis::new(0.0, 95.0, Scale::Linear);
        assert_eq!(
            lin.key_points(10_usize),
            vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
        );
        let log = Axis::new(1.0, 1000.0, Scale::Log);
        assert_eq!(
            log.key_points(plotters::coord::ranged1d::BoldPoints(10)),
            vec![1.0, 10.0, 100.0, 1000.0]
        );
        let n = Axis::new(0.0, 3.0, Scale::Nines);
        assert_eq!(
            n.key_points(plotters::coord::ranged1d::BoldPoints(8)),
            vec![0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(3.3), 5.0);
    }
}
