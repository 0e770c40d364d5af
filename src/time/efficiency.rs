//! What a GEMM or a fused attention kernel attains on a [`Machine`]: its peak times efficiencies.
//!
//! GEMM efficiency model (shape-aware; tile and wave quantization as in NVIDIA's "Matrix
//! Multiplication Background User's Guide", worked through in docs/reference.md §6):
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
//! Where the GPU file has a measured `[gemm_table]` covering a single GEMM's shape, the rate
//! above is corrected by the measured-to-analytic ratio interpolated between the table's points
//! ([`super::gemm_table`]).
//!
//! Alignment: a GEMM whose leading dimensions are not multiples of 16 bytes of its operand
//! dtype (e.g. GPT-2's vocabulary of 50257) runs on slow alignment-1 kernels, capped at
//! [`MISALIGNED_CEILING`]. A linear layer's token rows are no leading dimension (in `x·Wᵀ` and
//! its gradients cuBLAS sees x with leading dimension K and the output with N), so only its
//! feature dimensions count; a batched attention GEMM's sequence is a leading dimension.

use super::machine::Machine;
use crate::error::{Error, Result};
use crate::graph::{AttentionImpl, Dtype, TokenDim, Unit};
use crate::units::FlopRate;

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
/// LM head (vocabulary 50257) ran its three GEMMs on `cutlass_75_tensorop_bf16_s1688gemm_*_align1`
/// kernels at 9.6-15.4% of an H100 SXM's 989 TFLOP/s, 12.4% FLOP-weighted (the H100 file's
/// `achievable.misaligned_gemm`, reports/measurements/2026-11-27-h100-sxm); GPU files without
/// their own figure take this one.
pub const MISALIGNED_CEILING: f64 = 0.124;

/// Elements per 16 bytes of `dtype`: a GEMM dimension that is a leading dimension must be a
/// multiple of this for cuBLAS's vectorized kernels (see [`MISALIGNED_CEILING`]).
#[inline]
pub fn alignment(dtype: Dtype) -> u64 {
    match dtype {
        Dtype::Fp8 => 16,
        Dtype::Bf16 | Dtype::Fp16 => 8,
        Dtype::Fp32 | Dtype::Tf32 => 4,
    }
}

/// Default small-K constant k0 (assumption, see module docs).
pub const DEFAULT_K0: f64 = 64.0;

impl Machine {
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
            // In f64: a padded size can exceed u64 where m or n is near its top.
            let padded = |tiles: u64, t: u64| tiles as f64 * t as f64;
            let q = (m as f64 * n as f64) / (padded(tiles_m, tm) * padded(tiles_n, tn));
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
    /// × shape efficiency, corrected by the GPU file's measured GEMM table where it covers a
    /// single tensor-core GEMM ([`super::gemm_table`]), and capped at the machine's misaligned
    /// ceiling ([`Machine::frac_misaligned`], [`MISALIGNED_CEILING`] when the GPU file has none)
    /// when a leading dimension is misaligned. `token_dim` (a linear layer's token rows) is no
    /// leading dimension in the layouts cuBLAS gets, so its size is not checked; a batched GEMM
    /// checks all three.
    ///
    /// With `shape_padding` (torch.compile: Inductor's `shape_padding`, on by default, pads the
    /// dimensions of a matmul to the alignment, torch/_inductor/config.py and
    /// fx_passes/pad_mm.py) a misaligned GEMM runs as the padded, aligned one: the rate of the
    /// padded shape times the share of its FLOPs that are real, no alignment-1 ceiling.
    #[inline]
    pub fn gemm_rate(
        &self,
        unit: Unit,
        dtype: Dtype,
        batch: u64,
        shape: (u64, u64, u64),
        token_dim: Option<TokenDim>,
        shape_padding: bool,
    ) -> FlopRate {
        self.rate(unit, dtype, batch, shape, token_dim, shape_padding, true)
    }

    /// [`Machine::gemm_rate`] without the measured table: the analytic model alone.
    pub fn analytic_gemm_rate(
        &self,
        unit: Unit,
        dtype: Dtype,
        batch: u64,
        shape: (u64, u64, u64),
        token_dim: Option<TokenDim>,
        shape_padding: bool,
    ) -> FlopRate {
        self.rate(unit, dtype, batch, shape, token_dim, shape_padding, false)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn rate(
        &self,
        unit: Unit,
        dtype: Dtype,
        batch: u64,
        (m, n, k): (u64, u64, u64),
        token_dim: Option<TokenDim>,
        shape_padding: bool,
        table: bool,
    ) -> FlopRate {
        let (peak, frac) = self.peak(unit, dtype);
        // k0 is a fixed time per tile expressed in K steps of the bf16 tensor-core loop; on a
        // slower unit the same time is fewer K steps.
        let k0 = self.gemm_k0 * (peak.0 * frac) / (self.peak_bf16.0 * self.frac_bf16);
        // The shape's efficiency (fraction of the peak), table-corrected where covered.
        let eff = |m: u64, n: u64, k: u64| {
            let e = frac * self.shape_efficiency_k0(batch, m, n, k, k0);
            let corrected =
                if table && self.mechanisms.gemm_table && batch == 1 && unit == Unit::Tensor {
                    self.gemm_table.correction(dtype, m, n, k)
                } else {
                    None
                };
            corrected.map_or(e, |c| (e * c).min(1.0))
        };
        let align = alignment(dtype);
        let ok = |d: u64| d.is_multiple_of(align);
        let aligned = (token_dim == Some(TokenDim::M) || ok(m))
            && ok(n)
            && (token_dim == Some(TokenDim::K) || ok(k));
        if aligned || unit == Unit::Vector {
            peak * eff(m, n, k)
        } else if shape_padding {
            let pad = |d: u64| d.div_ceil(align).saturating_mul(align);
            let (pm, pn, pk) = (
                if token_dim == Some(TokenDim::M) {
                    m
                } else {
                    pad(m)
                },
                pad(n),
                if token_dim == Some(TokenDim::K) {
                    k
                } else {
                    pad(k)
                },
            );
            let real = (m as f64 * n as f64 * k as f64) / (pm as f64 * pn as f64 * pk as f64);
            peak * (eff(pm, pn, pk) * real)
        } else {
            peak * eff(m, n, k).min(self.frac_misaligned)
        }
    }

    /// Attainable FLOP/s of a fused attention kernel at sequence `seq` and head dimension
    /// `head_dim` (forward or backward). Where the GPU file's attention table has the kernel
    /// (and the mechanism is on), the file's fraction at `seq_ref` times the table's ratio
    /// ([`super::attention_table`]: interpolated in log length and head dimension, held at the
    /// longest length measured; a causal kernel without causal series at the non-causal ratio
    /// times the causal factor). Otherwise the fraction grown as s/(s + seq_half) relative to
    /// `seq_ref`, times the causal factor, capped at the highest fraction the kernel is
    /// published or measured to reach on that GPU (`attention.flash2_max` / `flash3_max`).
    /// Either way at most the GEMM ceiling.
    pub fn flash_rate(
        &self,
        which: AttentionImpl,
        seq: u64,
        head_dim: u64,
        backward: bool,
        causal: bool,
    ) -> Result<FlopRate> {
        let eff = match which {
            AttentionImpl::Flash1 => self.flash1,
            AttentionImpl::Flash3 => self.flash3,
            _ => self.flash2,
        }
        .ok_or_else(|| {
            let g = which.flash_generation().unwrap_or(2);
            Error::Invalid(format!(
                "this GPU's spec has no attention.flash{g}_fwd / flash{g}_bwd figures for \
                 --attention {which} (when --attention is not given, the model file's [defaults] \
                 chose it); give them in the GPU file or a calibration file, or choose another \
                 --attention"
            ))
        })?;
        let f = if backward { eff.bwd } else { eff.fwd };
        let causal_factor = if causal { self.flash_causal } else { 1.0 };
        let flash = which.flash_generation().unwrap_or(2);
        let table = |causal: bool| {
            self.attention_table
                .ratio(flash, causal, head_dim, seq, backward, self.flash_seq_half)
        };
        let tabulated = if self.mechanisms.attention_table {
            table(causal).or_else(|| table(false).filter(|_| causal).map(|r| r * causal_factor))
        } else {
            None
        };
        let scaled = match tabulated {
            Some(ratio) => f * ratio,
            None => {
                let shape = |s: f64| s / (s + self.flash_seq_half);
                let law = f * causal_factor * shape(seq as f64) / shape(self.flash_seq_ref);
                if self.mechanisms.attention_cap {
                    law.min(eff.max)
                } else {
                    law
                }
            }
        };
        Ok(self.peak_bf16 * scaled.min(self.frac_bf16))
    }
}
