//! The roofline of one op: its time on a [`Machine`]; with the GPU as the time model sees it
//! ([`machine`], [`figures`], [`calibration`]), what GEMMs and fused attention attain
//! ([`efficiency`], corrected by a GPU file's measured [`gemm_table`]) and data-parallel communication ([`comm`]). The whole step is
//! [`crate::estimate`].
//!
//! Time of one op (per layer):
//! `t = max(FLOPs / attainable FLOP/s, HBM bytes / attainable B/s + L2 bytes / L2 B/s) +
//! kernels · gap`, with attainable rates from [`Machine`]. The host is a third roof for the
//! whole step, not an addend per op: the CPU dispatches ops while the GPU runs earlier ones, so a
//! step takes `max(GPU time, host dispatch time)`; an op is reported launch-bound when its own
//! dispatch takes longer than its GPU time.
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

pub mod attention_table;
pub mod calibration;
pub mod comm;
pub mod efficiency;
pub mod figures;
pub mod gemm_table;
pub mod machine;
pub mod mechanisms;

pub use calibration::Calibration;
pub use comm::Fleet;
pub use figures::{Figure, FIGURES};
pub use machine::{FlashEfficiency, Machine};
pub use mechanisms::{Mechanism, Mechanisms, MECHANISMS};

use crate::error::{Error, Result};
use crate::graph::{AttentionImpl, Precision, PrecisionPolicy};
use crate::graph::{Chain, ExecMode, Op, OpKind, Phase, Role};
use crate::units::{Bytes, FlopRate, Seconds};
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
    // Without the fused-loss mechanism F.cross_entropy moves its eager bytes in every mode.
    let unfused_loss =
        op.role == Role::Loss && op.kind == OpKind::Softmax && !mach.mechanisms.fused_loss;
    let (read, written) = match mode {
        ExecMode::Eager => (op.bytes_read, op.bytes_written),
        _ if unfused_loss => (op.bytes_read, op.bytes_written),
        ExecMode::Compiled | ExecMode::Graphs => (op.fused_read, op.fused_written),
    };
    // torch.compile pads misaligned matmuls (see `Machine::gemm_rate`).
    let padding = mode != ExecMode::Eager && mach.mechanisms.shape_padding;
    let attainable = match op.kind {
        OpKind::Gemm { m, n, k, token_dim } => {
            mach.gemm_rate(op.unit, op.dtype, 1, (m, n, k), Some(token_dim), padding)
        }
        OpKind::BatchedGemm { batch, m, n, k } => {
            mach.gemm_rate(op.unit, op.dtype, batch, (m, n, k), None, padding)
        }
        OpKind::GroupedGemm {
            groups,
            m,
            n,
            k,
            token_dim,
        } => mach.gemm_rate(
            op.unit,
            op.dtype,
            u64::from(groups),
            (m, n, k),
            Some(token_dim),
            padding,
        ),
        // A sliding window does the work of a sequence of the window's length per query.
        OpKind::Attention {
            seq,
            head_dim,
            causal,
            window,
            ..
        } => {
            let keys = if window > 0 {
                seq.min(u64::from(window))
            } else {
                seq
            };
            mach.flash_rate(
                attention,
                keys,
                head_dim,
                op.phase == Phase::Backward,
                causal,
            )?
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
    let l2_hit = if chained > 0.0 && chained <= L2_REUSE_FRACTION * mach.l2_bytes.0 {
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
        ExecMode::Graphs => (mach.graph_launch * kernels, Seconds::ZERO),
    };
    let (gap, host) = (gap.0, host.0);
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

/// Whether an attention implementation can run on the machine at a precision: fused kernels
/// need an efficiency entry and 16-bit (or fp8) inputs.
pub fn attention_available(mach: &Machine, a: AttentionImpl, precision: Precision) -> bool {
    let fp32 = !PrecisionPolicy::of(precision).has_fused_attention();
    match a {
        AttentionImpl::Flash1 => mach.flash1.is_some() && !fp32,
        AttentionImpl::Flash2 => mach.flash2.is_some() && !fp32,
        AttentionImpl::Flash3 => mach.flash3.is_some() && !fp32,
        _ => true,
    }
}
