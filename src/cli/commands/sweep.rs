//! `roofline sweep`: the rows stream to the output table (and one number per row to the chart)
//! while the sweep runs; `--objective` keeps the best that fit.

use super::{extension, out};
use crate::analysis;
use crate::cli::args::SweepArgs;
use crate::error::{Error, Result};
use crate::export::{csv, json, text};
use crate::files;
use crate::plot::{self, render_for, SIZE};
use std::io::IsTerminal;

/// `roofline sweep`.
pub fn sweep(a: &SweepArgs) -> Result<()> {
    use analysis::sweep::{parse_vary, METRICS};
    let dims = a
        .vary
        .iter()
        .map(|v| parse_vary(v))
        .collect::<Result<Vec<_>>>()?;
    // Say what each range expands to.
    for (spec, d) in a.vary.iter().zip(&dims) {
        if spec.contains("..") {
            note!("--vary {spec}: {}", d.labels.join(", "));
        }
    }
    // `cost` and `time` name the training figure with a dataset, else the per-step one.
    let dataset = a.scenario.train_samples.is_some() || a.scenario.train_tokens.is_some();
    let metric = match (a.metric.as_str(), dataset) {
        ("cost", true) => "train_cost_usd",
        ("cost", false) => "cost_per_step_usd",
        ("time", true) => "train_time_s",
        ("time", false) => "step_time_s",
        (m, _) => m,
    };
    if !METRICS.contains(&metric) {
        return Err(Error::unknown("metric", &a.metric, &METRICS));
    }
    if metric.starts_with("train_") && !dataset {
        return Err(Error::Invalid(format!(
            "--metric {metric} needs a dataset: give --train-samples or --train-tokens"
        )));
    }
    if metric != a.metric {
        note!("--metric {}: {metric}", a.metric);
    }
    let csv_out = match extension(&a.out).as_deref() {
        Some("csv") => true,
        Some("json") => false,
        _ => {
            return Err(Error::Invalid(format!(
                "--out {} must end in .csv or .json",
                a.out.display()
            )))
        }
    };
    if let Some(p) = &a.plot {
        plot::Format::of(p)?;
    }
    let base = a.scenario.spec()?;
    let n = analysis::sweep::configurations(&dims);
    if a.plot.is_some() && n > CHART_CONFIGURATIONS {
        return Err(Error::Invalid(format!(
            "a chart of {n} configurations is unreadable: --plot takes at most {CHART_CONFIGURATIONS}; \
             vary fewer values or drop --plot"
        )));
    }
    let bar = (n >= 2000 && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::with_draw_target(
            Some(n as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} configurations, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    // Rows stream into a temporary file beside --out; the chart keeps one number per row. Both
    // files are opened before the sweep, so an unwritable target fails before any work.
    let mut table = files::StagedWriter::create(&a.out)?;
    let chart_file = a
        .plot
        .as_deref()
        .map(files::StagedWriter::create)
        .transpose()?;
    let vary: Vec<(String, Vec<String>)> = dims
        .iter()
        .map(|d| (d.param.name().to_string(), d.labels.clone()))
        .collect();
    table.write(
        if csv_out {
            csv::sweep_header()
        } else {
            json::sweep_start(&vary, n)?
        }
        .as_bytes(),
    )?;
    let mut values = Vec::new();
    let mut fits = Vec::new();
    let mut first = true;
    let mut dropped = 0usize;
    if a.top == 0 || a.top > 1000 {
        return Err(Error::Invalid(format!(
            "--top {}: give 1 to 1000 configurations",
            a.top
        )));
    }
    let mut best = a
        .objective
        .map(|o| analysis::sweep::Best::new(o, a.top as usize));
    let summary = analysis::sweep::sweep(
        &base,
        &dims,
        &|k| {
            if let Some(b) = &bar {
                b.inc(k as u64);
            }
        },
        &mut |row| {
            if let Some(b) = &mut best {
                b.offer(&row);
            }
            // The chart keeps every point of the grid (its positions come from the grid); a
            // dropped row is a gap in it.
            let keep = !a.fits_only || row.fits == Some(true);
            if a.plot.is_some() {
                values.push(if keep { row.metric(metric) } else { None });
                fits.push(row.fits);
            }
            if !keep {
                dropped += 1;
                return Ok(());
            }
            let line = if csv_out {
                csv::sweep_row(&row)?
            } else {
                json::sweep_row(&row, first)?
            };
            first = false;
            table.write(line.as_bytes())
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !csv_out {
        table.write(json::sweep_end().as_bytes())?;
    }
    let mut staged = vec![table.finish()?];
    if let (Some(p), Some(mut w)) = (&a.plot, chart_file) {
        let chart =
            plot::sweep::SweepChart::new(&summary.vary, &values, &fits, metric, &resolved(&base)?)?;
        if let Some(w) = &chart.warning {
            note!("warning: {w}");
        }
        w.write(&render_for(&chart, p, SIZE)?)?;
        staged.push(w.finish()?);
    }
    files::commit(staged)?;
    note!(
        "evaluated {} configurations in {:.3} s: {:.0} configurations/s on {} threads ({} invalid); wrote {}",
        summary.configurations,
        summary.eval_seconds,
        summary.configurations as f64 / summary.eval_seconds.max(1e-9),
        rayon::current_num_threads(),
        summary.invalid,
        a.out.display()
    );
    if let Some(p) = &a.plot {
        note!("wrote {}", p.display());
    }
    if a.fits_only {
        note!(
            "--fits-only: wrote {} of {} configurations; {dropped} do not fit in memory or could not be evaluated",
            summary.configurations - dropped,
            summary.configurations
        );
    }
    if let Some(b) = &best {
        out(&text::sweep_best(b, summary.configurations))?;
    }
    for n in analysis::sweep::price_notes(&base, &dims)? {
        note!("note: {n}");
    }
    Ok(())
}

/// `spec` with the settings it leaves out set as its model file's `[defaults]` set them (for
/// what a chart title states; `unset` is kept, so that a chart over several models can leave
/// those settings out).
fn resolved(spec: &crate::scenario::ScenarioSpec) -> Result<crate::scenario::ScenarioSpec> {
    let s = spec.load()?;
    let mut r = spec.clone();
    r.step.batch = s.run.step.batch;
    r.step.attention = s.run.step.attention;
    r.step.precision = s.run.step.precision;
    r.mode = s.run.mode;
    Ok(r)
}

/// Most configurations a sweep chart draws.
const CHART_CONFIGURATIONS: usize = 100_000;
