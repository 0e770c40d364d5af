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
    /// Skip candidates by the compute bound (off only to check the bound).
    pub prune: bool,
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
    /// Position in the enumeration: breaks ties between equal step times, so the ranking does
    /// not depend on which thread finished first.
    #[serde(skip)]
    order: u32,
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
    /// Executions the model cannot run (a limit of the step, e.g. too many tokens per GPU).
    pub invalid: u64,
    /// Placement: whether a tensor-parallel group of the ranking crosses a node.
    pub tensor_parallel_crosses_nodes: bool,
}

/// Divisors of `n` up to `max`, ascending (O(√n) trial division).
fn divisors(n: u64, max: u64) -> Vec<u64> {
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut d = 1u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            small.push(d);
            if d != n / d {
                large.push(n / d);
            }
        }
        d += 1;
    }
    small.extend(large.into_iter().rev());
    small.retain(|&d| d <= max);
    small
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
    // The blocks' GEMMs that run over every token (adaLN's run over the batch) and, of the
    // routed experts, the share a token uses (never more rows than tokens x top_k).
    let routed_unused = m.transformer.moe.as_ref().map_or(0.0, |moe| {
        p.expert_gemm_weights as f64 / m.transformer.depth.max(1) as f64
            * (1.0 - moe.top_k as f64 / moe.experts as f64 * moe.capacity_factor.min(1.0))
    });
    let block_gemm = (p.per_block_gemm_weights as f64 - p.per_block_adaln as f64 - routed_unused)
        .max(0.0)
        * depth as f64;
    // The fewest tokens any block sees per sample (in-context tokens join later).
    let tokens = space.global_batch as f64 * m.seq_at_block(0).min(m.max_seq()) as f64;
    let max_batch = crate::graph::MAX_TOKENS_PER_STEP / m.max_seq().max(1);
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
                        for &batch in &divisors(per_replica, max_batch) {
                            let k = per_replica / batch;
                            if k > crate::scenario::limits::GRAD_ACCUM
                                || (vpp > 1 && !k.is_multiple_of(pp))
                            {
                                continue;
                            }
                            let pipe = 1.0 + (pp - 1) as f64 / (vpp * k) as f64;
                            for checkpointing in [
                                Checkpointing::None,
                                Checkpointing::Selective,
                                Checkpointing::Full,
                            ] {
                                // 6 FLOPs per weight and token (forward and backward), 2 more
                                // when full recompute repeats the blocks' forward.
                                let passes = if checkpointing == Checkpointing::Full {
                                    8.0
                                } else {
                                    6.0
                                };
                                let bound =
                                    passes * block_gemm * tokens / gpus as f64 / rate * pipe;
                                // ZeRO needs ranks to shard over.
                                let stages = if dp * cp > 1 { 3u8 } else { 0 };
                                for zero in 0..=stages {
                                    out.push(Candidate {
                                        parallel: par,
                                        dp,
                                        batch,
                                        grad_accum: k,
                                        checkpointing,
                                        zero,
                                        bound,
                                        order: 0,
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
    for (i, c) in out.iter_mut().enumerate() {
        c.order = u32::try_from(i).unwrap_or(u32::MAX);
    }
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
    let (evaluated, pruned, oom, done, invalid) = (
        AtomicU64::new(0),
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
        if space.prune && c.bound > f64::from_bits(threshold.load(Ordering::Relaxed)) {
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
            // A bug, not a limit of this execution: stop.
            Err(err @ Error::Internal(_)) => {
                first_error.lock().expect("lock").get_or_insert(err);
                return;
            }
            Err(_) => {
                invalid.fetch_add(1, Ordering::Relaxed);
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
        // Executions that differ only in what changes nothing (e.g. selective recompute beside
        // fused attention) are listed once.
        let same = |x: &SearchRow| {
            x.step_time_s == row.step_time_s
                && x.memory_per_gpu_bytes == row.memory_per_gpu_bytes
                && x.candidate.parallel == c.parallel
                && (x.candidate.dp, x.candidate.batch, x.candidate.zero) == (c.dp, c.batch, c.zero)
        };
        if let Some(i) = b.iter().position(same) {
            // Keep the one enumerated first, whichever thread got here first.
            if b[i].candidate.order <= c.order {
                return;
            }
            b.remove(i);
        }
        b.push(row);
        b.sort_by(|x, y| {
            x.step_time_s
                .total_cmp(&y.step_time_s)
                .then(x.candidate.order.cmp(&y.candidate.order))
        });
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
    let invalid_count = invalid.load(Ordering::Relaxed);
    let crosses = rows
        .iter()
        .any(|r| r.candidate.parallel.tp * r.candidate.parallel.cp > s.run.fleet.gpus_per_node);
    if rows.is_empty() {
        return Err(Error::Invalid(format!(
            "no execution of {} fits in the memory of {} at global batch {} on {} GPUs ({} could not run at all): use more GPUs, a GPU with more memory or a smaller global batch",
            s.model.name, s.gpu.name, space.global_batch, s.run.fleet.gpus, invalid_count
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
        invalid: invalid.into_inner(),
        tensor_parallel_crosses_nodes: crosses,
    })
}
