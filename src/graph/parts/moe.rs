//! A mixture-of-experts MLP, forward and backward, as a dropless grouped-GEMM implementation
//! (Megatron-LM's `--moe-grouped-gemm` with its token permutation; Gale et al., "MegaBlocks",
//! arXiv 2211.15841) under balanced routing:
//!
//! 1. the router `Linear(d, E)` over the T tokens, its softmax in fp32, top-k and the
//!    renormalization of the k weights (Mixtral's routing, Jiang et al., arXiv 2401.04088);
//! 2. the permutation: the T·k (token, expert) pairs sorted by expert (argsort) and the tokens
//!    gathered in that order (`index_select`);
//! 3. with expert parallelism over P ranks, an all-to-all sends each row to the rank holding
//!    its expert (timed in [`crate::time::comm`], not an op here); each rank then holds E/P
//!    experts and, balanced, T·k·c·P/E rows for each (c the capacity factor);
//! 4. the experts as two grouped GEMMs around the activation;
//! 5. an all-to-all back, the routing weights applied, and the rows added back to their tokens
//!    (`index_add_`).
//!
//! A shared expert (Qwen2-MoE, DeepSeekMoE) runs on every token beside the routed ones, with an
//! optional sigmoid gate. Model FLOPs count the routed rows without the capacity padding.

use super::common::grad_fork;
use super::mlp;
use crate::graph::builder::{n, Builder, Bwd, Vector, FP32, INDEX};
use crate::graph::shapes::LinearShapes;
use crate::graph::{Dtype, OpClass, OpKind, StepConfig};
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// Rows each local expert computes per micro-step: the balanced share of the T·k routed rows,
/// times the capacity factor, over the experts of this rank.
pub fn rows_per_expert(m: &ModelSpec, tokens: u64, expert_shards: u64) -> u64 {
    m.transformer.moe.as_ref().map_or(0, |moe| {
        let routed = tokens as f64 * moe.top_k as f64 * moe.capacity_factor;
        (routed * expert_shards as f64 / moe.experts as f64).ceil() as u64
    })
}

/// The MoE MLP over `rows` tokens, input `x` (after the norm).
pub(crate) fn forward(
    b: &mut Builder,
    m: &ModelSpec,
    cfg: &StepConfig,
    shapes: &LinearShapes,
    rows: u64,
    x: Dtype,
) {
    let (Some(moe), Some(router)) = (&m.transformer.moe, &shapes.router) else {
        return;
    };
    let act = b.policy.activation;
    let (o, xb) = (act.bytes(), x.bytes());
    // The weighted expert outputs: the activation dtype promoted by the routing weights, which
    // are cast to the input's dtype (fp32 under autocast with an fp32 residual stream).
    let y = act.wider(x);
    let yb = y.bytes();
    let (t, d) = (rows as f64, m.transformer.width as f64);
    let (e, k) = (moe.experts as f64, moe.top_k as f64);
    let routed = t * k;
    let rd = routed * d;

    // 1. Routing. The input feeds the router and the permutation: backward adds both gradients.
    grad_fork(b, n!("moe.fork"), t * d, xb);
    b.linear(router, rows, x);
    let logits = t * e;
    // softmax(logits.float()): the cast to fp32 (when the logits are not) and the softmax.
    let cast = if act == Dtype::Fp32 { 0.0 } else { 1.0 };
    b.vector(
        n!("moe.router_softmax"),
        Vector::new(
            OpKind::Softmax,
            OpClass::Elementwise,
            Flops(5.0 * logits),
            Bytes(logits * o),
            Bytes(logits * FP32),
        )
        .saved(Bytes(logits * FP32))
        .composite(
            1 + cast as u8,
            Bytes(logits * (o + cast * FP32)),
            Bytes(logits * FP32 * (1.0 + cast)),
        ),
    );
    // top-k: values (fp32) and indices (int64). Backward scatters the k gradients into a zeroed
    // [T, E] gradient: two kernels.
    let topk = routed * (FP32 + INDEX);
    b.vector(
        n!("moe.topk"),
        Vector::new(
            OpKind::Reduction,
            OpClass::Elementwise,
            Flops(logits),
            Bytes(logits * FP32),
            Bytes(topk),
        )
        .alone()
        .bwd(Bwd::Explicit {
            fuses: false,
            read: Bytes(routed * (FP32 + INDEX)),
            written: Bytes(2.0 * logits * FP32),
            flops: Flops::ZERO,
            kernels: 2,
        }),
    );
    // The k weights renormalized (sum, divide) and cast to the input's dtype (a no-op when it
    // is fp32): two or three kernels over T·k elements. Backward of the division and the sum:
    // three divides, a negation, a product, a sum and the add of the two paths, seven kernels
    // (after the cast's).
    let w = routed * FP32;
    let cast = u8::from(x != Dtype::Fp32);
    b.vector(
        n!("moe.renormalize"),
        Vector::pointwise(Flops(2.0 * routed), Bytes(w), Bytes(routed * xb))
            .saved(Bytes(2.0 * w + t * FP32))
            .composite(
                2 + cast,
                Bytes(2.0 * w + t * FP32 + f64::from(cast) * w),
                Bytes(w + t * FP32 + f64::from(cast) * routed * xb),
            )
            .bwd(Bwd::Explicit {
                fuses: true,
                read: Bytes(routed * xb + 6.0 * w + 3.0 * t * FP32),
                written: Bytes(5.0 * w + 2.0 * t * FP32),
                flops: Flops(8.0 * routed),
                kernels: 7 + cast,
            }),
    );
    // 2. The permutation: argsort of the T·k expert ids and the token index of each pair (no
    // gradient), then the gather of the tokens; its backward adds the rows' gradients back into
    // a zeroed [T, d] gradient (zeros and index_add_: two kernels).
    b.vector(
        n!("moe.sort"),
        Vector::new(
            OpKind::Reduction,
            OpClass::Elementwise,
            Flops::ZERO,
            Bytes(routed * INDEX),
            Bytes(2.0 * routed * INDEX),
        )
        .alone()
        .composite(2, Bytes(2.0 * routed * INDEX), Bytes(2.0 * routed * INDEX))
        .bwd(Bwd::None),
    );
    b.vector(
        n!("moe.permute"),
        Vector::new(
            OpKind::Embedding,
            OpClass::Elementwise,
            Flops::ZERO,
            Bytes(rd * xb),
            Bytes(rd * xb),
        )
        .side(Bytes(routed * INDEX))
        .alone()
        .bwd(Bwd::Explicit {
            fuses: false,
            read: Bytes(rd * xb + routed * INDEX + t * d * xb),
            written: Bytes(2.0 * t * d * xb),
            flops: Flops(rd),
            kernels: 2,
        }),
    );

    // 3-4. The local experts as grouped GEMMs. Padding rows (capacity factor above 1) are
    // executed but are not model FLOPs.
    let shards = cfg.expert_shards.max(1);
    let per_expert = rows_per_expert(m, rows, shards);
    let (up, down) = (shapes.fc1.local(shards), shapes.fc2.local(shards));
    let first = b.ops.len();
    mlp::branch(b, m.transformer.mlp, (&up, &down), per_expert, x, false);
    let executed = (up.copies * per_expert) as f64;
    let model_share = (routed * shards as f64 / e * up.copies as f64 / executed).min(1.0);
    for op in &mut b.ops[first..] {
        op.model_flops = op.model_flops * model_share;
    }

    // 5. The routing weights gathered into the sorted order (`index`) times the expert
    // outputs (`mul`), then the rows added back to their tokens: zeros [T, d] and index_add_,
    // which keeps its source for backward. Backward: the outputs' gradient (g·w), the weights'
    // (g·y summed over d, then scattered back into zeros: new_zeros and index_put), and the
    // combine's, a gather of the rows.
    b.vector(
        n!("moe.weigh"),
        Vector::pointwise(Flops(rd), Bytes(rd * o), Bytes(rd * yb))
            .side(Bytes(routed * (xb + INDEX)))
            .saved(Bytes(rd * o + routed * xb))
            .composite(
                2,
                Bytes(rd * o + routed * (2.0 * xb + INDEX)),
                Bytes(rd * yb + routed * xb),
            )
            .alone()
            .bwd(Bwd::Explicit {
                fuses: false,
                read: Bytes(2.0 * rd * yb + rd * o + routed * (2.0 * xb + INDEX)),
                written: Bytes(rd * (o + yb) + 3.0 * routed * xb),
                flops: Flops(3.0 * rd),
                kernels: 5,
            }),
    );
    b.vector(
        n!("moe.combine"),
        Vector::new(
            OpKind::Embedding,
            OpClass::Elementwise,
            Flops(rd),
            Bytes(rd * yb),
            Bytes(t * d * yb),
        )
        .side(Bytes(routed * INDEX))
        .saved(Bytes(rd * yb))
        .composite(2, Bytes(rd * yb + routed * INDEX), Bytes(2.0 * t * d * yb))
        .alone()
        .bwd(Bwd::Explicit {
            fuses: false,
            read: Bytes(rd * yb + routed * INDEX),
            written: Bytes(rd * yb),
            flops: Flops::ZERO,
            kernels: 1,
        }),
    );

    // The shared expert on every token, its optional gate, and the sum with the routed output.
    if let (Some(up), Some(down)) = (&shapes.shared_fc1, &shapes.shared_fc2) {
        mlp::branch(b, m.transformer.mlp, (up, down), rows, x, true);
        let td = t * d;
        if let Some(gate) = &shapes.shared_gate {
            b.linear(gate, rows, x);
            // sigmoid(gate) * shared: two kernels; backward three.
            b.vector(
                n!("moe.shared.gating"),
                Vector::pointwise(Flops(5.0 * t + td), Bytes(td * o), Bytes(td * o))
                    .side(Bytes(t * o))
                    .saved(Bytes(td * o + t * o))
                    .composite(2, Bytes(td * o + 2.0 * t * o), Bytes(td * o + t * o))
                    .bwd(Bwd::Explicit {
                        fuses: true,
                        read: Bytes(2.0 * td * o + 2.0 * t * o),
                        written: Bytes(td * o + 2.0 * t * o),
                        flops: Flops(2.0 * td + 5.0 * t),
                        kernels: 3,
                    }),
            );
        }
        // routed + shared: one add, whose backward hands the gradient to both.
        b.vector(
            n!("moe.shared.add"),
            Vector::pointwise(Flops(td), Bytes(td * o), Bytes(td * o))
                .side(Bytes(td * o))
                .bwd(Bwd::None),
        );
    }
}

/// Bytes one rank sends in one all-to-all of a MoE layer under expert parallelism: the routed
/// rows of its `tokens` tokens (capacity padding included) in the activation dtype. A layer has
/// four per micro-step: dispatch and combine in the forward, their gradients in the backward.
pub fn all_to_all_bytes(m: &ModelSpec, tokens: u64, activation: Dtype) -> f64 {
    m.transformer.moe.as_ref().map_or(0.0, |moe| {
        tokens as f64
            * moe.top_k as f64
            * moe.capacity_factor
            * m.transformer.width as f64
            * activation.bytes()
    })
}
