//! Tornado chart of a sensitivity analysis, in two panels with their own axes: "what you
//! choose" (attention, execution mode, batch, sequence length: each alternative alone) above
//! "what is uncertain" (hardware figures over their ranges). One horizontal bar per row, from the
//! relative change of the training time per sample at one end to the change at the other,
//! largest effect on top; each bar end names its value (the alternative, or the figure's value in
//! units). Choices are coloured by outcome (green faster, vermillion slower), uncertain figures by
//! end of their range (blue low value, orange high value), so one colour never means two things.
//! Rows with a negligible effect ([`crate::analysis::sensitivity::NEGLIGIBLE`]) are left out and
//! counted; a baseline that does not fit in memory is stated in red under the title.

use super::{DrawResult, Figure};
use crate::analysis::sensitivity::{Effect, Kind, Sensitivity};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Bars of uncertain figures shown at most.
pub const MAX_BARS: usize = 14;

/// One bar: label, and (value in words, relative change) at each end.
#[derive(Debug, Clone)]
pub struct Bar {
    /// In words, with units.
    pub label: String,
    /// The low end (or first alternative) and its change of training time per sample.
    pub low: (String, f64),
    /// The high end (or second alternative) and its change.
    pub high: (String, f64),
}

/// The tornado chart.
#[derive(Debug, Clone)]
pub struct Tornado {
    /// Title.
    pub title: String,
    /// Set when the baseline does not fit in memory.
    pub warning: Option<String>,
    /// What the user chooses.
    pub choices: Vec<Bar>,
    /// What is uncertain.
    pub uncertain: Vec<Bar>,
    /// Rows left out as negligible (or beyond [`MAX_BARS`]).
    pub left_out: usize,
}

const FASTER: RGBColor = RGBColor(0, 158, 115);
const SLOWER: RGBColor = RGBColor(213, 94, 0);
const LOW: RGBColor = RGBColor(0, 114, 178);
const HIGH: RGBColor = RGBColor(230, 159, 0);

fn bar(e: &Effect) -> Bar {
    let label = match e.kind {
        Kind::Choice => format!("{} (baseline {})", e.label, e.baseline),
        Kind::Uncertain => e.label.clone(),
    };
    Bar {
        label,
        low: (e.low.clone(), e.train_change_low),
        high: (e.high.clone(), e.train_change_high),
    }
}

impl Tornado {
    /// The bars of `s`: its choices and its largest uncertain effects, negligible ones dropped.
    pub fn new(s: &Sensitivity) -> Self {
        let shown = |k: Kind| {
            s.effects
                .iter()
                .filter(move |e| e.kind == k && !e.negligible())
        };
        let choices: Vec<Bar> = shown(Kind::Choice).map(bar).collect();
        let uncertain: Vec<Bar> = shown(Kind::Uncertain).take(MAX_BARS).map(bar).collect();
        Tornado {
            title: format!(
                "Training time per sample: {} ({}), baseline {:.2} ms per step",
                s.model,
                s.configuration,
                s.step_time_s * 1e3
            ),
            warning: s.warning.as_ref().map(|w| format!("Warning: {w}")),
            left_out: s.effects.len() - choices.len() - uncertain.len(),
            choices,
            uncertain,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        bars: &[Bar],
        colour: &dyn Fn(bool, f64) -> RGBColor,
        legend: [(RGBColor, &str); 2],
        note: Option<String>,
    ) -> DrawResult<DB> {
        let font = ("sans-serif", 14).into_font();
        area.draw(&Text::new(title.to_string(), (10, 4), font.clone()))?;
        let (tw, _) = area.estimate_text_size(title, &font.clone().into_text_style(area))?;
        let mut x = tw as i32 + 40;
        for (c, what) in legend {
            area.draw(&Rectangle::new(
                [(x, 5), (x + 14, 19)],
                c.mix(0.85).filled(),
            ))?;
            area.draw(&Text::new(what.to_string(), (x + 20, 4), font.clone()))?;
            let (w, _) = area.estimate_text_size(what, &font.clone().into_text_style(area))?;
            x += w as i32 + 48;
        }
        let n = bars.len().max(1);
        // Axis clipped at ±100%: longer bars end at the edge with their value written on them.
        let m = bars
            .iter()
            .fold(0.01f64, |a, b| a.max(b.low.1.abs()).max(b.high.1.abs()))
            .min(1.0)
            * 100.0
            * 1.35;
        let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
        let fmt = move |y: &f64| -> String {
            let i = y.round();
            if (y - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            labels.get(i as usize).cloned().unwrap_or_default()
        };
        let mut chart = ChartBuilder::on(&area.margin(24, 0, 0, 0))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(420)
            .build_cartesian_2d(-m..m, (n as f64 - 0.5)..-0.5)?;
        chart
            .configure_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&fmt)
            .x_label_formatter(&|v| format!("{v:+.0}%"))
            .x_desc("change of training time per sample")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 13))
            .disable_y_mesh()
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let small = ("sans-serif", 12).into_font();
        for (i, b) in bars.iter().enumerate() {
            let y = i as f64;
            for (is_low, (what, v)) in [(true, &b.low), (false, &b.high)] {
                let pct = v * 100.0;
                let end = pct.clamp(-m, m);
                let c = colour(is_low, *v);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y - 0.3), (end, y + 0.3)],
                    c.mix(0.85).filled(),
                )))?;
                let text = format!("{what}: {pct:+.1}%");
                let (w, h) =
                    root.estimate_text_size(&text, &small.clone().into_text_style(root))?;
                let tip = chart.backend_coord(&(end, y));
                let (plot_x, _) = chart.plotting_area().get_pixel_range();
                let clipped = pct.abs() > m;
                // Outside the bar's tip, or inside it (white) where the bar reaches the edge.
                let x = match (end >= 0.0, clipped) {
                    (true, false) => tip.0 + 5,
                    (false, false) => tip.0 - 5 - w as i32,
                    (true, true) => tip.0 - 5 - w as i32,
                    (false, true) => tip.0 + 5,
                };
                let x = x.clamp(plot_x.start + 2, plot_x.end - w as i32 - 2);
                let col = if clipped { WHITE } else { RGBColor(40, 40, 40) };
                root.draw(&Text::new(
                    text,
                    (x, tip.1 - h as i32 / 2),
                    small.clone().color(&col),
                ))?;
            }
        }
        chart.draw_series(LineSeries::new(
            vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
            BLACK.stroke_width(1),
        ))?;
        if let Some(t) = note {
            let (_, h) = area.dim_in_pixel();
            area.draw(&Text::new(
                t,
                (10, h as i32 - 16),
                small.color(&RGBColor(90, 90, 90)),
            ))?;
        }
        Ok(())
    }
}

impl Figure for Tornado {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            self.title.clone(),
            (16, 10),
            ("sans-serif", 16).into_font(),
        ))?;
        let mut top = 38;
        if let Some(w) = &self.warning {
            root.draw(&Text::new(
                w.clone(),
                (16, top),
                ("sans-serif", 13).into_font().color(&RGBColor(200, 0, 0)),
            ))?;
            top += 22;
        }
        let body = root.margin(top, 6, 6, 6);
        let (_, h) = body.dim_in_pixel();
        // Heights in proportion to the rows, plus each panel's title and axis.
        let rows_c = self.choices.len().max(1) as i32;
        let rows_u = self.uncertain.len().max(1) as i32;
        let fixed = 24 + 8 + 40 + 16;
        let per_row = ((h as i32 - 2 * fixed) / (rows_c + rows_u)).max(8);
        let (upper, lower) = body.split_vertically(fixed + per_row * rows_c);
        self.panel(
            root,
            &upper,
            "What you choose (each alternative alone)",
            &self.choices,
            &|_, v| if v <= 0.0 { FASTER } else { SLOWER },
            [(FASTER, "faster"), (SLOWER, "slower")],
            None,
        )?;
        let note = (self.left_out > 0).then(|| {
            format!(
                "{} more rows change the time per sample by less than 0.1% (or are beyond the {} largest): see the text or JSON output",
                self.left_out, MAX_BARS
            )
        });
        self.panel(
            root,
            &lower,
            "What is uncertain (hardware figures over their ranges)",
            &self.uncertain,
            &|is_low, _| if is_low { LOW } else { HIGH },
            [(LOW, "low end of the range"), (HIGH, "high end")],
            note,
        )?;
        Ok(())
    }
}
