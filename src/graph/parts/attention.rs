//! The attention branch of a block, forward and backward: the qkv projection, qk-norm, RoPE, the
//! attention core (unfused here, fused in [`super::flash`]) and the output projection.
//!
//! Unfused core (naive, sdpa-math, unfused): with grouped-query attention (kv < h) the keys and
//! values are first expanded to h heads (Hugging Face's `repeat_kv`, a copy; backward sums each
//! group's gradients); then S = Q·Kᵀ (B·h batched GEMMs of s x s x dh), the scale, mask or
//! bias, softmax (5 FLOPs per score), dropout, P·V, and the layout copy back to [B, s, h·dh].
//! Each implementation stores and computes its s x s matrices in its own dtype ([`Unfused`]);
//! all compute every score, a sliding window only masks. Backward: dQ = dS·K and dK = dSᵀ·Q
//! ([`scores_backward`]); dP = dO·Vᵀ and dV = Pᵀ·dO ([`pv_backward`]).

use super::common::{dropout, eager_softmax_passes};
use super::{flash, norm::norm, rope::rope};
use crate::graph::builder::{
    library_backward, library_op, n, Builder, Bwd, Meta, Names, Vector, FP32,
};
use crate::graph::shapes::LinearShapes;
use crate::graph::{AttentionImpl, Dtype, Op, OpClass, OpKind, Phase, Role, StepConfig, Unit};
use crate::spec::model::{NormKind, RopeKind};
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// The attention branch after its norm (input `x` in dtype `x`), up to the output projection.
pub(crate) fn forward(
    b: &mut Builder,
    m: &ModelSpec,
    cfg: &StepConfig,
    shapes: &LinearShapes,
    seq: u64,
    x: Dtype,
) {
    let t = &m.transformer;
    let act = b.policy.activation;
    let rows = b.batch * seq;
    let (tf, dh) = (rows as f64, m.head_dim() as f64);
    let (h, kv) = (t.heads as f64, m.kv_heads() as f64);
    let (eq, ekv) = (tf * m.q_width() as f64, tf * m.kv_width() as f64);
    b.linear(&shapes.qkv, rows, x);
    b.shard_saved_input();
    b.mark(Role::AttentionInputs);
    // q, k, v are views of the qkv output: backward stacks dq, dk, dv and copies the stack into
    // the qkv output's layout ([B, s, h + 2·kv, dh]): two kernels.
    let grads = Bytes(2.0 * (eq + 2.0 * ekv) * act.bytes());
    b.vector(
        n!("attn.qkv_split"),
        Vector::backward_only(2, grads, grads, Flops::ZERO),
    );
    let mut qk = act;
    if t.qk_norm {
        qk = norm(
            b,
            n!("attn.qk_norm"),
            NormKind::Rmsnorm,
            tf * (h + kv),
            dh,
            act,
            2,
        );
    }
    if t.rope != RopeKind::None {
        qk = rope(b, eq + ekv, seq as f64 * dh, qk);
    }
    match Unfused::of(cfg.attention, act) {
        Some(plan) => core(b, m, cfg, plan, seq, qk),
        None => flash::forward(b, m, cfg, seq, qk),
    }
    b.linear(&shapes.proj, rows, act);
}

/// How an unfused attention implementation stores and computes its s x s matrices.
struct Unfused {
    /// Dtype of the scores and probabilities before PV.
    scores: Dtype,
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

impl Unfused {
    /// The plan of `a` with activations in `act`; None for a fused implementation.
    fn of(a: AttentionImpl, act: Dtype) -> Option<Self> {
        match a {
            // As the public JiT code: fp32 scores (autocast off), a materialized zero bias
            // [B,1,s,s] added, fp32 softmax, probabilities cast to the activation dtype for PV.
            AttentionImpl::Naive => Some(Unfused {
                scores: Dtype::Fp32,
                scores_fp32: true,
                pv_fp32: false,
                upcast_v: false,
                bias: true,
                scale_q: false,
                returns_probs: false,
                contiguous: true,
            }),
            // PyTorch's math SDPA backend upcasts q, k, v to fp32 (since 2.5).
            AttentionImpl::SdpaMath => Some(Unfused {
                scores: Dtype::Fp32,
                scores_fp32: true,
                pv_fp32: true,
                upcast_v: true,
                bias: false,
                scale_q: true,
                returns_probs: true,
                contiguous: true,
            }),
            // Megatron-LM's core attention: 16-bit scores and probabilities.
            AttentionImpl::Unfused => Some(Unfused {
                scores: act,
                scores_fp32: false,
                pv_fp32: false,
                upcast_v: false,
                bias: false,
                scale_q: true,
                returns_probs: false,
                contiguous: false,
            }),
            AttentionImpl::Flash1 | AttentionImpl::Flash2 | AttentionImpl::Flash3 => None,
        }
    }
}

/// A dtype cast of `tensors` tensors of `n` elements in all, one kernel each, in the core.
fn cast(b: &mut Builder, names: &'static Names, tensors: u8, n: f64, from: Dtype, to: Dtype) {
    if from != to {
        let (read, written) = (Bytes(n * from.bytes()), Bytes(n * to.bytes()));
        b.vector(
            names,
            Vector::new(
                OpKind::Elementwise,
                OpClass::Attention,
                Flops::ZERO,
                read,
                written,
            )
            .composite(tensors, read, written)
            .core()
            .bwd(Bwd::Cast),
        );
    }
}

/// A batched GEMM of the unfused core: `shape` = (batch, M, N, K), model FLOPs scaled by
/// `model_scale` (1/2 for causal attention).
#[allow(clippy::too_many_arguments)]
fn batched(
    b: &mut Builder,
    names: &'static Names,
    shape: (u64, u64, u64, u64),
    (unit, dtype): (Unit, Dtype),
    read: f64,
    written: f64,
    saved: f64,
    model_scale: f64,
    bwd: Bwd,
) {
    let (bt, m, n, k) = shape;
    let flops = 2.0 * bt as f64 * m as f64 * n as f64 * k as f64;
    b.push(
        Op {
            model_flops: Flops(flops * model_scale),
            chained_read: Bytes(read),
            saved: Bytes(saved),
            attention_core: true,
            ..library_op(
                names.fwd,
                b.layer,
                Phase::Forward,
                OpKind::BatchedGemm { batch: bt, m, n, k },
                OpClass::Attention,
                unit,
                dtype,
                Flops(flops),
                Bytes(read),
                Bytes(written),
            )
        },
        Meta {
            names,
            bwd,
            output: Bytes(written),
            keep: true,
            shape,
        },
    );
    b.open_chain = false;
}

/// The unfused attention core; `qk` is the dtype of q and k as they arrive (fp32 after RoPE
/// under autocast).
fn core(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig, plan: Unfused, seq: u64, qk: Dtype) {
    let nu = b.policy;
    let t = &m.transformer;
    let (bf, sf, dh) = (b.batch as f64, seq as f64, m.head_dim());
    let bh = b.batch * t.heads;
    // Elements of q (and, once expanded to h heads, of k and v).
    let e = bf * sf * m.q_width() as f64;
    let act = nu.activation;
    let sc = bh as f64 * sf * sf;
    let model_scale = m.attended_fraction(seq);
    if m.kv_heads() < t.heads {
        // Grouped-query attention: k (in q's dtype) and v expanded from kv to h heads, two
        // copies; backward sums each group of h/kv head gradients back: two kernels.
        let ekv = bf * sf * m.kv_width() as f64;
        let bytes = qk.bytes() + act.bytes();
        let (read, written) = (Bytes(ekv * bytes), Bytes(e * bytes));
        b.vector(
            n!("attn.kv_repeat"),
            Vector::new(
                OpKind::Elementwise,
                OpClass::Attention,
                Flops::ZERO,
                read,
                written,
            )
            .composite(2, read, written)
            .core()
            .bwd(Bwd::Explicit {
                fuses: true,
                read: written,
                written: read,
                flops: Flops(2.0 * (e - ekv)),
                kernels: 2,
            }),
        );
    }
    // q, k into the dtype the scores GEMM reads: fp32 for fp32 scores (a no-op when RoPE
    // already made them fp32), else the activation dtype (SDPA's autocast cast).
    let qk_in = if plan.scores_fp32 { Dtype::Fp32 } else { act };
    if plan.upcast_v {
        // SDPA under autocast casts to the activation dtype first, then the math backend upcasts
        // q, k, v to fp32.
        cast(b, n!("attn.qk_cast"), 2, 2.0 * e, qk, act);
        cast(b, n!("attn.qkv_upcast"), 3, 3.0 * e, act, Dtype::Fp32);
    } else {
        cast(b, n!("attn.qk_cast"), 2, 2.0 * e, qk, qk_in);
    }
    let v = if plan.upcast_v { Dtype::Fp32 } else { act };
    let (qkb, vb) = (qk_in.bytes(), v.bytes());
    if plan.contiguous {
        // torch.matmul on [B, h, s, dh] views of the qkv output (and on kᵀ) copies each operand
        // into a contiguous batch first: three copies, whose gradients pass through. Expanded
        // for grouped-query attention, k and v are new contiguous tensors: only kᵀ is copied.
        let (tensors, main, side) = if m.kv_heads() < t.heads {
            (1, e * qkb, 0.0)
        } else {
            (3, 2.0 * e * qkb, e * vb)
        };
        let copies = Bytes(main + side);
        b.vector(
            n!("attn.qkv_contiguous"),
            Vector::pointwise(Flops::ZERO, Bytes(main), copies)
                .side(Bytes(side))
                .composite(tensors, copies, copies)
                .bwd(Bwd::None),
        );
    }
    let core_op = |flops: f64, read: f64, written: f64| {
        Vector::new(
            OpKind::Elementwise,
            OpClass::Attention,
            Flops(flops),
            Bytes(read),
            Bytes(written),
        )
        .core()
    };
    if plan.scale_q {
        // PyTorch's math backend scales q and k by √scale each: two multiplies, whose backward
        // multiplies the gradients by the same constant.
        let qk_bytes = 2.0 * e * qkb;
        b.vector(
            n!("attn.q_scale"),
            core_op(2.0 * e, qk_bytes, qk_bytes)
                .composite(2, Bytes(qk_bytes), Bytes(qk_bytes))
                .bwd(Bwd::Explicit {
                    fuses: true,
                    read: Bytes(qk_bytes),
                    written: Bytes(qk_bytes),
                    flops: Flops(2.0 * e),
                    kernels: 2,
                }),
        );
    }
    let scores_math = if plan.scores_fp32 {
        if nu.gemm == Dtype::Tf32 {
            (Unit::Tensor, Dtype::Tf32)
        } else {
            (Unit::Vector, Dtype::Fp32)
        }
    } else {
        (nu.gemm_unit, nu.attention_gemm())
    };
    let s = plan.scores.bytes();
    batched(
        b,
        n!("attn.scores"),
        (bh, seq, seq, dh),
        scores_math,
        2.0 * e * qkb,
        sc * s,
        2.0 * e * qkb,
        model_scale,
        Bwd::Scores,
    );
    if !plan.scale_q {
        b.vector(
            n!("attn.scale"),
            core_op(sc, sc * s, sc * s).bwd(Bwd::Explicit {
                fuses: true,
                read: Bytes(sc * s),
                written: Bytes(sc * s),
                flops: Flops(sc),
                kernels: 1,
            }),
        );
    }
    let s2 = sf * sf;
    if t.causal && !plan.bias {
        let mask = core_op(sc, sc * s, sc * s);
        let mask = if cfg.attention == AttentionImpl::SdpaMath {
            // The math backend's causal mask: a boolean lower triangle (ones, tril), turned into
            // an additive 0 / -inf [s, s] mask (where, with its two scalars made on the device)
            // and added to the scores; the mask needs no gradient.
            let traffic = Bytes(sc * s + s2 * (2.0 + 4.0));
            mask.side(Bytes(s2 * FP32))
                .composite(6, traffic, traffic)
                .bwd(Bwd::None)
        } else {
            // A masked fill of the scores from a stored boolean [s, s] mask; backward fills the
            // gradient the same way.
            mask.side(Bytes(s2))
        };
        b.vector(n!("attn.mask"), mask);
    }
    if plan.bias {
        // A zero bias [B, 1, s, s]; causal, filled with -inf above the diagonal from a boolean
        // triangle (ones, tril, logical_not, masked_fill).
        let bias = bf * sf * sf * qkb;
        let (kernels, read, written) = if t.causal {
            (5, 3.0 * s2 + bias, bias + 3.0 * s2 + bias)
        } else {
            (1, 0.0, bias)
        };
        b.vector(
            n!("attn.bias_fill"),
            core_op(0.0, 0.0, bias)
                .keep()
                .composite(kernels, Bytes(read), Bytes(written))
                .bwd(Bwd::None),
        );
        b.vector(
            n!("attn.bias_add"),
            core_op(sc, sc * s, sc * s).side(Bytes(bias)).bwd(Bwd::None),
        );
    }
    // Megatron-LM's fused scale-mask-softmax kernels (`unfused`) hold a row of 16 to 4096
    // scores in registers: one kernel and one pass each way. Longer rows fall back to PyTorch's
    // softmax (NVIDIA/Megatron-LM megatron/core/fusions/fused_softmax.py,
    // `is_kernel_available`), which naive and sdpa-math always run.
    let softmax = Vector::new(
        OpKind::Softmax,
        OpClass::Attention,
        Flops(5.0 * sc),
        Bytes(sc * s),
        Bytes(sc * s),
    )
    .saved(Bytes(sc * s))
    .core();
    // Megatron's fallback upcasts the scores to fp32 first (`softmax_in_fp32`, its default);
    // its cast, scale and mask kernels are not counted.
    let (torch_softmax, row_bytes) = match cfg.attention {
        AttentionImpl::Naive | AttentionImpl::SdpaMath => (true, s),
        AttentionImpl::Unfused => (seq > 4096, FP32),
        _ => (false, s),
    };
    // PyTorch's eager softmax (aten/src/ATen/native/cuda/SoftMax.cu): forward reads a row once
    // or three times (`eager_softmax_passes`); backward see `torch_softmax_backward`.
    let softmax = if torch_softmax {
        let n = sc * s;
        let (in_passes, grad_passes) = eager_softmax_passes(seq, row_bytes);
        let softmax = softmax.bwd(Bwd::TorchSoftmax { grad_passes });
        if in_passes > 1.0 {
            softmax.composite(1, Bytes(in_passes * n), Bytes(n))
        } else {
            softmax
        }
    } else {
        softmax
    };
    b.vector(n!("attn.softmax"), softmax);
    if plan.returns_probs && plan.scores != act {
        b.vector(
            n!("attn.probs_returned"),
            core_op(0.0, sc * s, sc * act.bytes())
                .alone()
                .bwd(Bwd::None),
        );
    }
    // PV keeps its P operand when P is a new tensor: the dropout output or a cast copy.
    let mut p_saved = 0.0;
    if t.dropout > 0.0 {
        dropout(b, n!("attn.dropout"), sc, s, OpClass::Attention, true);
        p_saved = sc * s;
    }
    let (p, pv_math) = if plan.pv_fp32 {
        (Dtype::Fp32, (Unit::Vector, Dtype::Fp32))
    } else {
        (act, (nu.gemm_unit, nu.attention_gemm()))
    };
    let pb = p.bytes();
    if p != plan.scores {
        cast(b, n!("attn.probs_cast"), 1, sc, plan.scores, p);
        p_saved = sc * pb;
    }
    batched(
        b,
        n!("attn.pv"),
        (bh, seq, dh, seq),
        pv_math,
        sc * pb + e * vb,
        e * vb,
        p_saved + e * vb,
        model_scale,
        Bwd::Pv { p },
    );
    cast(b, n!("attn.out_cast"), 1, e, v, act);
    // `out.transpose(1, 2).reshape(B, s, d)`: a copy of E elements.
    let o = act.bytes();
    b.vector(
        n!("attn.out_transpose"),
        Vector::pointwise(Flops::ZERO, Bytes(e * o), Bytes(e * o)).bwd(Bwd::Cast),
    );
}

/// Backward of S = Q·Kᵀ (batch B·h, s x s x dh): dQ = dS·K and dK = dSᵀ·Q, each (s, dh, s),
/// reading dS and one operand in the scores' arithmetic dtype.
pub(crate) fn scores_backward(b: &mut Builder, base: &Op, meta: &Meta) {
    let (bh, s, _, dh) = meta.shape;
    let el = if base.dtype == Dtype::Fp32 || base.dtype == Dtype::Tf32 {
        FP32
    } else {
        b.policy.activation.bytes()
    };
    let sc = bh as f64 * s as f64 * s as f64;
    let qk = bh as f64 * s as f64 * dh as f64;
    let g = |name| {
        let kind = OpKind::BatchedGemm {
            batch: bh,
            m: s,
            n: dh,
            k: s,
        };
        library_backward(base, name, kind, Bytes(sc * el + qk * el), Bytes(qk * el))
    };
    b.push(g("attn.scores.dgrad_q"), *meta);
    b.push(g("attn.scores.dgrad_k"), *meta);
}

/// Backward of PyTorch's eager softmax (`base`: the forward op turned backward; its output is
/// one score tensor of `n` bytes). `softmax_backward_cuda_out` first multiplies the gradient by
/// the output into a temporary (`grad * output`: one vectorized kernel reading 2n and writing n,
/// at the copy rate in the H100 measurement, 793 us per [64, 12, 512, 512] fp32 product), then
/// its backward kernel reads the temporary `grad_passes` times and the output once and writes
/// the input gradient (aten/src/ATen/native/cuda/SoftMax.cu). The product is an op of its own,
/// so the memory model's transient stays one score tensor per op; compiled, Inductor generates
/// the softmax backward itself: the product is a chain member moving and launching nothing, and
/// the backward kernel follows the generic rule. Its multiply is among the softmax backward's
/// FLOPs.
pub(crate) fn torch_softmax_backward(b: &mut Builder, base: &Op, meta: &Meta, grad_passes: f64) {
    let n = base.bytes_written;
    b.push(
        Op {
            name: "attn.softmax_grad_product",
            flops: Flops::ZERO,
            model_flops: Flops::ZERO,
            bytes_read: n * 2.0,
            bytes_written: n,
            fused_read: Bytes::ZERO,
            fused_written: Bytes::ZERO,
            kernels: 1,
            chain: crate::graph::Chain::Member,
            ..*base
        },
        *meta,
    );
    b.push(
        Op {
            name: meta.names.bwd,
            flops: base.flops * 2.0,
            model_flops: Flops::ZERO,
            bytes_read: n * (1.0 + grad_passes),
            bytes_written: n,
            fused_read: base.fused_read + base.fused_written,
            fused_written: base.fused_read,
            chained_read: n,
            kernels: 1,
            ..*base
        },
        *meta,
    );
}

/// Backward of O = P·V (batch B·h, s x dh x s): dP = dO·Vᵀ (s, s, dh) and dV = Pᵀ·dO
/// (s, dh, s). P, V and dO share P's dtype in every implementation.
pub(crate) fn pv_backward(b: &mut Builder, base: &Op, meta: &Meta, p: Dtype) {
    let (bh, s, dh, _) = meta.shape;
    let sc = bh as f64 * s as f64 * s as f64;
    let e = bh as f64 * s as f64 * dh as f64;
    let o = p.bytes();
    let gemm = |name, (m, n, k): (u64, u64, u64), read: f64, written: f64| {
        let kind = OpKind::BatchedGemm { batch: bh, m, n, k };
        library_backward(base, name, kind, Bytes(read), Bytes(written))
    };
    b.push(
        gemm("attn.pv.dgrad_p", (s, s, dh), 2.0 * e * o, sc * o),
        *meta,
    );
    b.push(
        gemm("attn.pv.dgrad_v", (s, dh, s), sc * o + e * o, e * o),
        *meta,
    );
}
