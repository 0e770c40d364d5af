//! The data of a roofline chart (Williams, Waterman & Patterson, "Roofline: an insightful
//! visual performance model", CACM 2009): every op of a step as a point at (arithmetic
//! intensity, attained FLOP/s), the compute roofs the step uses, and measured kernels from a
//! bench file. [`crate::plot::roofline`] draws it; its module docs state the chart's rules.

use crate::error::{Error, Result};
use crate::estimate::{Estimator, RunConfig, StepEstimate};
use crate::graph::{Dtype, ExecMode, Op, OpClass, Phase, PrecisionPolicy};
use crate::scenario::Scenario;
use crate::time::{op_time, Machine};
use serde::Deserialize;
use std::path::Path;

/// A horizontal compute roof.
#[derive(Debug, Clone)]
pub struct Roof {
    /// e.g. "bf16 tensor".
    pub name: String,
    /// Datasheet dense peak, FLOP/s.
    pub peak: f64,
    /// Achievable fraction of the peak.
    pub fraction: f64,
}

/// One predicted op on the chart.
#[derive(Debug, Clone)]
pub struct OpPoint {
    /// Op name.
    pub name: String,
    /// Phase (marker shape).
    pub phase: Phase,
    /// Class (colour).
    pub class: OpClass,
    /// FLOP per HBM byte.
    pub intensity: f64,
    /// FLOPs / predicted time.
    pub flops_per_s: f64,
    /// Share of step time (0-1).
    pub share: f64,
}

/// One measured kernel.
#[derive(Debug, Clone)]
pub struct MeasuredPoint {
    /// Kernel name.
    pub name: String,
    /// FLOP per byte.
    pub intensity: f64,
    /// Measured FLOP/s.
    pub flops_per_s: f64,
}

/// A bench / measurement file, schema `roofline-bench/1`.
#[derive(Debug, Deserialize)]
struct BenchFile {
    schema: String,
    results: Vec<BenchResult>,
}

#[derive(Debug, Deserialize)]
struct BenchResult {
    kernel: String,
    flops: f64,
    bytes: f64,
    time_s: f64,
    #[serde(default = "yes")]
    correct: bool,
}

fn yes() -> bool {
    true
}

/// Reads the measured kernels of a `roofline-bench/1` file: each result with positive FLOPs,
/// bytes and time that passed its correctness check becomes a point (FLOPs/bytes, FLOPs/time).
pub fn load_measured(path: &Path) -> Result<Vec<MeasuredPoint>> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let f: BenchFile =
        serde_json::from_str(&text).map_err(|e| Error::spec(&label, "(json)", e.to_string()))?;
    if f.schema != "roofline-bench/1" {
        return Err(Error::spec(
            &label,
            "schema",
            format!("expected \"roofline-bench/1\", found {:?}", f.schema),
        ));
    }
    Ok(f.results
        .into_iter()
        .filter(|r| r.correct && r.flops > 0.0 && r.bytes > 0.0 && r.time_s > 0.0)
        .map(|r| MeasuredPoint {
            intensity: r.flops / r.bytes,
            flops_per_s: r.flops / r.time_s,
            name: r.kernel,
        })
        .collect())
}

/// Everything the roofline chart shows.
#[derive(Debug, Clone)]
pub struct RooflineChart {
    /// Title line (model, GPU, batch, attention, mode).
    pub title: String,
    /// Caption under the title.
    pub caption: String,
    /// Datasheet HBM bandwidth, B/s.
    pub hbm: f64,
    /// Achievable fraction of it.
    pub hbm_fraction: f64,
    /// Compute roofs.
    pub roofs: Vec<Roof>,
    /// Predicted ops.
    pub points: Vec<OpPoint>,
    /// Measured kernels.
    pub measured: Vec<MeasuredPoint>,
}

impl RooflineChart {
    /// Builds the chart from an estimate and the op list it was computed from (`ops` as left in
    /// [`crate::estimate::Estimator::ops`]).
    pub fn new(
        title: String,
        ops: &[Op],
        mach: &Machine,
        run: &RunConfig,
        est: &StepEstimate,
        measured: Vec<MeasuredPoint>,
    ) -> Result<Self> {
        let k = run.grad_accum as f64;
        let mut points = Vec::new();
        let (mut hidden, mut hidden_share) = (0usize, 0.0);
        let mut roofs: Vec<Roof> = Vec::new();
        let mut add_roof = |name: &str, peak: f64, fraction: f64| {
            if peak > 0.0 && !roofs.iter().any(|r| r.name == name) {
                roofs.push(Roof {
                    name: name.to_string(),
                    peak,
                    fraction,
                });
            }
        };
        // Precisions whose attention and 16-bit GEMMs run in bf16 show that roof first.
        if PrecisionPolicy::of(run.step.precision).attention_gemm() == Dtype::Bf16 {
            add_roof("bf16 tensor", mach.peak_bf16.0, mach.frac_bf16);
        }
        for op in ops {
            let t = op_time(mach, op, run.mode, run.step.attention)?;
            let reps = op.layer.count() as f64 * if op.phase == Phase::Optimizer { 1.0 } else { k };
            let share = t.time.0 * reps / est.step_time.0;
            let bytes = match run.mode {
                ExecMode::Eager => op.bytes_read.0 + op.bytes_written.0,
                ExecMode::Compiled | ExecMode::Graphs => op.fused_read.0 + op.fused_written.0,
            };
            if op.flops.0 <= 0.0 || bytes <= 0.0 || t.time.0 <= 0.0 {
                hidden += 1;
                hidden_share += share;
                continue;
            }
            let (peak, frac) = mach.peak(op.unit, op.dtype);
            let name = match (op.unit, op.dtype) {
                (crate::graph::Unit::Vector, _) => "fp32 vector",
                (_, crate::graph::Dtype::Bf16) => "bf16 tensor",
                (_, crate::graph::Dtype::Fp16) => "fp16 tensor",
                (_, crate::graph::Dtype::Fp8) => "fp8 tensor",
                _ => "tf32 tensor",
            };
            add_roof(name, peak.0, frac);
            points.push(OpPoint {
                name: op.name.to_string(),
                phase: op.phase,
                class: op.class,
                intensity: op.flops.0 / bytes,
                flops_per_s: op.flops.0 / t.time.0,
                share,
            });
        }
        roofs.sort_by(|a, b| b.peak.total_cmp(&a.peak));
        let caption = format!(
            "{} ops plotted; {} without FLOPs or HBM traffic (casts, copies) not shown ({:.1}% of step time). \
             Step {:.2} ms, MFU {:.1}%. Solid: datasheet peaks; dashed: achievable (measured) ceilings.",
            points.len(),
            hidden,
            hidden_share * 100.0,
            est.step_time.0 * 1e3,
            est.mfu * 100.0
        );
        Ok(RooflineChart {
            title,
            caption,
            hbm: mach.hbm.0,
            hbm_fraction: mach.frac_hbm,
            roofs,
            points,
            measured,
        })
    }

    /// Ridge intensity I* = P·a / (B·a_hbm) of an achievable roof.
    pub fn ridge(&self, roof: &Roof) -> f64 {
        roof.peak * roof.fraction / (self.hbm * self.hbm_fraction)
    }
}

/// The roofline chart of scenario `s`, with `measured` kernels beside the predicted ops.
pub fn chart(s: &Scenario, measured: Vec<MeasuredPoint>) -> Result<RooflineChart> {
    let mut est = Estimator::new();
    let e = est.estimate(&s.model, &s.machine, &s.run)?;
    let title = format!(
        "{} on {}: batch {} per GPU, attention {}, {} mode, {}",
        s.model.name,
        s.gpu.display_name,
        s.run.step.batch,
        s.run.step.attention,
        s.run.mode,
        s.run.step.precision
    );
    RooflineChart::new(title, est.ops(), &s.machine, &s.run, &e, measured)
}
