//! The published FlashAttention tables of the GPU files: parsing and validation, the rates the
//! time model takes from them (at, between and beyond the tabulated lengths and head
//! dimensions), and what they change against the s/(s + seq_half) law.

use approx::assert_relative_eq;
use roofline::graph::AttentionImpl::{self, Flash2, Flash3};
use roofline::spec::{load_gpu, GpuSpec};
use roofline::time::Machine;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn machine(gpu: &str) -> Machine {
    Machine::new(&load_gpu(gpu).unwrap(), None)
}

/// TFLOP/s of `which` on `m` (forward or backward).
fn tflops(m: &Machine, which: AttentionImpl, seq: u64, d: u64, bwd: bool, causal: bool) -> f64 {
    m.flash_rate(which, seq, d, bwd, causal).unwrap().0 / 1e12
}

/// TFLOP/s of forward + backward together, as FlashAttention's benchmark counts them (3.5 times
/// the forward's FLOPs over the sum of both times).
fn fwd_bwd(m: &Machine, which: AttentionImpl, seq: u64, d: u64, causal: bool) -> f64 {
    let f = tflops(m, which, seq, d, false, causal);
    let b = tflops(m, which, seq, d, true, causal);
    3.5 / (1.0 / f + 2.5 / b)
}

const SEQ: [u64; 6] = [512, 1024, 2048, 4096, 8192, 16384];

#[test]
fn at_the_tabulated_lengths_the_rates_are_the_charts() {
    let h100 = machine("h100-sxm");
    // FA2 on the H100: the forward from the FlashAttention-3 chart and forward + backward from
    // the FlashAttention-2 chart, both met exactly (the backward is derived from the two).
    let fwd = [282.0, 306.0, 318.0, 321.0, 322.0, 324.0];
    let total = [215.0, 254.0, 274.0, 288.0, 294.0, 296.0];
    for (i, &s) in SEQ.iter().enumerate() {
        assert_relative_eq!(
            tflops(&h100, Flash2, s, 64, false, false),
            fwd[i],
            max_relative = 1e-5
        );
        assert_relative_eq!(
            fwd_bwd(&h100, Flash2, s, 64, false),
            total[i],
            max_relative = 1e-5
        );
    }
    // Causal, head dimension 128, long sequence.
    assert_relative_eq!(
        fwd_bwd(&h100, Flash2, 16384, 128, true),
        328.0,
        max_relative = 1e-5
    );
    // FA3's forward; its backward follows the [attention] ratio flash3_bwd / flash3_fwd.
    assert_relative_eq!(
        tflops(&h100, Flash3, 2048, 128, false, false),
        625.0,
        max_relative = 1e-5
    );
    let k = 0.275 / 0.337;
    assert_relative_eq!(
        tflops(&h100, Flash3, 2048, 128, true, false),
        625.0 * k,
        max_relative = 1e-5
    );
    // The A100's chart is forward + backward only: met exactly, split by the file's ratio.
    let a100 = machine("a100-sxm-80gb");
    for (s, want) in [(512, 99.0), (4096, 173.0), (16384, 189.0)] {
        assert_relative_eq!(
            fwd_bwd(&a100, Flash2, s, 128, true),
            want,
            max_relative = 1e-5
        );
    }
    let (f, b) = (
        tflops(&a100, Flash2, 2048, 64, false, false),
        tflops(&a100, Flash2, 2048, 64, true, false),
    );
    assert_relative_eq!(b / f, 0.387 / 0.551, max_relative = 1e-5);
}

#[test]
fn between_and_beyond_the_table_the_rate_is_interpolated_and_held() {
    let h100 = machine("h100-sxm");
    let r = |s, d| tflops(&h100, Flash2, s, d, false, false);
    // Halfway in ln s between 512 and 1024: halfway between the rates.
    assert_relative_eq!(r(724, 64), (282.0 + 306.0) / 2.0, max_relative = 2e-3);
    // Head dimension 96, halfway in ln d? No: ln 96 lies 58.5% of the way from ln 64 to ln 128.
    let w = (96f64.ln() - 64f64.ln()) / (128f64.ln() - 64f64.ln());
    assert_relative_eq!(
        r(2048, 96),
        318.0 * (1.0 - w) + 362.0 * w,
        max_relative = 1e-5
    );
    // Beyond the tabulated head dimensions, the nearest one.
    assert_relative_eq!(r(2048, 256), r(2048, 128), max_relative = 1e-12);
    assert_relative_eq!(r(2048, 32), r(2048, 64), max_relative = 1e-12);
    // Beyond 16k the rate stays at what was measured at 16k: no growth past the chart.
    for s in [32768, 131072] {
        assert_relative_eq!(r(s, 64), r(16384, 64), max_relative = 1e-12);
    }
    // Below 512 it falls as the [attention] law does (s/(s + 256) relative to 512).
    let shape = |s: f64| s / (s + 256.0);
    assert_relative_eq!(
        r(128, 64),
        282.0 * shape(128.0) / shape(512.0),
        max_relative = 1e-5
    );
    // Rates never decrease with length along a chart that never decreases.
    let mut last = 0.0;
    for s in (9..=15).flat_map(|e| [1u64 << e, 3 << (e - 1)]) {
        let x = fwd_bwd(&h100, Flash2, s, 128, true);
        assert!(x >= last - 1e-9, "{s}: {x} after {last}");
        last = x;
    }
}

#[test]
fn long_causal_sequences_run_at_the_charts_rate_not_past_it() {
    // The case: at 32k tokens causal FA2 on an A100 ran at 0.551 x 1.5 = 83% of the peak
    // under the law (no causal factor, capped only at 73%). The chart's best causal figure is
    // 189 TFLOP/s forward + backward (61%), and the table holds it there.
    let a100 = machine("a100-sxm-80gb");
    for d in [64, 128] {
        let r = fwd_bwd(&a100, Flash2, 32768, d, true) / 312.0;
        assert!(r < 0.62, "hd {d}: {r}");
    }
    let mut law = a100;
    law.mechanisms.attention_table = false;
    assert!(fwd_bwd(&law, Flash2, 32768, 128, true) > fwd_bwd(&a100, Flash2, 32768, 128, true));
}

#[test]
fn causal_without_causal_series_uses_the_causal_factor() {
    // A table with non-causal series only: causal runs at their ratio times the causal factor.
    let base = std::fs::read_to_string(root().join("models/hardware/h100-pcie.toml")).unwrap();
    let base = base.replace(
        "[attention]\n",
        "[attention]\ncausal_factor = { value = 0.7, source = \"test\" }\n",
    );
    let series = "[[attention_table]]\nkernel = \"flash2\"\npass = \"fwd\"\ncausal = false\n\
                  head_dim = 64\nseq = [512, 4096]\ntflops = [254, 290]\nsource = \"test\"\n";
    let text = format!("{base}\n{series}");
    let spec = GpuSpec::from_toml(&text, "gpu.toml").unwrap();
    let m = Machine::new(&spec, None);
    assert_relative_eq!(
        tflops(&m, Flash2, 4096, 64, false, false),
        290.0,
        max_relative = 1e-5
    );
    assert_relative_eq!(
        tflops(&m, Flash2, 4096, 64, false, true),
        290.0 * 0.7,
        max_relative = 1e-5
    );
    // FA3 has no series: the law, as without a table.
    let plain = Machine::new(&load_gpu("h100-pcie").unwrap(), None);
    assert_eq!(
        tflops(&m, Flash3, 4096, 64, false, false),
        tflops(&plain, Flash3, 4096, 64, false, false)
    );
}

/// h100-pcie (no table) with one more series.
fn with_series(series: &str) -> String {
    let base = std::fs::read_to_string(root().join("models/hardware/h100-pcie.toml")).unwrap();
    assert!(!base.contains("[[attention_table]]"));
    format!("{base}\n{series}\n")
}

fn series(kernel: &str, pass: &str, seq: &str, tflops: &str) -> String {
    format!(
        "[[attention_table]]\nkernel = \"{kernel}\"\npass = \"{pass}\"\ncausal = false\n\
         head_dim = 64\nseq = {seq}\ntflops = {tflops}\nsource = \"test\"\n"
    )
}

fn rejected(text: &str, field: &str, value: &str) {
    let err = GpuSpec::from_toml(&with_series(text), "gpu.toml")
        .expect_err(text)
        .to_string();
    for part in ["gpu.toml", field, value] {
        assert!(err.contains(part), "{err:?} should name {part:?}");
    }
}

#[test]
fn every_bad_field_is_named_with_its_value() {
    let ok = series("flash2", "fwd", "[512, 1024]", "[200, 250]");
    GpuSpec::from_toml(&with_series(&ok), "gpu.toml").unwrap();
    // (kernel, pass, seq, tflops) of one series, the field its error names, and the value.
    for (kernel, pass, seq, tflops, field, value) in [
        ("flash9", "fwd", "[512]", "[200]", "[0].kernel", "flash9"),
        ("flash2", "both", "[512]", "[200]", "[0].pass", "both"),
        (
            "flash2",
            "fwd",
            "[1024, 512]",
            "[200, 250]",
            "[0].seq[1]",
            "512",
        ),
        (
            "flash2",
            "fwd",
            "[512, 1024]",
            "[200]",
            "[0].tflops",
            "1 rates",
        ),
        ("flash2", "fwd", "[512]", "[-3]", "[0].tflops[0]", "-3"),
        ("flash2", "fwd", "[512]", "[5000]", "[0].tflops[0]", "5000"),
        ("flash2", "fwd", "[0.5]", "[200]", "[0].seq[0]", "0.5"),
    ] {
        let field = format!("attention_table{field}");
        rejected(&series(kernel, pass, seq, tflops), &field, value);
    }
    rejected(
        &ok.replace("head_dim = 64", "head_dim = 1000"),
        "attention_table[0].head_dim",
        "1000",
    );
    rejected(
        &ok.replace("source = \"test\"", "source = \" \""),
        "attention_table[0].source",
        "source",
    );
    // The same pass twice; all three passes; lengths that differ between passes.
    rejected(
        &[ok.as_str(), ok.as_str()].concat(),
        "attention_table[1].pass",
        "given twice",
    );
    let total = series("flash2", "fwd+bwd", "[512, 1024]", "[150, 180]");
    let bwd = series("flash2", "bwd", "[512, 1024]", "[120, 150]");
    rejected(
        &[ok.as_str(), &total, &bwd].concat(),
        "attention_table[2].pass",
        "all three",
    );
    let other = series("flash2", "fwd+bwd", "[512, 2048]", "[150, 180]");
    rejected(
        &[ok.as_str(), &other].concat(),
        "attention_table[1].seq",
        "2048",
    );
    // A forward + backward rate more than 3.5 times the forward leaves no time for the backward
    // (700 is below this GPU's peak, 756.5: the derivation rejects it, not the bound).
    let fast = series("flash2", "fwd+bwd", "[512, 1024]", "[150, 700]");
    rejected(
        &[ok.as_str(), &fast].concat(),
        "attention_table[1].tflops[1]",
        "backward 2500.0",
    );
    // A backward and a total that leave no time for the forward, or a forward above the peak.
    let bwd = series("flash2", "bwd", "[512]", "[100]");
    for (total, why) in [("[200]", "forward -"), ("[139]", "not both positive")] {
        let t = series("flash2", "fwd+bwd", "[512]", total);
        rejected(
            &[bwd.as_str(), &t].concat(),
            "attention_table[1].tflops[0]",
            why,
        );
    }
    // A total alone, split by the file's ratio into a forward above the peak.
    let alone = series("flash2", "fwd+bwd", "[512]", "[700]");
    rejected(&alone, "attention_table[0].tflops[0]", "at most the peak");
    // A kernel the file has no [attention] fractions for.
    let b200 = std::fs::read_to_string(root().join("models/hardware/b200.toml")).unwrap();
    let err = GpuSpec::from_toml(
        &format!("{b200}\n{}", series("flash3", "fwd", "[512]", "[200]")),
        "b200.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("attention_table[0].kernel") && err.contains("flash3"),
        "{err}"
    );
}

#[test]
fn a_bad_table_exits_2_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("roofline-att-table-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gpu.toml");
    std::fs::write(
        &file,
        with_series(&series("flash2", "fwd", "[512]", "[nan]")),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args(["estimate", "--gpu", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("attention_table[0].tflops[0]") && stderr.contains("NaN"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn flash1_runs_at_the_first_generations_published_rates() {
    // The FlashAttention-2 charts' baseline bars (FlashAttention v1), forward + backward: the
    // kernels of llm-foundry's Triton attention (`--attention flash1`).
    let a100 = machine("a100-sxm-80gb");
    let h100 = machine("h100-sxm");
    for (m, d, causal, s, want) in [
        (&a100, 64, false, 512, 91.0),
        (&a100, 128, true, 2048, 69.0),
        (&h100, 64, true, 16384, 156.0),
        (&h100, 128, false, 1024, 127.0),
    ] {
        assert_relative_eq!(
            fwd_bwd(m, AttentionImpl::Flash1, s, d, causal),
            want,
            max_relative = 1e-5
        );
        // Between 35% and 80% of FlashAttention-2's rate at the same shape.
        let ratio = want / fwd_bwd(m, Flash2, s, d, causal);
        assert!((0.35..0.8).contains(&ratio), "{ratio}");
    }
    // A GPU file without flash1 figures refuses it, naming the kernel (exit 2).
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args([
            "estimate",
            "--gpu",
            "b200",
            "--model",
            "gpt2-124m",
            "--attention",
            "flash1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("attention.flash1_fwd"), "{stderr}");
    // Also when the kernel comes from the model file's [defaults] (the MPT files say flash1).
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args([
            "estimate", "--gpu", "b200", "--model", "mpt-125m", "--batch", "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("flash1") && stderr.contains("[defaults]"),
        "{stderr}"
    );
    // A sweep that sets the attention itself does not need the default's figures.
    let csv = std::env::temp_dir().join(format!("roofline-att-sweep-{}.csv", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args([
            "sweep", "--model", "mpt-125m", "--gpu", "b200", "--batch", "2",
        ])
        .args([
            "--vary",
            "attention=flash2,naive",
            "--out",
            csv.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 3, "{rows}");
    std::fs::remove_file(&csv).ok();
}

#[test]
fn the_fractions_at_the_reference_length_reproduce_the_charts() {
    // With the table off, the [attention] law runs at the file's fractions at seq 512: their
    // forward + backward is the chart's seq-512, hd-64, non-causal bar they were derived from.
    let law = |gpu: &str| {
        let mut m = machine(gpu);
        m.mechanisms.attention_table = false;
        m
    };
    for (gpu, which, want, tol) in [
        ("a100-sxm-80gb", AttentionImpl::Flash1, 91.0, 2e-3),
        ("a100-sxm-80gb", Flash2, 132.0, 2e-3),
        ("h100-sxm", AttentionImpl::Flash1, 157.0, 2e-3),
        // 0.285 and 0.200 of the peak are the FA3 paper's 282 and 198, rounded: 216.
        ("h100-sxm", Flash2, 215.0, 1e-2),
    ] {
        let got = fwd_bwd(&law(gpu), which, 512, 64, false);
        assert_relative_eq!(got, want, max_relative = tol);
    }
}

#[test]
fn a_total_alone_is_split_within_the_kernels_published_best_forward() {
    // The A100's FA2 chart gives forward + backward only; the split keeps the forward at most
    // the 73% of the peak the FlashAttention-2 paper reports (flash2_max), and the total as
    // charted.
    let a100 = machine("a100-sxm-80gb");
    for d in [64, 128] {
        for causal in [false, true] {
            for s in SEQ {
                let f = tflops(&a100, Flash2, s, d, false, causal);
                // f32 storage: a relative 1e-6.
                assert!(
                    f <= 0.73 * 312.0 * (1.0 + 1e-6),
                    "hd {d} causal {causal} {s}: {f}"
                );
            }
        }
    }
    assert_relative_eq!(
        fwd_bwd(&a100, Flash2, 16384, 128, false),
        203.0,
        max_relative = 1e-5
    );
}

#[test]
fn the_h200_tables_are_the_h100_ones() {
    // The H200 file states it takes the H100 charts (same compute die): the series must agree.
    let h100 = load_gpu("h100-sxm").unwrap();
    let h200 = load_gpu("h200-sxm").unwrap();
    assert_eq!(h100.attention_table.len(), h200.attention_table.len());
    for (a, b) in h100.attention_table.iter().zip(&h200.attention_table) {
        assert!(a.same_group(b) && a.pass == b.pass, "{a:?} / {b:?}");
        assert_eq!((&a.seq, &a.tflops), (&b.seq, &b.tflops));
    }
}

#[test]
fn a_calibration_gives_both_fractions_of_a_kernel_or_neither() {
    use roofline::time::Calibration;
    for kernel in ["flash1", "flash2", "flash3"] {
        let text = format!("{kernel}_fwd = {{ value = 0.3, source = \"test\" }}\n");
        let err = Calibration::from_toml(&text, "cal.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cal.toml") && err.contains(&format!("{kernel}_bwd")),
            "{err}"
        );
    }
}
