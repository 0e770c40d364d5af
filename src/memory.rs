//! Memory footprint of a training step on one GPU.
//!
//! Persistent state, per parameter P ([`PrecisionPolicy`]; PyTorch autocast, AdamW with fp32
//! states): weights 4P, gradients 4P, AdamW m and v 8P, each EMA copy 4P; ZeRO stage 1 shards the
//! optimizer states over the data-parallel ranks, stage 2 also the gradients, stage 3 also the
//! weights. With expert parallelism over P ranks each holds 1/P of the routed experts
//! ([`ParamCount::resident`]). Under autocast the low-precision copies of the GEMM weights live from the forward
//! to the end of the backward. Activations are what autograd keeps for backward: the sum of the
//! `saved` bytes of the forward ops (see [`crate::graph`]), reduced by checkpointing.
//! Under ZeRO-3 the EMA copies are sharded too, and the weights used for compute are gathered in
//! the compute dtype ([`PrecisionPolicy::gather_bytes`]) one unit at a time: two blocks (current
//! and prefetched) plus the larger of embedding and head (the root unit) are resident, beside
//! the low-precision copies of those units' local shards (FSDP casts a unit's shard before
//! gathering it, `MixedPrecision(param_dtype=bf16)`, and frees the copy once gathered:
//! `FlatParamHandle.post_unshard` in torch/distributed/fsdp/_flat_param.py). The most
//! gradient memory one backward op holds at its peak is added as a transient. The framework's
//! workspace (CUDA context, cuBLAS/cuDNN workspaces, NCCL buffers, allocator slack) is a stated
//! assumption, [`MemoryConfig::workspace`].

use crate::graph::{param_count, Dtype, ParamCount, PrecisionPolicy};
use crate::graph::{Chain, Checkpointing, Layer, Op, OpKind, Phase, Role, StepConfig};
use crate::spec::ModelSpec;
use crate::units::Bytes;
use serde::Serialize;

/// Settings that change the footprint beyond the step config.
#[derive(Debug, Clone, Copy)]
pub struct MemoryConfig {
    /// ZeRO stage (0-3).
    pub zero: u8,
    /// Data-parallel ranks the ZeRO shards are spread over.
    pub dp: u64,
    /// Fixed framework workspace (assumption, default 1 GiB + allocator slack).
    pub workspace: Bytes,
    /// Allocator fragmentation as a fraction of allocated bytes (assumption, default 5%).
    pub fragmentation: f64,
    /// Fused execution (torch.compile): pointwise chains are recomputed in backward.
    pub fused: bool,
    /// Pipeline parallelism: the micro-batches whose activations the first stage holds at
    /// once ([`in_flight`]); `None` without pipeline stages.
    pub in_flight: Option<f64>,
}

/// Micro-batches whose activations the first of `pp` pipeline stages holds at its peak under
/// 1F1B with `vpp` chunks per stage and `micro_batches` per step: p with the plain schedule, and
/// p·(1 + (p-1)/(p·v)) with the interleaved one, never more than the micro-batches of a step
/// (Korthikanti et al. 2022, arXiv 2205.05198, section 4.2.3: the first stage holds p
/// micro-batches of L/p layers each, L layers' worth, times 1 + (p-1)/(p·v) when interleaved).
pub fn in_flight(pp: u64, vpp: u64, micro_batches: u64) -> f64 {
    let (p, v) = (pp as f64, vpp.max(1) as f64);
    let schedule = if vpp > 1 { p + (p - 1.0) / v } else { p };
    schedule.min(micro_batches as f64).max(1.0)
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            zero: 0,
            dp: 1,
            workspace: Bytes((1u64 << 30) as f64),
            fragmentation: 0.05,
            fused: false,
            in_flight: None,
        }
    }
}

/// Per-GPU memory breakdown.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemoryBreakdown {
    /// Trainable parameters.
    pub params: u64,
    /// fp32 weights (sharded under ZeRO-3).
    pub weights_bytes: Bytes,
    /// fp32 gradients (sharded under ZeRO-2/3).
    pub gradients_bytes: Bytes,
    /// AdamW m and v (sharded under ZeRO-1/2/3).
    pub optimizer_bytes: Bytes,
    /// EMA copies of the weights.
    pub ema_bytes: Bytes,
    /// Low-precision copies of the GEMM weights made by autocast; under ZeRO-3 the gathered
    /// working weights and the low-precision copies of their shards (see the module docs).
    pub weight_copies_bytes: Bytes,
    /// Activations kept for backward.
    pub activations_bytes: Bytes,
    /// Activations at this batch divided by the batch (per-sample share, including any part
    /// that does not grow with the batch; [`MemoryProfile::max_batch`] uses the exact slope).
    pub activations_per_sample_bytes: Bytes,
    /// Largest tensor written during backward.
    pub transient_bytes: Bytes,
    /// Workspace and fragmentation.
    pub workspace_bytes: Bytes,
    /// Everything.
    pub total_bytes: Bytes,
}

impl MemoryBreakdown {
    /// Persistent allocated state: weights, gradients, optimizer, EMA, weight copies.
    pub fn persistent_bytes(&self) -> Bytes {
        self.weights_bytes
            + self.gradients_bytes
            + self.optimizer_bytes
            + self.ema_bytes
            + self.weight_copies_bytes
    }

    /// The fixed part of the footprint W + (1 + f)·persistent and the factor (1 + f) that
    /// multiplies what grows with the batch.
    fn fixed(&self, mc: &MemoryConfig) -> (f64, f64) {
        let k = 1.0 + mc.fragmentation;
        (mc.workspace.0 + k * self.persistent_bytes().0, k)
    }
}

/// How the batch-dependent memory of a step grows with the batch, measured on the graph at
/// batch 1 and 2: activations kept for backward, a0 + a1·B, and, for each backward op, the
/// gradient memory it holds at its peak, c_i + s_i·B. Every byte count of the op graph is affine
/// in the batch, so two builds determine them exactly.
#[derive(Debug, Clone, Default)]
pub struct MemoryProfile {
    /// Activations at batch 1 and 2.
    activations: [f64; 2],
    /// Transients of the backward ops at batch 1 and 2.
    transients: Vec<[f64; 2]>,
}

impl MemoryProfile {
    /// The profile from the op lists of the same step at batch 1 (`one`) and 2 (`two`).
    pub fn new(
        one: &[Op],
        two: &[Op],
        mode: Checkpointing,
        fused: bool,
        in_flight: Option<f64>,
    ) -> Self {
        let mut p = MemoryProfile::default();
        p.refill(one, two, mode, fused, in_flight, &mut Vec::new());
        p
    }

    /// [`MemoryProfile::new`] into this profile's buffers, with `scratch` for the candidate
    /// lines: allocates nothing once the buffers have grown.
    pub fn refill(
        &mut self,
        one: &[Op],
        two: &[Op],
        mode: Checkpointing,
        fused: bool,
        in_flight: Option<f64>,
        scratch: &mut Vec<[f64; 2]>,
    ) {
        fn transients(ops: &[Op], fused: bool) -> impl Iterator<Item = f64> + '_ {
            ops.iter()
                .filter(|o| o.phase == Phase::Backward && !o.weight_sized)
                .map(move |o| transient_bytes(o, fused))
        }
        scratch.clear();
        scratch.extend(
            transients(one, fused)
                .zip(transients(two, fused))
                .map(|(a, b)| [a, b]),
        );
        // Only the lines that are the largest somewhere on B >= 1 matter: a line at most as high
        // at batch 1 and at most as steep as another never is (the Pareto front of the two).
        self.transients.clear();
        for (i, t) in scratch.iter().enumerate() {
            let slope = |x: &[f64; 2]| x[1] - x[0];
            let beaten = scratch
                .iter()
                .enumerate()
                .any(|(j, u)| u[0] >= t[0] && slope(u) >= slope(t) && (u != t || j < i));
            if !beaten {
                self.transients.push(*t);
            }
        }
        self.activations = [
            stage_activation_bytes(one, mode, fused, in_flight).0,
            stage_activation_bytes(two, mode, fused, in_flight).0,
        ];
    }

    /// The profile of `m` under `cfg` (any batch), from two builds of its graph.
    pub fn of(m: &ModelSpec, cfg: &StepConfig, fused: bool) -> crate::error::Result<Self> {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        crate::graph::build_step(m, &StepConfig { batch: 1, ..*cfg }, &mut one)?;
        crate::graph::build_step(m, &StepConfig { batch: 2, ..*cfg }, &mut two)?;
        Ok(Self::new(&one, &two, cfg.checkpointing, fused, None))
    }

    /// Batch-dependent bytes at batch `b`: activations plus the largest transient.
    pub fn at(&self, b: f64) -> f64 {
        let affine = |[one, two]: [f64; 2]| one + (two - one) * (b - 1.0);
        affine(self.activations)
            + self
                .transients
                .iter()
                .map(|t| affine(*t))
                .fold(0.0, f64::max)
    }

    /// Largest batch whose footprint (fixed part of `m`) fits in `capacity`: 0 if not even one
    /// sample fits. Solved per backward op (the footprint is the largest of affine functions),
    /// then checked against the profile at the answer and the next batch.
    pub fn max_batch(&self, m: &MemoryBreakdown, capacity: Bytes, mc: &MemoryConfig) -> u64 {
        const MAX: f64 = 1e15;
        let (fixed, k) = m.fixed(mc);
        let room = (capacity.0 - fixed) / k;
        let fits = |b: f64| self.at(b) <= room;
        if !fits(1.0) {
            return 0;
        }
        let [a1, a2] = self.activations;
        let (a_slope, a0) = (a2 - a1, 2.0 * a1 - a2);
        let mut best = MAX;
        for &[t1, t2] in self.transients.iter().chain(std::iter::once(&[0.0, 0.0])) {
            let slope = a_slope + (t2 - t1);
            if slope > 0.0 {
                best = best.min(((room - a0 - (2.0 * t1 - t2)) / slope).floor());
            }
        }
        let mut b = best.clamp(1.0, MAX);
        while b > 1.0 && !fits(b) {
            b -= 1.0;
        }
        while b < MAX && fits(b + 1.0) {
            b += 1.0;
        }
        b as u64
    }
}

/// Activation bytes kept for backward by the ops of `ops` under `mode`.
///
/// Fused execution (`fused`): torch.compile's partitioner recomputes pointwise ops in backward
/// instead of saving their outputs, but not reductions. So a fused chain keeps at most its input
/// at its head (norms also their statistics), members keep nothing, and softmax, reductions,
/// GEMMs and attention keep what they keep in eager mode. The norm that reads the attention
/// branch's residual sum `x + gate·y` ([`Role::ResidualNorm`]) keeps only its row statistics:
/// the partitioner recomputes the sum from the block's input (kept by the attention norm) and
/// the branch output `y`, which it keeps in the activation dtype unless the (gated) residual add
/// already keeps it. Seen in PyTorch's own accounting of compiled blocks
/// (tests/reference/fixtures/compiled-saved.json).
pub fn activation_bytes(ops: &[Op], mode: Checkpointing, fused: bool) -> Bytes {
    let [embed, blocks, once, head] = activation_parts(ops, mode, fused);
    Bytes(embed + blocks + once + head)
}

/// [`activation_bytes`] of one GPU of a pipeline whose first stage holds `in_flight`
/// micro-batches ([`in_flight`]): the larger of the first stage's, in_flight × (embeddings +
/// its blocks), and the last stage's, its blocks + head, of one micro-batch each. Without
/// pipeline stages (`None`), all of it once.
pub fn stage_activation_bytes(
    ops: &[Op],
    mode: Checkpointing,
    fused: bool,
    in_flight: Option<f64>,
) -> Bytes {
    let [embed, blocks, once, head] = activation_parts(ops, mode, fused);
    Bytes(
        once + match in_flight {
            None => embed + blocks + head,
            Some(n) => (n * (embed + blocks)).max(blocks + head),
        },
    )
}

/// The activations kept by the embeddings, by the blocks per micro-batch, by the one block being
/// recomputed at a time (full checkpointing; not per micro-batch), and by the head (with the
/// rest outside the blocks) under `mode`: see [`activation_bytes`].
fn activation_parts(ops: &[Op], mode: Checkpointing, fused: bool) -> [f64; 4] {
    let mut embed = 0.0;
    let mut outside = 0.0;
    let mut blocks_all = 0.0;
    let mut blocks_selective = 0.0;
    let mut block_inputs = 0.0;
    let mut largest_block = 0.0f64;
    let mut layer = None;
    let mut layer_saved = 0.0;
    // Fused: the branch output the last residual add left for its norm to keep.
    let mut branch = 0.0;
    for op in ops.iter().filter(|o| o.phase == Phase::Forward) {
        let saved = match (fused, op.role) {
            (false, _) => op.saved.0,
            (true, Role::Residual) => {
                let kept = fused_saved(op);
                // A plain add `x + y` reads x (its chained input) and the branch output y.
                branch = if kept > 0.0 {
                    0.0
                } else {
                    (op.bytes_read.0 - op.chained_read.0).max(0.0)
                };
                kept
            }
            (true, Role::ResidualNorm) => branch + norm_statistics(op),
            (true, _) => fused_saved(op),
        };
        match op.layer {
            Layer::Blocks { count, .. } => {
                if layer != Some(op.layer) {
                    largest_block = largest_block.max(layer_saved);
                    layer_saved = 0.0;
                    layer = Some(op.layer);
                }
                let c = count as f64;
                layer_saved += saved;
                blocks_all += saved * c;
                if !op.attention_core {
                    blocks_selective += saved * c;
                }
                match op.role {
                    // Selective recompute keeps the attention inputs q, k, v.
                    Role::AttentionInputs => blocks_selective += op.bytes_written.0 * c,
                    // Full recompute keeps each block's input.
                    Role::BlockInput => block_inputs += op.chained_read.0 * c,
                    Role::Plain | Role::Loss | Role::Residual | Role::ResidualNorm => {}
                }
            }
            Layer::Embed => embed += saved,
            _ => outside += saved,
        }
    }
    largest_block = largest_block.max(layer_saved);
    let (blocks, once) = match mode {
        Checkpointing::None => (blocks_all, 0.0),
        Checkpointing::Selective => (blocks_selective.min(blocks_all), 0.0),
        Checkpointing::Full => (block_inputs, largest_block),
    };
    [embed, blocks, once, outside]
}

/// A norm's per-row statistics: what a LayerNorm keeps beyond its input (two fp32 per row), at
/// most 1/64 of its input (a composite RMSNorm keeps its normalized tensor too, which this bound
/// leaves out: its one fp32 per row is far under it; a low-precision LayerNorm, which keeps a
/// 16-bit copy of its input, counts none).
fn norm_statistics(op: &Op) -> f64 {
    (op.saved.0 - op.chained_read.0)
        .max(0.0)
        .min(op.chained_read.0 / 64.0)
}

/// What an op keeps for backward under fused execution (see [`activation_bytes`]). A compiled
/// cross-entropy (the loss op over the vocabulary) keeps the 16-bit logits it reads (half its
/// fused read, which passes over them twice, less the targets) and one fp32 log-sum-exp per row
/// (half its fused write), not the eager fp32 log-probabilities: see `graph::parts::head`.
fn fused_saved(op: &Op) -> f64 {
    if op.role == Role::Loss && matches!(op.kind, OpKind::Softmax) {
        let rows = op.fused_written.0 / 8.0;
        return (op.fused_read.0 - rows * 8.0) / 2.0 + rows * 4.0;
    }
    match (op.kind, op.chain) {
        (OpKind::Elementwise | OpKind::Normalization { .. }, Chain::Member) => 0.0,
        (OpKind::Elementwise, Chain::Head) => op.saved.0.min(op.chained_read.0),
        // Input plus per-row statistics (at most 8 bytes per row of at least 64 elements).
        (OpKind::Normalization { .. }, Chain::Head) => {
            op.saved.0.min(op.chained_read.0 * (1.0 + 8.0 / 64.0))
        }
        _ => op.saved.0,
    }
}

/// Gradient memory a backward op holds at its peak: what it writes when it is one kernel; for an
/// eager composite of k kernels, whose intermediates are freed as it goes, three kernels' worth
/// of its mean write per kernel, 3·written/k (two intermediates and the result alive together,
/// e.g. cross-entropy's zero-filled gradient, log-softmax's gradient and the cast).
fn transient_bytes(op: &Op, fused: bool) -> f64 {
    let written = if fused {
        op.fused_written.0
    } else {
        op.bytes_written.0
    };
    if fused || op.kernels <= 1 {
        written
    } else {
        written.min(3.0 * written / op.kernels as f64)
    }
}

/// The footprint of the step whose ops are `ops` (built for `cfg`).
pub fn footprint(
    m: &ModelSpec,
    cfg: &StepConfig,
    ops: &[Op],
    mc: &MemoryConfig,
) -> MemoryBreakdown {
    footprint_of(&param_count(m), cfg, ops, mc)
}

/// [`footprint`] of a model with parameter count `p`.
pub fn footprint_of(
    p: &ParamCount,
    cfg: &StepConfig,
    ops: &[Op],
    mc: &MemoryConfig,
) -> MemoryBreakdown {
    let dp = mc.dp.max(1);
    let ep = cfg.expert_shards.max(1);
    // Parameters of a kind held per GPU: ZeRO from `stage` on shards them over the ranks;
    // expert parallelism spreads the routed experts.
    let held = |stage: u8| p.resident(if mc.zero >= stage { dp } else { 1 }, ep);
    let b = PrecisionPolicy::of(cfg.precision);
    let weights = b.weight_bytes() * held(3);
    let grads = b.gradient_bytes() * held(2);
    let optimizer = b.optimizer_bytes() * held(1);
    // ZeRO-3 / FSDP shards every copy of the parameters, the EMA copies with them; compute uses
    // the units gathered at the time (module docs).
    let ema = Dtype::Fp32.bytes() * cfg.ema as f64 * held(3);
    let spread = |all: u64, experts: u64| (all - experts) as f64 + experts as f64 / ep as f64;
    let weight_copies = if mc.zero >= 3 {
        let block = spread(p.per_block, p.per_block_experts);
        let gathered = (2.0 * block + p.embed.max(p.head) as f64).min(p.total as f64);
        (b.gather_bytes() + b.weight_copy_bytes() / dp as f64) * gathered
    } else {
        b.weight_copy_bytes() * spread(p.gemm_weights, p.expert_gemm_weights)
    };
    let activations = stage_activation_bytes(ops, cfg.checkpointing, mc.fused, mc.in_flight);
    let transient = ops
        .iter()
        .filter(|o| o.phase == Phase::Backward && !o.weight_sized)
        .map(|o| transient_bytes(o, mc.fused))
        .fold(0.0, f64::max);
    let allocated = weights + grads + optimizer + ema + weight_copies + activations.0 + transient;
    let workspace = mc.workspace.0 + mc.fragmentation * allocated;
    MemoryBreakdown {
        params: p.total,
        weights_bytes: Bytes(weights),
        gradients_bytes: Bytes(grads),
        optimizer_bytes: Bytes(optimizer),
        ema_bytes: Bytes(ema),
        weight_copies_bytes: Bytes(weight_copies),
        activations_bytes: activations,
        activations_per_sample_bytes: Bytes(activations.0 / cfg.batch as f64),
        transient_bytes: Bytes(transient),
        workspace_bytes: Bytes(workspace),
        total_bytes: Bytes(allocated + workspace),
    }
}
