//! The command line inside a process (what the Python package calls): the same values as the
//! binary's `--json`, parse errors that name the option and the value, and sweep columns that
//! hold exactly the rows the sweep writes.

use roofline::analysis::sweep::{self, parse_vary};
use roofline::cli::embed;
use roofline::error::Error;
use std::process::Command;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn binary_json(args: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args(words(args))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Byte for byte: the value printed as `--json` prints it is the binary's output.
#[test]
fn json_values_equal_the_binary_output() {
    for args in [
        "estimate",
        "estimate --model gpt2-124m --batch 8 --gpu h100-sxm --train-tokens 1T",
        "ops --model gpt2-124m --batch 4",
        "memory --model llama3-8b --zero 3 --gpus 16 --batch 2",
        "search --model gpt2-124m --gpus 16 --global-batch 256 --top 3",
        "gpus",
    ] {
        let value = embed::json(&words(args)).unwrap();
        let printed = format!("{}\n", roofline::export::json::to_string(&value).unwrap());
        assert_eq!(printed, binary_json(args), "{args}");
    }
}

#[test]
fn parse_errors_name_the_option_and_the_value() {
    match embed::json(&words("estimate --batch -2")) {
        Err(Error::Usage {
            option,
            value,
            message,
        }) => {
            assert_eq!(option.as_deref(), Some("batch"));
            assert_eq!(value.as_deref(), Some("-2"));
            assert!(
                message.starts_with("invalid value '-2' for '--batch"),
                "{message}"
            );
            assert!(!message.contains("Usage:") && !message.contains("--help"));
        }
        other => panic!("{other:?}"),
    }
    match embed::json(&words("estimate --bach 2")) {
        Err(Error::Usage { option, .. }) => assert_eq!(option.as_deref(), Some("bach")),
        other => panic!("{other:?}"),
    }
    assert!(embed::json(&words("report")).is_err());
    let opts = embed::options(&["estimate"]).unwrap();
    let batch = opts
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "batch")
        .unwrap();
    // The batch has no fixed default: the model file's [defaults] give it, else 64 (its help
    // says so); the GPU count has one.
    assert!(batch["default"].is_null(), "{batch}");
    assert!(
        batch["help"].as_str().unwrap().contains("[defaults]"),
        "{batch}"
    );
    assert_eq!(batch["flag"], false);
    let gpus = opts
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "gpus")
        .unwrap();
    assert_eq!(gpus["default"], "8");
}

#[test]
fn sweep_columns_hold_the_rows() {
    let base = embed::scenario_spec(&words("--model gpt2-124m --train-samples 1M")).unwrap();
    let dims: Vec<_> = ["seq=64,100000", "batch=1..64:x4", "gpu=h100-sxm,b200"]
        .iter()
        .map(|v| parse_vary(v).unwrap())
        .collect();
    let rows = sweep::collect(&base, &dims).unwrap().rows;
    let (summary, cols) = sweep::collect_columns(&base, &dims).unwrap();
    assert_eq!((cols.rows, summary.configurations), (rows.len(), 16));
    // seq 100000 is beyond GPT-2's positions.
    assert_eq!(summary.invalid, 8);
    let names: Vec<_> = cols.columns.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, sweep::COLUMNS);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            cols.row_json(i),
            serde_json::to_value(r).unwrap(),
            "row {i}"
        );
    }
}
