//! Invariants of the model on random valid configurations (fixed seed; set
//! `ROOFLINE_PROPERTY_CASES` for a longer run, e.g. 20000 with `--release`):
//! the step time is positive and finite, its breakdown sums to it, it is never below the
//! communication, and it never shrinks when the batch doubles on one GPU; MFU lies in (0, 1];
//! fused attention never moves more bytes than naive; memory grows with the batch; the largest
//! batch that fits fits, one more does not, whatever batch it was computed at. Some
//! configurations split the model (tensor, sequence, pipeline, context parallelism, hybrid
//! sharding).

use roofline::analysis::uncertainty::SplitMix64;
use roofline::estimate::{Estimator, RunConfig, StepEstimate};
use roofline::graph::{
    build_step, AttentionImpl, Checkpointing, ExecMode, Phase, Precision, StepConfig,
};
use roofline::spec::{load_gpu, load_model, ModelSpec, GPUS, MODELS};
use roofline::time::{attention_available, Fleet, Machine};

fn cases() -> usize {
    std::env::var("ROOFLINE_PROPERTY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
}

fn pick<T: Copy>(rng: &mut SplitMix64, v: &[T]) -> T {
    v[(rng.next_u64() % v.len() as u64) as usize]
}

/// A random valid configuration: (model, machine, run).
fn random(rng: &mut SplitMix64) -> (ModelSpec, Machine, RunConfig) {
    let mut model = load_model(pick(rng, MODELS).0).unwrap();
    if rng.next_f64() < 0.3 {
        let seq = pick(rng, &[64u64, 128, 256, 400, 1024, 2048]);
        if let Ok(m) = model.with_sequence(seq) {
            model = m;
        }
    }
    let mach = Machine::new(&load_gpu(pick(rng, GPUS).0).unwrap(), None);
    let precision = pick(rng, Precision::ALL);
    let attention = loop {
        let a = pick(rng, AttentionImpl::ALL);
        if attention_available(&mach, a, precision) {
            break a;
        }
    };
    let gpus = pick(rng, &[1u64, 2, 8, 16, 64]);
    let run = RunConfig {
        step: StepConfig {
            batch: pick(rng, &[1u64, 2, 3, 8, 16, 32, 64]),
            attention,
            precision,
            checkpointing: pick(rng, Checkpointing::ALL),
            ema: pick(rng, &[0u32, 1, 2]),
            ..StepConfig::default()
        },
        mode: pick(rng, ExecMode::ALL),
        fleet: Fleet {
            gpus,
            gpus_per_node: pick(rng, &[1u64, 2, 8]).min(gpus),
            ..Fleet::default()
        },
        zero: pick(rng, &[0u8, 1, 2, 3]),
        grad_accum: pick(rng, &[1u64, 2, 4]),
        ..RunConfig::default()
    };
    // Model parallelism on some (invalid splits are skipped by the callers, as every error).
    let mut run = run;
    if rng.next_f64() < 0.4 {
        let p = &mut run.step.parallel;
        p.tp = pick(rng, &[1u64, 2, 4, 8]);
        p.sp = p.tp > 1 && rng.next_f64() < 0.5;
        p.pp = pick(rng, &[1u64, 2, 4]);
        p.vpp = if p.pp > 1 { pick(rng, &[1u64, 2]) } else { 1 };
        p.cp = pick(rng, &[1u64, 1, 2]);
        run.shard_group = pick(rng, &[0u64, 0, 1, 2]);
        run.tp_overlap = p.sp && rng.next_f64() < 0.3;
    }
    (model, mach, run)
}

fn with_batch(run: &RunConfig, batch: u64) -> RunConfig {
    RunConfig {
        step: StepConfig { batch, ..run.step },
        ..*run
    }
}

fn check_one(e: &StepEstimate, what: &str) {
    let t = e.step_time.0;
    assert!(t.is_finite() && t > 0.0, "{what}: step {t}");
    let sum: f64 = e.breakdown.entries().iter().map(|(_, s)| s.0).sum();
    assert!(
        (sum / t - 1.0).abs() < 1e-9,
        "{what}: breakdown {sum} vs step {t}"
    );
    assert!(
        t >= e.comm_exposed.0 && t >= e.comm_total.0 * (1.0 - 1e-12),
        "{what}: step {t} < communication {} ({} exposed)",
        e.comm_total.0,
        e.comm_exposed.0
    );
    assert!(e.mfu > 0.0 && e.mfu <= 1.0, "{what}: MFU {}", e.mfu);
    assert!(
        e.memory.total_bytes.0.is_finite() && e.samples_per_s.is_finite(),
        "{what}"
    );
}

/// Total HBM bytes of a step's ops (eager accounting, and fused traffic).
fn step_bytes(m: &ModelSpec, step: &StepConfig) -> Option<(f64, f64)> {
    let mut ops = Vec::new();
    build_step(m, step, &mut ops).ok()?;
    let (mut eager, mut fused) = (0.0, 0.0);
    for op in ops.iter().filter(|o| o.phase != Phase::Optimizer) {
        let c = op.layer.count() as f64;
        eager += (op.bytes_read.0 + op.bytes_written.0) * c;
        fused += (op.fused_read.0 + op.fused_written.0) * c;
    }
    Some((eager, fused))
}

#[test]
fn invariants_hold_on_random_configurations() {
    let mut rng = SplitMix64::new(0xC0FFEE);
    let mut est = Estimator::new();
    let (mut checked, mut split) = (0, 0);
    for case in 0..cases() {
        let (model, mach, run) = random(&mut rng);
        let what = format!(
            "case {case}: {} {:?} {} zero {} x{} gpus {}",
            model.name, run.step, run.mode, run.zero, run.grad_accum, run.fleet.gpus
        );
        let Ok(e) = est.estimate(&model, &mach, &run) else {
            continue;
        };
        checked += 1;
        split += usize::from(run.step.parallel != roofline::graph::Parallelism::default());
        check_one(&e, &what);
        // Doubling the batch on one GPU never shortens the step, and memory grows with it.
        let one = RunConfig {
            fleet: Fleet {
                gpus: 1,
                gpus_per_node: 1,
                ..run.fleet
            },
            ..run
        };
        if let (Ok(a), Ok(b)) = (
            est.estimate(&model, &mach, &one),
            est.estimate(&model, &mach, &with_batch(&one, 2 * one.step.batch)),
        ) {
            assert!(
                b.step_time.0 >= a.step_time.0,
                "{what}: batch x2 step {} < {}",
                b.step_time.0,
                a.step_time.0
            );
            assert!(
                b.memory.total_bytes.0 >= a.memory.total_bytes.0,
                "{what}: memory shrank"
            );
        }
        // Fused attention never moves more bytes than naive.
        if run.step.attention.is_fused() {
            let naive = StepConfig {
                attention: AttentionImpl::Naive,
                ..run.step
            };
            if let (Some(f), Some(n)) = (step_bytes(&model, &run.step), step_bytes(&model, &naive))
            {
                assert!(
                    f.0 <= n.0 && f.1 <= n.1,
                    "{what}: flash {f:?} > naive {n:?}"
                );
            }
        }
        // The largest batch fits, one more does not, computed at any batch.
        let max = e.max_batch;
        if (1..1 << 20).contains(&max) {
            let mut fit = |b| est.estimate(&model, &mach, &with_batch(&run, b));
            match (fit(max), fit(max + 1)) {
                (Ok(at), Ok(above)) => {
                    assert!(at.fits, "{what}: max_batch {max} does not fit");
                    assert!(!above.fits, "{what}: max_batch + 1 = {} fits", max + 1);
                    assert_eq!(at.max_batch, max, "{what}: max_batch depends on --batch");
                }
                (Err(e1), _) | (_, Err(e1)) => panic!("{what}: {e1}"),
            }
        }
    }
    assert!(checked > cases() / 3, "only {checked} valid configurations");
    assert!(
        split > cases() / 50,
        "only {split} valid split configurations"
    );
}
