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
//!   are drawn as black crosses at (FLOPs / bytes, FLOPs / time); pure copies (no FLOPs) are
//!   left out. The fastest point of each measured kernel name is labelled (at most
//!   [`MEASURED_LABELS`]), then the [`LABELLED`] costliest ops; labels are placed greedily so that none
//!   overlaps another (see `Placer`), and a label without a free spot is dropped.

use super::{class_color, si_label, DrawResult, Figure};
use crate::analysis::roofline::{MeasuredPoint, RooflineChart};
use crate::graph::{OpClass, Phase};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Ops labelled by name (the ones that cost most).
pub const LABELLED: usize = 8;

/// Measured kernels labelled by name (the fastest point of each kernel name).
pub const MEASURED_LABELS: usize = 6;

impl RooflineChart {
    /// Measured points that fit log axes meant for training ops (intensity ≥ 1e-3 FLOP/byte,
    /// ≥ 1 MFLOP/s); pure copies (a FLOP count of ~0) have no place on them.
    fn plottable(&self) -> impl Iterator<Item = &MeasuredPoint> {
        self.measured
            .iter()
            .filter(|m| m.intensity >= 1e-3 && m.flops_per_s >= 1e6)
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

/// Axis-aligned pixel rectangle for label placement.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
    fn inside(&self, b: &Rect) -> bool {
        self.x0 >= b.x0 && self.x1 <= b.x1 && self.y0 >= b.y0 && self.y1 <= b.y1
    }
}

/// Greedy label placement: candidate positions around the anchor, nearest first, then a wider
/// ring (drawn with a leader line); the first that overlaps no placed label and stays inside the
/// plot wins; a label with no free position is dropped rather than drawn over another.
struct Placer {
    bounds: Rect,
    taken: Vec<Rect>,
}

impl Placer {
    fn place(&mut self, anchor: (i32, i32), size: (i32, i32), gap: i32) -> Option<(Rect, bool)> {
        let (ax, ay) = anchor;
        let (w, h) = size;
        for (ring, extra) in [0, 14, 32, 54, 80, 110, 150].into_iter().enumerate() {
            let g = gap + extra;
            let candidates = [
                (ax + g, ay - h / 2),
                (ax - g - w, ay - h / 2),
                (ax - w / 2, ay - g - h),
                (ax - w / 2, ay + g),
                (ax + g, ay - g - h),
                (ax + g, ay + g),
                (ax - g - w, ay - g - h),
                (ax - g - w, ay + g),
            ];
            for (x, y) in candidates {
                let r = Rect {
                    x0: x - 2,
                    y0: y - 1,
                    x1: x + w + 2,
                    y1: y + h + 1,
                };
                if r.inside(&self.bounds) && !self.taken.iter().any(|t| t.overlaps(&r)) {
                    self.taken.push(r);
                    return Some((r, ring > 0));
                }
            }
        }
        None
    }
}

fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    phase: Phase,
    at: (i32, i32),
    r: i32,
    fill: ShapeStyle,
    edge: ShapeStyle,
) -> DrawResult<DB> {
    match phase {
        Phase::Forward => {
            area.draw(&Circle::new(at, r, fill))?;
            area.draw(&Circle::new(at, r, edge))
        }
        Phase::Backward => {
            let s = (r as f64 * 1.3) as i32;
            let pts = vec![
                (at.0, at.1 - s),
                (at.0 - s, at.1 + s * 2 / 3),
                (at.0 + s, at.1 + s * 2 / 3),
            ];
            area.draw(&Polygon::new(pts.clone(), fill))?;
            let mut closed = pts;
            closed.push(closed[0]);
            area.draw(&PathElement::new(closed, edge))
        }
        Phase::Optimizer => {
            let s = r * 9 / 10;
            area.draw(&Rectangle::new(
                [(at.0 - s, at.1 - s), (at.0 + s, at.1 + s)],
                fill,
            ))?;
            area.draw(&Rectangle::new(
                [(at.0 - s, at.1 - s), (at.0 + s, at.1 + s)],
                edge,
            ))
        }
    }
}

fn radius(share: f64) -> i32 {
    (3.0 + 22.0 * share.max(0.0).sqrt()).round() as i32
}

impl Figure for RooflineChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (w, _) = root.dim_in_pixel();
        let title_font = ("sans-serif", 22).into_font();
        let small = ("sans-serif", 13).into_font();
        root.draw(&Text::new(self.title.clone(), (20, 12), title_font.clone()))?;
        root.draw(&Text::new(
            self.caption.clone(),
            (20, 42),
            small.clone().color(&RGBColor(80, 80, 80)),
        ))?;
        let body = root.margin(64, 8, 8, 8);
        let (plot, legend) = body.split_horizontally(w as i32 - 300);
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut chart = ChartBuilder::on(&plot)
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(78)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
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
        let (px, py) = chart.plotting_area().get_pixel_range();
        let mut placer = Placer {
            bounds: Rect {
                x0: px.start,
                y0: py.start,
                x1: px.end,
                y1: py.end,
            },
            taken: Vec::new(),
        };
        let mut texts: Vec<(String, (i32, i32), RGBColor)> = Vec::new();

        // Memory roofs: datasheet (solid) and achievable (dashed), up to the highest roof.
        let top = self.roofs.first().map_or(y1, |r| r.peak);
        let bw = [(self.hbm, true), (self.hbm * self.hbm_fraction, false)];
        for (b, solid) in bw {
            let line = vec![(x0, x0 * b), ((top / b).min(x1), (top / b).min(x1) * b)];
            if solid {
                chart.draw_series(LineSeries::new(line, grey.stroke_width(2)))?;
            } else {
                chart.draw_series(DashedLineSeries::new(line, 8, 6, grey.stroke_width(2)))?;
            }
        }
        let mut ridges = Vec::new();
        // Compute roofs, from the ridge (where they meet the memory roof) to the right edge.
        for (i, r) in self.roofs.iter().enumerate() {
            let colour = if i == 0 {
                RGBColor(40, 40, 40)
            } else {
                RGBColor(110, 110, 110)
            };
            let peak_ridge = r.peak / self.hbm;
            chart.draw_series(LineSeries::new(
                vec![(peak_ridge, r.peak), (x1, r.peak)],
                colour.stroke_width(2),
            ))?;
            let ach = r.peak * r.fraction;
            let ridge = self.ridge(r);
            chart.draw_series(DashedLineSeries::new(
                vec![(ridge, ach), (x1, ach)],
                8,
                6,
                colour.stroke_width(2),
            ))?;
            let pr = chart.backend_coord(&(x1, r.peak));
            let t1 = format!(
                "{}: peak {}FLOP/s, achievable {}FLOP/s ({:.0}%)",
                r.name,
                si_label(r.peak),
                si_label(ach),
                r.fraction * 100.0
            );
            let s1 = root.estimate_text_size(&t1, &small.clone().into_text_style(root))?;
            let r1 = Rect {
                x0: pr.0 - s1.0 as i32 - 8,
                y0: pr.1 - s1.1 as i32 - 6,
                x1: pr.0 - 4,
                y1: pr.1 - 2,
            };
            placer.taken.push(r1);
            texts.push((t1, (r1.x0 + 2, r1.y0 + 1), colour));
            // Ridge point of the achievable roof.
            let rp = chart.backend_coord(&(ridge, ach));
            root.draw(&Circle::new(rp, 5, colour.filled()))?;
            placer.taken.push(Rect {
                x0: rp.0 - 6,
                y0: rp.1 - 6,
                x1: rp.0 + 6,
                y1: rp.1 + 6,
            });
            ridges.push((rp, format!("ridge {} FLOP/B", si_label(ridge)), colour));
        }
        // Memory roof label near the left end of the slope.
        let hb = format!(
            "HBM {}B/s datasheet, {}B/s achievable ({:.0}%)",
            si_label(self.hbm),
            si_label(self.hbm * self.hbm_fraction),
            self.hbm_fraction * 100.0
        );
        let anchor_x = (x0 * 4.0).min(x1);
        let hp = chart.backend_coord(&(anchor_x, anchor_x * self.hbm));
        let hs = root.estimate_text_size(&hb, &small.clone().into_text_style(root))?;
        let hr = Rect {
            x0: hp.0 + 6,
            y0: hp.1 - hs.1 as i32 - 14,
            x1: hp.0 + 10 + hs.0 as i32,
            y1: hp.1 - 10,
        };
        if hr.inside(&placer.bounds) {
            placer.taken.push(hr);
            texts.push((hb, (hr.x0 + 2, hr.y0 + 1), grey));
        }

        // Op points, biggest first so that small ones stay visible on top.
        let mut order: Vec<usize> = (0..self.points.len()).collect();
        order.sort_by(|&a, &b| self.points[b].share.total_cmp(&self.points[a].share));
        let mut centres = vec![(0, 0); self.points.len()];
        for &i in &order {
            let p = &self.points[i];
            let at = chart.backend_coord(&(p.intensity, p.flops_per_s));
            centres[i] = at;
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
        for m in self.plottable() {
            let at = chart.backend_coord(&(m.intensity, m.flops_per_s));
            root.draw(&Cross::new(at, 5, BLACK.mix(0.8).stroke_width(2)))?;
            placer.taken.push(Rect {
                x0: at.0 - 7,
                y0: at.1 - 7,
                x1: at.0 + 7,
                y1: at.1 + 7,
            });
        }
        // Every marker is an obstacle for labels.
        for (i, &(cx, cy)) in centres.iter().enumerate() {
            let r = radius(self.points[i].share);
            placer.taken.push(Rect {
                x0: cx - r,
                y0: cy - r,
                x1: cx + r,
                y1: cy + r,
            });
        }
        for (rp, t, colour) in ridges {
            let s = root.estimate_text_size(&t, &small.clone().into_text_style(root))?;
            if let Some((rect, _)) = placer.place(rp, (s.0 as i32, s.1 as i32), 10) {
                texts.push((t, (rect.x0 + 2, rect.y0 + 1), colour));
            }
        }
        // Measured kernels: one label per kernel name, at its fastest point, at most
        // MEASURED_LABELS of them (a bench file holds many sizes of each kernel).
        let mut best: Vec<&MeasuredPoint> = Vec::new();
        for m in self.plottable() {
            match best.iter_mut().find(|b| b.name == m.name) {
                Some(b) if b.flops_per_s < m.flops_per_s => *b = m,
                Some(_) => {}
                None => best.push(m),
            }
        }
        best.sort_by(|a, b| b.flops_per_s.total_cmp(&a.flops_per_s));
        for m in best.into_iter().take(MEASURED_LABELS) {
            let t = format!("measured {}", m.name);
            let s = root.estimate_text_size(&t, &small.clone().into_text_style(root))?;
            let at = chart.backend_coord(&(m.intensity, m.flops_per_s));
            if let Some((rect, leader)) = placer.place(at, (s.0 as i32, s.1 as i32), 9) {
                if leader {
                    let end = (
                        (rect.x0 + rect.x1) / 2,
                        if rect.y1 < at.1 { rect.y1 } else { rect.y0 },
                    );
                    root.draw(&PathElement::new(vec![at, end], BLACK.stroke_width(1)))?;
                }
                texts.push((t, (rect.x0 + 2, rect.y0 + 1), BLACK));
            }
        }
        // Labels of the costliest ops.
        for &i in order.iter().take(LABELLED) {
            let p = &self.points[i];
            let t = format!("{} {:.1}%", p.name, p.share * 100.0);
            let s = root.estimate_text_size(&t, &small.clone().into_text_style(root))?;
            let anchor = centres[i];
            if let Some((rect, leader)) =
                placer.place(anchor, (s.0 as i32, s.1 as i32), radius(p.share) + 4)
            {
                if leader {
                    let end = (
                        (rect.x0 + rect.x1) / 2,
                        if rect.y1 < anchor.1 { rect.y1 } else { rect.y0 },
                    );
                    root.draw(&PathElement::new(
                        vec![anchor, end],
                        RGBColor(120, 120, 120).stroke_width(1),
                    ))?;
                }
                texts.push((t, (rect.x0 + 2, rect.y0 + 1), RGBColor(20, 20, 20)));
            }
        }
        for (t, at, colour) in texts {
            let size = root.estimate_text_size(&t, &small.clone().into_text_style(root))?;
            let (w, h) = (size.0 as i32, size.1 as i32);
            root.draw(&Rectangle::new(
                [(at.0 - 2, at.1 - 1), (at.0 + w + 2, at.1 + h + 1)],
                WHITE.mix(0.8).filled(),
            ))?;
            root.draw(&Text::new(t, at, small.clone().color(&colour)))?;
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
        if !self.measured.is_empty() {
            legend.draw(&Cross::new((22, y + 8), 7, BLACK.stroke_width(2)))?;
            legend.draw(&Text::new("measured (bench file)", (40, y), lf.clone()))?;
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
        Ok(())
    }
}
