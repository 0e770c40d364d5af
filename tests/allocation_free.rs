//! The estimate's hot path allocates nothing once its buffers have grown: sweeps evaluate
//! millions of configurations with one `Estimator` per thread.

use roofline::estimate::{Estimator, RunConfig};
use roofline::graph::{AttentionImpl, Checkpointing, ExecMode, StepConfig};
use roofline::spec::{load_gpu, load_model};
use roofline::time::{Fleet, Machine};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts allocations made by this test binary.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn repeated_estimates_allocate_nothing() {
    let gpu = load_gpu("h100-sxm").unwrap();
    let mach = Machine::new(&gpu, None);
    let models = [
        load_model("jit-b16").unwrap(),
        load_model("llama2-7b").unwrap(),
    ];
    let runs: Vec<RunConfig> = [
        (
            AttentionImpl::Naive,
            ExecMode::Eager,
            Checkpointing::None,
            0u8,
            8u64,
        ),
        (
            AttentionImpl::Flash2,
            ExecMode::Compiled,
            Checkpointing::Full,
            3,
            64,
        ),
        (
            AttentionImpl::Flash3,
            ExecMode::Graphs,
            Checkpointing::Selective,
            1,
            16,
        ),
    ]
    .into_iter()
    .map(|(attention, mode, checkpointing, zero, gpus)| RunConfig {
        step: StepConfig {
            attention,
            checkpointing,
            ema: 2,
            ..StepConfig::default()
        },
        mode,
        zero,
        fleet: Fleet {
            gpus,
            ..Fleet::default()
        },
        grad_accum: 2,
        ..RunConfig::default()
    })
    .collect();
    let mut est = Estimator::new();
    // Warm-up: the op buffers grow to the largest graph.
    for m in &models {
        for r in &runs {
            est.estimate(m, &mach, r).unwrap();
        }
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut total = 0.0;
    for _ in 0..3 {
        for m in &models {
            for r in &runs {
                total += est.estimate(m, &mach, r).unwrap().step_time.0;
            }
        }
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(total > 0.0);
    assert_eq!(
        after - before,
        0,
        "the estimate allocated {} times",
        after - before
    );
}
