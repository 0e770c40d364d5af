//! The input contract, one test per class of the fuzzer's reproducers: bad input exits 2 with a
//! message naming the file, field and value; nothing panics, prints inf/NaN, wraps an integer or
//! leaves a partial file; a closed stdout ends quietly.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roofline"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().expect("run roofline");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!e.contains("panicked"), "{args:?}: {e}");
    (out.status.code().unwrap_or(-1), o, e)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `file` with its first occurrence of `from` replaced by `to`, written into `dir` as `name`.
fn mutated(dir: &Path, file: &str, from: &str, to: &str, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    let p = dir.join(name);
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    p
}

/// Exit 2 and an error that names every one of `names`.
fn rejects(args: &[&str], names: &[&str]) {
    let (code, out, err) = run(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(out.is_empty(), "{args:?} printed {out}");
    for n in names {
        assert!(err.contains(n), "{args:?}: `{n}` missing from: {err}");
    }
}

#[test]
fn a_closed_or_full_stdout_never_panics() {
    // The reader goes away before the output is written: a quiet exit.
    let mut child = bin()
        .args(["ops", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    if let Ok(full) = std::fs::File::create("/dev/full") {
        let out = bin().args(["estimate"]).stdout(full).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("<stdout>"));
    }
}

#[test]
fn gpu_values_outside_physical_bounds_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let gpu = "models/hardware/h200-sxm.toml";
    for (from, to, field) in [
        ("value = 4.8e12", "value = 1e-300", "memory.hbm_bandwidth"),
        ("value = 132,", "value = 1e308,", "compute.sm_count"),
        (
            "value = 150754820096",
            "value = 1e308",
            "memory.hbm_capacity",
        ),
        (
            "range = [0.777, 0.807]",
            "range = [1e-300, 1e300]",
            "achievable.bf16_tensor",
        ),
    ] {
        let p = mutated(dir.path(), gpu, from, to, "gpu.toml");
        rejects(
            &["estimate", "--gpu", p.to_str().unwrap()],
            &["gpu.toml", field],
        );
    }
}

#[test]
fn model_sizes_that_would_overflow_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (file, from, to, field) in [
        (
            "models/jit-b4.toml",
            "out_channels = 3",
            "out_channels = 9223372036854775807",
            "input.out_channels",
        ),
        (
            "models/gpt2-124m.toml",
            "mlp_hidden = 3072",
            "mlp_hidden = 9223372036854775807",
            "transformer.mlp_hidden",
        ),
        (
            "models/jit-b4.toml",
            "width = 768",
            "width = 1099511627776",
            "transformer.width",
        ),
    ] {
        let p = mutated(dir.path(), file, from, to, "model.toml");
        rejects(
            &["estimate", "--model", p.to_str().unwrap()],
            &["model.toml", field],
        );
    }
    // A model at the largest sizes still counts exactly and estimates without overflow.
    let big = mutated(
        dir.path(),
        "models/llama2-7b.toml",
        "depth = 32",
        "depth = 65536",
        "big.toml",
    );
    let (code, out, err) = run(&[
        "estimate",
        "--model",
        big.to_str().unwrap(),
        "--batch",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["params"].as_u64().unwrap() > 400_000_000_000);
    assert!(v["step_time_s"].as_f64().unwrap().is_finite());
}

#[test]
fn unreadable_or_missing_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, b"name = \"x\xff\"\n").unwrap();
    rejects(
        &["estimate", "--model", p.to_str().unwrap()],
        &["bad.toml", "UTF-8"],
    );
    rejects(
        &["estimate", "--gpu", "/nonexistent/gpu.toml"],
        &["/nonexistent/gpu.toml"],
    );
    rejects(
        &["validate", "/nonexistent/m.json"],
        &["/nonexistent/m.json"],
    );
}

#[test]
fn command_line_values_stay_finite() {
    for (args, flag) in [
        (
            vec!["memory", "--workspace-gib", "1e308"],
            "--workspace-gib",
        ),
        (
            vec!["estimate", "--train-samples", "1e300", "--epochs", "1e10"],
            "--train-samples",
        ),
        (
            vec!["estimate", "--train-samples", "1M", "--epochs", "1e10"],
            "--epochs",
        ),
        (
            vec!["estimate", "--price-per-gpu-hour", "1e308"],
            "--price-per-gpu-hour",
        ),
        (
            vec!["estimate", "--train-tokens", "1e300"],
            "--train-tokens",
        ),
        (
            vec!["estimate", "--train-tokens", "5e-324"],
            "smaller than one sample",
        ),
        (vec!["estimate", "--gpus", "1e15"], "--gpus"),
        (vec!["estimate", "--batch", "9e15"], "2^40"),
    ] {
        rejects(&args, &[flag]);
    }
    let (code, out, _) = run(&[
        "estimate",
        "--price-per-gpu-hour=-0",
        "--train-samples",
        "1M",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("cost               $0 ") && !out.contains("$-0"),
        "{out}"
    );
}

#[test]
fn impossible_measurements_are_named_with_their_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = "reports/measurements/2026-11-27-h100-sxm/measurements.json";
    for (from, to, field) in [
        (
            "\"step_time_s\": 0.04838655853271484",
            "\"step_time_s\": 0",
            "configs[0].step_time_s",
        ),
        (
            "\"step_time_s\": 0.04838655853271484",
            "\"step_time_s\": -0.1",
            "configs[0].step_time_s",
        ),
        (
            "\"gemm\": 0.007834135333333336",
            "\"gemm\": 1e308",
            "configs[0].class_times_s.gemm",
        ),
        (
            "\"kernels_per_step\": 2997.0",
            "\"kernels_per_step\": -5",
            "configs[0].kernels_per_step",
        ),
        (
            "\"model\": \"jit-b4\"",
            "\"model\": \"jit-b5\"",
            "configs[0].model",
        ),
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let compact: Value = serde_json::from_str(&text).unwrap();
        let flat = serde_json::to_string_pretty(&compact).unwrap();
        assert!(flat.contains(from), "{from}");
        let p = dir.path().join("m.json");
        std::fs::write(&p, flat.replacen(from, to, 1)).unwrap();
        rejects(&["validate", p.to_str().unwrap()], &["m.json", field]);
    }
}

#[test]
fn one_bad_bench_point_does_not_poison_a_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(root().join("reports/measurements/2026-11-27-h100-sxm/bench.json"))
            .unwrap();
    for bad in [5e-324, 1e-300] {
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let copy = v["results"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["kernel"] == "copy")
            .unwrap();
        copy["time_s"] = serde_json::json!(bad);
        let bench = dir.path().join("bench.json");
        std::fs::write(&bench, serde_json::to_string(&v).unwrap()).unwrap();
        let out = dir.path().join("cal.toml");
        let (code, stdout, err) = run(&[
            "calibrate",
            "--from",
            bench.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("left out of the fit"), "{err}");
        assert!(
            !stdout.contains("inf") && !stdout.contains("NaN"),
            "{stdout}"
        );
        let cal = std::fs::read_to_string(&out).unwrap();
        assert!(!cal.contains("inf%"), "{cal}");
        roofline::time::Calibration::load(&out).unwrap();
    }
}

#[test]
fn outputs_are_written_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("a.csv");
    // The chart cannot be written: neither file appears.
    rejects(
        &[
            "sweep",
            "--vary",
            "batch=8..16",
            "--out",
            csv.to_str().unwrap(),
            "--plot",
            "/proc/roofline-cannot-write-here/x.svg",
        ],
        &["/proc/roofline-cannot-write-here"],
    );
    assert!(!csv.exists());
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 0, "temporary files left behind");
    // A folder that is a file: the report fails before anything is renamed into place.
    let blocker = dir.path().join("reports");
    std::fs::write(&blocker, "").unwrap();
    rejects(
        &["flash-report", "--out-dir", blocker.to_str().unwrap()],
        &["reports"],
    );
}

#[test]
fn doubling_the_batch_never_shortens_the_step() {
    let step = |batch: &str| {
        let (code, out, err) = run(&[
            "estimate",
            "--model",
            "llama2-7b",
            "--gpu",
            "h100-sxm",
            "--precision",
            "fp8",
            "--attention",
            "unfused",
            "--mode",
            "compiled",
            "--seq",
            "1000",
            "--gpus",
            "1",
            "--batch",
            batch,
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["step_time_s"].as_f64().unwrap()
    };
    assert!(step("2") >= step("1"));
}

#[test]
fn a_zero3_step_is_never_shorter_than_its_communication() {
    for batch in ["3", "6"] {
        let (code, out, err) = run(&[
            "estimate",
            "--model",
            "jit-b4",
            "--gpu",
            "h100-pcie",
            "--batch",
            batch,
            "--attention",
            "flash3",
            "--ema",
            "1",
            "--gpus",
            "16",
            "--gpus-per-node",
            "2",
            "--mode",
            "graphs",
            "--zero",
            "3",
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let (step, comm) = (
            v["step_time_s"].as_f64().unwrap(),
            v["comm_total_s"].as_f64().unwrap(),
        );
        assert!(
            step >= comm,
            "batch {batch}: step {step} < communication {comm}"
        );
    }
}

#[test]
fn the_largest_batch_fits_and_one_more_does_not() {
    let at = |batch: &str| -> Value {
        let (code, out, err) = run(&[
            "memory",
            "--model",
            "gpt2-124m",
            "--gpu",
            "mi300x",
            "--seq",
            "1",
            "--gpus",
            "1",
            "--batch",
            batch,
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let max = at("1")["max_batch"].as_u64().unwrap();
    assert_eq!(
        at("64")["max_batch"].as_u64().unwrap(),
        max,
        "depends on --batch"
    );
    assert_eq!(at(&max.to_string())["fits"], true);
    assert_eq!(at(&(max + 1).to_string())["fits"], false);
}

#[test]
fn a_fused_cross_entropy_for_a_diffusion_model_is_refused() {
    rejects(
        &["estimate", "--loss", "fused"],
        &["fused", "jit-b4", "MSE", "--loss torch"],
    );
    rejects(
        &["estimate", "--loss", "liger"],
        &["liger", "torch", "fused", "fused-linear"],
    );
    rejects(
        &["estimate", "--loss", "fused-linear"],
        &["fused-linear", "jit-b4", "MSE"],
    );
    let (code, out, err) = run(&[
        "estimate",
        "--model",
        "gpt2-124m",
        "--gpus",
        "1",
        "--loss",
        "fused",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("loss fused"), "{out}");
}

#[test]
fn a_bad_bench_shape_batch_is_named() {
    rejects(
        &["bench", "--shapes", "jit-b4:0"],
        &["--shapes jit-b4:0", "`0`"],
    );
    rejects(&["bench", "--shapes", "jit-b4:x"], &["jit-b4:x"]);
}
