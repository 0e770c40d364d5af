//! GPU specs (models/hardware/*.toml). Every number is a [`Sourced`] value: the value, where it
//! comes from, and optionally a `[low, high]` range for uncertainty propagation.

use crate::error::{Error, Result};
use crate::spec::attention_table::{self, AttentionSeries};
use crate::spec::gemm_table::GemmTable;
use crate::spec::toml_error::{toml_error_field, toml_error_problem};
use crate::units::{ByteRate, Bytes, FlopRate, Seconds};
use serde::{Deserialize, Serialize};

/// A number with its source and an optional uncertainty range.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sourced {
    /// The value in SI base units.
    pub value: f64,
    /// Datasheet, paper, or measurement (with date), or "assumption: ..." with the reasoning.
    pub source: String,
    /// Plausible `[low, high]` interval; defaults to the value itself.
    pub range: Option<[f64; 2]>,
}

impl Sourced {
    /// The `[low, high]` range (the value twice when none is given).
    pub fn bounds(&self) -> [f64; 2] {
        self.range.unwrap_or([self.value, self.value])
    }
}

/// Multiprocessor count and clock.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    /// Streaming multiprocessors (compute units on AMD).
    pub sm_count: Sourced,
    /// Boost clock in Hz (informational: the peaks below already include it).
    pub clock_hz: Sourced,
}

/// Dense peak rates per unit and dtype (FLOP/s). A missing entry means the GPU lacks that path.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeakFlops {
    /// bf16 tensor-core (matrix-core) rate.
    pub bf16_tensor: Sourced,
    /// fp16 tensor-core rate (informational: the precisions modelled use bf16).
    pub fp16_tensor: Option<Sourced>,
    /// fp8 tensor-core rate.
    pub fp8_tensor: Option<Sourced>,
    /// tf32 tensor-core rate.
    pub tf32_tensor: Option<Sourced>,
    /// fp32 non-tensor (vector/SIMT) rate.
    pub fp32_vector: Sourced,
}

/// Achievable fractions of the peaks above (measured where possible).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Achievable {
    /// Fraction of the bf16 tensor peak a large, well-shaped GEMM reaches.
    pub bf16_tensor: Sourced,
    /// fp16 tensor fraction.
    pub fp16_tensor: Option<Sourced>,
    /// fp8 tensor fraction.
    pub fp8_tensor: Option<Sourced>,
    /// tf32 tensor fraction.
    pub tf32_tensor: Option<Sourced>,
    /// fp32 vector fraction.
    pub fp32_vector: Sourced,
    /// Fraction of HBM bandwidth a streaming copy reaches (bytes read + written).
    pub hbm: Sourced,
    /// Fraction of HBM bandwidth eager framework pointwise kernels reach (broadcasts, casts and
    /// reductions through PyTorch's TensorIterator); defaults to `hbm` when absent.
    pub eager_elementwise: Option<Sourced>,
    /// Ceiling of an eager GEMM with a leading dimension that is not a multiple of 16 bytes
    /// (cuBLAS's alignment-1 kernels), as a fraction of the dense peak; defaults to
    /// [`crate::time::efficiency::MISALIGNED_CEILING`] (measured on an H100) when absent.
    pub misaligned_gemm: Option<Sourced>,
}

/// Memory system.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Memory technology as the datasheet names it (HBM3e, GDDR6...), informational; the
    /// `hbm_bandwidth` source states it.
    pub technology: Option<String>,
    /// HBM (or GDDR) bandwidth in B/s.
    pub hbm_bandwidth: Sourced,
    /// Capacity in bytes.
    pub hbm_capacity: Sourced,
    /// L2 (or last-level cache) size in bytes.
    pub l2_bytes: Sourced,
    /// L2 bandwidth in B/s (for reads served from L2).
    pub l2_bandwidth: Sourced,
}

/// Kernel launch and dispatch costs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    /// GPU-side gap between back-to-back kernels, seconds.
    pub kernel_launch_s: Sourced,
    /// CPU time an eager framework spends dispatching one op, seconds.
    pub host_dispatch_s: Sourced,
    /// Per-kernel gap inside a replayed CUDA graph, seconds.
    pub graph_launch_s: Sourced,
}

/// Links between GPUs of one node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Interconnect {
    /// Per-GPU, per-direction intra-node link bandwidth (B/s; informational: collectives use the
    /// measured bus bandwidth below, which already reflects the links).
    pub intra_node_bandwidth: Sourced,
    /// Measured (or estimated) all-reduce bus bandwidth within a full node (B/s), nccl-tests
    /// definition: busbw = algbw * 2(n-1)/n.
    pub allreduce_bus_bandwidth: Sourced,
    /// The same with NVLink SHARP (NVLS: reductions in the NVSwitch), where the hardware has it
    /// and a measurement exists; used with `--nvls`.
    pub allreduce_bus_bandwidth_nvls: Option<Sourced>,
    /// Fixed latency of one all-reduce call (s).
    pub allreduce_latency_s: Sourced,
    /// Host-to-device bandwidth per GPU and direction (B/s; PCIe), for data-loading checks.
    pub host_bandwidth: Option<Sourced>,
}

/// Fused attention kernels' efficiency on this GPU: fraction of the bf16 tensor peak reached
/// at `seq_ref` tokens with head dim 64, forward and backward separately (FlashAttention's FLOP
/// convention). Optional: a GPU without an entry cannot run that implementation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionKernels {
    /// Sequence length at which the fractions below were measured.
    pub seq_ref: Sourced,
    /// Sequence length at which a fused kernel reaches half of its long-sequence rate:
    /// rate(s) = rate_inf * s / (s + seq_half).
    pub seq_half: Sourced,
    /// FlashAttention (v1 generation) forward fraction at `seq_ref`.
    pub flash1_fwd: Option<Sourced>,
    /// FlashAttention (v1 generation) backward fraction at `seq_ref`.
    pub flash1_bwd: Option<Sourced>,
    /// FlashAttention-2 forward fraction at `seq_ref`.
    pub flash2_fwd: Option<Sourced>,
    /// FlashAttention-2 backward fraction at `seq_ref`.
    pub flash2_bwd: Option<Sourced>,
    /// FlashAttention-3 forward fraction at `seq_ref`.
    pub flash3_fwd: Option<Sourced>,
    /// FlashAttention-3 backward fraction at `seq_ref`.
    pub flash3_bwd: Option<Sourced>,
    /// Causal kernels' rate relative to non-causal ones at the same length (counting the
    /// executed half of the scores); absent = 1, causal as efficient as non-causal.
    pub causal_factor: Option<Sourced>,
    /// The highest fraction of the dense bf16 peak FlashAttention-2 is published or measured
    /// to reach on this GPU (any length, head dimension, direction): the long-sequence growth of
    /// the rate stops there. Absent: the GEMM ceiling `achievable.bf16_tensor`.
    pub flash2_max: Option<Sourced>,
    /// The same for FlashAttention-3.
    pub flash3_max: Option<Sourced>,
}

impl AttentionKernels {
    /// (forward, backward, highest) fractions of the bf16 peak of fused kernel `kernel`
    /// (`flash1`, `flash2` or `flash3`), when the file gives its forward and backward.
    pub fn kernel_fractions(&self, kernel: &str) -> Option<(f64, f64, Option<f64>)> {
        let (f, b, max) = match kernel {
            "flash1" => (&self.flash1_fwd, &self.flash1_bwd, &None),
            "flash2" => (&self.flash2_fwd, &self.flash2_bwd, &self.flash2_max),
            "flash3" => (&self.flash3_fwd, &self.flash3_bwd, &self.flash3_max),
            _ => return None,
        };
        Some((
            f.as_ref()?.value,
            b.as_ref()?.value,
            max.as_ref().map(|m| m.value),
        ))
    }
}

/// Default price: one row of a price table that is coherent across the GPU files (the same
/// provider, date, terms and instance size wherever that provider offers the GPU), so that a
/// comparison between GPUs compares GPUs and not offers. `usd_per_gpu_hour.range` spans the
/// other public offers and carries into cost intervals.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// US dollars per GPU-hour, with the range of other offers.
    pub usd_per_gpu_hour: Sourced,
    /// Who sells it at `usd_per_gpu_hour.value`.
    pub provider: String,
    /// When that list price was read (YYYY-MM-DD).
    pub date: String,
    /// On-demand or committed (reserved) pricing.
    pub terms: PriceTerms,
    /// GPUs in the instance the price is for (8 for an HGX node).
    pub instance_gpus: u32,
}

/// The terms of a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriceTerms {
    /// Pay per hour, no commitment.
    OnDemand,
    /// Reserved capacity for a term.
    Committed,
}

impl std::fmt::Display for PriceTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PriceTerms::OnDemand => "on-demand",
            PriceTerms::Committed => "committed",
        })
    }
}

impl Price {
    /// One line: "$6.31/GPU-hour, CoreWeave on-demand, 8-GPU instance, 2026-09-20".
    pub fn describe(&self) -> String {
        format!(
            "${:.2}/GPU-hour, {} {}, {}-GPU instance, {}",
            self.usd_per_gpu_hour.value, self.provider, self.terms, self.instance_gpus, self.date
        )
    }
}

/// A whole GPU spec file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Short name used on the command line.
    pub name: String,
    /// Other names `--gpu` accepts for this GPU (case-insensitive), e.g. "a100".
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Full product name.
    pub display_name: String,
    /// Vendor.
    pub vendor: String,
    /// Microarchitecture.
    pub architecture: String,
    /// SMs and clock.
    pub compute: Compute,
    /// Dense peaks.
    pub peak_flops: PeakFlops,
    /// Achievable fractions.
    pub achievable: Achievable,
    /// Memory system.
    pub memory: Memory,
    /// Launch costs.
    pub launch: Launch,
    /// Intra-node links.
    pub interconnect: Interconnect,
    /// Fused attention efficiency.
    pub attention: Option<AttentionKernels>,
    /// Default price.
    pub price: Option<Price>,
    /// Measured GEMM throughput by shape (optional; see [`GemmTable`]).
    pub gemm_table: Option<GemmTable>,
    /// Published or measured fused-attention throughput by sequence length (optional; see
    /// [`crate::spec::attention_table`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attention_table: Vec<AttentionSeries>,
}

impl GpuSpec {
    /// Parses and validates a spec; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self> {
        let spec: GpuSpec = toml::from_str(text)
            .map_err(|e| Error::spec(file, toml_error_field(&e, text), toml_error_problem(&e)))?;
        spec.validate(file)?;
        Ok(spec)
    }

    /// HBM bandwidth (datasheet).
    pub fn hbm_bandwidth(&self) -> ByteRate {
        ByteRate(self.memory.hbm_bandwidth.value)
    }

    /// HBM capacity.
    pub fn hbm_capacity(&self) -> Bytes {
        Bytes(self.memory.hbm_capacity.value)
    }

    /// Kernel launch gap.
    pub fn kernel_launch(&self) -> Seconds {
        Seconds(self.launch.kernel_launch_s.value)
    }

    /// Dense tensor peak of a dtype by name (bf16, fp16, fp8, tf32), as the time model reads
    /// it: fp16 runs at the bf16 figures (see `crate::graph::Dtype::Fp16`).
    pub fn tensor_peak(&self, dtype: &str) -> Option<&Sourced> {
        let p = &self.peak_flops;
        match dtype {
            "bf16" | "fp16" => Some(&p.bf16_tensor),
            "fp8" => p.fp8_tensor.as_ref(),
            "tf32" => p.tf32_tensor.as_ref(),
            _ => None,
        }
    }

    /// Dense peak of the bf16 tensor path.
    pub fn bf16_peak(&self) -> FlopRate {
        FlopRate(self.peak_flops.bf16_tensor.value)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let c = &self.compute;
        let p = &self.peak_flops;
        let a = &self.achievable;
        let m = &self.memory;
        let l = &self.launch;
        let i = &self.interconnect;
        let t = self.attention.as_ref();
        let fields: [(&str, Option<&Sourced>); 39] = [
            ("compute.sm_count", Some(&c.sm_count)),
            ("compute.clock_hz", Some(&c.clock_hz)),
            ("peak_flops.bf16_tensor", Some(&p.bf16_tensor)),
            ("peak_flops.fp16_tensor", p.fp16_tensor.as_ref()),
            ("peak_flops.fp8_tensor", p.fp8_tensor.as_ref()),
            ("peak_flops.tf32_tensor", p.tf32_tensor.as_ref()),
            ("peak_flops.fp32_vector", Some(&p.fp32_vector)),
            ("achievable.bf16_tensor", Some(&a.bf16_tensor)),
            ("achievable.fp16_tensor", a.fp16_tensor.as_ref()),
            ("achievable.fp8_tensor", a.fp8_tensor.as_ref()),
            ("achievable.tf32_tensor", a.tf32_tensor.as_ref()),
            ("achievable.fp32_vector", Some(&a.fp32_vector)),
            ("achievable.hbm", Some(&a.hbm)),
            ("achievable.eager_elementwise", a.eager_elementwise.as_ref()),
            ("achievable.misaligned_gemm", a.misaligned_gemm.as_ref()),
            ("memory.hbm_bandwidth", Some(&m.hbm_bandwidth)),
            ("memory.hbm_capacity", Some(&m.hbm_capacity)),
            ("memory.l2_bytes", Some(&m.l2_bytes)),
            ("memory.l2_bandwidth", Some(&m.l2_bandwidth)),
            ("launch.kernel_launch_s", Some(&l.kernel_launch_s)),
            ("launch.host_dispatch_s", Some(&l.host_dispatch_s)),
            ("launch.graph_launch_s", Some(&l.graph_launch_s)),
            (
                "interconnect.intra_node_bandwidth",
                Some(&i.intra_node_bandwidth),
            ),
            (
                "interconnect.allreduce_bus_bandwidth",
                Some(&i.allreduce_bus_bandwidth),
            ),
            (
                "interconnect.allreduce_bus_bandwidth_nvls",
                i.allreduce_bus_bandwidth_nvls.as_ref(),
            ),
            (
                "interconnect.allreduce_latency_s",
                Some(&i.allreduce_latency_s),
            ),
            ("interconnect.host_bandwidth", i.host_bandwidth.as_ref()),
            ("attention.seq_ref", t.map(|t| &t.seq_ref)),
            ("attention.seq_half", t.map(|t| &t.seq_half)),
            (
                "attention.flash1_fwd",
                t.and_then(|t| t.flash1_fwd.as_ref()),
            ),
            (
                "attention.flash1_bwd",
                t.and_then(|t| t.flash1_bwd.as_ref()),
            ),
            (
                "attention.flash2_fwd",
                t.and_then(|t| t.flash2_fwd.as_ref()),
            ),
            (
                "attention.flash2_bwd",
                t.and_then(|t| t.flash2_bwd.as_ref()),
            ),
            (
                "attention.flash3_fwd",
                t.and_then(|t| t.flash3_fwd.as_ref()),
            ),
            (
                "attention.flash3_bwd",
                t.and_then(|t| t.flash3_bwd.as_ref()),
            ),
            (
                "attention.causal_factor",
                t.and_then(|t| t.causal_factor.as_ref()),
            ),
            (
                "attention.flash2_max",
                t.and_then(|t| t.flash2_max.as_ref()),
            ),
            (
                "attention.flash3_max",
                t.and_then(|t| t.flash3_max.as_ref()),
            ),
            (
                "price.usd_per_gpu_hour",
                self.price.as_ref().map(|p| &p.usd_per_gpu_hour),
            ),
        ];
        for (field, v) in fields {
            if let Some(v) = v {
                check_sourced(file, field, v, bounds(field))?;
            }
        }
        if let Some(p) = &self.price {
            p.check(file)?;
        }
        if let Some(t) = &self.gemm_table {
            t.check(file, |dtype| self.tensor_peak(dtype).map(|s| s.value))?;
        }
        if !self.attention_table.is_empty() {
            let att = self.attention.as_ref();
            let peak = self.peak_flops.bf16_tensor.value;
            attention_table::check(&self.attention_table, file, peak / 1e12, |kernel| {
                let (f, b, max) = att?.kernel_fractions(kernel)?;
                Some(attention_table::Split {
                    k: b / f,
                    fwd_max: max.map_or(f64::INFINITY, |m| m * peak / 1e12),
                })
            })?;
        }
        Ok(())
    }
}

impl Price {
    /// The provider is named, the date is YYYY-MM-DD and the instance has GPUs.
    fn check(&self, file: &str) -> Result<()> {
        if self.provider.trim().is_empty() {
            return Err(Error::spec(
                file,
                "price.provider",
                "must name who sells the GPU-hour",
            ));
        }
        let d = self.date.as_bytes();
        let digits = |r: std::ops::Range<usize>| d[r].iter().all(u8::is_ascii_digit);
        if d.len() != 10
            || d[4] != b'-'
            || d[7] != b'-'
            || !digits(0..4)
            || !digits(5..7)
            || !digits(8..10)
        {
            return Err(Error::spec(
                file,
                "price.date",
                format!("'{}' is not a date as YYYY-MM-DD", self.date),
            ));
        }
        if self.instance_gpus == 0 || self.instance_gpus > 1024 {
            return Err(Error::spec(
                file,
                "price.instance_gpus",
                format!("{} is out of range (1 to 1024)", self.instance_gpus),
            ));
        }
        Ok(())
    }
}

/// A physical range a spec value must lie in, and why.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Smallest plausible value.
    pub low: f64,
    /// Largest plausible value.
    pub high: f64,
    /// The reason, in words, printed with a value out of bounds.
    pub why: &'static str,
}

/// The physical bounds of a GPU-file or calibration field (dotted GPU-file name, or
/// `gemm_k0`). They reject typos and absurd values before any arithmetic sees them, and keep
/// every product and quotient of the time model finite.
pub fn bounds(field: &str) -> Bound {
    let b = |low, high, why| Bound { low, high, why };
    let (_, key) = field.rsplit_once('.').unwrap_or(("", field));
    match field {
        "compute.sm_count" => b(1.0, 4096.0, "GPUs have between one and a few thousand SMs"),
        "compute.clock_hz" => b(1e8, 1e10, "clocks lie between 100 MHz and 10 GHz"),
        _ if field.starts_with("peak_flops.") => b(
            1e9,
            1e18,
            "a GPU's peak lies between 1 GFLOP/s and 1 EFLOP/s",
        ),
        _ if field.starts_with("achievable.")
            || key.starts_with("flash")
            || key == "causal_factor" =>
        {
            b(
                1e-3,
                1.0,
                "a fraction of a peak lies in (0, 1]; below 0.1% is a typo",
            )
        }
        "memory.hbm_bandwidth" | "memory.l2_bandwidth" => {
            b(1e9, 1e15, "memory bandwidths lie between 1 GB/s and 1 PB/s")
        }
        "memory.hbm_capacity" => b(1e8, 1e14, "GPU memory lies between 100 MB and 100 TB"),
        "memory.l2_bytes" => b(1e4, 1e10, "caches lie between 10 KB and 10 GB"),
        "launch.kernel_launch_s" | "launch.host_dispatch_s" | "launch.graph_launch_s" => b(
            1e-8,
            1e-2,
            "a kernel launch or dispatch takes between 10 ns and 10 ms",
        ),
        "interconnect.intra_node_bandwidth"
        | "interconnect.allreduce_bus_bandwidth"
        | "interconnect.allreduce_bus_bandwidth_nvls"
        | "interconnect.host_bandwidth" => {
            b(1e8, 1e14, "links carry between 100 MB/s and 100 TB/s")
        }
        "interconnect.allreduce_latency_s" => b(
            1e-7,
            1.0,
            "a collective's latency lies between 100 ns and 1 s",
        ),
        "attention.seq_ref" | "attention.seq_half" => {
            b(1.0, 1e8, "sequence lengths lie between 1 and 1e8 tokens")
        }
        "price.usd_per_gpu_hour" => b(1e-3, 1e4, "a GPU-hour costs between $0.001 and $10,000"),
        "gemm_k0" => b(
            0.1,
            1e5,
            "the small-K constant is a few to a few hundred K steps",
        ),
        _ => b(f64::MIN_POSITIVE, f64::MAX, "a positive finite number"),
    }
}

/// Checks one sourced value: a finite value within `bound`, a non-empty source, and a range
/// that brackets the value and stays within the bound too.
pub(crate) fn check_sourced(file: &str, field: &str, v: &Sourced, bound: Bound) -> Result<()> {
    let within = |x: f64| x.is_finite() && x >= bound.low && x <= bound.high;
    let limits = || {
        format!(
            "[{}, {}]: {}",
            crate::units::si(bound.low).trim_end(),
            crate::units::si(bound.high).trim_end(),
            bound.why
        )
    };
    if !within(v.value) {
        return Err(Error::spec(
            file,
            field,
            format!("value {} is outside {}", v.value, limits()),
        ));
    }
    if v.source.trim().is_empty() {
        return Err(Error::spec(
            file,
            field,
            "every number needs a non-empty `source`",
        ));
    }
    if let Some([lo, hi]) = v.range {
        if !(within(lo) && within(hi) && lo <= v.value && v.value <= hi) {
            return Err(Error::spec(
                file,
                field,
                format!(
                    "range [{lo}, {hi}] must contain the value {} and stay within {}",
                    v.value,
                    limits()
                ),
            ));
        }
    }
    Ok(())
}
