//! What a GPU attains: peaks times efficiencies, resolved from the GPU spec and an optional
//! calibration file (which overrides any value it names).
//!
//! GEMM efficiency model (shape-aware; after the wave-quantization analysis of REFERENCE.md s.7
//! and NVIDIA's "Matrix Multiplication Background" guide):
//!
//! eff(M, N, K) = a · max over tiles (tm, tn) of [ q_tile · u_wave · r · K' / (K' + k0) ], K' = K / split
//!
//! - a: achievable fraction of the dtype's dense peak for a large, well-shaped GEMM
//!   (8192³ measured; [`crate::spec::hardware::Achievable`]).
//! - Tile quantization q = M·N / (⌈M/tm⌉·tm · ⌈N/tn⌉·tn): work wasted on padded tiles.
//! - Wave quantization u = tiles / (⌈tiles / SMs⌉ · SMs): the last wave leaves SMs idle
//!   (one output tile per SM at a time).
//! - r: relative throughput of a tile shape (operand reuse), an assumption: 1.0 for 128×256 and
//!   256×128, 0.9 for 128×128, 0.85 for 128×64 (attention's head dimension), 0.75 for 64×128
//!   (Hopper's wgmma works on 64-row slices; smaller tiles re-read more operand bytes per FLOP).
//! - Small K: each tile pays a fixed prologue/epilogue (pipeline fill, writing C) worth k0
//!   steps of its K loop: K / (K + k0), k0 = 64 by default (assumption; calibrated by
//!   `roofline calibrate`). k0 is a time measured in bf16 tensor-core K steps: for a slower unit
//!   (fp32 SIMT) it shrinks in proportion to the unit's attainable rate.
//! - Skinny M (e.g. adaLN's M = batch): captured by tile and wave quantization, and such GEMMs
//!   are memory-bound on their weight read, which the roofline max() takes care of.
//! - Few tiles, long K (weight gradients: M·N small, K = tokens): split-K ([`split_k`]) spreads
//!   the K loop over idle SMs, as cuBLAS's heuristics do; K/(K+k0) then applies per split.
//!
//! The best tile is chosen as cuBLAS's heuristics would: the one with the highest product.
//!
//! Alignment: a GEMM with M, N or K not a multiple of 16 bytes of its operand dtype (e.g. GPT-2's
//! vocabulary of 50257) runs on slow alignment-1 kernels, capped at [`MISALIGNED_CEILING`].

use crate::error::{Error, Result};
use crate::graph::{AttentionImpl, Dtype, Unit};
use crate::spec::hardware::{check_sourced, Sourced};
use crate::spec::model::{toml_error_field, toml_error_problem};
use crate::spec::GpuSpec;
use crate::units::{ByteRate, Bytes, FlopRate, Seconds};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Tile shapes the model chooses from, with their relative throughput `r`.
pub const TILES: [(u64, u64, f64); 5] = [
    (128, 256, 1.0),
    (256, 128, 1.0),
    (128, 128, 0.9),
    (128, 64, 0.85),
    (64, 128, 0.75),
];

/// Split-K factor: when the output tiles cannot fill the SMs, cuBLAS splits the K loop over
/// several CTAs (split-K / stream-K) and adds the partial tiles. The model splits into as many
/// parts as fill one wave, keeping at least [`SPLIT_K_MIN`] of K per part.
pub fn split_k(tiles: f64, k: f64, sms: f64) -> f64 {
    if tiles >= sms {
        return 1.0;
    }
    (sms / tiles)
        .floor()
        .min((k / SPLIT_K_MIN).floor())
        .max(1.0)
}

/// Smallest K slice per split-K part (assumption: a few pipeline stages of 64).
pub const SPLIT_K_MIN: f64 = 256.0;

/// Ceiling of a GEMM whose M, N or K is not a multiple of 16 bytes of its operand dtype, as a
/// fraction of the dense peak: cuBLAS then falls back to alignment-1 kernels. Measured: GPT-2's
/// LM head (vocabulary 50257) ran on `cutlass_75_tensorop_bf16_s1688gemm_*_align1` kernels at
/// 95-148 TFLOP/s on an H100 SXM (10-15% of 989), reports/measurements/2026-11-27-h100-sxm.
pub const MISALIGNED_CEILING: f64 = 0.14;

/// Default small-K constant k0 (assumption, see module docs).
pub const DEFAULT_K0: f64 = 64.0;

/// A calibration file: any field present overrides the GPU spec's value.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Which GPU the calibration was measured on.
    pub gpu: Option<String>,
    /// Where the measurements come from (command, date, device).
    pub provenance: Option<String>,
    /// Achievable fraction of the bf16 tensor peak.
    pub bf16_tensor: Option<Sourced>,
    /// Achievable fraction of the fp8 tensor peak.
    pub fp8_tensor: Option<Sourced>,
    /// Achievable fraction of the tf32 tensor peak.
    pub tf32_tensor: Option<Sourced>,
    /// Achievable fraction of the fp32 vector peak.
    pub fp32_vector: Option<Sourced>,
    /// Achievable fraction of HBM bandwidth.
    pub hbm: Option<Sourced>,
    /// Achievable fraction of HBM bandwidth for eager pointwise kernels.
    pub eager_elementwise: Option<Sourced>,
    /// GEMM small-K constant k0.
    pub gemm_k0: Option<Sourced>,
    /// GPU-side gap per kernel (s).
    pub kernel_launch_s: Option<Sourced>,
    /// Host dispatch per eager op (s).
    pub host_dispatch_s: Option<Sourced>,
    /// FlashAttention-2 forward fraction at the GPU file's `seq_ref`.
    pub flash2_fwd: Option<Sourced>,
    /// FlashAttention-2 backward fraction.
    pub flash2_bwd: Option<Sourced>,
    /// FlashAttention-3 forward fraction.
    pub flash3_fwd: Option<Sourced>,
    /// FlashAttention-3 backward fraction.
    pub flash3_bwd: Option<Sourced>,
    /// All-reduce bus bandwidth (B/s).
    pub allreduce_bus_bandwidth: Option<Sourced>,
}

impl Calibration {
    /// Checks that the calibration was measured on `gpu` (when it names a GPU).
    pub fn check_gpu(&self, gpu: &GpuSpec, label: &str) -> Result<()> {
        match &self.gpu {
            Some(g) if g != &gpu.name => Err(Error::spec(
                label,
                "gpu",
                format!(
                    "this calibration was measured on {g}, not on {} (pass --gpu {g})",
                    gpu.name
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Reads and validates a calibration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let label = path.display().to_string();
        let c: Calibration = toml::from_str(&text).map_err(|e| {
            Error::spec(&label, toml_error_field(&e, &text), toml_error_problem(&e))
        })?;
        let fractions = [
            ("bf16_tensor", &c.bf16_tensor),
            ("fp8_tensor", &c.fp8_tensor),
            ("tf32_tensor", &c.tf32_tensor),
            ("fp32_vector", &c.fp32_vector),
            ("hbm", &c.hbm),
            ("eager_elementwise", &c.eager_elementwise),
            ("flash2_fwd", &c.flash2_fwd),
            ("flash2_bwd", &c.flash2_bwd),
            ("flash3_fwd", &c.flash3_fwd),
            ("flash3_bwd", &c.flash3_bwd),
        ];
        for (field, v) in fractions {
            if let Some(v) = v {
                check_sourced(&label, field, v, true)?;
            }
        }
        for (fwd, bwd, name) in [
            (&c.flash2_fwd, &c.flash2_bwd, "flash2"),
            (&c.flash3_fwd, &c.flash3_bwd, "flash3"),
        ] {
            if fwd.is_some() != bwd.is_some() {
                return Err(Error::spec(
                    &label,
                    format!("{name}_fwd / {name}_bwd"),
                    "give both the forward and the backward fraction, or neither",
                ));
            }
        }
        for (field, v) in [
            ("gemm_k0", &c.gemm_k0),
            ("kernel_launch_s", &c.kernel_launch_s),
            ("host_dispatch_s", &c.host_dispatch_s),
            ("allreduce_bus_bandwidth", &c.allreduce_bus_bandwidth),
        ] {
            if let Some(v) = v {
                check_sourced(&label, field, v, false)?;
            }
        }
        Ok(c)
    }
}

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

    /// Shape-dependent GEMM efficiency multiplier (everything but the achievable fraction `a`),
    /// see the module docs. `batch` independent GEMMs share the machine.
    pub fn gemm_shape_efficiency(&self, batch: u64, m: u64, n: u64, k: u64) -> f64 {
        self.shape_efficiency_k0(batch, m, n, k, self.gemm_k0)
    }

    /// [`Machine::gemm_shape_efficiency`] with an explicit small-K constant.
    fn shape_efficiency_k0(&self, batch: u64, m: u64, n: u64, k: u64, k0: f64) -> f64 {
        let mut best = 0.0f64;
        for &(tm, tn, r) in &TILES {
            let tiles_m = m.div_ceil(tm);
            let tiles_n = n.div_ceil(tn);
            let q = (m as f64 * n as f64) / ((tiles_m * tm) as f64 * (tiles_n * tn) as f64);
            let tiles = tiles_m as f64 * tiles_n as f64 * batch as f64;
            let split = split_k(tiles, k as f64, self.sms);
            let ctas = tiles * split;
            let waves = (ctas / self.sms).ceil();
            let u = ctas / (waves * self.sms);
            let kk = k as f64 / split;
            best = best.max(q * u * r * kk / (kk + k0));
        }
        best
    }

    /// Attainable FLOP/s of `batch` GEMMs (M, N, K) on (unit, dtype): peak × achievable fraction
    /// × shape efficiency, capped at [`MISALIGNED_CEILING`] of the peak when misaligned.
    pub fn gemm_rate(
        &self,
        unit: Unit,
        dtype: Dtype,
        batch: u64,
        m: u64,
        n: u64,
        k: u64,
    ) -> FlopRate {
        let (peak, frac) = self.peak(unit, dtype);
        // k0 is a fixed time per tile expressed in K steps of the bf16 tensor-core loop; on a
        // slower unit the same time is fewer K steps.
        let k0 = self.gemm_k0 * (peak.0 * frac) / (self.peak_bf16 * self.frac_bf16);
        let eff = frac * self.shape_efficiency_k0(batch, m, n, k, k0);
        let align = match dtype {
            Dtype::Fp8 => 16,
            Dtype::Bf16 => 8,
            Dtype::Fp32 | Dtype::Tf32 => 4,
        };
        let aligned = m.is_multiple_of(align) && n.is_multiple_of(align) && k.is_multiple_of(align);
        FlopRate(
            peak.0
                * if aligned || unit == Unit::Vector {
                    eff
                } else {
                    eff.min(MISALIGNED_CEILING)
                },
        )
    }

    /// Attainable FLOP/s of a fused attention kernel at sequence `seq` (forward or backward).
    pub fn flash_rate(
        &self,
        which: AttentionImpl,
        seq: u64,
        backward: bool,
        causal: bool,
    ) -> Result<FlopRate> {
        let eff = match which {
            AttentionImpl::Flash3 => self.flash3,
            _ => self.flash2,
        }
        .ok_or_else(|| {
            Error::Invalid(format!(
                "this GPU's spec has no [attention] efficiency for {which}; give one in the GPU file or a \
                 calibration file, or choose another --attention"
            ))
        })?;
        let f = if backward { eff.bwd } else { eff.fwd };
        let shape = |s: f64| s / (s + self.flash_seq_half);
        let causal = if causal { self.flash_causal } else { 1.0 };
        let scaled = f * causal * shape(seq as f64) / shape(self.flash_seq_ref);
        Ok(FlopRate(self.peak_bf16 * scaled.min(self.frac_bf16)))
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
