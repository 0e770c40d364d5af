//! `[gemm_table]` of a GPU file: measured GEMM throughput by shape, which the time model uses
//! in place of its analytic GEMM efficiency where the table covers a shape
//! ([`crate::time::gemm_table`] says how). Written by `roofline calibrate --gemm-table` (or
//! `roofline bench --gemm-table`) from cuBLAS measurements:
//!
//! ```toml
//! [gemm_table]
//! source = "cuBLAS GemmEx medians, roofline bench on ... (reports/.../bench.json)"
//! points = [
//!   { m = 32768, n = 2304, k = 768, dtype = "bf16", flops_per_s = 696.7e12, source = "..." },
//! ]
//! ```
//!
//! A point is one GEMM C[M,N] = A[M,K]·B[N,K]ᵀ (one matrix, no batch) of a tensor-core dtype,
//! with every dimension a multiple of 16 bytes of that dtype: the table holds aligned GEMMs
//! (misaligned ones run on alignment-1 kernels, `achievable.misaligned_gemm`). Rates are FLOP/s
//! counted as 2MNK over the median time.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize, Serializer};

/// The most points a table may hold: the time model keeps them inline in its `Copy` machine.
pub const GEMM_TABLE_CAPACITY: usize = 64;

/// The dtypes a table point may name (tensor-core GEMMs) and their alignment in elements (16
/// bytes).
pub const TABLE_DTYPES: [(&str, u64); 4] = [("bf16", 8), ("fp16", 8), ("fp8", 16), ("tf32", 4)];

/// Largest dimension a point may have (as in the bench's plausibility checks).
const MAX_DIM: f64 = (1u64 << 32) as f64;

/// Measured GEMM throughput by shape.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GemmTable {
    /// Where the points come from (tool, device, date, file).
    pub source: String,
    /// The measured GEMMs.
    pub points: Vec<GemmPoint>,
}

/// One measured GEMM.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GemmPoint {
    /// Rows of A and C (a positive integer; read as a number so that a bad one is named).
    #[serde(serialize_with = "integer")]
    pub m: f64,
    /// Columns of C (rows of B).
    #[serde(serialize_with = "integer")]
    pub n: f64,
    /// The reduction dimension.
    #[serde(serialize_with = "integer")]
    pub k: f64,
    /// Operand dtype: one of [`TABLE_DTYPES`].
    pub dtype: String,
    /// Measured FLOP/s: 2MNK over the median time.
    pub flops_per_s: f64,
    /// This point's own source (file and entry), in addition to the table's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn integer<S: Serializer>(x: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(*x as u64)
}

impl GemmPoint {
    /// (M, N, K) as integers (valid once the table has been checked).
    pub fn shape(&self) -> (u64, u64, u64) {
        (self.m as u64, self.n as u64, self.k as u64)
    }

    /// One line of the TOML array `points`.
    pub fn to_toml(&self) -> String {
        let (m, n, k) = self.shape();
        let source = self
            .source
            .as_ref()
            .map(|s| format!(", source = {}", toml_string(s)))
            .unwrap_or_default();
        format!(
            "{{ m = {m}, n = {n}, k = {k}, dtype = {}, flops_per_s = {:.1}e12{source} }}",
            toml_string(&self.dtype),
            self.flops_per_s / 1e12
        )
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl GemmTable {
    /// The `[gemm_table]` section as TOML, one point per line.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "[gemm_table]\nsource = {}\npoints = [\n",
            toml_string(&self.source)
        );
        for p in &self.points {
            out += &format!("  {},\n", p.to_toml());
        }
        out + "]\n"
    }

    /// Checks every field: a non-empty source, 1 to [`GEMM_TABLE_CAPACITY`] points, each with
    /// a known dtype that `peak` (dense peak of a dtype name, `None` when the GPU lacks it)
    /// gives a rate for, positive integer aligned dimensions, a positive finite rate no higher
    /// than that peak, and no shape twice. Errors name `file`, the field and the value.
    pub fn check(&self, file: &str, peak: impl Fn(&str) -> Option<f64>) -> Result<()> {
        let err = |field: String, problem: String| Err(Error::spec(file, field, problem));
        if self.source.trim().is_empty() {
            return err(
                "gemm_table.source".into(),
                "the table needs a non-empty `source`".into(),
            );
        }
        if self.points.is_empty() || self.points.len() > GEMM_TABLE_CAPACITY {
            return err(
                "gemm_table.points".into(),
                format!(
                    "has {} points; a table holds 1 to {GEMM_TABLE_CAPACITY} (the time model keeps them inline)",
                    self.points.len()
                ),
            );
        }
        for (i, p) in self.points.iter().enumerate() {
            let field = |name: &str| format!("gemm_table.points[{i}].{name}");
            let Some(&(_, align)) = TABLE_DTYPES.iter().find(|(d, _)| *d == p.dtype) else {
                return err(
                    field("dtype"),
                    format!(
                        "'{}' is not a tensor-core GEMM dtype (bf16, fp16, fp8 or tf32)",
                        p.dtype
                    ),
                );
            };
            let Some(peak) = peak(&p.dtype) else {
                return err(
                    field("dtype"),
                    format!(
                        "'{}': this GPU file lists no {} tensor peak",
                        p.dtype, p.dtype
                    ),
                );
            };
            for (name, d) in [("m", p.m), ("n", p.n), ("k", p.k)] {
                if !((1.0..=MAX_DIM).contains(&d) && d.fract() == 0.0) {
                    return err(
                        field(name),
                        format!("value {d} is not an integer in [1, 2^32]"),
                    );
                }
                if !(d as u64).is_multiple_of(align) {
                    return err(
                        field(name),
                        format!(
                            "value {d} is not a multiple of {align} ({} elements of 16 bytes): the table holds aligned GEMMs",
                            p.dtype
                        ),
                    );
                }
            }
            if !(p.flops_per_s.is_finite() && p.flops_per_s > 0.0) {
                return err(
                    field("flops_per_s"),
                    format!("value {} is not a positive finite FLOP/s", p.flops_per_s),
                );
            }
            if p.flops_per_s > peak {
                return err(
                    field("flops_per_s"),
                    format!(
                        "value {:e} is above the GPU's dense {} peak {peak:e}",
                        p.flops_per_s, p.dtype
                    ),
                );
            }
            if p.source.as_ref().is_some_and(|s| s.trim().is_empty()) {
                return err(
                    field("source"),
                    "a point's `source`, when given, must not be empty".into(),
                );
            }
            if let Some(j) = self.points[..i]
                .iter()
                .position(|q| q.dtype == p.dtype && q.shape() == p.shape())
            {
                let (m, n, k) = p.shape();
                return err(
                    format!("gemm_table.points[{i}]"),
                    format!("{} {m}x{n}x{k} repeats points[{j}]", p.dtype),
                );
            }
        }
        Ok(())
    }
}
