//! Op times gathered by the part of the model they belong to (embeddings, blocks, head,
//! optimizer), so that a pipeline stage's time can be put together from its parts, and the
//! model-parallel communication of one micro-step of one GPU (tensor, context and pipeline
//! parallelism; [`crate::graph::Parallelism`]).
//!
//! Tensor parallelism over t GPUs (Megatron-LM; Shoeybi et al. 2019, arXiv 1909.08053, section
//! 3, figure 4): each block all-reduces its b·s·h activations twice in the forward (after the
//! attention's and the MLP's row-parallel layer) and twice in the backward (the input gradients
//! of the column-parallel layers); full recomputation repeats the forward's two. Sequence
//! parallelism replaces each all-reduce by a reduce-scatter and an all-gather of the same total
//! volume (Korthikanti et al. 2022, arXiv 2205.05198, section 4.2.2), so its time is the same.
//! The vocabulary-parallel embedding all-reduces its output once and the LM head its input
//! gradient once. None of it overlaps with compute (Megatron-LM's default at the time of
//! Korthikanti et al.; an assumption printed with the estimate).
//!
//! Context parallelism over c GPUs (ring attention as in Megatron-LM/Transformer Engine): each
//! attention layer passes K and V blocks of s/c tokens around the ring, c - 1 sends in the
//! forward and twice the bytes (K, V and their gradients) in the backward, behind the attention
//! kernel of the previous block: only what exceeds the attention time is exposed.
//!
//! Pipeline parallelism (1F1B, Narayanan et al. 2021, arXiv 2104.04473, section 2.2): each
//! micro-batch sends its b·s·h activations to the next stage and the gradient back, once per
//! model chunk, scattered over the t tensor-parallel ranks (the scatter/gather optimization,
//! section 4.1): 2·v sends per micro-batch on the critical path.

use crate::estimate::{Breakdown, ByBound};
use crate::graph::{Checkpointing, Layer, Op, Parallelism, Phase, PrecisionPolicy};
use crate::spec::ModelSpec;
use crate::time::{comm, Bound, Fleet, Machine, OpTime};
use crate::units::{Bytes, Flops, Seconds};

/// Op times of one part of the model, per micro-step (the optimizer's per step).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PartTime {
    /// Forward GPU time (gaps included).
    pub fwd: Seconds,
    /// Backward GPU time (gaps included).
    pub bwd: Seconds,
    /// Host dispatch time of the forward.
    pub host_fwd: Seconds,
    /// Host dispatch time of the backward (and of the optimizer).
    pub host_bwd: Seconds,
    /// GPU launch gaps.
    pub gaps: Seconds,
    /// Busy time by op class.
    pub breakdown: Breakdown,
    /// Busy time by binding roof.
    pub by_bound: ByBound,
    /// Kernels launched.
    pub kernels: f64,
    /// Model FLOPs.
    pub model_flops: Flops,
    /// Executed matmul FLOPs.
    pub hw_flops: Flops,
    /// Time of the attention core, forward and backward.
    pub attention: [Seconds; 2],
}

/// Which part an op belongs to: embeddings 0, blocks 1, head 2, optimizer 3.
pub(crate) fn part_of(op: &Op) -> usize {
    match op.layer {
        Layer::Embed => 0,
        Layer::Blocks { .. } => 1,
        Layer::Head => 2,
        Layer::Model => 3,
    }
}

impl PartTime {
    /// Adds op `op`, timed `t`, run `reps` times.
    #[inline]
    pub fn add(&mut self, op: &Op, t: &OpTime, reps: f64) {
        let busy = (t.time - t.gap) * reps;
        match op.phase {
            Phase::Forward => {
                self.fwd += t.time * reps;
                self.host_fwd += t.host * reps;
            }
            Phase::Backward | Phase::Optimizer => {
                self.bwd += t.time * reps;
                self.host_bwd += t.host * reps;
            }
        }
        if op.attention_core {
            self.attention[usize::from(op.phase != Phase::Forward)] += busy;
        }
        *self.breakdown.class_mut(op.class) += busy;
        match t.bound {
            Bound::Compute => self.by_bound.compute += busy,
            Bound::Memory => self.by_bound.memory += busy,
            Bound::Launch => self.by_bound.launch += busy,
            Bound::None => {}
        }
        self.gaps += t.gap * reps;
        self.kernels += t.kernels * reps;
        self.model_flops += op.model_flops * reps;
        if op.kind.is_matmul() {
            self.hw_flops += op.flops * reps;
        }
    }

    /// GPU time.
    pub fn gpu(&self) -> Seconds {
        self.fwd + self.bwd
    }

    /// Host dispatch time.
    pub fn host(&self) -> Seconds {
        self.host_fwd + self.host_bwd
    }

    /// The sum of two parts.
    pub fn plus(&self, o: &PartTime) -> PartTime {
        PartTime {
            fwd: self.fwd + o.fwd,
            bwd: self.bwd + o.bwd,
            host_fwd: self.host_fwd + o.host_fwd,
            host_bwd: self.host_bwd + o.host_bwd,
            gaps: self.gaps + o.gaps,
            breakdown: self.breakdown.plus(&o.breakdown, 1.0),
            by_bound: self.by_bound.plus(&o.by_bound, 1.0),
            kernels: self.kernels + o.kernels,
            model_flops: self.model_flops + o.model_flops,
            hw_flops: self.hw_flops + o.hw_flops,
            attention: [
                self.attention[0] + o.attention[0],
                self.attention[1] + o.attention[1],
            ],
        }
    }

    /// The part scaled by `k` (micro-steps).
    pub fn times(&self, k: f64) -> PartTime {
        PartTime {
            fwd: self.fwd * k,
            bwd: self.bwd * k,
            host_fwd: self.host_fwd * k,
            host_bwd: self.host_bwd * k,
            gaps: self.gaps * k,
            breakdown: Breakdown::default().plus(&self.breakdown, k),
            by_bound: ByBound::default().plus(&self.by_bound, k),
            kernels: self.kernels * k,
            model_flops: self.model_flops * k,
            hw_flops: self.hw_flops * k,
            attention: [self.attention[0] * k, self.attention[1] * k],
        }
    }
}

/// The part of the model the critical pipeline stage computes per micro-step: with pipeline
/// stages, its blocks and the heavier of the two ends (the first stage's embeddings or the last
/// stage's head); without, everything. `parts` are embeddings, blocks, head.
pub(crate) fn critical_stage(parts: &[PartTime; 4], pp: u64) -> PartTime {
    let [embed, blocks, head, _] = parts;
    if pp <= 1 {
        return embed.plus(blocks).plus(head);
    }
    let end = if embed.gpu() >= head.gpu() {
        embed
    } else {
        head
    };
    blocks.plus(end)
}

/// Model-parallel communication of one micro-step of the critical stage: (tensor-parallel,
/// context-parallel exposed, pipeline point-to-point), see the module docs.
pub(crate) struct ModelParallelComm {
    /// Tensor-parallel collectives (none hidden).
    pub tensor: Seconds,
    /// Context-parallel ring exchange beyond the attention it hides behind.
    pub context: Seconds,
    /// Pipeline sends of activations and their gradients.
    pub pipeline: Seconds,
}

impl ModelParallelComm {
    /// All of it; none hidden.
    pub fn total(&self) -> Seconds {
        self.tensor + self.context + self.pipeline
    }
}

/// The model-parallel communication of one micro-step of `batch` samples of `m` on one GPU of
/// the critical stage, whose attention takes `attention` (forward, backward).
#[allow(clippy::too_many_arguments)]
pub(crate) fn model_parallel_comm(
    m: &ModelSpec,
    par: &Parallelism,
    fleet: &Fleet,
    mach: &Machine,
    policy: &PrecisionPolicy,
    checkpointing: Checkpointing,
    batch: u64,
    attention: [Seconds; 2],
) -> ModelParallelComm {
    let o = policy.activation.bytes();
    let tokens = (batch * m.max_seq() / par.cp) as f64;
    let d = m.transformer.width as f64;
    let layers = par.stage_blocks(m.transformer.depth) as f64;
    let tensor = if par.tp > 1 {
        let group = fleet.group(par.tp, 1);
        let all_reduce = comm::allreduce_time(&group, mach, Bytes(tokens * d * o));
        let per_layer = if checkpointing == Checkpointing::Full {
            6.0
        } else {
            4.0
        };
        // A language model's vocabulary-parallel embedding and head all-reduce once each, on
        // the first and last stage; both without stages.
        let ends = match (m.kind, par.pp) {
            (crate::spec::model::ModelKind::Language, 1) => 2.0,
            (crate::spec::model::ModelKind::Language, _) => 1.0,
            _ => 0.0,
        };
        all_reduce * (per_layer * layers + ends)
    } else {
        Seconds::ZERO
    };
    let context = if par.cp > 1 {
        let kv = Bytes(2.0 * tokens * (m.kv_width() / par.tp) as f64 * o);
        let sends = (par.cp - 1) as f64;
        let send = comm::p2p_time(fleet, mach, kv, par.tp);
        let passes = if checkpointing == Checkpointing::Full {
            [2.0, 2.0]
        } else {
            [1.0, 2.0]
        };
        let exposed =
            |i: usize| (send * (sends * passes[i] * layers) - attention[i]).max(Seconds::ZERO);
        exposed(0) + exposed(1)
    } else {
        Seconds::ZERO
    };
    let pipeline = if par.pp > 1 {
        let bytes = Bytes(tokens * d * o / par.tp as f64);
        comm::p2p_time(fleet, mach, bytes, par.tp * par.cp) * (2.0 * par.vpp as f64)
    } else {
        Seconds::ZERO
    };
    ModelParallelComm {
        tensor,
        context,
        pipeline,
    }
}
