//! Parameter sweeps: the cartesian product of `--vary` specs, evaluated in parallel.
//!
//! `--vary NAME=SPEC`, SPEC either an explicit list `a,b,c` or a range of a numeric parameter:
//! `a..b` doubles (a, 2a, 4a, ... ≤ b), `a..b:s` steps by s (a, a+s, ... ≤ b), `a..b:xN`
//! multiplies by N (a, Na, N²a, ... ≤ b). Every other
//! setting is taken from the `estimate` options as a fixed value.
//!
//! Performance: models are built once per (model, sequence) value and [`Machine`]s once per GPU
//! before the loop; the loop evaluates blocks of [`BLOCK`] configurations over all cores with
//! rayon, one [`Estimator`] per worker (`for_each_init`), writing plain [`StepEstimate`] values
//! into a preallocated slot per configuration: no allocation per configuration (an invalid one
//! allocates its error message). Each block's rows are formatted and handed to a sink before the
//! next block, so a sweep of any size runs in constant memory.

use crate::error::{Error, Result};
use crate::estimate::{Estimator, RunConfig, StepEstimate};
use crate::graph::{AttentionImpl, Checkpointing, ExecMode, Precision};
use crate::scenario::{limits, ModelStep, ScenarioSpec, Unset};
use crate::spec::{self, ModelSpec};
use crate::time::Machine;
use crate::units::parse_count_u64;
use rayon::prelude::*;

mod best;
mod columns;
mod row;
pub use best::{Best, SweepObjective};
pub use columns::{Column, Columns};
use row::{row, Costs};
pub use row::{Row, COLUMNS};
use serde::Serialize;
use std::time::Instant;

/// A parameter that can be varied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Model spec (name or path).
    Model,
    /// GPU spec (name or path).
    Gpu,
    /// Sequence length ([`ModelSpec::with_sequence`]).
    Seq,
    /// Samples per GPU.
    Batch,
    /// Attention implementation.
    Attention,
    /// Execution mode.
    Mode,
    /// Precision.
    Precision,
    /// Activation checkpointing.
    Checkpointing,
    /// GPUs in total.
    Gpus,
    /// Micro-steps per optimizer step.
    GradAccum,
    /// ZeRO stage.
    Zero,
    /// EMA copies.
    Ema,
    /// Expert-parallel ranks.
    Ep,
    /// Tensor-parallel GPUs.
    Tp,
    /// Pipeline stages.
    Pp,
    /// Model chunks per pipeline stage.
    Vpp,
    /// Context-parallel GPUs.
    Cp,
    /// Price per GPU-hour in USD (cost columns only; the estimate does not depend on it).
    Price,
}

/// Every parameter with its command-line name.
pub const PARAMS: [(&str, Param); 18] = [
    ("model", Param::Model),
    ("gpu", Param::Gpu),
    ("seq", Param::Seq),
    ("batch", Param::Batch),
    ("attention", Param::Attention),
    ("mode", Param::Mode),
    ("precision", Param::Precision),
    ("checkpointing", Param::Checkpointing),
    ("gpus", Param::Gpus),
    ("grad_accum", Param::GradAccum),
    ("zero", Param::Zero),
    ("ema", Param::Ema),
    ("ep", Param::Ep),
    ("tp", Param::Tp),
    ("pp", Param::Pp),
    ("vpp", Param::Vpp),
    ("cp", Param::Cp),
    ("price", Param::Price),
];

/// Metrics a sweep chart can show (columns of the output).
pub const METRICS: [&str; 8] = [
    "step_time_s",
    "samples_per_s",
    "tokens_per_s",
    "mfu",
    "memory_per_gpu_bytes",
    "cost_per_step_usd",
    "train_time_s",
    "train_cost_usd",
];

impl Param {
    /// Command-line name.
    pub fn name(self) -> &'static str {
        PARAMS
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n)
    }

    fn numeric(self) -> bool {
        matches!(
            self,
            Param::Seq
                | Param::Batch
                | Param::Gpus
                | Param::GradAccum
                | Param::Zero
                | Param::Ema
                | Param::Ep
                | Param::Tp
                | Param::Pp
                | Param::Vpp
                | Param::Cp
        )
    }
}

/// One varied parameter and its values (as given, and parsed).
#[derive(Debug, Clone)]
pub struct Dim {
    /// The parameter.
    pub param: Param,
    /// Values as text (for labels and error messages).
    pub labels: Vec<String>,
    /// Numeric values (numeric parameters only).
    pub nums: Vec<u64>,
    /// Values parsed once, so that the evaluation loop parses nothing.
    pub choices: Vec<Choice>,
}

/// One parsed value of a varied parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Choice {
    /// A number (batch, seq, gpus, grad_accum, zero, ema, ep).
    Num(u64),
    /// An attention implementation.
    Attention(AttentionImpl),
    /// An execution mode.
    Mode(ExecMode),
    /// A precision.
    Precision(Precision),
    /// A checkpointing mode.
    Checkpointing(Checkpointing),
    /// A model or GPU, by its index among the dimension's values.
    Spec,
    /// A price per GPU-hour, USD.
    Price(f64),
}

/// Parses one `--vary NAME=SPEC`.
pub fn parse_vary(spec: &str) -> Result<Dim> {
    let Some((name, values)) = spec.split_once('=') else {
        return Err(Error::Invalid(format!(
            "--vary `{spec}`: expected NAME=SPEC, e.g. batch=8..512 or attention=naive,flash2"
        )));
    };
    let name = name.trim();
    let names: Vec<&str> = PARAMS.iter().map(|(n, _)| *n).collect();
    let param = PARAMS
        .iter()
        .find(|(n, _)| *n == name || n.replace('_', "-") == name)
        .map(|(_, p)| *p)
        .ok_or_else(|| Error::unknown("sweep parameter", name, &names))?;
    let values = values.trim();
    let bad = |why: String| Error::Invalid(format!("--vary `{spec}`: {why}"));
    let mut dim = Dim {
        param,
        labels: Vec::new(),
        nums: Vec::new(),
        choices: Vec::new(),
    };
    if param == Param::Price {
        for v in values.split(',').map(str::trim) {
            let p: f64 = v
                .parse()
                .map_err(|_| bad(format!("`{v}` is not a price in USD per GPU-hour")))?;
            if !(p.is_finite() && (1e-3..=1e4).contains(&p)) {
                return Err(bad(format!(
                    "{v}: a GPU-hour costs between $0.001 and $10,000"
                )));
            }
            dim.labels.push(v.to_string());
            dim.choices.push(Choice::Price(p));
        }
        return Ok(dim);
    }
    if let Some((a, rest)) = values.split_once("..") {
        if !param.numeric() {
            return Err(bad(format!(
                "a range a..b needs a numeric parameter; list the values of {name} instead"
            )));
        }
        // a..b doubles, a..b:s steps by s, a..b:xN multiplies by N.
        let (b, step) = match rest.split_once(':') {
            Some((b, st)) => (b, Some(st.trim())),
            None => (rest, None),
        };
        let a = parse_count_u64(a).map_err(&bad)?;
        let b = parse_count_u64(b).map_err(&bad)?;
        if a > b {
            return Err(bad(format!("range start {a} is above its end {b}")));
        }
        let next: Box<dyn Fn(u64) -> u64> = match step {
            None => {
                if a == 0 {
                    return Err(bad(
                        "a doubling range cannot start at 0: give a step, e.g. 0..8:2".into(),
                    ));
                }
                Box::new(|v: u64| v.saturating_mul(2))
            }
            Some(st) => match st.strip_prefix('x') {
                Some(f) => {
                    let f = parse_count_u64(f).map_err(&bad)?;
                    if f < 2 || a == 0 {
                        return Err(bad(format!(
                            "a factor range a..b:xN needs N of 2 or more and a start above 0 (given {a}..{b}:x{f})"
                        )));
                    }
                    Box::new(move |v: u64| v.saturating_mul(f))
                }
                None => {
                    let d = parse_count_u64(st).map_err(&bad)?;
                    Box::new(move |v: u64| v.saturating_add(d))
                }
            },
        };
        const MOST: usize = 10_000;
        let mut v = a;
        while v <= b {
            dim.nums.push(v);
            if dim.nums.len() > MOST {
                return Err(bad(format!("the range has more than {MOST} values")));
            }
            let n = next(v);
            if n == v {
                break;
            }
            v = n;
        }
    } else {
        for v in values.split(',').map(str::trim) {
            if v.is_empty() {
                return Err(bad("empty value in the list".into()));
            }
            if param.numeric() {
                let n = match param {
                    Param::Zero | Param::Ema => v
                        .parse::<u64>()
                        .map_err(|_| bad(format!("`{v}` is not a whole number")))?,
                    _ => parse_count_u64(v).map_err(&bad)?,
                };
                dim.nums.push(n);
            } else {
                dim.labels.push(v.to_string());
            }
        }
    }
    if param.numeric() {
        dim.labels = dim.nums.iter().map(|n| n.to_string()).collect();
    }
    let parse_all =
        |f: fn(&str) -> Result<Choice>| dim.labels.iter().map(|l| f(l)).collect::<Result<Vec<_>>>();
    dim.choices = match param {
        Param::Attention => parse_all(|l| l.parse().map(Choice::Attention))?,
        Param::Mode => parse_all(|l| l.parse().map(Choice::Mode))?,
        Param::Precision => parse_all(|l| l.parse().map(Choice::Precision))?,
        Param::Checkpointing => parse_all(|l| l.parse().map(Choice::Checkpointing))?,
        Param::Model | Param::Gpu => vec![Choice::Spec; dim.labels.len()],
        _ => dim.nums.iter().map(|n| Choice::Num(*n)).collect(),
    };
    match param {
        Param::Zero if dim.nums.iter().any(|z| *z > 3) => {
            return Err(bad("ZeRO stages are 0-3".into()))
        }
        Param::Gpus
        | Param::GradAccum
        | Param::Batch
        | Param::Seq
        | Param::Ep
        | Param::Tp
        | Param::Pp
        | Param::Vpp
        | Param::Cp
            if dim.nums.contains(&0) =>
        {
            return Err(bad("values must be positive".into()))
        }
        Param::Tp | Param::Pp | Param::Vpp | Param::Cp if dim.nums.iter().any(|g| *g > 1 << 16) => {
            return Err(bad("at most 65536".into()))
        }
        Param::Gpus | Param::Ep if dim.nums.iter().any(|g| *g > limits::GPUS) => {
            return Err(bad(format!("at most {} GPUs", limits::GPUS)))
        }
        Param::GradAccum if dim.nums.iter().any(|g| *g > limits::GRAD_ACCUM) => {
            return Err(bad(format!(
                "at most {} accumulation steps",
                limits::GRAD_ACCUM
            )))
        }
        _ => {}
    }
    Ok(dim)
}

/// Configurations evaluated in parallel before their rows are handed on.
pub const BLOCK: usize = 1 << 16;

/// What a sweep was and how it went; the rows themselves went to the sink.
#[derive(Debug, Clone, Serialize)]
pub struct SweepSummary {
    /// Varied parameters and their values, in order (first = outermost loop, chart x axis).
    pub vary: Vec<(String, Vec<String>)>,
    /// Configurations evaluated (the product of the value counts).
    pub configurations: usize,
    /// Configurations that could not be evaluated.
    pub invalid: usize,
    /// Wall time of the parallel evaluation (s).
    #[serde(skip)]
    pub eval_seconds: f64,
}

/// A whole sweep in memory: its summary and every row (for small sweeps and tests).
#[derive(Debug, Clone, Serialize)]
pub struct SweepResult {
    /// Varied parameters and their values.
    pub vary: Vec<(String, Vec<String>)>,
    /// Configurations evaluated.
    pub configurations: usize,
    /// One row per configuration, last parameter varying fastest.
    pub rows: Vec<Row>,
}

/// [`sweep`] with every row kept.
pub fn collect(base: &ScenarioSpec, dims: &[Dim]) -> Result<SweepResult> {
    let mut rows = Vec::new();
    let summary = sweep(base, dims, &|_| {}, &mut |r: Row| {
        rows.push(r);
        Ok(())
    })?;
    Ok(SweepResult {
        vary: summary.vary,
        configurations: summary.configurations,
        rows,
    })
}

/// [`sweep`] into columns (for data frames: the Python package).
pub fn collect_columns(base: &ScenarioSpec, dims: &[Dim]) -> Result<(SweepSummary, Columns)> {
    let mut cols = Columns::new();
    let summary = sweep(base, dims, &|_| {}, &mut |r: Row| {
        cols.push(&r);
        Ok(())
    })?;
    Ok((summary, cols))
}

/// The number of configurations of `dims` (saturating).
pub fn configurations(dims: &[Dim]) -> usize {
    dims.iter()
        .map(|d| d.labels.len())
        .try_fold(1usize, |a, b| a.checked_mul(b))
        .unwrap_or(usize::MAX)
}

/// Everything the loop needs, resolved before it.
struct Plan<'a> {
    dims: &'a [Dim],
    /// Per (model index, seq index): the model, or why it is invalid.
    models: Vec<std::result::Result<ModelSpec, String>>,
    /// Per (model index, seq index): the model file's `[defaults]`.
    model_steps: Vec<ModelStep>,
    /// The step settings the user left out and the sweep does not vary: each model's
    /// `[defaults]` (else roofline's own) set them.
    unset: Unset,
    n_seq: usize,
    /// (GPU name, machine, price per GPU-hour in USD: --price-per-gpu-hour or the GPU file's).
    machines: Vec<(String, Machine, Option<f64>)>,
    /// The dataset, for training time and cost.
    dataset: Option<crate::scenario::Dataset>,
    base: RunConfig,
}

impl Plan<'_> {
    /// The price per GPU-hour of configuration `idx` on machine `gpu`: the varied price, else
    /// --price-per-gpu-hour or the GPU file's.
    fn price(&self, idx: &[usize; PARAMS.len()], gpu: usize) -> Option<f64> {
        for (d, dim) in self.dims.iter().enumerate() {
            if let Choice::Price(p) = dim.choices[idx[d]] {
                return Some(p);
            }
        }
        self.machines[gpu].2
    }

    /// Mixed-radix digits of configuration `i` (last dimension fastest) into `idx`.
    fn digits(&self, mut i: usize, idx: &mut [usize; PARAMS.len()]) {
        for (d, dim) in self.dims.iter().enumerate().rev() {
            let n = dim.labels.len();
            idx[d] = i % n;
            i /= n;
        }
    }

    /// The configuration of digits `idx`: (model slot, machine slot, run config).
    fn config(&self, idx: &[usize; PARAMS.len()]) -> (usize, usize, RunConfig) {
        let (mut model, mut seq, mut gpu) = (0, 0, 0);
        let mut run = self.base;
        for (d, dim) in self.dims.iter().enumerate() {
            let j = idx[d];
            match (dim.param, dim.choices[j]) {
                (Param::Model, _) => model = j,
                (Param::Seq, _) => seq = j,
                (Param::Gpu, _) => gpu = j,
                (_, Choice::Attention(a)) => run.step.attention = a,
                (_, Choice::Mode(m)) => run.mode = m,
                (_, Choice::Precision(p)) => run.step.precision = p,
                (_, Choice::Checkpointing(c)) => run.step.checkpointing = c,
                (Param::Batch, Choice::Num(n)) => run.step.batch = n,
                (Param::Gpus, Choice::Num(n)) => run.fleet.gpus = n,
                (Param::GradAccum, Choice::Num(n)) => run.grad_accum = n,
                (Param::Zero, Choice::Num(n)) => run.zero = n as u8,
                (Param::Ema, Choice::Num(n)) => run.step.ema = n as u32,
                (Param::Ep, Choice::Num(n)) => run.step.expert_shards = n,
                (Param::Tp, Choice::Num(n)) => run.step.parallel.tp = n,
                (Param::Pp, Choice::Num(n)) => run.step.parallel.pp = n,
                (Param::Vpp, Choice::Num(n)) => run.step.parallel.vpp = n,
                (Param::Cp, Choice::Num(n)) => run.step.parallel.cp = n,
                _ => {}
            }
        }
        let slot = model * self.n_seq + seq;
        // A varied price sets the cost columns only ([`Plan::price`]).
        self.model_steps[slot].fill(self.unset, &mut run.step, &mut run.mode);
        (slot, gpu, run)
    }
}

/// Runs a sweep: the product of `dims` over the fixed settings of `base`.
///
/// `progress` is called from the worker threads with the number of configurations each chunk
/// evaluated (for a progress bar; pass `&|_| {}` for none); `sink` gets every row, in order, and
/// may stop the sweep with an error (a full disk).
pub fn sweep(
    base: &ScenarioSpec,
    dims: &[Dim],
    progress: &(dyn Fn(usize) + Sync),
    sink: &mut dyn FnMut(Row) -> Result<()>,
) -> Result<SweepSummary> {
    if base.global_batch.is_some() && dims.iter().any(|d| d.param == Param::GradAccum) {
        return Err(Error::Invalid(
            "--vary grad_accum conflicts with --global-batch (which sets the micro-steps of every row)"
                .into(),
        ));
    }
    if dims.is_empty() {
        return Err(Error::Invalid("give at least one --vary NAME=SPEC".into()));
    }
    for (i, d) in dims.iter().enumerate() {
        if dims[..i].iter().any(|e| e.param == d.param) {
            return Err(Error::Invalid(format!(
                "--vary {} is given twice",
                d.param.name()
            )));
        }
    }
    let scenario = base.load()?;
    let find = |p: Param| dims.iter().find(|d| d.param == p);
    let model_names: Vec<String> =
        find(Param::Model).map_or_else(|| vec![base.model.clone()], |d| d.labels.clone());
    let seqs: Vec<Option<u64>> = find(Param::Seq).map_or_else(
        || vec![base.seq],
        |d| d.nums.iter().map(|s| Some(*s)).collect(),
    );
    let mut models = Vec::with_capacity(model_names.len() * seqs.len());
    let mut model_steps = Vec::with_capacity(model_names.len() * seqs.len());
    for name in &model_names {
        let m = spec::load_model(name)?;
        let step = ModelStep::of(&m)?;
        for s in &seqs {
            model_steps.push(step);
            models.push(match s {
                Some(s) => m.with_sequence(*s).map_err(|e| e.to_string()),
                None => Ok(m.clone()),
            });
        }
    }
    let cal = scenario.calibration.as_ref();
    let gpu_names: Vec<String> =
        find(Param::Gpu).map_or_else(|| vec![base.gpu.clone()], |d| d.labels.clone());
    let machines = gpu_names
        .iter()
        .map(|g| {
            spec::load_gpu(g).map(|spec| {
                let price = base
                    .price_per_gpu_hour
                    .or(spec.price.as_ref().map(|p| p.usd_per_gpu_hour.value));
                (spec.name.clone(), Machine::new(&spec, cal), price)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let varied = |p: Param| dims.iter().any(|d| d.param == p);
    let unset = Unset {
        batch: base.unset.batch && !varied(Param::Batch),
        attention: base.unset.attention && !varied(Param::Attention),
        precision: base.unset.precision && !varied(Param::Precision),
        mode: base.unset.mode && !varied(Param::Mode),
    };
    let plan = Plan {
        dims,
        models,
        model_steps,
        unset,
        n_seq: seqs.len(),
        machines,
        dataset: base.dataset,
        base: scenario.run,
    };

    let n = configurations(dims);
    if n > 50_000_000 {
        return Err(Error::Invalid(format!(
            "the sweep has {n} configurations; at most 50 million are allowed"
        )));
    }
    let mut out: Vec<Option<std::result::Result<StepEstimate, String>>> =
        (0..n.min(BLOCK)).map(|_| None).collect();
    let threads = rayon::current_num_threads().max(1);
    let (mut eval_seconds, mut invalid) = (0.0, 0);
    let mut idx = [0usize; PARAMS.len()];
    for first in (0..n).step_by(BLOCK) {
        let len = (n - first).min(BLOCK);
        let slots = &mut out[..len];
        let chunk = (len / (threads * 16)).clamp(1, 4096);
        let start = Instant::now();
        slots
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each_init(Estimator::new, |est, (c, slots)| {
                let mut idx = [0usize; PARAMS.len()];
                for (j, slot) in slots.iter_mut().enumerate() {
                    plan.digits(first + c * chunk + j, &mut idx);
                    let (m, g, run) = plan.config(&idx);
                    *slot = Some(match &plan.models[m] {
                        Ok(model) => est
                            .estimate(model, &plan.machines[g].1, &run)
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.clone()),
                    });
                }
                progress(slots.len());
            });
        eval_seconds += start.elapsed().as_secs_f64();
        for (j, r) in slots.iter_mut().enumerate() {
            plan.digits(first + j, &mut idx);
            let (m, g, run) = plan.config(&idx);
            let tokens_per_sample = plan.models[m].as_ref().map_or(0, |m| m.tokens_per_sample());
            let (model_name, seq) = match &plan.models[m] {
                Ok(model) => (model.name.clone(), Some(model.max_seq())),
                Err(_) => {
                    let seq = seqs[m % plan.n_seq];
                    (model_names[m / plan.n_seq].clone(), seq)
                }
            };
            let e = match r.take() {
                Some(Ok(e)) => Ok(e),
                Some(Err(msg)) => Err(msg),
                None => Err("not evaluated".to_string()),
            };
            invalid += usize::from(e.is_err());
            let costs = Costs {
                usd_per_gpu_hour: plan.price(&idx, g),
                dataset_samples: plan.dataset.map(|d| d.samples(tokens_per_sample)),
            };
            sink(row(
                model_name,
                plan.machines[g].0.clone(),
                seq,
                &run,
                e,
                costs,
            ))?;
        }
    }
    Ok(SweepSummary {
        vary: dims
            .iter()
            .map(|d| (d.param.name().to_string(), d.labels.clone()))
            .collect(),
        configurations: n,
        invalid,
        eval_seconds,
    })
}

/// Notes on the prices behind a sweep's cost columns: GPUs whose file prices come from
/// different providers or dates (their cost gap mixes offers), and GPUs without a price.
pub fn price_notes(base: &ScenarioSpec, dims: &[Dim]) -> Result<Vec<String>> {
    let varied = dims.iter().any(|d| d.param == Param::Price);
    if let (Some(p), true) = (base.price_per_gpu_hour, varied) {
        return Ok(vec![format!(
            "--vary price sets the price of every row: --price-per-gpu-hour {p} is not used"
        )]);
    }
    if base.price_per_gpu_hour.is_some() || varied {
        return Ok(Vec::new());
    }
    let gpus: Vec<String> = dims
        .iter()
        .find(|d| d.param == Param::Gpu)
        .map_or_else(|| vec![base.gpu.clone()], |d| d.labels.clone());
    let mut offers = Vec::new();
    let mut unpriced = Vec::new();
    for g in &gpus {
        let spec = spec::load_gpu(g)?;
        match &spec.price {
            Some(p) => offers.push((spec.name.clone(), format!("{} {}", p.provider, p.date))),
            None => unpriced.push(spec.name.clone()),
        }
    }
    let mut notes = Vec::new();
    if offers.iter().any(|(_, o)| *o != offers[0].1) {
        let list: Vec<String> = offers.iter().map(|(g, o)| format!("{g}: {o}")).collect();
        notes.push(format!(
            "the GPU files' prices come from different offers ({}): cost differences between those GPUs mix providers and dates; give --price-per-gpu-hour or --vary price for a like-for-like comparison",
            list.join("; ")
        ));
    }
    if !unpriced.is_empty() {
        notes.push(format!(
            "{} has no price in its file: its cost columns are empty (give --price-per-gpu-hour)",
            unpriced.join(", ")
        ));
    }
    Ok(notes)
}
