//! Benchmark of one full estimate evaluation (op graph + time model + memory) of the planned JiT-B/4 run,
//! with reused buffers as in a sweep. Run: `cargo bench --bench estimate`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use roofline::estimate::{Estimator, RunConfig};
use roofline::graph::{AttentionImpl, ExecMode, StepConfig};
use roofline::spec::{load_gpu, load_model};
use roofline::time::Machine;

fn bench_estimate(c: &mut Criterion) {
    let h200 = Machine::new(&load_gpu("h200-sxm").unwrap(), None);
    // h100-sxm's file has a measured [gemm_table]: its GEMMs take the table's path.
    let h100 = Machine::new(&load_gpu("h100-sxm").unwrap(), None);
    for (model, attention, mode, mach, label) in [
        ("jit-b4", AttentionImpl::Naive, ExecMode::Eager, &h200, ""),
        (
            "jit-b16",
            AttentionImpl::Flash2,
            ExecMode::Compiled,
            &h200,
            "",
        ),
        (
            "llama2-7b",
            AttentionImpl::Flash2,
            ExecMode::Graphs,
            &h200,
            "",
        ),
        (
            "jit-b4",
            AttentionImpl::Naive,
            ExecMode::Eager,
            &h100,
            " h100-sxm",
        ),
    ] {
        let m = load_model(model).unwrap();
        let run = RunConfig {
            step: StepConfig {
                attention,
                ..StepConfig::default()
            },
            mode,
            ..RunConfig::default()
        };
        let mut est = Estimator::new();
        c.bench_function(
            &format!("estimate {model} {attention} {mode}{label}"),
            |b| {
                b.iter(|| {
                    est.estimate(black_box(&m), black_box(mach), black_box(&run))
                        .unwrap()
                })
            },
        );
    }
}

/// `roofline search --model gpt3-175b --gpu a100-sxm-80gb --gpus 1024 --global-batch 1536`: the
/// whole ranking (enumeration, bounds, estimates on every core).
fn bench_search(c: &mut Criterion) {
    use roofline::analysis::search::{search, Objective, SearchSpace};
    let s = roofline::cli::parse_scenario(&[
        "--model",
        "gpt3-175b",
        "--gpu",
        "a100-sxm-80gb",
        "--gpus",
        "1024",
    ])
    .unwrap();
    let space = SearchSpace {
        global_batch: 1536,
        max_tp: 64,
        max_pp: 128,
        max_vpp: 8,
        max_cp: 8,
        top: 10,
        objective: Objective::Time,
        prune: true,
    };
    let mut g = c.benchmark_group("search");
    g.sample_size(10);
    g.bench_function("search gpt3-175b 1024 x a100 global batch 1536", |b| {
        b.iter(|| search(black_box(&s), &space, &|_, _| {}).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_estimate, bench_search);
criterion_main!(benches);
