//! `[[attention_table]]` of a GPU file: published (or measured) FlashAttention throughput by
//! sequence length, one series per kernel, pass, mask and head dimension, which the time model
//! uses in place of the s/(s + seq_half) law of `[attention]` where it has the kernel
//! ([`crate::time::attention_table`] says how):
//!
//! ```toml
//! [[attention_table]]
//! kernel = "flash2"          # flash2 | flash3
//! pass = "fwd+bwd"           # fwd | bwd | fwd+bwd
//! causal = false
//! head_dim = 64
//! seq = [512, 1024, 2048, 4096, 8192, 16384]
//! tflops = [215, 254, 274, 288, 294, 296]
//! source = "Dao-AILab/flash-attention assets/flash2_h100_fwd_bwd_benchmark.png, panel (a)"
//! ```
//!
//! Rates are counted as FlashAttention's benchmark counts them
//! (benchmarks/benchmark_flash_attention.py `flops`): forward 4·s²·h·d per sample and head,
//! halved when causal; backward 2.5 times the forward; fwd+bwd 3.5 times, over the sum of both
//! times. So a fwd+bwd series and a fwd series of the same kernel, mask and head dimension give
//! the backward: R_bwd = 2.5 / (3.5/R_fwd+bwd − 1/R_fwd).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most series a GPU file may give (kernel × mask × head dimension × pass).
pub const MAX_SERIES: usize = 24;
/// Most sequence lengths in one series (the time model keeps them inline).
pub const MAX_SEQ_POINTS: usize = 8;
/// Most head dimensions per kernel and mask.
pub const MAX_HEAD_DIMS: usize = 3;

/// The passes a series may measure, and the FLOP multiple of the forward each counts.
pub const PASSES: [(&str, f64); 3] = [("fwd", 1.0), ("bwd", 2.5), ("fwd+bwd", 3.5)];
/// The kernels a series may name.
pub const KERNELS: [&str; 3] = ["flash2", "flash3", "flash1"];

/// One bar series of a kernel benchmark: throughput at several sequence lengths.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttentionSeries {
    /// `flash1`, `flash2` or `flash3`.
    pub kernel: String,
    /// `fwd`, `bwd` or `fwd+bwd`.
    pub pass: String,
    /// Causal mask (FLOPs counted half).
    pub causal: bool,
    /// Head dimension.
    pub head_dim: f64,
    /// Sequence lengths, increasing.
    pub seq: Vec<f64>,
    /// Throughput at each length, TFLOP/s.
    pub tflops: Vec<f64>,
    /// Where the numbers come from (figure, panel, how read).
    pub source: String,
}

impl AttentionSeries {
    /// Index of the pass in [`PASSES`] (valid once checked).
    pub fn pass_index(&self) -> usize {
        PASSES
            .iter()
            .position(|(p, _)| *p == self.pass)
            .unwrap_or(0)
    }

    /// Index of the kernel in [`KERNELS`] (valid once checked).
    pub fn kernel_index(&self) -> usize {
        KERNELS.iter().position(|k| *k == self.kernel).unwrap_or(0)
    }

    /// Whether two series describe the same kernel, mask and head dimension.
    pub fn same_group(&self, other: &AttentionSeries) -> bool {
        self.kernel == other.kernel
            && self.causal == other.causal
            && self.head_dim == other.head_dim
    }
}

/// The backward rate from a fwd+bwd rate `total` and a forward rate `fwd` (FlashAttention's
/// FLOP convention): 2.5 / (3.5/total − 1/fwd); `None` when the numbers are inconsistent (the
/// forward alone would take longer than both passes).
pub fn backward_from_total(total: f64, fwd: f64) -> Option<f64> {
    let rest = 3.5 / total - 1.0 / fwd;
    (rest > 0.0).then(|| 2.5 / rest)
}

/// Checks the series of a GPU file: known kernel and pass, a head dimension in [8, 512], 1 to
/// [`MAX_SEQ_POINTS`] increasing integer lengths with as many positive rates no higher than the
/// dense bf16 peak `peak_tflops`, a non-empty source; at most [`MAX_SERIES`] series and
/// [`MAX_HEAD_DIMS`] head dimensions per kernel and mask; per kernel, mask and head dimension
/// no pass twice and not all three passes (two determine the third); a fwd+bwd series beside
/// a fwd or bwd one on the same lengths, with a backward that comes out positive; and the
/// `[attention]` fractions of every kernel named (`has_fractions`): the table refines them, and
/// they split a series given for one pass only. Errors name `file`, the field and the value.
pub fn check(
    series: &[AttentionSeries],
    file: &str,
    peak_tflops: f64,
    has_fractions: impl Fn(&str) -> bool,
) -> Result<()> {
    let err = |field: String, problem: String| Err(Error::spec(file, field, problem));
    if series.len() > MAX_SERIES {
        return err(
            "attention_table".into(),
            format!(
                "has {} series; a GPU file holds at most {MAX_SERIES}",
                series.len()
            ),
        );
    }
    for (i, s) in series.iter().enumerate() {
        let field = |name: &str| format!("attention_table[{i}].{name}");
        if !KERNELS.contains(&s.kernel.as_str()) {
            return err(
                field("kernel"),
                format!(
                    "'{}' is not a fused attention kernel (flash1, flash2 or flash3)",
                    s.kernel
                ),
            );
        }
        if !PASSES.iter().any(|(p, _)| *p == s.pass) {
            return err(
                field("pass"),
                format!("'{}' is not a pass (fwd, bwd or fwd+bwd)", s.pass),
            );
        }
        if !((8.0..=512.0).contains(&s.head_dim) && s.head_dim.fract() == 0.0) {
            return err(
                field("head_dim"),
                format!("value {} is not an integer in [8, 512]", s.head_dim),
            );
        }
        if s.seq.is_empty() || s.seq.len() > MAX_SEQ_POINTS {
            return err(
                field("seq"),
                format!(
                    "has {} lengths; a series holds 1 to {MAX_SEQ_POINTS}",
                    s.seq.len()
                ),
            );
        }
        for (j, &x) in s.seq.iter().enumerate() {
            if !((1.0..=(1u64 << 30) as f64).contains(&x) && x.fract() == 0.0) {
                return err(
                    format!("attention_table[{i}].seq[{j}]"),
                    format!("value {x} is not an integer in [1, 2^30]"),
                );
            }
            if j > 0 && x <= s.seq[j - 1] {
                return err(
                    format!("attention_table[{i}].seq[{j}]"),
                    format!("value {x} does not increase on {}", s.seq[j - 1]),
                );
            }
        }
        if s.tflops.len() != s.seq.len() {
            return err(
                field("tflops"),
                format!(
                    "has {} rates for {} lengths in `seq`",
                    s.tflops.len(),
                    s.seq.len()
                ),
            );
        }
        for (j, &r) in s.tflops.iter().enumerate() {
            if !(r.is_finite() && r > 0.0 && r <= peak_tflops) {
                return err(
                    format!("attention_table[{i}].tflops[{j}]"),
                    format!(
                        "value {r} is not a positive TFLOP/s at most the dense bf16 peak {peak_tflops}"
                    ),
                );
            }
        }
        if s.source.trim().is_empty() {
            return err(
                field("source"),
                "a series needs a non-empty `source`".into(),
            );
        }
        let group: Vec<&AttentionSeries> = series[..i].iter().filter(|o| o.same_group(s)).collect();
        if group.iter().any(|o| o.pass == s.pass) {
            return err(
                field("pass"),
                format!(
                    "'{}' of {} {} head dim {} is given twice",
                    s.pass,
                    s.kernel,
                    mask(s.causal),
                    s.head_dim
                ),
            );
        }
        if group.len() == 2 {
            return err(
                field("pass"),
                format!(
                    "{} {} head dim {} has all three passes; two determine the third, so give two",
                    s.kernel,
                    mask(s.causal),
                    s.head_dim
                ),
            );
        }
        let dims = {
            let mut d: Vec<f64> = series[..=i]
                .iter()
                .filter(|o| o.kernel == s.kernel && o.causal == s.causal)
                .map(|o| o.head_dim)
                .collect();
            d.sort_by(f64::total_cmp);
            d.dedup();
            d.len()
        };
        if dims > MAX_HEAD_DIMS {
            return err(
                field("head_dim"),
                format!(
                    "{} {} has {dims} head dimensions; at most {MAX_HEAD_DIMS}",
                    s.kernel,
                    mask(s.causal)
                ),
            );
        }
        if let Some(o) = group.first() {
            if o.seq != s.seq {
                return err(
                    field("seq"),
                    format!(
                        "{:?} differs from the lengths of the {} series of the same kernel, mask and head dim ({:?}): two passes combine length by length",
                        s.seq, o.pass, o.seq
                    ),
                );
            }
            let (fwd, total) = match (o.pass.as_str(), s.pass.as_str()) {
                ("fwd", "fwd+bwd") => (&o.tflops, &s.tflops),
                ("fwd+bwd", "fwd") => (&s.tflops, &o.tflops),
                ("bwd", "fwd+bwd") | ("fwd+bwd", "bwd") => {
                    let (bwd, total) = if o.pass == "bwd" {
                        (&o.tflops, &s.tflops)
                    } else {
                        (&s.tflops, &o.tflops)
                    };
                    // Forward from the other two: 1 / (3.5/total − 2.5/bwd).
                    for (j, (&b, &t)) in bwd.iter().zip(total).enumerate() {
                        if 3.5 / t - 2.5 / b <= 0.0 {
                            return err(
                                format!("attention_table[{i}].tflops[{j}]"),
                                format!(
                                    "fwd+bwd {t} and bwd {b} TFLOP/s leave no time for the forward"
                                ),
                            );
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            for (j, (&f, &t)) in fwd.iter().zip(total).enumerate() {
                if backward_from_total(t, f).is_none_or(|b| b > peak_tflops) {
                    return err(
                        format!("attention_table[{i}].tflops[{j}]"),
                        format!(
                            "fwd {f} and fwd+bwd {t} TFLOP/s give no backward rate between 0 and the peak"
                        ),
                    );
                }
            }
        }
    }
    if let Some((i, s)) = series
        .iter()
        .enumerate()
        .find(|(_, s)| !has_fractions(&s.kernel))
    {
        return Err(Error::spec(
            file,
            format!("attention_table[{i}].kernel"),
            format!(
                "'{}': the table refines the `[attention]` fractions of a kernel, and this file has no attention.{}_fwd and {}_bwd",
                s.kernel, s.kernel, s.kernel
            ),
        ));
    }
    Ok(())
}

fn mask(causal: bool) -> &'static str {
    if causal {
        "causal"
    } else {
        "non-causal"
    }
}
