//! The estimate's hot path allocates nothing once its buffers have grown: sweeps evaluate
//! millions of configurations with one `Estimator` per thread.

use roofline::estimate::{Estimator, RunConfig};
use roofline::graph::{AttentionImpl, Checkpointing, ExecMode, StepConfig};
use roofline::spec::{load_gpu, load_model};
use roofline::time::{Fleet, Machine};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations made by each thread of this test binary (tests run on parallel threads).
struct Counting;

thread_local! {
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // Not during the thread's teardown, when the counter is gone.
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
}

/// Allocations made by this thread so far.
fn allocations() -> usize {
    COUNT.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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
    let before = allocations();
    let mut total = 0.0;
    for _ in 0..3 {
        for m in &models {
            for r in &runs {
                total += est.estimate(m, &mach, r).unwrap().step_time.0;
            }
        }
    }
    let after = allocations();
    assert!(total > 0.0);
    assert_eq!(
        after - before,
        0,
        "the estimate allocated {} times",
        after - before
    );
}

/// A sweep over GPU counts and EMA copies (more distinct values than the estimator remembers
/// memory profiles) reuses one profile: they only change the optimizer ops.
#[test]
fn sweeping_gpus_and_ema_reuses_one_memory_profile() {
    let gpu = load_gpu("h100-sxm").unwrap();
    let mach = Machine::new(&gpu, None);
    let model = load_model("jit-b16").unwrap();
    let runs: Vec<RunConfig> = (1..=12u64)
        .map(|gpus| RunConfig {
            step: StepConfig {
                ema: (gpus % 3) as u32,
                ..StepConfig::default()
            },
            zero: 1 + (gpus % 3) as u8,
            fleet: Fleet {
                gpus,
                ..Fleet::default()
            },
            ..RunConfig::default()
        })
        .collect();
    let mut est = Estimator::new();
    for r in &runs {
        est.estimate(&model, &mach, r).unwrap();
    }
    let before = allocations();
    for r in runs.iter().chain(runs.iter().rev()) {
        est.estimate(&model, &mach, r).unwrap();
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "the estimate allocated {allocated} times");
}

/// A search visits many splits of one model (more than the estimator remembers memory
/// profiles): once the buffers have grown, another pass over them allocates nothing.
#[test]
fn searching_splits_allocates_nothing() {
    use roofline::graph::{Parallelism, Precision};
    let gpu = load_gpu("a100-sxm-80gb").unwrap();
    let mach = Machine::new(&gpu, None);
    let model = load_model("megatron-22b").unwrap();
    let mut runs = Vec::new();
    for tp in [1u64, 2, 4, 8] {
        for pp in [1u64, 2, 4] {
            for checkpointing in [Checkpointing::None, Checkpointing::Full] {
                for zero in [0u8, 3] {
                    runs.push(RunConfig {
                        step: StepConfig {
                            batch: 2,
                            checkpointing,
                            precision: Precision::Fp16,
                            attention: AttentionImpl::Flash2,
                            parallel: Parallelism {
                                tp,
                                sp: tp > 1,
                                pp,
                                ..Parallelism::default()
                            },
                            ..StepConfig::default()
                        },
                        zero,
                        grad_accum: 4,
                        fleet: Fleet {
                            gpus: 64,
                            ..Fleet::default()
                        },
                        ..RunConfig::default()
                    });
                }
            }
        }
    }
    let mut est = Estimator::new();
    for r in &runs {
        est.estimate(&model, &mach, r).unwrap();
    }
    let before = allocations();
    for r in &runs {
        est.estimate(&model, &mach, r).unwrap();
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "the estimates allocated {allocated} times");
}
