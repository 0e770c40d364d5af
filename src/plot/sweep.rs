//! Line chart of a sweep: the chosen metric against the first varied parameter, one line per
//! value (combination) of the other varied parameters. Numeric x values spanning a factor of 4 or
//! more are placed on a log2 axis (ranges are powers of two); categorical values (attention,
//! GPU, mode, ...) at equal spacing. The y axis is logarithmic when the metric spans more than
//! 20x, linear from zero otherwise. Invalid configurations leave gaps in their line.

use super::{series_color, si_label, DrawResult, Figure};
use crate::error::{Error, Result};
use crate::scenario::ScenarioSpec;
use crate::units::{binary_bytes, Bytes};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Everything the sweep chart shows.
#[derive(Debug, Clone)]
pub struct SweepChart {
    /// Title.
    pub title: String,
    /// Name of the x parameter.
    pub x_name: String,
    /// x values as text.
    pub x_labels: Vec<String>,
    /// Numeric x values (None: categorical).
    pub x_values: Option<Vec<f64>>,
    /// Metric (column name).
    pub metric: String,
    /// Lines: label and one value per x (None: invalid configuration).
    pub lines: Vec<(String, Vec<Option<f64>>)>,
    /// Lines sharing a colour (one colour per value of the second varied parameter; dash
    /// pattern and marker tell the remaining parameters apart).
    pub per_colour: usize,
}

impl SweepChart {
    /// Builds the chart of `metric` from a sweep's varied parameters and the metric's value
    /// in each row, in row order (None: an invalid configuration).
    pub fn new(
        vary: &[(String, Vec<String>)],
        values: &[Option<f64>],
        metric: &str,
        fixed: &ScenarioSpec,
    ) -> Result<Self> {
        let Some((x_name, x_labels)) = vary.first().cloned() else {
            return Err(Error::Invalid(
                "a sweep chart needs at least one varied parameter".into(),
            ));
        };
        let nx = x_labels.len();
        let rest = values.len() / nx.max(1);
        let numeric: Option<Vec<f64>> = x_labels.iter().map(|l| l.parse::<f64>().ok()).collect();
        let others = &vary[1..];
        let mut lines = Vec::with_capacity(rest);
        for j in 0..rest {
            let mut k = j;
            let mut parts = Vec::new();
            for (name, vals) in others.iter().rev() {
                parts.push(format!("{name}={}", vals[k % vals.len()]));
                k /= vals.len();
            }
            parts.reverse();
            let label = if parts.is_empty() {
                metric.to_string()
            } else {
                parts.join(", ")
            };
            let ys = (0..nx).map(|i| values[i * rest + j]).collect();
            lines.push((label, ys));
        }
        let title = format!(
            "{metric} vs {x_name}: {} on {} GPUs x {}, batch {}, attention {}, {} mode, {} (unless varied)",
            fixed.model,
            fixed.gpus,
            fixed.gpu,
            fixed.step.batch,
            fixed.step.attention,
            fixed.mode,
            fixed.step.precision
        );
        let per_colour = others
            .first()
            .map_or(1, |(_, v)| rest / v.len().max(1))
            .max(1);
        Ok(SweepChart {
            title,
            x_name,
            x_labels,
            x_values: numeric,
            metric: metric.to_string(),
            lines,
            per_colour,
        })
    }
}

/// Formats a metric value for an axis.
pub fn metric_label(metric: &str, v: f64) -> String {
    match metric {
        "mfu" => format!("{:.0}%", v * 100.0),
        "memory_per_gpu_bytes" => binary_bytes(Bytes(v)),
        m if m.ends_with("_per_s") => format!("{}/s", si_label(v)),
        m if m.ends_with("_s") => format!("{}s", si_label(v))
            .replace("ms", " ms")
            .replace("us", " us"),
        _ => si_label(v),
    }
}

impl Figure for SweepChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (w, _) = root.dim_in_pixel();
        root.draw(&Text::new(
            self.title.clone(),
            (20, 12),
            ("sans-serif", 18).into_font(),
        ))?;
        let body = root.margin(44, 8, 8, 8);
        let (plot, legend) = body.split_horizontally(w as i32 - 300);
        let all: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|(_, v)| v.iter().flatten().copied())
            .filter(|v| *v > 0.0)
            .collect();
        let (lo, hi) = all
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
        let (lo, hi) = if all.is_empty() { (0.1, 1.0) } else { (lo, hi) };
        let log_y = hi / lo > 20.0;
        // x coordinate: log2 of the value, the value itself, or the category index.
        let xs: Vec<f64> = match &self.x_values {
            Some(v)
                if v.iter().all(|x| *x > 0.0)
                    && v.iter().cloned().fold(0.0, f64::max)
                        / v.iter().cloned().fold(f64::INFINITY, f64::min)
                        >= 4.0 =>
            {
                v.iter().map(|x| x.log2()).collect()
            }
            Some(v) => v.clone(),
            None => (0..self.x_labels.len()).map(|i| i as f64).collect(),
        };
        let log_x =
            self.x_values.is_some() && xs.first() != self.x_values.as_ref().and_then(|v| v.first());
        let (x0, x1) = xs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        let pad = ((x1 - x0) * 0.05).max(0.5);
        let (x0, x1) = (x0 - pad, x1 + pad);
        let labels = self.x_labels.clone();
        let xs_for_label = xs.clone();
        let x_fmt = move |v: &f64| -> String {
            xs_for_label
                .iter()
                .position(|x| (x - v).abs() < 1e-6)
                .map_or(String::new(), |i| labels[i].clone())
        };
        let metric = self.metric.clone();
        let y_fmt = move |v: &f64| metric_label(&metric, *v);
        let x_desc = if log_x {
            format!("{} (log scale)", self.x_name)
        } else {
            self.x_name.clone()
        };
        let mut series: Vec<Vec<Vec<(f64, f64)>>> = Vec::new();
        for (_, ys) in &self.lines {
            let mut segs = vec![Vec::new()];
            for (x, y) in xs.iter().zip(ys) {
                match (y, segs.last_mut()) {
                    (Some(y), Some(seg)) if *y > 0.0 || !log_y => seg.push((*x, *y)),
                    _ => segs.push(Vec::new()),
                }
            }
            series.push(segs);
        }
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_desc.as_str())
                    .y_desc(self.metric.as_str())
                    .x_labels(xs.len().max(2) * 4)
                    .x_label_formatter(&x_fmt)
                    .y_label_formatter(&y_fmt)
                    .label_style(("sans-serif", 14))
                    .axis_desc_style(("sans-serif", 16))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()?;
                for (i, segs) in series.iter().enumerate() {
                    let (c, style) = (series_color(i / self.per_colour), i % self.per_colour);
                    for seg in segs {
                        let pts = seg.iter().copied();
                        match style % 3 {
                            0 => chart.draw_series(LineSeries::new(pts, c.stroke_width(2)))?,
                            1 => chart.draw_series(DashedLineSeries::new(
                                pts,
                                10,
                                6,
                                c.stroke_width(2),
                            ))?,
                            _ => chart.draw_series(DashedLineSeries::new(
                                pts,
                                3,
                                4,
                                c.stroke_width(2),
                            ))?,
                        };
                        match style % 3 {
                            0 => chart
                                .draw_series(seg.iter().map(|p| Circle::new(*p, 4, c.filled())))?,
                            1 => chart.draw_series(
                                seg.iter().map(|p| TriangleMarker::new(*p, 5, c.filled())),
                            )?,
                            _ => chart.draw_series(
                                seg.iter().map(|p| Cross::new(*p, 4, c.stroke_width(2))),
                            )?,
                        };
                    }
                }
            }};
        }
        let mut builder = ChartBuilder::on(&plot);
        builder
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(90);
        if log_y {
            body!(builder.build_cartesian_2d(x0..x1, ((lo / 1.5)..(hi * 1.5)).log_scale())?);
        } else {
            body!(builder.build_cartesian_2d(x0..x1, 0.0..(hi * 1.1))?);
        }
        let lf = ("sans-serif", 14).into_font();
        let mut y = 20;
        for (i, (label, _)) in self.lines.iter().enumerate().take(30) {
            let (c, style) = (series_color(i / self.per_colour), i % self.per_colour % 3);
            let (on, off) = [(30, 0), (10, 6), (3, 4)][style];
            let mut x = 10;
            while x < 40 {
                legend.draw(&PathElement::new(
                    vec![(x, y + 8), ((x + on).min(40), y + 8)],
                    c.stroke_width(3),
                ))?;
                x += on + off;
            }
            legend.draw(&Text::new(label.clone(), (48, y), lf.clone()))?;
            y += 22;
        }
        if self.lines.len() > 30 {
            legend.draw(&Text::new(
                format!("... {} more lines", self.lines.len() - 30),
                (10, y),
                lf,
            ))?;
        }
        Ok(())
    }
}
