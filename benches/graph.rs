//! Benchmark of the op graph alone (no timing, no memory): one build of the planned JiT-B/4
//! step with reused buffers, and the parameter count. Run: `cargo bench --bench graph`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use roofline::graph::{param_count, AttentionImpl, StepConfig, StepGraph};
use roofline::spec::load_model;

fn bench(c: &mut Criterion) {
    let m = load_model("jit-b4").unwrap();
    let cfg = StepConfig {
        attention: AttentionImpl::Naive,
        ..StepConfig::default()
    };
    let mut graph = StepGraph::new();
    c.bench_function("graph build jit-b4 naive", |b| {
        b.iter(|| graph.build(black_box(&m), black_box(&cfg)).unwrap().len())
    });
    c.bench_function("param_count jit-b4", |b| {
        b.iter(|| param_count(black_box(&m)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
