//! Everything the time model needs about one GPU, resolved from its spec file and an optional
//! calibration file (which overrides any value it names). The figures that a calibration can
//! override or an analysis can vary are listed once, in [`super::figures::FIGURES`].

use super::attention_table::AttentionTable;
use super::calibration::Calibration;
use super::efficiency::DEFAULT_K0;
use super::figures::FIGURES;
use super::gemm_table::{dtype_of_name, GemmTable};
use super::mechanisms::Mechanisms;
use crate::graph::{Dtype, Precision, PrecisionPolicy, Unit};
use crate::spec::hardware::AttentionKernels;
use crate::spec::{GpuSpec, Sourced};
use crate::units::{ByteRate, Bytes, FlopRate, Seconds};

/// Fused-attention efficiency of one implementation: forward and backward fractions of the bf16
/// peak at `seq_ref`, scaled with sequence length as s / (s + seq_half).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlashEfficiency {
    /// Forward fraction at `seq_ref`.
    pub fwd: f64,
    /// Backward fraction at `seq_ref`.
    pub bwd: f64,
    /// The highest fraction of the peak the kernel is known to reach (the cap of its growth
    /// with sequence length).
    pub max: f64,
}

/// Everything the time model needs about one GPU, as plain numbers in their units (no strings:
/// cheap to copy and to perturb in sensitivity analysis). A peak of 0 means the GPU lacks that
/// path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    /// Streaming multiprocessors.
    pub sms: f64,
    /// Dense bf16 tensor peak.
    pub peak_bf16: FlopRate,
    /// Dense fp8 tensor peak.
    pub peak_fp8: FlopRate,
    /// Dense tf32 tensor peak.
    pub peak_tf32: FlopRate,
    /// fp32 vector peak.
    pub peak_fp32: FlopRate,
    /// Achievable fraction of the bf16 peak for a large, well-shaped GEMM.
    pub frac_bf16: f64,
    /// Achievable fraction of the fp8 peak.
    pub frac_fp8: f64,
    /// Achievable fraction of the tf32 peak.
    pub frac_tf32: f64,
    /// Achievable fraction of the fp32 vector peak.
    pub frac_fp32: f64,
    /// GEMM small-K constant k0, in bf16 tensor-core K steps.
    pub gemm_k0: f64,
    /// HBM bandwidth (datasheet).
    pub hbm: ByteRate,
    /// Achievable fraction of HBM bandwidth.
    pub frac_hbm: f64,
    /// Achievable fraction of HBM bandwidth for eager pointwise kernels.
    pub frac_eager: f64,
    /// Ceiling of an eager GEMM with a misaligned leading dimension, fraction of the peak.
    pub frac_misaligned: f64,
    /// L2 size.
    pub l2_bytes: Bytes,
    /// L2 bandwidth.
    pub l2_bw: ByteRate,
    /// HBM capacity.
    pub capacity: Bytes,
    /// GPU-side gap per kernel, eager/compiled.
    pub kernel_launch: Seconds,
    /// GPU-side gap per kernel inside a CUDA graph.
    pub graph_launch: Seconds,
    /// Host dispatch per eager op.
    pub host_dispatch: Seconds,
    /// Fused attention: sequence length of the measured fractions.
    pub flash_seq_ref: f64,
    /// Fused attention: sequence length at half the long-sequence rate.
    pub flash_seq_half: f64,
    /// Causal fused kernels' rate relative to non-causal.
    pub flash_causal: f64,
    /// FlashAttention (v1 generation) efficiency (None = not available on this GPU).
    pub flash1: Option<FlashEfficiency>,
    /// FlashAttention-2 efficiency (None = not available on this GPU).
    pub flash2: Option<FlashEfficiency>,
    /// FlashAttention-3 efficiency.
    pub flash3: Option<FlashEfficiency>,
    /// All-reduce bus bandwidth within a node.
    pub allreduce_busbw: ByteRate,
    /// Fixed latency of one collective call.
    pub allreduce_latency: Seconds,
    /// Default price per GPU-hour (USD), if the spec has one.
    pub price: Option<f64>,
    /// Which modelled mechanisms apply (all of them, but in the fidelity report's ablations).
    pub mechanisms: Mechanisms,
    /// The GPU file's measured GEMM table as corrections of the analytic rate (empty when the
    /// file has none), see [`super::gemm_table`].
    pub gemm_table: GemmTable,
    /// The GPU file's fused-attention table as ratios to its `[attention]` fractions (empty
    /// when the file has none), see [`super::attention_table`].
    pub attention_table: AttentionTable,
}

/// The efficiency of fused kernel `kernel` from the GPU file's `[attention]` fractions (its
/// highest fraction defaulting to the GEMM ceiling `gemm`); `None` without forward and backward.
fn flash(att: Option<&AttentionKernels>, kernel: &str, gemm: f64) -> Option<FlashEfficiency> {
    let (fwd, bwd, max) = att?.kernel_fractions(kernel)?;
    Some(FlashEfficiency {
        fwd,
        bwd,
        max: max.unwrap_or(gemm),
    })
}

impl Machine {
    /// Resolves a GPU spec, with calibration overrides when given.
    pub fn new(gpu: &GpuSpec, cal: Option<&Calibration>) -> Self {
        let p = &gpu.peak_flops;
        let a = &gpu.achievable;
        let frac = |peak: &Option<Sourced>, fr: &Option<Sourced>, fallback: f64| {
            if peak.is_some() {
                fr.as_ref().map_or(fallback, |s| s.value)
            } else {
                0.0
            }
        };
        let att = gpu.attention.as_ref();
        let a_bf16 = a.bf16_tensor.value;
        let mut m = Machine {
            sms: gpu.compute.sm_count.value,
            peak_bf16: FlopRate(p.bf16_tensor.value),
            peak_fp8: FlopRate(p.fp8_tensor.as_ref().map_or(0.0, |s| s.value)),
            peak_tf32: FlopRate(p.tf32_tensor.as_ref().map_or(0.0, |s| s.value)),
            peak_fp32: FlopRate(p.fp32_vector.value),
            frac_bf16: a.bf16_tensor.value,
            frac_fp8: frac(&p.fp8_tensor, &a.fp8_tensor, a.bf16_tensor.value),
            frac_tf32: frac(&p.tf32_tensor, &a.tf32_tensor, a.bf16_tensor.value),
            frac_fp32: a.fp32_vector.value,
            gemm_k0: DEFAULT_K0,
            hbm: ByteRate(gpu.memory.hbm_bandwidth.value),
            frac_hbm: a.hbm.value,
            frac_eager: a
                .eager_elementwise
                .as_ref()
                .map_or(a.hbm.value, |s| s.value),
            frac_misaligned: a
                .misaligned_gemm
                .as_ref()
                .map_or(super::efficiency::MISALIGNED_CEILING, |s| s.value),
            l2_bytes: Bytes(gpu.memory.l2_bytes.value),
            l2_bw: ByteRate(gpu.memory.l2_bandwidth.value),
            capacity: Bytes(gpu.memory.hbm_capacity.value),
            kernel_launch: Seconds(gpu.launch.kernel_launch_s.value),
            graph_launch: Seconds(gpu.launch.graph_launch_s.value),
            host_dispatch: Seconds(gpu.launch.host_dispatch_s.value),
            flash_seq_ref: att.map_or(512.0, |a| a.seq_ref.value),
            flash_seq_half: att.map_or(256.0, |a| a.seq_half.value),
            flash_causal: att
                .and_then(|a| a.causal_factor.as_ref())
                .map_or(1.0, |c| c.value),
            flash1: flash(att, "flash1", a_bf16),
            flash2: flash(att, "flash2", a_bf16),
            flash3: flash(att, "flash3", a_bf16),
            allreduce_busbw: ByteRate(gpu.interconnect.allreduce_bus_bandwidth.value),
            allreduce_latency: Seconds(gpu.interconnect.allreduce_latency_s.value),
            price: gpu.price.as_ref().map(|p| p.usd_per_gpu_hour.value),
            mechanisms: Mechanisms::ALL,
            gemm_table: GemmTable::default(),
            attention_table: AttentionTable::new(
                &gpu.attention_table,
                |kernel| att?.kernel_fractions(kernel),
                p.bf16_tensor.value,
            ),
        };
        if let Some(c) = cal {
            for f in FIGURES {
                if let Some(v) = f.calibration.and_then(|k| c.get(k)) {
                    (f.set)(&mut m, v.value);
                }
            }
        }
        if let Some(t) = &gpu.gemm_table {
            m.gemm_table = m.resolve_gemm_table(t);
        }
        m
    }

    /// The table's points as ratios to this machine's analytic rates (the spec's check has
    /// made every point an aligned tensor-core GEMM of a dtype this GPU has).
    fn resolve_gemm_table(&self, table: &crate::spec::GemmTable) -> GemmTable {
        let entries: Vec<_> = table
            .points
            .iter()
            .filter_map(|p| {
                let dtype = dtype_of_name(&p.dtype)?;
                let analytic =
                    self.analytic_gemm_rate(Unit::Tensor, dtype, 1, p.shape(), None, false);
                (analytic.0 > 0.0).then(|| (dtype, p.shape(), p.flops_per_s / analytic.0))
            })
            .collect();
        GemmTable::new(&entries)
    }

    /// Dense peak and achievable fraction of (unit, dtype); peak 0 when unsupported.
    pub fn peak(&self, unit: Unit, dtype: Dtype) -> (FlopRate, f64) {
        match (unit, dtype) {
            // fp16 runs at the bf16 rate (see `Dtype::Fp16`).
            (Unit::Tensor, Dtype::Bf16 | Dtype::Fp16) => (self.peak_bf16, self.frac_bf16),
            (Unit::Tensor, Dtype::Fp8) => (self.peak_fp8, self.frac_fp8),
            (Unit::Tensor, Dtype::Tf32) | (Unit::Tensor, Dtype::Fp32) => {
                (self.peak_tf32, self.frac_tf32)
            }
            (Unit::Vector, _) => (self.peak_fp32, self.frac_fp32),
        }
    }

    /// The dense peak MFU and HFU are measured against: that of the precision's GEMM dtype.
    pub fn mfu_peak(&self, precision: Precision) -> FlopRate {
        let p = PrecisionPolicy::of(precision);
        self.peak(p.gemm_unit, p.gemm).0
    }

    /// Time to move `bytes` through HBM at the achievable bandwidth.
    pub fn hbm_time(&self, bytes: Bytes) -> Seconds {
        bytes / (self.hbm * self.frac_hbm)
    }

    /// Time for an eager framework pointwise kernel to move `bytes` through HBM.
    pub fn eager_hbm_time(&self, bytes: Bytes) -> Seconds {
        bytes / (self.hbm * self.frac_eager)
    }

    /// Time to move `bytes` through L2.
    pub fn l2_time(&self, bytes: Bytes) -> Seconds {
        bytes / self.l2_bw
    }
}
