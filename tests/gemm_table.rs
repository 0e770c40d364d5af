//! The measured GEMM table of a GPU file: parsing and validation, its use by the time model
//! (exact at its points, bounded and monotone between them, analytic outside), and its
//! conversion from a `roofline bench` report.

use approx::assert_relative_eq;
use roofline::estimate::{Estimator, RunConfig};
use roofline::gpu::BenchReport;
use roofline::graph::{AttentionImpl, Dtype, ExecMode, OpKind, StepConfig, TokenDim, Unit};
use roofline::spec::{load_gpu, load_model, GpuSpec};
use roofline::time::{op_time, Machine};
use std::path::PathBuf;
use std::process::Command;

const MEASURED: &str = "reports/measurements/2026-11-27-h100-sxm";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The h200-sxm file (which has no table) with `section` appended.
fn with_table(section: &str) -> String {
    let base = std::fs::read_to_string(root().join("models/hardware/h200-sxm.toml")).unwrap();
    assert!(!base.contains("[gemm_table]"));
    format!("{base}\n{section}\n")
}

fn table(points: &[&str]) -> String {
    format!(
        "[gemm_table]\nsource = \"test\"\npoints = [\n{}\n]",
        points.join(",\n")
    )
}

const P0: &str = "{ m = 4096, n = 4096, k = 4096, dtype = \"bf16\", flops_per_s = 700e12 }";
const P1: &str = "{ m = 32768, n = 2304, k = 768, dtype = \"bf16\", flops_per_s = 650e12 }";

fn rejected(section: &str, field: &str, value: &str) {
    let err = GpuSpec::from_toml(&with_table(section), "gpu.toml")
        .expect_err(section)
        .to_string();
    for part in ["gpu.toml", field, value] {
        let found = err.to_lowercase().contains(&part.to_lowercase());
        assert!(found, "{err:?} should name {part:?}");
    }
}

#[test]
fn a_table_parses_and_round_trips() {
    let spec = GpuSpec::from_toml(&with_table(&table(&[P0, P1])), "gpu.toml").unwrap();
    let t = spec.gemm_table.as_ref().unwrap();
    assert_eq!(t.points.len(), 2);
    assert_eq!(t.points[1].shape(), (32768, 2304, 768));
    // What `to_toml` writes reads back the same.
    let again = GpuSpec::from_toml(&with_table(&t.to_toml()), "gpu.toml").unwrap();
    assert_eq!(again.gemm_table.as_ref(), Some(t));
}

#[test]
fn every_bad_field_is_named_with_its_value() {
    let p = |s: &str| table(&[P0, s]);
    let bf16 = |fields: &str| format!("{{ {fields}, dtype = \"bf16\", flops_per_s = 500e12 }}");
    rejected(
        &p(&P1.replace("\"bf16\"", "\"bf17\"")),
        "gemm_table.points[1].dtype",
        "bf17",
    );
    rejected(&p(&bf16("m = -8, n = 64, k = 64")), "points[1].m", "-8");
    rejected(&p(&bf16("m = 0, n = 64, k = 64")), "points[1].m", "0");
    rejected(&p(&bf16("m = 64, n = 64.5, k = 64")), "points[1].n", "64.5");
    rejected(
        &p(&bf16("m = 64, n = 64, k = 770")),
        "points[1].k",
        "multiple of 8",
    );
    for (bad, shown) in [
        ("nan", "value nan"),
        ("inf", "value inf"),
        ("-inf", "value -inf"),
        ("0.0", "value 0 "),
        ("-1e12", "value -1000000000000"),
    ] {
        rejected(
            &p(&P1.replace("650e12", bad)),
            "gemm_table.points[1].flops_per_s",
            shown,
        );
    }
    // Above the dense bf16 peak of the h200-sxm file (989.4 TFLOP/s).
    rejected(
        &p(&P1.replace("650e12", "2e15")),
        "points[1].flops_per_s",
        "2e15",
    );
    rejected(
        &p(&P1.replace("}", ", source = \" \" }")),
        "points[1].source",
        "empty",
    );
    rejected(&p(P0), "gemm_table.points[1]", "repeats points[0]");
    rejected(&table(&[]), "gemm_table.points", "has 0 points");
    let many: Vec<String> = (1..=65)
        .map(|i| bf16(&format!("m = {}, n = 64, k = 64", 8 * i)))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    rejected(&table(&many), "gemm_table.points", "has 65 points");
    rejected(
        &table(&[P0]).replace("\"test\"", "\"\""),
        "gemm_table.source",
        "non-empty",
    );
    rejected(
        &table(&[&P0.replace("}", ", batch = 2 }")]),
        "gemm_table",
        "batch",
    );
    // An fp8 point on a GPU whose file lists no fp8 peak (the A100).
    let a100 = std::fs::read_to_string(root().join("models/hardware/a100-sxm-80gb.toml")).unwrap();
    let fp8 = table(&[&P0.replace("bf16", "fp8")]);
    let err = GpuSpec::from_toml(&format!("{a100}\n{fp8}\n"), "a100.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("points[0].dtype") && err.contains("fp8"),
        "{err}"
    );
}

#[test]
fn bad_tables_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, with_table(&table(&[P0, P0]))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args(["estimate", "--model", "jit-b4", "--gpu"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gemm_table.points[1]"), "{err}");
}

fn h100() -> (GpuSpec, Machine) {
    let spec = load_gpu("h100-sxm").unwrap();
    let mach = Machine::new(&spec, None);
    (spec, mach)
}

fn rate(mach: &Machine, (m, n, k): (u64, u64, u64)) -> (f64, f64) {
    let args = (
        Unit::Tensor,
        Dtype::Bf16,
        1,
        (m, n, k),
        Some(TokenDim::M),
        false,
    );
    (
        mach.gemm_rate(args.0, args.1, args.2, args.3, args.4, args.5)
            .0,
        mach.analytic_gemm_rate(args.0, args.1, args.2, args.3, args.4, args.5)
            .0,
    )
}

#[test]
fn the_rate_at_a_table_point_is_the_measured_one() {
    let (spec, mach) = h100();
    let t = spec.gemm_table.as_ref().expect("h100-sxm has a table");
    assert!(t.points.len() >= 10);
    for p in &t.points {
        let (r, analytic) = rate(&mach, p.shape());
        assert_relative_eq!(r, p.flops_per_s, max_relative = 1e-9);
        assert!(analytic > 0.0);
    }
}

#[test]
fn between_points_the_correction_stays_within_the_measured_ratios() {
    let (spec, mach) = h100();
    let t = spec.gemm_table.as_ref().unwrap();
    let ratios: Vec<f64> = t
        .points
        .iter()
        .map(|p| p.flops_per_s / rate(&mach, p.shape()).1)
        .collect();
    let lo = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().cloned().fold(0.0, f64::max);
    for m in [768, 1024, 3000, 4096, 12288, 32768] {
        for n in [768, 1000, 3072, 8192] {
            for k in [768, 1536, 5000, 32768] {
                let (r, analytic) = rate(&mach, (m, n, k));
                let c = r / analytic;
                assert!(
                    c >= lo * (1.0 - 1e-9) && c <= hi * (1.0 + 1e-9),
                    "{m}x{n}x{k}: {c}"
                );
            }
        }
    }
}

#[test]
fn between_two_points_the_correction_moves_monotonically() {
    let section = table(&[
        "{ m = 1024, n = 1024, k = 1024, dtype = \"bf16\", flops_per_s = 300e12 }",
        "{ m = 16384, n = 16384, k = 16384, dtype = \"bf16\", flops_per_s = 760e12 }",
    ]);
    let spec = GpuSpec::from_toml(&with_table(&section), "gpu.toml").unwrap();
    let mach = Machine::new(&spec, None);
    let mut last = f64::NEG_INFINITY;
    for i in 0..=32 {
        // Aligned sizes (multiples of 8) from 1024 to 16384, evenly in log space.
        let d = 8 * (128.0 * 16f64.powf(i as f64 / 32.0)).round() as u64;
        let (r, analytic) = rate(&mach, (d, d, d));
        let c = r / analytic;
        assert!(c >= last * (1.0 - 1e-6), "{d}: {c} after {last}");
        last = c;
    }
}

#[test]
fn outside_the_table_the_model_is_analytic() {
    let (_, mach) = h100();
    // Below the smallest M of the table (adaLN's M = batch), above its largest N (a vocabulary).
    for shape in [(64, 4608, 768), (32768, 50304, 768), (32768, 768, 65536)] {
        let (r, analytic) = rate(&mach, shape);
        assert_eq!(r, analytic, "{shape:?}");
    }
    // A dtype without points, batched GEMMs and the vector unit stay analytic.
    let shape = (32768, 2304, 768);
    for (unit, dtype, batch) in [
        (Unit::Tensor, Dtype::Fp8, 1),
        (Unit::Tensor, Dtype::Bf16, 4),
        (Unit::Vector, Dtype::Fp32, 1),
    ] {
        assert_eq!(
            mach.gemm_rate(unit, dtype, batch, shape, None, false),
            mach.analytic_gemm_rate(unit, dtype, batch, shape, None, false)
        );
    }
    // A GPU file without a table is analytic everywhere.
    let h200 = Machine::new(&load_gpu("h200-sxm").unwrap(), None);
    assert!(h200.gemm_table.is_empty());
    let (r, analytic) = rate(&h200, shape);
    assert_eq!(r, analytic);
}

#[test]
fn misaligned_gemms_keep_their_ceiling_and_padding() {
    let (_, mach) = h100();
    // 32768 x 2300 x 768: N misaligned. Eager: the alignment-1 ceiling; compiled: the padded,
    // aligned shape's (table) rate times the share of real FLOPs.
    let shape = (32768, 2300, 768);
    let eager = mach.gemm_rate(
        Unit::Tensor,
        Dtype::Bf16,
        1,
        shape,
        Some(TokenDim::M),
        false,
    );
    assert!(eager.0 <= mach.peak_bf16.0 * mach.frac_misaligned * (1.0 + 1e-12));
    let padded = mach.gemm_rate(Unit::Tensor, Dtype::Bf16, 1, shape, Some(TokenDim::M), true);
    let (aligned, _) = rate(&mach, (32768, 2304, 768));
    assert_relative_eq!(padded.0, aligned * 2300.0 / 2304.0, max_relative = 1e-12);
}

#[test]
fn an_estimates_qkv_projection_runs_at_the_measured_rate() {
    let (spec, mach) = h100();
    let point = spec
        .gemm_table
        .as_ref()
        .unwrap()
        .points
        .iter()
        .find(|p| p.shape() == (32768, 2304, 768))
        .expect("the table has jit-b4's qkv projection at batch 64")
        .clone();
    let model = load_model("jit-b4").unwrap();
    let run = RunConfig {
        step: StepConfig {
            batch: 64,
            attention: AttentionImpl::Flash2,
            ..StepConfig::default()
        },
        mode: ExecMode::Eager,
        ..RunConfig::default()
    };
    let mut est = Estimator::new();
    est.estimate(&model, &mach, &run).unwrap();
    let op = est
        .ops()
        .iter()
        .find(|op| {
            matches!(
                op.kind,
                OpKind::Gemm {
                    m: 32768,
                    n: 2304,
                    k: 768,
                    ..
                }
            )
        })
        .expect("jit-b4 has a 32768x2304x768 GEMM at batch 64");
    let t = op_time(&mach, op, ExecMode::Eager, AttentionImpl::Flash2).unwrap();
    assert_relative_eq!(t.attainable_flops.0, point.flops_per_s, max_relative = 1e-9);
}

#[test]
fn the_h100_table_is_the_conversion_of_the_committed_bench_report() {
    let file = format!("{MEASURED}/bench.json");
    let text = std::fs::read_to_string(root().join(&file)).unwrap();
    let report: BenchReport = serde_json::from_str(&text).unwrap();
    let (spec, _) = h100();
    let (table, dropped) = roofline::calibrate::gemm_table(&report, &spec, &file).unwrap();
    assert_eq!(
        Some(&table.points),
        spec.gemm_table.as_ref().map(|t| &t.points)
    );
    // Left out: the shapes timed under 8 launch gaps (adaLN, the timestep MLP, ...).
    assert!(dropped
        .iter()
        .any(|d| d.contains("adaln.linear 64x4608x768")));
    assert!(!table
        .points
        .iter()
        .any(|p| p.m < 64.0 * 8.0 && p.n < 2048.0));
    for p in &table.points {
        assert!(p
            .source
            .as_ref()
            .unwrap()
            .contains("bench.json: cublas_gemm"));
    }
}

#[test]
fn calibrate_writes_a_table_that_a_gpu_file_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("table.toml");
    let status = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .current_dir(root())
        .args(["calibrate", "--from", &format!("{MEASURED}/bench.json")])
        .arg("--gemm-table")
        .arg(&out)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let section = std::fs::read_to_string(&out).unwrap();
    assert!(section.contains("# left out: cublas_gemm"));
    let spec = GpuSpec::from_toml(&with_table(&section), "gpu.toml").unwrap();
    assert!(spec.gemm_table.unwrap().points.len() >= 10);
}

#[test]
fn bench_without_a_gpu_says_so() {
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args([
            "bench",
            "--suite",
            "cublas",
            "--shapes",
            "jit-b4",
            "--gemm-table",
        ])
        .arg(dir.path().join("t.toml"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no CUDA driver"), "{err}");
    assert!(!dir.path().join("t.toml").exists());
}
