//! A mutation fuzzer of the input contract, in process. Its corpus is the committed files: model
//! and GPU specs, calibrations, plan files, the training-step measurements, the bench report and
//! the Hugging Face config.json samples of tests/hf.
//! Each case applies one to three mutations to one file (a number replaced by an extreme or
//! scaled value, a string replaced, a line deleted, duplicated or cut) and runs the reader, then
//! the estimate, validation, calibration or audit on what it accepts. The contract: nothing
//! panics (overflow checks are on in test builds), every error is bad input (exit code 2, never
//! an internal error), and every figure that reaches output is finite. A further target drives
//! the command-line options with extreme values.
//!
//! CI runs a fixed number of cases per target (seeded, reproducible). A longer run:
//! `ROOFLINE_FUZZ_CASES=200000 cargo test --release --test fuzz`; `ROOFLINE_FUZZ_SEED` changes
//! the seed. A failure prints the mutated input.

use roofline::analysis::uncertainty::SplitMix64;
use roofline::error::{Error, Result};
use roofline::estimate::{Estimator, RunConfig};
use roofline::graph::{AttentionImpl, ExecMode, StepConfig};
use roofline::spec::{load_gpu, load_model, GpuSpec, ModelSpec};
use roofline::time::{Calibration, Machine};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn cases() -> usize {
    std::env::var("ROOFLINE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn seed(target: u64) -> u64 {
    std::env::var("ROOFLINE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00F0_2226)
        ^ target.wrapping_mul(0x9E37_79B9)
}

/// The corpus files under `dir` with extension `ext`.
fn corpus(dir: &str, ext: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

const EXTREMES: [&str; 18] = [
    "0",
    "-1",
    "-0",
    "1e-300",
    "5e-324",
    "1e308",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "18446744073709551615",
    "1099511627776",
    "4294967297",
    "1",
    "2",
    "3.5",
    "1e9",
    "1e15",
];

const STRINGS: [&str; 10] = [
    "",
    "x",
    "naive",
    "flash3",
    "rmsnorm",
    "bottleneck",
    "2d",
    "adaln-zero",
    "language",
    "h100-sxm",
];

fn pick<'a, T>(rng: &mut SplitMix64, v: &'a [T]) -> &'a T {
    &v[(rng.next_u64() % v.len() as u64) as usize]
}

/// Spans of number literals in `text`.
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut v = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts =
            b[i].is_ascii_digit() || (b[i] == b'-' && i + 1 < b.len() && b[i + 1].is_ascii_digit());
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if starts && boundary {
            let s = i;
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_digit() || matches!(b[i], b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                i += 1;
            }
            v.push((s, i));
        } else {
            i += 1;
        }
    }
    v
}

/// Spans of double-quoted string contents in `text`.
fn strings(text: &str) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut open = None;
    for (i, c) in text.char_indices() {
        if c == '"' {
            match open.take() {
                Some(s) => v.push((s, i)),
                None => open = Some(i + 1),
            }
        }
    }
    v
}

/// One random mutation of `text`.
fn mutate_once(rng: &mut SplitMix64, text: &str) -> String {
    let choice = rng.next_u64() % 10;
    match choice {
        0..=5 => {
            let spans = numbers(text);
            if spans.is_empty() {
                return text.to_string();
            }
            let (s, e) = *pick(rng, &spans);
            let new = if rng.next_f64() < 0.7 {
                pick(rng, &EXTREMES).to_string()
            } else {
                let x: f64 = text[s..e].parse().unwrap_or(1.0);
                let k = pick(rng, &[1e-6, 1e-3, 0.5, 2.0, 1e3, 1e6]);
                format!("{:?}", x * k)
            };
            format!("{}{new}{}", &text[..s], &text[e..])
        }
        6 => {
            let spans = strings(text);
            if spans.is_empty() {
                return text.to_string();
            }
            let (s, e) = *pick(rng, &spans);
            format!("{}{}{}", &text[..s], pick(rng, &STRINGS), &text[e..])
        }
        7 | 8 => {
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return text.to_string();
            }
            let i = (rng.next_u64() % lines.len() as u64) as usize;
            if choice == 7 {
                lines.remove(i);
            } else {
                lines.insert(i, lines[i]);
            }
            lines.join("\n")
        }
        _ => {
            let cut = (rng.next_u64() % (text.len() as u64 + 1)) as usize;
            let cut = (0..=cut)
                .rev()
                .find(|c| text.is_char_boundary(*c))
                .unwrap_or(0);
            text[..cut].to_string()
        }
    }
}

/// One to three mutations.
fn mutate(rng: &mut SplitMix64, text: &str) -> String {
    let n = 1 + rng.next_u64() % 3;
    (0..n).fold(text.to_string(), |t, _| mutate_once(rng, &t))
}

/// The contract on one result: bad input only (exit 2), finite output.
fn accept<T: serde::Serialize>(r: Result<T>, input: &str) -> Option<T> {
    match r {
        Ok(v) => {
            if let Err(e) = roofline::export::json::to_string(&v) {
                panic!("output not finite ({e}) for input:\n{input}");
            }
            Some(v)
        }
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "internal error `{e}` for input:\n{input}");
            None
        }
    }
}

/// Runs `case` on `cases()` mutations of the corpus; a panic fails with the input.
fn fuzz(target: u64, corpus: &[String], case: impl Fn(&str)) {
    let mut rng = SplitMix64::new(seed(target));
    for i in 0..cases() {
        let file = pick(&mut rng, corpus).clone();
        let input = mutate(&mut rng, &file);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| case(&input))) {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("case {i} of target {target}: {msg}\n--- input ---\n{input}");
        }
    }
}

fn runs() -> [RunConfig; 3] {
    let run = |attention, mode, zero, gpus| RunConfig {
        step: StepConfig {
            attention,
            batch: 4,
            ema: 1,
            ..StepConfig::default()
        },
        mode,
        zero,
        fleet: roofline::time::Fleet {
            gpus,
            ..roofline::time::Fleet::default()
        },
        ..RunConfig::default()
    };
    [
        run(AttentionImpl::Naive, ExecMode::Eager, 0, 8),
        run(AttentionImpl::Flash2, ExecMode::Compiled, 3, 16),
        run(AttentionImpl::SdpaMath, ExecMode::Graphs, 1, 1),
    ]
}

fn estimate_all(model: &ModelSpec, gpu: &GpuSpec, cal: Option<&Calibration>, input: &str) {
    let mach = Machine::new(gpu, cal);
    let mut est = Estimator::new();
    for run in runs() {
        if let Some(e) = accept(est.estimate(model, &mach, &run), input) {
            assert!(e.step_time.0 > 0.0 && e.mfu <= 1.0, "{input}");
        }
    }
}

#[test]
fn model_specs() {
    let gpu = load_gpu("h100-sxm").unwrap();
    fuzz(1, &corpus("models", "toml"), |text| {
        if let Some(m) = accept(ModelSpec::from_toml(text, "fuzz.toml"), text) {
            estimate_all(&m, &gpu, None, text);
        }
    });
}

#[test]
fn hugging_face_configs() {
    let gpu = load_gpu("h100-sxm").unwrap();
    fuzz(8, &corpus("tests/hf", "json"), |text| {
        let imported = roofline::spec::hf::import(text, "fuzz.json", "fuzz");
        if let Some(m) = accept(imported.map(|i| i.model), text) {
            // The sequence of a config.json is its RoPE range (up to 2^26 here): estimate at a
            // short one so that a case stays fast.
            if let Some(m) = accept(m.with_sequence(m.max_seq().min(256)), text) {
                estimate_all(&m, &gpu, None, text);
            }
        }
    });
}

#[test]
fn gpu_specs() {
    let model = load_model("gpt2-124m").unwrap();
    fuzz(2, &corpus("models/hardware", "toml"), |text| {
        if let Some(g) = accept(GpuSpec::from_toml(text, "fuzz.toml"), text) {
            estimate_all(&model, &g, None, text);
        }
    });
}

#[test]
fn calibrations() {
    let (model, gpu) = (load_model("jit-b4").unwrap(), load_gpu("h100-sxm").unwrap());
    fuzz(3, &corpus("models/calibration", "toml"), |text| {
        let r = Calibration::from_toml(text, "fuzz.toml");
        match r {
            Ok(c) => estimate_all(&model, &gpu, Some(&c), text),
            Err(e) => assert_eq!(e.exit_code(), 2, "{e}"),
        }
    });
}

#[test]
fn networks() {
    fuzz(9, &corpus("models/network", "toml"), |text| {
        accept_plan(
            roofline::spec::NetworkSpec::from_toml(text, "fuzz.toml"),
            text,
        );
    });
}

#[test]
fn published_runs() {
    use roofline::analysis::published::{validate, PublishedRuns};
    fuzz(10, &corpus("validation/published", "toml"), |text| {
        if let Some(p) = accept_plan(
            PublishedRuns::from_toml(text, "validation/published/fuzz.toml"),
            text,
        ) {
            accept(validate(&p), text);
        }
    });
}

#[test]
fn plans() {
    use roofline::analysis::audit::{audit, plan::Plan};
    fuzz(4, &corpus("examples/plans", "toml"), |text| {
        if let Some(p) = accept_plan(Plan::from_toml(text, "fuzz.toml"), text) {
            accept(audit(&p), text);
        }
    });
}

fn accept_plan<T>(r: Result<T>, input: &str) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "internal error `{e}` for input:\n{input}");
            None
        }
    }
}

#[test]
fn measurements_and_validation() {
    use roofline::validate::{validate, Measurements};
    let corpus = corpus("reports/measurements/2026-11-27-h100-sxm", "json")
        .into_iter()
        .filter(|t| t.contains("roofline-validation/1"))
        .collect::<Vec<_>>();
    fuzz(5, &corpus, |text| {
        let Ok(m) = serde_json::from_str::<Measurements>(text) else {
            return;
        };
        accept(validate(&m, "fuzz.json", "h100-sxm", None), text);
    });
}

#[test]
fn bench_reports_and_calibration() {
    use roofline::calibrate::{calibration, fit};
    use roofline::gpu::BenchReport;
    let gpu = load_gpu("h100-sxm").unwrap();
    let corpus = corpus("reports/measurements/2026-11-27-h100-sxm", "json")
        .into_iter()
        .filter(|t| t.contains("roofline-bench/1"))
        .collect::<Vec<_>>();
    fuzz(6, &corpus, |text| {
        let Ok(report) = serde_json::from_str::<BenchReport>(text) else {
            return;
        };
        let Some(f) = accept_plan(fit(&report, &gpu), text) else {
            return;
        };
        if let Some(c) = accept_plan(calibration(&f, &report, &gpu, "fuzz", "fuzz.json"), text) {
            // What calibrate writes, calibrate's reader accepts.
            let back = toml::to_string(&c).unwrap();
            Calibration::from_toml(&back, "written.toml")
                .unwrap_or_else(|e| panic!("written calibration rejected: {e}\n{back}"));
        }
    });
}

#[test]
fn command_line_options() {
    let flags: [(&str, &[&str]); 22] = [
        ("--tp", &["1", "2", "8", "3", "0", "65537"]),
        ("--pp", &["1", "2", "4", "7", "1e9"]),
        ("--vpp", &["1", "2", "3"]),
        ("--cp", &["1", "2", "4"]),
        ("--global-batch", &["1", "64", "512", "1e12", "0"]),
        ("--shard-group", &["1", "2", "8", "0"]),
        ("--ep", &["1", "2", "8"]),
        ("--network", &["ib-ndr-8x400", "ib-hdr-8x200", "nope"]),
        ("--batch", &["1", "3", "1K", "1e9", "9e15", "0.5", "-1"]),
        ("--seq", &["1", "7", "256", "1024", "65536", "1e12"]),
        ("--gpus", &["1", "3", "1K", "1e8", "0"]),
        ("--gpus-per-node", &["1", "2", "1024", "2048"]),
        ("--grad-accum", &["1", "7", "1e10"]),
        ("--zero", &["0", "1", "3", "4"]),
        ("--ema", &["0", "2", "16", "17"]),
        ("--workspace-gib", &["0", "-0", "1e6", "1e308", "nan"]),
        ("--inter-node-gbps", &["0.5", "1", "1e7", "inf"]),
        ("--train-samples", &["1", "1e18", "1e19", "5e-324"]),
        ("--train-tokens", &["1", "1e21", "1e300"]),
        ("--epochs", &["1", "1e6", "1e7", "-0"]),
        ("--price-per-gpu-hour", &["-0", "0", "1e4", "1e308"]),
        (
            "--model",
            &["jit-b4", "gpt2-124m", "llama2-7b", "dit-xl2", "nope"],
        ),
    ];
    let enums: [(&str, &[&str]); 5] = [
        (
            "--attention",
            &["naive", "sdpa-math", "unfused", "flash2", "flash3"],
        ),
        (
            "--precision",
            &["bf16", "bf16-pure", "fp16", "fp32", "tf32", "fp8"],
        ),
        ("--mode", &["eager", "compiled", "graphs"]),
        ("--checkpointing", &["none", "selective", "full"]),
        (
            "--gpu",
            &["h200-sxm", "a100-sxm-80gb", "l40s", "mi300x", "b200"],
        ),
    ];
    let mut rng = SplitMix64::new(seed(7));
    for _ in 0..cases() {
        let mut args: Vec<String> = Vec::new();
        for (flag, values) in flags.iter().chain(enums.iter()) {
            if rng.next_f64() < 0.3 {
                args.push(format!("{flag}={}", pick(&mut rng, values)));
            }
        }
        for flag in ["--sp", "--fsdp", "--tp-overlap", "--nvls"] {
            if rng.next_f64() < 0.2
                && !(flag == "--fsdp" && args.iter().any(|a| a.starts_with("--zero")))
            {
                args.push(flag.to_string());
            }
        }
        if args.iter().any(|a| a.starts_with("--network"))
            && args
                .iter()
                .any(|a| a.starts_with("--gpus-per-node") || a.starts_with("--inter-node-gbps"))
        {
            args.retain(|a| !a.starts_with("--network"));
        }
        if args.iter().any(|a| a.starts_with("--global-batch")) {
            args.retain(|a| !a.starts_with("--grad-accum"));
        }
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let what = format!("estimate {}", words.join(" "));
        let r = catch_unwind(AssertUnwindSafe(|| {
            let s = roofline::cli::parse_scenario(&words)?;
            let e = Estimator::new().estimate(&s.model, &s.machine, &s.run)?;
            Ok::<_, Error>(roofline::analysis::summary::EstimateReport::new(&s, &e))
        }));
        match r {
            Ok(r) => {
                accept(r, &what);
            }
            Err(_) => panic!("{what} panicked"),
        }
    }
}
