//! Builds the op list of one training step. See the module docs of [`crate::graph`] for the
//! conventions; this file states the per-op formulas.
//!
//! Symbols: B batch, s sequence of the block, T = B·s rows, d width, h heads, dh head dim,
//! f MLP hidden, E = T·d elements of one activation, S = B·h·s² attention scores; byte sizes
//! `op` (GEMM operand), `out` (GEMM output / activation), `res` (residual stream, fp32 under
//! autocast). Vector FLOPs per element: RMSNorm 4, LayerNorm 7, modulate 2, gated residual 2,
//! SiLU 4, SwiGLU 5, GELU 8, RoPE 3, scale 1, add 1, softmax 5, cast 0, AdamW 14, EMA 3,
//! loss 3 (MSE) or 5 (cross-entropy).

use super::params::param_count;
use super::{
    AttentionImpl, Chain, Checkpointing, Dtype, Layer, Op, OpClass, OpKind, Phase, Precision,
    StepConfig, Unit,
};
use crate::error::{Error, Result};
use crate::spec::model::{
    Conditioning, MlpKind, ModelKind, NormKind, PatchEmbed, PositionEmbed, RopeKind,
};
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// Names of an op and of the ops derived from it, all `'static` so building allocates nothing.
#[derive(Debug)]
pub(crate) struct Names {
    pub fwd: &'static str,
    pub bwd: &'static str,
    pub dgrad: &'static str,
    pub wgrad: &'static str,
    pub bias_grad: &'static str,
    pub recompute: &'static str,
    /// Names of the autocast input cast in front of a linear layer.
    pub cast: Option<&'static Names>,
}

macro_rules! n {
    ($s:literal) => {
        &Names {
            fwd: $s,
            bwd: concat!($s, ".bwd"),
            dgrad: concat!($s, ".dgrad"),
            wgrad: concat!($s, ".wgrad"),
            bias_grad: concat!($s, ".bias_grad"),
            recompute: concat!($s, ".recompute"),
            cast: Some(&Names {
                fwd: concat!($s, ".cast"),
                bwd: concat!($s, ".cast.bwd"),
                dgrad: concat!($s, ".cast.dgrad"),
                wgrad: concat!($s, ".cast.wgrad"),
                bias_grad: concat!($s, ".cast.bias_grad"),
                recompute: concat!($s, ".cast.recompute"),
                cast: None,
            }),
        }
    };
}

/// How to derive the backward ops of a forward op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bwd {
    /// No backward kernel (constants, inputs that need no gradient, pass-through adds).
    None,
    /// Vector op: reads its saved inputs and the output gradient, writes the input gradients:
    /// read = fwd read + fwd written, written = fwd read, FLOPs = 2 x forward.
    Generic,
    /// A dtype cast: the gradient is cast back: read = fwd written, written = fwd read.
    Cast,
    /// Explicit backward traffic and FLOPs.
    Explicit { read: f64, written: f64, flops: f64 },
    /// Linear layer (M, N, K): data grad GEMM (M, K, N) if `input_grad`, weight grad GEMM
    /// (K, N, M), and a bias-grad reduction over M rows if `bias`.
    Linear { input_grad: bool, bias: bool },
    /// Attention scores S = Q·Kᵀ (batch, s, s, dh): dQ = dS·K and dK = dSᵀ·Q, each (s, dh, s).
    Scores,
    /// Attention output O = P·V (batch, s, dh, s): dP = dO·Vᵀ (s, s, dh) and dV = Pᵀ·dO (s, dh, s).
    Pv { p_bytes: f64 },
    /// Fused attention: 2.5x forward FLOPs executed, 2x counted as model FLOPs.
    Flash { read: f64, written: f64 },
}

/// Element sizes of the step's numerics.
#[derive(Debug, Clone, Copy)]
struct Numerics {
    gemm_dtype: Dtype,
    gemm_unit: Unit,
    /// GEMM operand bytes.
    op: f64,
    /// GEMM output and activation bytes.
    out: f64,
    /// Residual stream bytes.
    res: f64,
    /// Whether GEMM weights get a low-precision copy each forward (autocast).
    weight_copy: bool,
}

impl Numerics {
    fn of(p: Precision) -> Self {
        match p {
            Precision::Bf16 => Numerics {
                gemm_dtype: Dtype::Bf16,
                gemm_unit: Unit::Tensor,
                op: 2.0,
                out: 2.0,
                res: 4.0,
                weight_copy: true,
            },
            Precision::Bf16Pure => Numerics {
                gemm_dtype: Dtype::Bf16,
                gemm_unit: Unit::Tensor,
                op: 2.0,
                out: 2.0,
                res: 2.0,
                weight_copy: false,
            },
            Precision::Fp8 => Numerics {
                gemm_dtype: Dtype::Fp8,
                gemm_unit: Unit::Tensor,
                op: 1.0,
                out: 2.0,
                res: 4.0,
                weight_copy: true,
            },
            Precision::Tf32 => Numerics {
                gemm_dtype: Dtype::Tf32,
                gemm_unit: Unit::Tensor,
                op: 4.0,
                out: 4.0,
                res: 4.0,
                weight_copy: false,
            },
            Precision::Fp32 => Numerics {
                gemm_dtype: Dtype::Fp32,
                gemm_unit: Unit::Vector,
                op: 4.0,
                out: 4.0,
                res: 4.0,
                weight_copy: false,
            },
        }
    }
}

/// Forward-op bookkeeping kept beside each op while building.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub names: &'static Names,
    pub bwd: Bwd,
    /// Bytes of the op's main output (dropped from fused traffic when a chain member follows).
    output: f64,
    /// The output is needed outside the chain (e.g. the new residual stream).
    keep: bool,
    /// GEMM shape for [`Bwd::Linear`], [`Bwd::Scores`], [`Bwd::Pv`].
    shape: (u64, u64, u64, u64),
}

/// A builder that appends ops and their metadata to reusable buffers.
struct Builder<'a> {
    ops: &'a mut Vec<Op>,
    meta: &'a mut Vec<Meta>,
    layer: Layer,
    num: Numerics,
    open_chain: bool,
    /// Samples per GPU.
    batch: u64,
}

/// Arguments of a vector op.
struct Vector {
    kind: OpKind,
    class: OpClass,
    flops: f64,
    main_in: f64,
    side_in: f64,
    output: f64,
    saved: f64,
    keep: bool,
    alone: bool,
    core: bool,
    bwd: Bwd,
}

impl Vector {
    fn new(kind: OpKind, class: OpClass, flops: f64, main_in: f64, output: f64) -> Self {
        Vector {
            kind,
            class,
            flops,
            main_in,
            side_in: 0.0,
            output,
            saved: 0.0,
            keep: false,
            alone: false,
            core: false,
            bwd: Bwd::Generic,
        }
    }
    fn side(mut self, b: f64) -> Self {
        self.side_in = b;
        self
    }
    fn saved(mut self, b: f64) -> Self {
        self.saved = b;
        self
    }
    fn keep(mut self) -> Self {
        self.keep = true;
        self
    }
    fn alone(mut self) -> Self {
        self.alone = true;
        self
    }
    fn core(mut self) -> Self {
        self.core = true;
        self
    }
    fn bwd(mut self, b: Bwd) -> Self {
        self.bwd = b;
        self
    }
}

impl Builder<'_> {
    fn push(&mut self, op: Op, meta: Meta) {
        self.ops.push(op);
        self.meta.push(meta);
    }

    /// A vector op (elementwise, norm, softmax, embedding...). Chain role: `Head` when no chain is
    /// open, `Member` when the previous op was a vector op of the same chain; a member consumes
    /// its predecessor's output on chip, so that output leaves the fused traffic unless kept.
    fn vector(&mut self, names: &'static Names, v: Vector) {
        let chain = if v.alone {
            Chain::Alone
        } else if self.open_chain {
            Chain::Member
        } else {
            Chain::Head
        };
        if chain == Chain::Member {
            if let (Some(prev), Some(pm)) = (self.ops.last_mut(), self.meta.last()) {
                if !pm.keep {
                    prev.fused_written = Bytes((prev.fused_written.0 - pm.output).max(0.0));
                }
            }
        }
        let fused_read = if chain == Chain::Member {
            v.side_in
        } else {
            v.main_in + v.side_in
        };
        let unit = Unit::Vector;
        self.push(
            Op {
                name: names.fwd,
                layer: self.layer,
                phase: Phase::Forward,
                kind: v.kind,
                class: v.class,
                unit,
                dtype: Dtype::Fp32,
                flops: Flops(v.flops),
                model_flops: Flops::ZERO,
                bytes_read: Bytes(v.main_in + v.side_in),
                bytes_written: Bytes(v.output),
                fused_read: Bytes(fused_read),
                fused_written: Bytes(v.output),
                chained_read: Bytes(v.main_in),
                chain,
                saved: Bytes(v.saved),
                attention_core: v.core,
                recompute: false,
            },
            Meta {
                names,
                bwd: v.bwd,
                output: v.output,
                keep: v.keep,
                shape: (0, 0, 0, 0),
            },
        );
        self.open_chain = chain != Chain::Alone;
    }

    /// A linear layer `y[M,N] = x[M,K] · W[K,N]`: FLOPs 2MNK; reads x (M·K·op) and the weight
    /// (K·N·op), writes y (M·N·out). When x arrives in another dtype (`src` bytes per element)
    /// a cast op precedes it (autocast's cast of the input). Saves x for the weight gradient.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        names: &'static Names,
        m: u64,
        n: u64,
        k: u64,
        src: f64,
        bias: bool,
        input_grad: bool,
    ) {
        let nu = self.num;
        let (mf, nf, kf) = (m as f64, n as f64, k as f64);
        if src != nu.op {
            self.vector(
                names.cast.unwrap_or(names),
                Vector::new(
                    OpKind::Elementwise,
                    OpClass::Elementwise,
                    0.0,
                    mf * kf * src,
                    mf * kf * nu.op,
                )
                .bwd(if input_grad { Bwd::Cast } else { Bwd::None }),
            );
        }
        let read = mf * kf * nu.op + kf * nf * nu.op;
        let written = mf * nf * nu.out;
        let flops = 2.0 * mf * nf * kf;
        self.push(
            Op {
                name: names.fwd,
                layer: self.layer,
                phase: Phase::Forward,
                kind: OpKind::Gemm { m, n, k },
                class: OpClass::Gemm,
                unit: nu.gemm_unit,
                dtype: nu.gemm_dtype,
                flops: Flops(flops),
                model_flops: Flops(flops),
                bytes_read: Bytes(read),
                bytes_written: Bytes(written),
                fused_read: Bytes(read),
                fused_written: Bytes(written),
                chained_read: Bytes(mf * kf * nu.op),
                chain: Chain::Alone,
                saved: Bytes(mf * kf * nu.op),
                attention_core: false,
                recompute: false,
            },
            Meta {
                names,
                bwd: Bwd::Linear { input_grad, bias },
                output: written,
                keep: true,
                shape: (1, m, n, k),
            },
        );
        self.open_chain = false;
    }

    /// A batched GEMM of the unfused attention core.
    #[allow(clippy::too_many_arguments)]
    fn batched(
        &mut self,
        names: &'static Names,
        shape: (u64, u64, u64, u64),
        unit: Unit,
        dtype: Dtype,
        read: f64,
        written: f64,
        saved: f64,
        model_scale: f64,
        bwd: Bwd,
    ) {
        let (b, m, n, k) = shape;
        let flops = 2.0 * b as f64 * m as f64 * n as f64 * k as f64;
        self.push(
            Op {
                name: names.fwd,
                layer: self.layer,
                phase: Phase::Forward,
                kind: OpKind::BatchedGemm { batch: b, m, n, k },
                class: OpClass::Attention,
                unit,
                dtype,
                flops: Flops(flops),
                model_flops: Flops(flops * model_scale),
                bytes_read: Bytes(read),
                bytes_written: Bytes(written),
                fused_read: Bytes(read),
                fused_written: Bytes(written),
                chained_read: Bytes(read),
                chain: Chain::Alone,
                saved: Bytes(saved),
                attention_core: true,
                recompute: false,
            },
            Meta {
                names,
                bwd,
                output: written,
                keep: true,
                shape,
            },
        );
        self.open_chain = false;
    }

    /// A norm over `rows` rows of `width` (in `inb`, out `outb` bytes per element); saves its
    /// input and one fp32 statistic per row.
    fn norm(
        &mut self,
        names: &'static Names,
        kind: NormKind,
        rows: f64,
        width: f64,
        inb: f64,
        outb: f64,
    ) {
        let per = if kind == NormKind::Rmsnorm { 4.0 } else { 7.0 };
        let e = rows * width;
        self.vector(
            names,
            Vector::new(
                OpKind::Normalization,
                OpClass::Normalization,
                per * e,
                e * inb,
                e * outb,
            )
            .saved(e * inb + rows * 4.0 * if kind == NormKind::Rmsnorm { 1.0 } else { 2.0 }),
        );
    }
}

/// The sequence-length groups of blocks: `(first, count, seq)`, consecutive blocks with the same
/// sequence. At most two groups (before and after in-context tokens join).
fn block_groups(m: &ModelSpec) -> [(u64, u64, u64); 2] {
    let depth = m.transformer.depth;
    let t = &m.tokens;
    if t.in_context > 0 && t.in_context_from_block > 0 {
        let k = t.in_context_from_block;
        [(0, k, m.seq_at_block(0)), (k, depth - k, m.seq_at_block(k))]
    } else {
        [(0, depth, m.seq_at_block(0)), (depth, 0, 0)]
    }
}

/// Builds every op of one training step on one GPU into `ops` (cleared first; its capacity is
/// reused, so repeated calls allocate nothing once the buffers have grown).
pub fn build_step(m: &ModelSpec, cfg: &StepConfig, ops: &mut Vec<Op>) -> Result<()> {
    let mut meta = Vec::new();
    build_step_with(m, cfg, ops, &mut meta)
}

/// [`build_step`] with a caller-owned metadata buffer (for allocation-free sweeps).
pub(crate) fn build_step_with(
    m: &ModelSpec,
    cfg: &StepConfig,
    ops: &mut Vec<Op>,
    meta: &mut Vec<Meta>,
) -> Result<()> {
    if cfg.batch == 0 {
        return Err(Error::Invalid("batch must be a positive integer".into()));
    }
    ops.clear();
    meta.clear();
    let num = Numerics::of(cfg.precision);
    let mut b = Builder {
        ops,
        meta,
        layer: Layer::Embed,
        num,
        open_chain: false,
        batch: cfg.batch,
    };

    embed_forward(&mut b, m, cfg);
    let embed_end = b.ops.len();
    let groups = block_groups(m);
    let mut group_ranges = [(0usize, 0usize); 2];
    for (gi, &(first, count, seq)) in groups.iter().enumerate() {
        if count == 0 {
            continue;
        }
        b.layer = Layer::Blocks {
            first: first as u32,
            count: count as u32,
        };
        b.open_chain = false;
        let start = b.ops.len();
        block_forward(&mut b, m, cfg, seq);
        group_ranges[gi] = (start, b.ops.len());
    }
    b.layer = Layer::Head;
    b.open_chain = false;
    let head_start = b.ops.len();
    head_forward(&mut b, m, cfg);
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

    optimizer(&mut b, m, cfg);
    Ok(())
}

fn embed_forward(b: &mut Builder, m: &ModelSpec, _cfg: &StepConfig) {
    let nu = b.num;
    let batch = b.batch as f64;
    let d = m.transformer.width as f64;
    if nu.weight_copy {
        let pg = embed_gemm_weights(m) as f64;
        b.vector(
            n!("embed.weights_cast"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                0.0,
                pg * 4.0,
                pg * nu.op,
            )
            .alone()
            .bwd(Bwd::Cast),
        );
    }
    match m.kind {
        ModelKind::Vision => {
            let inp = m.input.as_ref().expect("validated");
            let rows = b.batch * m.patch_tokens();
            let pin = inp.channels * inp.patch * inp.patch;
            match m.embedding.patch_embed {
                Some(PatchEmbed::Bottleneck) => {
                    let bn = m.embedding.bottleneck;
                    b.linear(n!("patch.conv"), rows, bn, pin, 4.0, false, false);
                    b.linear(
                        n!("patch.proj"),
                        rows,
                        m.transformer.width,
                        bn,
                        nu.out,
                        true,
                        true,
                    );
                }
                _ => b.linear(
                    n!("patch.conv"),
                    rows,
                    m.transformer.width,
                    pin,
                    4.0,
                    true,
                    false,
                ),
            }
            let e = rows as f64 * d;
            if m.embedding.position != PositionEmbed::None {
                let table = m.patch_tokens() as f64 * d * 4.0;
                b.vector(
                    n!("pos.add"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Elementwise,
                        e,
                        e * nu.out,
                        e * nu.res,
                    )
                    .side(table)
                    .bwd(Bwd::Cast),
                );
            }
            conditioning_forward(b, m, batch, d);
        }
        ModelKind::Language => {
            let rows = b.batch * m.tokens.text;
            let e = rows as f64 * d;
            let v = m.embedding.vocab as f64;
            b.vector(
                n!("tok_embed.lookup"),
                Vector::new(
                    OpKind::Embedding,
                    OpClass::Elementwise,
                    0.0,
                    e * 4.0,
                    e * 4.0,
                )
                .side(rows as f64 * 8.0)
                .bwd(Bwd::Explicit {
                    read: e * 4.0 + rows as f64 * 8.0,
                    written: v * d * 4.0,
                    flops: e,
                }),
            );
            if m.embedding.position == PositionEmbed::Learned {
                let s = m.tokens.text as f64;
                b.vector(
                    n!("pos_embed.add"),
                    Vector::new(OpKind::Embedding, OpClass::Elementwise, e, e * 4.0, e * 4.0)
                        .side(s * d * 4.0)
                        .bwd(Bwd::Explicit {
                            read: e * 4.0,
                            written: s * d * 4.0,
                            flops: e,
                        }),
                );
            }
        }
    }
    if m.tokens.in_context > 0 {
        let ic = m.tokens.in_context as f64 * batch;
        let before = batch * m.seq_at_block(0) as f64 * d;
        let after = before + ic * d;
        b.vector(
            n!("in_context.concat"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                ic * d,
                before * nu.res,
                after * nu.res,
            )
            .side(ic * d * 4.0 * 2.0)
            .alone(),
        );
    }
}

/// GEMM weights of the embedding layers (those that get an autocast copy).
fn embed_gemm_weights(m: &ModelSpec) -> u64 {
    let d = m.transformer.width;
    let e = &m.embedding;
    let mut w = 0;
    if let Some(inp) = &m.input {
        let pin = inp.channels * inp.patch * inp.patch;
        w += match e.patch_embed {
            Some(PatchEmbed::Bottleneck) => pin * e.bottleneck + e.bottleneck * d,
            _ => pin * d,
        };
    }
    if e.timestep_frequencies > 0 {
        w += e.timestep_frequencies * d + d * d;
    }
    w
}

fn conditioning_forward(b: &mut Builder, m: &ModelSpec, batch: f64, d: f64) {
    let nu = b.num;
    let e = &m.embedding;
    if e.timestep_frequencies > 0 {
        let f = e.timestep_frequencies;
        b.vector(
            n!("t_embed.freq"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                4.0 * batch * f as f64,
                batch * 4.0,
                batch * f as f64 * 4.0,
            )
            .bwd(Bwd::None),
        );
        b.linear(
            n!("t_embed.fc1"),
            b.batch,
            m.transformer.width,
            f,
            4.0,
            true,
            false,
        );
        let x = batch * d;
        b.vector(
            n!("t_embed.silu"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                4.0 * x,
                x * nu.out,
                x * nu.out,
            )
            .saved(x * nu.out),
        );
        b.linear(
            n!("t_embed.fc2"),
            b.batch,
            m.transformer.width,
            m.transformer.width,
            nu.out,
            true,
            true,
        );
    }
    if e.classes > 0 {
        let x = batch * d;
        b.vector(
            n!("y_embed.lookup"),
            Vector::new(
                OpKind::Embedding,
                OpClass::Elementwise,
                0.0,
                x * 4.0,
                x * 4.0,
            )
            .side(batch * 8.0)
            .bwd(Bwd::Explicit {
                read: x * 4.0 + batch * 8.0,
                written: e.classes as f64 * d * 4.0,
                flops: x,
            }),
        );
        b.vector(
            n!("cond.add"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                x,
                x * 4.0,
                x * 4.0,
            )
            .side(x * nu.out)
            .bwd(Bwd::Explicit {
                read: x * 4.0,
                written: x * (4.0 + nu.out),
                flops: x,
            }),
        );
    }
}

fn block_forward(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig, seq: u64) {
    let nu = b.num;
    let t = &m.transformer;
    let batch = b.batch;
    let rows = batch * seq;
    let (bf, tf, d, dh, h) = (
        batch as f64,
        rows as f64,
        t.width as f64,
        m.head_dim() as f64,
        t.heads as f64,
    );
    let e = tf * d;
    let adaln = t.conditioning == Conditioning::AdalnZero;
    let up_out = match t.mlp {
        MlpKind::Swiglu => 2 * t.mlp_hidden,
        MlpKind::Gelu => t.mlp_hidden,
    };

    if nu.weight_copy {
        let pg = (3 * t.width * t.width
            + t.width * t.width
            + up_out * t.width
            + t.mlp_hidden * t.width
            + if adaln { 6 * t.width * t.width } else { 0 }) as f64;
        b.vector(
            n!("weights.cast"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                0.0,
                pg * 4.0,
                pg * nu.op,
            )
            .alone()
            .bwd(Bwd::Cast),
        );
    }
    if adaln {
        let x = bf * d;
        b.vector(
            n!("adaln.silu"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                4.0 * x,
                x * 4.0,
                x * 4.0,
            )
            .saved(x * 4.0),
        );
        b.linear(
            n!("adaln.linear"),
            batch,
            6 * t.width,
            t.width,
            4.0,
            true,
            true,
        );
    }
    let modulation = 2.0 * bf * d * nu.out;

    // Attention branch.
    b.norm(n!("attn.norm"), t.norm, tf, d, nu.res, nu.res);
    if adaln {
        b.vector(
            n!("attn.modulate"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                2.0 * e,
                e * nu.res,
                e * nu.res,
            )
            .side(modulation)
            .saved(e * nu.res),
        );
    }
    b.linear(
        n!("attn.qkv"),
        rows,
        3 * t.width,
        t.width,
        nu.res,
        t.qkv_bias,
        true,
    );
    if t.qk_norm {
        b.norm(
            n!("attn.qk_norm"),
            NormKind::Rmsnorm,
            2.0 * tf * h,
            dh,
            nu.out,
            nu.out,
        );
    }
    if t.rope != RopeKind::None {
        b.vector(
            n!("attn.rope"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                3.0 * 2.0 * e,
                2.0 * e * nu.out,
                2.0 * e * nu.out,
            )
            .side(2.0 * seq as f64 * dh * 4.0),
        );
    }
    attention_core(b, m, cfg, batch, seq);
    b.linear(
        n!("attn.proj"),
        rows,
        t.width,
        t.width,
        nu.out,
        t.out_bias,
        true,
    );
    if t.dropout > 0.0 {
        dropout(
            b,
            n!("attn.dropout_out"),
            e,
            nu.out,
            OpClass::Elementwise,
            false,
        );
    }
    let gate = if adaln { bf * d * nu.out } else { 0.0 };
    residual(b, n!("attn.residual"), e, gate, adaln);

    // MLP branch.
    b.norm(n!("mlp.norm"), t.norm, tf, d, nu.res, nu.res);
    if adaln {
        b.vector(
            n!("mlp.modulate"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                2.0 * e,
                e * nu.res,
                e * nu.res,
            )
            .side(modulation)
            .saved(e * nu.res),
        );
    }
    b.linear(
        n!("mlp.fc1"),
        rows,
        up_out,
        t.width,
        nu.res,
        t.mlp_bias,
        true,
    );
    let hid = tf * t.mlp_hidden as f64;
    match t.mlp {
        MlpKind::Swiglu => b.vector(
            n!("mlp.swiglu"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                5.0 * hid,
                2.0 * hid * nu.out,
                hid * nu.out,
            )
            .saved(2.0 * hid * nu.out),
        ),
        MlpKind::Gelu => b.vector(
            n!("mlp.gelu"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                8.0 * hid,
                hid * nu.out,
                hid * nu.out,
            )
            .saved(hid * nu.out),
        ),
    }
    b.linear(
        n!("mlp.fc2"),
        rows,
        t.width,
        t.mlp_hidden,
        nu.out,
        t.mlp_bias,
        true,
    );
    if t.dropout > 0.0 {
        dropout(
            b,
            n!("mlp.dropout_out"),
            e,
            nu.out,
            OpClass::Elementwise,
            false,
        );
    }
    residual(b, n!("mlp.residual"), e, gate, adaln);
}

/// `x = x + gate · y` (or `x + y` without adaLN): reads x (E·res) and y (E·out), writes x.
/// Backward: the residual gradient passes through; only `dy = gate · dx` (and d gate) is computed:
/// reads dx (E·res) and y, writes dy (E·out).
fn residual(b: &mut Builder, names: &'static Names, e: f64, gate: f64, gated: bool) {
    let nu = b.num;
    let (flops, saved, bwd) = if gated {
        (
            2.0 * e,
            e * nu.out + gate,
            Bwd::Explicit {
                read: e * nu.res + e * nu.out + gate,
                written: e * nu.out + gate,
                flops: 3.0 * e,
            },
        )
    } else {
        (
            e,
            0.0,
            Bwd::Explicit {
                read: e * nu.res,
                written: e * nu.out,
                flops: 0.0,
            },
        )
    };
    b.vector(
        names,
        Vector::new(
            OpKind::Elementwise,
            OpClass::Elementwise,
            flops,
            e * nu.res,
            e * nu.res,
        )
        .side(e * nu.out + gate)
        .saved(saved)
        .keep()
        .bwd(bwd),
    );
}

fn attention_core(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig, batch: u64, seq: u64) {
    let nu = b.num;
    let t = &m.transformer;
    let (bf, sf, dh) = (batch as f64, seq as f64, m.head_dim());
    let bh = batch * t.heads;
    let e = bf * sf * t.width as f64;
    let sc = bh as f64 * sf * sf;
    let causal_scale = if t.causal { 0.5 } else { 1.0 };
    match cfg.attention {
        AttentionImpl::Naive => {
            let o = nu.out;
            if o != 4.0 {
                b.vector(
                    n!("attn.qk_upcast"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Attention,
                        0.0,
                        2.0 * e * o,
                        2.0 * e * 4.0,
                    )
                    .core()
                    .bwd(Bwd::Cast),
                );
            }
            let (unit, dtype) = if cfg.precision == Precision::Tf32 {
                (Unit::Tensor, Dtype::Tf32)
            } else {
                (Unit::Vector, Dtype::Fp32)
            };
            b.batched(
                n!("attn.scores"),
                (bh, seq, seq, dh),
                unit,
                dtype,
                2.0 * e * 4.0,
                sc * 4.0,
                2.0 * e * 4.0,
                causal_scale,
                Bwd::Scores,
            );
            b.vector(
                n!("attn.scale"),
                Vector::new(
                    OpKind::Elementwise,
                    OpClass::Attention,
                    sc,
                    sc * 4.0,
                    sc * 4.0,
                )
                .core(),
            );
            if t.causal {
                b.vector(
                    n!("attn.mask"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Attention,
                        sc,
                        sc * 4.0,
                        sc * 4.0,
                    )
                    .side(sf * sf)
                    .core(),
                );
            } else {
                let bias = bf * sf * sf * o;
                b.vector(
                    n!("attn.bias_fill"),
                    Vector::new(OpKind::Elementwise, OpClass::Attention, 0.0, 0.0, bias)
                        .keep()
                        .core()
                        .bwd(Bwd::None),
                );
                b.vector(
                    n!("attn.bias_add"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Attention,
                        sc,
                        sc * 4.0,
                        sc * 4.0,
                    )
                    .side(bias)
                    .core()
                    .bwd(Bwd::None),
                );
            }
            b.vector(
                n!("attn.softmax"),
                Vector::new(
                    OpKind::Softmax,
                    OpClass::Attention,
                    5.0 * sc,
                    sc * 4.0,
                    sc * 4.0,
                )
                .saved(sc * 4.0)
                .core(),
            );
            if t.dropout > 0.0 {
                dropout(b, n!("attn.dropout"), sc, 4.0, OpClass::Attention, true);
            }
            if o != 4.0 {
                b.vector(
                    n!("attn.probs_cast"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Attention,
                        0.0,
                        sc * 4.0,
                        sc * o,
                    )
                    .core()
                    .bwd(Bwd::Cast),
                );
            }
            b.batched(
                n!("attn.pv"),
                (bh, seq, dh, seq),
                nu.gemm_unit,
                if nu.gemm_dtype == Dtype::Fp8 {
                    Dtype::Bf16
                } else {
                    nu.gemm_dtype
                },
                sc * o + e * o,
                e * o,
                sc * o + e * o,
                causal_scale,
                Bwd::Pv { p_bytes: o },
            );
            out_transpose(b, e, o);
        }
        AttentionImpl::SdpaMath => {
            let o = nu.out;
            b.vector(
                n!("attn.q_scale"),
                Vector::new(OpKind::Elementwise, OpClass::Attention, e, e * o, e * o).core(),
            );
            let dtype = if nu.gemm_dtype == Dtype::Fp8 {
                Dtype::Bf16
            } else {
                nu.gemm_dtype
            };
            b.batched(
                n!("attn.scores"),
                (bh, seq, seq, dh),
                nu.gemm_unit,
                dtype,
                2.0 * e * o,
                sc * o,
                2.0 * e * o,
                causal_scale,
                Bwd::Scores,
            );
            if t.causal {
                b.vector(
                    n!("attn.mask"),
                    Vector::new(OpKind::Elementwise, OpClass::Attention, sc, sc * o, sc * o)
                        .side(sf * sf)
                        .core(),
                );
            }
            b.vector(
                n!("attn.softmax"),
                Vector::new(
                    OpKind::Softmax,
                    OpClass::Attention,
                    5.0 * sc,
                    sc * o,
                    sc * o,
                )
                .saved(sc * o)
                .core(),
            );
            // With dropout, PV consumes (and keeps) the dropout output instead of the softmax's.
            let p_saved = if t.dropout > 0.0 {
                dropout(b, n!("attn.dropout"), sc, o, OpClass::Attention, true);
                sc * o
            } else {
                0.0
            };
            b.batched(
                n!("attn.pv"),
                (bh, seq, dh, seq),
                nu.gemm_unit,
                dtype,
                sc * o + e * o,
                e * o,
                p_saved + e * o,
                causal_scale,
                Bwd::Pv { p_bytes: o },
            );
            out_transpose(b, e, o);
        }
        AttentionImpl::Flash2 | AttentionImpl::Flash3 => {
            let o = nu.out;
            let lse = bh as f64 * sf * 4.0;
            let flops = 4.0 * bf * sf * sf * t.width as f64 * causal_scale;
            let read = 3.0 * e * o;
            let written = e * o + lse;
            b.push(
                Op {
                    name: "attn.flash",
                    layer: b.layer,
                    phase: Phase::Forward,
                    kind: OpKind::Attention {
                        batch,
                        heads: t.heads,
                        seq,
                        head_dim: dh,
                        causal: t.causal,
                        flash: if cfg.attention == AttentionImpl::Flash3 {
                            3
                        } else {
                            2
                        },
                    },
                    class: OpClass::Attention,
                    unit: Unit::Tensor,
                    dtype: Dtype::Bf16,
                    flops: Flops(flops),
                    model_flops: Flops(flops),
                    bytes_read: Bytes(read),
                    bytes_written: Bytes(written),
                    fused_read: Bytes(read),
                    fused_written: Bytes(written),
                    chained_read: Bytes(read),
                    chain: Chain::Alone,
                    saved: Bytes(4.0 * e * o + lse),
                    attention_core: false,
                    recompute: false,
                },
                Meta {
                    names: n!("attn.flash"),
                    // Backward reads Q, K, V, O, dO, the log-sum-exp and D = rowsum(dO∘O); writes
                    // dQ, dK, dV, D, and the fp32 dQ accumulator (written and read once).
                    bwd: Bwd::Flash {
                        read: 5.0 * e * o + 2.0 * lse + e * 4.0,
                        written: 3.0 * e * o + lse + e * 4.0,
                    },
                    output: written,
                    keep: true,
                    shape: (0, 0, 0, 0),
                },
            );
            b.open_chain = false;
        }
    }
}

/// Dropout over `n` elements of `el` bytes: writes the output and a 1-byte mask, keeps the mask.
/// Backward reads the gradient and the mask, writes the gradient.
fn dropout(b: &mut Builder, names: &'static Names, n: f64, el: f64, class: OpClass, core: bool) {
    let v = Vector::new(OpKind::Elementwise, class, 2.0 * n, n * el, n * (el + 1.0))
        .saved(n)
        .bwd(Bwd::Explicit {
            read: n * (el + 1.0),
            written: n * el,
            flops: n,
        });
    b.vector(names, if core { v.core() } else { v });
}

/// `out.transpose(1, 2).reshape(B, s, d)` after unfused attention: a copy of E elements.
fn out_transpose(b: &mut Builder, e: f64, o: f64) {
    b.vector(
        n!("attn.out_transpose"),
        Vector::new(OpKind::Elementwise, OpClass::Elementwise, 0.0, e * o, e * o).bwd(Bwd::Cast),
    );
}

fn head_forward(b: &mut Builder, m: &ModelSpec, _cfg: &StepConfig) {
    let nu = b.num;
    let t = &m.transformer;
    let batch = b.batch;
    let (bf, d) = (batch as f64, t.width as f64);
    if nu.weight_copy {
        let out = match &m.input {
            Some(inp) => inp.patch * inp.patch * inp.out_channels,
            None => m.embedding.vocab,
        };
        let pg = (t.width * out
            + if t.conditioning == Conditioning::AdalnZero {
                2 * t.width * t.width
            } else {
                0
            }) as f64;
        b.vector(
            n!("head.weights_cast"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                0.0,
                pg * 4.0,
                pg * nu.op,
            )
            .alone()
            .bwd(Bwd::Cast),
        );
    }
    match m.kind {
        ModelKind::Vision => {
            let inp = m.input.as_ref().expect("validated");
            let rows = batch * m.tokens.target;
            let e = rows as f64 * d;
            if t.conditioning == Conditioning::AdalnZero {
                let x = bf * d;
                b.vector(
                    n!("final.adaln.silu"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Elementwise,
                        4.0 * x,
                        x * 4.0,
                        x * 4.0,
                    )
                    .saved(x * 4.0),
                );
                b.linear(
                    n!("final.adaln.linear"),
                    batch,
                    2 * t.width,
                    t.width,
                    4.0,
                    true,
                    true,
                );
            }
            b.norm(n!("final.norm"), t.norm, rows as f64, d, nu.res, nu.res);
            if t.conditioning == Conditioning::AdalnZero {
                b.vector(
                    n!("final.modulate"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Elementwise,
                        2.0 * e,
                        e * nu.res,
                        e * nu.res,
                    )
                    .side(2.0 * bf * d * nu.out)
                    .saved(e * nu.res),
                );
            }
            let out = inp.patch * inp.patch * inp.out_channels;
            b.linear(n!("final.linear"), rows, out, t.width, nu.res, true, true);
            let y = (rows * out) as f64;
            b.vector(
                n!("loss.mse"),
                Vector::new(
                    OpKind::Reduction,
                    OpClass::Elementwise,
                    3.0 * y,
                    y * nu.out,
                    bf * 4.0,
                )
                .side(y * 4.0)
                .saved(y * (nu.out + 4.0))
                .bwd(Bwd::Explicit {
                    read: y * (nu.out + 4.0),
                    written: y * nu.out,
                    flops: 3.0 * y,
                }),
            );
        }
        ModelKind::Language => {
            let rows = batch * m.tokens.text;
            let v = m.embedding.vocab as f64;
            b.norm(n!("final.norm"), t.norm, rows as f64, d, nu.res, nu.res);
            b.linear(
                n!("lm_head"),
                rows,
                m.embedding.vocab,
                t.width,
                nu.res,
                false,
                true,
            );
            let logits = rows as f64 * v;
            // Cross-entropy under autocast runs in fp32: logits upcast, log-softmax kept for
            // backward; backward writes the fp32 gradient and casts it back to the logits' dtype.
            b.vector(
                n!("loss.cross_entropy"),
                Vector::new(
                    OpKind::Softmax,
                    OpClass::Elementwise,
                    5.0 * logits,
                    logits * nu.out,
                    logits * 4.0,
                )
                .saved(logits * 4.0)
                .bwd(Bwd::Explicit {
                    read: logits * 8.0,
                    written: logits * (4.0 + nu.out),
                    flops: 3.0 * logits,
                }),
            );
        }
    }
}

fn optimizer(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig) {
    let p = param_count(m).total as f64;
    // bf16-pure also writes the bf16 working copy of each parameter (2 B).
    let extra = if cfg.precision == Precision::Bf16Pure {
        2.0
    } else {
        0.0
    };
    b.layer = Layer::Model;
    // AdamW with fp32 states: reads parameter, gradient, m, v (16 B), writes parameter, m, v (12 B).
    let adam = Op {
        name: "optimizer.adamw",
        layer: Layer::Model,
        phase: Phase::Optimizer,
        kind: OpKind::Optimizer,
        class: OpClass::Optimizer,
        unit: Unit::Vector,
        dtype: Dtype::Fp32,
        flops: Flops(14.0 * p),
        model_flops: Flops::ZERO,
        bytes_read: Bytes(16.0 * p),
        bytes_written: Bytes((12.0 + extra) * p),
        fused_read: Bytes(16.0 * p),
        fused_written: Bytes((12.0 + extra) * p),
        chained_read: Bytes::ZERO,
        chain: Chain::Alone,
        saved: Bytes::ZERO,
        attention_core: false,
        recompute: false,
    };
    let meta = Meta {
        names: n!("optimizer.adamw"),
        bwd: Bwd::None,
        output: 0.0,
        keep: true,
        shape: (0, 0, 0, 0),
    };
    b.push(adam, meta);
    for _ in 0..cfg.ema {
        // EMA: ema = decay * ema + (1 - decay) * param: reads ema and param (8 B), writes ema (4 B).
        let ema = Op {
            name: "optimizer.ema",
            flops: Flops(3.0 * p),
            bytes_read: Bytes(8.0 * p),
            bytes_written: Bytes(4.0 * p),
            fused_read: Bytes(8.0 * p),
            fused_written: Bytes(4.0 * p),
            ..adam
        };
        b.push(
            ema,
            Meta {
                names: n!("optimizer.ema"),
                ..meta
            },
        );
    }
}

/// Re-emits forward ops of a block group as backward-phase recomputation: all of them for full
/// checkpointing, the unfused attention core for selective.
fn emit_recompute(b: &mut Builder, start: usize, end: usize, mode: Checkpointing) {
    if mode == Checkpointing::None {
        return;
    }
    for i in start..end {
        let op = b.ops[i];
        let meta = b.meta[i];
        let wanted = match mode {
            Checkpointing::Full => op.name != "weights.cast",
            Checkpointing::Selective => op.attention_core,
            Checkpointing::None => false,
        };
        if wanted {
            let re = Op {
                name: meta.names.recompute,
                phase: Phase::Backward,
                model_flops: Flops::ZERO,
                saved: Bytes::ZERO,
                recompute: true,
                ..op
            };
            b.push(
                re,
                Meta {
                    bwd: Bwd::None,
                    ..meta
                },
            );
        }
    }
}

/// Appends the backward ops of forward ops `start..end`, in reverse order.
fn emit_backward(b: &mut Builder, start: usize, end: usize) {
    let nu = b.num;
    for i in (start..end).rev() {
        let op = b.ops[i];
        let meta = b.meta[i];
        if op.phase != Phase::Forward {
            continue;
        }
        // Chain role mirrored: the last op of a forward chain starts the backward chain.
        let next_is_member = i + 1 < end && b.ops[i + 1].chain == Chain::Member;
        let chain = match op.chain {
            Chain::Alone => Chain::Alone,
            _ if next_is_member => Chain::Member,
            _ => Chain::Head,
        };
        let base = Op {
            phase: Phase::Backward,
            saved: Bytes::ZERO,
            recompute: false,
            chain,
            chained_read: Bytes::ZERO,
            ..op
        };
        let bwd_meta = Meta {
            bwd: Bwd::None,
            ..meta
        };
        match meta.bwd {
            Bwd::None => {}
            Bwd::Generic => {
                let read = op.bytes_read + op.bytes_written;
                let fused_read = op.fused_read + op.fused_written;
                b.push(
                    Op {
                        name: meta.names.bwd,
                        flops: op.flops * 2.0,
                        model_flops: Flops::ZERO,
                        bytes_read: read,
                        bytes_written: op.bytes_read,
                        fused_read,
                        fused_written: op.fused_read,
                        chained_read: op.bytes_written,
                        ..base
                    },
                    bwd_meta,
                );
            }
            Bwd::Cast => b.push(
                Op {
                    name: meta.names.bwd,
                    bytes_read: op.bytes_written,
                    bytes_written: op.bytes_read,
                    fused_read: op.fused_written,
                    fused_written: op.fused_read,
                    chained_read: op.bytes_written,
                    ..base
                },
                bwd_meta,
            ),
            Bwd::Explicit {
                read,
                written,
                flops,
            } => b.push(
                Op {
                    name: meta.names.bwd,
                    flops: Flops(flops),
                    model_flops: Flops::ZERO,
                    bytes_read: Bytes(read),
                    bytes_written: Bytes(written),
                    fused_read: Bytes(read),
                    fused_written: Bytes(written),
                    ..base
                },
                bwd_meta,
            ),
            Bwd::Linear { input_grad, bias } => {
                let (_, m, n, k) = meta.shape;
                let (mf, nf, kf) = (m as f64, n as f64, k as f64);
                let flops = Flops(2.0 * mf * nf * kf);
                let gemm = |name, kind, read: f64, written: f64| Op {
                    name,
                    kind,
                    flops,
                    model_flops: flops,
                    bytes_read: Bytes(read),
                    bytes_written: Bytes(written),
                    fused_read: Bytes(read),
                    fused_written: Bytes(written),
                    chain: Chain::Alone,
                    ..base
                };
                if input_grad {
                    // dX[M,K] = dY[M,N] · Wᵀ[N,K]
                    let op = gemm(
                        meta.names.dgrad,
                        OpKind::Gemm { m, n: k, k: n },
                        mf * nf * nu.out + nf * kf * nu.op,
                        mf * kf * nu.out,
                    );
                    b.push(op, bwd_meta);
                }
                // dW[K,N] = Xᵀ[K,M] · dY[M,N]
                let op = gemm(
                    meta.names.wgrad,
                    OpKind::Gemm { m: k, n, k: m },
                    mf * kf * nu.op + mf * nf * nu.out,
                    kf * nf * nu.out,
                );
                b.push(op, bwd_meta);
                if bias {
                    // d bias[N] = sum over M rows of dY: reads dY, writes N fp32.
                    let r = Op {
                        name: meta.names.bias_grad,
                        kind: OpKind::Reduction,
                        class: OpClass::Elementwise,
                        unit: Unit::Vector,
                        dtype: Dtype::Fp32,
                        flops: Flops(mf * nf),
                        model_flops: Flops::ZERO,
                        bytes_read: Bytes(mf * nf * nu.out),
                        bytes_written: Bytes(nf * 4.0),
                        fused_read: Bytes(mf * nf * nu.out),
                        fused_written: Bytes(nf * 4.0),
                        chain: Chain::Alone,
                        ..base
                    };
                    b.push(r, bwd_meta);
                }
            }
            Bwd::Scores => {
                let (bh, s, _, dh) = meta.shape;
                let el = if op.dtype == Dtype::Fp32 || op.dtype == Dtype::Tf32 {
                    4.0
                } else {
                    nu.out
                };
                let sc = bh as f64 * s as f64 * s as f64;
                let qk = bh as f64 * s as f64 * dh as f64;
                let half = op.flops;
                let g = |name| Op {
                    name,
                    kind: OpKind::BatchedGemm {
                        batch: bh,
                        m: s,
                        n: dh,
                        k: s,
                    },
                    flops: half,
                    model_flops: op.model_flops,
                    bytes_read: Bytes(sc * el + qk * el),
                    bytes_written: Bytes(qk * el),
                    fused_read: Bytes(sc * el + qk * el),
                    fused_written: Bytes(qk * el),
                    chain: Chain::Alone,
                    ..base
                };
                b.push(g("attn.scores.dgrad_q"), bwd_meta);
                b.push(g("attn.scores.dgrad_k"), bwd_meta);
            }
            Bwd::Pv { p_bytes } => {
                let (bh, s, dh, _) = meta.shape;
                let sc = bh as f64 * s as f64 * s as f64;
                let e = bh as f64 * s as f64 * dh as f64;
                let o = nu.out;
                b.push(
                    Op {
                        name: "attn.pv.dgrad_p",
                        kind: OpKind::BatchedGemm {
                            batch: bh,
                            m: s,
                            n: s,
                            k: dh,
                        },
                        bytes_read: Bytes(2.0 * e * o),
                        bytes_written: Bytes(sc * p_bytes),
                        fused_read: Bytes(2.0 * e * o),
                        fused_written: Bytes(sc * p_bytes),
                        chain: Chain::Alone,
                        ..base
                    },
                    bwd_meta,
                );
                b.push(
                    Op {
                        name: "attn.pv.dgrad_v",
                        kind: OpKind::BatchedGemm {
                            batch: bh,
                            m: s,
                            n: dh,
                            k: s,
                        },
                        bytes_read: Bytes(sc * p_bytes + e * o),
                        bytes_written: Bytes(e * o),
                        fused_read: Bytes(sc * p_bytes + e * o),
                        fused_written: Bytes(e * o),
                        chain: Chain::Alone,
                        ..base
                    },
                    bwd_meta,
                );
            }
            Bwd::Flash { read, written } => b.push(
                Op {
                    name: "attn.flash.bwd",
                    flops: op.flops * 2.5,
                    model_flops: op.model_flops * 2.0,
                    bytes_read: Bytes(read),
                    bytes_written: Bytes(written),
                    fused_read: Bytes(read),
                    fused_written: Bytes(written),
                    ..base
                },
                bwd_meta,
            ),
        }
    }
}
