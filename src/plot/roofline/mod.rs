//! The roofline chart of one training step (Williams, Waterman & Patterson, "Roofline: an
//! insightful visual performance model", CACM 2009): log-log axes of arithmetic intensity
//! I = FLOPs / HBM bytes (FLOP/byte) against FLOP/s.
//!
//! - Memory roof: attainable = I · B, with B the datasheet HBM bandwidth (solid) and B · a_hbm
//!   the achievable bandwidth (dashed), a_hbm from the GPU file's `achievable.hbm`.
//! - Compute roofs: one per unit and dtype the step uses (bf16 tensor, fp32 vector; fp8 / tf32
//!   when used): the datasheet dense peak P (solid) and the achievable P · a (dashed).
//! - Ridge point of each achievable roof: I* = P · a / (B · a_hbm); ops left of it are
//!   memory-bound on the roofline.
//! - Each op of the step is a point at (I, FLOPs / t), with I from the bytes the op moves in the
//!   chosen execution mode (unfused in eager, fused-chain traffic in compiled/graphs) and t the
//!   predicted GPU time of one instance ([`crate::time::op_time`]: incl. launch gap). Marker area
//!   grows with the op's share of step time (all layers and micro-steps it stands for); colour is
//!   the op class, shape the phase (circle forward, triangle backward, square optimizer). Ops
//!   without FLOPs (casts, copies) or without HBM traffic have no place on log axes and are
//!   counted in the caption.
//! - Measured kernels from a bench file (schema `roofline-bench/1`, e.g. `roofline bench --out`)
//!   are black markers at (FLOPs / bytes, FLOPs / time), one shape per kernel name (the
//!   [`MEASURED_SHAPES`] names with most points; the rest share a dot), named in the legend, so
//!   that every measured point is identified without a label on the plot; pure copies (no
//!   FLOPs) are left out.
//! - Labels: each roof's figures with its ridge point, the HBM roof, and the [`LABELLED`] costliest
//!   ops that take at least [`MIN_LABEL_SHARE`] of the step. They are placed by [`layout`]:
//!   markers and roof lines are obstacles, no label touches another, and a label without a free
//!   spot is dropped.

pub mod layout;

use super::{class_color, draw_marker, si_label, DrawResult, Figure, Shape};
use crate::analysis::roofline::{MeasuredPoint, RooflineChart};
use crate::error::{Error, Result};
use crate::graph::{OpClass, Phase};
use layout::{Layout, Rect};
use plotters::coord::combinators::LogCoord;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Ops labelled by name at most (the ones that cost most).
pub const LABELLED: usize = 8;

/// Smallest share of step time that earns an op a label.
pub const MIN_LABEL_SHARE: f64 = 0.02;

/// Measured kernel names with a shape of their own.
pub const MEASURED_SHAPES: usize = 8;

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>;
type DrawError<DB> = DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>;

impl RooflineChart {
    /// Measured points that fit log axes meant for training ops (intensity ≥ 1e-3 FLOP/byte,
    /// ≥ 1 MFLOP/s); pure copies (a FLOP count of ~0) have no place on them.
    fn plottable(&self) -> impl Iterator<Item = &MeasuredPoint> {
        self.measured
            .iter()
            .filter(|m| m.intensity >= 1e-3 && m.flops_per_s >= 1e6)
    }

    /// Measured kernel names, most points first (ties in file order): the first
    /// [`MEASURED_SHAPES`] get a shape each.
    pub fn measured_names(&self) -> Vec<String> {
        let mut names: Vec<(String, usize)> = Vec::new();
        for m in self.plottable() {
            match names.iter_mut().find(|n| n.0 == m.name) {
                Some(n) => n.1 += 1,
                None => names.push((m.name.clone(), 1)),
            }
        }
        names.sort_by_key(|n| std::cmp::Reverse(n.1));
        names.into_iter().map(|n| n.0).collect()
    }

    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let xs = self
            .points
            .iter()
            .map(|p| p.intensity)
            .chain(self.plottable().map(|m| m.intensity));
        let ys = self
            .points
            .iter()
            .map(|p| p.flops_per_s)
            .chain(self.plottable().map(|m| m.flops_per_s));
        let (mut x0, mut x1) = xs.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
        let (mut y0, mut y1) = ys.fold((f64::INFINITY, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
        for r in &self.roofs {
            x1 = x1.max(self.ridge(r) * 4.0);
            x0 = x0.min(self.ridge(r) / 8.0);
            y1 = y1.max(r.peak);
        }
        if !x0.is_finite() {
            x0 = 0.1;
            y0 = 1e11;
        }
        x0 = 10f64.powf((x0 / 2.0).log10().floor()).max(1e-3);
        x1 = 10f64.powf((x1 * 2.0).log10().ceil());
        y0 = 10f64.powf((y0 / 2.0).log10().floor()).max(1e6);
        y1 *= 3.0;
        ((x0, x1), (y0, y1))
    }
}

/// An op's marker: a circle forward, a triangle backward, a square for the optimizer.
fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    phase: Phase,
    at: (i32, i32),
    r: i32,
    fill: ShapeStyle,
    edge: ShapeStyle,
) -> DrawResult<DB> {
    let (shape, size) = match phase {
        Phase::Forward => (Shape::Circle, r),
        Phase::Backward => (Shape::Triangle, (r as f64 * 1.3) as i32),
        Phase::Optimizer => (Shape::Square, r * 9 / 10),
    };
    draw_marker(area, shape, at, size, fill, edge)
}

fn radius(share: f64) -> i32 {
    (3.0 + 22.0 * share.max(0.0).sqrt()).round() as i32
}

/// Measured-kernel marker `k` (black): x, plus, square, diamond, triangle, circle, star,
/// inverted triangle; beyond those a small dot.
fn measured_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    k: usize,
    at: (i32, i32),
    r: i32,
) -> DrawResult<DB> {
    let (x, y) = at;
    let pen = BLACK.mix(0.85).stroke_width(2);
    let poly = |pts: Vec<(i32, i32)>| {
        let mut closed = pts.clone();
        closed.push(pts[0]);
        PathElement::new(closed, pen)
    };
    match k {
        0 => area.draw(&Cross::new(at, r, pen)),
        1 => {
            area.draw(&PathElement::new(vec![(x - r, y), (x + r, y)], pen))?;
            area.draw(&PathElement::new(vec![(x, y - r), (x, y + r)], pen))
        }
        2 => area.draw(&poly(vec![
            (x - r, y - r),
            (x + r, y - r),
            (x + r, y + r),
            (x - r, y + r),
        ])),
        3 => area.draw(&poly(vec![
            (x, y - r - 1),
            (x + r + 1, y),
            (x, y + r + 1),
            (x - r - 1, y),
        ])),
        4 => area.draw(&poly(vec![
            (x, y - r - 1),
            (x + r + 1, y + r),
            (x - r - 1, y + r),
        ])),
        5 => area.draw(&Circle::new(at, r, pen)),
        6 => {
            area.draw(&Cross::new(at, r, pen))?;
            area.draw(&PathElement::new(vec![(x - r - 1, y), (x + r + 1, y)], pen))
        }
        7 => area.draw(&poly(vec![
            (x, y + r + 1),
            (x + r + 1, y - r),
            (x - r - 1, y - r),
        ])),
        _ => area.draw(&Circle::new(at, 2, BLACK.filled())),
    }
}

/// A placed label's colour.
type Colours = Vec<RGBColor>;

impl RooflineChart {
    /// The plot and legend areas of `root`.
    fn areas<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
        let (w, _) = root.dim_in_pixel();
        root.margin(64, 8, 8, 8).split_horizontally(w as i32 - 300)
    }

    /// The log-log chart on `plot`.
    fn mesh<'a, DB: DrawingBackend>(
        &self,
        plot: &'a DrawingArea<DB, Shift>,
    ) -> std::result::Result<Chart<'a, DB>, DrawError<DB>> {
        let ((x0, x1), (y0, y1)) = self.ranges();
        ChartBuilder::on(plot)
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(78)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
    }

    /// The roof lines as (start, end) in data coordinates: memory roofs (datasheet, achievable)
    /// up to the highest roof, then each compute roof's peak and achievable line.
    fn roof_lines(&self) -> Vec<((f64, f64), (f64, f64))> {
        let ((x0, x1), (_, y1)) = self.ranges();
        let top = self.roofs.first().map_or(y1, |r| r.peak);
        let mut v = Vec::new();
        for b in [self.hbm, self.hbm * self.hbm_fraction] {
            let end = (top / b).min(x1);
            v.push(((x0, x0 * b), (end, end * b)));
        }
        for r in &self.roofs {
            v.push(((r.peak / self.hbm, r.peak), (x1, r.peak)));
            let ach = r.peak * r.fraction;
            v.push(((self.ridge(r), ach), (x1, ach)));
        }
        v
    }

    /// Places every label among the markers and roof lines of `chart` (see [`layout`]).
    fn place<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        chart: &Chart<'_, DB>,
    ) -> std::result::Result<(Layout, Colours), DrawError<DB>> {
        let small = ("sans-serif", 13).into_font();
        let measure = |t: &str| -> std::result::Result<(i32, i32), DrawError<DB>> {
            let s = root.estimate_text_size(t, &small.clone().into_text_style(root))?;
            Ok((s.0 as i32, s.1 as i32))
        };
        let px = |x: f64, y: f64| chart.backend_coord(&(x, y));
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let mut l = Layout {
            bounds: Some(Rect {
                x0: xr.start,
                y0: yr.start,
                x1: xr.end,
                y1: yr.end,
            }),
            ..Layout::default()
        };
        let mut colours = Vec::new();
        for (a, b) in self.roof_lines() {
            l.segments.push((px(a.0, a.1), px(b.0, b.1)));
        }
        for p in &self.points {
            l.markers.push(Rect::around(
                px(p.intensity, p.flops_per_s),
                radius(p.share),
            ));
        }
        for m in self.plottable() {
            l.markers
                .push(Rect::around(px(m.intensity, m.flops_per_s), 6));
        }
        for r in &self.roofs {
            l.markers
                .push(Rect::around(px(self.ridge(r), r.peak * r.fraction), 6));
        }
        // Each compute roof's figures and ridge point: just above its peak line or just below
        // its achievable line, as far right as a free spot allows (left of the memory roof,
        // beside the ridge point, where the right is crowded).
        for (i, r) in self.roofs.iter().enumerate() {
            let ach = r.peak * r.fraction;
            let t = format!(
                "{}: peak {}FLOP/s, achievable {}FLOP/s ({:.0}%), ridge {} FLOP/B",
                r.name,
                si_label(r.peak),
                si_label(ach),
                r.fraction * 100.0,
                si_label(self.ridge(r))
            );
            let (w, h) = measure(&t)?;
            let peak_y = px(1.0, r.peak).1;
            let ach_y = px(1.0, ach).1;
            let xs: Vec<i32> = (0..60)
                .map(|k| xr.end - 6 - w - 16 * k)
                .take_while(|x| *x >= xr.start + 4)
                .collect();
            let boxes = xs
                .iter()
                .map(|x| (*x, peak_y - h - 4))
                .chain(xs.iter().map(|x| (*x, ach_y + 5)));
            if l.place_at(&t, (w, h), boxes) {
                colours.push(roof_colour(i));
            }
        }
        // The memory roof's figures: beside the datasheet line, above-left of it, as low as a
        // free spot allows.
        let hb = format!(
            "HBM {}B/s datasheet, {}B/s achievable ({:.0}%)",
            si_label(self.hbm),
            si_label(self.hbm * self.hbm_fraction),
            self.hbm_fraction * 100.0
        );
        let (w, h) = measure(&hb)?;
        let (a, b) = l.segments[0];
        let boxes: Vec<(i32, i32)> = (2..40)
            .map(|k| {
                let t = k as f64 / 40.0;
                let (x, y) = (
                    a.0 + ((b.0 - a.0) as f64 * t) as i32,
                    a.1 + ((b.1 - a.1) as f64 * t) as i32,
                );
                (x - w - 8, y - h - 8)
            })
            .collect();
        if l.place_at(&hb, (w, h), boxes) {
            colours.push(RGBColor(60, 60, 60));
        }
        // The costliest ops.
        let mut order: Vec<usize> = (0..self.points.len()).collect();
        order.sort_by(|&a, &b| self.points[b].share.total_cmp(&self.points[a].share));
        for &i in order.iter().take(LABELLED) {
            let p = &self.points[i];
            if p.share < MIN_LABEL_SHARE {
                break;
            }
            let t = format!("{} {:.1}%", p.name, p.share * 100.0);
            let (w, h) = measure(&t)?;
            let at = px(p.intensity, p.flops_per_s);
            if l.place_near(&t, (w, h), at, radius(p.share) + 3) {
                colours.push(RGBColor(20, 20, 20));
            }
        }
        Ok((l, colours))
    }

    /// Where the labels go on a chart of `size` pixels: the geometry [`Figure::draw`] uses.
    pub fn layout(&self, size: (u32, u32)) -> Result<Layout> {
        super::register_font();
        let mut svg = String::new();
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let (plot, _) = self.areas(&root);
        let fail = |e: String| Error::Internal(format!("cannot lay out the chart: {e}"));
        let chart = self.mesh(&plot).map_err(|e| fail(e.to_string()))?;
        let (l, _) = self.place(&root, &chart).map_err(|e| fail(e.to_string()))?;
        Ok(l)
    }
}

fn roof_colour(i: usize) -> RGBColor {
    if i == 0 {
        RGBColor(40, 40, 40)
    } else {
        RGBColor(110, 110, 110)
    }
}

impl Figure for RooflineChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let title_font = ("sans-serif", 22).into_font();
        let small = ("sans-serif", 13).into_font();
        root.draw(&Text::new(self.title.clone(), (20, 12), title_font.clone()))?;
        root.draw(&Text::new(
            self.caption.clone(),
            (20, 42),
            small.clone().color(&RGBColor(80, 80, 80)),
        ))?;
        let (plot, legend) = self.areas(root);
        let mut chart = self.mesh(&plot)?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity (FLOP per HBM byte)")
            .y_desc("attainable FLOP/s")
            .x_label_formatter(&|v| si_label(*v))
            .y_label_formatter(&|v| format!("{}FLOP/s", si_label(*v)))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()?;
        let grey = RGBColor(60, 60, 60);
        // Roofs: memory (datasheet solid, achievable dashed), then each compute roof.
        for (k, (a, b)) in self.roof_lines().into_iter().enumerate() {
            let colour = if k < 2 {
                grey
            } else {
                roof_colour((k - 2) / 2)
            };
            let line = vec![a, b];
            if k % 2 == 0 {
                chart.draw_series(LineSeries::new(line, colour.stroke_width(2)))?;
            } else {
                chart.draw_series(DashedLineSeries::new(line, 8, 6, colour.stroke_width(2)))?;
            }
        }
        for (i, r) in self.roofs.iter().enumerate() {
            let rp = chart.backend_coord(&(self.ridge(r), r.peak * r.fraction));
            root.draw(&Circle::new(rp, 5, roof_colour(i).filled()))?;
        }
        // Op points, biggest first so that small ones stay visible on top.
        let mut order: Vec<usize> = (0..self.points.len()).collect();
        order.sort_by(|&a, &b| self.points[b].share.total_cmp(&self.points[a].share));
        for &i in &order {
            let p = &self.points[i];
            let at = chart.backend_coord(&(p.intensity, p.flops_per_s));
            let c = class_color(p.class);
            marker(
                root,
                p.phase,
                at,
                radius(p.share),
                c.mix(0.55).filled(),
                c.stroke_width(1),
            )?;
        }
        let names = self.measured_names();
        for m in self.plottable() {
            let k = names
                .iter()
                .position(|n| *n == m.name)
                .unwrap_or(usize::MAX);
            let at = chart.backend_coord(&(m.intensity, m.flops_per_s));
            measured_marker(root, k.min(MEASURED_SHAPES), at, 5)?;
        }
        let (layout, colours) = self.place(root, &chart)?;
        for (p, colour) in layout.labels.iter().zip(colours) {
            if let Some(a) = p.leader {
                let end = (
                    (p.rect.x0 + p.rect.x1) / 2,
                    if p.rect.y1 < a.1 {
                        p.rect.y1
                    } else {
                        p.rect.y0
                    },
                );
                root.draw(&PathElement::new(
                    vec![a, end],
                    RGBColor(120, 120, 120).stroke_width(1),
                ))?;
            }
            root.draw(&Rectangle::new(
                [(p.rect.x0, p.rect.y0), (p.rect.x1, p.rect.y1)],
                WHITE.mix(0.85).filled(),
            ))?;
            root.draw(&Text::new(
                p.text.clone(),
                (p.rect.x0 + 2, p.rect.y0 + 1),
                small.clone().color(&colour),
            ))?;
        }

        // Legend panel.
        let lf = ("sans-serif", 15).into_font();
        let mut y = 20;
        legend.draw(&Text::new("op class (colour)", (10, y), lf.clone()))?;
        y += 26;
        for c in OpClass::ALL {
            if !self.points.iter().any(|p| p.class == c) {
                continue;
            }
            let col = class_color(c);
            legend.draw(&Circle::new((22, y + 8), 7, col.mix(0.55).filled()))?;
            legend.draw(&Circle::new((22, y + 8), 7, col.stroke_width(1)))?;
            legend.draw(&Text::new(c.name(), (40, y), lf.clone()))?;
            y += 24;
        }
        y += 12;
        legend.draw(&Text::new("phase (shape)", (10, y), lf.clone()))?;
        y += 26;
        for (ph, name) in [
            (Phase::Forward, "forward"),
            (Phase::Backward, "backward"),
            (Phase::Optimizer, "optimizer"),
        ] {
            marker(
                &legend,
                ph,
                (22, y + 8),
                7,
                RGBColor(150, 150, 150).filled(),
                BLACK.stroke_width(1),
            )?;
            legend.draw(&Text::new(name, (40, y), lf.clone()))?;
            y += 24;
        }
        y += 12;
        legend.draw(&Text::new(
            "marker size: share of step time",
            (10, y),
            small.clone(),
        ))?;
        y += 24;
        for share in [0.01, 0.1, 0.3] {
            let r = radius(share);
            legend.draw(&Circle::new(
                (30, y + r),
                r,
                RGBColor(150, 150, 150).stroke_width(1),
            ))?;
            legend.draw(&Text::new(
                format!("{:.0}%", share * 100.0),
                (62, y + r - 7),
                small.clone(),
            ))?;
            y += 2 * r + 8;
        }
        y += 12;
        legend.draw(&PathElement::new(
            vec![(10, y + 8), (50, y + 8)],
            grey.stroke_width(2),
        ))?;
        legend.draw(&Text::new("datasheet peak", (58, y), small.clone()))?;
        y += 22;
        for x in [10, 24, 38] {
            legend.draw(&PathElement::new(
                vec![(x, y + 8), (x + 8, y + 8)],
                grey.stroke_width(2),
            ))?;
        }
        legend.draw(&Text::new(
            "achievable (measured) ceiling",
            (58, y),
            small.clone(),
        ))?;
        y += 22;
        legend.draw(&Circle::new((30, y + 8), 5, grey.filled()))?;
        legend.draw(&Text::new("ridge point", (58, y), small.clone()))?;
        // Measured kernels: one shape per name.
        if !names.is_empty() {
            y += 30;
            legend.draw(&Text::new("measured (bench file)", (10, y), lf.clone()))?;
            y += 22;
            let shown = names.len().min(MEASURED_SHAPES + 1);
            for (k, name) in names.iter().take(shown).enumerate() {
                let text = if k == MEASURED_SHAPES {
                    format!("{} other kernels", names.len() - MEASURED_SHAPES)
                } else {
                    name.clone()
                };
                measured_marker(&legend, k, (22, y + 7), 5)?;
                legend.draw(&Text::new(text, (40, y), small.clone()))?;
                y += 18;
            }
        }
        Ok(())
    }
}
