//! Fused (FlashAttention-style) attention, forward and backward: one kernel, no s x s matrix in
//! memory. Forward FLOPs 4·B·s²·h·dh times the fraction of query-key pairs attended (1/2 for
//! causal masks, less with a sliding window: the kernels skip the blocks outside it); the
//! backward executes 2.5x the forward (it recomputes S; FlashAttention's benchmark convention)
//! and counts 2x as model FLOPs. Grouped-query attention runs natively: the kernels read kv
//! heads of K and V (Dao, FlashAttention-2, arXiv 2307.08691); the backward writes dK and dV per
//! query head and sums each group afterwards, two more kernels (Dao-AILab/flash-attention
//! csrc/flash_attn/flash_api.cpp, `mha_bwd`: `dk_expanded`, `dv_expanded`, `at::sum_out`).

use crate::graph::builder::{library_backward, library_op, n, Builder, Bwd, Meta, Vector, FP32};
use crate::graph::{Dtype, Op, OpClass, OpKind, Phase, StepConfig, Unit};
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// The fused kernel; q and k are cast to the activation dtype first when they arrive in another
/// (SDPA's autocast cast of fp32 RoPE outputs).
pub(crate) fn forward(b: &mut Builder, m: &ModelSpec, cfg: &StepConfig, seq: u64, qk: Dtype) {
    let t = &m.transformer;
    let (bf, sf, dh) = (b.batch as f64, seq as f64, m.head_dim());
    let bh = b.batch * t.heads;
    let (e, ekv) = (bf * sf * m.q_width() as f64, bf * sf * m.kv_width() as f64);
    let act = b.policy.activation;
    let o = act.bytes();
    if qk != act {
        let (read, written) = (Bytes((e + ekv) * qk.bytes()), Bytes((e + ekv) * o));
        b.vector(
            n!("attn.qk_cast"),
            Vector::pointwise(Flops::ZERO, read, written)
                .composite(2, read, written)
                .bwd(Bwd::Cast),
        );
    }
    // The log-sum-exp of each row, fp32.
    let lse = bh as f64 * sf * FP32;
    // Context parallelism (ring attention over cp GPUs): the s/cp local queries attend to all s
    // keys, whose K and V blocks stream past; load-balanced causal chunks give each GPU 1/cp of
    // the whole sequence's attended pairs.
    let cp = b.cp as f64;
    let flops = 4.0 * bf * sf * (sf * cp) * m.q_width() as f64 * m.attended_fraction(seq * b.cp);
    let read = (e + 2.0 * ekv * cp) * o;
    let written = e * o + lse;
    // Grouped heads: dK and dV written per query head, then summed per group.
    let grouped = ekv < e;
    let dkv = if grouped { 2.0 * e } else { 2.0 * ekv };
    b.push(
        Op {
            chained_read: Bytes(read),
            saved: Bytes((2.0 * e + 2.0 * ekv) * o + lse),
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
                    // Bounded by 2^30 (spec::model::check).
                    window: t.window as u32,
                    flash: cfg.attention.flash_generation().unwrap_or(2),
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
            // dK, dV, D, and the fp32 dQ accumulator (written and read once); grouped, the sum
            // of the per-head dK and dV reads them back and writes kv heads.
            bwd: Bwd::Flash {
                read: Bytes(
                    (3.0 * e + 2.0 * ekv * cp) * o
                        + 2.0 * lse
                        + e * FP32
                        + if grouped { dkv * o } else { 0.0 },
                ),
                written: Bytes(
                    (e + dkv) * o + lse + e * FP32 + if grouped { 2.0 * ekv * o } else { 0.0 },
                ),
                grouped,
            },
            output: Bytes(written),
            keep: true,
            shape: (0, 0, 0, 0),
        },
    );
    b.open_chain = false;
}

/// FlashAttention-2's backward: D = rowsum(dO∘O), the dQ/dK/dV loop, and the conversion of the
/// fp32 dQ accumulator: three kernels, and the sums of dK and of dV over each group of query
/// heads when `grouped`.
pub(crate) fn backward(
    b: &mut Builder,
    base: &Op,
    meta: &Meta,
    (read, written): (Bytes, Bytes),
    grouped: bool,
) {
    b.push(
        Op {
            kernels: 3 + 2 * u8::from(grouped),
            flops: base.flops * 2.5,
            model_flops: base.model_flops * 2.0,
            ..library_backward(base, "attn.flash.bwd", base.kind, read, written)
        },
        *meta,
    );
}
