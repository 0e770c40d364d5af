//! Line chart of a sweep: the chosen metric against the first varied parameter, one line per
//! value (combination) of the other varied parameters. Numeric x values spanning a factor of 4 or
//! more are placed on a log2 axis (ranges are powers of two); categorical values (attention,
//! GPU, mode, ...) at equal spacing. The y axis is logarithmic when the metric spans more than
//! 20x, linear from zero otherwise. Invalid configurations leave gaps in their line.
//!
//! A configuration that does not fit in GPU memory is a hollow marker (its line still passes
//! through it). More than [`MAX_LINES`] lines are not drawn one by one: the chart then shows, per
//! x value, the best configuration that fits and the range of all of them (a grey band), and
//! says so in its subtitle and in [`SweepChart::warning`], naming the --vary parameters to reduce.
//! The title states only what is fixed; the axes are named in words with units.

use super::{series_color, si_label, DrawResult, Figure};
use crate::error::{Error, Result};
use crate::scenario::ScenarioSpec;
use crate::units::{binary_bytes, Bytes};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Most lines drawn one by one; more are aggregated (best per x and the range).
pub const MAX_LINES: usize = 12;

/// One line: label and, per x, the metric (None: invalid) and whether it fits in memory.
pub type Line = (String, Vec<(Option<f64>, bool)>);

/// Everything the sweep chart shows.
#[derive(Debug, Clone)]
pub struct SweepChart {
    /// Title: the metric, the x parameter and what is fixed.
    pub title: String,
    /// Second line: what the lines are, or how they were aggregated.
    pub subtitle: String,
    /// Name of the x parameter.
    pub x_name: String,
    /// x values as text.
    pub x_labels: Vec<String>,
    /// Numeric x values (None: categorical).
    pub x_values: Option<Vec<f64>>,
    /// Metric (column name).
    pub metric: String,
    /// Legend header: the parameters whose values name the lines.
    pub legend_title: String,
    /// Lines (at most [`MAX_LINES`]; the best per x when aggregated).
    pub lines: Vec<Line>,
    /// Lines sharing a colour (one colour per value of the second varied parameter; dash
    /// pattern and marker tell the remaining parameters apart).
    pub per_colour: usize,
    /// Per x, the lowest and highest value over every configuration (set when aggregated).
    pub band: Option<Vec<Option<(f64, f64)>>>,
    /// Set when the lines were aggregated: what was done and which --vary to reduce.
    pub warning: Option<String>,
}

/// A metric in words with its unit, for the y axis.
pub fn metric_words(metric: &str) -> String {
    match metric {
        "step_time_s" => "step time (optimizer step)".into(),
        "samples_per_s" => "throughput (samples/s, all GPUs)".into(),
        "tokens_per_s" => "throughput (tokens/s, all GPUs)".into(),
        "mfu" => "MFU (model FLOPs utilization, %)".into(),
        "memory_per_gpu_bytes" => "memory per GPU".into(),
        "cost_per_step_usd" => "cost per optimizer step (USD)".into(),
        "train_time_s" => "training time".into(),
        "train_cost_usd" => "training cost (USD)".into(),
        other => other.replace('_', " "),
    }
}

/// A varied parameter in words.
pub fn param_words(name: &str) -> String {
    match name {
        "batch" => "batch per GPU".into(),
        "seq" => "sequence length (tokens)".into(),
        "gpus" => "number of GPUs".into(),
        "gpu" => "GPU".into(),
        "attention" => "attention implementation".into(),
        "mode" => "execution mode".into(),
        "grad_accum" => "gradient accumulation steps".into(),
        "zero" => "ZeRO stage".into(),
        "ema" => "EMA copies".into(),
        "ep" => "expert-parallel GPUs".into(),
        "tp" => "tensor-parallel GPUs".into(),
        "pp" => "pipeline stages".into(),
        "vpp" => "model chunks per stage".into(),
        "cp" => "context-parallel GPUs".into(),
        other => other.to_string(),
    }
}

/// Whether a higher value of `metric` is better.
fn higher_is_better(metric: &str) -> bool {
    matches!(metric, "samples_per_s" | "tokens_per_s" | "mfu")
}

impl SweepChart {
    /// Builds the chart of `metric` from a sweep's varied parameters and, per row in row order,
    /// the metric's value (None: an invalid configuration) and whether the row fits in memory
    /// (None: unknown, drawn as fitting).
    pub fn new(
        vary: &[(String, Vec<String>)],
        values: &[Option<f64>],
        fits: &[Option<bool>],
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
        let mut lines: Vec<Line> = Vec::with_capacity(rest.min(MAX_LINES + 1));
        let point = |i: usize, j: usize| {
            let k = i * rest + j;
            (values[k], fits.get(k).copied().flatten() != Some(false))
        };
        let aggregate = rest > MAX_LINES;
        let mut band = None;
        if aggregate {
            let better = |a: f64, b: f64| {
                if higher_is_better(metric) {
                    a > b
                } else {
                    a < b
                }
            };
            let mut best = Vec::with_capacity(nx);
            let mut range = Vec::with_capacity(nx);
            for i in 0..nx {
                let mut b: Option<f64> = None;
                let mut r: Option<(f64, f64)> = None;
                for j in 0..rest {
                    let (v, fit) = point(i, j);
                    let Some(v) = v else { continue };
                    r = Some(r.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
                    if fit && b.is_none_or(|x| better(v, x)) {
                        b = Some(v);
                    }
                }
                best.push((b, true));
                range.push(r);
            }
            lines.push(("best that fits".to_string(), best));
            band = Some(range);
        } else {
            for j in 0..rest {
                let mut k = j;
                let mut parts = Vec::new();
                for (_, vals) in others.iter().rev() {
                    parts.push(vals[k % vals.len()].clone());
                    k /= vals.len();
                }
                parts.reverse();
                let label = if parts.is_empty() {
                    metric_words(metric)
                } else {
                    parts.join(", ")
                };
                lines.push((label, (0..nx).map(|i| point(i, j)).collect()));
            }
        }
        let varied: Vec<&str> = vary.iter().map(|(n, _)| n.as_str()).collect();
        let mut fixed_parts = Vec::new();
        // Settings left to the model files' [defaults] differ between varied models.
        let per_model = varied.contains(&"model");
        let unset = fixed.unset;
        let mut fix = |name: &str, text: String| {
            let from_model = per_model
                && match name {
                    "batch" => unset.batch,
                    "attention" => unset.attention,
                    "mode" => unset.mode,
                    "precision" => unset.precision,
                    _ => false,
                };
            if !varied.contains(&name) && !from_model {
                fixed_parts.push(text);
            }
        };
        fix("model", fixed.model.clone());
        if let Some(s) = fixed.seq {
            fix("seq", format!("sequence {s}"));
        }
        fix("gpus", format!("{} GPUs", fixed.gpus));
        fix("gpu", fixed.gpu.clone());
        fix("batch", format!("batch {} per GPU", fixed.step.batch));
        fix("attention", format!("attention {}", fixed.step.attention));
        fix("mode", format!("{} mode", fixed.mode));
        fix("precision", fixed.step.precision.to_string());
        let title = format!(
            "{} vs {}: {}",
            metric_words(metric),
            param_words(&x_name),
            fixed_parts.join(", ")
        );
        let other_names: Vec<String> = others.iter().map(|(n, _)| param_words(n)).collect();
        let warning = aggregate.then(|| {
            let counts: Vec<String> = others
                .iter()
                .map(|(n, v)| format!("{n} ({} values)", v.len()))
                .collect();
            format!(
                "{rest} lines are more than a chart can show ({MAX_LINES} at most): it draws the {} \
                 per {x_name} among the configurations that fit and the range of all of them; for one \
                 line per configuration, vary fewer values of {}",
                if higher_is_better(metric) {
                    "highest"
                } else {
                    "lowest"
                },
                counts.join(", ")
            )
        });
        let subtitle = match &warning {
            Some(_) => format!(
                "{rest} configurations per x ({}): the best that fits (which one: see the table), and the range of all (grey)",
                other_names.join(" x ")
            ),
            None if others.is_empty() => String::new(),
            None => format!("one line per value of {}", other_names.join(" x ")),
        };
        let per_colour = if aggregate {
            1
        } else {
            others
                .first()
                .map_or(1, |(_, v)| rest / v.len().max(1))
                .max(1)
        };
        Ok(SweepChart {
            title,
            subtitle,
            x_name,
            x_labels,
            x_values: numeric,
            metric: metric.to_string(),
            legend_title: if aggregate {
                String::new()
            } else {
                other_names.join(", ")
            },
            lines,
            per_colour,
            band,
            warning,
        })
    }
}

/// Formats a metric value for an axis.
pub fn metric_label(metric: &str, v: f64) -> String {
    match metric {
        "mfu" => format!("{:.0}%", v * 100.0),
        "memory_per_gpu_bytes" => binary_bytes(Bytes(v)),
        m if m.ends_with("_usd") => format!("${}", si_label(v)),
        m if m.ends_with("_per_s") => format!("{}/s", si_label(v)),
        "train_time_s" => format!("{} h", si_label(v / 3600.0)),
        m if m.ends_with("_s") => match v.abs() {
            x if x >= 1.0 || x == 0.0 => format!("{} s", si_label(v)),
            x if x >= 1e-3 => format!("{} ms", si_label(v * 1e3)),
            _ => format!("{} µs", si_label(v * 1e6)),
        },
        _ => si_label(v),
    }
}

/// Truncates `text` with "..." to at most `max` characters.
fn fit_text(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let t: String = text.chars().take(max.saturating_sub(3)).collect();
        format!("{t}...")
    }
}

impl Figure for SweepChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (w, _) = root.dim_in_pixel();
        root.draw(&Text::new(
            fit_text(&self.title, 130),
            (20, 10),
            ("sans-serif", 17).into_font(),
        ))?;
        root.draw(&Text::new(
            fit_text(&self.subtitle, 170),
            (20, 34),
            ("sans-serif", 13).into_font().color(&RGBColor(80, 80, 80)),
        ))?;
        let body = root.margin(56, 8, 8, 8);
        let (plot, legend) = body.split_horizontally(w as i32 - 290);
        let band_values = self
            .band
            .iter()
            .flatten()
            .flatten()
            .flat_map(|(a, b)| [*a, *b]);
        let all: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|(_, v)| v.iter().filter_map(|p| p.0))
            .chain(band_values)
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
            format!("{} (log scale)", param_words(&self.x_name))
        } else {
            param_words(&self.x_name)
        };
        let y_desc = metric_words(&self.metric);
        let mut series: Vec<Vec<Vec<(f64, f64, bool)>>> = Vec::new();
        for (_, ys) in &self.lines {
            let mut segs = vec![Vec::new()];
            for (x, (y, fit)) in xs.iter().zip(ys) {
                match (y, segs.last_mut()) {
                    (Some(y), Some(seg)) if *y > 0.0 || !log_y => seg.push((*x, *y, *fit)),
                    _ => segs.push(Vec::new()),
                }
            }
            series.push(segs);
        }
        macro_rules! body {
            ($chart:expr, $ylo:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_desc.as_str())
                    .y_desc(y_desc.as_str())
                    .x_labels(xs.len().max(2) * 4)
                    .x_label_formatter(&x_fmt)
                    .y_label_formatter(&y_fmt)
                    .label_style(("sans-serif", 14))
                    .axis_desc_style(("sans-serif", 15))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()?;
                if let Some(band) = &self.band {
                    for (x, r) in xs.iter().zip(band) {
                        if let Some((a, b)) = r {
                            chart.draw_series(std::iter::once(Rectangle::new(
                                [(x - 0.12, a.max($ylo)), (x + 0.12, b.max($ylo))],
                                RGBColor(200, 200, 200).mix(0.8).filled(),
                            )))?;
                        }
                    }
                }
                for (i, segs) in series.iter().enumerate() {
                    let (c, style) = (series_color(i / self.per_colour), i % self.per_colour);
                    for seg in segs {
                        let pts = seg.iter().map(|p| (p.0, p.1));
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
                        for p in seg {
                            let at = chart.backend_coord(&(p.0, p.1));
                            let fill = if p.2 { c.filled() } else { WHITE.filled() };
                            match style % 3 {
                                0 => {
                                    root.draw(&Circle::new(at, 5, fill))?;
                                    root.draw(&Circle::new(at, 5, c.stroke_width(2)))?;
                                }
                                1 => {
                                    root.draw(&TriangleMarker::new(at, 7, fill))?;
                                    root.draw(&TriangleMarker::new(at, 7, c.stroke_width(2)))?;
                                }
                                _ => {
                                    let s = 5;
                                    let r = [(at.0 - s, at.1 - s), (at.0 + s, at.1 + s)];
                                    root.draw(&Rectangle::new(r, fill))?;
                                    root.draw(&Rectangle::new(r, c.stroke_width(2)))?;
                                }
                            }
                        }
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
            let lo = lo / 1.5;
            body!(
                builder.build_cartesian_2d(x0..x1, (lo..(hi * 1.5)).log_scale())?,
                lo
            );
        } else {
            body!(builder.build_cartesian_2d(x0..x1, 0.0..(hi * 1.1))?, 0.0);
        }
        self.draw_legend(&legend)
    }
}

impl SweepChart {
    fn draw_legend<DB: DrawingBackend>(&self, legend: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let lf = ("sans-serif", 13).into_font();
        let (lw, _) = legend.dim_in_pixel();
        // Characters that fit beside the line sample (DejaVu Sans at 13 px: about 7.5 px each).
        let chars = ((lw as i32 - 56) / 8).max(8) as usize;
        let mut y = 16;
        if !self.legend_title.is_empty() {
            legend.draw(&Text::new(
                fit_text(&self.legend_title, chars + 6),
                (10, y),
                lf.clone(),
            ))?;
            y += 24;
        }
        for (i, (label, _)) in self.lines.iter().enumerate() {
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
            legend.draw(&Text::new(fit_text(label, chars), (48, y), lf.clone()))?;
            y += 22;
        }
        if self.band.is_some() {
            legend.draw(&Rectangle::new(
                [(12, y + 2), (38, y + 14)],
                RGBColor(200, 200, 200).mix(0.8).filled(),
            ))?;
            legend.draw(&Text::new("range of all", (48, y), lf.clone()))?;
            y += 22;
        }
        y += 6;
        let grey = RGBColor(90, 90, 90);
        legend.draw(&Circle::new((25, y + 8), 5, WHITE.filled()))?;
        legend.draw(&Circle::new((25, y + 8), 5, grey.stroke_width(2)))?;
        legend.draw(&Text::new("hollow: does not fit", (48, y), lf.clone()))?;
        legend.draw(&Text::new("in GPU memory", (48, y + 18), lf))?;
        Ok(())
    }
}
