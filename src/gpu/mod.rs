//! `roofline bench`: microbenchmarks that measure the ceilings the model uses (memory bandwidth,
//! tensor-core and fp32 FLOP/s, attention and normalization kernels, cuBLAS) on the GPU at hand.
//!
//! Kernels live in `kernels/*.cu`, are embedded in the binary and compiled at run time by NVRTC
//! for the device's architecture (sm_90a on Hopper). Every kernel is checked against a host
//! reference on fresh pseudo-random inputs with a NaN-poisoned output before it is timed; a
//! failed check is reported (`correct = false`) and its timing is not valid. Times are the median
//! of many CUDA-event-timed runs after warm-up, with inputs rotated among several buffers so that
//! the L2 cache does not serve repeated runs.
//!
//! Without a GPU nothing here runs: `run` returns `GpuError::NoDriver`. The CPU-side pieces
//! (references, statistics, report) are unit-tested, and tests/kernels_compile.rs compiles every
//! kernel with NVRTC when libnvrtc is available.

mod attention;
mod context;
mod driver;
mod error;
mod gemm;
mod memory;
mod norm;
pub mod nvrtc;
pub mod reference;
pub mod report;
pub mod stats;

use std::path::PathBuf;
use std::str::FromStr;

pub use error::GpuError;
pub use report::{format_table, BenchReport, BenchResult, DeviceInfo};

/// A group of benchmarks, selected with `--suite memory,gemm,attention,norm,cublas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// copy, scale, triad, reduce, and cuMemcpyDtoD as the baseline.
    Memory,
    /// bf16 GEMM (mma.sync, and the two wgmma kernels on sm_90, measured after every other suite) over the
    /// square sweep and the given shapes, and the fp32 FMA peak.
    Gemm,
    /// Naive three-step and fused attention forward at batch 64, 12 heads, seq 512, head dim 64.
    Attention,
    /// RMSNorm and adaLN modulate over [64*512, 768] bf16.
    Norm,
    /// cuBLAS GemmEx (bf16 in, fp32 compute) on the GEMM shapes.
    Cublas,
}

impl Suite {
    pub const ALL: [Suite; 5] = [
        Suite::Memory,
        Suite::Gemm,
        Suite::Attention,
        Suite::Norm,
        Suite::Cublas,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Suite::Memory => "memory",
            Suite::Gemm => "gemm",
            Suite::Attention => "attention",
            Suite::Norm => "norm",
            Suite::Cublas => "cublas",
        }
    }

    /// Parses a comma-separated list such as "memory,gemm,attention,norm,cublas" (or "all").
    pub fn parse_list(list: &str) -> Result<Vec<Suite>, String> {
        let mut suites = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("all") {
                suites.extend(Suite::ALL);
            } else {
                suites.push(item.parse()?);
            }
        }
        suites.dedup();
        Ok(suites)
    }
}

impl FromStr for Suite {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Suite::ALL
            .into_iter()
            .find(|suite| suite.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown suite {s:?}: expected one of memory, gemm, attention, norm, cublas"
                )
            })
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A GEMM `C[M,N] = A[M,K] * B[N,K]^T` to measure (B stored like an nn.Linear weight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GemmShape {
    pub name: String,
    pub m: u64,
    pub n: u64,
    pub k: u64,
}

impl GemmShape {
    pub fn new(name: &str, m: u64, n: u64, k: u64) -> Self {
        GemmShape {
            name: name.to_string(),
            m,
            n,
            k,
        }
    }

    /// FLOPs of one GEMM: 2MNK (a multiply-add is 2 FLOPs).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// Fewest device-memory bytes: A and B read once, C written once, bf16: 2(MK + NK + MN).
    pub fn bytes(&self) -> f64 {
        2.0 * (self.m * self.k + self.n * self.k + self.m * self.n) as f64
    }
}

/// Every distinct GEMM shape of a model's training step (forward, data grad, weight grad), from
/// the op graph.
pub fn model_gemm_shapes(
    model: &crate::spec::ModelSpec,
    batch: u64,
) -> Result<Vec<GemmShape>, crate::error::Error> {
    let step = crate::graph::StepConfig {
        batch,
        ..crate::graph::StepConfig::default()
    };
    let mut ops = Vec::new();
    crate::graph::build_step(model, &step, &mut ops)?;
    Ok(crate::graph::gemm_shapes(&ops)
        .into_iter()
        .map(|(name, m, n, k)| GemmShape::new(&format!("{} b{batch}:{name}", model.name), m, n, k))
        .collect())
}

/// Peak rates of the device (from its spec file), to report `fraction_of_peak`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peaks {
    pub bf16_tensor_flops: f64,
    pub fp32_vector_flops: f64,
    pub hbm_bytes_per_s: f64,
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub suites: Vec<Suite>,
    /// GEMM shapes measured in addition to the square sweep 1024..8192.
    pub gemm_shapes: Vec<GemmShape>,
    /// Timed repetitions per kernel and size (after warm-up).
    pub reps: u32,
    /// Where to write the JSON report (rewritten after each suite, so a cut-off run keeps what
    /// it measured).
    pub out: Option<PathBuf>,
    pub peaks: Option<Peaks>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            suites: Suite::ALL.to_vec(),
            gemm_shapes: Vec::new(),
            reps: 50,
            out: None,
            peaks: None,
        }
    }
}

/// Runs the selected suites on device 0 and returns the report (also written to `opts.out`).
/// Progress goes to stderr; render `format_table` for the summary. A kernel that fails its check or
/// hits a CUDA error is recorded and the run continues; only a missing driver, NVRTC or device
/// (or an error before any kernel runs) is returned as `Err`.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, GpuError> {
    let gpu = driver::Gpu::open()?;
    let mut bench = context::Bench::new(&gpu, opts)?;
    for suite in Suite::ALL.into_iter().filter(|s| opts.suites.contains(s)) {
        eprintln!("== suite {suite}");
        match suite {
            Suite::Memory => memory::run(&mut bench),
            Suite::Gemm => gemm::run(&mut bench, gemm::Pass::MmaSync),
            Suite::Attention => attention::run(&mut bench),
            Suite::Norm => norm::run(&mut bench),
            Suite::Cublas => gemm::run(&mut bench, gemm::Pass::Cublas),
        }
        bench.write_report()?;
    }
    if opts.suites.contains(&Suite::Gemm) {
        eprintln!("== suite gemm (wgmma, run last)");
        gemm::run(&mut bench, gemm::Pass::Wgmma);
        bench.write_report()?;
        eprintln!("== suite gemm (wgmma v2: TMA, warp-specialized, persistent; run last)");
        gemm::run(&mut bench, gemm::Pass::WgmmaV2);
        bench.write_report()?;
    }
    Ok(bench.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_parse_from_a_list() {
        let s = Suite::parse_list("memory,gemm,attention,norm,cublas").unwrap();
        assert_eq!(s, Suite::ALL.to_vec());
        assert_eq!(Suite::parse_list("GEMM").unwrap(), vec![Suite::Gemm]);
        assert_eq!(Suite::parse_list("all").unwrap().len(), 5);
        assert!(Suite::parse_list("gemm,tpu").is_err());
    }

    #[test]
    fn gemm_counts() {
        let g = GemmShape::new("t", 2, 3, 4);
        assert_eq!(g.flops(), 48.0);
        assert_eq!(g.bytes(), 2.0 * (8 + 12 + 6) as f64);
        let jit = crate::spec::load_model("jit-b4").unwrap();
        let shapes = model_gemm_shapes(&jit, 64).unwrap();
        assert!(shapes.iter().all(|s| s.k % 8 == 0 && s.n % 8 == 0));
        assert!(shapes.iter().any(|s| (s.m, s.n, s.k) == (64, 4608, 768)));
    }

    #[test]
    fn missing_driver_is_an_error_not_a_panic() {
        if unsafe { cudarc::driver::sys::is_culib_present() } {
            return;
        }
        let err = run(&BenchOptions::default()).unwrap_err();
        assert!(matches!(err, GpuError::NoDriver));
        assert!(err.to_string().contains("no CUDA driver"));
    }
}
