//! Hugging Face config.json import (tests/hf holds public config.json files; see its README for
//! their sources and published parameter counts).

use roofline::estimate::{Estimator, RunConfig};
use roofline::graph::param_count;
use roofline::spec::{load_gpu, load_model};
use roofline::time::Machine;
use std::process::Command;

fn hf(name: &str) -> String {
    format!("{}/tests/hf/{name}.json", env!("CARGO_MANIFEST_DIR"))
}

fn roofline(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run roofline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn imported_parameter_counts_match_published_figures() {
    // (file, total, active): tests/hf/README.md gives each figure's source.
    for (name, total, active) in [
        ("llama3-8b", 8_030_261_248u64, None),
        ("mistral-7b", 7_241_732_096, None),
        ("qwen2-1.5b", 1_543_714_304, None),
        ("mixtral-8x7b", 46_702_792_704, Some(12_879_925_248u64)),
        ("qwen1.5-moe-a2.7b", 14_315_784_192, Some(2_689_173_504)),
        ("gemma-2b", 2_506_172_416, None),
        ("gemma-2-9b", 9_241_705_984, None),
        ("gpt2", 124_439_808, None),
        ("pythia-160m", 162_322_944, None),
    ] {
        let m = load_model(&hf(name)).unwrap();
        let p = param_count(&m);
        assert_eq!(p.total, total, "{name}");
        assert_eq!(p.active, active.unwrap_or(total), "{name} active");
    }
}

#[test]
fn a_llama3_config_json_estimates_as_the_embedded_llama3() {
    let gpu = load_gpu("h100-sxm").unwrap();
    let mach = Machine::new(&gpu, None);
    let (json, toml) = (
        load_model(&hf("llama3-8b")).unwrap(),
        load_model("llama3-8b").unwrap(),
    );
    assert_eq!(json.transformer, toml.transformer);
    assert_eq!(json.embedding, toml.embedding);
    assert_eq!(json.tokens, toml.tokens);
    let mut est = Estimator::new();
    let run = RunConfig::default();
    let (a, b) = (
        est.estimate(&json, &mach, &run).unwrap(),
        est.estimate(&toml, &mach, &run).unwrap(),
    );
    assert_eq!(a.step_time, b.step_time);
    assert_eq!(a.memory.total_bytes, b.memory.total_bytes);
    assert_eq!(a.mfu, b.mfu);
    // The same through the command line, with the settings the embedded file's [defaults] give
    // (an imported config.json has none).
    let dir = std::env::temp_dir();
    let step = |model: &str| {
        let (code, out, err) = roofline(
            &[
                "estimate",
                "--model",
                model,
                "--gpu",
                "h100-sxm",
                "--json",
                "--batch",
                "1",
                "--attention",
                "flash2",
                "--mode",
                "eager",
                "--precision",
                "bf16",
            ],
            &dir,
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            v["step_time_s"].as_f64(),
            v["memory_per_gpu_bytes"].as_f64(),
        )
    };
    assert_eq!(step(&hf("llama3-8b")), step("llama3-8b"));
}

#[test]
fn imports_name_what_they_cannot_express() {
    let gemma2 = load_model(&hf("gemma-2-9b")).unwrap();
    let notes = gemma2.notes.join("\n");
    for key in [
        "sliding_window",
        "attn_logit_softcapping",
        "final_logit_softcapping",
    ] {
        assert!(notes.contains(key), "{key} missing from {notes}");
    }
    assert!(gemma2.transformer.post_norm);
    assert_eq!(gemma2.head_dim(), 256);
    let pythia = load_model(&hf("pythia-160m")).unwrap().notes.join("\n");
    assert!(pythia.contains("rotary_pct") && pythia.contains("use_parallel_residual"));
    // Every key of these files is read or known to cost nothing.
    for name in ["llama3-8b", "mistral-7b", "mixtral-8x7b", "gpt2"] {
        let m = load_model(&hf(name)).unwrap();
        assert!(
            m.notes.iter().all(|n| !n.starts_with("not understood")),
            "{name}: {:?}",
            m.notes
        );
    }
    // A key the importer does not know is named.
    let dir = tempdir("unknown-key");
    let text = std::fs::read_to_string(hf("llama3-8b")).unwrap().replacen(
        '{',
        "{\n  \"moe_frobnication\": 3,",
        1,
    );
    std::fs::write(dir.join("x.json"), text).unwrap();
    let m = load_model(&dir.join("x.json").display().to_string()).unwrap();
    assert!(
        m.notes.iter().any(|n| n.contains("moe_frobnication")),
        "{:?}",
        m.notes
    );
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("roofline-hf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn any_path_form_works_and_bad_configs_exit_2_naming_file_and_field() {
    let dir = tempdir("paths");
    // A bare file name in the working directory, ending in .json.
    std::fs::copy(hf("mistral-7b"), dir.join("mistral-7b-config.json")).unwrap();
    let (code, out, err) = roofline(
        &[
            "memory",
            "--model",
            "mistral-7b-config.json",
            "--seq",
            "1024",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mistral-7b-config"), "{out}");
    // `models --import` writes a TOML spec that reads back as the same model.
    let (code, _, err) = roofline(
        &[
            "models",
            "--import",
            "mistral-7b-config.json",
            "--out",
            "mistral.toml",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{err}");
    let back = load_model(&dir.join("mistral.toml").display().to_string()).unwrap();
    let json = load_model(&dir.join("mistral-7b-config.json").display().to_string()).unwrap();
    assert_eq!(back.transformer, json.transformer);
    assert_eq!(back.embedding, json.embedding);
    for (content, field) in [
        ("{\"model_type\": \"llama\", ", "(json)"),
        ("{\"model_type\": \"bert\"}", "model_type"),
        (
            "{\"model_type\": \"llama\", \"hidden_size\": 4096}",
            "num_attention_heads",
        ),
        (
            "{\"model_type\": \"llama\", \"hidden_size\": \"big\"}",
            "hidden_size",
        ),
        (
            "{\"model_type\": \"llama\", \"hidden_size\": 4096, \"num_attention_heads\": 32, \"num_hidden_layers\": 2, \"vocab_size\": 100, \"max_position_embeddings\": 64, \"intermediate_size\": 64, \"hidden_act\": \"relu\"}",
            "hidden_act",
        ),
        ("[1, 2]", "(json)"),
    ] {
        std::fs::write(dir.join("bad.json"), content).unwrap();
        let (code, _, err) = roofline(&["memory", "--model", "bad.json"], &dir);
        assert_eq!(code, 2, "{content}: {err}");
        assert!(
            err.contains("bad.json") && err.contains(field),
            "{content}: {err}"
        );
    }
    std::fs::write(dir.join("bad.json"), "{\"model_type\": \"bert\"}").unwrap();
    let (_, _, err) = roofline(&["memory", "--model", "bad.json"], &dir);
    assert!(err.contains("llama") && err.contains("qwen2_moe"), "{err}");
}
