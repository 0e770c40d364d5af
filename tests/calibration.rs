//! The calibration fit recovers known parameters from synthetic measurements generated with them.

use roofline::calibrate::{calibration, fit};
use roofline::gpu::{BenchReport, BenchResult, DeviceInfo};
use roofline::spec::load_gpu;
use roofline::time::Machine;

fn result(
    kernel: &str,
    shape: String,
    flops: f64,
    bytes: f64,
    t: f64,
    mnk: Option<(u64, u64, u64)>,
) -> BenchResult {
    BenchResult {
        suite: "synthetic".into(),
        kernel: kernel.into(),
        shape,
        m: mnk.map(|x| x.0),
        n: mnk.map(|x| x.1),
        k: mnk.map(|x| x.2),
        elements: None,
        flops,
        bytes,
        time_s: t,
        time_min_s: t,
        time_p90_s: t,
        reps: 10,
        flops_per_s: flops / t,
        bytes_per_s: bytes / t,
        fraction_of_peak: None,
        max_rel_error: 1e-3,
        correct: true,
        error: None,
    }
}

#[test]
fn fit_recovers_known_parameters_within_one_percent() {
    let gpu = load_gpu("h100-sxm").unwrap();
    let (hbm_frac, latency, a, k0, fp32) = (0.85, 3e-6, 0.76, 100.0, 0.9);
    let mut mach = Machine::new(&gpu, None);
    mach.frac_hbm = hbm_frac;
    mach.gemm_k0 = k0;
    let hbm = gpu.memory.hbm_bandwidth.value;
    let mut results = Vec::new();
    for kernel in ["copy", "scale", "triad"] {
        let arrays = if kernel == "triad" { 3.0 } else { 2.0 };
        let mut mib = 1.0;
        while mib <= 2048.0 {
            let bytes = arrays * mib * 1048576.0;
            results.push(result(
                kernel,
                format!("{mib} MiB"),
                0.0,
                bytes,
                latency + bytes / (hbm * hbm_frac),
                None,
            ));
            mib *= 4.0;
        }
    }
    let shapes = [
        (8192, 8192, 8192),
        (4096, 4096, 4096),
        (2048, 2048, 2048),
        (32768, 2304, 768),
        (32768, 768, 2048),
        (32768, 4096, 768),
        (768, 4096, 32768),
        (32768, 128, 48),
        (64, 4608, 768),
    ];
    for (m, n, k) in shapes {
        let flops = 2.0 * (m * n * k) as f64;
        let bytes = 2.0 * (m * k + n * k + m * n) as f64;
        let compute = flops / (mach.peak_bf16.0 * a * mach.gemm_shape_efficiency(1, m, n, k));
        let t = compute.max(bytes / (hbm * hbm_frac)) + latency;
        results.push(result(
            "cublas_gemm",
            format!("{m}x{n}x{k}"),
            flops,
            bytes,
            t,
            Some((m, n, k)),
        ));
    }
    let peak32 = gpu.peak_flops.fp32_vector.value;
    results.push(result(
        "fma_fp32",
        "fma".into(),
        peak32 * fp32 * 1e-3,
        0.0,
        1e-3,
        None,
    ));
    let report = BenchReport {
        schema: "roofline-bench/1".into(),
        date: "synthetic".into(),
        command: "synthetic".into(),
        roofline_version: "test".into(),
        device: DeviceInfo {
            name: "synthetic H100".into(),
            ..DeviceInfo::default()
        },
        results,
    };
    let f = fit(&report, &gpu).unwrap();
    let close = |got: f64, want: f64, what: &str| {
        assert!((got / want - 1.0).abs() < 0.01, "{what}: {got} vs {want}")
    };
    close(f.hbm_fraction, hbm_frac, "hbm fraction");
    close(f.kernel_latency_s, latency, "latency");
    close(f.bf16_fraction.unwrap(), a, "bf16 fraction");
    close(f.gemm_k0.unwrap(), k0, "k0");
    close(f.fp32_fraction.unwrap(), fp32, "fp32 fraction");
    assert!(f.residuals.iter().all(|r| r.relative_error.abs() < 0.01));

    // The calibration file round-trips through TOML and the estimator accepts it.
    let cal = calibration(&f, &report, &gpu, "test", "bench.json").unwrap();
    let text = toml::to_string(&cal).unwrap();
    let dir = std::env::temp_dir().join(format!("roofline-cal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cal.toml");
    std::fs::write(&path, text).unwrap();
    let back = roofline::time::Calibration::load(&path).unwrap();
    let m = Machine::new(&gpu, Some(&back));
    close(m.frac_bf16, a, "calibrated machine");
    close(m.gemm_k0, k0, "calibrated k0");
}

#[test]
fn host_dispatch_is_read_from_host_bound_eager_steps_preferring_the_measured_host_time() {
    use roofline::calibrate::host_dispatch_from_steps;
    let cfg = |mode: &str, step: f64, gpu: f64, kernels: f64, host: Option<f64>| {
        let mut c = serde_json::json!({
            "mode": mode, "step_time_s": step, "gpu_kernel_time_s": gpu,
            "kernels_per_step": kernels,
        });
        if let Some(h) = host {
            c["host_step_time_s"] = serde_json::json!(h);
        }
        c
    };
    // Host-bound (GPU busy 40% and 50%): host time / kernels; the first has a measured host
    // time (50 ms over 2000 kernels = 25 us), the second only its step (60 ms / 3000 = 20 us).
    // GPU-bound and compiled steps say nothing about eager host dispatch.
    let doc = serde_json::json!({ "configs": [
        cfg("eager", 0.060, 0.024, 2000.0, Some(0.050)),
        cfg("eager", 0.060, 0.030, 3000.0, None),
        cfg("eager", 0.100, 0.095, 3000.0, Some(0.090)),
        cfg("compiled", 0.060, 0.020, 1000.0, None),
    ]});
    let (t, n) = host_dispatch_from_steps(&doc).unwrap();
    assert_eq!(n, 2);
    // Median of [20 us, 25 us]: the upper one of an even count.
    assert!((t - 25e-6).abs() < 1e-12, "{t}");
    // No host-bound configuration: nothing to fit.
    let none = serde_json::json!({ "configs": [cfg("eager", 0.1, 0.095, 3000.0, None)] });
    assert!(host_dispatch_from_steps(&none).is_none());
}

#[test]
fn host_dispatch_leaves_out_steps_timed_with_cupti_still_attached() {
    use roofline::calibrate::{host_dispatch_from_steps, timed_with_cupti_attached};
    // Three host-bound eager steps; the first is profiled (class_times_s). Without teardown the
    // two after it were timed with CUPTI attached (older files say so only by order), so only
    // the first counts: 40 ms over 2000 kernels = 20 us.
    let step = |s: f64, profiled: bool| {
        let mut c = serde_json::json!({"mode": "eager", "step_time_s": s,
            "gpu_kernel_time_s": 0.3 * s, "kernels_per_step": 2000.0});
        if profiled {
            c["class_times_s"] = serde_json::json!({"gemm": 0.3 * s});
        }
        c
    };
    let mut doc = serde_json::json!({"configs": [step(0.040, true), step(0.050, true),
        step(0.060, false)]});
    assert_eq!(timed_with_cupti_attached(&doc), [false, true, true]);
    let (t, n) = host_dispatch_from_steps(&doc).unwrap();
    assert_eq!(n, 1);
    assert!((t - 20e-6).abs() < 1e-12, "{t}");
    // Measured with teardown: every step counts (median of 20, 25, 30 us).
    doc["settings"] = serde_json::json!({"cupti_teardown": true});
    assert_eq!(timed_with_cupti_attached(&doc), [false, false, false]);
    let (t, n) = host_dispatch_from_steps(&doc).unwrap();
    assert_eq!(n, 3);
    assert!((t - 25e-6).abs() < 1e-12, "{t}");
    // A configuration's own flag wins over the order.
    doc["settings"] = serde_json::json!({"cupti_teardown": false});
    doc["configs"][2]["timed_after_profiler"] = serde_json::json!(false);
    assert_eq!(timed_with_cupti_attached(&doc), [false, true, false]);

    // The committed H100 profile ran without teardown: its two host-bound runs (jit-b4 flash2
    // eager, batch 8 and 16) were timed after the first configuration's profile, so it gives
    // no host time per kernel.
    let (_, text) = roofline::validate::H100_MEASUREMENTS;
    let h100: serde_json::Value = serde_json::from_str(text).unwrap();
    assert!(host_dispatch_from_steps(&h100).is_none());
    let attached = timed_with_cupti_attached(&h100);
    assert!(!attached[0] && attached[1..].iter().all(|a| *a));
}
