//! Chart of the FlashAttention report: four panels against sequence length (log2 axis), one line
//! per attention implementation: attention share of step time (with the 50% line), step speedup
//! over naive (only where both fit in memory), memory per GPU at the report's batch against the
//! GPU's capacity (the line that says what fits), and the largest batch per GPU that fits.
//!
//! Log axes are drawn in log2 coordinates with ticks at powers of two (1, 2, 4 ... GiB; 1, 2,
//! 4 ... samples), so that every tick is a round number. One legend above the panels covers them
//! all; lines that coincide stay distinguishable by width, dash and marker shape (flash2: a wide
//! line with diamonds under flash3's thin line with small circles). A hollow marker is a
//! configuration that does not fit in memory at the report's batch; the model's own sequence
//! length is a dotted vertical line.

use super::{draw_marker, series_color, DrawResult, Figure, Shape};
use crate::analysis::flash::{FlashReport, FlashRow};
use crate::graph::AttentionImpl;
use crate::units::{binary_bytes, Bytes};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One (implementation, sequence length) point.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// Sequence length.
    pub seq: u64,
    /// Attention share of step time.
    pub share: f64,
    /// Step speedup over naive (None where either does not fit).
    pub speedup: Option<f64>,
    /// Memory per GPU at the report's batch, bytes.
    pub memory: f64,
    /// Largest batch per GPU that fits.
    pub max_batch: u64,
    /// Whether it fits at the report's batch.
    pub fits: bool,
}

/// The chart.
#[derive(Debug, Clone)]
pub struct FlashChart {
    /// Title.
    pub title: String,
    /// Second line: the configuration.
    pub subtitle: String,
    /// Batch per GPU of every point.
    pub batch: u64,
    /// GPU memory capacity, bytes.
    pub capacity: f64,
    /// The model's own sequence length.
    pub own_seq: u64,
    /// Points per implementation (configurations that cannot be evaluated are left out).
    pub lines: Vec<(String, Vec<Point>)>,
}

/// Line width, dash (None: solid) and marker of the implementation called `name`: coinciding
/// lines stay visible (naive under sdpa-math, flash2 under flash3 and flash1).
fn style(name: &str) -> (u32, Option<(u32, u32)>, Shape, i32) {
    match name {
        "naive" => (4, None, Shape::Circle, 5),
        "sdpa-math" => (2, Some((8, 5)), Shape::Square, 4),
        "unfused" => (2, None, Shape::Triangle, 5),
        "flash1" => (2, Some((3, 4)), Shape::Square, 4),
        "flash2" => (6, None, Shape::Diamond, 7),
        _ => (2, None, Shape::Circle, 3),
    }
}

/// Marker `shape` in colour `col`, filled or hollow (white inside).
fn mark<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    shape: Shape,
    at: (i32, i32),
    r: i32,
    col: RGBColor,
    filled: bool,
) -> DrawResult<DB> {
    let fill = if filled { col.filled() } else { WHITE.filled() };
    draw_marker(area, shape, at, r, fill, col.stroke_width(2))
}

/// A power of two of GiB as a round label: 256 MiB, 1 GiB, 64 GiB, 2 TiB.
pub fn gib_label(log2_gib: i32) -> String {
    match log2_gib {
        e if e < 0 => format!("{} MiB", 1u64 << (10 + e).max(0)),
        e if e >= 10 => format!("{} TiB", 1u64 << (e - 10).min(60)),
        e => format!("{} GiB", 1u64 << e),
    }
}

impl FlashChart {
    /// From a report (configurations that cannot be evaluated are left out).
    pub fn new(r: &FlashReport) -> Self {
        let point = |x: &FlashRow| {
            Some(Point {
                seq: x.seq,
                share: x.attention_share?,
                speedup: x.speedup_vs_naive,
                memory: x.memory_bytes?,
                max_batch: x.max_batch?,
                fits: x.fits?,
            })
        };
        let lines: Vec<(String, Vec<Point>)> = AttentionImpl::ALL
            .iter()
            .map(|a| {
                let pts = r
                    .rows
                    .iter()
                    .filter(|x| x.attention == a.name())
                    .filter_map(point)
                    .collect();
                (a.to_string(), pts)
            })
            .collect();
        let seqs: Vec<u64> = lines
            .iter()
            .flat_map(|l| l.1.iter().map(|p| p.seq))
            .collect();
        let (lo, hi) = (
            seqs.iter().min().copied().unwrap_or(0),
            seqs.iter().max().copied().unwrap_or(0),
        );
        // The model of a --seq run is named "model@seqN"; the chart spans many lengths.
        let model = r.model.split("@seq").next().unwrap_or(&r.model);
        FlashChart {
            title: format!(
                "Attention implementations over sequence lengths {lo}-{hi}: {model} on {}",
                r.gpu
            ),
            subtitle: format!(
                "{}; the model's own sequence length {} dotted",
                r.configuration, r.own_seq
            ),
            batch: r.batch,
            capacity: r.capacity_bytes,
            own_seq: r.own_seq,
            lines,
        }
    }

    /// Draws one panel: `pick` gives a point's y in the panel's coordinates (None: not drawn),
    /// `y_range` the axis, `fmt` the tick labels, `extra` the horizontal reference line
    /// (value, label, colour).
    #[allow(clippy::too_many_arguments)]
    fn panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
        name: &str,
        pick: &dyn Fn(&Point) -> Option<f64>,
        y_range: (f64, f64),
        y_ticks: usize,
        fmt: &dyn Fn(&f64) -> String,
        extra: Option<(f64, String, RGBColor)>,
    ) -> DrawResult<DB> {
        let seqs: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|l| l.1.iter().map(|p| (p.seq as f64).log2()))
            .collect();
        let (x0, x1) = seqs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        let (x0, x1) = if x0.is_finite() {
            (x0 - 0.3, x1 + 0.3)
        } else {
            (7.0, 14.0)
        };
        let xfmt = |v: &f64| {
            if (v - v.round()).abs() < 1e-6 && *v >= 0.0 {
                format!("{}", 1u64 << (v.round() as u32).min(62))
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .caption(name, ("sans-serif", 16))
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y_range.0..y_range.1)?;
        chart
            .configure_mesh()
            .x_desc("sequence length (tokens, log scale)")
            .x_labels(((x1 - x0).ceil() as usize + 1) * 2)
            .y_labels(y_ticks)
            .x_label_formatter(&xfmt)
            .y_label_formatter(fmt)
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let own = (self.own_seq as f64).log2();
        if own > x0 && own < x1 {
            chart.draw_series(DashedLineSeries::new(
                vec![(own, y_range.0), (own, y_range.1)],
                2,
                4,
                RGBColor(90, 90, 90).stroke_width(1),
            ))?;
        }
        if let Some((y, label, col)) = extra {
            chart.draw_series(DashedLineSeries::new(
                vec![(x0, y), (x1, y)],
                10,
                5,
                col.stroke_width(2),
            ))?;
            let at = chart.backend_coord(&(x0, y));
            root.draw(&Text::new(
                label,
                (at.0 + 6, at.1 - 17),
                ("sans-serif", 13).into_font().color(&col),
            ))?;
        }
        for (i, (name, pts)) in self.lines.iter().enumerate() {
            let col = series_color(i);
            let (width, dash, shape, r) = style(name);
            // Line segments between consecutive drawable points.
            let mut segs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for p in pts {
                match (pick(p), segs.last_mut()) {
                    (Some(y), Some(seg)) => seg.push(((p.seq as f64).log2(), y)),
                    _ => segs.push(Vec::new()),
                }
            }
            for seg in segs.into_iter().filter(|s| s.len() > 1) {
                match dash {
                    None => {
                        chart.draw_series(LineSeries::new(seg, col.stroke_width(width)))?;
                    }
                    Some((on, off)) => {
                        chart.draw_series(DashedLineSeries::new(
                            seg,
                            on,
                            off,
                            col.stroke_width(width),
                        ))?;
                    }
                }
            }
            for p in pts {
                if let Some(y) = pick(p) {
                    let at = chart.backend_coord(&((p.seq as f64).log2(), y));
                    mark(root, shape, at, r, col, p.fits)?;
                }
            }
        }
        Ok(())
    }

    fn legend<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, y: i32) -> DrawResult<DB> {
        let font = ("sans-serif", 14).into_font();
        let mut x = 16;
        for (i, (name, _)) in self.lines.iter().enumerate() {
            let col = series_color(i);
            let (width, dash, shape, r) = style(name);
            let (on, off) = dash.unwrap_or((36, 0));
            let mut s = x;
            while s < x + 36 {
                root.draw(&PathElement::new(
                    vec![(s, y + 8), ((s + on as i32).min(x + 36), y + 8)],
                    col.stroke_width(width),
                ))?;
                s += (on + off) as i32;
            }
            mark(root, shape, (x + 18, y + 8), r, col, true)?;
            root.draw(&Text::new(name.clone(), (x + 44, y), font.clone()))?;
            let w = root.estimate_text_size(name, &font.clone().into_text_style(root))?;
            x += 44 + w.0 as i32 + 24;
        }
        mark(
            root,
            Shape::Circle,
            (x + 6, y + 8),
            5,
            RGBColor(90, 90, 90),
            false,
        )?;
        let t = format!(
            "hollow: does not fit in memory at batch {} per GPU",
            self.batch
        );
        root.draw(&Text::new(t, (x + 18, y), font))?;
        Ok(())
    }
}

/// (low, high) of the integers spanning log2 of `values`, at least `min_span` apart.
fn log2_span(values: impl Iterator<Item = f64>, min_span: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .map(f64::log2)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, min_span);
    }
    let (lo, hi) = ((lo - 0.3).floor(), (hi + 0.3).ceil());
    (lo, hi.max(lo + min_span))
}

impl Figure for FlashChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            self.title.clone(),
            (16, 8),
            ("sans-serif", 18).into_font(),
        ))?;
        root.draw(&Text::new(
            self.subtitle.clone(),
            (16, 32),
            ("sans-serif", 13).into_font().color(&RGBColor(80, 80, 80)),
        ))?;
        self.legend(root, 54)?;
        let body = root.margin(78, 4, 4, 4);
        let panels = body.split_evenly((2, 2));
        let pts = || self.lines.iter().flat_map(|l| l.1.iter());
        let share_hi = pts().fold(0.0f64, |a, p| a.max(p.share));
        self.panel(
            root,
            &panels[0],
            "attention share of step time",
            &|p| Some(p.share),
            (0.0, (share_hi * 1.1).clamp(0.55, 1.0)),
            11,
            &|v| format!("{:.0}%", v * 100.0),
            Some((0.5, "50%".into(), RGBColor(0, 0, 0))),
        )?;
        let speed_hi = pts().filter_map(|p| p.speedup).fold(1.0f64, f64::max);
        self.panel(
            root,
            &panels[1],
            "step speedup over naive (where both fit in memory)",
            &|p| p.speedup,
            (0.0, speed_hi * 1.15),
            8,
            &|v| format!("{v:.1}x"),
            None,
        )?;
        // Where naive does not fit there is no speedup: say so in the empty part of the panel.
        let naive_unfit = self
            .lines
            .first()
            .and_then(|l| l.1.iter().find(|p| !p.fits))
            .map(|p| p.seq);
        if let Some(seq) = naive_unfit {
            let (w, h) = panels[1].dim_in_pixel();
            let font = ("sans-serif", 13).into_font().color(&RGBColor(80, 80, 80));
            for (k, line) in [
                format!("naive does not fit at batch {}", self.batch),
                format!("from sequence {seq} on: no speedup shown"),
            ]
            .into_iter()
            .enumerate()
            {
                panels[1].draw(&Text::new(
                    line,
                    (w as i32 / 2 + 10, h as i32 / 2 - 20 + 18 * k as i32),
                    font.clone(),
                ))?;
            }
        }
        const GIB: f64 = (1u64 << 30) as f64;
        let (m0, m1) = log2_span(
            pts()
                .map(|p| p.memory / GIB)
                .chain(std::iter::once(self.capacity / GIB)),
            2.0,
        );
        self.panel(
            root,
            &panels[2],
            &format!(
                "memory per GPU at batch {} (log scale) and the GPU's memory",
                self.batch
            ),
            &|p| Some((p.memory / GIB).log2()),
            (m0, m1),
            (m1 - m0) as usize + 1,
            &|v| {
                if (v - v.round()).abs() < 1e-6 {
                    gib_label(v.round() as i32)
                } else {
                    String::new()
                }
            },
            Some((
                (self.capacity / GIB).log2(),
                format!("GPU memory {}", binary_bytes(Bytes(self.capacity))),
                RGBColor(200, 0, 0),
            )),
        )?;
        // Batch 0 (not even one sample fits) sits one step below 1 on the log2 axis.
        let b_of = |p: &Point| {
            if p.max_batch == 0 {
                -1.0
            } else {
                (p.max_batch as f64).log2()
            }
        };
        let (b0, b1) = log2_span(pts().map(|p| (p.max_batch as f64).max(0.5)), 2.0);
        let b0 = b0.min(0.0);
        self.panel(
            root,
            &panels[3],
            "largest batch per GPU that fits (log scale)",
            &|p| Some(b_of(p)),
            (b0, b1),
            (b1 - b0) as usize + 1,
            &|v| {
                let r = v.round();
                if (v - r).abs() > 1e-6 {
                    String::new()
                } else if r < 0.0 {
                    if r == -1.0 {
                        "0 (none)".into()
                    } else {
                        String::new()
                    }
                } else {
                    format!("{}", 1u64 << (r as u32).min(62))
                }
            },
            None,
        )?;
        Ok(())
    }
}
