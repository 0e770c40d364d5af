//! The command line as clap sees it. Nothing outside `cli/` sees these types: [`super::convert`]
//! turns them into a [`crate::scenario::ScenarioSpec`] (and the other inputs of each command).

use crate::graph::{AttentionImpl, Checkpointing, ExecMode, LossImpl, Precision};
use crate::scenario::defaults;
use crate::units::{parse_count_f64, parse_count_u64};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// roofline: how fast a transformer trains on a GPU fleet, and why, from first principles.
#[derive(Debug, Parser)]
#[command(name = "roofline", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the embedded model specs, or import a Hugging Face config.json as a TOML spec.
    Models(ModelsArgs),
    /// List the embedded GPU specs.
    Gpus(GpusArgs),
    /// Per-op FLOPs, bytes and arithmetic intensity of one training step on one GPU.
    Ops(OpsArgs),
    /// Memory footprint per GPU and the largest batch that fits.
    Memory(MemoryArgs),
    /// Step time, throughput, MFU, memory, training time and cost (default: the planned JiT-B/4 run).
    Estimate(EstimateArgs),
    /// Audit a training plan: every claim of a plan file checked against the model
    /// (e.g. examples/plans/jit-b4-8xh200.toml).
    Audit(AuditArgs),
    /// Run the CUDA microbenchmarks on this machine's GPU (needs an NVIDIA driver).
    Bench(BenchArgs),
    /// Fit the time model to `roofline bench` measurements and write a calibration file.
    Calibrate(CalibrateArgs),
    /// Compare predictions with measured training steps (validation/measure.py output).
    Validate(ValidateArgs),
    /// Charts: `plot roofline` (every op of a step on the GPU's roofline).
    Plot(PlotArgs),
    /// Evaluate the cartesian product of --vary specs in parallel; CSV/JSON rows and a chart.
    Sweep(SweepArgs),
    /// The best executions (tp, sp, pp, vpp, cp, dp, micro-batch, recompute, ZeRO) of a model on
    /// a fleet at a global batch, ranked; only those that fit in memory.
    Search(SearchArgs),
    /// Effect of every assumption on step and training time: table, elasticities, tornado chart.
    Sensitivity(SensitivityArgs),
    /// naive vs sdpa-math vs unfused vs flash1/2/3 across sequence lengths: Markdown table and chart.
    FlashReport(FlashArgs),
    /// Regenerate the committed reports (audit, roofline charts, FlashAttention, GPU comparison).
    Report(ReportArgs),
    /// Print a shell completion script: `roofline completions bash > /etc/bash_completion.d/roofline`
    /// (or zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
}

/// `roofline completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell: bash | zsh | fish | elvish | powershell.
    pub shell: clap_complete::Shell,
}

/// Model and step settings shared by every command that builds a step.
#[derive(Debug, Clone, Args)]
pub struct StepArgs {
    /// Model: an embedded name (see `roofline models`) or a path to a TOML spec.
    #[arg(long, default_value = defaults::MODEL)]
    pub model: String,
    /// Samples per GPU per micro-step (suffixes allowed: 1K) [default: the model file's
    /// [defaults], else 64].
    #[arg(long, allow_hyphen_values = true, value_parser = parse_count_u64)]
    pub batch: Option<u64>,
    /// Attention implementation: naive | sdpa-math | unfused | flash1 | flash2 | flash3 [default: the
    /// model file's [defaults], else naive].
    #[arg(long)]
    pub attention: Option<AttentionImpl>,
    /// Precision: bf16 (autocast, fp32 master weights) | bf16-pure | fp16 (Megatron-style,
    /// loss scaling) | fp32 | tf32 | fp8 [default: the model file's [defaults], else bf16].
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Activation checkpointing: none | selective | full.
    #[arg(long, default_value_t = defaults::CHECKPOINTING)]
    pub checkpointing: Checkpointing,
    /// Cross-entropy of a language model: torch (F.cross_entropy; fused by torch.compile when
    /// compiled) | fused (a hand-written fused kernel in every mode, as FlashAttention's
    /// cross_entropy, llm-foundry's default) | fused-linear (classifier and loss fused and
    /// chunked, as Liger-Kernel's: no logits kept).
    #[arg(long, default_value_t = LossImpl::Torch)]
    pub loss: LossImpl,
    /// EMA copies of the weights updated every step (JiT trains with two).
    #[arg(long, allow_hyphen_values = true, default_value_t = 0)]
    pub ema: u32,
    /// Expert parallelism: ranks the experts of a mixture-of-experts model are spread over
    /// (divides the experts and the data-parallel ranks); 1 = every GPU holds every expert.
    #[arg(long, allow_hyphen_values = true, default_value = "1", value_parser = parse_count_u64)]
    pub ep: u64,
    /// Tensor parallelism (Megatron-LM): GPUs each layer's heads, MLP hidden units and
    /// vocabulary are split over.
    #[arg(long, allow_hyphen_values = true, default_value = "1", value_parser = parse_count_u64)]
    pub tp: u64,
    /// Sequence parallelism along the tensor-parallel group (needs --tp 2 or more).
    #[arg(long)]
    pub sp: bool,
    /// Pipeline stages (1F1B schedule).
    #[arg(long, allow_hyphen_values = true, default_value = "1", value_parser = parse_count_u64)]
    pub pp: u64,
    /// Model chunks per pipeline stage (interleaved 1F1B; needs --pp 2 or more).
    #[arg(long, allow_hyphen_values = true, default_value = "1", value_parser = parse_count_u64)]
    pub vpp: u64,
    /// Context parallelism: GPUs each sequence is split over (ring attention, fused kernels).
    #[arg(long, allow_hyphen_values = true, default_value = "1", value_parser = parse_count_u64)]
    pub cp: u64,
    /// Override the sequence length (vision: the patch tokens beside in-context ones, split
    /// equally between condition and target when the model has condition tokens).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_count_u64)]
    pub seq: Option<u64>,
}

/// `roofline gpus`.
#[derive(Debug, Clone, Args)]
pub struct GpusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `roofline models`.
#[derive(Debug, Clone, Args)]
pub struct ModelsArgs {
    /// Print JSON (the embedded models).
    #[arg(long, conflicts_with = "import")]
    pub json: bool,
    /// A Hugging Face config.json to import (llama, mistral, qwen2, gemma, gemma2, gpt2,
    /// gpt_neox, mixtral, qwen2_moe): prints the equivalent TOML spec.
    #[arg(long)]
    pub import: Option<PathBuf>,
    /// Write the imported spec to this .toml file instead of printing it.
    #[arg(long, requires = "import")]
    pub out: Option<PathBuf>,
}

/// Everything that defines a scenario: model and step, GPU, fleet, execution, dataset, price.
#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    /// Model and step.
    #[command(flatten)]
    pub step: StepArgs,
    /// GPU: an embedded name or a path to a TOML spec.
    #[arg(long, default_value = defaults::GPU)]
    pub gpu: String,
    /// Calibration file overriding efficiencies (from `roofline calibrate`).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// GPUs in total.
    #[arg(long, allow_hyphen_values = true, default_value_t = defaults::GPUS, value_parser = parse_count_u64)]
    pub gpus: u64,
    /// GPUs per node.
    #[arg(long, allow_hyphen_values = true, default_value_t = defaults::GPUS_PER_NODE, value_parser = parse_count_u64)]
    pub gpus_per_node: u64,
    /// Inter-node bandwidth per GPU and direction, in Gb/s (default: 8 x 400 Gb/s NDR per node).
    #[arg(long, allow_hyphen_values = true, default_value_t = defaults::INTER_NODE_GBPS)]
    pub inter_node_gbps: f64,
    /// Cluster network: an embedded name (ib-ndr-8x400, ib-hdr-8x200) or a TOML path; sets the
    /// GPUs per node, inter-node bandwidth, efficiency and NCCL's latencies.
    #[arg(long, conflicts_with_all = ["gpus_per_node", "inter_node_gbps"])]
    pub network: Option<String>,
    /// Execution mode: eager | compiled | graphs [default: the model file's [defaults], else
    /// eager].
    #[arg(long)]
    pub mode: Option<ExecMode>,
    /// ZeRO stage (0 = DDP).
    #[arg(
        long,
        allow_hyphen_values = true,
        default_value_t = 0,
        conflicts_with = "fsdp"
    )]
    pub zero: u8,
    /// Fully sharded data parallelism (PyTorch FSDP): the same as --zero 3.
    #[arg(long)]
    pub fsdp: bool,
    /// Hybrid sharding (HSDP): shard the ZeRO states over groups of N ranks, replicate across
    /// groups (needs a ZeRO stage; N divides the data-parallel ranks).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_count_u64)]
    pub shard_group: Option<u64>,
    /// Overlap tensor-parallel communication with the GEMMs (Transformer Engine's userbuffers;
    /// needs --sp). Off by default, as in Megatron-LM.
    #[arg(long)]
    pub tp_overlap: bool,
    /// Collectives inside a node use NVLink SHARP (NVLS), at the GPU file's measured NVLS
    /// all-reduce bus bandwidth (only where the file has one).
    #[arg(long)]
    pub nvls: bool,
    /// Samples per optimizer step across the fleet: sets the micro-steps per step to
    /// global batch / (batch x data-parallel replicas).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_count_u64, conflicts_with = "grad_accum")]
    pub global_batch: Option<u64>,
    /// Micro-steps per optimizer step.
    #[arg(long, allow_hyphen_values = true, default_value = "1", value_parser = parse_count_u64)]
    pub grad_accum: u64,
    /// Framework workspace in GiB (assumption).
    #[arg(long, allow_hyphen_values = true, default_value_t = defaults::WORKSPACE_GIB)]
    pub workspace_gib: f64,
    /// Dataset size in samples (images for vision models).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_count_f64, conflicts_with = "train_tokens")]
    pub train_samples: Option<f64>,
    /// Dataset size in tokens (converted with --tokens-per-sample).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_count_f64)]
    pub train_tokens: Option<f64>,
    /// Tokens per sample for --train-tokens (default: the model's sequence length).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_count_f64)]
    pub tokens_per_sample: Option<f64>,
    /// Passes over the dataset (default 1).
    #[arg(long, allow_hyphen_values = true)]
    pub epochs: Option<f64>,
    /// Price per GPU-hour in USD (default: the GPU file's, when it has one).
    #[arg(long, allow_hyphen_values = true)]
    pub price_per_gpu_hour: Option<f64>,
}

/// `roofline estimate`.
#[derive(Debug, Clone, Args)]
pub struct EstimateArgs {
    /// The scenario.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Print JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print Markdown.
    #[arg(long)]
    pub markdown: bool,
    /// Also print the per-op table with times and bounds.
    #[arg(long)]
    pub ops: bool,
    /// Add a 90% interval of the step time: Monte Carlo over the ranges in the GPU and
    /// calibration files (1000 samples, fixed seed).
    #[arg(long)]
    pub interval: bool,
}

/// `roofline ops`.
#[derive(Debug, Args)]
pub struct OpsArgs {
    /// Model and step.
    #[command(flatten)]
    pub step: StepArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `roofline memory`.
#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Model and step.
    #[command(flatten)]
    pub step: StepArgs,
    /// GPU: an embedded name (see `roofline gpus`) or a path to a TOML spec.
    #[arg(long, default_value = defaults::GPU)]
    pub gpu: String,
    /// Execution mode: eager | compiled | graphs (compiled recomputes pointwise ops in backward)
    /// [default: the model file's [defaults], else eager].
    #[arg(long)]
    pub mode: Option<ExecMode>,
    /// ZeRO stage (0-3).
    #[arg(long, allow_hyphen_values = true, default_value_t = 0)]
    pub zero: u8,
    /// GPUs the ZeRO shards are spread over.
    #[arg(long, allow_hyphen_values = true, default_value_t = defaults::GPUS, value_parser = parse_count_u64)]
    pub gpus: u64,
    /// Framework workspace in GiB (CUDA context, library workspaces, NCCL buffers; assumption).
    #[arg(long, allow_hyphen_values = true, default_value_t = defaults::WORKSPACE_GIB)]
    pub workspace_gib: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `roofline sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Fixed settings (as for `roofline estimate`); a varied parameter overrides its option.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// NAME=SPEC, repeatable: SPEC is a list `a,b,c` or a numeric range: `a..b` doubles (a, 2a,
    /// 4a, ... up to b), `a..b:s` steps by s, `a..b:xN` multiplies by N.
    /// Names: model, gpu, seq, batch, attention, mode, precision, checkpointing, gpus,
    /// grad_accum, zero, ema, ep, tp, pp, vpp, cp, and price (USD per GPU-hour, a list: it
    /// changes the cost columns only).
    #[arg(long = "vary", required = true)]
    pub vary: Vec<String>,
    /// Output table: .csv or .json.
    #[arg(long)]
    pub out: PathBuf,
    /// Line chart of the metric (.svg or .png): x = first varied parameter, one line per value
    /// of the others.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Metric for the chart: step_time_s | samples_per_s | tokens_per_s | mfu |
    /// memory_per_gpu_bytes | cost_per_step_usd | train_time_s | train_cost_usd (with a
    /// dataset); `time` and `cost` mean the training figure with a dataset, else the per-step one.
    #[arg(long, default_value = "step_time_s")]
    pub metric: String,
    /// Write only the configurations that fit in memory (the table and the chart).
    #[arg(long)]
    pub fits_only: bool,
    /// Print the best configurations that fit: time (training time with a dataset, else
    /// seconds per sample) or cost (training cost, else USD per sample).
    #[arg(long)]
    pub objective: Option<crate::analysis::sweep::SweepObjective>,
    /// How many of the best configurations --objective prints.
    #[arg(long, allow_hyphen_values = true, default_value = "5", value_parser = parse_count_u64, requires = "objective")]
    pub top: u64,
}

/// `roofline search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Model, GPU, fleet, precision, attention, mode and --global-batch (required) as for
    /// `roofline estimate`; the execution settings (--tp, --sp, --pp, --vpp, --cp, --zero,
    /// --batch, accumulation) are searched: --batch is ignored, the others are refused.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Rank by step time or by cost per step.
    #[arg(long, default_value = "time")]
    pub objective: crate::analysis::search::Objective,
    /// How many to print.
    #[arg(long, allow_hyphen_values = true, default_value = "10", value_parser = parse_count_u64)]
    pub top: u64,
    /// Largest tensor-parallel size tried.
    #[arg(long, allow_hyphen_values = true, default_value = "64", value_parser = parse_count_u64)]
    pub max_tp: u64,
    /// Largest pipeline-parallel size tried.
    #[arg(long, allow_hyphen_values = true, default_value = "128", value_parser = parse_count_u64)]
    pub max_pp: u64,
    /// Largest number of model chunks per pipeline stage tried.
    #[arg(long, allow_hyphen_values = true, default_value = "8", value_parser = parse_count_u64)]
    pub max_vpp: u64,
    /// Largest context-parallel size tried (fused attention only).
    #[arg(long, allow_hyphen_values = true, default_value = "8", value_parser = parse_count_u64)]
    pub max_cp: u64,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV.
    #[arg(long)]
    pub csv: bool,
}

/// `roofline sensitivity`.
#[derive(Debug, Clone, Args)]
pub struct SensitivityArgs {
    /// The configuration (as for `roofline estimate`).
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Print the analysis as JSON.
    #[arg(long)]
    pub json: bool,
    /// Tornado chart (.svg or .png).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `roofline flash-report`.
#[derive(Debug, Clone, Args)]
pub struct FlashArgs {
    /// The configuration (as for `roofline estimate`; --attention is ignored: all are compared).
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Folder for the Markdown table and the chart (SVG and PNG), named after the model, the
    /// GPU and every setting that differs from the defaults (`roofline report` writes the
    /// committed ones under reports/).
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
}

/// `roofline plot KIND`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The chart.
    #[command(subcommand)]
    pub kind: PlotKind,
}

/// Chart kinds of `roofline plot`.
#[derive(Debug, Subcommand)]
pub enum PlotKind {
    /// Roofline chart of every op of one training step (log-log intensity vs FLOP/s).
    Roofline(RooflineArgs),
}

/// `roofline plot roofline`: the estimate's settings, the chart file and an optional bench file.
#[derive(Debug, Clone, Args)]
pub struct RooflineArgs {
    /// The configuration (as for `roofline estimate`).
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Chart file: .svg or .png (by extension).
    #[arg(long)]
    pub out: PathBuf,
    /// Measured kernels to draw beside the predicted ops (JSON, schema "roofline-bench/1").
    #[arg(long)]
    pub measured: Option<PathBuf>,
}

/// `roofline report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Folder to write the reports into.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

/// `roofline audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The plan file (TOML; see examples/plans/).
    pub plan: PathBuf,
    /// Write the Markdown report here instead of printing it.
    #[arg(long, conflicts_with = "json")]
    pub out: Option<PathBuf>,
    /// Print the audit as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `roofline validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The measurements JSON (schema roofline-validation/1).
    #[arg(required_unless_present = "published", conflicts_with = "published")]
    pub measurements: Option<PathBuf>,
    /// A file of published training runs (TOML: each run's settings and measured step time,
    /// e.g. validation/published/korthikanti-2022-table5.toml): predicted vs measured.
    #[arg(long)]
    pub published: Option<PathBuf>,
    /// Calibration file (from `roofline calibrate`).
    #[arg(long, conflicts_with = "published")]
    pub calibration: Option<PathBuf>,
    /// GPU spec (default: inferred from the device name in the file).
    #[arg(long, conflicts_with = "published")]
    pub gpu: Option<String>,
    /// Print Markdown.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `roofline calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// The `roofline bench --out` JSON.
    #[arg(long)]
    pub from: PathBuf,
    /// GPU spec of the measured device (default: inferred from the device name).
    #[arg(long)]
    pub gpu: Option<String>,
    /// The PyTorch cross-check JSON (scripts/torch_baseline.py) for eager pointwise bandwidth
    /// and host dispatch time.
    #[arg(long)]
    pub torch: Option<PathBuf>,
    /// Measured training steps (validation/measure.py) for the host time per eager kernel, from
    /// the host-bound configurations.
    #[arg(long)]
    pub validation: Option<PathBuf>,
    /// Where to write the calibration TOML.
    #[arg(long, required_unless_present = "gemm_table")]
    pub out: Option<PathBuf>,
    /// Write the cuBLAS GEMMs of the report as a `[gemm_table]` TOML section here, to paste
    /// into the GPU file (see docs/reference.md).
    #[arg(long)]
    pub gemm_table: Option<PathBuf>,
}

/// `roofline bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Suites to run: memory, gemm, attention, norm, cublas (comma-separated) or all.
    #[arg(long, default_value = "all")]
    pub suite: String,
    /// Also measure every GEMM shape of this model's training step: MODEL or MODEL:BATCH (name or
    /// TOML path); repeat for several models or batches (shapes measured once each).
    #[arg(long)]
    pub shapes: Vec<String>,
    /// Batch per GPU for a --shapes entry without its own.
    #[arg(long, allow_hyphen_values = true, default_value_t = defaults::BATCH, value_parser = parse_count_u64)]
    pub batch: u64,
    /// GPU spec whose peaks give `fraction_of_peak` (e.g. h100-sxm).
    #[arg(long)]
    pub gpu: Option<String>,
    /// Timed repetitions per kernel and size.
    #[arg(long, allow_hyphen_values = true, default_value_t = 20)]
    pub reps: u32,
    /// Write the JSON report here (rewritten after each suite).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the cuBLAS GEMMs as a `[gemm_table]` TOML section here (as `roofline
    /// calibrate --gemm-table` does from the JSON report).
    #[arg(long)]
    pub gemm_table: Option<PathBuf>,
}
