//! Chart of the FlashAttention report: four panels against sequence length (log2 axis), one line
//! per attention implementation: attention share of step time (with the 50% line), step speedup
//! over naive, activation memory kept for backward (log), and the largest batch that fits (log).

use super::{series_color, si_label, DrawResult, Figure};
use crate::analysis::flash::FlashReport;
use crate::graph::AttentionImpl;
use crate::units::{binary_bytes, Bytes};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One implementation's points: (seq, share, speedup, activation bytes, largest batch).
type Points = Vec<(f64, f64, f64, f64, f64)>;

/// The chart.
#[derive(Debug, Clone)]
pub struct FlashChart {
    /// Title.
    pub title: String,
    /// Lines per implementation.
    pub lines: Vec<(String, Points)>,
}

impl FlashChart {
    /// From a report (invalid configurations are left out).
    pub fn new(r: &FlashReport) -> Self {
        let lines = AttentionImpl::ALL
            .iter()
            .map(|a| {
                let pts = r
                    .rows
                    .iter()
                    .filter(|x| x.attention == a.name())
                    .filter_map(|x| {
                        Some((
                            x.seq as f64,
                            x.attention_share?,
                            x.speedup_vs_naive?,
                            x.activations_bytes?,
                            x.max_batch? as f64,
                        ))
                    })
                    .collect();
                (a.to_string(), pts)
            })
            .collect();
        FlashChart {
            title: format!(
                "Attention implementations: {} on {} ({})",
                r.model, r.gpu, r.configuration
            ),
            lines,
        }
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        name: &str,
        pick: fn(&(f64, f64, f64, f64, f64)) -> f64,
        log_y: bool,
        fmt: &dyn Fn(&f64) -> String,
    ) -> DrawResult<DB> {
        let all: Vec<(f64, f64)> = self
            .lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| (q.0, pick(q))))
            .collect();
        let (x0, x1) = all.iter().fold((f64::INFINITY, 0.0f64), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
        let (y0, y1) = all
            .iter()
            .filter(|p| p.1 > 0.0)
            .fold((f64::INFINITY, 0.0f64), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        let (x0, x1) = if x0.is_finite() {
            (x0.log2() - 0.3, x1.log2() + 0.3)
        } else {
            (7.0, 14.0)
        };
        let (y0, y1) = if y0.is_finite() { (y0, y1) } else { (0.1, 1.0) };
        let xfmt = |v: &f64| {
            if (v - v.round()).abs() < 1e-6 {
                format!("{}", 2f64.powf(v.round()))
            } else {
                String::new()
            }
        };
        let mut b = ChartBuilder::on(area);
        b.margin(10)
            .caption(name, ("sans-serif", 16))
            .x_label_area_size(36)
            .y_label_area_size(70);
        macro_rules! draw {
            ($chart:expr, $ylo:expr) => {{
                let mut c = $chart;
                c.configure_mesh()
                    .x_desc("sequence length (tokens)")
                    .x_label_formatter(&xfmt)
                    .y_label_formatter(fmt)
                    .label_style(("sans-serif", 12))
                    .axis_desc_style(("sans-serif", 13))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()?;
                for (i, (label, pts)) in self.lines.iter().enumerate() {
                    let col = series_color(i);
                    let p: Vec<(f64, f64)> = pts
                        .iter()
                        .map(|q| (q.0.log2(), pick(q).max($ylo)))
                        .collect();
                    c.draw_series(LineSeries::new(p.clone(), col.stroke_width(2)))?
                        .label(label.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3))
                        });
                    c.draw_series(p.into_iter().map(|q| Circle::new(q, 4, col.filled())))?;
                }
                if name.starts_with("attention share") {
                    c.draw_series(DashedLineSeries::new(
                        vec![(x0, 0.5), (x1, 0.5)],
                        6,
                        5,
                        BLACK.stroke_width(1),
                    ))?;
                }
                c.configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .label_font(("sans-serif", 12))
                    .draw()?;
            }};
        }
        if log_y {
            let lo = y0 / 2.0;
            draw!(
                b.build_cartesian_2d(x0..x1, (lo..y1 * 2.0).log_scale())?,
                lo
            );
        } else {
            draw!(
                b.build_cartesian_2d(x0..x1, 0.0..(y1 * 1.15).max(1.0))?,
                0.0
            );
        }
        Ok(())
    }
}

impl Figure for FlashChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            self.title.clone(),
            (16, 10),
            ("sans-serif", 16).into_font(),
        ))?;
        let body = root.margin(34, 4, 4, 4);
        let panels = body.split_evenly((2, 2));
        self.panel(
            &panels[0],
            "attention share of step time (50% dashed)",
            |q| q.1,
            false,
            &|v| format!("{:.0}%", v * 100.0),
        )?;
        self.panel(
            &panels[1],
            "step speedup over naive",
            |q| q.2,
            false,
            &|v| format!("{v:.1}x"),
        )?;
        self.panel(
            &panels[2],
            "activation memory per GPU (log)",
            |q| q.3,
            true,
            &|v| binary_bytes(Bytes(*v)),
        )?;
        self.panel(
            &panels[3],
            "largest batch per GPU that fits (log)",
            |q| q.4,
            true,
            &|v| si_label(*v),
        )?;
        Ok(())
    }
}
