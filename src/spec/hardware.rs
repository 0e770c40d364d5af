//! GPU specs (models/hardware/*.toml). Every number is a [`Sourced`] value: the value, where it
//! comes from, and optionally a `[low, high]` range for uncertainty propagation.

use crate::error::{Error, Result};
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
}

/// Default price.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// US dollars per GPU-hour.
    pub usd_per_gpu_hour: Sourced,
}

/// A whole GPU spec file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Short name used on the command line.
    pub name: String,
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

    /// Dense peak of the bf16 tensor path.
    pub fn bf16_peak(&self) -> FlopRate {
        FlopRate(self.peak_flops.bf16_tensor.value)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let mut checks: Vec<(&str, &Sourced, bool)> = vec![
            ("compute.sm_count", &self.compute.sm_count, false),
            ("compute.clock_hz", &self.compute.clock_hz, false),
            (
                "peak_flops.bf16_tensor",
                &self.peak_flops.bf16_tensor,
                false,
            ),
            (
                "peak_flops.fp32_vector",
                &self.peak_flops.fp32_vector,
                false,
            ),
            ("achievable.bf16_tensor", &self.achievable.bf16_tensor, true),
            ("achievable.fp32_vector", &self.achievable.fp32_vector, true),
            ("achievable.hbm", &self.achievable.hbm, true),
            ("memory.hbm_bandwidth", &self.memory.hbm_bandwidth, false),
            ("memory.hbm_capacity", &self.memory.hbm_capacity, false),
            ("memory.l2_bytes", &self.memory.l2_bytes, false),
            ("memory.l2_bandwidth", &self.memory.l2_bandwidth, false),
            (
                "launch.kernel_launch_s",
                &self.launch.kernel_launch_s,
                false,
            ),
            (
                "launch.host_dispatch_s",
                &self.launch.host_dispatch_s,
                false,
            ),
            ("launch.graph_launch_s", &self.launch.graph_launch_s, false),
            (
                "interconnect.intra_node_bandwidth",
                &self.interconnect.intra_node_bandwidth,
                false,
            ),
            (
                "interconnect.allreduce_bus_bandwidth",
                &self.interconnect.allreduce_bus_bandwidth,
                false,
            ),
            (
                "interconnect.allreduce_latency_s",
                &self.interconnect.allreduce_latency_s,
                false,
            ),
        ];
        let optional = [
            (
                "peak_flops.fp16_tensor",
                &self.peak_flops.fp16_tensor,
                false,
            ),
            ("peak_flops.fp8_tensor", &self.peak_flops.fp8_tensor, false),
            (
                "peak_flops.tf32_tensor",
                &self.peak_flops.tf32_tensor,
                false,
            ),
            (
                "interconnect.host_bandwidth",
                &self.interconnect.host_bandwidth,
                false,
            ),
            ("achievable.fp16_tensor", &self.achievable.fp16_tensor, true),
            ("achievable.fp8_tensor", &self.achievable.fp8_tensor, true),
            ("achievable.tf32_tensor", &self.achievable.tf32_tensor, true),
            (
                "achievable.eager_elementwise",
                &self.achievable.eager_elementwise,
                true,
            ),
        ];
        for (field, v, fraction) in optional {
            if let Some(v) = v {
                checks.push((field, v, fraction));
            }
        }
        if let Some(a) = &self.attention {
            checks.push(("attention.seq_ref", &a.seq_ref, false));
            checks.push(("attention.seq_half", &a.seq_half, false));
            for (field, v) in [
                ("attention.flash2_fwd", &a.flash2_fwd),
                ("attention.flash2_bwd", &a.flash2_bwd),
                ("attention.flash3_fwd", &a.flash3_fwd),
                ("attention.flash3_bwd", &a.flash3_bwd),
                ("attention.causal_factor", &a.causal_factor),
            ] {
                if let Some(v) = v {
                    checks.push((field, v, true));
                }
            }
        }
        if let Some(p) = &self.price {
            checks.push(("price.usd_per_gpu_hour", &p.usd_per_gpu_hour, false));
        }
        for (field, v, fraction) in checks {
            check_sourced(file, field, v, fraction)?;
        }
        Ok(())
    }
}

/// Checks one sourced value: finite and positive, at most 1 for fractions, a non-empty source,
/// and a range that brackets the value.
pub(crate) fn check_sourced(file: &str, field: &str, v: &Sourced, fraction: bool) -> Result<()> {
    if !v.value.is_finite() || v.value <= 0.0 {
        return Err(Error::spec(
            file,
            field,
            format!("value {} must be a positive finite number", v.value),
        ));
    }
    if fraction && v.value > 1.0 {
        return Err(Error::spec(
            file,
            field,
            format!("fraction {} must be in (0, 1]", v.value),
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
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= v.value && v.value <= hi) {
            return Err(Error::spec(
                file,
                field,
                format!(
                    "range [{lo}, {hi}] must be positive and contain the value {}",
                    v.value
                ),
            ));
        }
        if fraction && hi > 1.0 {
            return Err(Error::spec(
                file,
                field,
                format!("range [{lo}, {hi}] of a fraction must stay within (0, 1]"),
            ));
        }
    }
    Ok(())
}
