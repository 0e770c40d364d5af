//! FlashAttention report: every attention implementation (naive, sdpa-math, unfused, flash1, 2, 3)
//! across sequence lengths for one
//! model and GPU.
//!
//! For each implementation and each sequence length 128, 256, ..., 16384 that the model accepts
//! (a vision model needs a square patch grid, see [`ModelSpec::with_sequence`]) it reports the
//! attention share of step time (the `attention` slot of the estimate's breakdown over the step
//! time), the memory per GPU at the configured batch and whether it fits, the step speedup over
//! naive (t_naive / t; only where both fit: a step that does not fit in memory is no run to
//! compare, and the row says which one does not fit), the activation memory kept for backward
//! and the bytes saved against naive, and the largest batch per GPU that fits. The sequence length
//! above which attention dominates (> 50% of step time) is interpolated linearly in
//! log(sequence) between the last tested length at or below 50% and the first above.
//! A headline table gives the same at the model's own sequence length.

use crate::error::Result;
use crate::estimate::{Estimator, RunConfig};
use crate::graph::AttentionImpl;
use crate::scenario::Scenario;
use crate::spec::ModelSpec;
use crate::time::Machine;
use serde::Serialize;

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
    /// Memory per GPU at the configured batch (the whole footprint).
    pub memory_bytes: Option<f64>,
    /// Whether that footprint fits in the GPU's memory.
    pub fits: Option<bool>,
    /// Step speedup over naive at the same sequence length; None unless both this
    /// implementation and naive fit in memory at the configured batch (a run that does not fit
    /// has no step time to compare with), see `speedup_note`.
    pub speedup_vs_naive: Option<f64>,
    /// Why there is no speedup where both step times exist: "does not fit", "naive does not
    /// fit" or "neither it nor naive fits" (in memory, at the configured batch).
    pub speedup_note: Option<String>,
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
    /// The settings that differ from `roofline estimate`'s defaults, as a file-name suffix
    /// (`-batch32-compiled`, empty for the defaults): outputs of different runs never share
    /// a name.
    pub settings: String,
    /// The model's own sequence length.
    pub own_seq: u64,
    /// Batch per GPU of every row.
    pub batch: u64,
    /// The GPU's memory capacity.
    pub capacity_bytes: f64,
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
                attention_share: Some(e.breakdown.attention.0 / e.step_time.0),
                memory_bytes: Some(e.memory.total_bytes.0),
                fits: Some(e.fits),
                speedup_vs_naive: None,
                speedup_note: None,
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
                memory_bytes: None,
                fits: None,
                speedup_vs_naive: None,
                speedup_note: None,
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
                let base_fits = n.fits != Some(false);
                r.speedup_note = match (r.fits != Some(false), base_fits) {
                    (true, true) => None,
                    (false, true) => Some("does not fit".into()),
                    (true, false) => Some(format!("{} does not fit", n.attention)),
                    (false, false) if r.attention == n.attention => Some("does not fit".into()),
                    (false, false) => Some(format!("neither it nor {} fits", n.attention)),
                };
                if r.speedup_note.is_none() {
                    r.speedup_vs_naive = Some(t0 / t);
                }
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

/// Builds the report for scenario `s` (its attention setting is ignored).
pub fn build(s: &Scenario) -> Result<FlashReport> {
    let (model, gpu, mach, run) = (&s.model, s.gpu.name.as_str(), &s.machine, &s.run);
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
        settings: settings_suffix(s),
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
        batch: run.step.batch,
        capacity_bytes: mach.capacity.0,
        headline,
        rows,
        skipped_seqs: skipped,
        dominance,
    })
}

/// File stem for a report: `flash-MODEL-GPU` with path-unfriendly characters replaced.
pub fn stem(r: &FlashReport) -> String {
    format!("flash-{}-{}{}", r.model, r.gpu, r.settings).replace(['@', '/', ' ', '.'], "-")
}

/// The settings of `s` that change a FlashAttention report and differ from the defaults of
/// `roofline estimate`, as a file-name suffix.
fn settings_suffix(s: &Scenario) -> String {
    use crate::scenario::defaults as d;
    let run = &s.run;
    let p = &run.step.parallel;
    let mut out = String::new();
    let mut add = |differs: bool, part: String| {
        if differs {
            out.push('-');
            out.push_str(&part);
        }
    };
    add(
        run.step.batch != d::BATCH,
        format!("batch{}", run.step.batch),
    );
    add(run.mode != d::MODE, run.mode.to_string());
    add(
        run.step.precision != d::PRECISION,
        run.step.precision.to_string(),
    );
    add(
        run.step.checkpointing != d::CHECKPOINTING,
        run.step.checkpointing.to_string(),
    );
    add(run.fleet.gpus != d::GPUS, format!("{}gpus", run.fleet.gpus));
    add(
        run.fleet.gpus_per_node != d::GPUS_PER_NODE.min(run.fleet.gpus),
        format!("{}pernode", run.fleet.gpus_per_node),
    );
    add(run.zero != 0, format!("zero{}", run.zero));
    add(run.grad_accum != 1, format!("accum{}", run.grad_accum));
    add(run.step.ema != 0, format!("ema{}", run.step.ema));
    add(
        run.step.expert_shards != 1,
        format!("ep{}", run.step.expert_shards),
    );
    add(p.tp != 1, format!("tp{}", p.tp));
    add(p.sp, "sp".into());
    add(p.pp != 1, format!("pp{}", p.pp));
    add(p.vpp != 1, format!("vpp{}", p.vpp));
    add(p.cp != 1, format!("cp{}", p.cp));
    add(run.shard_group != 0, format!("shard{}", run.shard_group));
    add(s.calibration.is_some(), "calibrated".into());
    add(
        s.network.is_some(),
        s.network.as_ref().map_or(String::new(), |n| n.name.clone()),
    );
    out
}
