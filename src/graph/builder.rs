//! The builder the model parts emit ops through: op names, the bookkeeping kept beside each
//! forward op for deriving its backward ([`Meta`], [`Bwd`]), fused-chain roles, and the two op
//! shapes every part uses, a vector op ([`Vector`]) and a linear layer ([`Builder::linear`]).

use super::precision::PrecisionPolicy;
use super::shapes::Linear;
use super::{Chain, Dtype, Layer, Op, OpClass, OpKind, Phase, Role, TokenDim, Unit};
use crate::units::{Bytes, Flops};

/// Bytes of one fp32 element (statistics, masters, fp32 tensors of any precision).
pub(crate) const FP32: f64 = Dtype::Fp32.bytes();

/// Bytes of one int64 index (token ids, targets, class labels).
pub(crate) const INDEX: f64 = 8.0;

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

/// `n!("attn.qkv")`: the [`Names`] of an op, its backward, gradients, recompute and input cast.
macro_rules! n {
    ($s:literal) => {
        &$crate::graph::builder::Names {
            fwd: $s,
            bwd: concat!($s, ".bwd"),
            dgrad: concat!($s, ".dgrad"),
            wgrad: concat!($s, ".wgrad"),
            bias_grad: concat!($s, ".bias_grad"),
            recompute: concat!($s, ".recompute"),
            cast: Some(&$crate::graph::builder::Names {
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
pub(crate) use n;

/// How to derive the backward ops of a forward op ([`super::backward`] emits them; the
/// attention-specific arms are emitted by [`super::parts::attention`] and
/// [`super::parts::flash`]).
#[derive(Debug, Clone, Copy)]
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
        read: Bytes,
        written: Bytes,
        flops: Flops,
        kernels: u8,
        fuses: bool,
    },
    /// Explicit eager backward traffic in `kernels` kernels, and the one kernel a compiler
    /// generates for it with its own traffic (`fused_read`, `fused_written`).
    Split {
        read: Bytes,
        written: Bytes,
        flops: Flops,
        kernels: u8,
        fused_read: Bytes,
        fused_written: Bytes,
    },
    /// Linear layer (M, N, K): data grad GEMM (M, K, N) if `input_grad`, weight grad GEMM
    /// (K, N, M), and a bias-grad reduction over M rows if `bias`.
    Linear { input_grad: bool, bias: bool },
    /// Attention scores S = Q·Kᵀ: dQ = dS·K and dK = dSᵀ·Q.
    Scores,
    /// PyTorch's eager softmax: the temporary `grad * output` (one more eager kernel, nothing
    /// compiled), then the generic backward reading the gradient `grad_passes` times
    /// ([`super::parts::attention::torch_softmax_backward`]).
    TorchSoftmax { grad_passes: f64 },
    /// Attention output O = P·V: dP = dO·Vᵀ and dV = Pᵀ·dO, with P in `p` dtype.
    Pv { p: Dtype },
    /// Fused attention: one backward kernel set reading and writing the given bytes, with the
    /// sum of dK and dV over each group of query heads when `grouped`.
    Flash {
        read: Bytes,
        written: Bytes,
        grouped: bool,
    },
}

/// Forward-op bookkeeping kept beside each op while building.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub names: &'static Names,
    pub bwd: Bwd,
    /// Bytes of the op's main output (dropped from fused traffic when a chain member follows).
    pub output: Bytes,
    /// The output is needed outside the chain (e.g. the new residual stream).
    pub keep: bool,
    /// GEMM shape (batch, M, N, K) for [`Bwd::Linear`], [`Bwd::Scores`], [`Bwd::Pv`].
    pub shape: (u64, u64, u64, u64),
}

impl Meta {
    /// Bookkeeping of an op without a derived backward.
    #[inline]
    pub fn none(names: &'static Names) -> Self {
        Meta {
            names,
            bwd: Bwd::None,
            output: Bytes::ZERO,
            keep: true,
            shape: (0, 0, 0, 0),
        }
    }
}

/// An op that runs as one library kernel (GEMM, fused attention, optimizer): never fused with
/// its neighbours, so its fused traffic equals its traffic, and it keeps nothing for backward
/// unless the caller says so.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn library_op(
    name: &'static str,
    layer: Layer,
    phase: Phase,
    kind: OpKind,
    class: OpClass,
    unit: Unit,
    dtype: Dtype,
    flops: Flops,
    read: Bytes,
    written: Bytes,
) -> Op {
    Op {
        name,
        layer,
        phase,
        kind,
        class,
        unit,
        dtype,
        flops,
        model_flops: flops,
        bytes_read: read,
        bytes_written: written,
        fused_read: read,
        fused_written: written,
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

/// A backward op that runs as one library kernel (a GEMM, a fused attention backward): `base`
/// (the forward op turned backward) named `name`, of `kind`, reading `read` and writing
/// `written` bytes in every mode.
#[inline]
pub(crate) fn library_backward(
    base: &Op,
    name: &'static str,
    kind: OpKind,
    read: Bytes,
    written: Bytes,
) -> Op {
    Op {
        name,
        kind,
        bytes_read: read,
        bytes_written: written,
        fused_read: read,
        fused_written: written,
        chain: Chain::Alone,
        ..*base
    }
}

/// Appends ops and their bookkeeping to reusable buffers.
pub(crate) struct Builder<'a> {
    pub ops: &'a mut Vec<Op>,
    pub meta: &'a mut Vec<Meta>,
    /// Layers the ops emitted now stand for.
    pub layer: Layer,
    /// Dtypes of the step's tensors.
    pub policy: PrecisionPolicy,
    /// The previous op was a vector op that a following one may fuse with.
    pub open_chain: bool,
    /// Samples per GPU.
    pub batch: u64,
    /// Shards of the tokens between tensor-parallel regions (tp with sequence parallelism,
    /// else 1): norms, dropout, residual adds and modulation run on 1/sp of the tokens.
    pub sp: u64,
    /// Context-parallel GPUs: attention's keys span cp times the tokens a GPU holds.
    pub cp: u64,
}

/// Arguments of a vector op (elementwise, norm, softmax, embedding...).
pub(crate) struct Vector {
    kind: OpKind,
    class: OpClass,
    flops: Flops,
    main_in: Bytes,
    side_in: Bytes,
    output: Bytes,
    saved: Bytes,
    keep: bool,
    alone: bool,
    core: bool,
    bwd: Bwd,
    /// Eager (unfused) implementation as several kernels: (kernels, bytes read, bytes written).
    composite: Option<(u8, Bytes, Bytes)>,
    /// Sized by the parameters (see [`Op::weight_sized`]).
    weight_sized: bool,
}

impl Vector {
    /// A vector op of `kind` and `class`: `flops`, its main input (`main_in` bytes, the tensor
    /// the previous op of a chain hands over) and its `output` bytes. Backward: [`Bwd::Generic`].
    #[inline]
    pub fn new(kind: OpKind, class: OpClass, flops: Flops, main_in: Bytes, output: Bytes) -> Self {
        Vector {
            kind,
            class,
            flops,
            main_in,
            side_in: Bytes::ZERO,
            output,
            saved: Bytes::ZERO,
            keep: false,
            alone: false,
            core: false,
            bwd: Bwd::Generic,
            composite: None,
            weight_sized: false,
        }
    }

    /// A pointwise op or cast ([`OpKind::Elementwise`], class elementwise).
    #[inline]
    pub fn pointwise(flops: Flops, main_in: Bytes, output: Bytes) -> Self {
        Self::new(
            OpKind::Elementwise,
            OpClass::Elementwise,
            flops,
            main_in,
            output,
        )
    }

    /// An op with no forward kernel (a view, a reuse of a tensor) whose backward is one or more
    /// kernels of its own: `kernels` kernels reading `read` and writing `written` bytes, never
    /// fused with neighbours.
    #[inline]
    pub fn backward_only(kernels: u8, read: Bytes, written: Bytes, flops: Flops) -> Self {
        Vector::pointwise(Flops::ZERO, Bytes::ZERO, Bytes::ZERO)
            .alone()
            .composite(0, Bytes::ZERO, Bytes::ZERO)
            .bwd(Bwd::Explicit {
                fuses: false,
                read,
                written,
                flops,
                kernels,
            })
    }

    /// The op (and its backward) is sized by the parameters, not the batch.
    #[inline]
    pub fn weights(mut self) -> Self {
        self.weight_sized = true;
        self
    }
    /// In eager mode the op runs as `kernels` kernels moving `read` and `written` bytes in all
    /// (a composite of framework ops); fused, it moves only its inputs and outputs.
    #[inline]
    pub fn composite(mut self, kernels: u8, read: Bytes, written: Bytes) -> Self {
        self.composite = Some((kernels, read, written));
        self
    }
    /// Inputs besides the main one (read in every mode).
    #[inline]
    pub fn side(mut self, b: Bytes) -> Self {
        self.side_in = b;
        self
    }
    /// Activation bytes kept for backward.
    #[inline]
    pub fn saved(mut self, b: Bytes) -> Self {
        self.saved = b;
        self
    }
    /// The output is needed outside its fused chain.
    #[inline]
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }
    /// Never fused with its neighbours.
    #[inline]
    pub fn alone(mut self) -> Self {
        self.alone = true;
        self
    }
    /// Part of the unfused attention core (selective checkpointing recomputes it).
    #[inline]
    pub fn core(mut self) -> Self {
        self.core = true;
        self
    }
    /// How its backward is derived.
    #[inline]
    pub fn bwd(mut self, b: Bwd) -> Self {
        self.bwd = b;
        self
    }
}

impl Builder<'_> {
    /// Appends a forward op and its bookkeeping.
    #[inline]
    pub fn push(&mut self, op: Op, meta: Meta) {
        self.ops.push(op);
        self.meta.push(meta);
    }

    /// Sequence parallelism keeps the input of the last linear layer (a column-parallel one,
    /// whose input is all-gathered from the sequence shards) sharded, 1/sp of it, and gathers it
    /// again for the weight gradient (Korthikanti et al. 2022, arXiv 2205.05198, section 4.2.2).
    #[inline]
    pub fn shard_saved_input(&mut self) {
        let sp = self.sp as f64;
        if let Some(op) = self.ops.last_mut() {
            op.saved = Bytes(op.saved.0 / sp);
        }
    }

    /// Gives the last op pushed its [`Role`].
    #[inline]
    pub fn mark(&mut self, role: Role) {
        if let Some(op) = self.ops.last_mut() {
            op.role = role;
        }
    }

    /// The ops pushed since index `first` run once per input on `times` inputs (e.g. the
    /// condition image and the target image embedded one after the other): same FLOPs and bytes
    /// in all, `times` launches each (their backward ops inherit the count).
    #[inline]
    pub fn repeat_launches(&mut self, first: usize, times: u8) {
        for op in &mut self.ops[first..] {
            op.kernels = op.kernels.saturating_mul(times);
        }
    }

    /// A vector op. Chain role: `Head` when no chain is open, `Member` when the previous op was a
    /// vector op of the same chain; a member consumes its predecessor's output on chip, so that
    /// output leaves the fused traffic unless kept.
    #[inline]
    pub fn vector(&mut self, names: &'static Names, v: Vector) {
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
                    prev.fused_written = Bytes((prev.fused_written.0 - pm.output.0).max(0.0));
                }
            }
        }
        let fused_read = if chain == Chain::Member {
            v.side_in
        } else {
            v.main_in + v.side_in
        };
        self.push(
            Op {
                name: names.fwd,
                layer: self.layer,
                phase: Phase::Forward,
                kind: v.kind,
                class: v.class,
                unit: Unit::Vector,
                dtype: Dtype::Fp32,
                flops: v.flops,
                model_flops: Flops::ZERO,
                bytes_read: v.composite.map_or(v.main_in + v.side_in, |c| c.1),
                bytes_written: v.composite.map_or(v.output, |c| c.2),
                fused_read,
                fused_written: v.output,
                chained_read: v.main_in,
                chain,
                kernels: v.composite.map_or(1, |c| c.0),
                saved: v.saved,
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

    /// A linear layer `y[M,N] = x[M,K] · W[K,N]` over `m` rows: FLOPs 2MNK; reads x (M·K
    /// operands) and the weight (K·N operands), writes y (M·N activations). When x arrives in
    /// another dtype (`src`) a cast op precedes it (autocast's cast of the input). Saves x for
    /// the weight gradient. A layer of several copies (experts) is a grouped GEMM: each copy
    /// over its own `m` rows.
    #[inline]
    pub fn linear(&mut self, l: &Linear, m: u64, src: Dtype) {
        let nu = self.policy;
        let (n, k, g) = (l.n, l.k, l.copies);
        let gf = g as f64;
        let (mf, nf, kf) = (gf * m as f64, n as f64, k as f64);
        let (op, out) = (nu.operand.bytes(), nu.activation.bytes());
        if src != nu.operand {
            self.vector(
                l.names.cast.unwrap_or(l.names),
                Vector::pointwise(
                    Flops::ZERO,
                    Bytes(mf * kf * src.bytes()),
                    Bytes(mf * kf * op),
                )
                .bwd(if l.input_grad { Bwd::Cast } else { Bwd::None }),
            );
        }
        let read = Bytes(mf * kf * op + gf * kf * nf * op);
        let written = Bytes(mf * nf * out);
        let kind = if g > 1 {
            OpKind::GroupedGemm {
                groups: g as u32, // experts: at most 2^16
                m,
                n,
                k,
                token_dim: TokenDim::M,
            }
        } else {
            OpKind::Gemm {
                m,
                n,
                k,
                token_dim: TokenDim::M,
            }
        };
        self.push(
            Op {
                chained_read: Bytes(mf * kf * op),
                saved: Bytes(mf * kf * op),
                ..library_op(
                    l.names.fwd,
                    self.layer,
                    Phase::Forward,
                    kind,
                    OpClass::Gemm,
                    nu.gemm_unit,
                    nu.gemm,
                    Flops(2.0 * mf * nf * kf),
                    read,
                    written,
                )
            },
            Meta {
                names: l.names,
                bwd: Bwd::Linear {
                    input_grad: l.input_grad,
                    bias: l.bias,
                },
                output: written,
                keep: true,
                shape: (g, m, n, k),
            },
        );
        self.open_chain = false;
    }
}
