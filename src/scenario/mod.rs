//! The one input of every analysis: a model, a GPU (with an optional calibration), how the step
//! runs, the dataset and the price, loaded and checked once.
//!
//! A [`ScenarioSpec`] says what is wanted by name (as a command line or a plan file gives it);
//! [`ScenarioSpec::load`] resolves the names, checks every setting and every combination of
//! settings, and returns a [`Scenario`]. Nothing below the command line sees a flag.

use crate::error::{Error, Result};
use crate::estimate::RunConfig;
use crate::graph::{AttentionImpl, ExecMode, LossImpl, PrecisionPolicy, StepConfig};
use crate::memory::MemoryConfig;
use crate::spec::model::ModelKind;
use crate::spec::{self, GpuSpec, ModelSpec};
use crate::time::Calibration;
use crate::time::{Fleet, Machine};
use crate::units::{ByteRate, Bytes, Seconds};
use std::path::PathBuf;

mod model_defaults;
pub use model_defaults::{describe as describe_defaults, ModelStep, Unset};

/// roofline's own defaults: the planned JiT-B/4 workload (examples/plans/jit-b4-8xh200.toml),
/// batch 64 per GPU on 8 H200 in one node, bf16 autocast, the public code's naive attention,
/// eager, DDP. Batch, attention, precision and mode apply only where the model file has no
/// `[defaults]` for them: jit-b4's give the public code's torch.compile ([`Unset`]).
pub mod defaults {
    use crate::graph::{AttentionImpl, Checkpointing, ExecMode, Precision};

    /// Model.
    pub const MODEL: &str = "jit-b4";
    /// GPU.
    pub const GPU: &str = "h200-sxm";
    /// Samples per GPU per micro-step.
    pub const BATCH: u64 = 64;
    /// Attention implementation.
    pub const ATTENTION: AttentionImpl = AttentionImpl::Naive;
    /// Precision.
    pub const PRECISION: Precision = Precision::Bf16;
    /// Activation checkpointing.
    pub const CHECKPOINTING: Checkpointing = Checkpointing::None;
    /// Execution mode.
    pub const MODE: ExecMode = ExecMode::Eager;
    /// GPUs in total.
    pub const GPUS: u64 = 8;
    /// GPUs per node.
    pub const GPUS_PER_NODE: u64 = 8;
    /// Inter-node bandwidth per GPU and direction, Gb/s (one 400 Gb/s NDR NIC per GPU).
    pub const INTER_NODE_GBPS: f64 = 400.0;
    /// Framework workspace, GiB (assumption: CUDA context, library workspaces, NCCL buffers).
    pub const WORKSPACE_GIB: f64 = 1.0;
}

/// How big the dataset is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DatasetSize {
    /// Samples (images for vision models).
    Samples(f64),
    /// Tokens, converted with `tokens_per_sample` (default: the model's sequence length).
    Tokens {
        /// Tokens in the dataset.
        tokens: f64,
        /// Tokens per sample, when not the model's own.
        tokens_per_sample: Option<f64>,
    },
}

/// The data a run trains on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dataset {
    /// Its size.
    pub size: DatasetSize,
    /// Passes over it.
    pub epochs: f64,
}

impl Dataset {
    /// Samples trained on, all epochs, for a model of `tokens_per_sample` tokens per sample
    /// (used when the dataset is given in tokens without --tokens-per-sample).
    pub fn samples(&self, tokens_per_sample: u64) -> f64 {
        let one_pass = match self.size {
            DatasetSize::Samples(n) => n,
            DatasetSize::Tokens {
                tokens,
                tokens_per_sample: given,
            } => tokens / given.unwrap_or(tokens_per_sample as f64),
        };
        one_pass * self.epochs
    }
}

/// What a scenario is made of, by name: the input of [`ScenarioSpec::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioSpec {
    /// Model: an embedded name or a TOML path.
    pub model: String,
    /// Sequence length override ([`ModelSpec::with_sequence`]).
    pub seq: Option<u64>,
    /// GPU: an embedded name or a TOML path.
    pub gpu: String,
    /// Calibration file.
    pub calibration: Option<PathBuf>,
    /// The step: batch, attention, precision, checkpointing, EMA copies.
    pub step: StepConfig,
    /// Execution mode.
    pub mode: ExecMode,
    /// GPUs in total.
    pub gpus: u64,
    /// GPUs per node.
    pub gpus_per_node: u64,
    /// Inter-node bandwidth per GPU and direction, Gb/s.
    pub inter_node_gbps: f64,
    /// A cluster network (embedded name or TOML path): sets the GPUs per node, the inter-node
    /// bandwidth, its efficiency and NCCL's latencies.
    pub network: Option<String>,
    /// ZeRO stage.
    pub zero: u8,
    /// Micro-steps per optimizer step.
    pub grad_accum: u64,
    /// Samples per optimizer step across the fleet; when given, it sets `grad_accum`.
    pub global_batch: Option<u64>,
    /// Hybrid sharding: ranks each ZeRO shard group spans.
    pub shard_group: Option<u64>,
    /// Tensor-parallel communication overlapped with the GEMMs.
    pub tp_overlap: bool,
    /// Collectives inside a node use NVLink SHARP (the GPU file's NVLS bus bandwidth).
    pub nvls: bool,
    /// Framework workspace, GiB.
    pub workspace_gib: f64,
    /// The dataset, when training time and cost are wanted.
    pub dataset: Option<Dataset>,
    /// Price per GPU-hour in USD, overriding the GPU file's.
    pub price_per_gpu_hour: Option<f64>,
    /// The step settings the user left out: [`ScenarioSpec::load`] sets them from the model
    /// file's `[defaults]`, else roofline's own.
    pub unset: Unset,
}

impl Default for ScenarioSpec {
    fn default() -> Self {
        ScenarioSpec {
            model: defaults::MODEL.to_string(),
            seq: None,
            gpu: defaults::GPU.to_string(),
            calibration: None,
            step: StepConfig {
                batch: defaults::BATCH,
                attention: defaults::ATTENTION,
                precision: defaults::PRECISION,
                checkpointing: defaults::CHECKPOINTING,
                ..StepConfig::default()
            },
            mode: defaults::MODE,
            gpus: defaults::GPUS,
            gpus_per_node: defaults::GPUS_PER_NODE,
            inter_node_gbps: defaults::INTER_NODE_GBPS,
            network: None,
            zero: 0,
            grad_accum: 1,
            global_batch: None,
            shard_group: None,
            tp_overlap: false,
            nvls: false,
            workspace_gib: defaults::WORKSPACE_GIB,
            dataset: None,
            price_per_gpu_hour: None,
            unset: Unset::default(),
        }
    }
}

/// A loaded, checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The model (sequence override applied).
    pub model: ModelSpec,
    /// The GPU spec.
    pub gpu: GpuSpec,
    /// The cluster network, when one was given.
    pub network: Option<spec::NetworkSpec>,
    /// Collectives inside a node use NVLink SHARP (`machine.allreduce_busbw` is its figure).
    pub nvls: bool,
    /// The calibration, when one was given.
    pub calibration: Option<Calibration>,
    /// The GPU as the time model sees it (spec with calibration overrides).
    pub machine: Machine,
    /// How the step runs.
    pub run: RunConfig,
    /// The dataset, when given.
    pub dataset: Option<Dataset>,
    /// Price per GPU-hour overriding the GPU file's.
    pub price_per_gpu_hour: Option<f64>,
    /// Which settings were left out and where their values came from (the model file's
    /// `[defaults]` or roofline's own), and settings adjusted to the fleet (a partial node), one
    /// line each; empty when every setting was given as is.
    pub setting_notes: Vec<String>,
}

/// `check` or an [`Error::Invalid`] with `message`.
fn ensure(check: bool, message: &str) -> Result<()> {
    if check {
        Ok(())
    } else {
        Err(Error::Invalid(message.to_string()))
    }
}

impl ScenarioSpec {
    /// Loads the model, GPU and calibration and checks every setting.
    pub fn load(&self) -> Result<Scenario> {
        let mut model = spec::load_model(&self.model)?;
        if let Some(s) = self.seq {
            model = model.with_sequence(s)?;
        }
        let model_step = ModelStep::of(&model)?;
        if !self.unset.any() {
            return self.load_with(model, Vec::new());
        }
        let mut resolved = self.clone();
        model_step.fill(self.unset, &mut resolved.step, &mut resolved.mode);
        let used = model_defaults::describe(&model, self.unset, &resolved.step, resolved.mode);
        resolved.load_with(model, used)
    }

    /// [`ScenarioSpec::load`] once the model is loaded and every setting is known.
    fn load_with(&self, model: ModelSpec, mut setting_notes: Vec<String>) -> Result<Scenario> {
        let gpu = spec::load_gpu(&self.gpu)?;
        let calibration = match &self.calibration {
            Some(path) => {
                let c = Calibration::load(path)?;
                c.check_gpu(&gpu, &path.display().to_string())?;
                Some(c)
            }
            None => None,
        };
        self.check()?;
        let mut machine = Machine::new(&gpu, calibration.as_ref());
        if self.nvls {
            let Some(n) = &gpu.interconnect.allreduce_bus_bandwidth_nvls else {
                return Err(Error::spec(
                    &self.gpu,
                    "interconnect.allreduce_bus_bandwidth_nvls",
                    format!(
                        "missing: --nvls needs a measured NVLink SHARP all-reduce bus bandwidth, and {} has none",
                        gpu.name
                    ),
                ));
            };
            machine.allreduce_busbw = ByteRate(n.value);
        }
        let policy = PrecisionPolicy::of(self.step.precision);
        if machine.peak(policy.gemm_unit, policy.gemm).0 .0 <= 0.0 {
            return Err(Error::spec(
                &self.gpu,
                format!("peak_flops.{}_tensor", policy.gemm.name()),
                format!(
                    "missing: {} has no {} path for --precision {}; choose another precision",
                    gpu.name,
                    policy.gemm.name(),
                    self.step.precision
                ),
            ));
        }
        self.step
            .parallel
            .check(&model, self.step.attention.is_fused())?;
        if self.step.loss != LossImpl::Torch && model.kind == ModelKind::Vision {
            return Err(Error::Invalid(format!(
                "loss `{}` is a cross-entropy kernel over a vocabulary, and {} is a \
                 diffusion model trained with an MSE loss: use --loss torch (the default)",
                self.step.loss, self.model
            )));
        }
        let network = self
            .network
            .as_deref()
            .map(spec::load_network)
            .transpose()?;
        let fleet = match &network {
            Some(n) => Fleet {
                gpus: self.gpus,
                gpus_per_node: (n.node.gpus.value as u64).min(self.gpus),
                inter_node_bandwidth: ByteRate(n.gbps_per_gpu() * 1e9 / 8.0),
                inter_node_efficiency: n.fabric.efficiency.value,
                ring_step_latency: Seconds(n.fabric.ring_step_latency_s.value),
                tree_level_latency: Seconds(n.fabric.tree_level_latency_s.value),
            },
            None => Fleet {
                gpus: self.gpus,
                // A fleet smaller than a node is one partial node.
                gpus_per_node: self.gpus_per_node.min(self.gpus),
                inter_node_bandwidth: ByteRate(self.inter_node_gbps * 1e9 / 8.0),
                ..Fleet::default()
            },
        };
        let node = match &network {
            Some(n) => n.node.gpus.value as u64,
            None => self.gpus_per_node,
        };
        if self.gpus < node {
            setting_notes.push(format!(
                "{} GPUs on {node}-GPU nodes: one partial node, its collectives over {} GPUs",
                self.gpus, self.gpus
            ));
        }
        if fleet.gpus > fleet.gpus_per_node && !fleet.gpus.is_multiple_of(fleet.gpus_per_node) {
            let n = fleet.gpus_per_node;
            let below = fleet.gpus / n * n;
            return Err(Error::Invalid(format!(
                "--gpus {} is not a whole number of {n}-GPU nodes: use {below} or {}, or say how many GPUs a node has (--gpus-per-node, --network)",
                fleet.gpus,
                below + n
            )));
        }
        let run = RunConfig {
            step: self.step,
            mode: self.mode,
            fleet,
            zero: self.zero,
            grad_accum: self.grad_accum,
            global_batch: self.global_batch,
            shard_group: self.shard_group.unwrap_or(0),
            tp_overlap: self.tp_overlap,
            memory: MemoryConfig {
                workspace: Bytes(self.workspace_gib * (1u64 << 30) as f64),
                ..MemoryConfig::default()
            },
        };
        run.check_experts(&model)?;
        run.data_parallel()?;
        // The micro-steps a global batch implies, checked and fixed for this scenario.
        let run = RunConfig {
            grad_accum: run
                .micro_steps()
                .map_err(|e| Error::Invalid(format!("{}: {e}", model.name)))?,
            ..run
        };
        run.zero_shards()?;
        Ok(Scenario {
            model,
            gpu,
            network,
            nvls: self.nvls,
            calibration,
            machine,
            run,
            dataset: self.dataset,
            // `+ 0.0` turns a -0 into 0.
            price_per_gpu_hour: self.price_per_gpu_hour.map(|p| p + 0.0),
            setting_notes,
        })
    }

    /// Every check of a setting or a combination of settings that needs no spec file.
    fn check(&self) -> Result<()> {
        use limits::*;
        let count = |v: u64, max: u64, what: &str| {
            ensure(
                (1..=max).contains(&v),
                &format!("{what} must be between 1 and {max} (given {v})"),
            )
        };
        count(self.gpus, GPUS, "--gpus")?;
        count(self.gpus_per_node, GPUS_PER_NODE, "--gpus-per-node")?;
        count(self.grad_accum, GRAD_ACCUM, "--grad-accum")?;
        count(self.step.expert_shards, GPUS, "--ep")?;
        ensure(
            self.zero <= 3,
            &format!("--zero {} is not a ZeRO stage (0-3)", self.zero),
        )?;
        ensure(
            self.inter_node_gbps.is_finite() && (1.0..=1e6).contains(&self.inter_node_gbps),
            "--inter-node-gbps must be between 1 and 1e6 (Gb/s per GPU)",
        )?;
        ensure(
            self.workspace_gib.is_finite() && (0.0..=1e6).contains(&self.workspace_gib),
            "--workspace-gib must be between 0 and 1e6",
        )?;
        if let Some(d) = &self.dataset {
            let (n, per_sample) = match d.size {
                DatasetSize::Samples(n) => {
                    ensure(
                        n.is_finite() && (0.0..=SAMPLES).contains(&n),
                        &format!("--train-samples must be at most {SAMPLES:e} (given {n:?})"),
                    )?;
                    (n, 1.0)
                }
                DatasetSize::Tokens {
                    tokens,
                    tokens_per_sample,
                } => {
                    ensure(
                        tokens.is_finite() && (0.0..=TOKENS).contains(&tokens),
                        &format!("--train-tokens must be at most {TOKENS:e} (given {tokens:?})"),
                    )?;
                    if let Some(t) = tokens_per_sample {
                        ensure(
                            t.is_finite() && (1.0..=TOKENS_PER_SAMPLE).contains(&t),
                            &format!(
                                "--tokens-per-sample must be between 1 and {TOKENS_PER_SAMPLE:e} (given {t:?})"
                            ),
                        )?;
                    }
                    (tokens, 1.0)
                }
            };
            ensure(
                d.epochs.is_finite() && d.epochs > 0.0 && d.epochs <= EPOCHS,
                &format!("--epochs must be in (0, {EPOCHS:e}] (given {:?})", d.epochs),
            )?;
            ensure(
                n * d.epochs >= per_sample,
                "the dataset is smaller than one sample: give at least one sample (or its tokens)",
            )?;
        }
        if let Some(p) = self.price_per_gpu_hour {
            ensure(
                p.is_finite() && (0.0..=PRICE).contains(&p),
                &format!("--price-per-gpu-hour must be between 0 and {PRICE} USD (given {p:?})"),
            )?;
        }
        Ok(())
    }
}

/// Upper bounds of the run settings: far beyond any real run, and small enough that every
/// figure derived from them (samples per step, training time, cost) stays finite.
pub mod limits {
    /// GPUs in a run (2^24).
    pub const GPUS: u64 = 1 << 24;
    /// GPUs per node.
    pub const GPUS_PER_NODE: u64 = 1024;
    /// Micro-steps per optimizer step (2^30).
    pub const GRAD_ACCUM: u64 = crate::estimate::MAX_MICRO_STEPS;
    /// Samples in a dataset.
    pub const SAMPLES: f64 = 1e18;
    /// Tokens in a dataset.
    pub const TOKENS: f64 = 1e21;
    /// Tokens per sample.
    pub const TOKENS_PER_SAMPLE: f64 = 1e9;
    /// Passes over a dataset.
    pub const EPOCHS: f64 = 1e6;
    /// USD per GPU-hour.
    pub const PRICE: f64 = 1e4;
}

impl Scenario {
    /// This scenario's run with another attention implementation.
    pub fn run_with_attention(&self, attention: AttentionImpl) -> RunConfig {
        RunConfig {
            step: StepConfig {
                attention,
                ..self.run.step
            },
            ..self.run
        }
    }

    /// The price per GPU-hour and where it comes from: the override, else the GPU file's.
    pub fn price(&self) -> Option<(f64, String)> {
        match self.price_per_gpu_hour {
            Some(p) => Some((p, "--price-per-gpu-hour".to_string())),
            None => self.gpu.price.as_ref().map(|p| {
                let range = p
                    .usd_per_gpu_hour
                    .range
                    .map(|[lo, hi]| format!(", other offers ${lo:.2}-${hi:.2}"))
                    .unwrap_or_default();
                (
                    p.usd_per_gpu_hour.value,
                    format!(
                        "{} {} list price, {}-GPU instance, {}{range}; {}",
                        p.provider, p.terms, p.instance_gpus, p.date, p.usd_per_gpu_hour.source
                    ),
                )
            }),
        }
    }
}

/// Scenario settings as a TOML table gives them (the `[run]` of a plan file): every field
/// optional, over a base [`ScenarioSpec`]; names and spellings as on the command line.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioTable {
    /// Model name or TOML path.
    pub model: Option<String>,
    /// Sequence length override.
    pub seq: Option<u64>,
    /// GPU name or TOML path.
    pub gpu: Option<String>,
    /// Calibration file.
    pub calibration: Option<PathBuf>,
    /// Samples per GPU per micro-step.
    pub batch: Option<u64>,
    /// Attention implementation.
    pub attention: Option<String>,
    /// Precision.
    pub precision: Option<String>,
    /// Activation checkpointing.
    pub checkpointing: Option<String>,
    /// How a language model's cross-entropy runs (torch | fused).
    pub loss: Option<String>,
    /// EMA copies.
    pub ema: Option<u32>,
    /// Execution mode.
    pub mode: Option<String>,
    /// GPUs in total.
    pub gpus: Option<u64>,
    /// GPUs per node.
    pub gpus_per_node: Option<u64>,
    /// Inter-node bandwidth per GPU and direction, Gb/s.
    pub inter_node_gbps: Option<f64>,
    /// A cluster network (embedded name or path).
    pub network: Option<String>,
    /// ZeRO stage.
    pub zero: Option<u8>,
    /// Expert-parallel ranks.
    pub ep: Option<u64>,
    /// Tensor-parallel GPUs.
    pub tp: Option<u64>,
    /// Sequence parallelism.
    pub sp: Option<bool>,
    /// Pipeline stages.
    pub pp: Option<u64>,
    /// Model chunks per pipeline stage.
    pub vpp: Option<u64>,
    /// Context-parallel GPUs.
    pub cp: Option<u64>,
    /// Micro-steps per optimizer step.
    pub grad_accum: Option<u64>,
    /// Samples per optimizer step across the fleet (sets grad_accum).
    pub global_batch: Option<u64>,
    /// Hybrid sharding: ranks each ZeRO shard group spans.
    pub shard_group: Option<u64>,
    /// Tensor-parallel communication overlapped with the GEMMs.
    pub tp_overlap: Option<bool>,
    /// NVLink SHARP inside a node.
    pub nvls: Option<bool>,
    /// Framework workspace, GiB.
    pub workspace_gib: Option<f64>,
    /// Price per GPU-hour, USD.
    pub price_per_gpu_hour: Option<f64>,
}

impl ScenarioTable {
    /// `base` with this table's settings; `file` and `table` name the table in errors.
    pub fn apply(&self, base: &ScenarioSpec, file: &str, table: &str) -> Result<ScenarioSpec> {
        fn parse<T: std::str::FromStr<Err = Error>>(
            v: &Option<String>,
            file: &str,
            field: String,
        ) -> Result<Option<T>> {
            v.as_deref()
                .map(|s| {
                    s.parse()
                        .map_err(|e: Error| Error::spec(file, &field, e.to_string()))
                })
                .transpose()
        }
        let field = |f: &str| format!("{table}.{f}");
        let mut s = base.clone();
        if let Some(m) = &self.model {
            s.model = m.clone();
        }
        s.seq = self.seq.or(s.seq);
        if let Some(g) = &self.gpu {
            s.gpu = g.clone();
        }
        if self.calibration.is_some() {
            s.calibration = self.calibration.clone();
        }
        s.step.batch = self.batch.unwrap_or(s.step.batch);
        // What this table states is no longer left to the model file's [defaults].
        s.unset.batch &= self.batch.is_none();
        s.unset.attention &= self.attention.is_none();
        s.unset.precision &= self.precision.is_none();
        s.unset.mode &= self.mode.is_none();
        s.step.ema = self.ema.unwrap_or(s.step.ema);
        s.step.expert_shards = self.ep.unwrap_or(s.step.expert_shards);
        let par = &mut s.step.parallel;
        par.tp = self.tp.unwrap_or(par.tp);
        par.sp = self.sp.unwrap_or(par.sp);
        par.pp = self.pp.unwrap_or(par.pp);
        par.vpp = self.vpp.unwrap_or(par.vpp);
        par.cp = self.cp.unwrap_or(par.cp);
        if self.grad_accum.is_some() && self.global_batch.is_some() {
            return Err(Error::spec(
                file,
                field("global_batch"),
                "give grad_accum or global_batch, not both (the global batch sets the micro-steps)",
            ));
        }
        if self.grad_accum.is_some() {
            s.global_batch = None;
        }
        s.global_batch = self.global_batch.or(s.global_batch);
        for (name, v) in [
            ("tp", self.tp),
            ("pp", self.pp),
            ("vpp", self.vpp),
            ("cp", self.cp),
            ("global_batch", self.global_batch),
            ("shard_group", self.shard_group),
        ] {
            if let Some(v) = v {
                let unbounded = name == "global_batch" || name == "shard_group";
                if v == 0 || (!unbounded && v > 1 << 16) {
                    return Err(Error::spec(
                        file,
                        field(name),
                        format!(
                            "{v} is out of range (1 to {})",
                            if unbounded { "2^64 - 1" } else { "65536" }
                        ),
                    ));
                }
            }
        }
        s.shard_group = self.shard_group.or(s.shard_group);
        s.tp_overlap = self.tp_overlap.unwrap_or(s.tp_overlap);
        s.nvls = self.nvls.unwrap_or(s.nvls);
        if let Some(a) = parse(&self.attention, file, field("attention"))? {
            s.step.attention = a;
        }
        if let Some(p) = parse(&self.precision, file, field("precision"))? {
            s.step.precision = p;
        }
        if let Some(c) = parse(&self.checkpointing, file, field("checkpointing"))? {
            s.step.checkpointing = c;
        }
        if let Some(l) = parse(&self.loss, file, field("loss"))? {
            s.step.loss = l;
        }
        if let Some(m) = parse(&self.mode, file, field("mode"))? {
            s.mode = m;
        }
        s.gpus = self.gpus.unwrap_or(s.gpus);
        s.gpus_per_node = self.gpus_per_node.unwrap_or(s.gpus_per_node);
        s.inter_node_gbps = self.inter_node_gbps.unwrap_or(s.inter_node_gbps);
        if self.network.is_some()
            && (self.gpus_per_node.is_some() || self.inter_node_gbps.is_some())
        {
            return Err(Error::spec(
                file,
                field("network"),
                "a network sets gpus_per_node and inter_node_gbps: give one or the others",
            ));
        }
        if (self.gpus_per_node.is_some() || self.inter_node_gbps.is_some())
            && self.network.is_none()
        {
            if let Some(n) = &s.network {
                return Err(Error::spec(
                    file,
                    field(if self.gpus_per_node.is_some() {
                        "gpus_per_node"
                    } else {
                        "inter_node_gbps"
                    }),
                    format!(
                        "the network {n} (set before this table) fixes the node size and bandwidth: give network = \"FILE\" with the node you mean instead"
                    ),
                ));
            }
        }
        if self.network.is_some() {
            s.network = self.network.clone();
        }
        s.zero = self.zero.unwrap_or(s.zero);
        s.grad_accum = self.grad_accum.unwrap_or(s.grad_accum);
        s.workspace_gib = self.workspace_gib.unwrap_or(s.workspace_gib);
        s.price_per_gpu_hour = self.price_per_gpu_hour.or(s.price_per_gpu_hour);
        if s.step.batch == 0
            || s.gpus == 0
            || s.gpus_per_node == 0
            || s.grad_accum == 0
            || s.step.expert_shards == 0
        {
            return Err(Error::spec(
                file,
                table,
                "batch, gpus, gpus_per_node, grad_accum and ep must be positive",
            ));
        }
        if s.zero > 3 {
            return Err(Error::spec(
                file,
                field("zero"),
                format!("{} is not a ZeRO stage (0-3)", s.zero),
            ));
        }
        Ok(s)
    }
}
