//! FlashAttention report: naive vs sdpa-math vs flash2 vs flash3 across sequence lengths for one
//! model and GPU.
//!
//! For each implementation and each sequence length 128, 256, ..., 16384 that the model accepts
//! (a vision model needs a square patch grid, see [`ModelSpec::with_sequence`]) it reports the
//! attention share of step time (the `attention` slot of the estimate's breakdown over the step
//! time), the step speedup over naive (t_naive / t), the activation memory kept for backward and
//! the bytes saved against naive, and the largest batch per GPU that fits. The sequence length
//! above which attention dominates (> 50% of step time) is interpolated linearly in
//! log(sequence) between the last tested length at or below 50% and the first above.
//! A headline table gives the same at the model's own sequence length.

use crate::cli::EstimateArgs;
use crate::error::Result;
use crate::graph::AttentionImpl;
use crate::spec::ModelSpec;
use crate::time::{Estimator, Machine, RunConfig};
use crate::units::{binary_bytes, human_duration, Bytes, Seconds};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// Sequence lengths tried: powers of two from 128 to 16384.
pub const SEQS: [u64; 8] = [128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/// One (implementation, sequence) point.
#[derive(Debug, Clone, Serialize)]
pub struct FlashRow {
    /// Attention implementation.
    pub attention: String,
    /// Sequence length (tokens per sample).
    pub seq: u64,
    /// Step time, or None when the configuration is invalid.
    pub step_time_s: Option<f64>,
    /// Attention share of step time.
    pub attention_share: Option<f64>,
    /// Step speedup over naive at the same sequence length.
    pub speedup_vs_naive: Option<f64>,
    /// Activation memory kept for backward per GPU.
    pub activations_bytes: Option<f64>,
    /// Activation memory saved against naive.
    pub activations_saved_bytes: Option<f64>,
    /// Largest batch per GPU that fits.
    pub max_batch: Option<u64>,
    /// Why it could not be evaluated.
    pub error: Option<String>,
}

/// Where attention starts to dominate, per implementation.
#[derive(Debug, Clone, Serialize)]
pub struct Dominance {
    /// Attention implementation.
    pub attention: String,
    /// Interpolated sequence length at which attention reaches 50% of step time; None when it
    /// stays below within the tested lengths, 0 when it is above at the shortest.
    pub seq: Option<f64>,
    /// In words.
    pub text: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct FlashReport {
    /// Model name.
    pub model: String,
    /// GPU name.
    pub gpu: String,
    /// Configuration in words.
    pub configuration: String,
    /// The model's own sequence length.
    pub own_seq: u64,
    /// At the model's own sequence length.
    pub headline: Vec<FlashRow>,
    /// Every tested sequence length.
    pub rows: Vec<FlashRow>,
    /// Sequence lengths the model does not accept.
    pub skipped_seqs: Vec<u64>,
    /// Where attention dominates.
    pub dominance: Vec<Dominance>,
}

fn rows_at(
    est: &mut Estimator,
    model: &ModelSpec,
    mach: &Machine,
    run: &RunConfig,
) -> Vec<FlashRow> {
    let seq = model.max_seq();
    let mut out: Vec<FlashRow> = Vec::new();
    for a in AttentionImpl::ALL {
        let r = RunConfig {
            step: crate::graph::StepConfig {
                attention: *a,
                ..run.step
            },
            ..*run
        };
        out.push(match est.estimate(model, mach, &r) {
            Ok(e) => FlashRow {
                attention: a.to_string(),
                seq,
                step_time_s: Some(e.step_time.0),
                attention_share: Some(e.breakdown[1].0 / e.step_time.0),
                speedup_vs_naive: None,
                activations_bytes: Some(e.memory.activations_bytes.0),
                activations_saved_bytes: None,
                max_batch: Some(e.max_batch),
                error: None,
            },
            Err(err) => FlashRow {
                attention: a.to_string(),
                seq,
                step_time_s: None,
                attention_share: None,
                speedup_vs_naive: None,
                activations_bytes: None,
                activations_saved_bytes: None,
                max_batch: None,
                error: Some(err.to_string()),
            },
        });
    }
    let naive = out
        .iter()
        .find(|r| r.attention == AttentionImpl::Naive.name())
        .cloned();
    if let Some(n) = naive {
        for r in &mut out {
            if let (Some(t0), Some(t)) = (n.step_time_s, r.step_time_s) {
                r.speedup_vs_naive = Some(t0 / t);
            }
            if let (Some(a0), Some(a)) = (n.activations_bytes, r.activations_bytes) {
                r.activations_saved_bytes = Some(a0 - a);
            }
        }
    }
    out
}

fn dominance(rows: &[FlashRow], attention: &str) -> Dominance {
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.attention == attention)
        .filter_map(|r| r.attention_share.map(|s| (r.seq as f64, s)))
        .collect();
    let (seq, text) = match pts.iter().position(|p| p.1 > 0.5) {
        None if pts.is_empty() => (None, "not available on this GPU".to_string()),
        None => (
            None,
            format!("stays below 50% up to {}", pts.last().map_or(0.0, |p| p.0)),
        ),
        Some(0) => (Some(0.0), format!("above 50% already at {}", pts[0].0)),
        Some(i) => {
            let ((s0, a0), (s1, a1)) = (pts[i - 1], pts[i]);
            let s = (s0.ln() + (0.5 - a0) / (a1 - a0) * (s1.ln() - s0.ln())).exp();
            (
                Some(s),
                format!("about {s:.0} (interpolated between {s0} and {s1})"),
            )
        }
    };
    Dominance {
        attention: attention.to_string(),
        seq,
        text,
    }
}

/// Builds the report for the configuration `a` (its attention setting is ignored).
pub fn build(a: &EstimateArgs) -> Result<FlashReport> {
    let (model, gpu, mach, run) = a.resolve()?;
    build_for(&model, &gpu.name, &mach, &run)
}

/// Builds the report for a resolved model and machine.
pub fn build_for(
    model: &ModelSpec,
    gpu: &str,
    mach: &Machine,
    run: &RunConfig,
) -> Result<FlashReport> {
    let mut est = Estimator::new();
    let headline = rows_at(&mut est, model, mach, run);
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for s in SEQS {
        match model.with_sequence(s) {
            Ok(m) => rows.extend(rows_at(&mut est, &m, mach, run)),
            Err(_) => skipped.push(s),
        }
    }
    let dominance = AttentionImpl::ALL
        .iter()
        .map(|a| dominance(&rows, a.name()))
        .collect();
    Ok(FlashReport {
        model: model.name.clone(),
        gpu: gpu.to_string(),
        configuration: format!(
            "{} x {}, batch {} per GPU, {} mode, {}, checkpointing {}",
            run.fleet.gpus,
            gpu,
            run.step.batch,
            run.mode,
            run.step.precision,
            run.step.checkpointing
        ),
        own_seq: model.max_seq(),
        headline,
        rows,
        skipped_seqs: skipped,
        dominance,
    })
}

fn cell<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "n/a".to_string(), f)
}

fn table(s: &mut String, rows: &[FlashRow]) {
    let _ = writeln!(s, "| seq | attention | step time | attention share | speedup vs naive | activations | saved vs naive | largest batch |");
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        if let Some(e) = &r.error {
            let why = if e.contains("no [attention] efficiency") {
                "no data for this GPU"
            } else {
                "invalid"
            };
            let _ = writeln!(s, "| {} | {} | n/a ({why}) | | | | | |", r.seq, r.attention);
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.seq,
            r.attention,
            cell(r.step_time_s, |t| human_duration(Seconds(t))),
            cell(r.attention_share, |x| format!("{:.1}%", x * 100.0)),
            cell(r.speedup_vs_naive, |x| format!("{x:.2}x")),
            cell(r.activations_bytes, |b| binary_bytes(Bytes(b))),
            cell(r.activations_saved_bytes, |b| binary_bytes(Bytes(b))),
            cell(r.max_batch, |b| b.to_string()),
        );
    }
}

/// The report as Markdown.
pub fn markdown(r: &FlashReport, chart: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# FlashAttention report: {} on {}", r.model, r.gpu);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Generated by `roofline flash-report` (do not edit by hand). Configuration: {}.",
        r.configuration
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Attention share = time of the attention ops (scores, softmax, PV, or the fused kernel) over step time. \
         Speedup = naive step time / step time at the same sequence length. Activations = bytes kept for backward \
         per GPU at this batch. Largest batch = largest batch per GPU whose footprint fits the GPU's memory. \
         Fused kernels run at the GPU file's measured fraction of peak at its reference length, scaled by \
         s/(s + seq_half); the naive path follows the public JiT code (fp32 scores, materialized bias)."
    );
    if let Some(c) = chart {
        let _ = writeln!(s);
        let _ = writeln!(s, "![FlashAttention chart]({c})");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "## At the model's sequence length ({})", r.own_seq);
    let _ = writeln!(s);
    table(&mut s, &r.headline);
    let _ = writeln!(s);
    let _ = writeln!(s, "## Where attention dominates (> 50% of step time)");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| attention | sequence length above which attention takes > 50% |"
    );
    let _ = writeln!(s, "|---|---|");
    for d in &r.dominance {
        let _ = writeln!(s, "| {} | {} |", d.attention, d.text);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "## Across sequence lengths");
    let _ = writeln!(s);
    if !r.skipped_seqs.is_empty() {
        let list: Vec<String> = r.skipped_seqs.iter().map(|x| x.to_string()).collect();
        let _ = writeln!(
            s,
            "Skipped (the model cannot take them; a vision model needs a square patch grid): {}.",
            list.join(", ")
        );
        let _ = writeln!(s);
    }
    table(&mut s, &r.rows);
    s
}

/// File stem for a report: `flash-MODEL-GPU` with path-unfriendly characters replaced.
pub fn stem(r: &FlashReport) -> String {
    format!("flash-{}-{}", r.model, r.gpu).replace(['@', '/', ' '], "-")
}

/// `roofline flash-report`.
#[derive(Debug, Clone, clap::Args)]
pub struct FlashArgs {
    /// The configuration (as for `roofline estimate`; --attention is ignored: all are compared).
    #[command(flatten)]
    pub estimate: EstimateArgs,
    /// Folder for the Markdown table and the chart (SVG and PNG).
    #[arg(long, default_value = "reports")]
    pub out_dir: PathBuf,
}

/// Writes the report's Markdown and its chart (SVG, and PNG beside it) into `dir`; returns the
/// Markdown path.
pub fn write(r: &FlashReport, dir: &std::path::Path) -> Result<PathBuf> {
    let stem = stem(r);
    let svg = format!("{stem}.svg");
    let chart = crate::plot::flash::FlashChart::new(r);
    crate::plot::save(&chart, &dir.join(&svg), crate::plot::SIZE)?;
    crate::plot::save(&chart, &dir.join(format!("{stem}.png")), crate::plot::SIZE)?;
    let md = dir.join(format!("{stem}.md"));
    crate::export::write_file(&md, &markdown(r, Some(&svg)))?;
    Ok(md)
}

/// Runs `roofline flash-report`.
pub fn run(a: &FlashArgs) -> Result<()> {
    let r = build(&a.estimate)?;
    let md = write(&r, &a.out_dir)?;
    eprintln!(
        "wrote {} and its chart {} (and .png)",
        md.display(),
        md.with_extension("svg").display()
    );
    Ok(())
}
