//! The whole training step: the op graph timed op by op on the roofline ([`crate::time`]), the
//! host as a third roof, data-parallel communication, memory, throughput and MFU.
//!
//! Step time of one optimizer step of k micro-steps:
//! `t = max(GPU time, host dispatch time) + exposed communication`, with GPU time the sum of the
//! op times (each `layer.count()` times, k times except the optimizer) and the host's dispatch
//! time summed the same way: the CPU issues kernels while the GPU runs earlier ones, so the step
//! takes the longer of the two ([`crate::time`] states the per-op formula).
//!
//! MFU = model FLOPs / (step time × dense peak of the precision's GEMM dtype); HFU counts every
//! executed matmul FLOP (recomputation included) over the same peak (PaLM, arXiv 2204.02311,
//! appendix B).

use crate::error::{Error, Result};
use crate::graph::{
    all_to_all_bytes, Checkpointing, ExecMode, OpClass, PrecisionPolicy, StepConfig, StepGraph,
};
use crate::memory::{footprint_of, in_flight, MemoryBreakdown, MemoryConfig, MemoryProfile};
use crate::spec::ModelSpec;
use crate::time::{comm, op_time, Fleet, Machine};

mod stage;
use crate::units::{Bytes, FlopRate, Flops, Seconds};
use serde::Serialize;
use stage::{critical_stage, model_parallel_comm, part_of, PartTime};

/// Most micro-steps per optimizer step (2^30): far beyond any real run, small enough that the
/// samples per step stay exact.
pub const MAX_MICRO_STEPS: u64 = 1 << 30;

/// How the step runs beyond one GPU's op graph: execution mode, fleet, sharding, accumulation.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// The step.
    pub step: StepConfig,
    /// Execution mode.
    pub mode: ExecMode,
    /// GPUs and their links.
    pub fleet: Fleet,
    /// ZeRO stage 0-3 (0 = plain DDP).
    pub zero: u8,
    /// Micro-steps per optimizer step (when no global batch is given).
    pub grad_accum: u64,
    /// Samples per optimizer step across the fleet: when given, the micro-steps follow from it
    /// and the split ([`RunConfig::micro_steps`]), so a sweep over the split keeps it.
    pub global_batch: Option<u64>,
    /// Hybrid sharding: ranks each ZeRO shard group spans (0 = every rank holding the same
    /// weights, i.e. plain ZeRO / FSDP).
    pub shard_group: u64,
    /// Tensor-parallel communication overlapped with the GEMMs (Transformer Engine's
    /// userbuffers under sequence parallelism; off by default, as in Megatron-LM).
    pub tp_overlap: bool,
    /// Memory assumptions.
    pub memory: MemoryConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            step: StepConfig::default(),
            mode: ExecMode::Eager,
            fleet: Fleet::default(),
            zero: 0,
            grad_accum: 1,
            global_batch: None,
            shard_group: 0,
            tp_overlap: false,
            memory: MemoryConfig::default(),
        }
    }
}

impl RunConfig {
    /// Checks expert parallelism against `model` and the fleet: a positive rank count dividing
    /// the model's experts and the GPUs; above 1 only for a mixture of experts.
    pub fn check_experts(&self, model: &ModelSpec) -> Result<()> {
        let ep = self.step.expert_shards;
        let Some(moe) = &model.transformer.moe else {
            return if ep == 1 {
                Ok(())
            } else {
                Err(Error::Invalid(format!(
                    "--ep {ep}: expert parallelism needs a mixture-of-experts model; {} has none",
                    model.name
                )))
            };
        };
        // Expert-parallel ranks are data-parallel ranks (Megatron-LM): they hold the same dense
        // weights and different experts.
        let par = &self.step.parallel;
        let same_weights = self.weight_replicas();
        if ep == 0 || !moe.experts.is_multiple_of(ep) || !same_weights.is_multiple_of(ep) {
            return Err(Error::Invalid(format!(
                "--ep {ep} must divide the {} experts of {} and the {same_weights} data-parallel ranks (--gpus {} / (tp {} x pp {}))",
                moe.experts, model.name, self.fleet.gpus, par.tp, par.pp
            )));
        }
        Ok(())
    }

    /// Data-parallel replicas, GPUs / (tp·pp·cp), at least 1 (unchecked; see
    /// [`RunConfig::data_parallel`]).
    pub fn replicas(&self) -> u64 {
        (self.fleet.gpus / self.step.parallel.replica_gpus().max(1)).max(1)
    }

    /// Ranks holding the same weights: the data-parallel replicas times the context-parallel
    /// ranks (they share gradients, ZeRO shards and experts).
    pub fn weight_replicas(&self) -> u64 {
        self.replicas() * self.step.parallel.cp
    }

    /// Data-parallel replicas: GPUs / (tp·pp·cp); an error names the flags when that does
    /// not divide.
    pub fn data_parallel(&self) -> Result<u64> {
        let par = &self.step.parallel;
        let replica = par.replica_gpus();
        if replica == 0 || !self.fleet.gpus.is_multiple_of(replica) {
            return Err(Error::Invalid(format!(
                "--gpus {} must be a multiple of --tp {} x --pp {} x --cp {} = {replica}",
                self.fleet.gpus, par.tp, par.pp, par.cp
            )));
        }
        Ok(self.fleet.gpus / replica)
    }

    /// Micro-steps per optimizer step: the global batch over batch × data-parallel replicas when
    /// a global batch is given (an error says which global batches would divide), else
    /// `grad_accum`.
    pub fn micro_steps(&self) -> Result<u64> {
        let Some(global) = self.global_batch else {
            return Ok(self.grad_accum);
        };
        let par = &self.step.parallel;
        let dp = self.replicas();
        let per_micro_step = self.step.batch.saturating_mul(dp).max(1);
        if global == 0 || !global.is_multiple_of(per_micro_step) {
            let below = global / per_micro_step * per_micro_step;
            let above = below.saturating_add(per_micro_step);
            return Err(Error::Invalid(format!(
                "--global-batch {global} is not a multiple of --batch {} x {dp} data-parallel replicas (--gpus {} / (tp {} x pp {} x cp {})) = {per_micro_step}: use {} or change --batch",
                self.step.batch,
                self.fleet.gpus,
                par.tp,
                par.pp,
                par.cp,
                if below > 0 {
                    format!("{below} or {above}")
                } else {
                    above.to_string()
                }
            )));
        }
        let k = global / per_micro_step;
        if k > MAX_MICRO_STEPS {
            return Err(Error::Invalid(format!(
                "--global-batch {global} needs {k} micro-steps of --batch {} x {dp} replicas, more than {MAX_MICRO_STEPS}: raise --batch or lower --global-batch",
                self.step.batch
            )));
        }
        Ok(k)
    }

    /// Ranks the ZeRO shards are spread over: the shard group under hybrid sharding, else
    /// every rank holding the same weights (data- and context-parallel). An error names
    /// --shard-group when it does not divide those ranks or there is no ZeRO stage to shard.
    pub fn zero_shards(&self) -> Result<u64> {
        let same_weights = self.weight_replicas();
        match self.shard_group {
            0 => Ok(same_weights),
            g if self.zero == 0 => Err(Error::Invalid(format!(
                "--shard-group {g} shards ZeRO states: give --zero 1-3 or --fsdp"
            ))),
            g if !same_weights.is_multiple_of(g) => Err(Error::Invalid(format!(
                "--shard-group {g} must divide the {same_weights} ranks holding the same weights (data x context parallel)"
            ))),
            g => Ok(g),
        }
    }

    /// The memory settings this run implies: its ZeRO stage over [`RunConfig::zero_shards`],
    /// the first pipeline stage's micro-batches in flight, fused memory behaviour for compiled
    /// modes.
    pub fn memory_config(&self) -> MemoryConfig {
        let par = &self.step.parallel;
        let same_weights = self.weight_replicas();
        MemoryConfig {
            // A shard group of one shards nothing (FSDP's NO_SHARD): DDP's footprint.
            zero: if self.shard_group == 1 { 0 } else { self.zero },
            dp: match self.shard_group {
                g if g > 0 && same_weights.is_multiple_of(g) => g,
                _ => same_weights,
            },
            fused: self.mode != ExecMode::Eager,
            in_flight: (par.pp > 1).then(|| {
                in_flight(
                    par.pp,
                    par.vpp,
                    self.micro_steps().unwrap_or(self.grad_accum),
                )
            }),
            ..self.memory
        }
    }
}

/// Seconds per optimizer step by where they go; the fields sum to the step time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Breakdown {
    /// Linear layers and convolutions (busy GPU time, launch gaps excluded).
    pub gemm: Seconds,
    /// The attention core.
    pub attention: Seconds,
    /// Normalization layers.
    pub normalization: Seconds,
    /// Pointwise ops, casts, embeddings, the loss.
    pub elementwise: Seconds,
    /// Optimizer and EMA updates.
    pub optimizer: Seconds,
    /// Communication not hidden behind compute.
    pub communication: Seconds,
    /// Launch gaps between kernels plus host dispatch in excess of GPU time.
    pub launch_overhead: Seconds,
    /// Pipeline stages idle while the pipeline fills and drains (1F1B bubble).
    pub pipeline_bubble: Seconds,
}

impl Breakdown {
    /// The slot of an op class.
    pub fn class_mut(&mut self, c: OpClass) -> &mut Seconds {
        match c {
            OpClass::Gemm => &mut self.gemm,
            OpClass::Attention => &mut self.attention,
            OpClass::Normalization => &mut self.normalization,
            OpClass::Elementwise => &mut self.elementwise,
            OpClass::Optimizer => &mut self.optimizer,
        }
    }

    /// Every slot with its name, in report order.
    pub fn entries(&self) -> [(&'static str, Seconds); 8] {
        [
            ("gemm", self.gemm),
            ("attention", self.attention),
            ("normalization", self.normalization),
            ("elementwise", self.elementwise),
            ("optimizer", self.optimizer),
            ("communication", self.communication),
            ("launch_overhead", self.launch_overhead),
            ("pipeline_bubble", self.pipeline_bubble),
        ]
    }

    /// This breakdown plus `k` times `o`, slot by slot.
    pub fn plus(&self, o: &Breakdown, k: f64) -> Breakdown {
        Breakdown {
            gemm: self.gemm + o.gemm * k,
            attention: self.attention + o.attention * k,
            normalization: self.normalization + o.normalization * k,
            elementwise: self.elementwise + o.elementwise * k,
            optimizer: self.optimizer + o.optimizer * k,
            communication: self.communication + o.communication * k,
            launch_overhead: self.launch_overhead + o.launch_overhead * k,
            pipeline_bubble: self.pipeline_bubble + o.pipeline_bubble * k,
        }
    }

    /// The largest slot: (name, seconds).
    pub fn largest(&self) -> (&'static str, Seconds) {
        self.entries()
            .into_iter()
            .fold(("gemm", Seconds(f64::NEG_INFINITY)), |a, b| {
                if b.1 .0 >= a.1 .0 {
                    b
                } else {
                    a
                }
            })
    }
}

/// Op time per step by the roof that binds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ByBound {
    /// Arithmetic-bound op time.
    pub compute: Seconds,
    /// Memory-bound op time.
    pub memory: Seconds,
    /// Op time of ops whose host dispatch exceeds their GPU time.
    pub launch: Seconds,
}

impl ByBound {
    /// Every roof with its name, in report order.
    pub fn entries(&self) -> [(&'static str, Seconds); 3] {
        [
            ("compute", self.compute),
            ("memory", self.memory),
            ("launch", self.launch),
        ]
    }

    /// These times plus `k` times `o`.
    pub fn plus(&self, o: &ByBound, k: f64) -> ByBound {
        ByBound {
            compute: self.compute + o.compute * k,
            memory: self.memory + o.memory * k,
            launch: self.launch + o.launch * k,
        }
    }

    /// Sum over the roofs.
    pub fn total(&self) -> Seconds {
        self.compute + self.memory + self.launch
    }
}

/// The estimate of one configuration. Plain numbers only: computing it allocates nothing.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepEstimate {
    /// Time of one optimizer step (grad_accum micro-steps, optimizer, exposed communication).
    pub step_time: Seconds,
    /// Forward time per micro-step (GPU time incl. gaps).
    pub forward: Seconds,
    /// Backward time per micro-step.
    pub backward: Seconds,
    /// Optimizer (+EMA) time per step.
    pub optimizer: Seconds,
    /// Host dispatch time per step.
    pub host: Seconds,
    /// Where the step time goes; sums to `step_time`.
    pub breakdown: Breakdown,
    /// Op time by binding roof.
    pub by_bound: ByBound,
    /// Gradient / parameter communication per step, total.
    pub comm_total: Seconds,
    /// Communication not hidden by backward.
    pub comm_exposed: Seconds,
    /// Of it, model-parallel communication (tensor, context, pipeline, expert), none hidden.
    pub comm_model_parallel: Seconds,
    /// Model FLOPs per GPU per step (no recomputation).
    pub model_flops: Flops,
    /// Executed matmul FLOPs per GPU per step, recomputation included (the HFU numerator).
    pub hw_flops: Flops,
    /// Peak used for MFU (dense, the GEMM dtype of the precision).
    pub mfu_peak: FlopRate,
    /// Model FLOPs utilization.
    pub mfu: f64,
    /// Hardware FLOPs utilization.
    pub hfu: f64,
    /// Kernels launched per step.
    pub kernels: f64,
    /// Samples per optimizer step across the fleet.
    pub samples_per_step: f64,
    /// Samples per second across the fleet.
    pub samples_per_s: f64,
    /// The model's tokens per second across the fleet.
    pub tokens_per_s: f64,
    /// Tokens per sample used for `tokens_per_s`.
    pub tokens_per_sample: f64,
    /// Memory per GPU.
    pub memory: MemoryBreakdown,
    /// Whether it fits the GPU's memory.
    pub fits: bool,
    /// Largest per-GPU batch that fits.
    pub max_batch: u64,
    /// Trainable parameters.
    pub params: u64,
}

/// Memory profiles kept per estimator: how many distinct (model, step) pairs it remembers.
const PROFILES: usize = 8;

/// A remembered memory profile and what it was measured for.
#[derive(Debug)]
struct Profiled {
    model: std::sync::Arc<ModelSpec>,
    step: StepConfig,
    fused: bool,
    in_flight: Option<f64>,
    profile: MemoryProfile,
}

/// Reusable buffers for evaluating many configurations without allocating: the op graph, two
/// graphs for memory profiles, and the profiles of the last few (model, step) pairs used (a
/// sweep over batch sizes, GPUs, ZeRO stages or assumptions builds each profile once).
#[derive(Debug, Default)]
pub struct Estimator {
    graph: StepGraph,
    probe_one: StepGraph,
    probe_two: StepGraph,
    /// Least recently used first.
    profiles: Vec<Profiled>,
    /// The model of the last profile made, shared by the profiles made for it (a search over
    /// one model's executions clones it once).
    model: Option<std::sync::Arc<ModelSpec>>,
    /// Candidate lines of a memory profile being made.
    scratch: Vec<[f64; 2]>,
}

impl Estimator {
    /// An estimator with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The op list of the last evaluation.
    pub fn ops(&self) -> &[crate::graph::Op] {
        self.graph.ops()
    }

    /// The memory profile of `model` under `step` (any batch), built from the graph at batch 1
    /// and 2 on first use and remembered. Only the forward and backward shape it: the batch,
    /// EMA copies and ZeRO shards (optimizer ops) are left out of the key.
    fn profile(
        &mut self,
        model: &ModelSpec,
        step: &StepConfig,
        fused: bool,
        in_flight: Option<f64>,
    ) -> Result<&MemoryProfile> {
        let key = StepConfig {
            batch: 1,
            ema: 0,
            optimizer_shards: 1,
            param_shards: 1,
            ..*step
        };
        if let Some(i) = self.profiles.iter().position(|p| {
            p.step == key && p.fused == fused && p.in_flight == in_flight && *p.model == *model
        }) {
            // Most recently used last.
            self.profiles[i..].rotate_left(1);
        } else {
            let one = self.probe_one.build(model, &key)?;
            let two = self
                .probe_two
                .build(model, &StepConfig { batch: 2, ..key })?;
            let shared = match &self.model {
                Some(m) if **m == *model => m.clone(),
                _ => {
                    let m = std::sync::Arc::new(model.clone());
                    self.model = Some(m.clone());
                    m
                }
            };
            // The least recently used profile's buffers are reused once all are taken.
            let mut slot = if self.profiles.len() == PROFILES {
                self.profiles.remove(0)
            } else {
                Profiled {
                    model: shared.clone(),
                    step: key,
                    fused,
                    in_flight,
                    profile: MemoryProfile::default(),
                }
            };
            slot.profile.refill(
                one,
                two,
                step.checkpointing,
                fused,
                in_flight,
                &mut self.scratch,
            );
            slot.model = shared;
            slot.step = key;
            slot.fused = fused;
            slot.in_flight = in_flight;
            self.profiles.push(slot);
        }
        Ok(&self.profiles.last().expect("pushed or found").profile)
    }

    /// Estimates one configuration; the op list stays available through [`Estimator::ops`].
    pub fn estimate(
        &mut self,
        model: &ModelSpec,
        mach: &Machine,
        run: &RunConfig,
    ) -> Result<StepEstimate> {
        let micro_steps = run.micro_steps()?;
        if micro_steps == 0 || micro_steps > MAX_MICRO_STEPS {
            return Err(Error::Invalid(format!(
                "{micro_steps} micro-steps per step: grad-accum must be between 1 and {MAX_MICRO_STEPS}"
            )));
        }
        let par = run.step.parallel;
        if par.vpp > 1 && !micro_steps.is_multiple_of(par.pp) {
            return Err(Error::Invalid(format!(
                "--vpp {} (interleaved 1F1B) needs micro-batches per step ({micro_steps}) that are a multiple of --pp {} (Megatron-LM's requirement)",
                par.vpp, par.pp
            )));
        }
        let run = &RunConfig {
            grad_accum: micro_steps,
            global_batch: None,
            ..*run
        };
        if run.zero > 3 {
            return Err(Error::Invalid(format!(
                "--zero {} is not a ZeRO stage (0, 1, 2 or 3)",
                run.zero
            )));
        }
        run.check_experts(model)?;
        let dp = run.data_parallel()?;
        let ep = run.step.expert_shards;
        let mut step = run.step;
        // ZeRO shards over the ranks that hold the same weights (data- and context-parallel),
        // or over the shard group of hybrid sharding.
        let shards = run.zero_shards()?;
        let replicas = dp * par.cp / shards;
        if run.zero >= 1 {
            step.optimizer_shards = shards;
        }
        if run.zero >= 3 {
            step.param_shards = shards;
        }
        self.graph.build(model, &step)?;
        let k = run.grad_accum as f64;
        // Per micro-step: embeddings, blocks, head; per step: the optimizer.
        let mut parts = [PartTime::default(); 4];
        for op in self.graph.ops() {
            let t = op_time(mach, op, run.mode, run.step.attention)?;
            parts[part_of(op)].add(op, &t, op.layer.count() as f64);
        }
        let opt_part = parts[3];
        let stage = critical_stage(&parts, par.pp);
        let policy = PrecisionPolicy::of(step.precision);
        let mut mp = model_parallel_comm(
            model,
            &par,
            &run.fleet,
            mach,
            &policy,
            step.checkpointing,
            step.batch,
            stage.attention,
        );
        if run.tp_overlap {
            if !par.sp {
                return Err(Error::Invalid(
                    "--tp-overlap overlaps sequence parallelism's all-gathers and reduce-scatters with the GEMMs: add --sp (and --tp 2 or more)".into(),
                ));
            }
            // Chunked all-gather + GEMM and GEMM + reduce-scatter: the collectives hide behind
            // the stage's GEMMs, slowed by NCCL's share of the SMs; what exceeds them waits.
            let hidden = Seconds(mp.tensor.0.min(stage.breakdown.gemm.0));
            mp.tensor = mp.tensor - hidden + hidden * comm::NCCL_SM_SHARE;
        }
        let all = stage.times(k).plus(&opt_part);
        let (fwd, bwd, opt) = (stage.fwd * k, stage.bwd * k, opt_part.gpu());
        let gpu = all.gpu();
        let host = all.host();
        let host_excess = Seconds((host.0 - gpu.0).max(0.0));
        let mut breakdown = all.breakdown;
        let by_bound = all.by_bound;
        breakdown.launch_overhead = all.gaps + host_excess;
        // 1F1B: the pipeline fills and drains over (p - 1)/v micro-steps of the critical stage.
        let micro_stage = Seconds(stage.gpu().max(stage.host()).0) + mp.total();
        let bubble = if par.pp > 1 {
            micro_stage * ((par.pp - 1) as f64 / par.vpp as f64)
        } else {
            Seconds::ZERO
        };
        breakdown.pipeline_bubble = bubble;

        let params = self.graph.params();
        let gpu_params = self.graph.gpu_params();
        let micro = Seconds((fwd + bwd).max(stage.host() * k).0 / k);
        let fwd_wall = Seconds((fwd.max(stage.host_fwd * k).0 / k).min(micro.0));
        let bwd_wall = micro - fwd_wall;
        // Ranks are numbered tp fastest, then cp, pp and dp (module docs of time::comm).
        let dp_fleet = run.fleet.weight_replicas(&par, shards);
        let replica_fleet = run.fleet.group(
            replicas,
            par.tp * par.cp * par.pp * (shards / par.cp).max(1),
        );
        let held = gpu_params.resident(1, ep);
        let per_block = gpu_params.per_block as f64
            - gpu_params.per_block_experts as f64 * (1.0 - 1.0 / ep as f64);
        let layers = par.stage_blocks(model.transformer.depth) as f64;
        let work = comm::DataParallelWork {
            // Each rank reduces the gradients it holds: the dense ones and its experts'.
            params: held,
            per_block,
            root: (held - per_block * layers).max(0.0),
            layers,
            replicas: replica_fleet,
            shards: shards as f64,
        };
        // A shard group of one shards nothing: plain DDP across the replicas.
        let (dp_fleet, work, zero) = if shards == 1 && replicas > 1 {
            let ddp = comm::DataParallelWork {
                replicas: Fleet {
                    gpus: 1,
                    ..run.fleet
                },
                shards: 1.0,
                ..work
            };
            (replica_fleet, ddp, 0)
        } else {
            (dp_fleet, work, run.zero)
        };
        let (mut comm_total, mut comm_exposed) = comm::exposed_communication(
            &dp_fleet,
            mach,
            &work,
            &run.step,
            zero,
            run.grad_accum,
            // Communication overlaps with the wall time of a micro-step's backward and
            // forward, which is the host's where dispatch is slower than the GPU. The two parts
            // add up to the micro-step's wall time, never more.
            bwd_wall,
            fwd_wall,
        );
        comm_total += mp.total() * k;
        comm_exposed += mp.total() * k;
        let mut model_parallel = mp.total() * k;
        if ep > 1 {
            // Expert parallelism: four all-to-alls per MoE layer per micro-step, six when full
            // checkpointing recomputes the forward; none hidden.
            let per_layer = if run.step.checkpointing == Checkpointing::Full {
                6.0
            } else {
                4.0
            };
            // Each rank routes the tokens it holds; expert-parallel ranks are data-parallel ranks,
            // tp·pp apart.
            let tokens = run.step.batch * model.max_seq() / par.cp;
            let bytes = Bytes(all_to_all_bytes(model, tokens, policy.activation));
            let group = run.fleet.group(ep, par.tp * par.pp);
            let a2a = comm::all_to_all_time(&group, mach, bytes, ep)
                * (per_layer * par.stage_blocks(model.transformer.depth) as f64 * k);
            comm_total += a2a;
            comm_exposed += a2a;
            model_parallel += a2a;
        }
        breakdown.communication = comm_exposed;
        let step_time = gpu + host_excess + comm_exposed + bubble;
        // Model FLOPs per GPU: a stage's blocks and, spread over the stages, the two ends.
        let pp = par.pp as f64;
        let [embed, blocks, head, _] = parts;
        let flops_per_gpu = |f: fn(&PartTime) -> Flops| {
            (f(&blocks) + (f(&embed) + f(&head)) * (1.0 / pp)) * k + f(&opt_part)
        };
        let model_flops = flops_per_gpu(|p| p.model_flops);
        let hw_flops = flops_per_gpu(|p| p.hw_flops);
        let kernels = all.kernels;

        let mc = run.memory_config();
        let memory = footprint_of(&gpu_params, &run.step, self.graph.ops(), &mc);
        let max_batch = self
            .profile(model, &step, mc.fused, mc.in_flight)?
            .max_batch(&memory, mach.capacity, &mc);
        let capacity = mach.capacity;
        let mfu_peak = mach.mfu_peak(run.step.precision);
        if !(step_time.0.is_finite() && step_time.0 > 0.0 && memory.total_bytes.0.is_finite()) {
            return Err(Error::Internal(format!(
                "the estimate of {} is not finite (step {:?} s, memory {:?} B)",
                model.name, step_time.0, memory.total_bytes.0
            )));
        }
        let samples_per_step = (run.step.batch as f64) * k * dp as f64;
        let samples_per_s = samples_per_step / step_time.0;
        let tokens_per_sample = model.tokens_per_sample() as f64;
        Ok(StepEstimate {
            step_time,
            forward: Seconds(fwd.0 / k),
            backward: Seconds(bwd.0 / k),
            optimizer: opt,
            host,
            breakdown,
            by_bound,
            comm_total,
            comm_exposed,
            comm_model_parallel: model_parallel,
            model_flops,
            hw_flops,
            mfu_peak,
            mfu: model_flops.0 / (step_time.0 * mfu_peak.0),
            hfu: hw_flops.0 / (step_time.0 * mfu_peak.0),
            kernels,
            samples_per_step,
            samples_per_s,
            tokens_per_s: samples_per_s * tokens_per_sample,
            tokens_per_sample,
            memory,
            fits: memory.total_bytes <= capacity,
            max_batch,
            params: params.total,
        })
    }
}
