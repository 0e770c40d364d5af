//! The hardware figures of the time model, listed once. Each says where it lives in a GPU file,
//! which calibration field overrides it, and how to read it from and write it into a
//! [`Machine`]; its physical bounds are [`crate::spec::hardware::bounds`] of its name.
//! Calibration files ([`super::calibration`]), sensitivity and uncertainty
//! analyses, and the sources printed beside an estimate's assumptions all go through this list:
//! a new hardware figure is one field in the GPU file, one in [`Machine`], and one entry here.

use super::calibration::Calibration;
use super::machine::{FlashEfficiency, Machine};
use crate::spec::{GpuSpec, Sourced};
use crate::units::{ByteRate, Bytes, Seconds};

/// One number the time model reads.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// Dotted field of the GPU file (a descriptive name for a figure no file holds).
    pub name: &'static str,
    /// Field of a calibration file that overrides it.
    pub calibration: Option<&'static str>,
    /// Relative spread that sensitivity analysis moves it over when no file gives a range;
    /// `None` for figures that are not varied.
    pub spread: Option<f64>,
    /// Its entry in a GPU file.
    pub in_gpu: fn(&GpuSpec) -> Option<&Sourced>,
    /// Whether the time model uses it for this GPU (an fp8 fraction needs an fp8 peak).
    pub used: fn(&GpuSpec, &Machine) -> bool,
    /// Its value in a machine (in SI base units).
    pub get: fn(&Machine) -> f64,
    /// Sets it in a machine.
    pub set: fn(&mut Machine, f64),
}

/// Relative spread used where a file gives no range (stated assumption): ±20%.
pub const DEFAULT_SPREAD: f64 = 0.20;

impl Figure {
    /// The value's source: the calibration's when it overrides the figure, else the GPU file's.
    pub fn source(&self, gpu: &GpuSpec, cal: Option<&Calibration>) -> Option<String> {
        match self.calibration.and_then(|k| cal.and_then(|c| c.get(k))) {
            Some(c) => Some(format!("calibrated: {}", c.source)),
            None => (self.in_gpu)(gpu).map(|s| s.source.clone()),
        }
    }
}

/// The figure named `name` (a GPU-file field or a calibration field).
pub fn figure(name: &str) -> Option<&'static Figure> {
    FIGURES
        .iter()
        .find(|f| f.name == name || f.calibration == Some(name))
}

fn always(_: &GpuSpec, _: &Machine) -> bool {
    true
}
fn none(_: &GpuSpec) -> Option<&Sourced> {
    None
}
fn attention(g: &GpuSpec) -> Option<&crate::spec::hardware::AttentionKernels> {
    g.attention.as_ref()
}
fn flash_mut(slot: &mut Option<FlashEfficiency>, x: f64) -> &mut FlashEfficiency {
    slot.get_or_insert(FlashEfficiency {
        fwd: x,
        bwd: x,
        max: 1.0,
    })
}

/// Every figure, in the order analyses list them.
pub const FIGURES: &[Figure] = &[
    Figure {
        name: "peak_flops (all dense peaks together)",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: none,
        used: always,
        get: |_| 1.0,
        set: |m, x| {
            m.peak_bf16 = m.peak_bf16 * x;
            m.peak_fp8 = m.peak_fp8 * x;
            m.peak_tf32 = m.peak_tf32 * x;
            m.peak_fp32 = m.peak_fp32 * x;
        },
    },
    Figure {
        name: "achievable.bf16_tensor",
        calibration: Some("bf16_tensor"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.achievable.bf16_tensor),
        used: always,
        get: |m| m.frac_bf16,
        set: |m, x| m.frac_bf16 = x,
    },
    Figure {
        name: "achievable.fp8_tensor",
        calibration: Some("fp8_tensor"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| g.achievable.fp8_tensor.as_ref(),
        used: |_, m| m.peak_fp8.0 > 0.0,
        get: |m| m.frac_fp8,
        set: |m, x| m.frac_fp8 = x,
    },
    Figure {
        name: "achievable.tf32_tensor",
        calibration: Some("tf32_tensor"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| g.achievable.tf32_tensor.as_ref(),
        used: |_, m| m.peak_tf32.0 > 0.0,
        get: |m| m.frac_tf32,
        set: |m, x| m.frac_tf32 = x,
    },
    Figure {
        name: "achievable.fp32_vector",
        calibration: Some("fp32_vector"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.achievable.fp32_vector),
        used: always,
        get: |m| m.frac_fp32,
        set: |m, x| m.frac_fp32 = x,
    },
    Figure {
        name: "achievable.hbm",
        calibration: Some("hbm"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.achievable.hbm),
        used: always,
        get: |m| m.frac_hbm,
        set: |m, x| m.frac_hbm = x,
    },
    Figure {
        name: "achievable.eager_elementwise",
        calibration: Some("eager_elementwise"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| g.achievable.eager_elementwise.as_ref(),
        used: always,
        get: |m| m.frac_eager,
        set: |m, x| m.frac_eager = x,
    },
    Figure {
        name: "achievable.misaligned_gemm",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| g.achievable.misaligned_gemm.as_ref(),
        used: always,
        get: |m| m.frac_misaligned,
        set: |m, x| m.frac_misaligned = x,
    },
    Figure {
        name: "memory.hbm_bandwidth",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.memory.hbm_bandwidth),
        used: always,
        get: |m| m.hbm.0,
        set: |m, x| m.hbm = ByteRate(x),
    },
    Figure {
        name: "memory.l2_bandwidth",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.memory.l2_bandwidth),
        used: always,
        get: |m| m.l2_bw.0,
        set: |m, x| m.l2_bw = ByteRate(x),
    },
    Figure {
        name: "memory.l2_bytes",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.memory.l2_bytes),
        used: always,
        get: |m| m.l2_bytes.0,
        set: |m, x| m.l2_bytes = Bytes(x),
    },
    Figure {
        name: "gemm_k0",
        calibration: Some("gemm_k0"),
        // The GEMM small-K constant is itself an assumption until calibrated: ±50%.
        spread: Some(0.5),
        in_gpu: none,
        used: always,
        get: |m| m.gemm_k0,
        set: |m, x| m.gemm_k0 = x,
    },
    Figure {
        name: "launch.kernel_launch_s",
        calibration: Some("kernel_launch_s"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.launch.kernel_launch_s),
        used: always,
        get: |m| m.kernel_launch.0,
        set: |m, x| m.kernel_launch = Seconds(x),
    },
    Figure {
        name: "launch.host_dispatch_s",
        calibration: Some("host_dispatch_s"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.launch.host_dispatch_s),
        used: always,
        get: |m| m.host_dispatch.0,
        set: |m, x| m.host_dispatch = Seconds(x),
    },
    Figure {
        name: "launch.graph_launch_s",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.launch.graph_launch_s),
        used: always,
        get: |m| m.graph_launch.0,
        set: |m, x| m.graph_launch = Seconds(x),
    },
    Figure {
        name: "interconnect.allreduce_bus_bandwidth",
        calibration: Some("allreduce_bus_bandwidth"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.interconnect.allreduce_bus_bandwidth),
        used: always,
        get: |m| m.allreduce_busbw.0,
        set: |m, x| m.allreduce_busbw = ByteRate(x),
    },
    Figure {
        name: "interconnect.allreduce_latency_s",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| Some(&g.interconnect.allreduce_latency_s),
        used: always,
        get: |m| m.allreduce_latency.0,
        set: |m, x| m.allreduce_latency = Seconds(x),
    },
    Figure {
        name: "attention.seq_half",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| attention(g).map(|a| &a.seq_half),
        used: |g, _| g.attention.is_some(),
        get: |m| m.flash_seq_half,
        set: |m, x| m.flash_seq_half = x,
    },
    Figure {
        name: "attention.flash1_fwd",
        calibration: Some("flash1_fwd"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| attention(g).and_then(|a| a.flash1_fwd.as_ref()),
        used: |_, m| m.flash1.is_some(),
        get: |m| m.flash1.map_or(0.0, |f| f.fwd),
        set: |m, x| flash_mut(&mut m.flash1, x).fwd = x,
    },
    Figure {
        name: "attention.flash1_bwd",
        calibration: Some("flash1_bwd"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| attention(g).and_then(|a| a.flash1_bwd.as_ref()),
        used: |_, m| m.flash1.is_some(),
        get: |m| m.flash1.map_or(0.0, |f| f.bwd),
        set: |m, x| flash_mut(&mut m.flash1, x).bwd = x,
    },
    Figure {
        name: "attention.flash2_fwd",
        calibration: Some("flash2_fwd"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| attention(g).and_then(|a| a.flash2_fwd.as_ref()),
        used: |_, m| m.flash2.is_some(),
        get: |m| m.flash2.map_or(0.0, |f| f.fwd),
        set: |m, x| flash_mut(&mut m.flash2, x).fwd = x,
    },
    Figure {
        name: "attention.flash2_bwd",
        calibration: Some("flash2_bwd"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| attention(g).and_then(|a| a.flash2_bwd.as_ref()),
        used: |_, m| m.flash2.is_some(),
        get: |m| m.flash2.map_or(0.0, |f| f.bwd),
        set: |m, x| flash_mut(&mut m.flash2, x).bwd = x,
    },
    Figure {
        name: "attention.flash3_fwd",
        calibration: Some("flash3_fwd"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| attention(g).and_then(|a| a.flash3_fwd.as_ref()),
        used: |_, m| m.flash3.is_some(),
        get: |m| m.flash3.map_or(0.0, |f| f.fwd),
        set: |m, x| flash_mut(&mut m.flash3, x).fwd = x,
    },
    Figure {
        name: "attention.flash3_bwd",
        calibration: Some("flash3_bwd"),
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| attention(g).and_then(|a| a.flash3_bwd.as_ref()),
        used: |_, m| m.flash3.is_some(),
        get: |m| m.flash3.map_or(0.0, |f| f.bwd),
        set: |m, x| flash_mut(&mut m.flash3, x).bwd = x,
    },
    Figure {
        name: "attention.flash2_max",
        calibration: None,
        spread: None,
        in_gpu: |g| attention(g).and_then(|a| a.flash2_max.as_ref()),
        used: |_, m| m.flash2.is_some(),
        get: |m| m.flash2.map_or(0.0, |f| f.max),
        set: |m, x| flash_mut(&mut m.flash2, x).max = x,
    },
    Figure {
        name: "attention.flash3_max",
        calibration: None,
        spread: None,
        in_gpu: |g| attention(g).and_then(|a| a.flash3_max.as_ref()),
        used: |_, m| m.flash3.is_some(),
        get: |m| m.flash3.map_or(0.0, |f| f.max),
        set: |m, x| flash_mut(&mut m.flash3, x).max = x,
    },
    Figure {
        name: "attention.causal_factor",
        calibration: None,
        spread: Some(DEFAULT_SPREAD),
        in_gpu: |g| attention(g).and_then(|a| a.causal_factor.as_ref()),
        used: |g, _| attention(g).is_some_and(|a| a.causal_factor.is_some()),
        get: |m| m.flash_causal,
        set: |m, x| m.flash_causal = x,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load_gpu;

    #[test]
    fn every_figure_reads_back_what_it_sets() {
        let gpu = load_gpu("h100-sxm").unwrap();
        let base = Machine::new(&gpu, None);
        for f in FIGURES {
            let mut m = base;
            let x = (f.get)(&m) * 0.5 + 0.25;
            (f.set)(&mut m, x);
            if f.name.starts_with("peak_flops") {
                assert_eq!(m.peak_bf16, base.peak_bf16 * x);
            } else {
                assert_eq!((f.get)(&m), x, "{}", f.name);
            }
            if let Some(s) = (f.in_gpu)(&gpu) {
                assert_eq!(s.value, (f.get)(&base), "{}", f.name);
            }
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, f) in FIGURES.iter().enumerate() {
            assert!(FIGURES[..i]
                .iter()
                .all(|g| g.name != f.name
                    && (f.calibration.is_none() || g.calibration != f.calibration)));
        }
    }
}
