//! Trainable parameter counts, exact (integers), from a model spec: the linear layers of
//! [`super::shapes`] plus norms, tables and embeddings.

use super::shapes::{Linear, LinearShapes};
use crate::spec::model::{ModelKind, NormKind, PositionEmbed};
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
    let shapes = LinearShapes::of(m);
    let sum = |layers: &mut dyn Iterator<Item = &Linear>, f: fn(&Linear) -> u64| -> u64 {
        layers.map(f).sum()
    };

    let adaln = shapes.adaln.map_or(0, |l| l.params());
    let per_block = 2 * norm_params(t.norm, d)
        + if t.qk_norm { 2 * dh } else { 0 }
        + sum(&mut shapes.block_layers(), Linear::params);
    let block_gemm = sum(&mut shapes.block_layers(), Linear::weights);

    let mut embed = sum(&mut shapes.embed_layers(), Linear::params);
    let embed_gemm = sum(&mut shapes.embed_layers(), Linear::weights);
    if m.kind == ModelKind::Language {
        embed += e.vocab * d;
    }
    if e.position == PositionEmbed::Learned {
        embed += e.max_positions * d;
    }
    embed += e.classes * d;
    embed += m.tokens.in_context * d;

    let mut head = norm_params(t.norm, d) + shapes.final_adaln.map_or(0, |l| l.params());
    if !shapes.head_tied {
        head += shapes.head.params();
    }
    let head_gemm = sum(&mut shapes.head_layers(), Linear::weights);
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
