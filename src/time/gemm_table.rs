//! A GPU file's measured GEMM table ([`crate::spec::GemmTable`]) as the time model uses it:
//! a correction of the analytic GEMM rate ([`super::efficiency`]) by the measured one, inline
//! in the `Copy` [`super::Machine`] (no allocation, no indirection on the hot path).
//!
//! Each point i (shape Mᵢ×Nᵢ×Kᵢ, dtype, measured rate Rᵢ) is stored as its position in log
//! space xᵢ = (ln Mᵢ, ln Nᵢ, ln Kᵢ) and its log ratio to the analytic model,
//! ρᵢ = ln(Rᵢ / analytic(Mᵢ, Nᵢ, Kᵢ)). A GEMM (M, N, K) of that dtype at x = (ln M, ln N, ln K)
//! then runs at
//!
//! rate = min( analytic(M, N, K) · exp( Σᵢ wᵢ ρᵢ / Σᵢ wᵢ ), dense peak ),  wᵢ = 1 / |x − xᵢ|²
//!
//! (inverse-distance weighting, Shepard 1968, in log space; at a table point the rate is the
//! measured one exactly). Why a corrected analytic rate rather than interpolated measured rates:
//! the analytic model carries the tile and wave quantization that changes abruptly between
//! points (one more wave of tiles costs a whole wave); the measured ratio, which varies slowly
//! with shape (kernel choice, epilogue, operand reuse), is what is interpolated. The weighted
//! mean of the ρᵢ lies between their least and greatest, so the correction never exceeds the
//! measured range (in a table of two points it moves monotonically from one ratio to the other;
//! with more points inverse-distance weights need not be monotone between neighbours).
//!
//! Coverage: the table covers a shape when, in each of ln M, ln N, ln K, it lies within the
//! least and greatest coordinate of the points of that dtype (their bounding box); outside it,
//! or for a dtype without points, the analytic rate is used unchanged (no extrapolation).
//!
//! Only single GEMMs use the table (batch 1, tensor cores): a batched GEMM (attention's
//! scores and P·V) or grouped GEMM (MoE experts) runs `batch` independent products with their
//! own operands, whose wave quantization is over batch × tiles; folding the batch into M would
//! claim operand reuse that does not exist, and the table's points are single GEMMs. They stay
//! analytic. Misaligned GEMMs: the table measures aligned shapes; the alignment-1 ceiling and
//! torch.compile's padding apply on top of the table-corrected rate of the shape (or of the
//! padded shape) as in [`super::Machine::gemm_rate`].
//!
//! The ratios are taken against the machine as resolved from its GPU file and calibration;
//! a later perturbation of a figure (sensitivity analysis) scales table and analytic rates
//! alike.

use crate::graph::Dtype;
use crate::spec::gemm_table::GEMM_TABLE_CAPACITY;

/// One table point in log space.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    /// (ln M, ln N, ln K).
    x: [f32; 3],
    /// ln(measured / analytic).
    rho: f64,
}

/// The points of one dtype: a range of `GemmTable::points` and their bounding box.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    start: u8,
    end: u8,
    lo: [f32; 3],
    hi: [f32; 3],
}

const EMPTY_SLOT: Slot = Slot {
    start: 0,
    end: 0,
    lo: [0.0; 3],
    hi: [0.0; 3],
};

/// Dtypes with their own points: bf16, fp16, fp8, tf32 (fp32 on tensor cores runs as tf32).
const SLOTS: usize = 4;

/// The [`Dtype`] a table point's dtype name stands for.
pub fn dtype_of_name(dtype: &str) -> Option<Dtype> {
    [Dtype::Bf16, Dtype::Fp16, Dtype::Fp8, Dtype::Tf32]
        .into_iter()
        .find(|d| d.name() == dtype)
}

#[inline]
fn slot_of(dtype: Dtype) -> usize {
    match dtype {
        Dtype::Bf16 => 0,
        Dtype::Fp16 => 1,
        Dtype::Fp8 => 2,
        Dtype::Tf32 | Dtype::Fp32 => 3,
    }
}

/// Log-space position of a GEMM shape.
#[inline]
fn position(m: u64, n: u64, k: u64) -> [f32; 3] {
    // f32 is ample for a position and halves the cost of the logarithms on the hot path.
    [(m as f32).ln(), (n as f32).ln(), (k as f32).ln()]
}

/// Measured GEMM ratios of one GPU, inline (see the module docs). `Default` is the empty
/// table, which corrects nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmTable {
    points: [Point; GEMM_TABLE_CAPACITY],
    slots: [Slot; SLOTS],
}

impl Default for GemmTable {
    fn default() -> Self {
        GemmTable {
            points: [Point {
                x: [0.0; 3],
                rho: 0.0,
            }; GEMM_TABLE_CAPACITY],
            slots: [EMPTY_SLOT; SLOTS],
        }
    }
}

impl GemmTable {
    /// A table from (dtype, (M, N, K), measured / analytic) entries; at most
    /// [`GEMM_TABLE_CAPACITY`] (the spec's check refuses more; extra ones are ignored).
    pub fn new(entries: &[(Dtype, (u64, u64, u64), f64)]) -> Self {
        let mut t = GemmTable::default();
        let mut len = 0usize;
        for slot in 0..SLOTS {
            let start = len;
            let mut lo = [f32::INFINITY; 3];
            let mut hi = [f32::NEG_INFINITY; 3];
            for &(_, (m, n, k), ratio) in entries.iter().filter(|e| slot_of(e.0) == slot) {
                if len == GEMM_TABLE_CAPACITY {
                    break;
                }
                let x = position(m, n, k);
                for d in 0..3 {
                    lo[d] = lo[d].min(x[d]);
                    hi[d] = hi[d].max(x[d]);
                }
                t.points[len] = Point { x, rho: ratio.ln() };
                len += 1;
            }
            if len > start {
                t.slots[slot] = Slot {
                    start: start as u8,
                    end: len as u8,
                    lo,
                    hi,
                };
            }
        }
        t
    }

    /// Whether the table has no points.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| s.start == s.end)
    }

    /// The factor exp(Σ wᵢρᵢ / Σ wᵢ) by which a single GEMM (M, N, K) of `dtype` runs faster
    /// than the analytic model, or `None` where the table does not cover it (module docs).
    #[inline]
    pub fn correction(&self, dtype: Dtype, m: u64, n: u64, k: u64) -> Option<f64> {
        let s = self.slots[slot_of(dtype)];
        if s.start == s.end {
            return None;
        }
        let x = position(m, n, k);
        if (0..3).any(|d| x[d] < s.lo[d] || x[d] > s.hi[d]) {
            return None;
        }
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for p in &self.points[s.start as usize..s.end as usize] {
            let d2: f32 = (0..3).map(|d| (x[d] - p.x[d]) * (x[d] - p.x[d])).sum();
            if d2 == 0.0 {
                return Some(p.rho.exp());
            }
            let w = f64::from(1.0 / d2);
            num += w * p.rho;
            den += w;
        }
        Some((num / den).exp())
    }
}
