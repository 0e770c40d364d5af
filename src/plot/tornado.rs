//! Tornado chart of a sensitivity analysis: one horizontal bar per assumption, from the relative
//! change of the training time per sample at one end of its range to the change at the other,
//! largest effect on top. Blue: the low end of the range (or the fastest alternative), orange:
//! the high end (or the slowest alternative).

use super::{DrawResult, Figure};
use crate::analysis::sensitivity::Sensitivity;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Bars shown at most.
pub const MAX_BARS: usize = 18;

/// The tornado chart.
#[derive(Debug, Clone)]
pub struct Tornado {
    /// Title.
    pub title: String,
    /// Bars: label, change at the low end, change at the high end (relative).
    pub bars: Vec<(String, f64, f64)>,
}

impl Tornado {
    /// Bars of the largest effects (zero effects dropped).
    pub fn new(s: &Sensitivity) -> Self {
        let bars = s
            .effects
            .iter()
            .filter(|e| e.size() > 1e-6)
            .take(MAX_BARS)
            .map(|e| {
                (
                    format!("{} [{} .. {}]", e.parameter, e.low, e.high),
                    e.train_change_low,
                    e.train_change_high,
                )
            })
            .collect();
        Tornado {
            title: format!(
                "Sensitivity of training time per sample: {} ({}); baseline {:.2} ms per step",
                s.model,
                s.configuration,
                s.step_time_s * 1e3
            ),
            bars,
        }
    }
}

impl Figure for Tornado {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            self.title.clone(),
            (20, 12),
            ("sans-serif", 16).into_font(),
        ))?;
        let area = root.margin(62, 10, 10, 10);
        let n = self.bars.len().max(1);
        // Axis clipped at ±100%: longer bars (e.g. a 4x longer sequence) end at the edge with
        // their value written on them.
        let m = self
            .bars
            .iter()
            .fold(0.01f64, |a, (_, l, h)| a.max(l.abs()).max(h.abs()))
            .min(1.0)
            * 100.0
            * 1.15;
        let labels: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        let fmt = move |y: &f64| -> String {
            let i = y.round();
            if (y - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            labels.get(i as usize).cloned().unwrap_or_default()
        };
        let mut chart = ChartBuilder::on(&area)
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(430)
            .build_cartesian_2d(-m..m, (n as f64 - 0.5)..-0.5)?;
        chart
            .configure_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&fmt)
            .x_label_formatter(&|v| format!("{v:+.0}%"))
            .x_desc("change of training time per sample (%)")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .disable_y_mesh()
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let low = RGBColor(0, 114, 178);
        let high = RGBColor(213, 94, 0);
        for (i, (_, l, h)) in self.bars.iter().enumerate() {
            let y = i as f64;
            for (v, c) in [(*l, low), (*h, high)] {
                let end = (v * 100.0).clamp(-m, m);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y - 0.32), (end, y + 0.32)],
                    c.mix(0.8).filled(),
                )))?;
                if (v * 100.0).abs() > m {
                    let at = chart.backend_coord(&(end * 0.8, y - 0.15));
                    root.draw(&Text::new(
                        format!("{:+.0}%", v * 100.0),
                        at,
                        ("sans-serif", 14).into_font().color(&WHITE),
                    ))?;
                }
            }
        }
        chart.draw_series(LineSeries::new(
            vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
            BLACK.stroke_width(1),
        ))?;
        let lf = ("sans-serif", 13).into_font();
        let y = 40;
        root.draw(&Rectangle::new(
            [(20, y), (34, y + 14)],
            low.mix(0.8).filled(),
        ))?;
        root.draw(&Text::new(
            "low end of the range / fastest alternative",
            (40, y),
            lf.clone(),
        ))?;
        root.draw(&Rectangle::new(
            [(380, y), (394, y + 14)],
            high.mix(0.8).filled(),
        ))?;
        root.draw(&Text::new(
            "high end of the range / slowest alternative",
            (400, y),
            lf,
        ))?;
        Ok(())
    }
}
