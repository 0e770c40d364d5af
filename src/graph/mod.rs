//! The op graph of one training step on one GPU.
//!
//! [`build_step`] turns a [`ModelSpec`](crate::spec::ModelSpec) and a [`StepConfig`] into the list of every op of the
//! forward pass, the backward pass and the optimizer, each with FLOPs and the bytes it reads and
//! writes in HBM. Blocks that see the same sequence length are identical: each op row of a block
//! stands for `count` layers, so building the graph costs the same for 12 or 96 layers.
//!
//! Layout: [`StepGraph`] / [`build_step`] (step.rs) assemble the parts (parts/: embeddings,
//! conditioning, block, attention, fused attention, RoPE, norms, MLP, head and loss, optimizer),
//! each emitting its forward ops through the builder (builder.rs) and owning its backward rules;
//! backward.rs derives the generic backward and the recomputation of checkpointing. The linear
//! layers of a model are one table (shapes.rs) that parameter counts, weight casts and emitters
//! share, and one [`PrecisionPolicy`] gives the dtype of every class of tensor.
//!
//! Conventions (stated once, used everywhere):
//! - A multiply-add is 2 FLOPs; a GEMM (M, N, K) is 2MNK FLOPs. Bias epilogues are not counted.
//! - Attention (non-causal) forward is 4·B·s²·d FLOPs (QKᵀ and PV); causal attention counts half
//!   of that (Megatron-LM's `num_floating_point_operations`; PyTorch's FlopCounterMode does not
//!   halve). Fused (Flash) backward executes 2.5× the forward (FlashAttention's benchmark
//!   convention, which includes recomputing S); the MFU numerator counts 2× (no recompute).
//! - Backward of a GEMM is two GEMMs of the same FLOPs (data grad and weight grad).
//! - Vector ops count a fixed number of FLOPs per element (stated in each part's module docs);
//!   backward of a vector op counts twice its forward FLOPs unless its part states its backward.
//!   Vector FLOPs never bind in practice; bytes do. They count as executed FLOPs (HFU) but not as
//!   model FLOPs: the MFU numerator is matmul FLOPs only, as in PaLM's 6N + 12·L·H·Q·T
//!   (arXiv 2204.02311, appendix B).
//! - Bytes are HBM traffic of an unfused (eager) kernel: each input read once, each output written
//!   once, at its dtype. An op that eager PyTorch runs as several kernels (a composite, or a
//!   backward that autograd splits into several ops) counts every kernel's traffic, as the ATen
//!   ops PyTorch dispatches would (tests/reference/ checks the totals). `fused_*` give the traffic
//!   when the op is part of a fused chain (torch.compile): only tensors entering or leaving the
//!   chain count.
//! - `bf16` precision means PyTorch autocast: fp32 parameters, gradients and optimizer states,
//!   bf16 GEMM operands and outputs, an fp32 residual stream, and a bf16 copy of every GEMM weight
//!   made once per forward ([`PrecisionPolicy`]).

mod backward;
mod builder;
mod config;
mod parallel;
mod params;
mod parts;
mod precision;
mod shapes;
mod step;

pub use config::{
    AttentionImpl, Checkpointing, ExecMode, LossImpl, Precision, StepConfig, MAX_EMA,
};
pub use parallel::Parallelism;
pub use params::{param_count, ParamCount};
pub use parts::common::eager_softmax_passes;
pub use parts::moe::all_to_all_bytes;
pub use precision::PrecisionPolicy;
pub use step::{build_step, StepGraph, MAX_TOKENS_PER_STEP};

use crate::units::{Bytes, Flops};
use serde::Serialize;
use std::fmt;

/// Training phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Forward pass.
    Forward,
    /// Backward pass (including recomputation for activation checkpointing).
    Backward,
    /// Optimizer step (and EMA updates).
    Optimizer,
}

/// The hardware unit an op runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Tensor (matrix) cores.
    Tensor,
    /// Vector (SIMT) units.
    Vector,
}

/// Element type of a tensor, or of an op's arithmetic. Tensors are stored as fp32, bf16 or fp8;
/// tf32 only names tensor-core arithmetic on fp32 tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE fp32.
    Fp32,
    /// TensorFloat-32 on tensor cores (fp32 storage).
    Tf32,
    /// bfloat16.
    Bf16,
    /// IEEE fp16 (half): the same size, and on every GPU in models/hardware the same tensor-core
    /// rate, as bf16 (vendor datasheets), so it runs at the bf16 figures of the GPU file.
    Fp16,
    /// fp8 (e4m3/e5m2).
    Fp8,
}

impl Dtype {
    /// Lower-case name (as in JSON and the GPU files' field names).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Tf32 => "tf32",
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Fp8 => "fp8",
        }
    }

    /// Bytes per element as stored (tf32 is an arithmetic mode: its tensors are fp32).
    pub const fn bytes(self) -> f64 {
        match self {
            Dtype::Fp32 | Dtype::Tf32 => 4.0,
            Dtype::Bf16 | Dtype::Fp16 => 2.0,
            Dtype::Fp8 => 1.0,
        }
    }

    /// The wider of two dtypes (what PyTorch's type promotion gives a binary op on both).
    pub fn wider(self, other: Dtype) -> Dtype {
        if other.bytes() > self.bytes() {
            other
        } else {
            self
        }
    }
}

/// Op class for step-time breakdowns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    /// Linear layers and convolutions as GEMMs.
    Gemm,
    /// Attention core: scores, softmax, PV, or a fused kernel.
    Attention,
    /// Normalization layers.
    Normalization,
    /// Pointwise ops, casts, embeddings, reductions, the loss.
    Elementwise,
    /// Optimizer and EMA updates.
    Optimizer,
}

impl OpClass {
    /// All classes, in report order.
    pub const ALL: [OpClass; 5] = [
        OpClass::Gemm,
        OpClass::Attention,
        OpClass::Normalization,
        OpClass::Elementwise,
        OpClass::Optimizer,
    ];

    /// Lower-case name used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Gemm => "gemm",
            OpClass::Attention => "attention",
            OpClass::Normalization => "normalization",
            OpClass::Elementwise => "elementwise",
            OpClass::Optimizer => "optimizer",
        }
    }
}

/// What kind of computation an op is, with its shape where the shape matters for its cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpKind {
    /// `C[M,N] = A[M,K] · B[K,N]`.
    Gemm {
        /// Rows of the output.
        m: u64,
        /// Columns of the output.
        n: u64,
        /// Reduction length.
        k: u64,
        /// Which dimension runs over the token rows of a linear layer. In the layouts cuBLAS
        /// gets for `x·Wᵀ` and its gradients the token rows are never a leading dimension, so
        /// their count needs no alignment (the features do).
        #[serde(skip)]
        token_dim: TokenDim,
    },
    /// `batch` independent GEMMs of one shape.
    BatchedGemm {
        /// Number of GEMMs.
        batch: u64,
        /// Rows.
        m: u64,
        /// Columns.
        n: u64,
        /// Reduction length.
        k: u64,
    },
    /// `groups` GEMMs of one shape over different weights, in one kernel: the experts of a
    /// mixture of experts (a grouped GEMM, as Megatron-LM's `--moe-grouped-gemm`). Each group's
    /// rows are tokens routed to it.
    GroupedGemm {
        /// Number of GEMMs (experts on this GPU; at most 2^16, the model's bound).
        groups: u32,
        /// Rows of each output.
        m: u64,
        /// Columns.
        n: u64,
        /// Reduction length.
        k: u64,
        /// Which dimension runs over token rows (see [`OpKind::Gemm`]).
        #[serde(skip)]
        token_dim: TokenDim,
    },
    /// A fused attention kernel (FlashAttention-style), forward or backward.
    Attention {
        /// Samples.
        batch: u64,
        /// Heads.
        heads: u64,
        /// Sequence length.
        seq: u64,
        /// Head dimension.
        head_dim: u64,
        /// Causal masking.
        causal: bool,
        /// Causal sliding window in tokens (0 = none; at most 2^30, the model's bound).
        #[serde(skip_serializing_if = "is_zero")]
        window: u32,
        /// FlashAttention generation (1, 2 or 3).
        flash: u8,
    },
    /// Pointwise arithmetic or a dtype cast.
    Elementwise,
    /// RMSNorm / LayerNorm. `composite`: eager PyTorch runs it as a chain of framework ops
    /// (RMSNorm as written in JiT's and Llama's code), not as one native kernel (LayerNorm).
    Normalization { composite: bool },
    /// Softmax over the last dimension.
    Softmax,
    /// A reduction (e.g. a bias gradient).
    Reduction,
    /// A table lookup or its gradient scatter.
    Embedding,
    /// Optimizer or EMA update.
    Optimizer,
}

impl OpKind {
    /// Short name for tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Gemm { .. } => "gemm",
            OpKind::BatchedGemm { .. } => "batched_gemm",
            OpKind::GroupedGemm { .. } => "grouped_gemm",
            OpKind::Attention { .. } => "attention",
            OpKind::Elementwise => "elementwise",
            OpKind::Normalization { .. } => "normalization",
            OpKind::Softmax => "softmax",
            OpKind::Reduction => "reduction",
            OpKind::Embedding => "embedding",
            OpKind::Optimizer => "optimizer",
        }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl OpKind {
    /// A matrix multiplication (what FLOP counters and MFU count): GEMMs and fused attention.
    pub fn is_matmul(&self) -> bool {
        self.is_gemm() || matches!(self, OpKind::Attention { .. })
    }

    /// A GEMM run by a BLAS library: plain, batched or grouped.
    pub fn is_gemm(&self) -> bool {
        matches!(
            self,
            OpKind::Gemm { .. } | OpKind::BatchedGemm { .. } | OpKind::GroupedGemm { .. }
        )
    }
}

/// The dimension of a GEMM that runs over token rows (see [`OpKind::Gemm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDim {
    /// M: a linear layer's forward and data gradient.
    M,
    /// K: a linear layer's weight gradient (the sum over tokens).
    K,
}

/// Which layers an op row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Input embeddings (patch, position, timestep, class, token).
    Embed,
    /// `count` consecutive transformer blocks starting at `first`.
    Blocks {
        /// First block (0-based).
        first: u32,
        /// Number of blocks.
        count: u32,
    },
    /// Final norm, head and loss.
    Head,
    /// The whole model (optimizer, EMA).
    Model,
}

impl Layer {
    /// How many layers this row stands for (its multiplier).
    pub fn count(self) -> u32 {
        match self {
            Layer::Blocks { count, .. } => count,
            _ => 1,
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Embed => write!(f, "embed"),
            Layer::Blocks { first, count: 1 } => write!(f, "block {first}"),
            Layer::Blocks { first, count } => write!(f, "blocks {first}-{}", first + count - 1),
            Layer::Head => write!(f, "head"),
            Layer::Model => write!(f, "model"),
        }
    }
}

/// Role of an op in a fused chain of vector ops (torch.compile fuses such chains into one kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// Never fused: a kernel of its own in every mode.
    Alone,
    /// First op of a chain: the fused kernel's launch.
    Head,
    /// A later op of the chain: no launch of its own when fused.
    Member,
}

/// What an op is to activation checkpointing and to validation, beyond its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Nothing beyond its kind.
    Plain,
    /// The block's attention norm, whose main input (`chained_read`) is the block's input (the
    /// residual stream): the one tensor per block that full checkpointing keeps. (Ops before
    /// it in a block, such as the weight casts and the adaLN modulation, read other tensors.)
    BlockInput,
    /// Produces the attention inputs q, k and v: selective checkpointing keeps its output.
    AttentionInputs,
    /// The training loss (and its backward).
    Loss,
    /// The residual add that ends a block's attention branch, `x + gate·y`.
    Residual,
    /// The norm that reads that residual sum (the MLP branch's norm): compiled, the
    /// partitioner recomputes the sum rather than keep it (`memory::activation_bytes`).
    ResidualNorm,
}

/// One op of the training step (per layer; the row stands for `layer.count()` layers).
#[derive(Debug, Clone, Copy)]
pub struct Op {
    /// Dotted name, e.g. `attn.qkv`, `mlp.fc1.dgrad`.
    pub name: &'static str,
    /// Layers the row stands for.
    pub layer: Layer,
    /// Phase.
    pub phase: Phase,
    /// Kind and shape.
    pub kind: OpKind,
    /// Breakdown class.
    pub class: OpClass,
    /// Execution unit.
    pub unit: Unit,
    /// Arithmetic dtype.
    pub dtype: Dtype,
    /// FLOPs executed, per layer.
    pub flops: Flops,
    /// FLOPs counted as model FLOPs (MFU numerator): 0 for recomputation, 2x forward for a fused
    /// attention backward.
    pub model_flops: Flops,
    /// HBM bytes read, per layer, unfused.
    pub bytes_read: Bytes,
    /// HBM bytes written, per layer, unfused.
    pub bytes_written: Bytes,
    /// HBM bytes read when fused into its chain.
    pub fused_read: Bytes,
    /// HBM bytes written when fused into its chain.
    pub fused_written: Bytes,
    /// Of `bytes_read`, the bytes that the previous kernel just wrote (candidates for L2 hits).
    pub chained_read: Bytes,
    /// Fusion role.
    pub chain: Chain,
    /// Kernels the op launches when not fused (eager): more than one for ops that eager
    /// frameworks run as a composite of simpler ops (e.g. RMSNorm as pow, mean, rsqrt, mul).
    pub kernels: u8,
    /// Activation bytes this op keeps for backward, per layer (forward ops only).
    pub saved: Bytes,
    /// Its size follows the parameters, not the batch: weight casts, weight and bias gradients,
    /// embedding-table gradients (excluded from activation transients).
    pub weight_sized: bool,
    /// Part of the unfused attention core (what selective checkpointing recomputes).
    pub attention_core: bool,
    /// A recomputation for activation checkpointing (backward phase).
    pub recompute: bool,
    /// What the op is to checkpointing and validation.
    pub role: Role,
}

impl Op {
    /// FLOPs of all layers the row stands for.
    pub fn total_flops(&self) -> Flops {
        self.flops * self.layer.count() as f64
    }
    /// Model FLOPs of all layers the row stands for.
    pub fn total_model_flops(&self) -> Flops {
        self.model_flops * self.layer.count() as f64
    }
    /// Bytes read by all layers the row stands for (unfused).
    pub fn total_bytes_read(&self) -> Bytes {
        self.bytes_read * self.layer.count() as f64
    }
    /// Bytes written by all layers the row stands for (unfused).
    pub fn total_bytes_written(&self) -> Bytes {
        self.bytes_written * self.layer.count() as f64
    }
    /// Arithmetic intensity (FLOP/byte) of the unfused op.
    pub fn intensity(&self) -> f64 {
        self.flops / (self.bytes_read + self.bytes_written)
    }
}

/// The distinct GEMM shapes (m, n, k) of an op list, with the name of the first op of each
/// shape, in op order (forward, data-grad and weight-grad GEMMs alike).
pub fn gemm_shapes(ops: &[Op]) -> Vec<(&'static str, u64, u64, u64)> {
    let mut shapes: Vec<(&'static str, u64, u64, u64)> = Vec::new();
    for op in ops {
        if let OpKind::Gemm { m, n, k, .. } = op.kind {
            if !shapes.iter().any(|s| (s.1, s.2, s.3) == (m, n, k)) {
                shapes.push((op.name, m, n, k));
            }
        }
    }
    shapes
}

/// Totals of an op list, per phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseTotals {
    /// Executed FLOPs.
    pub flops: Flops,
    /// Model FLOPs.
    pub model_flops: Flops,
    /// Bytes read (unfused).
    pub bytes_read: Bytes,
    /// Bytes written (unfused).
    pub bytes_written: Bytes,
}

/// Sums the ops of one phase.
pub fn phase_totals(ops: &[Op], phase: Phase) -> PhaseTotals {
    let mut t = PhaseTotals::default();
    for op in ops.iter().filter(|o| o.phase == phase) {
        t.flops += op.total_flops();
        t.model_flops += op.total_model_flops();
        t.bytes_read += op.total_bytes_read();
        t.bytes_written += op.total_bytes_written();
    }
    t
}
