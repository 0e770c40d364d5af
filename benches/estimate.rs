//! Benchmark of one full estimate evaluation (op graph + time model + memory) of the planned JiT-B/4 run,
//! with reused buffers as in a sweep. Run: `cargo bench --bench estimate`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use roofline::estimate::{Estimator, RunConfig};
use roofline::graph::{AttentionImpl, ExecMode, StepConfig};
use roofline::spec::{load_gpu, load_model};
use roofline::time::Machine;

fn bench_estimate(c: &mut Criterion) {
    let gpu = load_gpu("h200-sxm").unwrap();
    let mach = Machine::new(&gpu, None);
    for (model, attention, mode) in [
        ("jit-b4", AttentionImpl::Naive, ExecMode::Eager),
        ("jit-b16", AttentionImpl::Flash2, ExecMode::Compiled),
        ("llama2-7b", AttentionImpl::Flash2, ExecMode::Graphs),
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
        c.bench_function(&format!("estimate {model} {attention} {mode}"), |b| {
            b.iter(|| {
                est.estimate(black_box(&m), black_box(&mach), black_box(&run))
                    .unwrap()
            })
        });
    }
}

criterion_group!(benches, bench_estimate);
criterion_main!(benches);
