//! Sweeps as a buyer uses them: prices varied, configurations that do not fit dropped, the
//! cheapest or fastest configuration that fits named, and prices from different offers flagged.

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

fn rows(path: &std::path::Path) -> Vec<Value> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["rows"].as_array().unwrap().clone()
}

#[test]
fn a_varied_price_changes_the_cost_columns_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let (code, _, err) = roofline(&[
        "sweep",
        "--vary",
        "price=2,4.5",
        "--train-tokens",
        "1T",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = rows(&out);
    assert_eq!(r[0]["step_time_s"], r[1]["step_time_s"]);
    assert_eq!(r[0]["usd_per_gpu_hour"], 2.0);
    assert_eq!(r[1]["usd_per_gpu_hour"], 4.5);
    let (c0, c1) = (
        r[0]["train_cost_usd"].as_f64().unwrap(),
        r[1]["train_cost_usd"].as_f64().unwrap(),
    );
    assert!((c1 / c0 - 2.25).abs() < 1e-12, "{c0} {c1}");
    // A price is a list of positive numbers, not a range.
    for bad in ["price=2..8", "price=-1", "price=cheap", "price=1e9"] {
        let (code, _, err) = roofline(&["sweep", "--vary", bad, "--out", out.to_str().unwrap()]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("price"), "{bad}: {err}");
    }
}

#[test]
fn fits_only_drops_what_does_not_fit_and_the_objective_names_the_best_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.json");
    let fit = dir.path().join("fit.json");
    let base = [
        "sweep",
        "--model",
        "llama2-7b",
        "--gpu",
        "h100-sxm",
        "--zero",
        "3",
        "--attention",
        "flash2",
        "--vary",
        "batch=1..16",
        "--vary",
        "checkpointing=none,full",
    ];
    let run = |extra: &[&str], out: &std::path::Path| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let (code, stdout, err) = roofline(&args);
        assert_eq!(code, 0, "{err}");
        (stdout, err)
    };
    run(&[], &all);
    let (stdout, err) = run(&["--fits-only", "--objective", "time", "--top", "3"], &fit);
    let (all, fit) = (rows(&all), rows(&fit));
    let fitting: Vec<&Value> = all.iter().filter(|r| r["fits"] == true).collect();
    assert!(
        !fitting.is_empty() && fitting.len() < all.len(),
        "{}",
        all.len()
    );
    assert_eq!(fit.len(), fitting.len());
    assert!(fit.iter().all(|r| r["fits"] == true));
    assert!(
        err.contains(&format!("wrote {} of {}", fit.len(), all.len())),
        "{err}"
    );
    // The best by time is the fitting row with the most samples per second.
    let best = fitting
        .iter()
        .max_by(|a, b| {
            a["samples_per_s"]
                .as_f64()
                .partial_cmp(&b["samples_per_s"].as_f64())
                .unwrap()
        })
        .unwrap();
    let first = stdout.lines().nth(1).unwrap();
    assert!(stdout.starts_with("best by time"), "{stdout}");
    assert!(
        first.contains(&format!("batch {} x", best["batch_per_gpu"]))
            && first.contains(&format!(
                "checkpointing {}",
                best["checkpointing"].as_str().unwrap()
            )),
        "{first} vs {best}"
    );
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
}

#[test]
fn prices_from_different_offers_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.csv");
    let (code, _, err) = roofline(&[
        "sweep",
        "--vary",
        "gpu=h200-sxm,mi300x",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("different offers") && err.contains("Vultr"),
        "{err}"
    );
    // The same provider and date: no note.
    let (_, _, err) = roofline(&[
        "sweep",
        "--vary",
        "gpu=h200-sxm,h100-sxm",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!err.contains("different offers"), "{err}");
}

#[test]
fn a_price_without_provider_or_with_a_bad_date_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/hardware/h200-sxm.toml"
    ))
    .unwrap();
    let bad = dir.path().join("bad-price.toml");
    std::fs::write(
        &bad,
        text.replace("date = \"2026-09-20\"", "date = \"Sept 2026\""),
    )
    .unwrap();
    let (code, _, err) = roofline(&["estimate", "--gpu", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("price.date") && err.contains("Sept 2026"),
        "{err}"
    );
    std::fs::write(&bad, text.replace("provider = \"CoreWeave\"\n", "")).unwrap();
    let (code, _, err) = roofline(&["estimate", "--gpu", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("provider"), "{err}");
}

#[test]
fn metric_cost_and_time_name_the_training_figures_with_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.csv");
    let plot = dir.path().join("m.svg");
    for (metric, dataset, means) in [
        ("cost", true, "train_cost_usd"),
        ("cost", false, "cost_per_step_usd"),
        ("time", true, "train_time_s"),
        ("time", false, "step_time_s"),
    ] {
        let mut args = vec![
            "sweep",
            "--vary",
            "batch=16,32",
            "--out",
            out.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
            "--metric",
            metric,
        ];
        if dataset {
            args.extend(["--train-tokens", "1T"]);
        }
        let (code, _, err) = roofline(&args);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains(&format!("--metric {metric}: {means}")),
            "{err}"
        );
        let svg = std::fs::read_to_string(&plot).unwrap();
        let words = if means.contains("cost") {
            "cost"
        } else {
            "time"
        };
        assert!(svg.contains(words), "{metric}: {means}");
    }
    let (code, _, err) = roofline(&[
        "sweep",
        "--vary",
        "batch=16",
        "--out",
        out.to_str().unwrap(),
        "--metric",
        "price",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown metric"), "{err}");
}

#[test]
fn fits_only_keeps_the_chart_grid_and_training_metrics_need_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.csv");
    let plot = dir.path().join("g.svg");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "sweep",
            "--vary",
            "batch=64..1024",
            "--vary",
            "attention=naive,flash2",
            "--out",
            out.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, _, err) = roofline(&a);
        assert_eq!(code, 0, "{err}");
        std::fs::read_to_string(&plot).unwrap()
    };
    // With --fits-only the chart still has both lines (naive and flash2), each on its own x
    // positions: the dropped rows are gaps, not shifted points.
    let all = run(&[]);
    let fit = run(&["--fits-only"]);
    for svg in [&all, &fit] {
        assert!(
            svg.contains("\nnaive\n") && svg.contains("\nflash2\n"),
            "{svg}"
        );
    }
    let (code, _, err) = roofline(&[
        "sweep",
        "--vary",
        "batch=16",
        "--out",
        out.to_str().unwrap(),
        "--metric",
        "train_cost_usd",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("needs a dataset"), "{err}");
    let (code, _, err) = roofline(&[
        "sweep",
        "--vary",
        "batch=16",
        "--out",
        out.to_str().unwrap(),
        "--top",
        "3",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--objective"), "{err}");
}

#[test]
fn ops_text_and_json_and_plans_take_the_model_defaults() {
    let (code, out, err) = roofline(&["ops", "--model", "gpt2-124m", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["batch"], 12, "{}", &out[..200.min(out.len())]);
    assert_eq!(v["attention"], "flash2");
    assert!(err.contains("models/gpt2-124m.toml"), "{err}");
    let (_, text, _) = roofline(&["ops", "--model", "gpt2-124m"]);
    assert!(
        text.starts_with("gpt2-124m: batch 12 per GPU, attention flash2"),
        "{text}"
    );
    // A plan whose [run] leaves the mode out runs as the model file says (jit-b4: compiled).
    let dir = tempfile::tempdir().unwrap();
    let plan = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/plans/jit-b4-8xh200.toml"
    ))
    .unwrap()
    .replace("mode = \"eager\"\n", "");
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, plan).unwrap();
    let (code, out, err) = roofline(&["audit", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("compiled"), "{}", &out[..400.min(out.len())]);
}
