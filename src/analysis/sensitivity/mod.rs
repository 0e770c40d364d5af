//! Sensitivity of the estimate to each assumption, in two kinds ([`Kind`]): what the user
//! chooses (attention, execution mode, batch, sequence length) and what is uncertain (hardware
//! figures within their ranges); each row carries its name in words with units ([`labels`]).
//! When the baseline does not fit in memory the result says so (`fits`, `warning`): its times
//! are those of a GPU with enough memory.
//!
//! Continuous assumptions are the numbers of the GPU file (and calibration file) that the time
//! model reads: achievable fractions, bandwidths, L2 size, launch and dispatch costs, all-reduce
//! bandwidth and latency, fused-attention efficiencies, the GEMM small-K constant, and all dense
//! peaks scaled together. Each moves over its file's `range` where one is given, else over a
//! stated ±[`DEFAULT_SPREAD`] (±50% for the GEMM k0, itself an assumption). Discrete settings move
//! over their alternatives: every attention implementation the GPU has, every execution mode,
//! batch ×½ and ×2, and the sequence length ×½ and ×2 (×¼ and ×4 where a vision model needs a
//! square patch grid).
//!
//! For each, the step time and the training time per sample (step time / samples per step) at
//! both ends of the range are reported, and, for numbers, the elasticity
//! ε = d ln t / d ln p by central difference: ε ≈ [ln t(p(1+h)) − ln t(p(1−h))] / [ln(1+h) − ln(1−h)]
//! with h = 1% for continuous values, and over the ×½/×2 (or ×¼/×4) points for batch and sequence.

pub mod labels;

use crate::error::Result;
use crate::estimate::{Estimator, RunConfig};
use crate::graph::{AttentionImpl, ExecMode};
use crate::scenario::Scenario;
use crate::spec::{GpuSpec, ModelSpec};
use crate::time::figures::DEFAULT_SPREAD;
use crate::time::{attention_available, Calibration, Machine, FIGURES};
use crate::units::binary_bytes;
use serde::Serialize;

/// Effects smaller than this (a relative change of the training time per sample at both ends,
/// and of the step time) are negligible: charts and text leave them out and say how many.
pub const NEGLIGIBLE: f64 = 0.001;

/// Relative step of the central difference for elasticities.
pub const ELASTICITY_STEP: f64 = 0.01;

/// A continuous assumption: one number of the machine, its value and its range.
#[derive(Debug, Clone)]
pub struct Assumption {
    /// Dotted name as in the GPU file (or a descriptive name).
    pub name: &'static str,
    /// The value used.
    pub value: f64,
    /// `[low, high]`.
    pub range: [f64; 2],
    /// Where the range comes from.
    pub range_source: String,
    /// Whether the range comes from a file (used by Monte Carlo intervals).
    pub from_file: bool,
    set: fn(&mut Machine, f64),
}

impl Assumption {
    /// A copy of `base` with this assumption set to `x`.
    pub fn apply(&self, base: &Machine, x: f64) -> Machine {
        let mut m = *base;
        (self.set)(&mut m, x);
        m
    }
}

/// The continuous assumptions behind an estimate on `gpu` (with calibration overrides): every
/// figure of [`FIGURES`] that this GPU uses and that is varied, at its value.
pub fn assumptions(gpu: &GpuSpec, cal: Option<&Calibration>, mach: &Machine) -> Vec<Assumption> {
    let mut v = Vec::new();
    for f in FIGURES {
        let Some(spread) = f.spread else {
            continue;
        };
        let value = (f.get)(mach);
        if !(f.used)(gpu, mach) || value <= 0.0 {
            continue;
        }
        let calv = f.calibration.and_then(|k| cal.and_then(|c| c.get(k)));
        let (range, range_source, from_file) = match (calv, (f.in_gpu)(gpu)) {
            (Some(s), _) if s.range.is_some() => {
                (s.bounds(), "calibration file range".to_string(), true)
            }
            (None, Some(s)) if s.range.is_some() => {
                (s.bounds(), "GPU file range".to_string(), true)
            }
            _ => (
                [value * (1.0 - spread), value * (1.0 + spread)],
                format!(
                    "assumption: ±{:.0}% (no range in the files)",
                    spread * 100.0
                ),
                false,
            ),
        };
        v.push(Assumption {
            name: f.name,
            value,
            range,
            range_source,
            from_file,
            set: f.set,
        });
    }
    v
}

/// What kind of input a row moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A setting the user chooses (attention, execution mode, batch, sequence length).
    Choice,
    /// A hardware figure known only within a range (GPU or calibration file).
    Uncertain,
}

/// The effect of one assumption.
#[derive(Debug, Clone, Serialize)]
pub struct Effect {
    /// Parameter name (the dotted field of the GPU file for hardware figures).
    pub parameter: String,
    /// A choice or an uncertain figure.
    pub kind: Kind,
    /// In words, with the range in units for figures: "HBM bandwidth 3.84–5.76 TB/s".
    pub label: String,
    /// The value used in the baseline.
    pub baseline: String,
    /// The low end of its range (the value or alternative giving the lowest time for discrete
    /// settings).
    pub low: String,
    /// The high end of its range (the alternative giving the highest time for discrete settings).
    pub high: String,
    /// Where the range comes from.
    pub range_source: String,
    /// Step time at the low end.
    pub step_time_low_s: f64,
    /// Step time at the high end.
    pub step_time_high_s: f64,
    /// Training time per sample at the low end (step time / samples per step).
    pub per_sample_low_s: f64,
    /// Training time per sample at the high end.
    pub per_sample_high_s: f64,
    /// Relative change of the step time at the low end (−0.1 = 10% faster).
    pub step_change_low: f64,
    /// Relative change of the step time at the high end.
    pub step_change_high: f64,
    /// Relative change of the training time at the low end.
    pub train_change_low: f64,
    /// Relative change of the training time at the high end.
    pub train_change_high: f64,
    /// d ln(step time) / d ln(parameter) (numbers only).
    pub step_elasticity: Option<f64>,
    /// d ln(training time per sample) / d ln(parameter) (numbers only).
    pub train_elasticity: Option<f64>,
}

impl Effect {
    /// Size used for sorting: the span of the relative change in training time, or in step
    /// time when that is larger.
    pub fn size(&self) -> f64 {
        (self.train_change_high - self.train_change_low)
            .abs()
            .max((self.step_change_high - self.step_change_low).abs())
    }

    /// Whether every change is below [`NEGLIGIBLE`].
    pub fn negligible(&self) -> bool {
        [
            self.train_change_low,
            self.train_change_high,
            self.step_change_low,
            self.step_change_high,
        ]
        .iter()
        .all(|c| c.abs() < NEGLIGIBLE)
    }
}

/// Sensitivity of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Sensitivity {
    /// Model name.
    pub model: String,
    /// GPU name.
    pub gpu: String,
    /// Configuration in words.
    pub configuration: String,
    /// Baseline step time.
    pub step_time_s: f64,
    /// Baseline training time per sample.
    pub per_sample_s: f64,
    /// Whether the baseline fits in the GPU's memory.
    pub fits: bool,
    /// Memory per GPU of the baseline.
    pub memory_per_gpu_bytes: f64,
    /// The GPU's memory capacity.
    pub capacity_bytes: f64,
    /// Set when the baseline does not fit: its times are those of a GPU with enough memory.
    pub warning: Option<String>,
    /// Effects, largest first.
    pub effects: Vec<Effect>,
    /// Stated method.
    pub method: String,
}

/// (step time, time per sample) of one evaluation.
fn times(
    est: &mut Estimator,
    model: &ModelSpec,
    mach: &Machine,
    run: &RunConfig,
) -> Result<(f64, f64)> {
    let e = est.estimate(model, mach, run)?;
    Ok((e.step_time.0, e.step_time.0 / e.samples_per_step))
}

/// Elasticity from two points: [ln y1 − ln y0] / [ln x1 − ln x0].
pub fn elasticity(x0: f64, y0: f64, x1: f64, y1: f64) -> f64 {
    (y1.ln() - y0.ln()) / (x1.ln() - x0.ln())
}

#[allow(clippy::too_many_arguments)]
fn effect(
    (parameter, kind, label): (String, Kind, String),
    baseline: String,
    low: (String, f64, f64),
    high: (String, f64, f64),
    range_source: String,
    base: (f64, f64),
    elasticities: (Option<f64>, Option<f64>),
) -> Effect {
    Effect {
        parameter,
        kind,
        label,
        baseline,
        low: low.0,
        high: high.0,
        range_source,
        step_time_low_s: low.1,
        step_time_high_s: high.1,
        per_sample_low_s: low.2,
        per_sample_high_s: high.2,
        step_change_low: low.1 / base.0 - 1.0,
        step_change_high: high.1 / base.0 - 1.0,
        train_change_low: low.2 / base.1 - 1.0,
        train_change_high: high.2 / base.1 - 1.0,
        step_elasticity: elasticities.0,
        train_elasticity: elasticities.1,
    }
}

/// Sensitivity of scenario `s` to every assumption.
pub fn analyse(s: &Scenario) -> Result<Sensitivity> {
    let (model, gpu, mach, run) = (&s.model, &s.gpu, s.machine, s.run);
    let mut est = Estimator::new();
    let e0 = est.estimate(model, &mach, &run)?;
    let (fits, memory, capacity) = (e0.fits, e0.memory.total_bytes, mach.capacity);
    let base = times(&mut est, model, &mach, &run)?;
    let warning = (!fits).then(|| {
        format!(
            "the baseline does not fit in memory ({} per GPU, {} available): its times are what a GPU \
             with enough memory would take; make it fit first (`roofline estimate` lists changes that do)",
            binary_bytes(memory),
            binary_bytes(capacity)
        )
    });
    let mut effects = Vec::new();
    for p in assumptions(gpu, s.calibration.as_ref(), &mach) {
        let at = |est: &mut Estimator, x: f64| times(est, model, &p.apply(&mach, x), &run);
        let lo = at(&mut est, p.range[0])?;
        let hi = at(&mut est, p.range[1])?;
        let h = ELASTICITY_STEP;
        let dn = at(&mut est, p.value * (1.0 - h))?;
        let up = at(&mut est, p.value * (1.0 + h))?;
        let (x0, x1) = (1.0 - h, 1.0 + h);
        let (words, unit) = labels::describe(p.name);
        effects.push(effect(
            (
                p.name.to_string(),
                Kind::Uncertain,
                format!("{words} {}", labels::range(unit, p.range[0], p.range[1])),
            ),
            labels::value(unit, p.value),
            (labels::value(unit, p.range[0]), lo.0, lo.1),
            (labels::value(unit, p.range[1]), hi.0, hi.1),
            p.range_source.clone(),
            base,
            (
                Some(elasticity(x0, dn.0, x1, up.0)),
                Some(elasticity(x0, dn.1, x1, up.1)),
            ),
        ));
    }
    // Discrete alternatives: the fastest and the slowest.
    let mut discrete =
        |name: &str, baseline: String, alts: Vec<(String, RunConfig)>| -> Result<()> {
            let mut pts = Vec::new();
            for (label, r) in alts {
                pts.push((label, times(&mut est, model, &mach, &r)?));
            }
            if pts.is_empty() {
                return Ok(());
            }
            let min = pts
                .iter()
                .min_by(|x, y| x.1 .1.total_cmp(&y.1 .1))
                .cloned()
                .map(|(l, t)| (l, t.0, t.1));
            let max = pts
                .iter()
                .max_by(|x, y| x.1 .1.total_cmp(&y.1 .1))
                .cloned()
                .map(|(l, t)| (l, t.0, t.1));
            if let (Some(lo), Some(hi)) = (min, max) {
                let labels: Vec<&str> = pts.iter().map(|p| p.0.as_str()).collect();
                effects.push(effect(
                    (name.to_string(), Kind::Choice, name.to_string()),
                    baseline,
                    lo,
                    hi,
                    format!("alternatives: {}", labels.join(", ")),
                    base,
                    (None, None),
                ));
            }
            Ok(())
        };
    let atts = AttentionImpl::ALL
        .iter()
        .filter(|x| attention_available(&mach, **x, run.step.precision))
        .map(|x| (x.to_string(), s.run_with_attention(*x)))
        .collect();
    discrete(
        "attention implementation",
        run.step.attention.to_string(),
        atts,
    )?;
    let modes = ExecMode::ALL
        .iter()
        .map(|m| (m.to_string(), RunConfig { mode: *m, ..run }))
        .collect();
    discrete("execution mode", run.mode.to_string(), modes)?;

    // Batch and sequence: two points each, with elasticities over them.
    let b = run.step.batch;
    if b >= 2 {
        // The micro-batch varies at the run's micro-steps (a global batch is not kept).
        let rb = |x: u64| RunConfig {
            step: crate::graph::StepConfig {
                batch: x,
                ..run.step
            },
            global_batch: None,
            ..run
        };
        let lo = times(&mut est, model, &mach, &rb(b / 2))?;
        let hi = times(&mut est, model, &mach, &rb(b * 2))?;
        let (x0, x1) = ((b / 2) as f64, (b * 2) as f64);
        effects.push(effect(
            ("batch per GPU".into(), Kind::Choice, "batch per GPU".into()),
            b.to_string(),
            ((b / 2).to_string(), lo.0, lo.1),
            ((b * 2).to_string(), hi.0, hi.1),
            "stated: x1/2 and x2".into(),
            base,
            (
                Some(elasticity(x0, lo.0, x1, hi.0)),
                Some(elasticity(x0, lo.1, x1, hi.1)),
            ),
        ));
    }
    let seq = model.max_seq();
    let neighbours = [
        (seq / 2, seq * 2, "x1/2 and x2"),
        (
            seq / 4,
            seq * 4,
            "x1/4 and x4 (x2 gives no square patch grid)",
        ),
    ];
    for (s0, s1, how) in neighbours {
        let (Ok(m0), Ok(m1)) = (model.with_sequence(s0), model.with_sequence(s1)) else {
            continue;
        };
        if s0 == 0 {
            continue;
        }
        let lo = times(&mut est, &m0, &mach, &run)?;
        let hi = times(&mut est, &m1, &mach, &run)?;
        effects.push(effect(
            (
                "sequence length".into(),
                Kind::Choice,
                "sequence length (tokens)".into(),
            ),
            seq.to_string(),
            (s0.to_string(), lo.0, lo.1),
            (s1.to_string(), hi.0, hi.1),
            format!("stated: {how}"),
            base,
            (
                Some(elasticity(s0 as f64, lo.0, s1 as f64, hi.0)),
                Some(elasticity(s0 as f64, lo.1, s1 as f64, hi.1)),
            ),
        ));
        break;
    }
    effects.sort_by(|x, y| y.size().total_cmp(&x.size()));
    Ok(Sensitivity {
        model: model.name.clone(),
        gpu: gpu.name.clone(),
        configuration: format!(
            "{} x {}, batch {} per GPU, attention {}, {} mode, {}",
            run.fleet.gpus, gpu.name, run.step.batch, run.step.attention, run.mode, run.step.precision
        ),
        step_time_s: base.0,
        per_sample_s: base.1,
        fits,
        memory_per_gpu_bytes: memory.0,
        capacity_bytes: capacity.0,
        warning,
        effects,
        method: format!(
            "each assumption moved alone over its range (the file's range, else ±{:.0}%), everything else at its value; \
             elasticity = d ln t / d ln p by central difference (±{:.0}% for numbers; over the two points for batch and sequence)",
            DEFAULT_SPREAD * 100.0,
            ELASTICITY_STEP * 100.0
        ),
    })
}
