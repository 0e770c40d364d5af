//! Calibration files (models/calibration/*.toml, written by `roofline calibrate`): measured
//! values that override the GPU file's. Any field present overrides; the rest keep the GPU
//! file's value.

use crate::error::{Error, Result};
use crate::spec::hardware::{check_sourced, Sourced};
use crate::spec::toml_error::{toml_error_field, toml_error_problem};
use crate::spec::GpuSpec;
use serde::{Deserialize, Serialize};
use std::path::Path;

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
