//! The command-line contract: JSON fields, exit codes, and errors that name the problem.

use serde_json::Value;
use std::process::Command;

fn roofline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args(args)
        .output()
        .expect("run roofline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> Value {
    let (code, out, err) = roofline(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: invalid JSON ({e}): {out}"))
}

fn temp_spec(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("roofline-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn estimate_default_json_has_the_contract_fields() {
    let v = json(&["estimate", "--json"]);
    for k in [
        "step_time_s",
        "samples_per_s",
        "tokens_per_s",
        "mfu",
        "memory_per_gpu_bytes",
        "fits",
        "breakdown",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["model"], "jit-b4");
    assert_eq!(v["gpu"], "h200-sxm");
    assert_eq!(v["gpus"], 8);
    assert_eq!(v["batch_per_gpu"], 64);
    let step = v["step_time_s"].as_f64().unwrap();
    let mfu = v["mfu"].as_f64().unwrap();
    assert!(mfu > 0.0 && mfu < 1.0);
    assert_eq!(v["fits"], true);
    let sum: f64 = v["breakdown"]
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert!(
        (sum / step - 1.0).abs() < 0.01,
        "breakdown {sum} vs step {step}"
    );
    assert!(v.get("train_time_s").is_none());
}

#[test]
fn estimate_with_a_dataset_gives_time_and_cost() {
    let v = json(&[
        "estimate",
        "--train-tokens",
        "1T",
        "--tokens-per-sample",
        "2000",
        "--price-per-gpu-hour",
        "3",
        "--json",
    ]);
    let t = v["train_time_s"].as_f64().unwrap();
    let samples_per_s = v["samples_per_s"].as_f64().unwrap();
    let expected = 1e12 / 2000.0 / samples_per_s;
    assert!((t / expected - 1.0).abs() < 1e-3, "{t} vs {expected}");
    let cost = v["cost"].as_f64().unwrap();
    assert!((cost / (t / 3600.0 * 8.0 * 3.0) - 1.0).abs() < 1e-9);
    assert_eq!(v["dataset"]["tokens_per_sample"], 2000.0);
}

#[test]
fn ops_json_has_the_contract_fields() {
    let v = json(&[
        "ops",
        "--model",
        "gpt2-124m",
        "--batch",
        "2",
        "--attention",
        "flash2",
        "--json",
    ]);
    assert_eq!(v["params"], 124_439_808u64);
    let ops = v["ops"].as_array().unwrap();
    let mut fwd = 0.0;
    for op in ops {
        for k in [
            "name",
            "layer",
            "phase",
            "kind",
            "flops",
            "bytes_read",
            "bytes_written",
        ] {
            assert!(op.get(k).is_some(), "op missing {k}: {op}");
        }
        let phase = op["phase"].as_str().unwrap();
        assert!(["forward", "backward", "optimizer"].contains(&phase));
        if phase == "forward" {
            fwd += op["flops"].as_f64().unwrap();
        }
    }
    assert!((fwd / v["forward_flops"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!(v["backward_flops"].as_f64().unwrap() > v["forward_flops"].as_f64().unwrap());
    assert!(v["optimizer_flops"].as_f64().unwrap() > 0.0);
}

#[test]
fn memory_json_has_the_contract_fields() {
    let v = json(&[
        "memory", "--model", "jit-b4", "--batch", "64", "--gpu", "h200-sxm", "--json",
    ]);
    for k in [
        "weights_bytes",
        "gradients_bytes",
        "optimizer_bytes",
        "activations_bytes",
        "total_bytes",
        "max_batch",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert!(v["max_batch"].as_u64().unwrap() > 64);
}

#[test]
fn listings_have_one_line_per_spec() {
    let (code, out, _) = roofline(&["models"]);
    assert_eq!(code, 0);
    // A header, then one line per model.
    assert!(out.starts_with("model "));
    assert_eq!(out.lines().count(), roofline::spec::MODELS.len() + 1);
    let (code, out, _) = roofline(&["gpus"]);
    assert_eq!(code, 0);
    // One line per GPU with its price's provider and date, then a line on comparing prices.
    assert_eq!(out.lines().count(), roofline::spec::GPUS.len() + 1);
    assert!(out
        .lines()
        .take(roofline::spec::GPUS.len())
        .all(|l| l.contains("/GPU-h ")));
    assert!(out.lines().last().unwrap().starts_with("prices:"));
}

#[test]
fn unknown_names_suggest_the_closest_and_exit_2() {
    let (code, _, err) = roofline(&["estimate", "--gpu", "h200sxm"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `h200-sxm`"), "{err}");
    let (code, _, err) = roofline(&["estimate", "--model", "jit-b44"]);
    assert_eq!(code, 2);
    assert!(err.contains("jit-b4"), "{err}");
    let (code, _, err) = roofline(&["estimate", "--attention", "flash"]);
    assert_eq!(code, 2);
    assert!(err.contains("flash2"), "{err}");
}

#[test]
fn bad_spec_files_name_the_file_and_the_field() {
    let good = include_str!("../models/jit-b4.toml");
    let cases = [
        (
            "misspelt.toml",
            good.replace("heads = 12", "haeds = 12"),
            "haeds",
        ),
        ("missing.toml", good.replace("heads = 12\n", ""), "heads"),
        (
            "divide.toml",
            good.replace("heads = 12", "heads = 7"),
            "transformer.heads",
        ),
        (
            "zero.toml",
            good.replace("depth = 12", "depth = 0"),
            "transformer.depth",
        ),
        (
            "negative.toml",
            good.replace("depth = 12", "depth = -3"),
            "depth",
        ),
        (
            "enum.toml",
            good.replace("norm = \"rmsnorm\"", "norm = \"batchnorm\""),
            "batchnorm",
        ),
    ];
    for (name, text, field) in cases {
        let p = temp_spec(name, &text);
        let (code, out, err) = roofline(&["estimate", "--model", p.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(out.is_empty());
        assert!(
            err.contains(name),
            "{name}: error does not name the file: {err}"
        );
        assert!(
            err.contains(field),
            "{name}: error does not name `{field}`: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let gpu = include_str!("../models/hardware/h100-sxm.toml");
    let p = temp_spec(
        "gpu.toml",
        &gpu.replacen("value = 132,", "value = -132,", 1),
    );
    let (code, _, err) = roofline(&["estimate", "--gpu", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("compute.sm_count"), "{err}");
    // A missing file is bad input too: exit 2 (1 is reserved for internal failures).
    let (code, _, err) = roofline(&["estimate", "--gpu", "/nonexistent/gpu.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/gpu.toml"), "{err}");
}

#[test]
fn bad_numbers_exit_2() {
    for args in [
        vec!["estimate", "--batch", "0"],
        vec!["estimate", "--batch", "-4"],
        vec!["estimate", "--batch", "12X"],
        vec!["estimate", "--gpus", "0"],
        vec!["estimate", "--zero", "4"],
        vec!["estimate", "--train-tokens", "1T", "--train-samples", "5"],
        vec!["estimate", "--price-per-gpu-hour", "nan"],
        vec![
            "estimate",
            "--attention",
            "flash3",
            "--gpu",
            "a100-sxm-80gb",
        ],
    ] {
        let (code, _, err) = roofline(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn suffixes_and_huge_sizes() {
    let v = json(&["estimate", "--train-tokens", "1e15", "--json"]);
    assert!(v["train_time_s"].as_f64().unwrap().is_finite());
    let v = json(&[
        "estimate",
        "--model",
        "llama2-7b",
        "--gpu",
        "h100-sxm",
        "--gpus",
        "1K",
        "--attention",
        "flash2",
        "--batch",
        "1",
        "--zero",
        "3",
        "--json",
    ]);
    assert_eq!(v["gpus"], 1000);
}

#[test]
fn validate_reads_the_example_measurements() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/validation/example-measurements.json"
    );
    let v = json(&["validate", file, "--gpu", "h100-sxm", "--json"]);
    assert_eq!(v["example"], true);
    let rows = v["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        let (m, p) = (
            r["measured_s"].as_f64().unwrap(),
            r["predicted_s"].as_f64().unwrap(),
        );
        assert!((r["error"].as_f64().unwrap() - (p / m - 1.0)).abs() < 1e-9);
    }
    let mape = v["mape"].as_f64().unwrap();
    let mean = rows
        .iter()
        .map(|r| r["error"].as_f64().unwrap().abs())
        .sum::<f64>()
        / rows.len() as f64;
    assert!((mape - mean).abs() < 1e-12);
    let (code, out, _) = roofline(&["validate", file, "--gpu", "h100-sxm", "--markdown"]);
    assert_eq!(code, 0);
    assert!(out.contains("synthetic EXAMPLE"), "{out}");
    // The device in the example is no real GPU: without --gpu the command says so.
    let (code, _, err) = roofline(&["validate", file]);
    assert_eq!(code, 2);
    assert!(err.contains("--gpu"), "{err}");
}

#[test]
fn audit_checks_every_claim_of_the_example_plan() {
    let plan = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/plans/jit-b4-8xh200.toml"
    );
    let v = json(&["audit", plan, "--json"]);
    let checks = v["checks"].as_array().unwrap();
    let verdict = |topic: &str| -> Vec<String> {
        checks
            .iter()
            .filter(|c| c["topic"] == topic)
            .map(|c| c["verdict"].as_str().unwrap().to_string())
            .collect()
    };
    // The note's ~2000 TFLOP/s is the 2:4-sparse figure and its memory is HBM3e, not HBM3.
    assert_eq!(verdict("GPU bf16 peak"), ["wrong"]);
    assert_eq!(verdict("GPU memory technology"), ["wrong"]);
    assert_eq!(verdict("GPU memory"), ["holds"]);
    assert_eq!(verdict("global batch"), ["holds"]);
    assert_eq!(verdict("fits in memory"), ["holds"]);
    assert_eq!(verdict("what a token is"), ["wrong"]);
    assert_eq!(verdict("throughput"), ["too-pessimistic"; 3]);
    assert_eq!(verdict("slowdown"), ["does-not-apply"; 2]);
    // The implied MFU of a claim is samples/s x FLOPs per sample over the fleet's peak.
    let c0 = &v["claimed"][0];
    let (sps, mfu) = (
        c0["per_reading"][0][0].as_f64().unwrap(),
        c0["per_reading"][0][1].as_f64().unwrap(),
    );
    assert!((sps - 240e3 / 2000.0).abs() < 1e-9);
    let expected = sps * v["model_flops_per_sample"].as_f64().unwrap()
        / (8.0 * v["peak_flops"].as_f64().unwrap());
    assert!((mfu / expected - 1.0).abs() < 1e-12);
    let (code, out, _) = roofline(&["audit", plan]);
    assert_eq!(code, 0);
    assert!(out.contains("| GPU bf16 peak |"), "{out}");
}

#[test]
fn bad_plans_name_the_file_and_the_field() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/plans/jit-b4-8xh200.toml"
    ))
    .unwrap();
    for (from, to, field) in [
        (
            "attention = \"naive\"",
            "attention = \"nave\"",
            "run.attention",
        ),
        (
            "global_batch = 512",
            "global_batch = 512\nglobal_btch = 3",
            "global_btch",
        ),
        (
            "bf16_tflops = 2000",
            "bf16_tflops = -2000",
            "claims.hardware.bf16_tflops",
        ),
        (
            "mode = \"graphs\"",
            "mode = \"graphs\"\nbatch = 0",
            "alternatives[2]",
        ),
        (
            "label = \"FlashAttention-2, torch.compile\"\n",
            "",
            "alternatives[1].label",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let p = temp_spec("plan.toml", &base.replacen(from, to, 1));
        let (code, _, err) = roofline(&["audit", p.to_str().unwrap()]);
        assert_eq!(code, 2, "{to}: {err}");
        assert!(
            err.contains("plan.toml") && err.contains(field),
            "{to}: {err}"
        );
    }
}

/// A plan that does not fit leads with it, marks its throughput hypothetical, and lists changes
/// that fit (each re-estimated: recomputation, ZeRO, the largest batch that fits); exit 0, the
/// estimate itself succeeded.
#[test]
fn a_plan_that_does_not_fit_says_so_first() {
    let args = [
        "estimate",
        "--model",
        "llama2-7b",
        "--gpu",
        "h100-sxm",
        "--zero",
        "2",
    ];
    let (code, out, _) = roofline(&args);
    assert_eq!(code, 0);
    let first = out
        .lines()
        .skip_while(|l| !l.is_empty())
        .nth(1)
        .unwrap_or("");
    assert!(first.starts_with("DOES NOT FIT"), "{out}");
    assert!(out.contains("fits with --"), "{out}");
    assert!(out.contains("(hypothetical: does not fit)"), "{out}");
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let v = json(&with_json);
    assert_eq!(v["fits"], false);
    let fixes = v["fixes_to_fit"].as_array().unwrap();
    assert!(!fixes.is_empty());
    for f in fixes {
        assert!(
            f["memory_per_gpu_bytes"].as_f64().unwrap()
                <= v["memory_capacity_bytes"].as_f64().unwrap()
        );
    }
    // A plan that fits has no fixes.
    let v = json(&["estimate", "--json"]);
    assert_eq!(v["fits"], true);
    assert!(v.get("fixes_to_fit").is_none());
}

/// GPU names: aliases listed in the GPU files and any case are accepted; an unknown name is
/// answered with the names it starts, and a path works only for spec files.
#[test]
fn gpu_aliases_and_suggestions() {
    for alias in ["h100", "H100", "a100", "A100-80GB", "h200"] {
        let (code, out, err) = roofline(&["estimate", "--gpu", alias, "--json"]);
        assert_eq!(code, 0, "{alias}: {err}");
        assert!(out.contains("\"gpu\""), "{alias}");
    }
    let (code, _, err) = roofline(&["estimate", "--gpu", "h100-p"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `h100-pcie`"), "{err}");
    let (code, _, err) = roofline(&["estimate", "--gpu", "h1"]);
    assert_eq!(code, 2);
    assert!(err.contains("`h100-sxm` or `h100-pcie`"), "{err}");
    assert!(err.contains("a path to a TOML file also works"), "{err}");
    let (code, _, err) = roofline(&["estimate", "--precision", "fp1"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `fp16`"), "{err}");
    assert!(!err.contains("TOML"), "{err}");
}

/// Negative numbers reach the value checks (not "unexpected argument"), and a fleet that is
/// not a whole number of nodes says which would be.
#[test]
fn numbers_are_checked_not_misparsed() {
    for (flag, value) in [
        ("--gpus", "-1"),
        ("--batch", "-5"),
        ("--price-per-gpu-hour", "-1"),
        ("--zero", "-1"),
    ] {
        let (code, _, err) = roofline(&["estimate", flag, value]);
        assert_eq!(code, 2, "{flag} {value}");
        assert!(!err.contains("unexpected argument"), "{err}");
        assert!(err.contains(flag) && err.contains(value), "{err}");
    }
    let (code, _, err) = roofline(&["estimate", "--gpus", "12"]);
    assert_eq!(code, 2);
    assert!(err.contains("use 8 or 16"), "{err}");
}

/// `models` and `gpus` print JSON: every embedded model and GPU, with aliases.
#[test]
fn catalogs_print_json() {
    let m = json(&["models", "--json"]);
    let rows = m.as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["name"] == "mixtral-8x7b" && r["active"].as_u64() < r["params"].as_u64()));
    let g = json(&["gpus", "--json"]);
    let rows = g.as_array().unwrap();
    let a100 = rows.iter().find(|r| r["name"] == "a100-sxm-80gb").unwrap();
    assert!(a100["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "a100"));
    assert!(a100["hbm_capacity_bytes"].as_f64().unwrap() > 8e10);
}

/// `--vary` ranges: a..b doubles, a..b:s steps, a..b:xN multiplies; the sweep says what a range
/// expands to; a range that never ends or has too many values is refused.
#[test]
fn vary_ranges_expand_as_documented() {
    use roofline::analysis::sweep::parse_vary;
    let labels = |s: &str| parse_vary(s).unwrap().labels.join(",");
    assert_eq!(labels("batch=100..300"), "100,200");
    assert_eq!(labels("batch=100..300:50"), "100,150,200,250,300");
    assert_eq!(labels("batch=1..1000:x10"), "1,10,100,1000");
    assert!(parse_vary("batch=1..1e9:1").is_err());
    assert!(parse_vary("batch=1..8:x1").is_err());
    let out = std::env::temp_dir().join(format!("roofline-vary-{}.csv", std::process::id()));
    let (code, _, err) = roofline(&[
        "sweep",
        "--vary",
        "batch=8..32",
        "--out",
        out.to_str().unwrap(),
    ]);
    std::fs::remove_file(&out).ok();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--vary batch=8..32: 8, 16, 32"), "{err}");
}

/// flash-report names its files after every setting that differs from the defaults, so a run
/// with another batch never overwrites the committed report.
#[test]
fn flash_report_names_carry_the_settings() {
    let dir = std::env::temp_dir().join(format!("roofline-flash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (code, _, err) = roofline(&[
        "flash-report",
        "--batch",
        "32",
        "--mode",
        "compiled",
        "--out-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for ext in ["md", "svg", "png"] {
        let f = dir.join(format!("flash-jit-b4-h200-sxm-batch32-compiled.{ext}"));
        assert!(f.is_file(), "{} missing", f.display());
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Sweeps carry cost: price per GPU-hour, cost per step, and with a dataset the training time,
/// GPU-hours and cost of every row; cost is a chart metric.
#[test]
fn sweeps_carry_cost() {
    let dir = std::env::temp_dir().join(format!("roofline-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("s.json");
    let (code, _, err) = roofline(&[
        "sweep",
        "--vary",
        "gpu=h100-sxm,b200",
        "--train-tokens",
        "10B",
        "--metric",
        "train_cost_usd",
        "--out",
        out.to_str().unwrap(),
        "--plot",
        dir.join("s.svg").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let (price, hours, cost) = (
            r["usd_per_gpu_hour"].as_f64().unwrap(),
            r["gpu_hours"].as_f64().unwrap(),
            r["train_cost_usd"].as_f64().unwrap(),
        );
        assert!((cost / (price * hours) - 1.0).abs() < 1e-9, "{r}");
        let per_step = r["cost_per_step_usd"].as_f64().unwrap();
        let step = r["step_time_s"].as_f64().unwrap();
        assert!((per_step / (step / 3600.0 * 8.0 * price) - 1.0).abs() < 1e-9);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn settings_not_given_come_from_the_model_file_and_are_named() {
    // JiT's public code compiles its blocks: the default estimate is compiled, and says why.
    let v = json(&["estimate", "--json"]);
    assert_eq!(v["mode"], "compiled");
    let first = v["assumptions"][0].as_str().unwrap();
    assert!(
        first.contains("models/jit-b4.toml") && first.contains("mode compiled"),
        "{first}"
    );
    // A flag wins over the model file, and is not listed as a default.
    let v = json(&["estimate", "--json", "--mode", "eager"]);
    assert_eq!(v["mode"], "eager");
    assert!(!v["assumptions"][0].as_str().unwrap().contains("mode "));
    // A model without [defaults] says that roofline's own were used.
    let v = json(&["estimate", "--model", "llama2-7b", "--json"]);
    let first = v["assumptions"][0].as_str().unwrap();
    assert!(first.contains("roofline's own defaults"), "{first}");
    assert_eq!(v["batch_per_gpu"], 64);
    // Each model of a sweep gets its own file's defaults.
    let out = temp_spec("defaults-sweep.json", "");
    let (code, _, err) = roofline(&[
        "sweep",
        "--vary",
        "model=jit-b4,gpt2-124m",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows[0]["batch_per_gpu"], 64, "{}", rows[0]);
    assert_eq!(rows[0]["mode"], "compiled");
    assert_eq!(rows[1]["batch_per_gpu"], 12);
    assert_eq!(rows[1]["attention"], "flash2");
}

#[test]
fn a_bad_model_default_names_the_file_and_field() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/jit-b4.toml"))
        .unwrap()
        .replace("mode = \"compiled\"", "mode = \"turbo\"");
    let path = temp_spec("bad-defaults.toml", &text);
    let (code, _, err) = roofline(&["estimate", "--model", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad-defaults.toml") && err.contains("defaults.mode") && err.contains("turbo"),
        "{err}"
    );
}

#[test]
fn the_interval_carries_to_training_time_and_cost() {
    let v = json(&["estimate", "--json", "--interval", "--train-tokens", "1T"]);
    let pair = |k: &str| -> [f64; 2] {
        let a = v[k].as_array().unwrap_or_else(|| panic!("{k} missing"));
        [a[0].as_f64().unwrap(), a[1].as_f64().unwrap()]
    };
    let (t, c, p) = (
        pair("train_time_interval_s"),
        pair("cost_interval_usd"),
        pair("price_range_usd_per_gpu_hour"),
    );
    let (time, cost) = (
        v["train_time_s"].as_f64().unwrap(),
        v["cost"].as_f64().unwrap(),
    );
    assert!(t[0] <= time && time <= t[1], "{t:?} vs {time}");
    // The cost interval spans the price range, and its ends are time x GPUs x price bounds (the
    // point cost is at the file's list price, which may be an end of the range of offers).
    let price = v["price_per_gpu_hour"].as_f64().unwrap();
    assert!(p[0] <= price && price <= p[1], "{p:?} {price}");
    assert!(c[0] < c[1] && c[0] < cost, "{c:?} vs {cost}");
    let gpu_hours = |s: f64| s / 3600.0 * 8.0;
    assert!(c[0] >= gpu_hours(t[0]) * p[0] * 0.9, "{c:?} {t:?} {p:?}");
    assert!(c[1] <= gpu_hours(t[1]) * p[1] * 1.1, "{c:?} {t:?} {p:?}");
    // The model's own error widens the spec-range interval, and names its validation set.
    let spec = pair("step_time_interval_s");
    let wide = pair("step_time_interval_with_model_error_s");
    let e = v["model_error"]["fraction"].as_f64().unwrap();
    assert!((0.01..0.5).contains(&e), "{e}");
    assert!(
        (wide[0] - spec[0] * (1.0 - e)).abs() < 1e-12
            && (wide[1] - spec[1] * (1.0 + e)).abs() < 1e-12
    );
    assert!(v["model_error"]["basis"]
        .as_str()
        .unwrap()
        .contains("measurements.json"));
    let t_spec = [spec[0] * (t[0] / wide[0]), spec[1] * (t[1] / wide[1])];
    assert!((t[0] / wide[0] - t_spec[0] / spec[0]).abs() < 1e-6);
    // Beyond one node with model parallelism, Korthikanti et al.'s Table 5 is a basis too.
    let far = json(&[
        "estimate",
        "--json",
        "--interval",
        "--model",
        "megatron-22b",
        "--gpu",
        "a100-sxm-80gb",
        "--gpus",
        "16",
        "--tp",
        "8",
        "--batch",
        "1",
        "--attention",
        "flash2",
    ]);
    let basis = far["model_error"]["basis"].as_str().unwrap();
    let fe = far["model_error"]["fraction"].as_f64().unwrap();
    assert!(fe >= e || basis.contains("Table 5"), "{basis}");
    // One price given: the cost interval is the time interval times it.
    let v = json(&[
        "estimate",
        "--json",
        "--interval",
        "--train-tokens",
        "1T",
        "--price-per-gpu-hour",
        "2",
    ]);
    let c = v["cost_interval_usd"].as_array().unwrap();
    let t = v["train_time_interval_s"].as_array().unwrap();
    let hi = t[1].as_f64().unwrap() / 3600.0 * 8.0 * 2.0;
    assert!((c[1].as_f64().unwrap() / hi - 1.0).abs() < 0.01);
}
