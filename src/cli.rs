//! Command-line interface: argument definitions and dispatch. Each command gathers its inputs,
//! calls the library and hands the result to an output format in [`crate::export`].

use crate::error::{Error, Result};
use crate::export;
use crate::graph::{AttentionImpl, Checkpointing, ExecMode, Precision, StepConfig};
use crate::memory::MemoryConfig;
use crate::spec::{self, GpuSpec, ModelSpec};
use crate::time::{Calibration, Fleet, Machine, RunConfig};
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
    /// Run the CUDA microbenchmarks on this machine's GPU (needs an NVIDIA driver).
    Bench(BenchArgs),
    /// Fit the time model to `roofline bench` measurements and write a calibration file.
    Calibrate(CalibrateArgs),
    /// Compare predictions with measured training steps (validation/measure.py output).
    Validate(ValidateArgs),
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

/// `roofline validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The measurements JSON (schema roofline-validation/1).
    pub measurements: PathBuf,
    /// Calibration file (from `roofline calibrate`).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// GPU spec (default: inferred from the device name in the file).
    #[arg(long)]
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
    #[arg(long)]
    pub out: PathBuf,
}

/// `roofline bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Suites to run: memory, gemm, attention, norm, cublas (comma-separated) or all.
    #[arg(long, default_value = "all")]
    pub suite: String,
    /// Also measure every GEMM shape of this model's training step (name or TOML path).
    #[arg(long)]
    pub shapes: Option<String>,
    /// Batch per GPU for --shapes.
    #[arg(long, default_value = "64", value_parser = parse_count_u64)]
    pub batch: u64,
    /// GPU spec whose peaks give `fraction_of_peak` (e.g. h100-sxm).
    #[arg(long)]
    pub gpu: Option<String>,
    /// Timed repetitions per kernel and size.
    #[arg(long, default_value_t = 20)]
    pub reps: u32,
    /// Write the JSON report here (rewritten after each suite).
    #[arg(long)]
    pub out: Option<PathBuf>,
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
    /// Attention implementation: naive | sdpa-math | unfused | flash2 | flash3.
    #[arg(long, default_value = "naive")]
    pub attention: AttentionImpl,
    /// Precision: bf16 (autocast, fp32 master weights) | bf16-pure | fp32 | tf32 | fp8.
    #[arg(long, default_value = "bf16")]
    pub precision: Precision,
    /// Activation checkpointing: none | selective | full.
    #[arg(long, default_value = "none")]
    pub checkpointing: Checkpointing,
    /// EMA copies of the weights updated every step (JiT trains with two).
    #[arg(long, default_value_t = 0)]
    pub ema: u32,
    /// Override the sequence length (vision: the patch tokens beside in-context ones, split
    /// equally between condition and target when the model has condition tokens).
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
            ..StepConfig::default()
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
    /// Execution mode: eager | compiled | graphs (compiled recomputes pointwise ops in backward).
    #[arg(long, default_value = "eager")]
    pub mode: ExecMode,
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
                _ => {
                    return Err(format!(
                        "unknown suffix `{c}` in `{s}` (use K, M, B/G, T or P)"
                    ))
                }
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
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
        let cal = self
            .calibration
            .as_deref()
            .map(Calibration::load)
            .transpose()?;
        if let (Some(c), Some(path)) = (&cal, &self.calibration) {
            c.check_gpu(&gpu, &path.display().to_string())?;
        }
        let mach = Machine::new(&gpu, cal.as_ref());
        if self.gpus_per_node == 0 || self.gpus == 0 {
            return Err(Error::Invalid(
                "--gpus and --gpus-per-node must be positive".into(),
            ));
        }
        if !(self.inter_node_gbps.is_finite() && (1.0..=1e6).contains(&self.inter_node_gbps)) {
            return Err(Error::Invalid(
                "--inter-node-gbps must be between 1 and 1e6 (Gb/s per GPU)".into(),
            ));
        }
        if !(self.workspace_gib.is_finite() && (0.0..=1e6).contains(&self.workspace_gib)) {
            return Err(Error::Invalid(
                "--workspace-gib must be between 0 and 1e6".into(),
            ));
        }
        if self.tokens_per_sample.is_some_and(|t| t < 1.0) {
            return Err(Error::Invalid(
                "--tokens-per-sample must be at least 1".into(),
            ));
        }
        if !(self.epochs.is_finite() && self.epochs > 0.0) {
            return Err(Error::Invalid("--epochs must be a positive number".into()));
        }
        if let Some(p) = self.price_per_gpu_hour {
            if !(p.is_finite() && p >= 0.0) {
                return Err(Error::Invalid(
                    "--price-per-gpu-hour must be a non-negative number".into(),
                ));
            }
        }
        let run = RunConfig {
            step,
            mode: self.mode,
            fleet: Fleet {
                gpus: self.gpus,
                // A fleet smaller than a node is one partial node.
                gpus_per_node: self.gpus_per_node.min(self.gpus),
                inter_node_bandwidth: self.inter_node_gbps * 1e9 / 8.0,
                ..Fleet::default()
            },
            zero: self.zero,
            grad_accum: self.grad_accum,
            memory: MemoryConfig {
                workspace: Bytes(self.workspace_gib * (1u64 << 30) as f64),
                ..MemoryConfig::default()
            },
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
                return Err(Error::Invalid(
                    "--workspace-gib must be a non-negative number".into(),
                ));
            }
            if a.zero > 3 {
                return Err(Error::Invalid(format!(
                    "--zero {} is not a ZeRO stage (0-3)",
                    a.zero
                )));
            }
            let mc = MemoryConfig {
                zero: a.zero,
                dp: a.gpus,
                workspace: Bytes(a.workspace_gib * (1u64 << 30) as f64),
                fused: a.mode != ExecMode::Eager,
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
            let (report, est, mach, run) = export::EstimateReport::compute_with_ops(&a)?;
            let interval = if a.interval {
                Some(crate::uncertainty::step_interval(&a)?)
            } else {
                None
            };
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
                print!("{}", export::text::op_times(&est.ops, &mach, &run)?);
            }
            Ok(())
        }
        Command::Bench(a) => bench(&a),
        Command::Calibrate(a) => calibrate(&a),
        Command::Validate(a) => {
            let text = std::fs::read_to_string(&a.measurements)
                .map_err(|e| Error::io(&a.measurements, e))?;
            let m: crate::validate::Measurements = serde_json::from_str(&text).map_err(|e| {
                Error::spec(
                    a.measurements.display().to_string(),
                    "(json)",
                    format!("not a roofline-validation/1 file: {e}"),
                )
            })?;
            let device = m.device.get("name").and_then(|v| v.as_str()).unwrap_or("");
            let gpu = match &a.gpu {
                Some(g) => g.clone(),
                None => gpu_for_device(device)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "cannot tell the GPU spec of device `{device}`: pass --gpu"
                        ))
                    })?
                    .to_string(),
            };
            let cal = a
                .calibration
                .as_deref()
                .map(Calibration::load)
                .transpose()?;
            let v = crate::validate::validate(&m, &gpu, cal.as_ref())?;
            if a.json {
                println!("{}", export::json::to_string(&v)?);
            } else {
                print!("{}", crate::validate::render(&v, a.markdown));
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

/// The embedded GPU spec whose name matches a device name reported by the driver.
fn gpu_for_device(device: &str) -> Option<&'static str> {
    let d = device.to_ascii_uppercase();
    if d.contains("H200") {
        Some("h200-sxm")
    } else if d.contains("H100") && d.contains("PCIE") {
        Some("h100-pcie")
    } else if d.contains("H100") {
        Some("h100-sxm")
    } else if d.contains("A100") {
        Some("a100-sxm-80gb")
    } else if d.contains("B200") {
        Some("b200")
    } else if d.contains("L40S") {
        Some("l40s")
    } else if d.contains("MI300X") {
        Some("mi300x")
    } else {
        None
    }
}

fn calibrate(a: &CalibrateArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.from).map_err(|e| Error::io(&a.from, e))?;
    let report: crate::gpu::BenchReport = serde_json::from_str(&text).map_err(|e| {
        Error::spec(
            a.from.display().to_string(),
            "(json)",
            format!("not a roofline-bench/1 report: {e}"),
        )
    })?;
    let gpu_name = match &a.gpu {
        Some(g) => g.clone(),
        None => gpu_for_device(&report.device.name)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot tell the GPU spec of device `{}`: pass --gpu",
                    report.device.name
                ))
            })?
            .to_string(),
    };
    let gpu = spec::load_gpu(&gpu_name)?;
    let mut fit = crate::calibrate::fit(&report, &gpu)?;
    if let Some(path) = &a.torch {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let baseline: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::spec(
                path.display().to_string(),
                "(json)",
                format!("invalid JSON: {e}"),
            )
        })?;
        crate::calibrate::add_torch_baseline(&mut fit, &baseline, &gpu)?;
    }
    if let Some(path) = &a.validation {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let steps: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::spec(
                path.display().to_string(),
                "(json)",
                format!("invalid JSON: {e}"),
            )
        })?;
        match crate::calibrate::host_dispatch_from_steps(&steps) {
            Some((t, n)) => {
                fit.host_dispatch_s = Some(t);
                fit.host_dispatch_source = format!(
                    "median of step time / kernels per step over the {n} host-bound eager configurations (GPU busy < {:.0}% of the step) of {}",
                    100.0 * crate::calibrate::HOST_BOUND_GPU_SHARE,
                    path.display()
                );
            }
            None => eprintln!(
                "note: {} has no host-bound eager configuration; host dispatch not calibrated",
                path.display()
            ),
        }
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let cal = crate::calibrate::calibration(&fit, &report, &gpu, &command);
    let toml = toml::to_string(&cal)
        .map_err(|e| Error::Invalid(format!("cannot write calibration: {e}")))?;
    let header = format!(
        "# Calibration of {} from `roofline bench` measurements (generated by `roofline calibrate`).\n\
         # Use with `roofline estimate --calibration {}`.\n\n",
        gpu.name,
        a.out.display()
    );
    export::write_file(&a.out, &(header + &toml))?;
    print!("{}", export::text::calibration(&fit));
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

fn bench(a: &BenchArgs) -> Result<()> {
    use crate::gpu;
    let suites = gpu::Suite::parse_list(&a.suite).map_err(Error::Invalid)?;
    let gemm_shapes = match &a.shapes {
        Some(model) => gpu::model_gemm_shapes(&spec::load_model(model)?, a.batch)?,
        None => Vec::new(),
    };
    let peaks = match &a.gpu {
        Some(g) => {
            let g = spec::load_gpu(g)?;
            Some(gpu::Peaks {
                bf16_tensor_flops: g.peak_flops.bf16_tensor.value,
                fp32_vector_flops: g.peak_flops.fp32_vector.value,
                hbm_bytes_per_s: g.memory.hbm_bandwidth.value,
            })
        }
        None => None,
    };
    if a.reps == 0 {
        return Err(Error::Invalid("--reps must be positive".into()));
    }
    let opts = gpu::BenchOptions {
        suites,
        gemm_shapes,
        reps: a.reps,
        out: a.out.clone(),
        peaks,
    };
    let report = gpu::run(&opts).map_err(|e| Error::Gpu(e.to_string()))?;
    gpu::print_table(&report);
    if let Some(out) = &a.out {
        export::write_file(out, &report.to_json())?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
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
