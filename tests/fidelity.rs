//! The mechanism switches of the fidelity report: each turns off one mechanism, which changes
//! the step time of a run that exercises it in the direction the mechanism explains, and the
//! report's "as it ships" errors are the plain validation's.

use roofline::analysis::fidelity::fidelity;
use roofline::analysis::published::{self, PublishedRuns};
use roofline::cli::parse_scenario;
use roofline::estimate::Estimator;
use roofline::time::{Mechanisms, MECHANISMS};
use roofline::validate::{validate, Measurements, H100_MEASUREMENTS};

/// Step time of the scenario given by `args` with only `mechanisms` on.
fn step_s(args: &[&str], mechanisms: Mechanisms) -> f64 {
    let mut s = parse_scenario(args).unwrap();
    s.machine.mechanisms = mechanisms;
    Estimator::new()
        .estimate(&s.model, &s.machine, &s.run)
        .unwrap()
        .step_time
        .0
}

/// [`step_s`] with the mechanism called `name` off, and with everything on.
fn without(args: &[&str], name: &str) -> (f64, f64) {
    let m = MECHANISMS.iter().find(|m| m.name == name).unwrap();
    let mut off = Mechanisms::ALL;
    (m.off)(&mut off);
    (step_s(args, off), step_s(args, Mechanisms::ALL))
}

#[test]
fn fsdp_without_the_overlap_model_hides_all_its_communication() {
    // Llama 3 8B under FSDP on 8 H100: the per-block gathers and reduce-scatters expose some
    // communication and NCCL slows the compute; "everything hides" predicts a faster step.
    let args = [
        "--model",
        "llama3-8b",
        "--gpu",
        "h100-sxm",
        "--gpus",
        "8",
        "--zero",
        "3",
        "--batch",
        "1",
    ];
    let (off, on) = without(&args, "data-parallel overlap");
    assert!(off < on, "off {off} on {on}");
}

#[test]
fn compiled_gpt2_without_padding_or_the_fused_loss_is_slower() {
    // GPT-2's vocabulary of 50257 is misaligned; nanoGPT's defaults compile it.
    let args = ["--model", "gpt2-124m", "--gpu", "h100-sxm", "--gpus", "1"];
    let (off, on) = without(&args, "compiled shape padding");
    assert!(off > on, "padding: off {off} on {on}");
    let (off, on) = without(&args, "Inductor-fused cross-entropy");
    assert!(off > on, "fused loss: off {off} on {on}");
    // Eager runs are untouched by either.
    let eager = [&args[..], &["--mode", "eager"]].concat();
    let (off, on) = without(&eager, "compiled shape padding");
    assert_eq!(off, on);
    let (off, on) = without(&eager, "Inductor-fused cross-entropy");
    assert_eq!(off, on);
}

#[test]
fn long_causal_flash_attention_without_the_cap_or_the_table_runs_faster() {
    let args = [
        "--model",
        "llama3-8b",
        "--gpu",
        "a100-sxm-80gb",
        "--gpus",
        "1",
        "--seq",
        "32768",
        "--attention",
        "flash2",
        "--batch",
        "1",
        "--checkpointing",
        "full",
    ];
    // The A100's table holds FA2 at its 16k rate; without it, the law grows to the cap, and
    // without the cap too, to the GEMM ceiling.
    let (law, table) = without(&args, "published attention tables");
    assert!(law < table, "law {law} table {table}");
    let mut no_table = Mechanisms::ALL;
    no_table.attention_table = false;
    let mut neither = no_table;
    neither.attention_cap = false;
    let (uncapped, capped) = (step_s(&args, neither), step_s(&args, no_table));
    assert!(uncapped < capped, "uncapped {uncapped} capped {capped}");
    // With the table, the cap has nothing left to cap.
    let (off, on) = without(&args, "fused-attention cap");
    assert_eq!(off, on);
}

#[test]
fn the_report_as_it_ships_is_the_plain_validation() {
    let (path, text) = H100_MEASUREMENTS;
    let m: Measurements = serde_json::from_str(text).unwrap();
    let table5 = PublishedRuns::korthikanti_table5().unwrap();
    let f = fidelity(&[(&m, path, "h100-sxm")], &[(&table5, "test")]).unwrap();
    let plain = validate(&m, path, "h100-sxm", None).unwrap();
    assert_eq!(f.all_on[0].mean_abs, plain.mape);
    assert_eq!(f.all_on[0].max_abs.0, plain.max_error);
    let t5 = published::validate(&table5).unwrap();
    assert_eq!(f.all_on[1].mean_abs, t5.mean_abs_error);
    assert_eq!(f.mechanisms.len(), MECHANISMS.len());
    // Table 5's Megatron runs compute their loss compiled: the fused-loss switch moves them.
    let fused = f
        .mechanisms
        .iter()
        .find(|m| m.name == "Inductor-fused cross-entropy")
        .unwrap();
    assert!(f.all_on[1].changed_from(&fused.without[1]).0 > 0);
}

#[test]
fn the_h100_misaligned_gemm_ceiling_is_the_profiled_lm_heads_flop_weighted_rate() {
    // The H100 file's `achievable.misaligned_gemm` is read off the committed profile: the
    // total FLOPs of GPT-2's three LM-head GEMMs (alignment-1 cutlass kernels) over their total
    // time, per run, median over the gpt2-124m runs. Recomputed here so the constant cannot
    // drift from its measurement.
    let doc: serde_json::Value = serde_json::from_str(H100_MEASUREMENTS.1).unwrap();
    let gpu = roofline::spec::load_gpu("h100-sxm").unwrap();
    let peak = gpu.peak_flops.bf16_tensor.value;
    let mut rates: Vec<f64> = doc["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["model"] == "gpt2-124m" && c["error"].is_null())
        .map(|c| {
            let batch = c["batch"].as_f64().unwrap();
            let flops = 2.0 * batch * 1024.0 * 768.0 * 50257.0;
            let align1: Vec<&serde_json::Value> = c["top_kernels"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["name"].as_str().unwrap().contains("_align1>"))
                .collect();
            assert_eq!(align1.len(), 3, "forward, dgrad and wgrad of the LM head");
            let time: f64 = align1
                .iter()
                .map(|k| k["time_s_per_step"].as_f64().unwrap())
                .sum();
            3.0 * flops / time / peak
        })
        .collect();
    assert_eq!(rates.len(), 6);
    rates.sort_by(f64::total_cmp);
    let median = 0.5 * (rates[2] + rates[3]);
    let stated = gpu.achievable.misaligned_gemm.as_ref().unwrap().value;
    assert!((stated - median).abs() < 0.002, "{stated} vs {median}");
}

#[test]
fn the_h100_profiles_host_bound_runs_are_named_as_such() {
    // GPU busy under 75% of the measured step marks a run as host-bound: in the committed
    // profile only jit-b4 flash2 eager at batch 8 (28 of 65.5 ms) and 16 (52 of 74.6 ms), the
    // two largest errors; every other run kept the GPU at least 80% busy.
    let (path, text) = H100_MEASUREMENTS;
    let m: Measurements = serde_json::from_str(text).unwrap();
    let v = validate(&m, path, "h100-sxm", None).unwrap();
    assert_eq!(
        v.host_bound(),
        ["jit-b4 b8 flash2 eager", "jit-b4 b16 flash2 eager"]
    );
    for r in &v.rows {
        let (measured, predicted) = r.gpu_busy.unwrap();
        assert!((0.0..=1.05).contains(&measured), "{}: {measured}", r.config);
        assert!(
            (0.0..=1.0).contains(&predicted),
            "{}: {predicted}",
            r.config
        );
        if !r.host_bound() {
            assert!(measured >= 0.8, "{}: {measured}", r.config);
        }
    }
    let text = roofline::export::text::validation(&v);
    assert!(
        text.contains("host-bound as measured (jit-b4 b8 flash2 eager, jit-b4 b16 flash2 eager)")
    );
    // Both were timed after the first configuration's profile, without CUPTI teardown; the
    // first configuration (jit-b4 b8 naive eager) before any.
    assert!(!v.rows[0].cupti_attached && v.rows[1..].iter().all(|r| r.cupti_attached));
    assert!(text.contains(
        "timed with CUPTI attached (jit-b4 b8 flash2 eager, jit-b4 b16 flash2 eager): an earlier \
         profile in the same process left it attached"
    ));
    // The error over the other 16 runs is shown beside the validation's own.
    let (mape, max, n) = v.without_cupti_host_bound().unwrap();
    let others: Vec<f64> = v
        .rows
        .iter()
        .filter(|r| !r.host_bound())
        .map(|r| r.error.abs())
        .collect();
    assert_eq!(n, 16);
    assert_eq!(max, others.iter().copied().fold(0.0, f64::max));
    assert!((mape - others.iter().sum::<f64>() / 16.0).abs() < 1e-12);
    assert!(mape < v.mape && max < v.max_error);
    assert!(text.contains(&format!(
        "step time over the other 16 configurations: mean absolute error {:.1}%, max {:.1}%",
        100.0 * mape,
        100.0 * max
    )));
}

/// The H100 file with `doc`'s edits, validated: the comparison, or the error's message.
fn validate_edited(doc: &serde_json::Value) -> Result<roofline::validate::Validation, String> {
    let m: Measurements = serde_json::from_value(doc.clone()).unwrap();
    validate(&m, H100_MEASUREMENTS.0, "h100-sxm", None).map_err(|e| e.to_string())
}

/// [`validate_edited`]'s text output.
fn shown_edited(doc: &serde_json::Value) -> String {
    roofline::export::text::validation(&validate_edited(doc).unwrap())
}

#[test]
fn a_repeated_measurement_is_shown_beside_the_first_and_checked_like_it() {
    // measure.py measures host-bound runs a second time at the end of the run; validation
    // compares the first and prints how far the repeat moved, with the error against it.
    let mut doc: serde_json::Value = serde_json::from_str(H100_MEASUREMENTS.1).unwrap();
    doc["configs"][1]["repeat"] =
        serde_json::json!({"step_time_s": 0.05, "host_step_time_s": 0.049, "error": null});
    assert_eq!(doc["configs"][1]["attention"], "flash2");
    let v = validate_edited(&doc).unwrap();
    let row = &v.rows[1];
    assert_eq!(row.config, "jit-b4 b8 flash2 eager");
    assert_eq!(row.repeat_s, Some(0.05));
    assert!(v.rows.iter().filter(|r| r.repeat_s.is_some()).count() == 1);
    let shown = roofline::export::text::validation(&v);
    let again = 100.0 * (row.predicted_s / 0.05 - 1.0);
    let moved = 100.0 * (0.05 / row.measured_s - 1.0);
    assert!(
        shown.contains(&format!(
            "measured again at the end of the run: jit-b4 b8 flash2 eager 50.00 ms (first 65.53 \
             ms, {moved:+.1}%; error against the repeat {again:+.1}%)"
        )),
        "{shown}"
    );
    // A configuration timed again right after its profile (--retime-after-profile) is shown
    // with the change; where the first timing itself had CUPTI attached (every run after the
    // first profile of this file), the line says so.
    for (i, after, line) in [
        (
            0,
            0.05323,
            "timed again right after its profile (CUPTI left attached): jit-b4 b8 naive eager \
             53.23 ms (before it 48.39 ms, +10.0%)",
        ),
        (
            2,
            0.08,
            "jit-b4 b16 naive eager 80.00 ms (before it 76.79 ms, itself timed with CUPTI \
             attached from an earlier profile, +4.2%)",
        ),
    ] {
        let mut edited = doc.clone();
        edited["configs"][i]["after_profile"] =
            serde_json::json!({"step_time_s": after, "cupti_teardown": false});
        let shown = shown_edited(&edited);
        assert!(shown.contains(line), "{shown}");
    }
    // Its time is checked like the others.
    let mut edited = doc.clone();
    edited["configs"][0]["after_profile"] = serde_json::json!({"step_time_s": 1e9});
    let err = validate_edited(&edited).unwrap_err();
    assert!(
        err.contains("configs[0].after_profile.step_time_s"),
        "{err}"
    );
    // A repeat that failed (or did not run) is not shown, whatever times it left.
    doc["configs"][1]["repeat"]["error"] = serde_json::json!("OutOfMemoryError: x");
    let v = validate_edited(&doc).unwrap();
    assert_eq!(v.rows[1].repeat_s, None);
    assert!(!roofline::export::text::validation(&v).contains("measured again"));
    // The repeat's numbers are held to the same contract as the first's.
    doc["configs"][1]["repeat"]["step_time_s"] = serde_json::json!(-1.0);
    let err = validate_edited(&doc).unwrap_err();
    assert!(
        err.contains("repeat.step_time_s") && err.contains("-1"),
        "{err}"
    );
}
