//! What `estimate` and `memory` report: the estimate with its configuration, throughput in
//! every unit, training time and cost for a dataset, and the assumptions behind the numbers.
//! Data only; [`crate::export`] renders it.

use crate::error::Result;
use crate::estimate::StepEstimate;
use crate::graph::{AttentionImpl, Op, PrecisionPolicy};
use crate::memory::{footprint, MemoryBreakdown, MemoryProfile};
use crate::scenario::{DatasetSize, Scenario};
use crate::spec::model::ModelKind;
use crate::time::figures::figure;
use crate::time::{op_time, OpTime};
use crate::units::{binary_bytes, Bytes, FlopRate, Flops, Seconds};
use serde::Serialize;
use std::collections::BTreeMap;

/// What `roofline memory` prints.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// Model name.
    pub model: String,
    /// GPU name.
    pub gpu: String,
    /// Samples per GPU.
    pub batch: u64,
    /// Attention implementation.
    pub attention: AttentionImpl,
    /// Checkpointing.
    pub checkpointing: String,
    /// Execution mode (compiled keeps less: the partitioner recomputes pointwise ops).
    pub mode: String,
    /// Precision.
    pub precision: String,
    /// Where the settings not given came from (the model file's `[defaults]` or roofline's own).
    pub setting_notes: Vec<String>,
    /// ZeRO stage.
    pub zero: u8,
    /// The footprint by part (its fields appear at the top level of the JSON).
    #[serde(flatten)]
    pub memory: MemoryBreakdown,
    /// GPU memory capacity.
    pub capacity_bytes: Bytes,
    /// Whether it fits.
    pub fits: bool,
    /// Capacity minus the footprint (negative when it does not fit).
    pub headroom_bytes: f64,
    /// It fits with less headroom than [`TIGHT_HEADROOM`] of the card.
    pub tight: bool,
    /// Largest batch that fits.
    pub max_batch: u64,
}

/// Headroom below which a plan that fits is flagged as tight: 5% of the card (assumption). The
/// footprint already counts a fixed workspace and 5% allocator fragmentation; beyond them,
/// fragmentation varies with the allocation pattern, NCCL grows its buffers with every
/// communicator (NCCL_BUFFSIZE, 4 MiB per channel and peer by default) and a data loader or
/// a profiler may allocate on the GPU, so a few GiB on an 80 GiB card is not a safe margin.
pub const TIGHT_HEADROOM: f64 = 0.05;

/// (capacity − total, fits but under [`TIGHT_HEADROOM`]).
pub fn headroom(total: Bytes, capacity: Bytes) -> (f64, bool) {
    let h = capacity.0 - total.0;
    (h, h >= 0.0 && h < TIGHT_HEADROOM * capacity.0)
}

impl MemoryReport {
    /// The footprint of `s`'s step, whose ops are `ops` (built for `s.run.step`).
    pub fn new(s: &Scenario, ops: &[Op]) -> Result<Self> {
        let mc = s.run.memory_config();
        let m = footprint(&s.model, &s.run.step, ops, &mc);
        let cap = s.gpu.hbm_capacity();
        Ok(MemoryReport {
            model: s.model.name.clone(),
            gpu: s.gpu.name.clone(),
            batch: s.run.step.batch,
            attention: s.run.step.attention,
            checkpointing: s.run.step.checkpointing.to_string(),
            mode: s.run.mode.to_string(),
            precision: s.run.step.precision.to_string(),
            setting_notes: s.setting_notes.clone(),
            zero: mc.zero,
            memory: m,
            capacity_bytes: cap,
            fits: m.total_bytes <= cap,
            headroom_bytes: headroom(m.total_bytes, cap).0,
            tight: headroom(m.total_bytes, cap).1,
            max_batch: MemoryProfile::of(&s.model, &s.run.step, mc.fused)?.max_batch(&m, cap, &mc),
        })
    }
}

/// A dataset size and how it was converted to samples.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    /// "samples" or "tokens".
    pub given_as: &'static str,
    /// The number given.
    pub given: f64,
    /// Tokens per sample used for the conversion (tokens only).
    pub tokens_per_sample: Option<f64>,
    /// Passes over the data.
    pub epochs: f64,
    /// Samples processed in total (all epochs).
    pub samples: f64,
    /// Optimizer steps.
    pub steps: f64,
}

/// What `roofline estimate` prints.
#[derive(Debug, Clone, Serialize)]
pub struct EstimateReport {
    /// Model name.
    pub model: String,
    /// One line on the model.
    pub model_description: String,
    /// GPU name.
    pub gpu: String,
    /// GPU product name.
    pub gpu_display_name: String,
    /// GPUs in total.
    pub gpus: u64,
    /// GPUs per node.
    pub gpus_per_node: u64,
    /// Samples per GPU per micro-step.
    pub batch_per_gpu: u64,
    /// Micro-steps per optimizer step.
    pub grad_accum: u64,
    /// Attention implementation.
    pub attention: String,
    /// Execution mode.
    pub mode: String,
    /// Precision.
    pub precision: String,
    /// Checkpointing.
    pub checkpointing: String,
    /// ZeRO stage.
    pub zero: u8,
    /// EMA copies.
    pub ema: u32,
    /// Expert-parallel ranks (mixtures of experts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ep: Option<u64>,
    /// Model parallelism and data-parallel replicas (only when the model is split).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel: Option<ParallelLayout>,
    /// Trainable parameters.
    pub params: u64,
    /// Parameters one token uses (mixtures of experts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_params: Option<u64>,
    /// Optimizer step time.
    pub step_time_s: Seconds,
    /// Forward per micro-step.
    pub forward_s: Seconds,
    /// Backward per micro-step.
    pub backward_s: Seconds,
    /// Optimizer per step.
    pub optimizer_s: Seconds,
    /// Host dispatch per step.
    pub host_dispatch_s: Seconds,
    /// Kernels per step.
    pub kernels_per_step: f64,
    /// Communication per step, total.
    pub comm_total_s: Seconds,
    /// Communication per step, not hidden.
    pub comm_exposed_s: Seconds,
    /// Seconds per step by class (sums to step_time_s).
    pub breakdown: BTreeMap<&'static str, f64>,
    /// Seconds per step of op time by binding roof.
    pub by_bound: BTreeMap<&'static str, f64>,
    /// Samples per second, whole fleet.
    pub samples_per_s: f64,
    /// Samples per second per GPU.
    pub samples_per_s_per_gpu: f64,
    /// Images per second, whole fleet (vision models: one sample = one target image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_per_s: Option<f64>,
    /// Tokens per sample (the model's sequence tokens).
    pub tokens_per_sample: f64,
    /// Model tokens per second, whole fleet.
    pub tokens_per_s: f64,
    /// Model tokens per second per GPU.
    pub tokens_per_s_per_gpu: f64,
    /// Predicted (target) patch tokens per second, whole fleet (vision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_patch_tokens_per_s: Option<f64>,
    /// Model FLOPs per GPU per step.
    pub model_flops_per_gpu_step: Flops,
    /// Executed FLOPs per GPU per step.
    pub hw_flops_per_gpu_step: Flops,
    /// Peak used for MFU and HFU.
    pub mfu_peak_flops: FlopRate,
    /// Model FLOPs utilization.
    pub mfu: f64,
    /// Hardware FLOPs utilization.
    pub hfu: f64,
    /// Memory per GPU.
    pub memory_per_gpu_bytes: Bytes,
    /// GPU memory capacity.
    pub memory_capacity_bytes: Bytes,
    /// Whether the step fits.
    pub fits: bool,
    /// Capacity minus memory per GPU (negative when it does not fit).
    pub memory_headroom_bytes: f64,
    /// It fits with less headroom than [`TIGHT_HEADROOM`] of the card.
    pub memory_tight: bool,
    /// Largest batch per GPU that fits.
    pub max_batch: u64,
    /// Memory breakdown.
    pub memory: MemoryBreakdown,
    /// Dataset, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetReport>,
    /// Training time, when a dataset is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_time_s: Option<Seconds>,
    /// GPU-hours, when a dataset is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_hours: Option<f64>,
    /// Price per GPU-hour used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_gpu_hour: Option<f64>,
    /// Where the price comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_source: Option<String>,
    /// Cost in USD, when a dataset and a price are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Where the step loses time for a fixable reason, with the saving of each fix
    /// ([`super::findings`]; `roofline estimate` fills them in).
    pub findings: Vec<super::findings::Finding>,
    /// When the plan does not fit: changes that make it fit, cheapest per sample first
    /// ([`super::findings::fixes_to_fit`]; `roofline estimate` fills them in).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes_to_fit: Vec<super::findings::FitFix>,
    /// Assumptions behind the numbers, with sources.
    pub assumptions: Vec<String>,
}

/// How a run splits the model and the batch.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ParallelLayout {
    /// Tensor, sequence, pipeline and context parallelism.
    #[serde(flatten)]
    pub split: crate::graph::Parallelism,
    /// Data-parallel replicas: GPUs / (tp·pp·cp).
    pub dp: u64,
}

impl EstimateReport {
    /// The report of estimate `e` of scenario `s`.
    pub fn new(s: &Scenario, e: &StepEstimate) -> Self {
        let (model, gpu, mach, run) = (&s.model, &s.gpu, &s.machine, &s.run);
        // The pipeline bubble is listed only where there is one.
        let breakdown = e
            .breakdown
            .entries()
            .iter()
            .filter(|(k, v)| *k != "pipeline_bubble" || v.0 > 0.0)
            .map(|(k, v)| (*k, v.0))
            .collect();
        let by_bound = e
            .by_bound
            .entries()
            .iter()
            .map(|(k, v)| (*k, v.0))
            .collect();
        let gpus = run.fleet.gpus as f64;
        let vision = model.kind == ModelKind::Vision;
        let (price, price_source) = s.price().unzip();
        let dataset = dataset(s, e);
        let train_time = dataset.as_ref().map(|d| e.step_time * d.steps);
        let gpu_hours = train_time.map(|t| t.0 / 3600.0 * gpus);
        let cost = match (gpu_hours, price) {
            (Some(h), Some(p)) => Some(h * p),
            _ => None,
        };
        EstimateReport {
            model: model.name.clone(),
            model_description: model.description.clone(),
            gpu: gpu.name.clone(),
            gpu_display_name: gpu.display_name.clone(),
            gpus: run.fleet.gpus,
            gpus_per_node: run.fleet.gpus_per_node,
            batch_per_gpu: run.step.batch,
            grad_accum: run.grad_accum,
            attention: run.step.attention.to_string(),
            mode: run.mode.to_string(),
            precision: run.step.precision.to_string(),
            checkpointing: run.step.checkpointing.to_string(),
            zero: run.zero,
            parallel: (run.step.parallel != crate::graph::Parallelism::default()).then(|| {
                ParallelLayout {
                    split: run.step.parallel,
                    dp: run.replicas(),
                }
            }),
            ema: run.step.ema,
            ep: model
                .transformer
                .moe
                .as_ref()
                .map(|_| run.step.expert_shards),
            params: e.params,
            active_params: model
                .transformer
                .moe
                .as_ref()
                .map(|_| crate::graph::param_count(model).active),
            step_time_s: e.step_time,
            forward_s: e.forward,
            backward_s: e.backward,
            optimizer_s: e.optimizer,
            host_dispatch_s: e.host,
            kernels_per_step: e.kernels,
            comm_total_s: e.comm_total,
            comm_exposed_s: e.comm_exposed,
            breakdown,
            by_bound,
            samples_per_s: e.samples_per_s,
            samples_per_s_per_gpu: e.samples_per_s / gpus,
            images_per_s: vision.then_some(e.samples_per_s),
            tokens_per_sample: e.tokens_per_sample,
            tokens_per_s: e.tokens_per_s,
            tokens_per_s_per_gpu: e.tokens_per_s / gpus,
            target_patch_tokens_per_s: vision
                .then_some(e.samples_per_s * model.tokens.target as f64),
            model_flops_per_gpu_step: e.model_flops,
            hw_flops_per_gpu_step: e.hw_flops,
            mfu_peak_flops: e.mfu_peak,
            mfu: e.mfu,
            hfu: e.hfu,
            memory_per_gpu_bytes: e.memory.total_bytes,
            memory_capacity_bytes: mach.capacity,
            fits: e.fits,
            memory_headroom_bytes: headroom(e.memory.total_bytes, mach.capacity).0,
            memory_tight: headroom(e.memory.total_bytes, mach.capacity).1,
            max_batch: e.max_batch,
            memory: e.memory,
            dataset,
            train_time_s: train_time,
            gpu_hours,
            price_per_gpu_hour: price,
            price_source,
            cost,
            findings: Vec::new(),
            fixes_to_fit: Vec::new(),
            assumptions: assumptions(s),
        }
    }
}

/// The scenario's dataset in samples and optimizer steps at the estimate's samples per step.
pub(crate) fn dataset(s: &Scenario, e: &StepEstimate) -> Option<DatasetReport> {
    let d = s.dataset?;
    let (given_as, given, tps, samples) = match d.size {
        DatasetSize::Samples(n) => ("samples", n, None, n),
        DatasetSize::Tokens {
            tokens,
            tokens_per_sample,
        } => {
            let tps = tokens_per_sample.unwrap_or(s.model.tokens_per_sample() as f64);
            ("tokens", tokens, Some(tps), tokens / tps)
        }
    };
    let total = samples * d.epochs;
    Some(DatasetReport {
        given_as,
        given,
        tokens_per_sample: tps,
        epochs: d.epochs,
        samples: total,
        steps: (total / e.samples_per_step).ceil(),
    })
}

/// The assumptions behind an estimate, each with its source.
pub fn assumptions(s: &Scenario) -> Vec<String> {
    let (model, gpu, mach, run) = (&s.model, &s.gpu, &s.machine, &s.run);
    let cal = s.calibration.as_ref();
    // A calibrated value's source replaces the GPU file's.
    let src = |name: &str| -> String {
        figure(name)
            .and_then(|f| f.source(gpu, cal))
            .unwrap_or_default()
    };
    let mut v = s.setting_notes.clone();
    v.extend([
        format!(
            "precision {}: {}",
            run.step.precision,
            PrecisionPolicy::describe(run.step.precision)
        ),
        format!(
            "GEMM ceiling: {:.1}% of the dense bf16 peak ({}), times tile/wave quantization and K/(K+{:.0}) (see `roofline estimate --ops`)",
            mach.frac_bf16 * 100.0,
            src("achievable.bf16_tensor"),
            mach.gemm_k0
        ),
        format!(
            "HBM: {:.1}% of {} achievable ({}); eager pointwise kernels {:.1}%",
            mach.frac_hbm * 100.0,
            mach.hbm,
            src("achievable.hbm"),
            mach.frac_eager * 100.0
        ),
        format!(
            "L2: an input just written by the previous kernel is read from L2 when it is at most {:.0}% of the L2",
            100.0 * crate::time::L2_REUSE_FRACTION
        ),
        format!(
            "launch: {:.1} us GPU gap per kernel ({}); host dispatch {:.1} us per eager kernel ({})",
            mach.kernel_launch.0 * 1e6,
            src("launch.kernel_launch_s"),
            mach.host_dispatch.0 * 1e6,
            src("launch.host_dispatch_s")
        ),
    ]);
    if let Some(t) = &gpu.gemm_table {
        let range = |d: fn(&crate::spec::GemmPoint) -> f64| {
            let lo = t.points.iter().map(d).fold(f64::INFINITY, f64::min);
            let hi = t.points.iter().map(d).fold(0.0, f64::max);
            format!("{lo}-{hi}")
        };
        v.push(format!(
            "GEMM table: {} measured shapes ({}); a single GEMM within M {}, N {}, K {} runs at the ceiling above times the measured/analytic ratio interpolated between them",
            t.points.len(),
            t.source,
            range(|p| p.m),
            range(|p| p.n),
            range(|p| p.k)
        ));
    }
    if run.mode == crate::graph::ExecMode::Eager {
        let source = figure("achievable.misaligned_gemm")
            .and_then(|f| f.source(gpu, cal))
            .unwrap_or_else(|| {
                "no figure in this GPU file: the H100 SXM's, measured there (align1 CUTLASS kernels of GPT-2's LM head, reports/measurements/2026-11-27-h100-sxm), an assumption for this GPU".into()
            });
        v.push(format!(
            "eager GEMMs with a dimension that is not a multiple of 16 bytes run at most {:.0}% of the peak ({source}); compiled, Inductor pads them",
            100.0 * mach.frac_misaligned
        ));
    }
    if let Some(c) = cal {
        v.push(format!(
            "calibration for {}: {}",
            c.gpu.as_deref().unwrap_or("(unnamed GPU)"),
            c.provenance.as_deref().unwrap_or("(no provenance)")
        ));
    }
    match run.step.attention {
        AttentionImpl::Naive => v.push(
            "attention naive (public JiT code): fp32 QK^T on the vector units, materialized [B,1,s,s] bias, fp32 softmax, bf16 PV".into(),
        ),
        AttentionImpl::SdpaMath => v.push(
            "attention sdpa-math: PyTorch's math backend, q, k, v upcast to fp32, fp32 scores and PV on the vector units".into(),
        ),
        AttentionImpl::Unfused => {
            v.push("attention unfused: 16-bit scores and probabilities materialized (Megatron-LM core attention)".into())
        }

        AttentionImpl::Flash1 | AttentionImpl::Flash2 | AttentionImpl::Flash3
            if mach.mechanisms.attention_table
                && mach.attention_table.covers(
                    run.step.attention.flash_generation().unwrap_or(2),
                    model.transformer.causal,
                ) =>
        {
            v.push(format!(
                "attention {}: fused; rate by sequence length, mask and head dimension from the GPU file's [[attention_table]] (published FlashAttention benchmark charts, each series with its source), interpolated in ln s, held at the longest length charted; backward executes 2.5x forward FLOPs (FlashAttention convention), MFU counts 2x",
                run.step.attention
            ))
        }
        AttentionImpl::Flash1 | AttentionImpl::Flash2 | AttentionImpl::Flash3 => v.push(format!(
            "attention {}: fused; rate(s) = rate({r}) * [s/(s+{h})]/[{r}/({r}+{h})]; backward executes 2.5x forward FLOPs (FlashAttention convention), MFU counts 2x",
            run.step.attention,
            r = mach.flash_seq_ref,
            h = mach.flash_seq_half
        )),
    }
    let fused = run.step.attention.is_fused();
    if fused && run.step.checkpointing == crate::graph::Checkpointing::Selective {
        v.push(
            "selective recompute with fused attention changes nothing: it drops the attention core's s x s activations, which a fused kernel never keeps (its backward recomputes the scores); the estimate equals --checkpointing none"
                .into(),
        );
    }
    let flash = run.step.attention.flash_generation().unwrap_or(2);
    let causal_tabulated =
        mach.mechanisms.attention_table && mach.attention_table.covers_causal(flash);
    if model.transformer.causal && fused && !causal_tabulated {
        v.push(format!(
            "causal fused attention runs at {:.2} of the non-causal rate (GPU file)",
            mach.flash_causal
        ));
    }
    if model.kind == crate::spec::model::ModelKind::Language {
        v.push(match (run.step.loss, run.mode) {
            (crate::graph::LossImpl::FusedLinear, _) => "loss fused-linear: the classifier and cross-entropy fused and chunked (Liger-Kernel's): the logits exist one chunk at a time, their gradient computed in the forward; nothing logits-sized kept".into(),
            (crate::graph::LossImpl::Fused, _) => "loss fused: a hand-written cross-entropy kernel (FlashAttention's, llm-foundry's default): one pass over the 16-bit logits forward, one backward; keeps the logits and a log-sum-exp per row".into(),
            (_, crate::graph::ExecMode::Eager) => "loss torch, eager: logits upcast to fp32, log-softmax (fp32 log-probabilities kept) and NLL, about 48 B per 16-bit logit over the step (22 forward, 26 backward: PyTorch's log-softmax reads a vocabulary-long row three times forward and its gradient twice backward, aten/src/ATen/native/cuda/SoftMax.cu); --loss fused for a fused kernel".into(),
            _ => "loss torch, compiled: Inductor's fused log-softmax + NLL, two reads of the logits forward, one pass backward".into(),
        });
    }
    if model.transformer.causal {
        v.push(
            "causal attention: model FLOPs count half of the score FLOPs (Megatron-LM convention)"
                .into(),
        );
    }
    if let Some(moe) = &model.transformer.moe {
        v.push(format!(
            "mixture of experts: {} experts, top-{}, balanced routing: each expert computes tokens x {} / {} rows x capacity factor {}; dropless grouped GEMMs after a sort-and-gather permutation (Megatron-LM --moe-grouped-gemm); Hugging Face's per-expert loop launches more kernels (not modelled)",
            moe.experts, moe.top_k, moe.top_k, moe.experts, moe.capacity_factor
        ));
    }
    if run.step.expert_shards > 1 {
        v.push(format!(
            "expert parallelism over {} ranks: 4 all-to-alls per MoE layer per micro-step (6 with full checkpointing) of the routed rows, at the all-reduce bus bandwidth {} within a node (assumption: the same links) and the inter-node link across nodes; not overlapped",
            run.step.expert_shards, mach.allreduce_busbw
        ));
    }
    if model.transformer.window > 0 {
        v.push(format!(
            "sliding window {}: fused kernels compute (s·w - w²/2)/s² of the query-key pairs and are rated at the window's length; unfused implementations compute every score and mask",
            model.transformer.window
        ));
    }
    let par = run.step.parallel;
    if par.tp > 1 {
        v.push(format!(
            "tensor parallelism over {} GPUs (Megatron-LM): heads, MLP hidden units and vocabulary split; 2 all-reduces of the layer's activations per block forward and 2 backward (+2 with full recompute), one each for a language model's vocabulary-parallel embedding and LM head, at the all-reduce bus bandwidth within a node; not overlapped with compute{}",
            par.tp,
            if par.sp {
                "; sequence parallelism: each all-reduce becomes a reduce-scatter plus an all-gather of the same volume, norms, dropout and residual adds on 1/tp of the tokens"
            } else {
                ""
            }
        ));
    }
    if run.tp_overlap {
        v.push(format!(
            "--tp-overlap: sequence parallelism's all-gathers and reduce-scatters run in chunks beside the GEMMs they feed (Transformer Engine userbuffers); hidden up to the stage's GEMM time, which NCCL slows by its {:.0}% share of the SMs",
            100.0 * crate::time::comm::NCCL_SM_SHARE
        ));
    }
    if par.pp > 1 {
        v.push(format!(
            "pipeline: {} stages of {} blocks{}, 1F1B: bubble (p-1)/v = {:.2} micro-steps of the slowest stage (its blocks plus the embeddings or the head), activations sent to the next stage per micro-batch and chunk (scattered over the tensor-parallel ranks); the first stage holds {:.1} micro-batches of activations",
            par.pp,
            model.transformer.depth / par.pp,
            if par.vpp > 1 {
                format!(" in {} interleaved chunks", par.vpp)
            } else {
                String::new()
            },
            (par.pp - 1) as f64 / par.vpp as f64,
            crate::memory::in_flight(par.pp, par.vpp, run.grad_accum)
        ));
    }
    let dp = run.replicas();
    if par.pp > 1 && dp > 1 && par.tp * par.cp < run.fleet.gpus_per_node {
        v.push(
            "rank order: tensor-parallel ranks first, then context-parallel, pipeline stages and data-parallel replicas (Megatron-LM's default, tp-cp-ep-dp-pp, keeps data-parallel peers inside a stage instead; here that moves the gradient all-reduce onto NVLink and the pipeline sends across nodes)"
                .into(),
        );
    }
    if par.cp > 1 {
        v.push(format!(
            "context parallelism over {} GPUs: each holds 1/{} of every sequence; ring attention passes K and V blocks (and their gradients in the backward) behind the attention kernels, exposed only where the ring outlasts them",
            par.cp, par.cp
        ));
    }
    if run.shard_group > 0 {
        v.push(format!(
            "hybrid sharding: ZeRO-{} states sharded over groups of {} ranks and replicated across the groups; each shard's gradients are all-reduced across the replicas after their reduce-scatter",
            run.zero, run.shard_group
        ));
    }
    if run.fleet.gpus > par.replica_gpus() {
        v.push(format!(
            "{}, ring busbw {} ({}); compute beside a collective is slowed by NCCL's share of the SMs, {:.0}% of the hidden communication time (assumption: 8-32 NCCL channels of one CTA each, range 5-20%)",
            if run.zero >= 3 {
                "FSDP (ZeRO-3): each block's parameters all-gathered one block ahead in the forward and the backward, its gradients reduce-scattered after its backward; exposed: the root unit's and first block's gathers, the last reduce-scatters, and whatever a block's communication takes beyond its compute"
            } else {
                "gradient reduction: gradients in 25 MiB buckets, overlapped with the backward except the last bucket"
            },
            mach.allreduce_busbw,
            if s.nvls {
                format!(
                    "NVLink SHARP, --nvls: {}",
                    gpu.interconnect
                        .allreduce_bus_bandwidth_nvls
                        .as_ref()
                        .map_or(String::new(), |n| n.source.clone())
                )
            } else {
                src("interconnect.allreduce_bus_bandwidth")
            },
            100.0 * crate::time::comm::NCCL_SM_SHARE
        ));
    }
    if run.fleet.nodes() > 1 {
        let f = &run.fleet;
        v.push(format!(
            "inter-node: {} per GPU and direction at {:.0}%{}; hierarchical all-reduce, across nodes the faster of NCCL's ring ({:.1} us per step) and tree ({:.1} us per level)",
            f.inter_node_bandwidth,
            f.inter_node_efficiency * 100.0,
            match &s.network {
                Some(n) => format!(
                    " (network {}: {} x {} Gb/s adapters per {}-GPU node; {}; {})",
                    n.name,
                    n.node.nics.value,
                    n.node.nic_gbps.value,
                    n.node.gpus.value,
                    n.fabric.efficiency.source,
                    n.fabric.ring_step_latency_s.source
                ),
                None => " (--inter-node-gbps; efficiency and latencies of the default network ib-ndr-8x400)".to_string(),
            },
            f.ring_step_latency.0 * 1e6,
            f.tree_level_latency.0 * 1e6
        ));
    }
    v.extend(
        model
            .notes
            .iter()
            .map(|n| format!("model imported from config.json: {n}")),
    );
    v.push(format!(
        "memory: framework workspace {} + {:.0}% allocator fragmentation (assumption)",
        binary_bytes(Bytes(run.memory.workspace.0)),
        run.memory.fragmentation * 100.0
    ));
    v.push(format!(
        "tokens/s count the model's {} sequence tokens per sample (a dataset in tokens is converted with --tokens-per-sample)",
        model.tokens_per_sample()
    ));
    v
}

/// One op of `estimate --ops` with its time.
#[derive(Debug, Clone, Copy)]
pub struct OpTimeRow {
    /// The op (per layer; the row stands for `op.layer.count()` layers).
    pub op: Op,
    /// Its time per layer.
    pub time: OpTime,
}

/// The time of every op of `ops` in scenario `s`.
pub fn op_times(s: &Scenario, ops: &[Op]) -> Result<Vec<OpTimeRow>> {
    ops.iter()
        .map(|op| {
            Ok(OpTimeRow {
                op: *op,
                time: op_time(&s.machine, op, s.run.mode, s.run.step.attention)?,
            })
        })
        .collect()
}
