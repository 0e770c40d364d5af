//! `roofline calibrate`: fits the time model's parameters to `roofline bench` measurements.
//!
//! - HBM: the streaming kernels (copy, scale, triad) over their size sweep follow
//!   `t = t0 + bytes / (B · f)`, with B the datasheet bandwidth: a weighted linear least-squares
//!   fit (nalgebra SVD; weights 1/t so that residuals are relative) gives the achievable fraction
//!   f and the per-kernel launch latency t0.
//! - GEMM: cuBLAS's times for every measured shape follow the model of
//!   [`crate::time::efficiency`]: `t = max(FLOPs / (P · a · e(M, N, K; k0)), bytes / (B · f)) + t_g`.
//!   For a fixed k0, t_g is the intercept of a weighted linear least-squares fit over the
//!   compute-bound shapes (the same solver as for HBM) and a reproduces the largest GEMM exactly
//!   (a is defined as the fraction a large, well-shaped GEMM reaches); k0 minimizes the
//!   time-weighted squared relative residuals of all shapes, found by a grid over [0, 1024]
//!   refined by golden-section search.
//! - fp32 vector: the FMA-peak kernel's FLOP/s over the datasheet peak.
//!
//! Residuals (predicted vs measured, per kernel and shape) are reported for every fit.

use crate::error::{Error, Result};
use crate::gpu::{BenchReport, BenchResult};
use crate::spec::{GpuSpec, Sourced};
use crate::time::Calibration;
use crate::time::Machine;
use nalgebra::{DMatrix, DVector};
use serde::Serialize;

/// One measured point against the fitted model.
#[derive(Debug, Clone, Serialize)]
pub struct Residual {
    /// Kernel name.
    pub kernel: String,
    /// Shape.
    pub shape: String,
    /// Measured time (s).
    pub measured_s: f64,
    /// Predicted time (s) with the fitted parameters.
    pub predicted_s: f64,
    /// (predicted - measured) / measured.
    pub relative_error: f64,
}

/// Fitted parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Fit {
    /// Achievable fraction of HBM bandwidth.
    pub hbm_fraction: f64,
    /// Latency of a streaming kernel (s): launch plus ramp.
    pub kernel_latency_s: f64,
    /// Achievable fraction of the bf16 tensor peak (cuBLAS).
    pub bf16_fraction: Option<f64>,
    /// GEMM small-K constant.
    pub gemm_k0: Option<f64>,
    /// Fixed time of one GEMM call (launch and cuBLAS set-up), s.
    pub gemm_latency_s: Option<f64>,
    /// Achievable fraction of the fp32 vector peak.
    pub fp32_fraction: Option<f64>,
    /// Achievable fraction of HBM bandwidth of eager PyTorch pointwise ops (from the PyTorch
    /// cross-check): the median over the measured ops.
    pub eager_fraction: Option<f64>,
    /// Host time per eager kernel, s.
    pub host_dispatch_s: Option<f64>,
    /// Where `host_dispatch_s` comes from.
    pub host_dispatch_source: String,
    /// Points used by each fit and their residuals.
    pub residuals: Vec<Residual>,
    /// Measurements left out of the fits, with why.
    pub dropped: Vec<String>,
}

/// Weighted linear least squares `t ≈ t0 + s · x` with relative residuals.
fn fit_line(points: &[(f64, f64)]) -> Result<(f64, f64)> {
    if points.len() < 2 {
        return Err(Error::Invalid(
            "need at least two memory measurements of different sizes to fit bandwidth".into(),
        ));
    }
    let a = DMatrix::from_fn(points.len(), 2, |i, j| {
        if j == 0 {
            1.0 / points[i].1
        } else {
            points[i].0 / points[i].1
        }
    });
    if a.iter().any(|x| !x.is_finite()) {
        return Err(Error::Invalid(
            "a measurement gives a non-finite weight; cannot fit".into(),
        ));
    }
    let b = DVector::from_element(points.len(), 1.0);
    let sol = a
        .svd(true, true)
        .solve(&b, 1e-15)
        .map_err(|e| Error::Invalid(format!("least squares failed: {e}")))?;
    Ok((sol[0], sol[1]))
}

/// Why a measurement cannot be fitted, if it cannot: a failed check, or a time, a FLOP count, a
/// byte count or a rate that no GPU of `gpu`'s kind can produce (a kernel faster than 100 ns, a
/// rate above the datasheet peak or above the L2 bandwidth).
fn implausible(r: &BenchResult, gpu: &GpuSpec) -> Option<String> {
    let finite = |x: f64| x.is_finite() && x >= 0.0;
    if !r.correct || r.error.is_some() {
        return Some("failed its correctness check".into());
    }
    if !(r.time_s.is_finite() && (1e-7..=1e4).contains(&r.time_s)) {
        return Some(format!("time {:?} s is outside [1e-7, 1e4] s", r.time_s));
    }
    if [r.m, r.n, r.k]
        .iter()
        .flatten()
        .any(|d| *d == 0 || *d > 1 << 32)
    {
        return Some(format!(
            "GEMM shape {:?} x {:?} x {:?} has a dimension outside [1, 2^32]",
            r.m, r.n, r.k
        ));
    }
    if !finite(r.flops) || !finite(r.bytes) {
        return Some(format!(
            "FLOPs {:?} and bytes {:?} must be finite and non-negative",
            r.flops, r.bytes
        ));
    }
    let peak = gpu
        .peak_flops
        .bf16_tensor
        .value
        .max(gpu.peak_flops.fp32_vector.value);
    if r.flops / r.time_s > 1.05 * peak {
        return Some(format!(
            "{:.3e} FLOP/s is above the GPU's peak {peak:.3e}",
            r.flops / r.time_s
        ));
    }
    let l2 = gpu.memory.l2_bandwidth.value;
    if r.bytes / r.time_s > 2.0 * l2 {
        return Some(format!(
            "{:.3e} B/s is above twice the GPU's L2 bandwidth {l2:.3e}",
            r.bytes / r.time_s
        ));
    }
    None
}

/// Measurements whose relative residual exceeds this, and 3x the median one, are outliers.
pub const OUTLIER_RESIDUAL: f64 = 0.5;

/// The points of `points` that are not outliers of the line through all of them (relative
/// residual above [`OUTLIER_RESIDUAL`] and above three times the median), with their indices.
fn without_outliers(points: &[(f64, f64)]) -> Result<Vec<usize>> {
    let (t0, s) = fit_line(points)?;
    let res: Vec<f64> = points
        .iter()
        .map(|(x, t)| ((t0 + s * x) / t - 1.0).abs())
        .collect();
    let mut sorted = res.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok((0..points.len())
        .filter(|&i| !(res[i] > OUTLIER_RESIDUAL && res[i] > 3.0 * median))
        .collect())
}

/// Fits the model to a bench report measured on `gpu`. Measurements that no GPU can produce,
/// and outliers of the memory sweep, are left out and listed in [`Fit::dropped`].
pub fn fit(report: &BenchReport, gpu: &GpuSpec) -> Result<Fit> {
    let hbm = gpu.memory.hbm_bandwidth.value;
    let mut dropped = Vec::new();
    let usable: Vec<&BenchResult> = report
        .results
        .iter()
        .filter(|r| match implausible(r, gpu) {
            None => true,
            Some(why) => {
                if r.correct && r.error.is_none() {
                    dropped.push(format!("{} {}: {why}", r.kernel, r.shape));
                }
                false
            }
        })
        .collect();
    let mem_all: Vec<&BenchResult> = usable
        .iter()
        .copied()
        .filter(|r| matches!(r.kernel.as_str(), "copy" | "scale" | "triad"))
        .collect();
    let points: Vec<(f64, f64)> = mem_all.iter().map(|r| (r.bytes, r.time_s)).collect();
    let keep = without_outliers(&points)?;
    for (i, r) in mem_all.iter().enumerate() {
        if !keep.contains(&i) {
            dropped.push(format!(
                "{} {}: an outlier of the memory sweep (relative residual above {:.0}%)",
                r.kernel,
                r.shape,
                100.0 * OUTLIER_RESIDUAL
            ));
        }
    }
    let mem: Vec<&BenchResult> = keep.iter().map(|&i| mem_all[i]).collect();
    let points: Vec<(f64, f64)> = mem.iter().map(|r| (r.bytes, r.time_s)).collect();
    let (t0, slope) = fit_line(&points)?;
    if slope <= 0.0 {
        return Err(Error::Invalid(
            "memory measurements do not grow with size: cannot fit bandwidth".into(),
        ));
    }
    let hbm_fraction = (1.0 / (slope * hbm)).min(1.0);
    let kernel_latency_s = t0.max(0.0);
    let mut residuals: Vec<Residual> = mem
        .iter()
        .map(|r| residual(r, kernel_latency_s + r.bytes / (hbm * hbm_fraction)))
        .collect();

    let mut mach = Machine::new(gpu, None);
    mach.frac_hbm = hbm_fraction;
    let gemms: Vec<&BenchResult> = usable
        .iter()
        .copied()
        .filter(|r| r.kernel == "cublas_gemm" && r.m.is_some() && r.n.is_some() && r.k.is_some())
        .collect();
    let (mut bf16_fraction, mut gemm_k0, mut gemm_latency_s) = (None, None, None);
    if !gemms.is_empty() {
        let (a, k0, tg) = fit_gemm(&gemms, &mut mach);
        mach.frac_bf16 = a;
        mach.gemm_k0 = k0;
        for r in &gemms {
            residuals.push(residual(r, gemm_time(&mach, r, a, tg)));
        }
        bf16_fraction = Some(a);
        gemm_k0 = Some(k0);
        gemm_latency_s = Some(tg);
    }
    let fp32_fraction = usable
        .iter()
        .filter(|r| r.kernel == "fma_fp32")
        .map(|r| r.flops_per_s / gpu.peak_flops.fp32_vector.value)
        .fold(None, |acc: Option<f64>, x| {
            Some(acc.map_or(x, |a| a.max(x)))
        })
        .map(|f| f.min(1.0));
    Ok(Fit {
        hbm_fraction,
        kernel_latency_s,
        bf16_fraction,
        gemm_k0,
        gemm_latency_s,
        fp32_fraction,
        eager_fraction: None,
        host_dispatch_s: None,
        host_dispatch_source: String::new(),
        residuals,
        dropped,
    })
}

/// Adds what the PyTorch cross-check (`scripts/torch_baseline.py`, its JSON) measured: the
/// bandwidth eager pointwise ops reach (median of `bytes / time` over the `eager_pointwise` rows,
/// over the datasheet bandwidth) and the host time per eager kernel (the `host_dispatch` row with
/// autograd: one forward op and its one backward kernel per measured interval, so half of it per
/// kernel).
pub fn add_torch_baseline(
    fit: &mut Fit,
    baseline: &serde_json::Value,
    gpu: &GpuSpec,
) -> Result<()> {
    let rows = baseline
        .get("results")
        .and_then(|r| r.as_array())
        .ok_or_else(|| Error::spec("torch baseline", "results", "missing results array"))?;
    let mut rates: Vec<f64> = rows
        .iter()
        .filter(|r| r.get("kind").and_then(|k| k.as_str()) == Some("eager_pointwise"))
        .filter_map(|r| r.get("bytes_per_s").and_then(|b| b.as_f64()))
        .filter(|b| b.is_finite() && *b > 0.0)
        .collect();
    if !rates.is_empty() {
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        fit.eager_fraction = Some((median / gpu.memory.hbm_bandwidth.value).min(1.0));
    }
    fit.host_dispatch_s = rows
        .iter()
        .filter(|r| r.get("kind").and_then(|k| k.as_str()) == Some("host_dispatch"))
        .find(|r| {
            r.get("shape")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.contains("autograd"))
        })
        .and_then(|r| r.get("time_s").and_then(|t| t.as_f64()))
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| t / 2.0);
    if fit.host_dispatch_s.is_some() {
        fit.host_dispatch_source =
            "host time per eager op with autograd, halved per kernel (scripts/torch_baseline.py)"
                .to_string();
    }
    Ok(())
}

/// GPU busy time below this share of the step marks a configuration as host-bound.
pub const HOST_BOUND_GPU_SHARE: f64 = 0.75;

/// Which configurations of a `validation/measure.py` file were timed while CUPTI was still
/// attached from an earlier profile in the same process. Kineto detaches CUPTI at the end of a
/// profile only with `TEARDOWN_CUPTI=1`; attached, it slows every later CUDA call on the host,
/// kernel launches included (pytorch/pytorch issue #144455; PR #146604: training 10-20% slower
/// after the profile had finished), which a host-bound step shows and a GPU-bound one hides.
/// A configuration says so itself (`timed_after_profiler`, with `settings.cupti_teardown`);
/// in older files, which predate both and ran without teardown, it was when an earlier
/// configuration has a profile (`class_times_s`).
pub fn timed_with_cupti_attached(measurements: &serde_json::Value) -> Vec<bool> {
    let teardown = measurements
        .pointer("/settings/cupti_teardown")
        .and_then(|t| t.as_bool());
    let configs = measurements.get("configs").and_then(|c| c.as_array());
    cupti_attached(
        teardown,
        configs.into_iter().flatten().map(|c| {
            (
                c.get("timed_after_profiler").and_then(|t| t.as_bool()),
                c.get("class_times_s").is_some_and(|t| t.is_object()),
            )
        }),
    )
}

/// The rule of [`timed_with_cupti_attached`] over the file's `settings.cupti_teardown` and,
/// per configuration in file order, its `timed_after_profiler` and whether it was profiled.
pub fn cupti_attached(
    teardown: Option<bool>,
    configs: impl Iterator<Item = (Option<bool>, bool)>,
) -> Vec<bool> {
    let mut profiled_before = false;
    configs
        .map(|(timed_after_profiler, profiled)| {
            let after = timed_after_profiler.unwrap_or(profiled_before);
            profiled_before |= profiled;
            after && teardown != Some(true)
        })
        .collect()
}

/// Host time per kernel from measured training steps (`validation/measure.py` output): in a
/// configuration whose GPU kernel time is below [`HOST_BOUND_GPU_SHARE`] of its step time the
/// host sets the pace, so its host time per step (`host_step_time_s`, a step issued onto an
/// idle GPU and timed until it returns, where the file has it; else the step time) over its
/// kernels per step is the host's cost of one kernel. Configurations timed with CUPTI still
/// attached ([`timed_with_cupti_attached`]) measure the profiler's leftover cost too and are
/// left out. Returns the median over the rest and how many there were.
pub fn host_dispatch_from_steps(measurements: &serde_json::Value) -> Option<(f64, usize)> {
    let attached = timed_with_cupti_attached(measurements);
    let mut per_kernel: Vec<f64> = measurements
        .get("configs")?
        .as_array()?
        .iter()
        .zip(attached)
        .filter(|(c, attached)| {
            !attached && c.get("mode").and_then(|m| m.as_str()) == Some("eager")
        })
        .filter_map(|(c, _)| {
            let step = c.get("step_time_s")?.as_f64()?;
            let gpu = c.get("gpu_kernel_time_s")?.as_f64()?;
            let kernels = c.get("kernels_per_step")?.as_f64()?;
            let host = c
                .get("host_step_time_s")
                .and_then(|h| h.as_f64())
                .filter(|h| h.is_finite() && *h > 0.0)
                .unwrap_or(step);
            (step > 0.0 && kernels > 0.0 && gpu < HOST_BOUND_GPU_SHARE * step)
                .then_some(host / kernels)
        })
        .collect();
    if per_kernel.is_empty() {
        return None;
    }
    per_kernel.sort_by(f64::total_cmp);
    Some((per_kernel[per_kernel.len() / 2], per_kernel.len()))
}

fn residual(r: &BenchResult, predicted: f64) -> Residual {
    Residual {
        kernel: r.kernel.clone(),
        shape: r.shape.clone(),
        measured_s: r.time_s,
        predicted_s: predicted,
        relative_error: predicted / r.time_s - 1.0,
    }
}

/// Compute time of a GEMM at achievable fraction 1 (divide by `a` for the model's time).
fn gemm_unit_time(mach: &Machine, r: &BenchResult) -> f64 {
    let (m, n, k) = (r.m.unwrap_or(1), r.n.unwrap_or(1), r.k.unwrap_or(1));
    r.flops / (mach.peak_bf16.0 * mach.gemm_shape_efficiency(1, m, n, k))
}

fn gemm_time(mach: &Machine, r: &BenchResult, a: f64, latency: f64) -> f64 {
    let memory = r.bytes / (mach.hbm.0 * mach.frac_hbm);
    (gemm_unit_time(mach, r) / a).max(memory) + latency
}

/// Best (a, k0, t_g) for the GEMM measurements: `t = max(x(k0) / a, memory) + t_g`, with x the
/// compute time at a = 1. For a fixed k0, t_g is the intercept of the weighted linear
/// least-squares line through the compute-bound shapes and a makes the largest GEMM exact; k0
/// minimizes the squared relative residuals of all shapes weighted by their measured time.
fn fit_gemm(gemms: &[&BenchResult], mach: &mut Machine) -> (f64, f64, f64) {
    let largest = gemms
        .iter()
        .copied()
        .max_by(|x, y| x.flops.total_cmp(&y.flops));
    let solve = |mach: &mut Machine, k0: f64| -> (f64, f64, f64) {
        mach.gemm_k0 = k0;
        let points: Vec<(f64, f64)> = gemms
            .iter()
            .filter(|r| gemm_unit_time(mach, r) > r.bytes / (mach.hbm.0 * mach.frac_hbm))
            .map(|r| (gemm_unit_time(mach, r), r.time_s))
            .collect();
        let (tg, _) = fit_line(&points).unwrap_or((0.0, 1.0));
        let tg = tg.max(0.0);
        // a is pinned by the largest GEMM (the "large, well-shaped GEMM" the fraction is defined
        // by): the model reproduces it exactly; the other shapes then test k0 and the tiles.
        let a = largest
            .map_or(1.0, |r| {
                gemm_unit_time(mach, r) / (r.time_s - tg).max(1e-12)
            })
            .clamp(1e-3, 1.0);
        let cost = gemms
            .iter()
            .map(|r| r.time_s * (gemm_time(mach, r, a, tg) / r.time_s - 1.0).powi(2))
            .sum();
        (a, tg, cost)
    };
    // The search stays within the bound every calibration value is checked against,
    // [K0_LOW, 1e5]: a grid, then a golden-section refinement around the best grid point.
    const K0_LOW: f64 = 0.1;
    let mut best = (K0_LOW, f64::INFINITY);
    let mut k = K0_LOW;
    while k <= 1024.0 {
        let (_, _, cost) = solve(mach, k);
        if cost < best.1 {
            best = (k, cost);
        }
        k += 16.0;
    }
    let (mut lo, mut hi) = ((best.0 - 16.0).max(K0_LOW), best.0 + 16.0);
    let g = 0.5 * (5f64.sqrt() - 1.0);
    for _ in 0..60 {
        let x1 = hi - g * (hi - lo);
        let x2 = lo + g * (hi - lo);
        if solve(mach, x1).2 < solve(mach, x2).2 {
            hi = x2;
        } else {
            lo = x1;
        }
    }
    let k0 = 0.5 * (lo + hi);
    let (a, tg, _) = solve(mach, k0);
    (a, k0, tg)
}

/// Root-mean-square of the relative errors of residuals whose kernel satisfies `f`.
pub fn rms(res: &[Residual], f: impl Fn(&str) -> bool) -> f64 {
    let v: Vec<f64> = res
        .iter()
        .filter(|r| f(&r.kernel))
        .map(|r| r.relative_error)
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

/// The calibration file for a fit of the measurements in `file`. A fitted value that is not
/// finite or lies outside its physical bound is an error naming `file` and the field: no
/// calibration is written from a fit that failed.
pub fn calibration(
    fit: &Fit,
    report: &BenchReport,
    gpu: &GpuSpec,
    command: &str,
    file: &str,
) -> Result<Calibration> {
    let provenance = format!(
        "roofline bench on {} (cc {}, driver {}, CUDA driver API {}, NVRTC {}), {}; bench command: `{}`; fitted by `{}`",
        report.device.name,
        report.device.compute_capability,
        report.device.driver_version,
        report.device.cuda_driver_version,
        report.device.nvrtc_version,
        report.date,
        report.command,
        command
    );
    let src = |what: &str, rms: f64| -> String {
        format!(
            "fit to {what} measured by roofline bench on {}, {} (rms relative residual {:.1}%)",
            report.device.name,
            report.date,
            100.0 * rms
        )
    };
    let mem_rms = rms(&fit.residuals, |k| matches!(k, "copy" | "scale" | "triad"));
    let gemm_rms = rms(&fit.residuals, |k| k == "cublas_gemm");
    let sourced = |value: f64, source: String| Sourced {
        value,
        source,
        range: None,
    };
    // A fitted fraction carries the fit's rms relative residual as its uncertainty range.
    let fraction = |value: f64, source: String, rms: f64| Sourced {
        value,
        source,
        range: Some([
            (value * (1.0 - rms)).max(1e-3).min(value),
            (value * (1.0 + rms)).min(1.0).max(value),
        ]),
    };
    let mut c = Calibration::new(&gpu.name, provenance);
    c.set(
        "hbm",
        fraction(
            fit.hbm_fraction,
            src("the copy/scale/triad size sweep", mem_rms),
            mem_rms,
        ),
    );
    if fit.kernel_latency_s > 0.0 {
        c.set(
            "kernel_launch_s",
            sourced(
                fit.kernel_latency_s,
                src("the intercept of the copy/scale/triad size sweep", mem_rms),
            ),
        );
    }
    if let Some(a) = fit.bf16_fraction {
        c.set(
            "bf16_tensor",
            fraction(
                a,
                src(
                    "cuBLAS bf16 GEMMs (square sweep and model shapes)",
                    gemm_rms,
                ),
                gemm_rms,
            ),
        );
    }
    if let Some(k) = fit.gemm_k0 {
        c.set(
            "gemm_k0",
            sourced(
                k.max(1e-9),
                src("cuBLAS bf16 GEMMs (small-K constant)", gemm_rms),
            ),
        );
    }
    if let Some(f) = fit.fp32_fraction {
        c.set(
            "fp32_vector",
            sourced(f, src("the fp32 FMA-peak kernel", 0.0)),
        );
    }
    if let Some(f) = fit.eager_fraction {
        c.set(
            "eager_elementwise",
            sourced(f, format!("median bandwidth of eager PyTorch pointwise ops at [32768, 768] (scripts/torch_baseline.py) on {}", report.device.name)),
        );
    }
    if let Some(t) = fit.host_dispatch_s {
        c.set(
            "host_dispatch_s",
            sourced(t, fit.host_dispatch_source.clone()),
        );
    }
    for rms in [mem_rms, gemm_rms] {
        if !rms.is_finite() {
            return Err(Error::spec(
                file,
                "(fit)",
                "the fit's residuals are not finite: the measurements cannot be fitted",
            ));
        }
    }
    c.check(file)?;
    Ok(c)
}

/// A table point's median time must be at least this many kernel launch gaps
/// (`launch.kernel_launch_s` of the GPU file). An event-timed median of one launch includes
/// about one gap of launch overhead (the GPU file's `kernel_launch_s`, an assumption of 4 us on
/// the H100, which `calibrate` can fit from the copy sweep's intercept), and the
/// time model adds that gap to every kernel separately; a point is kept only when the overhead
/// is at most 1/8 of its time, so the table holds throughput, not launch latency.
pub const MIN_TIME_OVER_LAUNCH: f64 = 8.0;

/// The `[gemm_table]` of `gpu` from a bench report's cuBLAS GEMMs (the bench's cuBLAS suite
/// runs bf16 GemmEx with fp32 accumulation): one point per distinct shape, at 2MNK over the
/// median time (rounded to 0.1 TFLOP/s), citing `file` and the entry. Left out, with why
/// (second value): failed or implausible measurements (as for the fit), misaligned shapes,
/// times under [`MIN_TIME_OVER_LAUNCH`] launch gaps, repeats, and points beyond the table's
/// capacity.
pub fn gemm_table(
    report: &BenchReport,
    gpu: &GpuSpec,
    file: &str,
) -> Result<(crate::spec::GemmTable, Vec<String>)> {
    use crate::spec::gemm_table::{GemmPoint, GemmTable, GEMM_TABLE_CAPACITY};
    let min_time = MIN_TIME_OVER_LAUNCH * gpu.launch.kernel_launch_s.value;
    let mut points: Vec<GemmPoint> = Vec::new();
    let mut dropped = Vec::new();
    for r in report.results.iter().filter(|r| r.kernel == "cublas_gemm") {
        let (Some(m), Some(n), Some(k)) = (r.m, r.n, r.k) else {
            continue;
        };
        let why = if let Some(why) = implausible(r, gpu) {
            why
        } else if [m, n, k].iter().any(|d| d % 8 != 0) {
            "a dimension is not a multiple of 8 (misaligned bf16)".to_string()
        } else if r.time_s < min_time {
            format!(
                "median {:.1} us is under {MIN_TIME_OVER_LAUNCH} launch gaps ({:.1} us): launch overhead, not throughput",
                r.time_s * 1e6,
                min_time * 1e6
            )
        } else if points.iter().any(|p| p.shape() == (m, n, k)) {
            "repeats an earlier shape".to_string()
        } else if points.len() == GEMM_TABLE_CAPACITY {
            format!("beyond the table's {GEMM_TABLE_CAPACITY} points")
        } else {
            points.push(GemmPoint {
                m: m as f64,
                n: n as f64,
                k: k as f64,
                dtype: "bf16".into(),
                // To 0.1 TFLOP/s, as the table is written (well inside the run-to-run spread).
                flops_per_s: (2.0 * m as f64 * n as f64 * k as f64 / r.time_s / 1e11).round()
                    * 1e11,
                source: Some(format!(
                    "{file}: cublas_gemm \"{}\", median of {} runs",
                    r.shape, r.reps
                )),
            });
            continue;
        };
        dropped.push(format!("cublas_gemm {}: {why}", r.shape));
    }
    if points.is_empty() {
        return Err(Error::Invalid(format!(
            "{file} has no cuBLAS GEMM that can be a table point (run `roofline bench --suite cublas`)"
        )));
    }
    let d = &report.device;
    let table = GemmTable {
        source: format!(
            "cuBLAS GemmEx bf16 (fp32 accumulation) medians measured by roofline bench on {} (cc {}, CUDA driver API {}), {}: {file}; converted by roofline calibrate --gemm-table (points under {MIN_TIME_OVER_LAUNCH} launch gaps left out)",
            d.name, d.compute_capability, d.cuda_driver_version, report.date
        ),
        points,
    };
    table.check(file, |dtype| gpu.tensor_peak(dtype).map(|s| s.value))?;
    Ok((table, dropped))
}
