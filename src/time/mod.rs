//! The roofline time model: op time, step time, throughput, MFU, training time and cost.
//!
//! Time of one op (per layer):
//! `t = max(FLOPs / attainable FLOP/s, HBM bytes / attainable B/s + L2 bytes / L2 B/s) + kernels · gap`, with attainable rates from [`Machine`]. The host is a
//! third roof for the whole step, not an addend per op: the CPU dispatches ops while the GPU runs
//! earlier ones, so a step takes `max(GPU time, host dispatch time)`; an op is reported
//! launch-bound when its own dispatch takes longer than its GPU time.
//!
//! Eager pointwise kernels (elementwise ops, composite norms, reductions, lookups launched one
//! aten op at a time) move their bytes at `achievable.eager_elementwise` of HBM bandwidth; native
//! fused kernels (softmax, LayerNorm), compiled kernels and library kernels at `achievable.hbm`.
//!
//! L2 rule (stated assumption): the input an op reads right after the previous kernel wrote it
//! (`Op::chained_read`) is served from L2 when it is at most [`L2_REUSE_FRACTION`] of the L2
//! size.
//!
//! Execution modes: `eager` launches `Op::kernels` kernels per op (several for composites such
//! as RMSNorm written as pow, mean, rsqrt, mul) and pays `host_dispatch_s` per kernel;
//! `compiled` launches one kernel per fused chain, uses fused traffic, and pays
//! [`COMPILED_HOST_FACTOR`] × `host_dispatch_s` per kernel; `graphs` is `compiled` replayed as a
//! CUDA graph: no host dispatch, `graph_launch_s` per kernel.

pub mod comm;
pub mod efficiency;

pub use comm::Fleet;
pub use efficiency::{Calibration, Machine};

use crate::error::{Error, Result};
use crate::graph::{build::Meta, Chain, ExecMode, Op, OpClass, OpKind, Phase, StepConfig};
use crate::graph::{param_count, AttentionImpl, Precision};
use crate::memory::{footprint, MemoryBreakdown, MemoryConfig};
use crate::spec::ModelSpec;
use crate::units::{Bytes, FlopRate, Flops, Seconds};
use serde::Serialize;

/// Host dispatch cost per kernel of compiled code relative to an eager op (assumption: Inductor's
/// generated wrapper launches kernels without the eager dispatcher's per-op overhead; 0.4 puts a
/// 10 us eager op at 4 us per compiled kernel).
pub const COMPILED_HOST_FACTOR: f64 = 0.4;

/// Share of the L2 that reliably still holds the previous kernel's output (assumption: Hopper's
/// L2 is two partitions, and the next kernel's own output competes for it; on an H100 a 25 MB
/// LayerNorm input written just before was not served from its 50 MB L2 (27.6 us per call,
/// 1.8 TB/s, reports/measurements/2026-11-27-h100-sxm)).
pub const L2_REUSE_FRACTION: f64 = 0.25;

/// What limits an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Arithmetic.
    Compute,
    /// Memory traffic.
    Memory,
    /// Kernel launch / host dispatch.
    Launch,
    /// Nothing: the op moves no bytes, does no arithmetic and launches nothing (a fork whose
    /// cost is all in its backward).
    None,
}

/// Time of one op instance (one layer).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OpTime {
    /// FLOPs over attainable FLOP/s.
    pub compute: Seconds,
    /// Bytes over attainable bandwidth (HBM + L2).
    pub memory: Seconds,
    /// Kernels launched for this op (0 when fused into a preceding kernel).
    pub kernels: f64,
    /// GPU-side launch gaps: kernels × gap.
    pub gap: Seconds,
    /// Host dispatch time for this op.
    pub host: Seconds,
    /// GPU time: max(compute, memory) + gap.
    pub time: Seconds,
    /// The binding roof.
    pub bound: Bound,
    /// How much the binding roof exceeds the next one (ratio ≥ 1).
    pub margin: f64,
    /// Attainable FLOP/s used for `compute`.
    pub attainable_flops: FlopRate,
}

/// Times one op on `mach` in `mode`.
pub fn op_time(
    mach: &Machine,
    op: &Op,
    mode: ExecMode,
    attention: AttentionImpl,
) -> Result<OpTime> {
    let (read, written) = match mode {
        ExecMode::Eager => (op.bytes_read, op.bytes_written),
        ExecMode::Compiled | ExecMode::Graphs => (op.fused_read, op.fused_written),
    };
    let attainable = match op.kind {
        OpKind::Gemm { m, n, k } => mach.gemm_rate(op.unit, op.dtype, 1, m, n, k),
        OpKind::BatchedGemm { batch, m, n, k } => mach.gemm_rate(op.unit, op.dtype, batch, m, n, k),
        OpKind::Attention { seq, causal, .. } => {
            mach.flash_rate(attention, seq, op.phase == Phase::Backward, causal)?
        }
        _ => {
            let (peak, frac) = mach.peak(op.unit, op.dtype);
            FlopRate(peak.0 * frac)
        }
    };
    if attainable.0 <= 0.0 && op.flops.0 > 0.0 {
        return Err(Error::Invalid(format!(
            "op {} needs {:?} {:?} arithmetic, which this GPU's spec does not list (choose another --precision)",
            op.name, op.unit, op.dtype
        )));
    }
    let compute = if op.flops.0 > 0.0 {
        op.flops / attainable
    } else {
        Seconds::ZERO
    };
    let chained = op.chained_read.0.min(read.0);
    let l2_hit = if chained > 0.0 && chained <= L2_REUSE_FRACTION * mach.l2_bytes {
        chained
    } else {
        0.0
    };
    let hbm_bytes = Bytes(read.0 + written.0 - l2_hit);
    // Native fused kernels (softmax, LayerNorm) stream at the copy rate; composites of framework
    // pointwise ops and reductions at the eager rate.
    let eager_pointwise = mode == ExecMode::Eager
        && match op.kind {
            OpKind::Elementwise | OpKind::Reduction | OpKind::Embedding => true,
            OpKind::Normalization { composite } => composite,
            _ => false,
        };
    let hbm = if eager_pointwise {
        mach.eager_hbm_time(hbm_bytes)
    } else {
        mach.hbm_time(hbm_bytes)
    };
    let memory = hbm + mach.l2_time(Bytes(l2_hit));
    let kernels = match (mode, op.chain) {
        _ if op.kernels == 0 => 0.0,
        (ExecMode::Eager, _) => op.kernels as f64,
        (_, Chain::Member) => 0.0,
        _ => 1.0,
    };
    let (gap, host) = match mode {
        ExecMode::Eager => (mach.kernel_launch * kernels, mach.host_dispatch * kernels),
        ExecMode::Compiled => (
            mach.kernel_launch * kernels,
            mach.host_dispatch * COMPILED_HOST_FACTOR * kernels,
        ),
        ExecMode::Graphs => (mach.graph_launch * kernels, 0.0),
    };
    let busy = compute.max(memory);
    let (bound, margin) = if busy.0 == 0.0 && host == 0.0 {
        (Bound::None, 1.0)
    } else if host > busy.0 {
        (Bound::Launch, host / busy.0.max(1e-15))
    } else if compute >= memory {
        (Bound::Compute, compute.0 / memory.0.max(host).max(1e-15))
    } else {
        (Bound::Memory, memory.0 / compute.0.max(host).max(1e-15))
    };
    Ok(OpTime {
        compute,
        memory,
        kernels,
        gap: Seconds(gap),
        host: Seconds(host),
        time: busy + Seconds(gap),
        bound,
        margin,
        attainable_flops: attainable,
    })
}

/// Settings of a run beyond one step: fleet, parallelism, execution mode.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// The step.
    pub step: StepConfig,
    /// Execution mode.
    pub mode: ExecMode,
    /// GPUs and their links.
    pub fleet: Fleet,
    /// ZeRO stage 0-3 (0 = plain DDP).
    pub zero: u8,
    /// Micro-steps per optimizer step.
    pub grad_accum: u64,
    /// Memory assumptions.
    pub memory: MemoryConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            step: StepConfig::default(),
            mode: ExecMode::Eager,
            fleet: Fleet::default(),
            zero: 0,
            grad_accum: 1,
            memory: MemoryConfig::default(),
        }
    }
}

/// Breakdown slots, in report order: the op classes, then communication and launch overhead.
pub const BREAKDOWN: [&str; 7] = [
    "gemm",
    "attention",
    "normalization",
    "elementwise",
    "optimizer",
    "communication",
    "launch_overhead",
];

fn class_slot(c: OpClass) -> usize {
    match c {
        OpClass::Gemm => 0,
        OpClass::Attention => 1,
        OpClass::Normalization => 2,
        OpClass::Elementwise => 3,
        OpClass::Optimizer => 4,
    }
}

/// The estimate of one configuration. Plain numbers only: computing it allocates nothing.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepEstimate {
    /// Time of one optimizer step (grad_accum micro-steps, optimizer, exposed communication).
    pub step_time: Seconds,
    /// Forward time per micro-step (GPU time incl. gaps).
    pub forward: Seconds,
    /// Backward time per micro-step.
    pub backward: Seconds,
    /// Optimizer (+EMA) time per step.
    pub optimizer: Seconds,
    /// Host dispatch time per step.
    pub host: Seconds,
    /// Seconds per step by [`BREAKDOWN`] slot; sums to `step_time`.
    pub breakdown: [Seconds; 7],
    /// Seconds per step of op time by binding roof: compute, memory, launch.
    pub by_bound: [Seconds; 3],
    /// Gradient / parameter communication per step, total and not hidden by backward.
    pub comm_total: Seconds,
    /// Exposed communication.
    pub comm_exposed: Seconds,
    /// Model FLOPs per GPU per step (no recomputation).
    pub model_flops: Flops,
    /// Executed matmul FLOPs per GPU per step, recomputation included (the HFU numerator).
    pub hw_flops: Flops,
    /// Peak used for MFU (dense, the GEMM dtype of the precision).
    pub mfu_peak: FlopRate,
    /// Model FLOPs utilization.
    pub mfu: f64,
    /// Hardware FLOPs utilization.
    pub hfu: f64,
    /// Kernels launched per step.
    pub kernels: f64,
    /// Samples per optimizer step across the fleet.
    pub samples_per_step: f64,
    /// Samples per second across the fleet.
    pub samples_per_s: f64,
    /// The model's tokens per second across the fleet.
    pub tokens_per_s: f64,
    /// Tokens per sample used for `tokens_per_s`.
    pub tokens_per_sample: f64,
    /// Memory per GPU.
    pub memory: MemoryBreakdown,
    /// Whether it fits the GPU's memory.
    pub fits: bool,
    /// Largest per-GPU batch that fits.
    pub max_batch: u64,
    /// Trainable parameters.
    pub params: u64,
}

/// Reusable buffers for evaluating many configurations without allocating.
#[derive(Debug, Default)]
pub struct Estimator {
    /// The op list of the last evaluation.
    pub ops: Vec<Op>,
    meta: Vec<Meta>,
}

impl Estimator {
    /// An estimator with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Estimates one configuration; the op list stays in `self.ops`.
    pub fn estimate(
        &mut self,
        model: &ModelSpec,
        mach: &Machine,
        run: &RunConfig,
    ) -> Result<StepEstimate> {
        if run.grad_accum == 0 {
            return Err(Error::Invalid(
                "grad-accum must be a positive integer".into(),
            ));
        }
        if run.zero > 3 {
            return Err(Error::Invalid(format!(
                "--zero {} is not a ZeRO stage (0, 1, 2 or 3)",
                run.zero
            )));
        }
        let mut step = run.step;
        if run.zero >= 1 {
            step.optimizer_shards = run.fleet.gpus;
        }
        crate::graph::build::build_step_with(model, &step, &mut self.ops, &mut self.meta)?;
        let k = run.grad_accum as f64;
        let mut breakdown = [Seconds::ZERO; 7];
        let mut by_bound = [Seconds::ZERO; 3];
        let (mut fwd, mut bwd, mut opt) = (Seconds::ZERO, Seconds::ZERO, Seconds::ZERO);
        let (mut host, mut gaps) = (Seconds::ZERO, Seconds::ZERO);
        let (mut host_fwd, mut host_bwd) = (Seconds::ZERO, Seconds::ZERO);
        let (mut model_flops, mut hw_flops) = (Flops::ZERO, Flops::ZERO);
        let mut kernels = 0.0;
        for op in &self.ops {
            let t = op_time(mach, op, run.mode, run.step.attention)?;
            let reps = op.layer.count() as f64 * if op.phase == Phase::Optimizer { 1.0 } else { k };
            let busy = (t.time - t.gap) * reps;
            match op.phase {
                Phase::Forward => {
                    fwd += t.time * reps;
                    host_fwd += t.host * reps;
                }
                Phase::Backward => {
                    bwd += t.time * reps;
                    host_bwd += t.host * reps;
                }
                Phase::Optimizer => opt += t.time * reps,
            }
            breakdown[class_slot(op.class)] += busy;
            match t.bound {
                Bound::Compute => by_bound[0] += busy,
                Bound::Memory => by_bound[1] += busy,
                Bound::Launch => by_bound[2] += busy,
                Bound::None => {}
            }
            gaps += t.gap * reps;
            host += t.host * reps;
            kernels += t.kernels * reps;
            model_flops += op.model_flops * reps;
            if matches!(
                op.kind,
                OpKind::Gemm { .. } | OpKind::BatchedGemm { .. } | OpKind::Attention { .. }
            ) {
                hw_flops += op.flops * reps;
            }
        }
        let gpu = fwd + bwd + opt;
        let host_excess = Seconds((host.0 - gpu.0).max(0.0));
        breakdown[6] = gaps + host_excess;

        let params = param_count(model);
        let (comm_total, comm_exposed) = comm::exposed_communication(
            &run.fleet,
            mach,
            params.total as f64,
            &run.step,
            run.zero,
            run.grad_accum,
            // Communication overlaps with the wall time of backward (and forward), which is
            // the host's when dispatch is slower than the GPU.
            Seconds(bwd.max(host_bwd).0 / k),
            Seconds(fwd.max(host_fwd).0 / k),
        );
        breakdown[5] = comm_exposed;
        let step_time = gpu + host_excess + comm_exposed;

        let mut mc = run.memory;
        mc.zero = run.zero;
        mc.dp = run.fleet.gpus;
        mc.fused = run.mode != ExecMode::Eager;
        let memory = footprint(model, &run.step, &self.ops, &mc);
        let capacity = Bytes(mach.capacity);
        let mfu_peak = FlopRate(match run.step.precision {
            Precision::Bf16 | Precision::Bf16Pure => mach.peak_bf16,
            Precision::Fp8 => mach.peak_fp8,
            Precision::Tf32 => mach.peak_tf32,
            Precision::Fp32 => mach.peak_fp32,
        });
        let samples_per_step = (run.step.batch as f64) * k * run.fleet.gpus as f64;
        let samples_per_s = samples_per_step / step_time.0;
        let tokens_per_sample = model.tokens_per_sample() as f64;
        Ok(StepEstimate {
            step_time,
            forward: Seconds(fwd.0 / k),
            backward: Seconds(bwd.0 / k),
            optimizer: opt,
            host,
            breakdown,
            by_bound,
            comm_total,
            comm_exposed,
            model_flops,
            hw_flops,
            mfu_peak,
            mfu: model_flops.0 / (step_time.0 * mfu_peak.0),
            hfu: hw_flops.0 / (step_time.0 * mfu_peak.0),
            kernels,
            samples_per_step,
            samples_per_s,
            tokens_per_s: samples_per_s * tokens_per_sample,
            tokens_per_sample,
            memory,
            fits: memory.total_bytes <= capacity,
            max_batch: memory.max_batch(capacity, &mc, run.step.batch),
            params: params.total,
        })
    }
}

/// Whether an attention implementation can run on the machine at a precision: fused kernels
/// need an efficiency entry and 16-bit (or fp8) inputs.
pub fn attention_available(mach: &Machine, a: AttentionImpl, precision: Precision) -> bool {
    let fp32 = matches!(precision, Precision::Fp32 | Precision::Tf32);
    match a {
        AttentionImpl::Flash2 => mach.flash2.is_some() && !fp32,
        AttentionImpl::Flash3 => mach.flash3.is_some() && !fp32,
        _ => true,
    }
}
