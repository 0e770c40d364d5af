//! Command-line interface: argument definitions and dispatch. Each command gathers its inputs,
//! calls the library and hands the result to an output format in [`crate::export`].

use crate::error::{Error, Result};
use crate::export;
use crate::graph::{AttentionImpl, Checkpointing, ExecMode, Precision, StepConfig};
use crate::memory::MemoryConfig;
use crate::spec::{self, GpuSpec, ModelSpec};
use crate::time::{Calibration, Estimator, Fleet, Machine, RunConfig};
use crate::units::Bytes;
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
    /// List the embedded model specs.
    Models,
    /// List the embedded GPU specs.
    Gpus,
    /// Per-op FLOPs, bytes and arithmetic intensity of one training step on one GPU.
    Ops(OpsArgs),
    /// Memory footprint per GPU and the largest batch that fits.
    Memory(MemoryArgs),
    /// Step time, throughput, MFU, memory, training time and cost (default: the seed's plan).
    Estimate(EstimateArgs),
    /// Regenerate the audit of the seed document's plan (reports/seed-audit.md).
    AuditSeed(AuditArgs),
    /// Charts: `plot roofline` (every op of a step on the GPU's roofline).
    Plot(crate::plot::PlotArgs),
    /// Evaluate the cartesian product of --vary specs in parallel; CSV/JSON rows and a chart.
    Sweep(crate::sweep::SweepArgs),
    /// Effect of every assumption on step and training time: table, elasticities, tornado chart.
    Sensitivity(crate::sensitivity::SensitivityArgs),
    /// naive vs sdpa-math vs flash2 vs flash3 across sequence lengths: Markdown table and chart.
    FlashReport(crate::flash_report::FlashArgs),
    /// Regenerate the committed reports (audit, roofline charts, FlashAttention, GPU comparison).
    Report(crate::report::ReportArgs),
}

/// Model and step settings shared by `ops`, `memory` and `estimate`.
#[derive(Debug, Clone, Args)]
pub struct StepArgs {
    /// Model: an embedded name (see `roofline models`) or a path to a TOML spec.
    #[arg(long, default_value = "jit-b4")]
    pub model: String,
    /// Samples per GPU per micro-step (suffixes allowed: 1K).
    #[arg(long, default_value = "64", value_parser = parse_count_u64)]
    pub batch: u64,
    /// Attention implementation: naive | sdpa-math | flash2 | flash3.
    #[arg(long, default_value = "naive")]
    pub attention: AttentionImpl,
    /// Precision: bf16 (autocast, fp32 master weights) | fp32 | tf32 | fp8.
    #[arg(long, default_value = "bf16")]
    pub precision: Precision,
    /// Activation checkpointing: none | selective | full.
    #[arg(long, default_value = "none")]
    pub checkpointing: Checkpointing,
    /// EMA copies of the weights updated every step (JiT trains with two).
    #[arg(long, default_value_t = 0)]
    pub ema: u32,
    /// Override the sequence length (vision: target patches, condition = target when present).
    #[arg(long, value_parser = parse_count_u64)]
    pub seq: Option<u64>,
}

impl StepArgs {
    /// Loads the model (with the sequence override) and the step config.
    pub fn resolve(&self) -> Result<(ModelSpec, StepConfig)> {
        let mut model = spec::load_model(&self.model)?;
        if let Some(s) = self.seq {
            model = model.with_sequence(s)?;
        }
        let step = StepConfig {
            batch: self.batch,
            attention: self.attention,
            precision: self.precision,
            checkpointing: self.checkpointing,
            ema: self.ema,
        };
        Ok((model, step))
    }
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
    #[arg(long, default_value = "h200-sxm")]
    pub gpu: String,
    /// ZeRO stage (0-3).
    #[arg(long, default_value_t = 0)]
    pub zero: u8,
    /// GPUs the ZeRO shards are spread over.
    #[arg(long, default_value = "8", value_parser = parse_count_u64)]
    pub gpus: u64,
    /// Framework workspace in GiB (CUDA context, library workspaces, NCCL buffers; assumption).
    #[arg(long, default_value_t = 1.0)]
    pub workspace_gib: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `roofline estimate`.
#[derive(Debug, Clone, Args)]
pub struct EstimateArgs {
    /// Model and step.
    #[command(flatten)]
    pub step: StepArgs,
    /// GPU: an embedded name or a path to a TOML spec.
    #[arg(long, default_value = "h200-sxm")]
    pub gpu: String,
    /// Calibration file overriding efficiencies (from `roofline calibrate`).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// GPUs in total.
    #[arg(long, default_value = "8", value_parser = parse_count_u64)]
    pub gpus: u64,
    /// GPUs per node.
    #[arg(long, default_value = "8", value_parser = parse_count_u64)]
    pub gpus_per_node: u64,
    /// Inter-node bandwidth per GPU and direction, in Gb/s (default: 8 x 400 Gb/s NDR per node).
    #[arg(long, default_value_t = 400.0)]
    pub inter_node_gbps: f64,
    /// Execution mode: eager | compiled | graphs.
    #[arg(long, default_value = "eager")]
    pub mode: ExecMode,
    /// ZeRO stage (0 = DDP).
    #[arg(long, default_value_t = 0)]
    pub zero: u8,
    /// Micro-steps per optimizer step.
    #[arg(long, default_value = "1", value_parser = parse_count_u64)]
    pub grad_accum: u64,
    /// Framework workspace in GiB (assumption).
    #[arg(long, default_value_t = 1.0)]
    pub workspace_gib: f64,
    /// Dataset size in samples (images for vision models).
    #[arg(long, value_parser = parse_count_f64, conflicts_with = "train_tokens")]
    pub train_samples: Option<f64>,
    /// Dataset size in tokens (converted with --tokens-per-sample).
    #[arg(long, value_parser = parse_count_f64)]
    pub train_tokens: Option<f64>,
    /// Tokens per sample for --train-tokens (default: the model's sequence length).
    #[arg(long, value_parser = parse_count_f64)]
    pub tokens_per_sample: Option<f64>,
    /// Passes over the dataset.
    #[arg(long, default_value_t = 1.0)]
    pub epochs: f64,
    /// Price per GPU-hour in USD (default: the GPU file's, when it has one).
    #[arg(long)]
    pub price_per_gpu_hour: Option<f64>,
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

/// `roofline audit-seed`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Where to write the report.
    #[arg(long, default_value = "reports/seed-audit.md")]
    pub out: PathBuf,
}

/// Parses a count with an optional suffix: K (1e3), M (1e6), B or G (1e9), T (1e12), P (1e15).
pub fn parse_count_f64(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1e3,
                'M' => 1e6,
                'B' | 'G' => 1e9,
                'T' => 1e12,
                'P' => 1e15,
                _ => return Err(format!("unknown suffix `{c}` in `{s}` (use K, M, B/G, T or P)")),
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    let v = v * mult;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("`{s}` must be a positive finite number"));
    }
    Ok(v)
}

/// [`parse_count_f64`] for whole counts.
pub fn parse_count_u64(s: &str) -> std::result::Result<u64, String> {
    let v = parse_count_f64(s)?;
    if v.fract() != 0.0 || v > 9.0e15 {
        return Err(format!("`{s}` must be a whole number up to 9e15"));
    }
    Ok(v as u64)
}

impl EstimateArgs {
    /// Resolves everything an estimate needs.
    pub fn resolve(&self) -> Result<(ModelSpec, GpuSpec, Machine, RunConfig)> {
        let (model, step) = self.step.resolve()?;
        let gpu = spec::load_gpu(&self.gpu)?;
        let cal = self.calibration.as_deref().map(Calibration::load).transpose()?;
        let mach = Machine::new(&gpu, cal.as_ref());
        if self.gpus_per_node == 0 || self.gpus == 0 {
            return Err(Error::Invalid("--gpus and --gpus-per-node must be positive".into()));
        }
        if !(self.inter_node_gbps.is_finite() && self.inter_node_gbps > 0.0) {
            return Err(Error::Invalid("--inter-node-gbps must be a positive number".into()));
        }
        if !(self.workspace_gib.is_finite() && self.workspace_gib >= 0.0) {
            return Err(Error::Invalid("--workspace-gib must be a non-negative number".into()));
        }
        if !(self.epochs.is_finite() && self.epochs > 0.0) {
            return Err(Error::Invalid("--epochs must be a positive number".into()));
        }
        if let Some(p) = self.price_per_gpu_hour {
            if !(p.is_finite() && p >= 0.0) {
                return Err(Error::Invalid("--price-per-gpu-hour must be a non-negative number".into()));
            }
        }
        let run = RunConfig {
            step,
            mode: self.mode,
            fleet: Fleet {
                gpus: self.gpus,
                gpus_per_node: self.gpus_per_node,
                inter_node_bandwidth: self.inter_node_gbps * 1e9 / 8.0,
                ..Fleet::default()
            },
            zero: self.zero,
            grad_accum: self.grad_accum,
            memory: MemoryConfig { workspace: Bytes(self.workspace_gib * (1u64 << 30) as f64), ..MemoryConfig::default() },
        };
        Ok((model, gpu, mach, run))
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Models => {
            print!("{}", export::text::models()?);
            Ok(())
        }
        Command::Gpus => {
            print!("{}", export::text::gpus()?);
            Ok(())
        }
        Command::Ops(a) => {
            let (model, step) = a.step.resolve()?;
            let mut ops = Vec::new();
            crate::graph::build_step(&model, &step, &mut ops)?;
            if a.json {
                println!("{}", export::json::ops(&model, &step, &ops)?);
            } else {
                print!("{}", export::text::ops(&model, &step, &ops));
            }
            Ok(())
        }
        Command::Memory(a) => {
            let (model, step) = a.step.resolve()?;
            let gpu = spec::load_gpu(&a.gpu)?;
            if !(a.workspace_gib.is_finite() && a.workspace_gib >= 0.0) {
                return Err(Error::Invalid("--workspace-gib must be a non-negative number".into()));
            }
            if a.zero > 3 {
                return Err(Error::Invalid(format!("--zero {} is not a ZeRO stage (0-3)", a.zero)));
            }
            let mc = MemoryConfig {
                zero: a.zero,
                dp: a.gpus,
                workspace: Bytes(a.workspace_gib * (1u64 << 30) as f64),
                ..MemoryConfig::default()
            };
            let mut ops = Vec::new();
            crate::graph::build_step(&model, &step, &mut ops)?;
            let mem = crate::memory::footprint(&model, &step, &ops, &mc);
            let report = export::MemoryReport::new(&model, &gpu, &step, &mem, &mc);
            if a.json {
                println!("{}", export::json::to_string(&report)?);
            } else {
                print!("{}", export::text::memory(&report));
            }
            Ok(())
        }
        Command::Estimate(a) => {
            let report = export::EstimateReport::compute(&a)?;
            let interval = if a.interval { Some(crate::uncertainty::step_interval(&a)?) } else { None };
            if a.json {
                match &interval {
                    Some(i) => println!("{}", crate::uncertainty::report_json(&report, i)?),
                    None => println!("{}", export::json::to_string(&report)?),
                }
            } else if a.markdown {
                print!("{}", export::markdown::estimate(&report));
            } else {
                print!("{}", export::text::estimate(&report));
            }
            if let (Some(i), false) = (&interval, a.json) {
                println!("\n{}", i.line());
            }
            if a.ops {
                let (model, _gpu, mach, run) = a.resolve()?;
                let mut est = Estimator::new();
                est.estimate(&model, &mach, &run)?;
                print!("{}", export::text::op_times(&est.ops, &mach, &run)?);
            }
            Ok(())
        }
        Command::AuditSeed(a) => {
            let md = crate::audit::seed_audit()?;
            export::write_file(&a.out, &md)?;
            eprintln!("wrote {}", a.out.display());
            Ok(())
        }
        Command::Plot(a) => crate::plot::run(&a),
        Command::Sweep(a) => crate::sweep::run(&a),
        Command::Sensitivity(a) => crate::sensitivity::run(&a),
        Command::FlashReport(a) => crate::flash_report::run(&a),
        Command::Report(a) => crate::report::run(&a),
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
