//! The generic backward and recompute derivation: for each forward op, in reverse order, the
//! backward ops its [`Bwd`] rule describes, and for checkpointing the forward ops recomputed in
//! backward. The attention-specific rules are emitted by their parts
//! ([`super::parts::attention`], [`super::parts::flash`]).

use super::builder::{library_backward, Builder, Bwd, Meta, FP32};
use super::parts::{attention, flash};
use super::{Chain, Checkpointing, Dtype, Op, OpClass, OpKind, Phase, TokenDim, Unit};
use crate::units::{Bytes, Flops};

/// Re-emits forward ops of a block group as backward-phase recomputation: all of them for full
/// checkpointing, the unfused attention core for selective.
pub(super) fn emit_recompute(b: &mut Builder, start: usize, end: usize, mode: Checkpointing) {
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
pub(super) fn emit_backward(b: &mut Builder, start: usize, end: usize) {
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
            Bwd::Generic => b.push(
                Op {
                    name: meta.names.bwd,
                    flops: op.flops * 2.0,
                    model_flops: Flops::ZERO,
                    bytes_read: op.bytes_read + op.bytes_written,
                    bytes_written: op.bytes_read,
                    fused_read: op.fused_read + op.fused_written,
                    fused_written: op.fused_read,
                    chained_read: op.bytes_written,
                    ..base
                },
                bwd_meta,
            ),
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
            } => {
                let (fused_read, fused_written) = if fuses {
                    (op.fused_read + op.fused_written, op.fused_read)
                } else {
                    (read, written)
                };
                explicit(
                    b,
                    &base,
                    &bwd_meta,
                    (read, written),
                    flops,
                    kernels,
                    (fused_read, fused_written),
                )
            }
            Bwd::Split {
                read,
                written,
                flops,
                kernels,
                fused_read,
                fused_written,
            } => explicit(
                b,
                &base,
                &bwd_meta,
                (read, written),
                flops,
                kernels,
                (fused_read, fused_written),
            ),
            Bwd::Linear { input_grad, bias } => linear(b, &base, &bwd_meta, input_grad, bias),
            Bwd::Scores => attention::scores_backward(b, &base, &bwd_meta),
            Bwd::TorchSoftmax { grad_passes } => {
                attention::torch_softmax_backward(b, &base, &bwd_meta, grad_passes)
            }
            Bwd::Pv { p } => attention::pv_backward(b, &base, &bwd_meta, p),
            Bwd::Flash {
                read,
                written,
                grouped,
            } => flash::backward(b, &base, &bwd_meta, (read, written), grouped),
        }
    }
}

/// A backward op of given eager traffic, FLOPs and kernels, and given fused traffic.
fn explicit(
    b: &mut Builder,
    base: &Op,
    meta: &Meta,
    (read, written): (Bytes, Bytes),
    flops: Flops,
    kernels: u8,
    (fused_read, fused_written): (Bytes, Bytes),
) {
    b.push(
        Op {
            name: meta.names.bwd,
            flops,
            model_flops: Flops::ZERO,
            bytes_read: read,
            bytes_written: written,
            fused_read,
            fused_written,
            kernels,
            ..*base
        },
        *meta,
    );
}

/// A linear layer's backward: dX[M,K] = dY[M,N]·Wᵀ (when its input needs a gradient),
/// dW[K,N] = Xᵀ·dY, and the bias gradient, a sum of dY over the M rows; for `g` copies
/// (experts), grouped GEMMs of these shapes. Model FLOPs keep the forward's ratio of model to
/// executed FLOPs (padding of a capacity-based dispatch is not model work).
fn linear(b: &mut Builder, base: &Op, meta: &Meta, input_grad: bool, bias: bool) {
    let nu = b.policy;
    let (op, out) = (nu.operand.bytes(), nu.activation.bytes());
    let (g, m, n, k) = meta.shape;
    let gf = g as f64;
    let (mf, nf, kf) = (gf * m as f64, n as f64, k as f64);
    let flops = Flops(2.0 * mf * nf * kf);
    let model = if base.flops.0 > 0.0 {
        base.model_flops.0 / base.flops.0
    } else {
        1.0
    };
    let gemm = |name, (m, n, k, token_dim), read: f64, written: f64| {
        let kind = if g > 1 {
            OpKind::GroupedGemm {
                groups: g as u32, // experts: at most 2^16
                m,
                n,
                k,
                token_dim,
            }
        } else {
            OpKind::Gemm { m, n, k, token_dim }
        };
        Op {
            flops,
            model_flops: flops * model,
            ..library_backward(base, name, kind, Bytes(read), Bytes(written))
        }
    };
    if input_grad {
        let dgrad = gemm(
            meta.names.dgrad,
            (m, k, n, TokenDim::M),
            mf * nf * out + gf * nf * kf * op,
            mf * kf * out,
        );
        b.push(dgrad, *meta);
    }
    let mut wgrad = gemm(
        meta.names.wgrad,
        (k, n, m, TokenDim::K),
        mf * kf * op + mf * nf * out,
        gf * kf * nf * out,
    );
    wgrad.weight_sized = true;
    b.push(wgrad, *meta);
    if bias {
        // Reads dY, writes N fp32.
        let r = Op {
            name: meta.names.bias_grad,
            kind: OpKind::Reduction,
            class: OpClass::Elementwise,
            unit: Unit::Vector,
            dtype: Dtype::Fp32,
            flops: Flops(mf * nf),
            model_flops: Flops::ZERO,
            bytes_read: Bytes(mf * nf * out),
            bytes_written: Bytes(gf * nf * FP32),
            fused_read: Bytes(mf * nf * out),
            fused_written: Bytes(gf * nf * FP32),
            chain: Chain::Alone,
            weight_sized: true,
            ..*base
        };
        b.push(r, *meta);
    }
}
