//! Trainable parameter counts, exact (integers), from a model spec: the linear layers of
//! [`super::shapes`] plus norms, tables and embeddings.

use super::shapes::LinearShapes;
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
    /// Of `gemm_weights`, one block's.
    pub per_block_gemm_weights: u64,
    /// Of `total`, the routed experts of every block (0 without a mixture of experts).
    pub experts: u64,
    /// Of `experts`, their GEMM weights.
    pub expert_gemm_weights: u64,
    /// Of `per_block`, its routed experts.
    pub per_block_experts: u64,
    /// The parameters one token uses: `total` with only `top_k` of the routed experts.
    pub active: u64,
    /// Of `gemm_weights`, the embeddings'.
    pub embed_gemm_weights: u64,
    /// Of `gemm_weights`, the head's (a tied LM head's table included: it runs as a GEMM).
    pub head_gemm_weights: u64,
    /// The token table an LM head shares (0 when untied): a last pipeline stage holds its own
    /// copy of it.
    pub tied_table: u64,
}

impl ParamCount {
    /// What one stage of a `pp`-stage pipeline holds: depth/pp blocks and, of the two ends, the
    /// larger: the first stage's embeddings or the last stage's head (with its copy of a tied
    /// table, as Megatron-LM keeps one). The whole model when `pp` is 1.
    pub fn stage(&self, depth: u64, pp: u64) -> ParamCount {
        if pp <= 1 {
            return *self;
        }
        let n = depth / pp;
        let last = self.head + self.tied_table;
        let first_is_larger = self.embed >= last;
        let (embed, head) = if first_is_larger {
            (self.embed, 0)
        } else {
            (0, last)
        };
        let (embed_gemm, head_gemm) = if first_is_larger {
            (self.embed_gemm_weights, 0)
        } else {
            (0, self.head_gemm_weights)
        };
        let blocks = self.per_block * n;
        let total = embed + blocks + head;
        let unused_per_block = (self.total - self.active) / depth.max(1);
        ParamCount {
            embed,
            blocks,
            head,
            total,
            gemm_weights: embed_gemm + self.per_block_gemm_weights * n + head_gemm,
            experts: self.per_block_experts * n,
            expert_gemm_weights: self.expert_gemm_weights / depth.max(1) * n,
            active: total - unused_per_block * n,
            embed_gemm_weights: embed_gemm,
            head_gemm_weights: head_gemm,
            tied_table: if first_is_larger { 0 } else { self.tied_table },
            ..*self
        }
    }

    /// Parameters one GPU holds of a tensor kind sharded over `shards` data-parallel ranks by
    /// ZeRO (1 = not sharded), with the routed experts spread over `expert_shards` ranks
    /// (expert parallelism). Sharded, each rank holds 1/shards of the dense parameters and
    /// 1/(shards/expert_shards) of its 1/expert_shards of the experts: 1/shards of everything.
    pub fn resident(&self, shards: u64, expert_shards: u64) -> f64 {
        if shards > 1 {
            self.total as f64 / shards as f64
        } else {
            (self.total - self.experts) as f64 + self.experts as f64 / expert_shards.max(1) as f64
        }
    }
}

/// Parameters of one norm layer of width `d`.
pub fn norm_params(kind: NormKind, d: u64) -> u64 {
    match kind {
        NormKind::Rmsnorm => d,
        NormKind::Layernorm | NormKind::LayernormLowPrecision => 2 * d,
        NormKind::LayernormNoAffine => 0,
    }
}

/// Counts the trainable parameters. Frozen sin-cos position tables are not parameters.
pub fn param_count(m: &ModelSpec) -> ParamCount {
    param_count_of(m, &LinearShapes::of(m))
}

/// [`param_count`] with the model's linear layers already tabulated.
pub(crate) fn param_count_of(m: &ModelSpec, shapes: &LinearShapes) -> ParamCount {
    let t = &m.transformer;
    let e = &m.embedding;
    let d = t.width;
    let dh = m.head_dim();
    let (mut block_params, mut block_gemm) = (0, 0);
    for l in shapes.block_layers() {
        block_params += l.params();
        block_gemm += l.weights();
    }
    let moe = t.moe.as_ref();
    let per_block_experts = if moe.is_some() {
        shapes.fc1.params() + shapes.fc2.params()
    } else {
        0
    };
    let per_block_expert_gemm = if moe.is_some() {
        shapes.fc1.weights() + shapes.fc2.weights()
    } else {
        0
    };
    let (mut embed, mut embed_gemm) = (0, 0);
    for l in shapes.embed_layers() {
        embed += l.params();
        embed_gemm += l.weights();
    }
    let adaln = shapes.adaln.map_or(0, |l| l.params());
    let norms = if t.post_norm { 4 } else { 2 };
    let per_block =
        norms * norm_params(t.norm, d) + if t.qk_norm { 2 * dh } else { 0 } + block_params;
    if m.kind == ModelKind::Language {
        embed += m.padded_vocab() * d;
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
    let head_gemm = shapes.head.weights() + shapes.final_adaln.map_or(0, |l| l.weights());
    let blocks = per_block * t.depth;
    let total = embed + blocks + head;
    let experts = per_block_experts * t.depth;
    // Routed experts a token does not use: (experts - top_k) of them in every block.
    let unused = moe.map_or(0, |moe| experts / moe.experts * (moe.experts - moe.top_k));
    ParamCount {
        embed,
        per_block,
        per_block_adaln: adaln,
        blocks,
        head,
        total,
        gemm_weights: embed_gemm + block_gemm * t.depth + head_gemm,
        per_block_gemm_weights: block_gemm,
        experts,
        expert_gemm_weights: per_block_expert_gemm * t.depth,
        per_block_experts,
        active: total - unused,
        embed_gemm_weights: embed_gemm,
        head_gemm_weights: head_gemm,
        tied_table: if shapes.head_tied {
            shapes.head.weights()
        } else {
            0
        },
    }
}
