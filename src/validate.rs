//! `roofline validate`: predicted vs measured training steps, op class by op class.
//!
//! Reads a `roofline-validation/1` file written by `validation/measure.py` (one GPU, PyTorch,
//! bf16 autocast, AdamW), predicts each configuration with the same settings on one GPU, and
//! reports the step-time error, the error per op class, and the peak-memory error.
//!
//! Classes are compared the way the measuring script classifies kernels by name
//! (validation/README.md): batched matmuls of unfused attention are cuBLAS kernels (gemm), only
//! their softmax counts as attention (but the multiply its eager backward starts with is
//! elementwise); the loss is "other"; eager RMSNorm (a composite of pointwise kernels) is
//! elementwise; in compiled mode a fused forward chain that contains a
//! normalization is normalization, one that contains a softmax is attention. Predicted
//! class times are GPU busy time (launch gaps and host stalls are in no kernel). Predicted peak
//! memory is what the PyTorch allocator sees: weights, gradients, optimizer states, autocast
//! copies, activations and the largest backward transient, without workspace or fragmentation.

use crate::error::{Error, Result};
use crate::estimate::{Estimator, RunConfig};
use crate::graph::{
    AttentionImpl, Chain, ExecMode, Op, OpClass, OpKind, Precision, Role, StepConfig,
};
use crate::spec::{load_gpu, load_model};
use crate::time::Calibration;
use crate::time::{op_time, Fleet, Machine, Mechanisms};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The training steps measured on an H100 SXM on 2026-11-27 (path, contents), embedded so that
/// reports built from them do not depend on the working directory.
pub const H100_MEASUREMENTS: (&str, &str) = (
    "reports/measurements/2026-11-27-h100-sxm/measurements.json",
    include_str!("../reports/measurements/2026-11-27-h100-sxm/measurements.json"),
);

/// Classes the measuring script reports.
pub const CLASSES: [&str; 6] = [
    "gemm",
    "attention",
    "normalization",
    "elementwise",
    "optimizer",
    "other",
];

/// A measurements file.
#[derive(Debug, Deserialize)]
pub struct Measurements {
    /// "roofline-validation/1".
    pub schema: String,
    /// True for the synthetic example file.
    #[serde(default)]
    pub example: bool,
    /// When measured.
    #[serde(default)]
    pub date: String,
    /// Command that measured.
    #[serde(default)]
    pub command: String,
    /// The device.
    pub device: serde_json::Value,
    /// How it was measured (the fields validation reads).
    #[serde(default)]
    pub settings: MeasuredSettings,
    /// Configurations.
    pub configs: Vec<MeasuredConfig>,
}

/// A measurements file's settings that validation reads.
#[derive(Debug, Default, Deserialize)]
pub struct MeasuredSettings {
    /// Whether CUPTI was detached at the end of each profile (`TEARDOWN_CUPTI=1`); absent in
    /// older files, which ran without.
    #[serde(default)]
    pub cupti_teardown: Option<bool>,
}

/// One measured configuration.
#[derive(Debug, Deserialize)]
pub struct MeasuredConfig {
    /// Model name.
    pub model: String,
    /// Batch.
    pub batch: u64,
    /// Attention implementation.
    pub attention: String,
    /// eager | compiled.
    pub mode: String,
    /// EMA copies updated per step.
    #[serde(default)]
    pub ema_copies: u32,
    /// Median step time.
    pub step_time_s: Option<f64>,
    /// GPU time per class.
    pub class_times_s: Option<BTreeMap<String, f64>>,
    /// Peak allocated memory.
    pub peak_memory_bytes: Option<f64>,
    /// GPU kernels (and memset/memcpy activities) per step seen by the profiler.
    #[serde(default)]
    pub kernels_per_step: Option<f64>,
    /// Host time per step: a step issued onto an idle GPU, timed until it returns
    /// (validation/measure.py `--host-steps`; absent in older files).
    #[serde(default)]
    pub host_step_time_s: Option<f64>,
    /// The same configuration measured a second time at the end of the run, for host-bound
    /// ones (validation/measure.py; absent in older files).
    #[serde(default)]
    pub repeat: Option<RepeatedMeasurement>,
    /// Whether a profile ran earlier in the process than this configuration's timed steps
    /// (absent in older files).
    #[serde(default)]
    pub timed_after_profiler: Option<bool>,
    /// The same steps timed again right after this configuration's profile
    /// (validation/measure.py `--retime-after-profile`).
    #[serde(default)]
    pub after_profile: Option<RetimedAfterProfile>,
    /// Error message when the configuration failed.
    pub error: Option<String>,
}

/// A configuration's second measurement (the fields validation reads; the rest is diagnostics).
#[derive(Debug, Deserialize)]
pub struct RepeatedMeasurement {
    /// Median step time of the repeat.
    #[serde(default)]
    pub step_time_s: Option<f64>,
    /// Host time per step of the repeat.
    #[serde(default)]
    pub host_step_time_s: Option<f64>,
    /// Why the repeat failed or did not run (its times are then not used).
    #[serde(default)]
    pub error: Option<String>,
}

/// A configuration's steps timed again right after its profile.
#[derive(Debug, Deserialize)]
pub struct RetimedAfterProfile {
    /// Median step time.
    pub step_time_s: f64,
    /// Whether CUPTI was detached at the end of the profile.
    #[serde(default)]
    pub cupti_teardown: bool,
}

/// Predicted vs measured for one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// "model batch attention mode".
    pub config: String,
    /// Measured step time.
    pub measured_s: f64,
    /// Predicted step time.
    pub predicted_s: f64,
    /// predicted / measured - 1.
    pub error: f64,
    /// Per class: (measured, predicted) seconds.
    pub classes: BTreeMap<&'static str, (f64, f64)>,
    /// Peak memory: (measured, predicted) bytes.
    pub memory: Option<(f64, f64)>,
    /// Kernels per step: (profiled, predicted launches).
    pub kernels: Option<(f64, f64)>,
    /// Host time per step: (measured launch-to-return, predicted host dispatch) seconds.
    pub host: Option<(f64, f64)>,
    /// Share of the step the GPU runs kernels: (measured kernel time over the measured step,
    /// predicted busy time over the predicted step). Measured below
    /// [`crate::calibrate::HOST_BOUND_GPU_SHARE`], the host set the pace.
    pub gpu_busy: Option<(f64, f64)>,
    /// The step time measured a second time later in the run, where the file has one: how far
    /// the measurement itself moved.
    pub repeat_s: Option<f64>,
    /// Timed while CUPTI was still attached from an earlier profile in the same process
    /// ([`crate::calibrate::timed_with_cupti_attached`]): a host-bound step's time then
    /// includes the profiler's leftover cost on the host.
    pub cupti_attached: bool,
    /// The step time measured again right after the configuration's profile, and whether
    /// CUPTI had been detached then.
    pub after_profile: Option<(f64, bool)>,
}

impl Comparison {
    /// Whether the measured step was host-bound (see [`Comparison::gpu_busy`]).
    pub fn host_bound(&self) -> bool {
        self.gpu_busy
            .is_some_and(|(m, _)| m < crate::calibrate::HOST_BOUND_GPU_SHARE)
    }

    /// Whether the measured step was host-bound while timed with CUPTI attached: its host
    /// time likely includes some of the profiler's.
    pub fn host_bound_with_cupti_attached(&self) -> bool {
        self.host_bound() && self.cupti_attached
    }
}

impl Validation {
    /// Mean and largest absolute step-time error, and the number of rows, over the rows that
    /// were not host-bound while timed with CUPTI attached (whose host time likely includes
    /// some of the profiler's); None when no row or every row is left out.
    pub fn without_cupti_host_bound(&self) -> Option<(f64, f64, usize)> {
        let kept: Vec<&Comparison> = self
            .rows
            .iter()
            .filter(|r| !r.host_bound_with_cupti_attached())
            .collect();
        (kept.len() < self.rows.len() && !kept.is_empty()).then(|| {
            let (mape, max) = mean_and_max_error(kept.iter().copied());
            (mape, max, kept.len())
        })
    }

    /// The configurations whose measured step was host-bound while timed with CUPTI attached.
    pub fn host_bound_with_cupti_attached(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| r.host_bound_with_cupti_attached())
            .map(|r| r.config.as_str())
            .collect()
    }

    /// The configurations whose measured step was host-bound.
    pub fn host_bound(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| r.host_bound())
            .map(|r| r.config.as_str())
            .collect()
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// GPU spec used.
    pub gpu: String,
    /// Whether the file is the synthetic example.
    pub example: bool,
    /// Device as recorded.
    pub device: String,
    /// Per configuration.
    pub rows: Vec<Comparison>,
    /// Configurations skipped, with why.
    pub skipped: Vec<String>,
    /// Mean absolute percentage error of step time.
    pub mape: f64,
    /// Largest absolute error of step time.
    pub max_error: f64,
}

/// The measured class of an op (see the module docs); `chain_class` is the class of the fused
/// chain the op belongs to in compiled modes.
fn measured_class(op: &Op, mode: ExecMode, chain_class: Option<&'static str>) -> &'static str {
    if mode != ExecMode::Eager && op.chain != Chain::Alone {
        if let Some(c) = chain_class {
            return c;
        }
    }
    match op.kind {
        OpKind::Gemm { .. } | OpKind::BatchedGemm { .. } | OpKind::GroupedGemm { .. } => "gemm",
        OpKind::Attention { .. } => "attention",
        // The softmax backward's gradient-output product is a plain multiply kernel.
        OpKind::Softmax if op.name.starts_with("attn.softmax_grad_product") => "elementwise",
        OpKind::Softmax if op.class == OpClass::Attention => "attention",
        OpKind::Softmax => "other",
        // Eager RMSNorm is a composite of pointwise kernels and reductions.
        OpKind::Normalization { composite: true } if mode == ExecMode::Eager => "elementwise",
        OpKind::Normalization { .. } => "normalization",
        OpKind::Optimizer => "optimizer",
        OpKind::Reduction if op.role == Role::Loss => "other",
        OpKind::Embedding if op.phase == crate::graph::Phase::Backward => "other",
        _ => "elementwise",
    }
}

/// Predicted GPU busy time per measured class.
pub fn predicted_classes(
    ops: &[Op],
    mach: &Machine,
    run: &RunConfig,
) -> Result<BTreeMap<&'static str, f64>> {
    let mut out: BTreeMap<&'static str, f64> = CLASSES.iter().map(|c| (*c, 0.0)).collect();
    let mut chain_class = None;
    for (i, op) in ops.iter().enumerate() {
        if op.chain == Chain::Head {
            let members = ops[i + 1..].iter().take_while(|o| o.chain == Chain::Member);
            let mut class = None;
            for o in std::iter::once(op).chain(members) {
                match o.kind {
                    // Inductor names a fused kernel after its ops: forward norms show `rsqrt`,
                    // their backward kernels do not (they count as elementwise).
                    OpKind::Normalization { .. } if o.phase == crate::graph::Phase::Forward => {
                        class = Some("normalization")
                    }
                    OpKind::Softmax if o.class == OpClass::Attention && class.is_none() => {
                        class = Some("attention")
                    }
                    _ => {}
                }
            }
            chain_class = Some(class.unwrap_or("elementwise"));
        }
        let t = op_time(mach, op, run.mode, run.step.attention)?;
        let reps = op.layer.count() as f64;
        *out.get_mut(measured_class(op, run.mode, chain_class))
            .expect("known class") += (t.time - t.gap).0 * reps;
    }
    Ok(out)
}

impl Measurements {
    /// Checks the file's schema and every measured figure: times, kernel counts and memory are
    /// finite, non-negative and physical; `file` names it in errors, with the configuration's
    /// index.
    pub fn check(&self, file: &str) -> Result<()> {
        if self.schema != "roofline-validation/1" {
            return Err(Error::spec(
                file,
                "schema",
                format!("`{}` is not roofline-validation/1", self.schema),
            ));
        }
        for (i, c) in self.configs.iter().enumerate() {
            let field = |f: &str| format!("configs[{i}].{f}");
            let within = |f: &str, v: f64, low: f64, high: f64, what: &str| -> Result<()> {
                if v.is_finite() && v >= low && v <= high {
                    Ok(())
                } else {
                    Err(Error::spec(
                        file,
                        field(f),
                        format!("{v:?} is not {what} in [{low:e}, {high:e}]"),
                    ))
                }
            };
            if c.batch == 0 || c.batch > 1 << 30 {
                return Err(Error::spec(
                    file,
                    field("batch"),
                    format!("{} is not a batch in [1, 2^30]", c.batch),
                ));
            }
            if let Some(t) = c.step_time_s {
                // A step shorter than a microsecond or longer than a day is no measurement.
                within("step_time_s", t, 1e-6, 86400.0, "a step time (s)")?;
            }
            for (k, v) in c.class_times_s.iter().flatten() {
                within(
                    &format!("class_times_s.{k}"),
                    *v,
                    0.0,
                    86400.0,
                    "a time (s)",
                )?;
            }
            if let Some(b) = c.peak_memory_bytes {
                within("peak_memory_bytes", b, 0.0, 1e15, "a memory size (bytes)")?;
            }
            if let Some(k) = c.kernels_per_step {
                within("kernels_per_step", k, 0.0, 1e9, "a kernel count")?;
            }
            if let Some(h) = c.host_step_time_s {
                within("host_step_time_s", h, 0.0, 86400.0, "a time (s)")?;
            }
            if let Some(a) = &c.after_profile {
                within(
                    "after_profile.step_time_s",
                    a.step_time_s,
                    1e-6,
                    86400.0,
                    "a step time (s)",
                )?;
            }
            if let Some(r) = &c.repeat {
                if let Some(t) = r.step_time_s {
                    within("repeat.step_time_s", t, 1e-6, 86400.0, "a step time (s)")?;
                }
                if let Some(h) = r.host_step_time_s {
                    within("repeat.host_step_time_s", h, 0.0, 86400.0, "a time (s)")?;
                }
            }
        }
        Ok(())
    }
}

/// Compares every configuration of `m` (read from `file`, checked with
/// [`Measurements::check`]) with roofline's prediction on `gpu`.
pub fn validate(
    m: &Measurements,
    file: &str,
    gpu_name: &str,
    cal: Option<&Calibration>,
) -> Result<Validation> {
    validate_with(m, file, gpu_name, cal, Mechanisms::ALL)
}

/// [`validate`] with only the model mechanisms `mechanisms` on (the fidelity report's
/// ablations).
pub fn validate_with(
    m: &Measurements,
    file: &str,
    gpu_name: &str,
    cal: Option<&Calibration>,
    mechanisms: Mechanisms,
) -> Result<Validation> {
    m.check(file)?;
    let gpu = load_gpu(gpu_name)?;
    if let Some(c) = cal {
        c.check_gpu(&gpu, "calibration")?;
    }
    let mach = Machine {
        mechanisms,
        ..Machine::new(&gpu, cal)
    };
    let mut est = Estimator::new();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let attached = crate::calibrate::cupti_attached(
        m.settings.cupti_teardown,
        m.configs
            .iter()
            .map(|c| (c.timed_after_profiler, c.class_times_s.is_some())),
    );
    for (i, c) in m.configs.iter().enumerate() {
        let in_file =
            |f: &str, e: Error| Error::spec(file, format!("configs[{i}].{f}"), e.to_string());
        let label = format!("{} b{} {} {}", c.model, c.batch, c.attention, c.mode);
        let (Some(measured), None) = (c.step_time_s, &c.error) else {
            skipped.push(format!(
                "{label}: not measured ({})",
                c.error.as_deref().unwrap_or("no step time")
            ));
            continue;
        };
        let attention: AttentionImpl = match c.attention.parse() {
            Ok(a) => a,
            Err(_) => {
                skipped.push(format!(
                    "{label}: attention `{}` has no roofline equivalent",
                    c.attention
                ));
                continue;
            }
        };
        let mode: ExecMode = c.mode.parse().map_err(|e| in_file("mode", e))?;
        let model = load_model(&c.model).map_err(|e| in_file("model", e))?;
        let run = RunConfig {
            step: StepConfig {
                batch: c.batch,
                attention,
                precision: Precision::Bf16,
                ema: c.ema_copies,
                ..StepConfig::default()
            },
            mode,
            fleet: Fleet {
                gpus: 1,
                gpus_per_node: 1,
                ..Fleet::default()
            },
            ..RunConfig::default()
        };
        let e = est
            .estimate(&model, &mach, &run)
            .map_err(|e| Error::spec(file, format!("configs[{i}]"), e.to_string()))?;
        let predicted = predicted_classes(est.ops(), &mach, &run)?;
        let classes: BTreeMap<&'static str, (f64, f64)> = CLASSES
            .iter()
            .map(|k| {
                (
                    *k,
                    (
                        c.class_times_s
                            .as_ref()
                            .and_then(|t| t.get(*k))
                            .copied()
                            .unwrap_or(0.0),
                        predicted[k],
                    ),
                )
            })
            .collect();
        let (busy_measured, busy_predicted): (f64, f64) = classes
            .values()
            .fold((0.0, 0.0), |(a, b), (m, p)| (a + m, b + p));
        let gpu_busy = c
            .class_times_s
            .is_some()
            .then(|| (busy_measured / measured, busy_predicted / e.step_time.0));
        let mem = e.memory;
        let allocated = (mem.persistent_bytes() + mem.activations_bytes + mem.transient_bytes).0;
        rows.push(Comparison {
            config: label,
            measured_s: measured,
            predicted_s: e.step_time.0,
            error: e.step_time.0 / measured - 1.0,
            classes,
            memory: c.peak_memory_bytes.map(|b| (b, allocated)),
            kernels: c.kernels_per_step.map(|k| (k, e.kernels)),
            host: c.host_step_time_s.map(|h| (h, e.host.0)),
            gpu_busy,
            repeat_s: c
                .repeat
                .as_ref()
                .filter(|r| r.error.is_none())
                .and_then(|r| r.step_time_s),
            cupti_attached: attached[i],
            after_profile: c
                .after_profile
                .as_ref()
                .map(|a| (a.step_time_s, a.cupti_teardown)),
        });
    }
    if rows.is_empty() {
        return Err(Error::Invalid(
            "no measured configuration to compare".into(),
        ));
    }
    let (mape, max_error) = mean_and_max_error(rows.iter());
    Ok(Validation {
        gpu: gpu.name.clone(),
        example: m.example,
        device: m
            .device
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string(),
        rows,
        skipped,
        mape,
        max_error,
    })
}

/// Mean and largest absolute step-time error of some comparisons (at least one).
fn mean_and_max_error<'a>(rows: impl Iterator<Item = &'a Comparison>) -> (f64, f64) {
    let (n, sum, max) = rows.fold((0usize, 0.0, 0.0_f64), |(n, sum, max), r| {
        (n + 1, sum + r.error.abs(), max.max(r.error.abs()))
    });
    (sum / n as f64, max)
}
