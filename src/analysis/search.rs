//! `roofline search`: the best way to run a model on a fleet at a global batch. Every valid
//! execution (tensor, sequence, pipeline with interleaving, context parallelism, data-parallel
//! replicas, micro-batch, recomputation, ZeRO stage) that fits in memory is estimated, and the
//! fastest (or cheapest) are ranked.
//!
//! Pruning by a bound, not by narrowing the space: every candidate gets a lower bound on its
//! step time, its model FLOPs per GPU (6 × active parameters × tokens, 8 × with full
//! recomputation; attention left out) over the GPU's GEMM ceiling (no GEMM of the time model is
//! faster, [`crate::time::efficiency`]), times the pipeline's (m + (p-1)/v)/m. Candidates are
//! visited in order of that bound, in parallel (rayon, one [`Estimator`] per worker, nothing
//! allocated per candidate), and a candidate whose bound exceeds the K-th best step time found
//! so far is skipped without building its graph.

use crate::error::{Error, Result};
use crate::estimate::{Estimator, RunConfig};
use crate::graph::{Checkpointing, Parallelism, PrecisionPolicy};
use crate::scenario::Scenario;
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What to rank by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Step time.
    Time,
    /// Cost per step (GPU-hours × price): the same order as time on a fixed fleet.
    Cost,
}

impl std::str::FromStr for Objective {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "time" => Ok(Objective::Time),
            "cost" => Ok(Objective::Cost),
            _ => Err(Error::Invalid(format!(
                "--objective {s}: choose time or cost"
            ))),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Objective::Time => "time",
            Objective::Cost => "cost",
        })
    }
}

/// The space searched.
#[derive(Debug, Clone, Copy)]
pub struct SearchSpace {
    /// Samples per optimizer step.
    pub global_batch: u64,
    /// Largest tensor-parallel size.
    pub max_tp: u64,
    /// Largest pipeline-parallel size.
    pub max_pp: u64,
    /// Largest number of chunks per pipeline stage.
    pub max_vpp: u64,
    /// Largest context-parallel size (only with fused attention).
    pub max_cp: u64,
    /// How many to keep.
    pub top: usize,
    /// What to rank by.
    pub objective: Objective,
}

/// One execution of the search space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    /// Model parallelism.
    pub parallel: Parallelism,
    /// Data-parallel replicas.
    pub dp: u64,
    /// Micro-batch per replica.
    pub batch: u64,
    /// Micro-batches per step.
    pub grad_accum: u64,
    /// Recomputation.
    pub checkpointing: Checkpointing,
    /// ZeRO stage.
    pub zero: u8,
    /// Lower bound on the step time, seconds.
    #[serde(skip)]
    bound: f64,
}

/// One ranked execution.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SearchRow {
    /// The execution.
    #[serde(flatten)]
    pub candidate: Candidate,
    /// Seconds per optimizer step.
    pub step_time_s: f64,
    /// Model FLOPs utilization.
    pub mfu: f64,
    /// Tokens per second across the fleet.
    pub tokens_per_s: f64,
    /// Memory per GPU, bytes.
    pub memory_per_gpu_bytes: f64,
    /// Exposed communication's share of the step.
    pub communication_share: f64,
    /// The pipeline bubble's share of the step.
    pub bubble_share: f64,
    /// USD per step, when the GPU has a price.
    pub cost_per_step_usd: Option<f64>,
}

/// The ranking and what it took.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// Model.
    pub model: String,
    /// GPU.
    pub gpu: String,
    /// GPUs.
    pub gpus: u64,
    /// Samples per step.
    pub global_batch: u64,
    /// What was ranked by.
    pub objective: Objective,
    /// The best, best first.
    pub rows: Vec<SearchRow>,
    /// Executions in the space (valid splits of the model and batch).
    pub candidates: u64,
    /// Executions estimated.
    pub evaluated: u64,
    /// Executions skipped by the bound.
    pub pruned: u64,
    /// Executions estimated that do not fit in memory.
    pub out_of_memory: u64,
}

/// Divisors of `n` up to `max`.
fn divisors(n: u64, max: u64) -> impl Iterator<Item = u64> {
    (1..=n.min(max)).filter(move |d| n.is_multiple_of(*d))
}

/// Every valid execution of `s`'s model on its fleet at the space's global batch, with its
/// bound, sorted by the bound.
fn candidates(s: &Scenario, space: &SearchSpace) -> Vec<Candidate> {
    let m = &s.model;
    let gpus = s.run.fleet.gpus;
    let depth = m.transformer.depth;
    let fused = s.run.step.attention.is_fused();
    let p = crate::graph::param_count(m);
    let policy = PrecisionPolicy::of(s.run.step.precision);
    let ceiling = s.machine.peak(policy.gemm_unit, policy.gemm);
    let rate = (ceiling.0 .0 * ceiling.1).max(1.0);
    let tokens = (space.global_batch * m.max_seq()) as f64;
    let mut out = Vec::new();
    for tp in divisors(gpus, space.max_tp) {
        for cp in divisors(gpus / tp, if fused { space.max_cp } else { 1 }) {
            for pp in divisors(gpus / (tp * cp), space.max_pp.min(depth)) {
                let dp = gpus / (tp * cp * pp);
                if !space.global_batch.is_multiple_of(dp) {
                    continue;
                }
                let per_replica = space.global_batch / dp;
                let vpps = if pp > 1 { space.max_vpp } else { 1 };
                for vpp in divisors(depth / pp.min(depth), vpps) {
                    for sp in [false, true] {
                        let par = Parallelism {
                            tp,
                            sp,
                            pp,
                            vpp,
                            cp,
                        };
                        if (sp && tp == 1) || par.check(m, fused).is_err() {
                            continue;
                        }
                        for batch in divisors(per_replica, per_replica) {
                            let k = per_replica / batch;
                            let pipe = 1.0 + (pp - 1) as f64 / (vpp * k) as f64;
                            for checkpointing in [
                                Checkpointing::None,
                                Checkpointing::Selective,
                                Checkpointing::Full,
                            ] {
                                let recompute = if checkpointing == Checkpointing::Full {
                                    8.0
                                } else {
                                    6.0
                                };
                                let bound =
                                    recompute * p.active as f64 * tokens / gpus as f64 / rate
                                        * pipe;
                                for zero in 0..=3u8 {
                                    out.push(Candidate {
                                        parallel: par,
                                        dp,
                                        batch,
                                        grad_accum: k,
                                        checkpointing,
                                        zero,
                                        bound,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.bound.total_cmp(&b.bound));
    out
}

/// Searches the executions of `s` (its model, GPU, fleet, precision, attention, mode) over
/// `space`; `progress` is called with (done, total) now and then.
pub fn search(
    s: &Scenario,
    space: &SearchSpace,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<SearchResult> {
    if space.top == 0 {
        return Err(Error::Invalid("--top must be at least 1".into()));
    }
    let all = candidates(s, space);
    if all.is_empty() {
        return Err(Error::Invalid(format!(
            "no execution of {} on {} GPUs divides the global batch {}: try a global batch that is a multiple of the GPUs",
            s.model.name, s.run.fleet.gpus, space.global_batch
        )));
    }
    let total = all.len() as u64;
    // The K-th best step time so far (f64 bits), and the best K rows.
    let threshold = AtomicU64::new(f64::INFINITY.to_bits());
    let best: Mutex<Vec<SearchRow>> = Mutex::new(Vec::with_capacity(space.top + 1));
    let (evaluated, pruned, oom, done) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let price = s.price().map(|(p, _)| p);
    let step_template = s.run.step;
    let first_error = Mutex::new(None);
    all.par_iter().for_each_init(Estimator::new, |est, c| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if n % 4096 == 0 {
            progress(n, total);
        }
        if c.bound > f64::from_bits(threshold.load(Ordering::Relaxed)) {
            pruned.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let run = RunConfig {
            step: crate::graph::StepConfig {
                batch: c.batch,
                checkpointing: c.checkpointing,
                parallel: c.parallel,
                ..step_template
            },
            zero: c.zero,
            grad_accum: c.grad_accum,
            ..s.run
        };
        evaluated.fetch_add(1, Ordering::Relaxed);
        let e = match est.estimate(&s.model, &s.machine, &run) {
            Ok(e) => e,
            Err(err) => {
                first_error.lock().expect("lock").get_or_insert(err);
                return;
            }
        };
        if !e.fits {
            oom.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let t = e.step_time.0;
        if t > f64::from_bits(threshold.load(Ordering::Relaxed)) {
            return;
        }
        let row = SearchRow {
            candidate: *c,
            step_time_s: t,
            mfu: e.mfu,
            tokens_per_s: e.tokens_per_s,
            memory_per_gpu_bytes: e.memory.total_bytes.0,
            communication_share: e.breakdown.communication.0 / t,
            bubble_share: e.breakdown.pipeline_bubble.0 / t,
            cost_per_step_usd: price.map(|p| t / 3600.0 * s.run.fleet.gpus as f64 * p),
        };
        let mut b = best.lock().expect("lock");
        b.push(row);
        b.sort_by(|x, y| x.step_time_s.total_cmp(&y.step_time_s));
        b.truncate(space.top);
        if b.len() == space.top {
            threshold.store(b[space.top - 1].step_time_s.to_bits(), Ordering::Relaxed);
        }
    });
    if let Some(e) = first_error.into_inner().expect("lock") {
        return Err(e);
    }
    progress(total, total);
    let rows = best.into_inner().expect("lock");
    if rows.is_empty() {
        return Err(Error::Invalid(format!(
            "no execution of {} fits in the memory of {} at global batch {} on {} GPUs: use more GPUs or a GPU with more memory",
            s.model.name, s.gpu.name, space.global_batch, s.run.fleet.gpus
        )));
    }
    Ok(SearchResult {
        model: s.model.name.clone(),
        gpu: s.gpu.name.clone(),
        gpus: s.run.fleet.gpus,
        global_batch: space.global_batch,
        objective: space.objective,
        rows,
        candidates: total,
        evaluated: evaluated.into_inner(),
        pruned: pruned.into_inner(),
        out_of_memory: oom.into_inner(),
    })
}
