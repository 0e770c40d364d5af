//! Trainable parameter counts, exact (integers), from a model spec.

use crate::spec::model::{Conditioning, MlpKind, ModelKind, NormKind, PatchEmbed, PositionEmbed};
use crate::spec::ModelSpec;
use serde::Serialize;

/// Trainable parameters by part of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ParamCount {
    /// Embeddings (patch, learned position, timestep MLP, class table, token table, in-context
    /// position table).
    pub embed: u64,
    /// One transformer block.
    pub per_block: u64,
    /// Of `per_block`: the adaLN modulation linear.
    pub per_block_adaln: u64,
    /// All blocks.
    pub blocks: u64,
    /// Final norm, final adaLN and head (an LM head tied to the embedding counts 0 here).
    pub head: u64,
    /// Everything.
    pub total: u64,
    /// Parameters that are GEMM weights (they get a low-precision copy under autocast).
    pub gemm_weights: u64,
}

/// Parameters of one norm layer of width `d`.
pub fn norm_params(kind: NormKind, d: u64) -> u64 {
    match kind {
        NormKind::Rmsnorm => d,
        NormKind::Layernorm => 2 * d,
        NormKind::LayernormNoAffine => 0,
    }
}

/// Counts the trainable parameters. Frozen sin-cos position tables are not parameters.
pub fn param_count(m: &ModelSpec) -> ParamCount {
    let t = &m.transformer;
    let e = &m.embedding;
    let d = t.width;
    let dh = m.head_dim();
    let f = t.mlp_hidden;
    let b = |on: bool, n: u64| if on { n } else { 0 };

    let qkv_w = 3 * d * d;
    let proj_w = d * d;
    let (up_out, up_w) = match t.mlp {
        MlpKind::Swiglu => (2 * f, d * 2 * f),
        MlpKind::Gelu => (f, d * f),
    };
    let down_w = f * d;
    let adaln_w = match t.conditioning {
        Conditioning::AdalnZero => d * 6 * d,
        Conditioning::None => 0,
    };
    let adaln = adaln_w + b(t.conditioning == Conditioning::AdalnZero, 6 * d);
    let per_block = 2 * norm_params(t.norm, d)
        + b(t.qk_norm, 2 * dh)
        + qkv_w
        + b(t.qkv_bias, 3 * d)
        + proj_w
        + b(t.out_bias, d)
        + up_w
        + b(t.mlp_bias, up_out)
        + down_w
        + b(t.mlp_bias, d)
        + adaln;
    let block_gemm = qkv_w + proj_w + up_w + down_w + adaln_w;

    let mut embed = 0;
    let mut embed_gemm = 0;
    let mut head = norm_params(t.norm, d);
    let mut head_gemm = 0;
    match m.kind {
        ModelKind::Vision => {
            let inp = m
                .input
                .as_ref()
                .expect("validated: vision models have [input]");
            let patch_in = inp.channels * inp.patch * inp.patch;
            match e.patch_embed {
                Some(PatchEmbed::Linear) | None => {
                    embed += patch_in * d + d;
                    embed_gemm += patch_in * d;
                }
                Some(PatchEmbed::Bottleneck) => {
                    embed += patch_in * e.bottleneck + e.bottleneck * d + d;
                    embed_gemm += patch_in * e.bottleneck + e.bottleneck * d;
                }
            }
            let out = inp.patch * inp.patch * inp.out_channels;
            head += d * out + out;
            head_gemm += d * out;
        }
        ModelKind::Language => {
            embed += e.vocab * d;
            if !e.tied_head {
                head += e.vocab * d;
            }
            head_gemm += e.vocab * d;
        }
    }
    if e.position == PositionEmbed::Learned {
        embed += e.max_positions * d;
    }
    if e.timestep_frequencies > 0 {
        embed += e.timestep_frequencies * d + d + d * d + d;
        embed_gemm += e.timestep_frequencies * d + d * d;
    }
    embed += e.classes * d;
    embed += m.tokens.in_context * d;
    if t.conditioning == Conditioning::AdalnZero {
        head += d * 2 * d + 2 * d;
        head_gemm += d * 2 * d;
    }
    let blocks = per_block * t.depth;
    ParamCount {
        embed,
        per_block,
        per_block_adaln: adaln,
        blocks,
        head,
        total: embed + blocks + head,
        gemm_weights: embed_gemm + block_gemm * t.depth + head_gemm,
    }
}
