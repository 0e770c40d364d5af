//! `[[attention_table]]` of a GPU file: published (or measured) FlashAttention throughput by
//! sequence length, one series per kernel, pass, mask and head dimension, which the time model
//! uses in place of the s/(s + seq_half) law of `[attention]` where it has the kernel
//! ([`crate::time::attention_table`] says how):
//!
//! ```toml
//! [[attention_table]]
//! kernel = "flash2"          # flash1 | flash2 | flash3
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
//! the backward: R_bwd = 2.5 / (3.5/R_fwd+bwd − 1/R_fwd) ([`resolve`]).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most series a GPU file may give (kernel × mask × head dimension × pass).
pub const MAX_SERIES: usize = 24;
/// Most sequence lengths in one series (the time model keeps them inline).
pub const MAX_SEQ_POINTS: usize = 8;
/// Most head dimensions per kernel and mask.
pub const MAX_HEAD_DIMS: usize = 3;

/// The passes a series may measure (their FLOPs: 1, 2.5 and 3.5 times the forward's).
pub const PASSES: [&str; 3] = ["fwd", "bwd", "fwd+bwd"];
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

/// How one kernel's series are split into passes: the backward/forward rate ratio `k` of the
/// GPU file's `[attention]` fractions, and the highest forward rate published for the kernel
/// (`flash*_max` times the peak, TFLOP/s; infinite when the file gives none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    /// Backward rate / forward rate.
    pub k: f64,
    /// Highest forward TFLOP/s.
    pub fwd_max: f64,
}

/// Forward and backward TFLOP/s at each length of one kernel, mask and head dimension
/// (`group`: its series, one per pass, on the same lengths). Two passes give the third by the
/// FLOP convention 1 : 2.5 : 3.5 (3.5/R_fwd+bwd = 1/R_fwd + 2.5/R_bwd); one pass alone is split
/// with `split.k`, and a fwd+bwd series alone so that the forward stays at most
/// `split.fwd_max` (the total kept: R_fwd = min(R_t·(1 + 2.5/k)/3.5, fwd_max), R_bwd from the
/// total). Values may come out non-positive or infinite for inconsistent input, which
/// [`check`] rejects; `None` when the group has no series of a known pass.
pub fn resolve(group: &[&AttentionSeries], split: Split) -> Option<Vec<(f64, f64)>> {
    let pass = |p: &str| group.iter().find(|o| o.pass == p).map(|o| &o.tflops);
    let (fwd, bwd, total) = (pass("fwd"), pass("bwd"), pass("fwd+bwd"));
    let n = [fwd, bwd, total]
        .into_iter()
        .flatten()
        .map(Vec::len)
        .min()?;
    let k = split.k;
    let from_total = |t: f64, f: f64| 2.5 / (3.5 / t - 1.0 / f);
    Some(
        (0..n)
            .map(|j| match (fwd, bwd, total) {
                (Some(f), Some(b), _) => (f[j], b[j]),
                (Some(f), None, Some(t)) => (f[j], from_total(t[j], f[j])),
                (None, Some(b), Some(t)) => (1.0 / (3.5 / t[j] - 2.5 / b[j]), b[j]),
                (Some(f), None, None) => (f[j], f[j] * k),
                (None, Some(b), None) => (b[j] / k, b[j]),
                (None, None, Some(t)) => {
                    let f = (t[j] * (1.0 + 2.5 / k) / 3.5).min(split.fwd_max);
                    (f, from_total(t[j], f))
                }
                (None, None, None) => unreachable!("n is the length of a pass present"),
            })
            .collect(),
    )
}

/// Checks the series of a GPU file: known kernel and pass, a head dimension in [8, 512], 1 to
/// [`MAX_SEQ_POINTS`] increasing integer lengths with as many positive rates no higher than the
/// dense bf16 peak `peak_tflops`, a non-empty source; at most [`MAX_SERIES`] series and
/// [`MAX_HEAD_DIMS`] head dimensions per kernel and mask; per kernel, mask and head dimension
/// no pass twice and not all three passes (two determine the third), all passes on the same
/// lengths, and forward and backward rates, as [`resolve`] derives them, positive and at most
/// the peak; and the `[attention]` fractions of every kernel named (`split` of a kernel name:
/// the table refines them, and they split a series given for one pass only). Errors name
/// `file`, the field and the value.
pub fn check(
    series: &[AttentionSeries],
    file: &str,
    peak_tflops: f64,
    split: impl Fn(&str) -> Option<Split>,
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
        if split(&s.kernel).is_none() {
            return err(
                field("kernel"),
                format!(
                    "'{}': the table refines the `[attention]` fractions of a kernel, and this file has no attention.{}_fwd and {}_bwd",
                    s.kernel, s.kernel, s.kernel
                ),
            );
        };
        if !PASSES.contains(&s.pass.as_str()) {
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
        let earlier: Vec<&AttentionSeries> =
            series[..i].iter().filter(|o| o.same_group(s)).collect();
        if earlier.iter().any(|o| o.pass == s.pass) {
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
        if earlier.len() == 2 {
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
        if let Some(o) = earlier.first().filter(|o| o.seq != s.seq) {
            return err(
                field("seq"),
                format!(
                    "{:?} differs from the lengths of the {} series of the same kernel, mask and head dim ({:?}): two passes combine length by length",
                    s.seq, o.pass, o.seq
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
    }
    // Each group's forward and backward as the time model derives them, checked once its last
    // series has been read (named by that series).
    for (i, s) in series.iter().enumerate() {
        if series[i + 1..].iter().any(|o| o.same_group(s)) {
            continue;
        }
        let group: Vec<&AttentionSeries> =
            series[..=i].iter().filter(|o| o.same_group(s)).collect();
        let Some(split) = split(&s.kernel) else {
            continue; // reported above
        };
        let passes: Vec<&str> = group.iter().map(|o| o.pass.as_str()).collect();
        for (j, (f, b)) in resolve(&group, split)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let ok = |x: f64| x.is_finite() && x > 0.0 && x <= peak_tflops;
            if !(ok(f) && ok(b)) {
                return err(
                    format!("attention_table[{i}].tflops[{j}]"),
                    format!(
                        "value {}: the {} series of {} {} head dim {} give forward {f:.1} and backward {b:.1} TFLOP/s at length {}, not both positive and at most the peak {peak_tflops}",
                        s.tflops[j],
                        passes.join(" and "),
                        s.kernel,
                        mask(s.causal),
                        s.head_dim,
                        s.seq[j]
                    ),
                );
            }
        }
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
