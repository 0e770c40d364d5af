//! The output side, forward and backward: the final norm (with adaLN for diffusion models), the
//! output projection and the loss. Vector FLOPs per element: MSE 3, cross-entropy 5.

use super::common::{eager_softmax_passes, weights_cast};
use super::{conditioning, norm::norm};
use crate::graph::builder::{n, Builder, Bwd, Vector, FP32, INDEX};
use crate::graph::shapes::{cast_tensors, LinearShapes};
use crate::graph::{Dtype, LossImpl, OpClass, OpKind, Role};
use crate::spec::model::ModelKind;
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// The head and loss of one step.
pub(crate) fn forward(b: &mut Builder, m: &ModelSpec, shapes: &LinearShapes, loss: LossImpl) {
    // The output projection (with a bias in vision models; GPT-2's tied head has none) and the
    // final adaLN linear with its bias.
    weights_cast(
        b,
        n!("head.weights_cast"),
        cast_tensors(shapes.head_layers()),
    );
    match m.kind {
        ModelKind::Vision => vision(b, m, shapes),
        ModelKind::Language => language(b, m, shapes, loss),
    }
}

/// Final layer of a diffusion transformer and the MSE loss on the target patches.
fn vision(b: &mut Builder, m: &ModelSpec, shapes: &LinearShapes) {
    let nu = b.policy;
    let t = &m.transformer;
    let (bf, d) = (b.batch as f64, t.width as f64);
    let rows = b.batch * m.tokens.target;
    let e = rows as f64 * d;
    let r = nu.residual.bytes();
    if let Some(adaln) = &shapes.final_adaln {
        conditioning::modulation(
            b,
            n!("final.adaln.silu"),
            adaln,
            n!("final.adaln.chunk"),
            false,
        );
    }
    if m.tokens.condition > 0 {
        // The final layer reads the target tokens, a slice of the sequence; backward writes a
        // zero gradient for the whole sequence and copies the slice's into it.
        let all = (b.batch * m.seq_at_block(t.depth - 1)) as f64 * d * r;
        b.vector(
            n!("final.take_target"),
            Vector::backward_only(2, Bytes(e * r), Bytes(all + e * r), Flops::ZERO),
        );
    }
    let x = norm(b, n!("final.norm"), t.norm, rows as f64, d, nu.residual, 1);
    let x = match shapes.final_adaln {
        Some(_) => conditioning::modulate(b, n!("final.modulate"), e, bf * d, x),
        None => x,
    };
    b.linear(&shapes.head, rows, x);
    let y = rows as f64 * shapes.head.n as f64;
    let o = nu.activation.bytes();
    let upcast = u8::from(nu.activation != Dtype::Fp32);
    let up = f64::from(upcast);
    b.vector(
        n!("loss.mse"),
        Vector::new(
            OpKind::Reduction,
            OpClass::Elementwise,
            Flops(3.0 * y),
            Bytes(y * o),
            Bytes(bf * FP32),
        )
        .side(Bytes(y * FP32))
        .saved(Bytes(y * (o + FP32)))
        // Eager: the prediction cast to fp32 when it is not (mse_loss runs in fp32 under
        // autocast), the target image cut into patches (a copy), and the loss.
        .composite(
            2 + upcast,
            Bytes(up * y * o + y * FP32 + 2.0 * y * FP32),
            Bytes(up * y * FP32 + y * FP32 + FP32),
        )
        // Backward: the gradient seed (a one-element fill), mse_loss's gradient in fp32, cast
        // back to the prediction's dtype.
        .bwd(Bwd::Explicit {
            fuses: false,
            kernels: 2 + upcast,
            read: Bytes(2.0 * y * FP32 + up * y * FP32),
            written: Bytes(FP32 + y * FP32 + up * y * o),
            flops: Flops(3.0 * y),
        }),
    );
    b.mark(Role::Loss);
}

/// Final norm, LM head and cross-entropy over the vocabulary.
fn language(b: &mut Builder, m: &ModelSpec, shapes: &LinearShapes, loss: LossImpl) {
    let nu = b.policy;
    let t = &m.transformer;
    let rows = b.batch * m.tokens.text;
    // The final norm runs on the sequence shard under sequence parallelism.
    let x = norm(
        b,
        n!("final.norm"),
        t.norm,
        rows as f64 / b.sp as f64,
        t.width as f64,
        nu.residual,
        1,
    );
    b.linear(&shapes.head, rows, x);
    b.shard_saved_input();
    let logits = rows as f64 * shapes.head.n as f64;
    let r = rows as f64;
    let o = nu.activation.bytes();
    match loss {
        LossImpl::Fused => return fused_cross_entropy(b, logits, r, o),
        LossImpl::FusedLinear => {
            let chunks = shapes.head.n.div_ceil(shapes.head.k.max(1));
            return chunked_cross_entropy(b, logits, r, o, chunks);
        }
        LossImpl::Torch => {}
    }
    let upcast = nu.activation != Dtype::Fp32;
    let (cast_read, cast_written) = if upcast {
        (logits * o, logits * FP32)
    } else {
        (0.0, 0.0)
    };
    // Cross-entropy under autocast runs in fp32: eager casts the logits up, runs log-softmax
    // (kept for backward) and gathers one log-probability per row with the targets (nll_loss).
    // Backward: the gradient seed (a one-element fill); nll_loss's gradient is a zero-filled
    // logits-sized tensor with one value scattered per row (fill, scatter); then log-softmax's
    // backward and the cast back to the logits' dtype. Log-softmax over a vocabulary-long row
    // reads its input three times and its gradient twice (`eager_softmax_passes`).
    //
    // Compiled, Inductor decomposes log_softmax + nll_loss into reductions over each row and
    // fuses them with the upcast: the forward reads the 16-bit logits twice (the row maximum,
    // then the sum of exponentials: a looped reduction, the vocabulary being longer than a
    // persistent reduction holds) and the targets, and writes each row's log-sum-exp and loss;
    // the partitioner saves the 16-bit logits and the log-sum-exp instead of fp32
    // log-probabilities (see `memory::fused_saved`); the backward is one kernel reading the
    // logits, targets and log-sum-exp and writing the logits' gradient in their dtype
    // (torch/_decomp/decompositions.py log_softmax and nll_loss; torch/_inductor codegen of
    // reductions). 4·o bytes per logit (three reads and one write of the 16-bit logits) plus
    // about 28 B per row, instead of the eager 48 B per logit (22 forward, 26 backward).
    // The row is the vocabulary this rank holds (a tensor-parallel shard; Megatron-LM's own
    // vocabulary-parallel cross-entropy is not this kernel).
    let (in_passes, grad_passes) = eager_softmax_passes(shapes.head.n, FP32);
    let fused_fwd_read = 2.0 * logits * o + r * INDEX;
    let fused_fwd_written = r * 2.0 * FP32;
    b.vector(
        n!("loss.cross_entropy"),
        Vector::new(
            OpKind::Softmax,
            OpClass::Elementwise,
            Flops(5.0 * logits),
            Bytes(fused_fwd_read),
            Bytes(fused_fwd_written),
        )
        .saved(Bytes(logits * FP32))
        .composite(
            2 + u8::from(upcast),
            Bytes(cast_read + in_passes * logits * FP32 + r * (INDEX + FP32)),
            Bytes(cast_written + logits * FP32 + FP32),
        )
        .bwd(Bwd::Split {
            kernels: 4 + u8::from(upcast),
            read: Bytes(logits * (1.0 + grad_passes) * FP32 + r * (INDEX + FP32) + cast_written),
            written: Bytes(FP32 + logits * 2.0 * FP32 + cast_read),
            flops: Flops(3.0 * logits),
            fused_read: Bytes(logits * o + r * (INDEX + FP32)),
            fused_written: Bytes(logits * o),
        }),
    );
    b.mark(Role::Loss);
}

/// A hand-written fused cross-entropy kernel ([`LossImpl::Fused`]), the same in every mode: the
/// forward reads each row of 16-bit logits once (the whole row in one block: FlashAttention's
/// `flash_attn/ops/triton/cross_entropy.py`, `BLOCK_SIZE` up to 64K columns) with its target,
/// and writes the row's loss and log-sum-exp; it keeps the logits and the log-sum-exp for
/// backward; the backward reads them with the targets and writes the logits' gradient in their
/// dtype (`o` bytes per logit). 3·o bytes per logit over the step instead of the framework's 48
/// eager (4·o compiled).
/// Modelled as a row reduction, one kernel each way.
fn fused_cross_entropy(b: &mut Builder, logits: f64, r: f64, o: f64) {
    b.vector(
        n!("loss.cross_entropy"),
        Vector::new(
            OpKind::Reduction,
            OpClass::Elementwise,
            Flops(5.0 * logits),
            Bytes(logits * o + r * INDEX),
            Bytes(r * 2.0 * FP32),
        )
        .saved(Bytes(logits * o + r * FP32))
        .bwd(Bwd::Explicit {
            fuses: false,
            kernels: 1,
            read: Bytes(logits * o + r * (INDEX + FP32)),
            written: Bytes(logits * o),
            flops: Flops(3.0 * logits),
        }),
    );
    b.mark(Role::Loss);
}

/// The classifier and cross-entropy fused and chunked ([`LossImpl::FusedLinear`], Liger-Kernel's
/// src/liger_kernel/ops/fused_linear_cross_entropy.py): rows go in about ⌈V/d⌉ chunks, so a
/// chunk's logits are about the size of the head's input; per chunk the head GEMM writes the
/// 16-bit logits, one kernel reads them with the targets and overwrites them with their gradient
/// (loss and log-sum-exp per row), and the head's input- and weight-gradient GEMMs read that
/// gradient (their FLOPs and bytes counted by the head's own backward ops). Nothing
/// logits-sized outlives its chunk (the head's saved input stands for the input gradient Liger
/// keeps); the loss's backward only scales what the forward computed. Launches: four per chunk
/// (the GEMM, the kernel, the two gradient GEMMs), of which the head's three GEMM ops count one
/// each.
fn chunked_cross_entropy(b: &mut Builder, logits: f64, r: f64, o: f64, chunks: u64) {
    b.vector(
        n!("loss.cross_entropy"),
        Vector::new(
            OpKind::Reduction,
            OpClass::Elementwise,
            Flops(8.0 * logits),
            Bytes(logits * o + r * INDEX),
            Bytes(logits * o + r * 2.0 * FP32),
        )
        .saved(Bytes(r * FP32))
        .composite(
            (4 * chunks.max(1) - 3).min(u64::from(u8::MAX)) as u8,
            Bytes(logits * o + r * INDEX),
            Bytes(logits * o + r * 2.0 * FP32),
        )
        .bwd(Bwd::None),
    );
    b.mark(Role::Loss);
}
