//! One training step assembled from the model parts: embeddings, each group of identical
//! blocks, the head and loss, then the backward of each in reverse (with the recomputation
//! checkpointing asks for), then the optimizer.

use super::backward::{emit_backward, emit_recompute};
use super::builder::{Builder, Meta};
use super::params::{param_count_of, ParamCount};
use super::parts::{block, embed, head, optimizer};
use super::precision::PrecisionPolicy;
use super::shapes::LinearShapes;
use super::{Layer, Op, StepConfig, MAX_EMA};
use crate::error::{Error, Result};
use crate::spec::ModelSpec;

/// Builds every op of one training step on one GPU into `ops` (cleared first).
pub fn build_step(m: &ModelSpec, cfg: &StepConfig, ops: &mut Vec<Op>) -> Result<()> {
    let mut meta = Vec::new();
    build(m, cfg, ops, &mut meta, &mut None).map(|_| ())
}

/// The op list of one training step with the bookkeeping the builder keeps beside each op.
/// Building again reuses both buffers, so repeated builds allocate nothing once they have grown.
#[derive(Debug, Default)]
pub struct StepGraph {
    ops: Vec<Op>,
    meta: Vec<Meta>,
    params: Params,
    /// The per-GPU model of the last tensor- or context-parallel build, kept so that building
    /// the same split again clones nothing.
    local: Option<LocalModel>,
}

/// A model and the slice of it one GPU computes under a split.
#[derive(Debug)]
struct LocalModel {
    tp: u64,
    cp: u64,
    of: ModelSpec,
    local: ModelSpec,
}

/// The parameters of a build: the model's, and what one GPU holds of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Params {
    /// The whole model.
    pub model: ParamCount,
    /// One GPU's share before ZeRO and expert parallelism: its tensor-parallel slice of its
    /// pipeline stage (the larger end stage; see [`ParamCount::stage`]).
    pub gpu: ParamCount,
}

impl StepGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the graph for `m` and `cfg`.
    pub fn build(&mut self, m: &ModelSpec, cfg: &StepConfig) -> Result<&[Op]> {
        self.params = build(m, cfg, &mut self.ops, &mut self.meta, &mut self.local)?;
        Ok(&self.ops)
    }

    /// The trainable parameters of the model of the last build.
    pub fn params(&self) -> ParamCount {
        self.params.model
    }

    /// What one GPU holds of them (tensor and pipeline parallelism applied).
    pub fn gpu_params(&self) -> ParamCount {
        self.params.gpu
    }

    /// The ops of the last build.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

/// The sequence-length groups of the blocks one pipeline stage of `pp` holds: `(first, count,
/// seq)`, consecutive blocks with the same sequence. At most two groups (before and after
/// in-context tokens join; only without pipeline stages, see [`super::Parallelism::check`]).
fn block_groups(m: &ModelSpec, pp: u64) -> [(u64, u64, u64); 2] {
    let depth = m.transformer.depth / pp.max(1);
    let t = &m.tokens;
    if t.in_context > 0 && t.in_context_from_block > 0 {
        let k = t.in_context_from_block;
        [(0, k, m.seq_at_block(0)), (k, depth - k, m.seq_at_block(k))]
    } else {
        [(0, depth, m.seq_at_block(0)), (depth, 0, 0)]
    }
}

/// Most tokens one GPU may process per micro-step (batch x sequence): 2^40, far beyond any
/// GPU's memory, and small enough that every row count times a feature count is finite.
pub const MAX_TOKENS_PER_STEP: u64 = 1 << 40;

/// Checks the step settings that no model part can satisfy.
fn check(m: &ModelSpec, cfg: &StepConfig, policy: &PrecisionPolicy) -> Result<()> {
    if cfg.batch == 0 {
        return Err(Error::Invalid("batch must be a positive integer".into()));
    }
    if cfg.batch.saturating_mul(m.max_seq()) > MAX_TOKENS_PER_STEP {
        return Err(Error::Invalid(format!(
            "batch {} x sequence {} is more than 2^40 tokens per GPU per micro-step",
            cfg.batch,
            m.max_seq()
        )));
    }
    if cfg.ema > MAX_EMA {
        return Err(Error::Invalid(format!(
            "--ema {} is more than {} EMA copies",
            cfg.ema, MAX_EMA
        )));
    }
    cfg.parallel.check(m, cfg.attention.is_fused())?;
    if cfg.attention.is_fused() && !policy.has_fused_attention() {
        return Err(Error::Invalid(format!(
            "{} has no fp32 kernels (PyTorch's SDPA falls back to the math backend): use --attention sdpa-math with --precision {}",
            cfg.attention, cfg.precision
        )));
    }
    Ok(())
}

/// Builds the step of one GPU into `ops` and `meta`; returns the parameters.
fn build(
    full: &ModelSpec,
    cfg: &StepConfig,
    ops: &mut Vec<Op>,
    meta: &mut Vec<Meta>,
    cache: &mut Option<LocalModel>,
) -> Result<Params> {
    let policy = PrecisionPolicy::of(cfg.precision);
    check(full, cfg, &policy)?;
    ops.clear();
    meta.clear();
    let par = cfg.parallel;
    let model_params = param_count_of(full, &LinearShapes::of(full));
    // The model one GPU computes (tensor and context parallelism); cloned only when the model
    // or the split differs from the last build's.
    let m = if par.tp > 1 || par.cp > 1 {
        match cache {
            Some(c) if c.of == *full => {
                if (c.tp, c.cp) != (par.tp, par.cp) {
                    par.local_into(full, &mut c.local);
                    (c.tp, c.cp) = (par.tp, par.cp);
                }
            }
            _ => {
                *cache = Some(LocalModel {
                    tp: par.tp,
                    cp: par.cp,
                    of: full.clone(),
                    local: par.local(full),
                })
            }
        }
        &cache.as_ref().expect("set above").local
    } else {
        full
    };
    let shapes = LinearShapes::of(m);
    let gpu_params = if m.transformer == full.transformer && m.embedding == full.embedding {
        model_params
    } else {
        param_count_of(m, &shapes)
    }
    .stage(m.transformer.depth, par.pp);
    let mut b = Builder {
        ops,
        meta,
        layer: Layer::Embed,
        policy,
        open_chain: false,
        batch: cfg.batch,
        sp: par.sequence_shards(),
        cp: par.cp,
    };

    embed::forward(&mut b, m, &shapes);
    let embed_end = b.ops.len();
    let mut group_ranges = [(0usize, 0usize); 2];
    for (gi, &(first, count, seq)) in block_groups(m, par.pp).iter().enumerate() {
        if count == 0 {
            continue;
        }
        b.layer = Layer::Blocks {
            first: first as u32,
            count: count as u32,
        };
        b.open_chain = false;
        let start = b.ops.len();
        block::forward(&mut b, m, cfg, &shapes, seq);
        group_ranges[gi] = (start, b.ops.len());
    }
    b.layer = Layer::Head;
    b.open_chain = false;
    let head_start = b.ops.len();
    head::forward(&mut b, m, &shapes, cfg.loss);
    let fwd_end = b.ops.len();

    // Backward: head, block groups in reverse, embeddings; each range in reverse op order.
    emit_backward(&mut b, head_start, fwd_end);
    for &(start, end) in group_ranges.iter().rev() {
        if end > start {
            emit_recompute(&mut b, start, end, cfg.checkpointing);
            emit_backward(&mut b, start, end);
        }
    }
    emit_backward(&mut b, 0, embed_end);

    optimizer::step(&mut b, &gpu_params, cfg);
    Ok(Params {
        model: model_params,
        gpu: gpu_params,
    })
}
