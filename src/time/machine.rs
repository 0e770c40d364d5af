//! Everything the time model needs about one GPU, resolved from its spec file and an optional
//! calibration file (which overrides any value it names).

use crate::graph::{Dtype, Precision, PrecisionPolicy, Unit};
use crate::spec::{Calibration, GpuSpec, Sourced};
use crate::units::{ByteRate, Bytes, FlopRate, Seconds};

use super::efficiency::DEFAULT_K0;

/// Fused-attention efficiency of one implementation: forward and backward fractions of the bf16
/// peak at `seq_ref`, scaled with sequence length as s / (s + seq_half).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlashEfficiency {
    /// Forward fraction at `seq_ref`.
    pub fwd: f64,
    /// Backward fraction at `seq_ref`.
    pub bwd: f64,
}

/// Everything the time model needs about one GPU, as plain numbers (no strings: cheap to copy
/// and to perturb in sensitivity analysis).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    /// Streaming multiprocessors.
    pub sms: f64,
    /// Dense peaks: bf16, fp8, tf32 tensor; fp32 vector (0 = unsupported).
    pub peak_bf16: f64,
    /// fp8 tensor peak (0 = unsupported).
    pub peak_fp8: f64,
    /// tf32 tensor peak (0 = unsupported).
    pub peak_tf32: f64,
    /// fp32 vector peak.
    pub peak_fp32: f64,
    /// Achievable fractions of the peaks above.
    pub frac_bf16: f64,
    /// fp8 fraction.
    pub frac_fp8: f64,
    /// tf32 fraction.
    pub frac_tf32: f64,
    /// fp32 vector fraction.
    pub frac_fp32: f64,
    /// GEMM small-K constant.
    pub gemm_k0: f64,
    /// HBM bandwidth (B/s) and its achievable fraction.
    pub hbm: f64,
    /// Achievable fraction of HBM.
    pub frac_hbm: f64,
    /// Achievable fraction of HBM for eager pointwise kernels.
    pub frac_eager: f64,
    /// L2 size (bytes) and bandwidth (B/s).
    pub l2_bytes: f64,
    /// L2 bandwidth.
    pub l2_bw: f64,
    /// HBM capacity (bytes).
    pub capacity: f64,
    /// GPU-side gap per kernel, eager/compiled (s).
    pub kernel_launch: f64,
    /// GPU-side gap per kernel inside a CUDA graph (s).
    pub graph_launch: f64,
    /// Host dispatch per eager op (s).
    pub host_dispatch: f64,
    /// Fused attention: reference sequence and half-rate sequence.
    pub flash_seq_ref: f64,
    /// Half-rate sequence.
    pub flash_seq_half: f64,
    /// Causal fused kernels' rate relative to non-causal.
    pub flash_causal: f64,
    /// FlashAttention-2 efficiency (None = not available on this GPU).
    pub flash2: Option<FlashEfficiency>,
    /// FlashAttention-3 efficiency.
    pub flash3: Option<FlashEfficiency>,
    /// All-reduce bus bandwidth within a node (B/s) and per-call latency (s).
    pub allreduce_busbw: f64,
    /// Per-call latency.
    pub allreduce_latency: f64,
    /// Default price per GPU-hour (USD), if the spec has one.
    pub price: Option<f64>,
}

fn pair(fwd: &Option<Sourced>, bwd: &Option<Sourced>) -> Option<FlashEfficiency> {
    match (fwd, bwd) {
        (Some(f), Some(b)) => Some(FlashEfficiency {
            fwd: f.value,
            bwd: b.value,
        }),
        _ => None,
    }
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
        let mut m = Machine {
            sms: gpu.compute.sm_count.value,
            peak_bf16: p.bf16_tensor.value,
            peak_fp8: p.fp8_tensor.as_ref().map_or(0.0, |s| s.value),
            peak_tf32: p.tf32_tensor.as_ref().map_or(0.0, |s| s.value),
            peak_fp32: p.fp32_vector.value,
            frac_bf16: a.bf16_tensor.value,
            frac_fp8: frac(&p.fp8_tensor, &a.fp8_tensor, a.bf16_tensor.value),
            frac_tf32: frac(&p.tf32_tensor, &a.tf32_tensor, a.bf16_tensor.value),
            frac_fp32: a.fp32_vector.value,
            gemm_k0: DEFAULT_K0,
            hbm: gpu.memory.hbm_bandwidth.value,
            frac_hbm: a.hbm.value,
            frac_eager: a
                .eager_elementwise
                .as_ref()
                .map_or(a.hbm.value, |s| s.value),
            l2_bytes: gpu.memory.l2_bytes.value,
            l2_bw: gpu.memory.l2_bandwidth.value,
            capacity: gpu.memory.hbm_capacity.value,
            kernel_launch: gpu.launch.kernel_launch_s.value,
            graph_launch: gpu.launch.graph_launch_s.value,
            host_dispatch: gpu.launch.host_dispatch_s.value,
            flash_seq_ref: att.map_or(512.0, |a| a.seq_ref.value),
            flash_seq_half: att.map_or(256.0, |a| a.seq_half.value),
            flash_causal: att
                .and_then(|a| a.causal_factor.as_ref())
                .map_or(1.0, |c| c.value),
            flash2: att.and_then(|a| pair(&a.flash2_fwd, &a.flash2_bwd)),
            flash3: att.and_then(|a| pair(&a.flash3_fwd, &a.flash3_bwd)),
            allreduce_busbw: gpu.interconnect.allreduce_bus_bandwidth.value,
            allreduce_latency: gpu.interconnect.allreduce_latency_s.value,
            price: gpu.price.as_ref().map(|p| p.usd_per_gpu_hour.value),
        };
        if let Some(c) = cal {
            let set = |dst: &mut f64, v: &Option<Sourced>| {
                if let Some(v) = v {
                    *dst = v.value;
                }
            };
            set(&mut m.frac_bf16, &c.bf16_tensor);
            set(&mut m.frac_fp8, &c.fp8_tensor);
            set(&mut m.frac_tf32, &c.tf32_tensor);
            set(&mut m.frac_fp32, &c.fp32_vector);
            set(&mut m.frac_hbm, &c.hbm);
            set(&mut m.frac_eager, &c.eager_elementwise);
            set(&mut m.gemm_k0, &c.gemm_k0);
            set(&mut m.kernel_launch, &c.kernel_launch_s);
            set(&mut m.host_dispatch, &c.host_dispatch_s);
            set(&mut m.allreduce_busbw, &c.allreduce_bus_bandwidth);
            if let Some(f) = pair(&c.flash2_fwd, &c.flash2_bwd) {
                m.flash2 = Some(f);
            }
            if let Some(f) = pair(&c.flash3_fwd, &c.flash3_bwd) {
                m.flash3 = Some(f);
            }
        }
        m
    }

    /// Dense peak and achievable fraction of (unit, dtype); peak 0 when unsupported.
    pub fn peak(&self, unit: Unit, dtype: Dtype) -> (FlopRate, f64) {
        match (unit, dtype) {
            (Unit::Tensor, Dtype::Bf16) => (FlopRate(self.peak_bf16), self.frac_bf16),
            (Unit::Tensor, Dtype::Fp8) => (FlopRate(self.peak_fp8), self.frac_fp8),
            (Unit::Tensor, Dtype::Tf32) | (Unit::Tensor, Dtype::Fp32) => {
                (FlopRate(self.peak_tf32), self.frac_tf32)
            }
            (Unit::Vector, _) => (FlopRate(self.peak_fp32), self.frac_fp32),
        }
    }

    /// The dense peak MFU and HFU are measured against: that of the precision's GEMM dtype.
    pub fn mfu_peak(&self, precision: Precision) -> FlopRate {
        let p = PrecisionPolicy::of(precision);
        self.peak(p.gemm_unit, p.gemm).0
    }

    /// Time to move `bytes` through HBM at the achievable bandwidth.
    pub fn hbm_time(&self, bytes: Bytes) -> Seconds {
        bytes / ByteRate(self.hbm * self.frac_hbm)
    }

    /// Time for an eager framework pointwise kernel to move `bytes` through HBM.
    pub fn eager_hbm_time(&self, bytes: Bytes) -> Seconds {
        bytes / ByteRate(self.hbm * self.frac_eager)
    }

    /// Time to move `bytes` through L2.
    pub fn l2_time(&self, bytes: Bytes) -> Seconds {
        bytes / ByteRate(self.l2_bw)
    }
}
