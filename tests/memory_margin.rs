//! A plan that fits by a sliver is flagged, and a fleet smaller than a node says so.

use serde_json::Value;
use std::process::Command;

fn estimate(args: &[&str]) -> (Value, String) {
    let mut all = vec!["estimate"];
    all.extend_from_slice(args);
    let json = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args(all.iter().chain(["--json"].iter()))
        .output()
        .expect("run roofline");
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let text = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args(&all)
        .output()
        .expect("run roofline");
    (
        serde_json::from_slice(&json.stdout).unwrap(),
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}

const LLAMA_ZERO3: [&str; 10] = [
    "--model",
    "llama2-7b",
    "--gpu",
    "h100-sxm",
    "--zero",
    "3",
    "--batch",
    "2",
    "--attention",
    "flash2",
];

#[test]
fn headroom_under_five_percent_of_the_card_is_tight() {
    // 7.3 GiB of headroom on 79.65 GiB: fits, not tight.
    let (v, text) = estimate(&LLAMA_ZERO3);
    let (cap, used) = (
        v["memory_capacity_bytes"].as_f64().unwrap(),
        v["memory_per_gpu_bytes"].as_f64().unwrap(),
    );
    assert_eq!(v["memory_headroom_bytes"].as_f64().unwrap(), cap - used);
    assert_eq!(v["fits"], true);
    assert_eq!(v["memory_tight"], false);
    assert!(
        text.contains("headroom)") && !text.contains("TIGHT"),
        "{text}"
    );
    // 3.5 more GiB of workspace leave 3.8 GiB, under 5% of the card (3.98 GiB): tight.
    let mut args = LLAMA_ZERO3.to_vec();
    args.extend(["--workspace-gib", "4.5"]);
    let (v, text) = estimate(&args);
    let h = v["memory_headroom_bytes"].as_f64().unwrap();
    assert!(h > 0.0 && h < 0.05 * cap, "{h}");
    assert_eq!(v["fits"], true);
    assert_eq!(v["memory_tight"], true);
    assert!(text.contains("TIGHT"), "{text}");
    // Not fitting is not "tight": the headroom is negative.
    let mut args = LLAMA_ZERO3.to_vec();
    args[7] = "3";
    let (v, _) = estimate(&args);
    assert_eq!(v["fits"], false);
    assert_eq!(v["memory_tight"], false);
    assert!(v["memory_headroom_bytes"].as_f64().unwrap() < 0.0);
}

#[test]
fn a_fleet_smaller_than_a_node_is_named_a_partial_node() {
    let (v, _) = estimate(&["--gpus", "4"]);
    let a: Vec<&str> = v["assumptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        a.iter()
            .any(|l| l.contains("4 GPUs on 8-GPU nodes: one partial node")),
        "{a:?}"
    );
    let (v, _) = estimate(&["--gpus", "8", "--gpus-per-node", "16"]);
    assert!(v["assumptions"]
        .to_string()
        .contains("8 GPUs on 16-GPU nodes"));
    let (v, _) = estimate(&["--gpus", "8"]);
    assert!(!v["assumptions"].to_string().contains("partial node"));
}
