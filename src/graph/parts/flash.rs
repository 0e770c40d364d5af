//! Fused (FlashAttention-style) attention, forward and backward: one kernel, no s x s matrix in
//! memory. Forward FLOPs 4·B·s²·d (halved for causal masks); the backward executes 2.5x the
//! forward (it recomputes S; FlashAttention's benchmark convention) and counts 2x as model FLOPs.

use crate::graph::builder::{library_backward, library_op, n, Builder, Bwd, Meta, Vector, FP32};
use crate::graph::{AttentionImpl, Dtype, Op, OpClass, OpKind, Phase, StepConfig, Unit};
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// The fused kernel; q and k are cast to the activation dtype first when they arrive in another
/// (SDPA's autocast cast of fp32 RoPE outputs).
pub(crate) fn forward(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig, seq: u64, qk: Dtype) {
    let t = &m.transformer;
    let (bf, sf, dh) = (b.batch as f64, seq as f64, m.head_dim());
    let bh = b.batch * t.heads;
    let e = bf * sf * t.width as f64;
    let act = b.policy.activation;
    let o = act.bytes();
    if qk != act {
        let (read, written) = (Bytes(2.0 * e * qk.bytes()), Bytes(2.0 * e * o));
        b.vector(
            n!("attn.qk_cast"),
            Vector::pointwise(Flops::ZERO, read, written)
                .composite(2, read, written)
                .bwd(Bwd::Cast),
        );
    }
    let causal_scale = if t.causal { 0.5 } else { 1.0 };
    // The log-sum-exp of each row, fp32.
    let lse = bh as f64 * sf * FP32;
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
                    batch: b.batch,
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
                Flops(flops),
                Bytes(read),
                Bytes(written),
            )
        },
        Meta {
            names: n!("attn.flash"),
            // Backward reads Q, K, V, O, dO, the log-sum-exp and D = rowsum(dO∘O); writes dQ,
            // dK, dV, D, and the fp32 dQ accumulator (written and read once).
            bwd: Bwd::Flash {
                read: Bytes(5.0 * e * o + 2.0 * lse + e * FP32),
                written: Bytes(3.0 * e * o + lse + e * FP32),
            },
            output: Bytes(written),
            keep: true,
            shape: (0, 0, 0, 0),
        },
    );
    b.open_chain = false;
}

/// FlashAttention-2's backward: D = rowsum(dO∘O), the dQ/dK/dV loop, and the conversion of the
/// fp32 dQ accumulator: three kernels.
pub(crate) fn backward(b: &mut Builder, base: &Op, meta: &Meta, read: Bytes, written: Bytes) {
    b.push(
        Op {
            kernels: 3,
            flops: base.flops * 2.5,
            model_flops: base.model_flops * 2.0,
            ..library_backward(base, "attn.flash.bwd", base.kind, read, written)
        },
        *meta,
    );
}
