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
    AttentionImpl, Chain, Checkpointing, Dtype, Layer, Op, OpClass, OpKind, Phase, Precision, Role,
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
    /// Single-kernel vector op (activation, softmax, mask): one backward kernel that reads its
    /// saved inputs and the output gradient and writes the input gradients:
    /// read = fwd read + fwd written, written = fwd read, FLOPs = 2 x forward.
    Generic,
    /// A dtype cast: the gradient is cast back: read = fwd written, written = fwd read.
    Cast,
    /// Explicit eager backward traffic and FLOPs in `kernels` kernels. Fused (compiled), the
    /// generic rule on the forward's fused traffic when `fuses` (the compiler fuses the backward
    /// chain too), else the same traffic.
    Explicit {
        read: f64,
        written: f64,
        flops: f64,
        kernels: u8,
        fuses: bool,
    },
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
    /// Bytes per element of the parameters as forward reads them (norm weights, tables).
    param: f64,
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
                param: 4.0,
            },
            Precision::Bf16Pure => Numerics {
                gemm_dtype: Dtype::Bf16,
                gemm_unit: Unit::Tensor,
                op: 2.0,
                out: 2.0,
                res: 2.0,
                weight_copy: false,
                param: 2.0,
            },
            Precision::Fp8 => Numerics {
                gemm_dtype: Dtype::Fp8,
                gemm_unit: Unit::Tensor,
                op: 1.0,
                out: 2.0,
                res: 4.0,
                weight_copy: true,
                param: 4.0,
            },
            Precision::Tf32 => Numerics {
                gemm_dtype: Dtype::Tf32,
                gemm_unit: Unit::Tensor,
                op: 4.0,
                out: 4.0,
                res: 4.0,
                weight_copy: false,
                param: 4.0,
            },
            Precision::Fp32 => Numerics {
                gemm_dtype: Dtype::Fp32,
                gemm_unit: Unit::Vector,
                op: 4.0,
                out: 4.0,
                res: 4.0,
                weight_copy: false,
                param: 4.0,
            },
        }
    }
}

/// Forward-op bookkeeping kept beside each op while building.
#[derive(Debug, Clone, Copy)]
struct Meta {
    pub names: &'static Names,
    pub bwd: Bwd,
    /// Bytes of the op's main output (dropped from fused traffic when a chain member follows).
    output: f64,
    /// The output is needed outside the chain (e.g. the new residual stream).
    keep: bool,
    /// GEMM shape for [`Bwd::Linear`], [`Bwd::Scores`], [`Bwd::Pv`].
    shape: (u64, u64, u64, u64),
}

/// A forward op that runs as one library kernel (GEMM, fused attention, optimizer): never fused
/// with its neighbours, so its fused traffic equals its traffic, and it keeps nothing for
/// backward unless the caller says so.
#[allow(clippy::too_many_arguments)]
fn library_op(
    name: &'static str,
    layer: Layer,
    phase: Phase,
    kind: OpKind,
    class: OpClass,
    unit: Unit,
    dtype: Dtype,
    flops: f64,
    read: f64,
    written: f64,
) -> Op {
    Op {
        name,
        layer,
        phase,
        kind,
        class,
        unit,
        dtype,
        flops: Flops(flops),
        model_flops: Flops(flops),
        bytes_read: Bytes(read),
        bytes_written: Bytes(written),
        fused_read: Bytes(read),
        fused_written: Bytes(written),
        chained_read: Bytes::ZERO,
        kernels: 1,
        chain: Chain::Alone,
        saved: Bytes::ZERO,
        attention_core: false,
        recompute: false,
        weight_sized: false,
        role: Role::Plain,
    }
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
    /// Eager (unfused) implementation as several kernels: (kernels, bytes read, bytes written).
    composite: Option<(u8, f64, f64)>,
    /// Sized by the parameters (see [`Op::weight_sized`]).
    weight_sized: bool,
}

impl Vector {
    /// An op with no forward kernel (a view, a reuse of a tensor) whose backward is one or more
    /// kernels of its own: `kernels` kernels reading `read` and writing `written` bytes, never
    /// fused with neighbours.
    fn backward_only(kernels: u8, read: f64, written: f64, flops: f64) -> Self {
        Vector::new(OpKind::Elementwise, OpClass::Elementwise, 0.0, 0.0, 0.0)
            .alone()
            .composite(0, 0.0, 0.0)
            .bwd(Bwd::Explicit {
                fuses: false,
                read,
                written,
                flops,
                kernels,
            })
    }

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
            composite: None,
            weight_sized: false,
        }
    }
    /// The op (and its backward) is sized by the parameters, not the batch.
    fn weights(mut self) -> Self {
        self.weight_sized = true;
        self
    }
    /// In eager mode the op runs as `kernels` kernels moving `read` and `written` bytes in all
    /// (a composite of framework ops); fused, it moves only its inputs and outputs.
    fn composite(mut self, kernels: u8, read: f64, written: f64) -> Self {
        self.composite = Some((kernels, read, written));
        self
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

    /// Gives the last op pushed its [`Role`].
    fn mark(&mut self, role: Role) {
        if let Some(op) = self.ops.last_mut() {
            op.role = role;
        }
    }

    /// The ops pushed since index `first` run once per input on `times` inputs (e.g. the
    /// condition image and the target image embedded one after the other): same FLOPs and bytes
    /// in all, `times` launches each (their backward ops inherit the count).
    fn repeat_launches(&mut self, first: usize, times: u8) {
        for op in &mut self.ops[first..] {
            op.kernels = op.kernels.saturating_mul(times);
        }
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
                bytes_read: Bytes(v.composite.map_or(v.main_in + v.side_in, |c| c.1)),
                bytes_written: Bytes(v.composite.map_or(v.output, |c| c.2)),
                fused_read: Bytes(fused_read),
                fused_written: Bytes(v.output),
                chained_read: Bytes(v.main_in),
                chain,
                kernels: v.composite.map_or(1, |c| c.0),
                saved: Bytes(v.saved),
                attention_core: v.core,
                recompute: false,
                weight_sized: v.weight_sized,
                role: Role::Plain,
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
                chained_read: Bytes(mf * kf * nu.op),
                saved: Bytes(mf * kf * nu.op),
                ..library_op(
                    names.fwd,
                    self.layer,
                    Phase::Forward,
                    OpKind::Gemm { m, n, k },
                    OpClass::Gemm,
                    nu.gemm_unit,
                    nu.gemm_dtype,
                    flops,
                    read,
                    written,
                )
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
                model_flops: Flops(flops * model_scale),
                chained_read: Bytes(read),
                saved: Bytes(saved),
                attention_core: true,
                ..library_op(
                    names.fwd,
                    self.layer,
                    Phase::Forward,
                    OpKind::BatchedGemm { batch: b, m, n, k },
                    OpClass::Attention,
                    unit,
                    dtype,
                    flops,
                    read,
                    written,
                )
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

    /// A norm over `rows` rows of `width` (split into `tensors` separately normalized tensors,
    /// e.g. q and k), input `inb` bytes per element; returns the output's bytes per element. LayerNorm is one native kernel that keeps its input and two fp32
    /// statistics per row; under autocast it runs (and outputs) in fp32. RMSNorm, which eager
    /// PyTorch runs as a composite as written in JiT's and Llama's reference code
    /// (`x.float()`, `pow`, `mean`, `+ eps`, `rsqrt`, `mul`, `type_as`, `* weight`), keeps the fp32
    /// input, the normalized tensor and one fp32 statistic per row; its output takes the
    /// weight's dtype when that is wider (fp32 under autocast).
    fn norm(
        &mut self,
        names: &'static Names,
        kind: NormKind,
        rows: f64,
        width: f64,
        inb: f64,
        tensors: u8,
    ) -> f64 {
        let e = rows * width;
        let p = self.num.param;
        match kind {
            NormKind::Rmsnorm => {
                let outb = inb.max(p);
                let cast = inb != 4.0;
                let casts = if cast { 2 } else { 0 };
                let cast_bytes = if cast { e * (inb + 4.0) } else { 0.0 };
                let read = 3.0 * e * 4.0 + 3.0 * rows * 4.0 + e * inb + width * p + cast_bytes;
                let written = 2.0 * e * 4.0 + 3.0 * rows * 4.0 + e * outb + cast_bytes;
                // Eager backward, as autograd runs the composite (per tensor, gradient g of the
                // output in `outb` bytes, fp32 statistics): the weight gradient (mul g·n, sum
                // over rows), g·weight, then through rsqrt/mean/pow: mul by x and sum over the
                // row, three kernels on the row statistics, the mean's broadcast (div), pow's
                // derivative (pow, mul, mul) and the add of x's two gradient paths: 14 kernels.
                // Reading 14 tensors of E elements and writing 9 (fp32, but g and n at their
                // own widths). Casts: the gradient of n to n's dtype when the weight widened
                // the output, and, for an input that is not fp32, the backward of type_as and of
                // x.float().
                let w = width * f64::from(tensors);
                let widened = outb != inb;
                let bwd_read = e * (3.0 * outb + inb)
                    + w * p
                    + 10.0 * e * 4.0
                    + 7.0 * rows * 4.0
                    + if widened { e * outb } else { 0.0 }
                    + if cast { e * (inb + 4.0) } else { 0.0 };
                let bwd_written = 2.0 * e * outb
                    + w * p
                    + 7.0 * e * 4.0
                    + 4.0 * rows * 4.0
                    + if widened { e * inb } else { 0.0 }
                    + if cast { e * (inb + 4.0) } else { 0.0 };
                let bwd_kernels = 14 + 2 * u8::from(cast) + u8::from(widened);
                self.vector(
                    names,
                    Vector::new(
                        OpKind::Normalization { composite: true },
                        OpClass::Normalization,
                        4.0 * e,
                        e * inb,
                        e * outb,
                    )
                    .saved(e * 4.0 + e * inb + rows * 4.0)
                    .composite((6 + casts) * tensors, read, written)
                    .bwd(Bwd::Explicit {
                        fuses: true,
                        read: bwd_read,
                        written: bwd_written,
                        flops: 8.0 * e,
                        kernels: bwd_kernels * tensors,
                    }),
                );
                outb
            }
            NormKind::Layernorm | NormKind::LayernormNoAffine => {
                let outb = inb.max(p);
                let affine = f64::from(u8::from(kind == NormKind::Layernorm));
                let passes = 1.0 + affine;
                self.vector(
                    names,
                    Vector::new(
                        OpKind::Normalization { composite: false },
                        OpClass::Normalization,
                        7.0 * e,
                        e * inb,
                        e * outb,
                    )
                    .saved(e * inb + rows * 8.0)
                    // CUDA's LayerNorm backward (PyTorch's layer_norm_kernel.cu): the input
                    // gradient, and with an affine transform the gamma/beta reduction, each
                    // reading x, dy and the row statistics.
                    .bwd(Bwd::Explicit {
                        fuses: true,
                        read: passes * (e * inb + e * outb + rows * 8.0) + affine * width * p,
                        written: e * inb + affine * 2.0 * width * 4.0,
                        flops: 14.0 * e,
                        kernels: passes as u8,
                    }),
                );
                outb
            }
        }
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

/// Builds every op of one training step on one GPU into `ops` (cleared first).
pub fn build_step(m: &ModelSpec, cfg: &StepConfig, ops: &mut Vec<Op>) -> Result<()> {
    let mut meta = Vec::new();
    build_step_with(m, cfg, ops, &mut meta)
}

/// The op list of one training step with the bookkeeping the builder keeps beside each op.
/// Building again reuses both buffers, so repeated builds allocate nothing once they have grown.
#[derive(Debug, Default)]
pub struct StepGraph {
    ops: Vec<Op>,
    meta: Vec<Meta>,
}

impl StepGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the graph for `m` and `cfg`.
    pub fn build(&mut self, m: &ModelSpec, cfg: &StepConfig) -> Result<&[Op]> {
        build_step_with(m, cfg, &mut self.ops, &mut self.meta)?;
        Ok(&self.ops)
    }

    /// The ops of the last build.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

fn build_step_with(
    m: &ModelSpec,
    cfg: &StepConfig,
    ops: &mut Vec<Op>,
    meta: &mut Vec<Meta>,
) -> Result<()> {
    if cfg.batch == 0 {
        return Err(Error::Invalid("batch must be a positive integer".into()));
    }
    if cfg.ema > super::MAX_EMA {
        return Err(Error::Invalid(format!(
            "--ema {} is more than {} EMA copies",
            cfg.ema,
            super::MAX_EMA
        )));
    }
    let fused = matches!(cfg.attention, AttentionImpl::Flash2 | AttentionImpl::Flash3);
    if fused && matches!(cfg.precision, Precision::Fp32 | Precision::Tf32) {
        return Err(Error::Invalid(format!(
            "{} has no fp32 kernels (PyTorch's SDPA falls back to the math backend): use --attention sdpa-math with --precision {}",
            cfg.attention, cfg.precision
        )));
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
        let (tensors, params) = embed_cast_tensors(m);
        weights_cast(b, n!("embed.weights_cast"), params as f64, tensors);
    }
    match m.kind {
        ModelKind::Vision => {
            let inp = m.input.as_ref().expect("validated");
            let rows = b.batch * m.patch_tokens();
            let pin = inp.channels * inp.patch * inp.patch;
            let target_pixels = (b.batch * m.tokens.target * pin) as f64;
            if m.embedding.timestep_frequencies > 0 {
                // Diffusion / flow matching noises the target batch each step,
                // z = t·x + (1 − t)·ε in fp32: mul, rsub (1 − t per sample), mul, add.
                b.vector(
                    n!("noise.mix"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Elementwise,
                        3.0 * target_pixels,
                        2.0 * target_pixels * 4.0,
                        target_pixels * 4.0,
                    )
                    .composite(4, 4.0 * target_pixels * 4.0, 3.0 * target_pixels * 4.0)
                    .alone()
                    .bwd(Bwd::None),
                );
            }
            // The condition image and the noisy target are embedded one after the other (two
            // launches of each embedding op, same FLOPs and bytes) and their tokens concatenated.
            let images = 1 + u8::from(m.tokens.condition > 0);
            let first = b.ops.len();
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
                    // The table is frozen; the gradient passes to the patch embedding, cast to
                    // its dtype when that differs from the residual stream's.
                    .bwd(if nu.out != nu.res {
                        Bwd::Explicit {
                            fuses: false,
                            read: e * nu.res,
                            written: e * nu.out,
                            flops: 0.0,
                            kernels: 1,
                        }
                    } else {
                        Bwd::None
                    }),
                );
            }
            b.repeat_launches(first, images);
            if images > 1 {
                // The patch embedding's (autocast) weights serve both images: backward adds the
                // two gradients of each weight and bias tensor.
                let (tensors, params) = match m.embedding.patch_embed {
                    Some(PatchEmbed::Bottleneck) => {
                        let bn = m.embedding.bottleneck;
                        (3, pin * bn + bn * m.transformer.width + m.transformer.width)
                    }
                    _ => (2, pin * m.transformer.width + m.transformer.width),
                };
                let grads = params as f64 * nu.op;
                b.vector(
                    n!("patch.weights_shared"),
                    Vector::backward_only(tensors, 2.0 * grads, grads, params as f64).weights(),
                );
                b.vector(
                    n!("patch.concat"),
                    Vector::new(
                        OpKind::Elementwise,
                        OpClass::Elementwise,
                        0.0,
                        e * nu.res,
                        e * nu.res,
                    )
                    .alone()
                    .bwd(Bwd::None),
                );
            }
            conditioning_forward(b, m, batch, d);
        }
        ModelKind::Language => {
            let rows = b.batch * m.tokens.text;
            let e = rows as f64 * d;
            let v = m.embedding.vocab as f64;
            let tied = u8::from(m.embedding.tied_head);
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
                .weights()
                // A dense fp32 gradient of the table; a head tied to the table adds its weight
                // gradient to it (one more kernel over the table).
                .bwd(Bwd::Explicit {
                    fuses: false,
                    kernels: 1 + tied,
                    read: e * 4.0 + rows as f64 * 8.0 + f64::from(tied) * 2.0 * v * d * 4.0,
                    written: (1.0 + f64::from(tied)) * v * d * 4.0,
                    flops: e,
                }),
            );
            if m.embedding.position == PositionEmbed::Learned {
                let s = m.tokens.text as f64;
                b.vector(
                    n!("pos_embed.add"),
                    Vector::new(OpKind::Embedding, OpClass::Elementwise, e, e * 4.0, e * 4.0)
                        .side(s * d * 4.0)
                        .weights()
                        .bwd(Bwd::Explicit {
                            fuses: false,
                            kernels: 1,
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
        let before = batch * (m.tokens.condition + m.tokens.target + m.tokens.text) as f64 * d;
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

/// GEMM weight and bias tensors of the embedding layers that autocast casts (one kernel each),
/// and their elements: the patch embedding (a bottleneck's first projection has no bias) and the
/// timestep MLP.
fn embed_cast_tensors(m: &ModelSpec) -> (u8, u64) {
    let d = m.transformer.width;
    let e = &m.embedding;
    let (mut tensors, mut params) = (0, 0);
    if let Some(inp) = &m.input {
        let pin = inp.channels * inp.patch * inp.patch;
        let (t, p) = match e.patch_embed {
            Some(PatchEmbed::Bottleneck) => (3, pin * e.bottleneck + e.bottleneck * d + d),
            _ => (2, pin * d + d),
        };
        tensors += t;
        params += p;
    }
    if e.timestep_frequencies > 0 {
        tensors += 4;
        params += e.timestep_frequencies * d + d + d * d + d;
    }
    (tensors, params)
}

fn conditioning_forward(b: &mut Builder, m: &ModelSpec, batch: f64, d: f64) {
    let nu = b.num;
    let e = &m.embedding;
    if e.timestep_frequencies > 0 {
        let f = e.timestep_frequencies;
        // Sinusoidal features: the frequency table (arange, mul, div, exp), t·freqs, cos, sin and
        // their concatenation: eight small kernels.
        let half = f as f64 / 2.0;
        b.vector(
            n!("t_embed.freq"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                4.0 * batch * f as f64,
                batch * 4.0,
                batch * f as f64 * 4.0,
            )
            .composite(
                8,
                half * 4.0 * 4.0 + batch * 4.0 + 4.0 * batch * half * 4.0,
                half * 4.0 * 4.0 + 5.0 * batch * half * 4.0,
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
            .weights()
            .bwd(Bwd::Explicit {
                fuses: false,
                kernels: 1,
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
            // The gradient passes to both terms; the timestep embedding's copy is cast to its
            // dtype when that is not fp32.
            .bwd(if nu.out != 4.0 {
                Bwd::Explicit {
                    fuses: false,
                    kernels: 1,
                    read: x * 4.0,
                    written: x * nu.out,
                    flops: 0.0,
                }
            } else {
                Bwd::None
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
        let w = t.width;
        // Weights of qkv, proj, fc1, fc2 (+ adaLN), then the biases that the model has: autocast
        // casts each bias too, one kernel per tensor.
        let mut params = 3 * w * w + w * w + up_out * w + t.mlp_hidden * w;
        let mut tensors = 4;
        for (has, n) in [
            (adaln, 6 * w * w),
            (t.qkv_bias, 3 * w),
            (t.out_bias, w),
            (t.mlp_bias, up_out),
            (t.mlp_bias, w),
            (adaln, 6 * w),
        ] {
            if has {
                params += n;
                tensors += 1;
            }
        }
        weights_cast(b, n!("weights.cast"), params as f64, tensors);
    }
    if adaln {
        adaln_modulation(
            b,
            n!("adaln.silu"),
            n!("adaln.linear"),
            n!("adaln.chunk"),
            t.width,
            6,
            true,
        );
    }

    // Attention branch. The residual stream feeds both the norm and the residual add.
    grad_fork(b, n!("attn.fork"), e, nu.res);
    let x = b.norm(n!("attn.norm"), t.norm, tf, d, nu.res, 1);
    b.mark(Role::BlockInput);
    let x = if adaln {
        modulate(b, n!("attn.modulate"), e, bf * d, x)
    } else {
        x
    };
    b.linear(
        n!("attn.qkv"),
        rows,
        3 * t.width,
        t.width,
        x,
        t.qkv_bias,
        true,
    );
    b.mark(Role::AttentionInputs);
    // q, k, v are views of the qkv output: backward stacks dq, dk, dv ([3, B, h, s, dh]) and
    // copies the stack into the qkv output's layout ([B, s, 3, h, dh]): two kernels.
    b.vector(
        n!("attn.qkv_split"),
        Vector::backward_only(2, 6.0 * e * nu.out, 6.0 * e * nu.out, 0.0),
    );
    let mut qk = nu.out;
    if t.qk_norm {
        qk = b.norm(
            n!("attn.qk_norm"),
            NormKind::Rmsnorm,
            2.0 * tf * h,
            dh,
            nu.out,
            2,
        );
    }
    if t.rope != RopeKind::None {
        qk = rope(b, e, seq as f64 * dh, qk);
    }
    attention_core(b, m, cfg, batch, seq, qk);
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
    residual(b, n!("attn.residual"), e, if adaln { bf * d } else { 0.0 });

    // MLP branch.
    grad_fork(b, n!("mlp.fork"), e, nu.res);
    let x = b.norm(n!("mlp.norm"), t.norm, tf, d, nu.res, 1);
    let x = if adaln {
        modulate(b, n!("mlp.modulate"), e, bf * d, x)
    } else {
        x
    };
    b.linear(n!("mlp.fc1"), rows, up_out, t.width, x, t.mlp_bias, true);
    let hid = tf * t.mlp_hidden as f64;
    let o = nu.out;
    match t.mlp {
        // silu(x1) * x2: eager runs silu (reads x1, writes s) and mul (reads s, x2, writes y);
        // backward needs x1, x2 and s.
        MlpKind::Swiglu => b.vector(
            n!("mlp.swiglu"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                5.0 * hid,
                2.0 * hid * o,
                hid * o,
            )
            .saved(3.0 * hid * o)
            .composite(2, 3.0 * hid * o, 2.0 * hid * o)
            // Backward: dx2 = d·s, ds = d·x2, dx1 = silu'(x1)·ds, and the cat of dx1 and dx2
            // that undoes the chunk of the fused w12 output: four kernels.
            .bwd(Bwd::Explicit {
                fuses: true,
                read: 8.0 * hid * o,
                written: 5.0 * hid * o,
                flops: 10.0 * hid,
                kernels: 4,
            }),
        ),
        MlpKind::Gelu => b.vector(
            n!("mlp.gelu"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                8.0 * hid,
                hid * o,
                hid * o,
            )
            .saved(hid * o),
        ),
    }
    b.linear(
        n!("mlp.fc2"),
        rows,
        t.width,
        t.mlp_hidden,
        o,
        t.mlp_bias,
        true,
    );
    if t.dropout > 0.0 {
        dropout(b, n!("mlp.dropout_out"), e, o, OpClass::Elementwise, false);
    }
    residual(b, n!("mlp.residual"), e, if adaln { bf * d } else { 0.0 });
}

/// adaLN's `Linear(d, chunks·d)` on SiLU(c): one row per sample (M = batch), the conditioning
/// vector c in fp32; its SiLU keeps its input for backward.
fn adaln_modulation(
    b: &mut Builder,
    silu: &'static Names,
    linear: &'static Names,
    chunk: &'static Names,
    width: u64,
    chunks: u64,
    accumulates: bool,
) {
    let x = b.batch as f64 * width as f64;
    let acc = f64::from(u8::from(accumulates));
    b.vector(
        silu,
        Vector::new(
            OpKind::Elementwise,
            OpClass::Elementwise,
            4.0 * x,
            x * 4.0,
            x * 4.0,
        )
        .saved(x * 4.0)
        // silu's backward, then (in every block; the final layer's gradient arrives first) the
        // add that accumulates c's gradient over the layers that read c.
        .bwd(Bwd::Explicit {
            fuses: true,
            read: (2.0 + 2.0 * acc) * x * 4.0,
            written: (1.0 + acc) * x * 4.0,
            flops: (4.0 + acc) * x,
            kernels: 1 + u8::from(accumulates),
        }),
    );
    b.linear(linear, b.batch, chunks * width, width, 4.0, true, true);
    // The output is chunked into views (shift, scale, gate...); backward concatenates their
    // gradients: one kernel.
    let out = chunks as f64 * x * b.num.out;
    b.vector(chunk, Vector::backward_only(1, out, out, 0.0));
}

/// Autocast's low-precision copy of `params` GEMM weights and biases made once per forward, one
/// cast kernel per tensor (`kernels`): reads fp32, writes the operand dtype; backward casts the
/// gradients back to fp32.
fn weights_cast(b: &mut Builder, names: &'static Names, params: f64, kernels: u8) {
    let op = b.num.op;
    b.vector(
        names,
        Vector::new(
            OpKind::Elementwise,
            OpClass::Elementwise,
            0.0,
            params * 4.0,
            params * op,
        )
        .composite(kernels, params * 4.0, params * op)
        .alone()
        .weights()
        .bwd(Bwd::Cast),
    );
}

/// A tensor read by two ops: no forward kernel, and a backward kernel that adds the two
/// gradients (autograd's accumulation): reads 2·n, writes n elements of `el` bytes.
fn grad_fork(b: &mut Builder, names: &'static Names, n: f64, el: f64) {
    b.vector(names, Vector::backward_only(1, 2.0 * n * el, n * el, n));
}

/// adaLN modulation `x·(1 + scale) + shift` over E elements of `xb` bytes, with per-sample scale
/// and shift (`cond` elements each, in the GEMM output dtype). Eager runs three kernels
/// (1 + scale, mul, add); backward keeps x. Returns the output's bytes per element.
fn modulate(b: &mut Builder, names: &'static Names, e: f64, cond: f64, xb: f64) -> f64 {
    let o = b.num.out;
    let cast = f64::from(u8::from(xb != o));
    b.vector(
        names,
        Vector::new(
            OpKind::Elementwise,
            OpClass::Elementwise,
            2.0 * e,
            e * xb,
            e * xb,
        )
        .side(2.0 * cond * o)
        .saved(e * xb)
        .composite(3, 2.0 * e * xb + 3.0 * cond * o, 2.0 * e * xb + cond * o)
        // Backward (gradient g in x's dtype): d shift = Σ g (sum over tokens), d scale = Σ g·x
        // (mul, sum), dx = g·(1 + scale) (mul), and the two sums cast to the GEMM output dtype
        // when x's differs: four or six kernels.
        .bwd(Bwd::Explicit {
            fuses: true,
            read: e * 5.0 * xb + cond * o + cast * 2.0 * cond * xb,
            written: e * 2.0 * xb + 2.0 * cond * xb + cast * 2.0 * cond * o,
            flops: 4.0 * e,
            kernels: 4 + 2 * u8::from(xb != o),
        }),
    );
    xb
}

/// 2-D axial / 1-D rotary embedding of q and k (E elements each, `inb` bytes):
/// `t·cos + rotate_half(t)·sin` with fp32 tables (`table` elements each). Eager runs, per tensor,
/// neg and stack (rotate_half), two muls and an add; the fp32 tables promote the result to fp32
/// under autocast. Returns the output's bytes per element.
fn rope(b: &mut Builder, e: f64, table: f64, inb: f64) -> f64 {
    let outb = inb.max(b.num.param);
    let cast = f64::from(u8::from(inb != outb));
    let per_read = e * (3.5 * inb + 2.0 * outb) + 2.0 * table * 4.0;
    let per_written = e * (1.5 * inb + 3.0 * outb);
    b.vector(
        n!("attn.rope"),
        Vector::new(
            OpKind::Elementwise,
            OpClass::Elementwise,
            3.0 * 2.0 * e,
            2.0 * e * inb,
            2.0 * e * outb,
        )
        .side(2.0 * table * 4.0)
        .composite(10, 2.0 * per_read, 2.0 * per_written)
        // Backward per tensor (gradient g in `outb` bytes): g·sin, rotate_half's inverse (neg of
        // half, stack), g·cos, and the add of the two paths: five kernels reading 5.5 and
        // writing 4.5 gradient-sized tensors. An input in another dtype casts each path's
        // gradient to it after its multiply (two more kernels), and neg, stack and add then run
        // in the input's dtype.
        .bwd(Bwd::Explicit {
            fuses: true,
            read: 2.0 * (e * (2.0 + 2.0 * cast) * outb + 3.5 * e * inb + 2.0 * table * 4.0),
            written: 2.0 * (2.0 * e * outb + (2.5 + 2.0 * cast) * e * inb),
            flops: 2.0 * 4.0 * e,
            kernels: 2 * (5 + 2 * cast as u8),
        }),
    );
    outb
}

/// `x = x + gate · y` (or `x + y` without adaLN; `gate` = B·d elements, 0 without): reads x
/// (E·res) and y (E·out), writes x. Eager runs mul and add. Backward: the residual gradient
/// passes through; the add casts it to the dtype of `gate · y` when that differs (reads E·res,
/// writes E·out), then `dy = dx · gate` (a multiply) and `d gate = Σ dx · y` (a multiply and a
/// sum over tokens), all in y's dtype: three or four kernels; without a gate only the cast.
fn residual(b: &mut Builder, names: &'static Names, e: f64, gate: f64) {
    let nu = b.num;
    let (o, r) = (nu.out, nu.res);
    let v = Vector::new(
        OpKind::Elementwise,
        OpClass::Elementwise,
        2.0 * e,
        e * r,
        e * r,
    )
    .side(e * o + gate * o)
    .keep();
    let cast = r != o;
    let (cast_read, cast_written) = if cast { (e * r, e * o) } else { (0.0, 0.0) };
    let v = if gate > 0.0 {
        v.saved(e * o + gate * o)
            .composite(2, e * (2.0 * o + r) + gate * o, e * (o + r))
            .bwd(Bwd::Explicit {
                fuses: true,
                read: cast_read + 4.0 * e * o + gate * o,
                written: cast_written + 2.0 * e * o + gate * o,
                flops: 3.0 * e,
                kernels: 3 + u8::from(cast),
            })
    } else if cast {
        v.bwd(Bwd::Explicit {
            fuses: false,
            kernels: 1,
            read: cast_read,
            written: cast_written,
            flops: 0.0,
        })
    } else {
        v.bwd(Bwd::None)
    };
    b.vector(names, v);
}

/// How an unfused attention implementation stores and computes its s x s matrices.
struct Unfused {
    /// Bytes per score / probability element before PV.
    scores: f64,
    /// Scores GEMM runs on the fp32 vector units (else on the precision's GEMM unit).
    scores_fp32: bool,
    /// PV runs on the fp32 vector units.
    pv_fp32: bool,
    /// q, k, v are upcast to fp32 (PyTorch's math backend).
    upcast_v: bool,
    /// A bias [B,1,s,s] is materialized and added: zeros in the public JiT code, a 0 / -inf
    /// mask for causal models.
    bias: bool,
    /// q is scaled before QKᵀ (else the scores are).
    scale_q: bool,
    /// The probabilities are also returned in the input dtype (PyTorch's math backend returns
    /// them beside the output, a cast nobody reads).
    returns_probs: bool,
    /// q, k and v are copied into contiguous batches before the batched GEMMs (torch.matmul on
    /// [B, h, s, dh] views); Megatron's baddbmm takes the strided views as they are.
    contiguous: bool,
}

/// The attention core: scores, softmax and PV, or one fused kernel. `qk` is the bytes per
/// element of q and k as they arrive (fp32 after RoPE under autocast).
fn attention_core(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig, batch: u64, seq: u64, qk: f64) {
    let nu = b.num;
    let t = &m.transformer;
    let (bf, sf, dh) = (batch as f64, seq as f64, m.head_dim());
    let bh = batch * t.heads;
    let e = bf * sf * t.width as f64;
    let o = nu.out;
    let sc = bh as f64 * sf * sf;
    let causal_scale = if t.causal { 0.5 } else { 1.0 };
    let plan = match cfg.attention {
        AttentionImpl::Naive => Unfused {
            scores: 4.0,
            scores_fp32: true,
            pv_fp32: false,
            upcast_v: false,
            bias: true,
            scale_q: false,
            returns_probs: false,
            contiguous: true,
        },
        AttentionImpl::SdpaMath => Unfused {
            scores: 4.0,
            scores_fp32: true,
            pv_fp32: true,
            upcast_v: true,
            bias: false,
            scale_q: true,
            returns_probs: true,
            contiguous: true,
        },
        AttentionImpl::Unfused => Unfused {
            scores: o,
            scores_fp32: false,
            pv_fp32: false,
            upcast_v: false,
            bias: false,
            scale_q: true,
            returns_probs: false,
            contiguous: false,
        },
        AttentionImpl::Flash2 | AttentionImpl::Flash3 => {
            flash(b, m, cfg, batch, seq, qk);
            return;
        }
    };
    // A dtype cast of `tensors` tensors of `n` elements in all, one kernel each.
    let cast = |b: &mut Builder, names: &'static Names, tensors: u8, n: f64, from: f64, to: f64| {
        if from != to {
            b.vector(
                names,
                Vector::new(
                    OpKind::Elementwise,
                    OpClass::Attention,
                    0.0,
                    n * from,
                    n * to,
                )
                .composite(tensors, n * from, n * to)
                .core()
                .bwd(Bwd::Cast),
            );
        }
    };
    // q, k into the dtype the scores GEMM reads: fp32 for fp32 scores (a no-op when RoPE already
    // made them fp32), else the activation dtype (SDPA's autocast cast).
    let qk_in = if plan.scores_fp32 { 4.0 } else { o };
    if plan.upcast_v {
        // SDPA under autocast casts to bf16 first, then the math backend upcasts q, k, v to fp32.
        cast(b, n!("attn.qk_cast"), 2, 2.0 * e, qk, o);
        cast(b, n!("attn.qkv_upcast"), 3, 3.0 * e, o, 4.0);
    } else {
        cast(b, n!("attn.qk_cast"), 2, 2.0 * e, qk, qk_in);
    }
    let v_bytes = if plan.upcast_v { 4.0 } else { o };
    if plan.contiguous {
        // torch.matmul on [B, h, s, dh] views of the qkv output (and on kᵀ) copies each operand
        // into a contiguous batch first: three copies, whose gradients pass through.
        let copies = e * (2.0 * qk_in + v_bytes);
        b.vector(
            n!("attn.qkv_contiguous"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                0.0,
                2.0 * e * qk_in,
                copies,
            )
            .side(e * v_bytes)
            .composite(3, copies, copies)
            .bwd(Bwd::None),
        );
    }
    if plan.scale_q {
        // PyTorch's math backend scales q and k by √scale each: two multiplies, whose backward
        // multiplies the gradients by the same constant.
        let qk_bytes = 2.0 * e * qk_in;
        b.vector(
            n!("attn.q_scale"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Attention,
                2.0 * e,
                qk_bytes,
                qk_bytes,
            )
            .composite(2, qk_bytes, qk_bytes)
            .core()
            .bwd(Bwd::Explicit {
                fuses: true,
                read: qk_bytes,
                written: qk_bytes,
                flops: 2.0 * e,
                kernels: 2,
            }),
        );
    }
    let (unit, dtype) = if plan.scores_fp32 {
        if cfg.precision == Precision::Tf32 {
            (Unit::Tensor, Dtype::Tf32)
        } else {
            (Unit::Vector, Dtype::Fp32)
        }
    } else {
        (
            nu.gemm_unit,
            if nu.gemm_dtype == Dtype::Fp8 {
                Dtype::Bf16
            } else {
                nu.gemm_dtype
            },
        )
    };
    let s = plan.scores;
    b.batched(
        n!("attn.scores"),
        (bh, seq, seq, dh),
        unit,
        dtype,
        2.0 * e * qk_in,
        sc * s,
        2.0 * e * qk_in,
        causal_scale,
        Bwd::Scores,
    );
    if !plan.scale_q {
        b.vector(
            n!("attn.scale"),
            Vector::new(OpKind::Elementwise, OpClass::Attention, sc, sc * s, sc * s)
                .core()
                .bwd(Bwd::Explicit {
                    fuses: true,
                    read: sc * s,
                    written: sc * s,
                    flops: sc,
                    kernels: 1,
                }),
        );
    }
    let s2 = sf * sf;
    if t.causal && !plan.bias {
        let mask = Vector::new(OpKind::Elementwise, OpClass::Attention, sc, sc * s, sc * s).core();
        let mask = if cfg.attention == AttentionImpl::SdpaMath {
            // The math backend's causal mask: a boolean lower triangle (ones, tril), turned into
            // an additive 0 / -inf [s, s] mask (where, with its two scalars made on the device)
            // and added to the scores; the mask needs no gradient.
            mask.side(s2 * 4.0)
                .composite(6, sc * s + s2 * (2.0 + 4.0), sc * s + s2 * (2.0 + 4.0))
                .bwd(Bwd::None)
        } else {
            // A masked fill of the scores from a stored boolean [s, s] mask; backward fills the
            // gradient the same way.
            mask.side(s2)
        };
        b.vector(n!("attn.mask"), mask);
    }
    if plan.bias {
        // A zero bias [B, 1, s, s]; causal, filled with -inf above the diagonal from a boolean
        // triangle (ones, tril, logical_not, masked_fill).
        let bias = bf * sf * sf * qk_in;
        let (kernels, read, written) = if t.causal {
            (5, 3.0 * s2 + bias, bias + 3.0 * s2 + bias)
        } else {
            (1, 0.0, bias)
        };
        b.vector(
            n!("attn.bias_fill"),
            Vector::new(OpKind::Elementwise, OpClass::Attention, 0.0, 0.0, bias)
                .keep()
                .composite(kernels, read, written)
                .core()
                .bwd(Bwd::None),
        );
        b.vector(
            n!("attn.bias_add"),
            Vector::new(OpKind::Elementwise, OpClass::Attention, sc, sc * s, sc * s)
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
            sc * s,
            sc * s,
        )
        .saved(sc * s)
        .core(),
    );
    if plan.returns_probs && s != o {
        b.vector(
            n!("attn.probs_returned"),
            Vector::new(OpKind::Elementwise, OpClass::Attention, 0.0, sc * s, sc * o)
                .alone()
                .core()
                .bwd(Bwd::None),
        );
    }
    // PV keeps its P operand when P is a new tensor: the dropout output or a cast copy.
    let mut p_saved = 0.0;
    if t.dropout > 0.0 {
        dropout(b, n!("attn.dropout"), sc, s, OpClass::Attention, true);
        p_saved = sc * s;
    }
    let (p_bytes, pv_unit, pv_dtype) = if plan.pv_fp32 {
        (4.0, Unit::Vector, Dtype::Fp32)
    } else {
        (
            o,
            nu.gemm_unit,
            if nu.gemm_dtype == Dtype::Fp8 {
                Dtype::Bf16
            } else {
                nu.gemm_dtype
            },
        )
    };
    if p_bytes != s {
        cast(b, n!("attn.probs_cast"), 1, sc, s, p_bytes);
        p_saved = sc * p_bytes;
    }
    b.batched(
        n!("attn.pv"),
        (bh, seq, dh, seq),
        pv_unit,
        pv_dtype,
        sc * p_bytes + e * v_bytes,
        e * v_bytes,
        p_saved + e * v_bytes,
        causal_scale,
        Bwd::Pv { p_bytes },
    );
    cast(b, n!("attn.out_cast"), 1, e, v_bytes, o);
    out_transpose(b, e, o);
}

/// A fused FlashAttention kernel; q and k are cast to the activation dtype first when they arrive
/// in another (SDPA's autocast cast of fp32 RoPE outputs).
fn flash(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig, batch: u64, seq: u64, qk: f64) {
    let nu = b.num;
    let t = &m.transformer;
    let (bf, sf, dh) = (batch as f64, seq as f64, m.head_dim());
    let bh = batch * t.heads;
    let e = bf * sf * t.width as f64;
    let o = nu.out;
    if qk != o {
        b.vector(
            n!("attn.qk_cast"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Elementwise,
                0.0,
                2.0 * e * qk,
                2.0 * e * o,
            )
            .composite(2, 2.0 * e * qk, 2.0 * e * o)
            .bwd(Bwd::Cast),
        );
    }
    let causal_scale = if t.causal { 0.5 } else { 1.0 };
    let lse = bh as f64 * sf * 4.0;
    let flops = 4.0 * bf * sf * sf * t.width as f64 * causal_scale;
    let read = 3.0 * e * o;
    let written = e * o + lse;
    b.push(
        Op {
            chained_read: Bytes(read),
            saved: Bytes(4.0 * e * o + lse),
            ..library_op(
                "attn.flash",
                b.layer,
                Phase::Forward,
                OpKind::Attention {
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
                OpClass::Attention,
                Unit::Tensor,
                Dtype::Bf16,
                flops,
                read,
                written,
            )
        },
        Meta {
            names: n!("attn.flash"),
            // Backward reads Q, K, V, O, dO, the log-sum-exp and D = rowsum(dO∘O); writes dQ, dK,
            // dV, D, and the fp32 dQ accumulator (written and read once).
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

/// Dropout over `n` elements of `el` bytes: writes the output and a 1-byte mask, keeps the mask.
/// Backward reads the gradient and the mask, writes the gradient.
fn dropout(b: &mut Builder, names: &'static Names, n: f64, el: f64, class: OpClass, core: bool) {
    let v = Vector::new(OpKind::Elementwise, class, 2.0 * n, n * el, n * (el + 1.0))
        .saved(n)
        .bwd(Bwd::Explicit {
            fuses: false,
            kernels: 1,
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
        // The output projection (with a bias in vision models; GPT-2's tied head has none) and
        // the final adaLN linear with its bias.
        let adaln = t.conditioning == Conditioning::AdalnZero;
        let vision = m.kind == ModelKind::Vision;
        let params = t.width * out
            + if vision { out } else { 0 }
            + if adaln {
                2 * t.width * t.width + 2 * t.width
            } else {
                0
            };
        let tensors = 1 + u8::from(vision) + 2 * u8::from(adaln);
        weights_cast(b, n!("head.weights_cast"), params as f64, tensors);
    }
    match m.kind {
        ModelKind::Vision => {
            let inp = m.input.as_ref().expect("validated");
            let rows = batch * m.tokens.target;
            let e = rows as f64 * d;
            if t.conditioning == Conditioning::AdalnZero {
                adaln_modulation(
                    b,
                    n!("final.adaln.silu"),
                    n!("final.adaln.linear"),
                    n!("final.adaln.chunk"),
                    t.width,
                    2,
                    false,
                );
            }
            if m.tokens.condition > 0 {
                // The final layer reads the target tokens, a slice of the sequence; backward
                // writes a zero gradient for the whole sequence and copies the slice's into it.
                let all = (batch * m.seq_at_block(t.depth - 1)) as f64 * d * nu.res;
                b.vector(
                    n!("final.take_target"),
                    Vector::backward_only(2, e * nu.res, all + e * nu.res, 0.0),
                );
            }
            let x = b.norm(n!("final.norm"), t.norm, rows as f64, d, nu.res, 1);
            let x = if t.conditioning == Conditioning::AdalnZero {
                modulate(b, n!("final.modulate"), e, bf * d, x)
            } else {
                x
            };
            let out = inp.patch * inp.patch * inp.out_channels;
            b.linear(n!("final.linear"), rows, out, t.width, x, true, true);
            let y = (rows * out) as f64;
            let upcast = u8::from(nu.out != 4.0);
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
                // Eager: the prediction cast to fp32 when it is not (mse_loss runs in fp32 under
                // autocast), the target image cut into patches (a copy), and the loss.
                .composite(
                    2 + upcast,
                    f64::from(upcast) * y * nu.out + y * 4.0 + 2.0 * y * 4.0,
                    f64::from(upcast) * y * 4.0 + y * 4.0 + 4.0,
                )
                // Backward: the gradient seed (a one-element fill), mse_loss's gradient in fp32,
                // cast back to the prediction's dtype.
                .bwd(Bwd::Explicit {
                    fuses: false,
                    kernels: 2 + upcast,
                    read: 2.0 * y * 4.0 + f64::from(upcast) * y * 4.0,
                    written: 4.0 + y * 4.0 + f64::from(upcast) * y * nu.out,
                    flops: 3.0 * y,
                }),
            );
            b.mark(Role::Loss);
        }
        ModelKind::Language => {
            let rows = batch * m.tokens.text;
            let v = m.embedding.vocab as f64;
            let x = b.norm(n!("final.norm"), t.norm, rows as f64, d, nu.res, 1);
            b.linear(
                n!("lm_head"),
                rows,
                m.embedding.vocab,
                t.width,
                x,
                false,
                true,
            );
            let logits = rows as f64 * v;
            let r = rows as f64;
            let upcast = nu.out != 4.0;
            let (cast_read, cast_written) = if upcast {
                (logits * nu.out, logits * 4.0)
            } else {
                (0.0, 0.0)
            };
            // Cross-entropy under autocast runs in fp32: eager casts the logits up, runs
            // log-softmax (kept for backward) and gathers one log-probability per row with the
            // targets (nll_loss). Backward: the gradient seed (a one-element fill); nll_loss's
            // gradient is a zero-filled logits-sized tensor with one value scattered per row
            // (fill, scatter); then log-softmax's backward and the cast back to the logits'
            // dtype.
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
                .composite(
                    2 + u8::from(upcast),
                    cast_read + logits * 4.0 + r * 12.0,
                    cast_written + logits * 4.0 + 4.0,
                )
                .bwd(Bwd::Explicit {
                    fuses: false,
                    kernels: 4 + u8::from(upcast),
                    read: logits * 8.0 + r * 12.0 + cast_written,
                    written: 4.0 + logits * 8.0 + cast_read,
                    flops: 3.0 * logits,
                }),
            );
            b.mark(Role::Loss);
        }
    }
}

fn optimizer(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig) {
    // Under ZeRO-1 and up each rank updates its shard of the parameters.
    let p = param_count(m).total as f64 / cfg.optimizer_shards.max(1) as f64;
    // bf16-pure also writes the bf16 working copy of each parameter (2 B).
    let extra = if cfg.precision == Precision::Bf16Pure {
        2.0
    } else {
        0.0
    };
    b.layer = Layer::Model;
    // AdamW with fp32 states: reads parameter, gradient, m, v (16 B), writes parameter, m, v (12 B).
    let adam = Op {
        model_flops: Flops::ZERO,
        ..library_op(
            "optimizer.adamw",
            Layer::Model,
            Phase::Optimizer,
            OpKind::Optimizer,
            OpClass::Optimizer,
            Unit::Vector,
            Dtype::Fp32,
            14.0 * p,
            16.0 * p,
            (12.0 + extra) * p,
        )
    };
    let meta = Meta {
        names: n!("optimizer.adamw"),
        bwd: Bwd::None,
        output: 0.0,
        keep: true,
        shape: (0, 0, 0, 0),
    };
    b.push(adam, meta);
    if cfg.ema > 0 {
        // Each EMA copy: ema = decay * ema + (1 - decay) * param: reads ema and param (8 B),
        // writes ema (4 B); one fused kernel per copy.
        let n = cfg.ema as f64 * param_count(m).total as f64;
        let ema = Op {
            name: "optimizer.ema",
            flops: Flops(3.0 * n),
            bytes_read: Bytes(8.0 * n),
            bytes_written: Bytes(4.0 * n),
            fused_read: Bytes(8.0 * n),
            fused_written: Bytes(4.0 * n),
            kernels: cfg.ema.min(u8::MAX as u32) as u8,
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
            Checkpointing::Full => !op.weight_sized,
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
                kernels,
                fuses,
            } => b.push(
                Op {
                    name: meta.names.bwd,
                    flops: Flops(flops),
                    model_flops: Flops::ZERO,
                    bytes_read: Bytes(read),
                    bytes_written: Bytes(written),
                    fused_read: if fuses {
                        op.fused_read + op.fused_written
                    } else {
                        Bytes(read)
                    },
                    fused_written: if fuses { op.fused_read } else { Bytes(written) },
                    kernels,
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
                let mut op = gemm(
                    meta.names.wgrad,
                    OpKind::Gemm { m: k, n, k: m },
                    mf * kf * nu.op + mf * nf * nu.out,
                    kf * nf * nu.out,
                );
                op.weight_sized = true;
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
                        weight_sized: true,
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
                // PV's operands P, V and dO share one dtype in every implementation.
                let o = p_bytes;
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
                    // FlashAttention-2's backward: D = rowsum(dO∘O), the dQ/dK/dV loop, and the
                    // conversion of the fp32 dQ accumulator.
                    kernels: 3,
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
