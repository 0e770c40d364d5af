//! The op graph of one training step on one GPU.
//!
//! [`build_step`] turns a [`ModelSpec`] and a [`StepConfig`] into the list of every op of the
//! forward pass, the backward pass and the optimizer, each with FLOPs and the bytes it reads and
//! writes in HBM. Blocks that see the same sequence length are identical: each op row of a block
//! stands for `count` layers, so building the graph costs the same for 12 or 96 layers.
//!
//! Conventions (stated once, used everywhere):
//! - A multiply-add is 2 FLOPs; a GEMM (M, N, K) is 2MNK FLOPs. Bias epilogues are not counted.
//! - Attention (non-causal) forward is 4·B·s²·d FLOPs (QKᵀ and PV); causal attention counts half
//!   of that (Megatron-LM's `num_floating_point_operations`; PyTorch's FlopCounterMode does not
//!   halve). Fused (Flash) backward executes 2.5× the forward (FlashAttention's benchmark
//!   convention, which includes recomputing S); the MFU numerator counts 2× (no recompute).
//! - Backward of a GEMM is two GEMMs of the same FLOPs (data grad and weight grad).
//! - Vector ops count a fixed number of FLOPs per element (see [`build`]); backward of a vector op
//!   counts twice its forward FLOPs unless [`build`] states its backward. Vector FLOPs never bind in practice; bytes do. They count as
//!   executed FLOPs (HFU) but not as model FLOPs: the MFU numerator is matmul FLOPs only, as in
//!   PaLM's 6N + 12·L·H·Q·T (arXiv 2204.02311, appendix B).
//! - Bytes are HBM traffic of an unfused (eager) kernel: each input read once, each output written
//!   once, at its dtype. An op that eager PyTorch runs as several kernels (a composite, or a
//!   backward that autograd splits into several ops) counts every kernel's traffic, as the ATen ops
//!   PyTorch dispatches would (tests/reference/ checks the totals). `fused_*` give the traffic when the op is part of a fused chain
//!   (torch.compile): only tensors entering or leaving the chain count.
//! - `bf16` precision means PyTorch autocast: fp32 parameters, gradients and optimizer states,
//!   bf16 GEMM operands and outputs, an fp32 residual stream, and a bf16 copy of every GEMM weight
//!   made once per forward.

mod build;
mod params;

pub use build::{build_step, StepGraph};
pub use params::{param_count, ParamCount};

use crate::error::{Error, Result};
use crate::units::{Bytes, Flops};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

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

/// Element type of an op's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE fp32.
    Fp32,
    /// TensorFloat-32 on tensor cores.
    Tf32,
    /// bfloat16.
    Bf16,
    /// fp8 (e4m3/e5m2).
    Fp8,
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
    /// C[M,N] = A[M,K] · B[K,N].
    Gemm {
        /// Rows of the output.
        m: u64,
        /// Columns of the output.
        n: u64,
        /// Reduction length.
        k: u64,
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
        /// FlashAttention generation (2 or 3).
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
    /// The first op of a block: its main input (`chained_read`) is the block's input, the one
    /// tensor per block that full checkpointing keeps.
    BlockInput,
    /// Produces the attention inputs q, k and v: selective checkpointing keeps its output.
    AttentionInputs,
    /// The training loss (and its backward).
    Loss,
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

macro_rules! cli_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The command-line spelling.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::unknown($what, s, &[$($text),+])),
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

cli_enum!(
    /// Attention implementation.
    AttentionImpl, "attention implementation", {
        /// Scores materialized; as the public JiT code: fp32 scores (autocast off), a materialized
        /// zero bias [B,1,s,s] added, fp32 softmax, probabilities cast to bf16 for PV.
        Naive => "naive",
        /// PyTorch's math SDPA backend, which (since 2.5) upcasts bf16/fp16 q, k, v to fp32:
        /// fp32 scores and PV on the vector units.
        SdpaMath => "sdpa-math",
        /// Unfused attention with 16-bit scores and probabilities (Megatron-LM's core attention,
        /// the assumption of Korthikanti et al.).
        Unfused => "unfused",
        /// FlashAttention-2: fused, no s x s matrix in HBM; backward recomputes S.
        Flash2 => "flash2",
        /// FlashAttention-3 (Hopper): as flash2 with faster kernels.
        Flash3 => "flash3",
    }
);

cli_enum!(
    /// Numeric precision of the step.
    Precision, "precision", {
        /// PyTorch autocast bf16 with fp32 master weights (the default).
        Bf16 => "bf16",
        /// bf16 parameters and activations throughout, residual stream included (Megatron-LM
        /// style), fp32 master weights, fp32 gradient accumulation and AdamW states.
        Bf16Pure => "bf16-pure",
        /// Everything fp32; GEMMs on the fp32 vector units (PyTorch's default allow_tf32=False).
        Fp32 => "fp32",
        /// fp32 storage, GEMMs on tf32 tensor cores.
        Tf32 => "tf32",
        /// fp8 GEMM operands (Transformer-Engine style), otherwise as bf16.
        Fp8 => "fp8",
    }
);

cli_enum!(
    /// Activation checkpointing.
    Checkpointing, "checkpointing mode", {
        /// Keep every activation backward needs.
        None => "none",
        /// Recompute the unfused attention core (Korthikanti et al.); a no-op for fused attention.
        Selective => "selective",
        /// Keep only each block's input; recompute the whole block in backward.
        Full => "full",
    }
);

cli_enum!(
    /// How kernels are issued.
    ExecMode, "execution mode", {
        /// One kernel per op, each dispatched by the framework on the host (plain PyTorch).
        Eager => "eager",
        /// Vector-op chains fused into one kernel each (torch.compile / Inductor).
        Compiled => "compiled",
        /// Compiled and replayed as a CUDA graph: host dispatch gone, a small gap per kernel.
        Graphs => "graphs",
    }
);

/// Settings of one training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepConfig {
    /// Samples per GPU per micro-step.
    pub batch: u64,
    /// Attention implementation.
    pub attention: AttentionImpl,
    /// Precision.
    pub precision: Precision,
    /// Activation checkpointing.
    pub checkpointing: Checkpointing,
    /// EMA copies of the weights updated after each optimizer step (at most [`MAX_EMA`]).
    pub ema: u32,
    /// Ranks the optimizer states are sharded over (ZeRO-1 and up: each rank updates 1/shards
    /// of the parameters); 1 without sharding.
    pub optimizer_shards: u64,
}

/// Most EMA copies a step may update.
pub const MAX_EMA: u32 = 16;

impl Default for StepConfig {
    fn default() -> Self {
        StepConfig {
            batch: 64,
            attention: AttentionImpl::Naive,
            precision: Precision::Bf16,
            checkpointing: Checkpointing::None,
            ema: 0,
            optimizer_shards: 1,
        }
    }
}

/// The distinct GEMM shapes (m, n, k) of an op list, with the name of the first op of each
/// shape, in op order (forward, data-grad and weight-grad GEMMs alike).
pub fn gemm_shapes(ops: &[Op]) -> Vec<(&'static str, u64, u64, u64)> {
    let mut shapes: Vec<(&'static str, u64, u64, u64)> = Vec::new();
    for op in ops {
        if let OpKind::Gemm { m, n, k } = op.kind {
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
