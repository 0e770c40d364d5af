//! The settings of one training step: attention implementation, precision, checkpointing,
//! execution mode, batch and EMA copies.

use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

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
        /// zero bias `[B,1,s,s]` added, fp32 softmax, probabilities cast to bf16 for PV.
        Naive => "naive",
        /// PyTorch's math SDPA backend, which (since 2.5) upcasts bf16/fp16 q, k, v to fp32:
        /// fp32 scores and PV on the vector units.
        SdpaMath => "sdpa-math",
        /// Unfused attention with 16-bit scores and probabilities (Megatron-LM's core attention,
        /// the assumption of Korthikanti et al.).
        Unfused => "unfused",
        /// FlashAttention (v1, Dao et al. 2022, arXiv 2205.14135) and kernels of its generation,
        /// such as the Triton FlashAttention that llm-foundry's `attn_impl: triton` runs (its
        /// docstring: forward + backward "slightly slower" than the CUDA FlashAttention): fused
        /// as flash2, with the slower kernels of that generation.
        Flash1 => "flash1",
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
        /// fp16 parameters, activations and gradients with fp32 master weights and AdamW states
        /// and dynamic loss scaling (Megatron-LM's `--fp16`; Micikevicius et al. 2018).
        Fp16 => "fp16",
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
    /// How the cross-entropy over a vocabulary runs.
    LossImpl, "loss implementation", {
        /// The framework's `F.cross_entropy`: eager, an upcast, log-softmax and NLL kernels
        /// (fp32 log-probabilities kept); compiled, Inductor's fused log-softmax + NLL.
        Torch => "torch",
        /// A hand-written fused cross-entropy kernel in every mode (FlashAttention's
        /// `flash_attn.losses.cross_entropy`, llm-foundry's default `fused_crossentropy`; Apex's
        /// and Megatron-LM's fused cross-entropy): one pass forward keeping the 16-bit logits
        /// and a log-sum-exp per row, one pass backward writing the logits' gradient.
        Fused => "fused",
        /// The classifier and the loss fused and chunked over rows (Liger-Kernel's
        /// `LigerFusedLinearCrossEntropyLoss`, Hsu et al. 2024, arXiv 2410.10989): the logits
        /// exist one chunk at a time, and the forward computes their gradient in place, so
        /// nothing logits-sized is kept for backward.
        FusedLinear => "fused-linear",
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

impl AttentionImpl {
    /// A fused kernel (no s x s matrix in memory).
    pub fn is_fused(self) -> bool {
        matches!(
            self,
            AttentionImpl::Flash1 | AttentionImpl::Flash2 | AttentionImpl::Flash3
        )
    }

    /// The FlashAttention generation of a fused kernel (1, 2 or 3); `None` when not fused.
    pub fn flash_generation(self) -> Option<u8> {
        match self {
            AttentionImpl::Flash1 => Some(1),
            AttentionImpl::Flash2 => Some(2),
            AttentionImpl::Flash3 => Some(3),
            _ => None,
        }
    }
}

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
    /// Ranks the parameters themselves are sharded over (ZeRO-3: each rank updates the EMA of
    /// its shard); 1 without sharding.
    pub param_shards: u64,
    /// Ranks the routed experts of a mixture of experts are spread over (expert parallelism):
    /// each rank holds experts / expert_shards of them and computes every token routed to
    /// those; 1 without expert parallelism.
    pub expert_shards: u64,
    /// How one replica is split over GPUs (tensor, sequence, pipeline, context parallelism).
    pub parallel: super::Parallelism,
    /// How a language model's cross-entropy runs.
    pub loss: LossImpl,
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
            param_shards: 1,
            expert_shards: 1,
            parallel: super::Parallelism::default(),
            loss: LossImpl::Torch,
        }
    }
}
