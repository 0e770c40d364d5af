//! One row of a sweep: the configuration, the estimate's main fields and the cost columns.

use crate::estimate::{RunConfig, StepEstimate};
use serde::Serialize;

/// One output row: the configuration and the estimate's main fields, named as in
/// `roofline estimate --json`; `error` is set (and the numbers absent) for an invalid
/// configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Model name.
    pub model: String,
    /// GPU name.
    pub gpu: String,
    /// Sequence length (tokens per sample).
    pub seq: Option<u64>,
    /// Samples per GPU per micro-step.
    pub batch_per_gpu: u64,
    /// Attention implementation.
    pub attention: String,
    /// Execution mode.
    pub mode: String,
    /// Precision.
    pub precision: String,
    /// Checkpointing.
    pub checkpointing: String,
    /// GPUs in total.
    pub gpus: u64,
    /// Micro-steps per optimizer step.
    pub grad_accum: u64,
    /// ZeRO stage.
    pub zero: u8,
    /// EMA copies.
    pub ema: u32,
    /// Expert-parallel ranks.
    pub ep: u64,
    /// Tensor-parallel GPUs.
    pub tp: u64,
    /// Pipeline stages.
    pub pp: u64,
    /// Model chunks per pipeline stage.
    pub vpp: u64,
    /// Context-parallel GPUs.
    pub cp: u64,
    /// Optimizer step time.
    pub step_time_s: Option<f64>,
    /// Forward per micro-step.
    pub forward_s: Option<f64>,
    /// Backward per micro-step.
    pub backward_s: Option<f64>,
    /// Optimizer per step.
    pub optimizer_s: Option<f64>,
    /// Exposed communication per step.
    pub comm_exposed_s: Option<f64>,
    /// Samples per second, whole fleet.
    pub samples_per_s: Option<f64>,
    /// Tokens per second, whole fleet.
    pub tokens_per_s: Option<f64>,
    /// Model FLOPs utilization.
    pub mfu: Option<f64>,
    /// Hardware FLOPs utilization.
    pub hfu: Option<f64>,
    /// Memory per GPU.
    pub memory_per_gpu_bytes: Option<f64>,
    /// Whether it fits.
    pub fits: Option<bool>,
    /// Largest batch per GPU that fits.
    pub max_batch: Option<u64>,
    /// Price per GPU-hour, USD (--price-per-gpu-hour or the GPU file's).
    pub usd_per_gpu_hour: Option<f64>,
    /// USD per optimizer step across the fleet.
    pub cost_per_step_usd: Option<f64>,
    /// Training time over the dataset (--train-samples / --train-tokens), seconds.
    pub train_time_s: Option<f64>,
    /// GPU-hours of that training.
    pub gpu_hours: Option<f64>,
    /// USD of that training.
    pub train_cost_usd: Option<f64>,
    /// Why the configuration could not be evaluated.
    pub error: Option<String>,
}

/// CSV column order (the fields of [`Row`]).
pub const COLUMNS: [&str; 35] = [
    "model",
    "gpu",
    "seq",
    "batch_per_gpu",
    "attention",
    "mode",
    "precision",
    "checkpointing",
    "gpus",
    "grad_accum",
    "zero",
    "ema",
    "ep",
    "tp",
    "pp",
    "vpp",
    "cp",
    "step_time_s",
    "forward_s",
    "backward_s",
    "optimizer_s",
    "comm_exposed_s",
    "samples_per_s",
    "tokens_per_s",
    "mfu",
    "hfu",
    "memory_per_gpu_bytes",
    "fits",
    "max_batch",
    "usd_per_gpu_hour",
    "cost_per_step_usd",
    "train_time_s",
    "gpu_hours",
    "train_cost_usd",
    "error",
];

/// What a row's cost columns need beside its estimate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Costs {
    /// Price per GPU-hour, USD.
    pub usd_per_gpu_hour: Option<f64>,
    /// Samples in the dataset (all epochs), when one is given.
    pub dataset_samples: Option<f64>,
}

pub(super) fn row(
    model: String,
    gpu: String,
    seq: Option<u64>,
    run: &RunConfig,
    e: std::result::Result<StepEstimate, String>,
    costs: Costs,
) -> Row {
    let ok = e.as_ref().ok();
    let f = |g: fn(&StepEstimate) -> f64| ok.map(g);
    let gpus = run.fleet.gpus as f64;
    let price = costs.usd_per_gpu_hour;
    // Training time: whole optimizer steps over the dataset.
    let train_time_s = ok.and_then(|e| {
        costs
            .dataset_samples
            .map(|n| (n / e.samples_per_step).ceil() * e.step_time.0)
    });
    Row {
        model,
        gpu,
        seq,
        batch_per_gpu: run.step.batch,
        attention: run.step.attention.to_string(),
        mode: run.mode.to_string(),
        precision: run.step.precision.to_string(),
        checkpointing: run.step.checkpointing.to_string(),
        gpus: run.fleet.gpus,
        grad_accum: run.micro_steps().unwrap_or(run.grad_accum),
        zero: run.zero,
        ema: run.step.ema,
        ep: run.step.expert_shards,
        tp: run.step.parallel.tp,
        pp: run.step.parallel.pp,
        vpp: run.step.parallel.vpp,
        cp: run.step.parallel.cp,
        step_time_s: f(|e| e.step_time.0),
        forward_s: f(|e| e.forward.0),
        backward_s: f(|e| e.backward.0),
        optimizer_s: f(|e| e.optimizer.0),
        comm_exposed_s: f(|e| e.comm_exposed.0),
        samples_per_s: f(|e| e.samples_per_s),
        tokens_per_s: f(|e| e.tokens_per_s),
        mfu: f(|e| e.mfu),
        hfu: f(|e| e.hfu),
        memory_per_gpu_bytes: f(|e| e.memory.total_bytes.0),
        fits: ok.map(|e| e.fits),
        max_batch: ok.map(|e| e.max_batch),
        usd_per_gpu_hour: price,
        cost_per_step_usd: ok.and_then(|e| price.map(|p| e.step_time.0 / 3600.0 * gpus * p)),
        train_time_s,
        gpu_hours: train_time_s.map(|t| t / 3600.0 * gpus),
        train_cost_usd: train_time_s.and_then(|t| price.map(|p| t / 3600.0 * gpus * p)),
        error: e.err(),
    }
}

impl Row {
    /// The value of a metric column, if the row has it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "step_time_s" => self.step_time_s,
            "samples_per_s" => self.samples_per_s,
            "tokens_per_s" => self.tokens_per_s,
            "mfu" => self.mfu,
            "memory_per_gpu_bytes" => self.memory_per_gpu_bytes,
            "cost_per_step_usd" => self.cost_per_step_usd,
            "train_time_s" => self.train_time_s,
            "train_cost_usd" => self.train_cost_usd,
            _ => None,
        }
    }
}
