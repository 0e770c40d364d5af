//! One transformer block, pre-norm: the attention branch and the MLP branch, each with its norm,
//! optional adaLN modulation, dropout and residual add.

use super::common::{dropout, grad_fork, residual, weights_cast};
use super::{attention, conditioning, mlp, moe, norm::norm};
use crate::graph::builder::{n, Builder};
use crate::graph::shapes::{cast_tensors, LinearShapes};
use crate::graph::{OpClass, Role, StepConfig};
use crate::spec::ModelSpec;

/// The blocks of one sequence-length group (`b.layer` says which), at sequence `seq`.
pub(crate) fn forward(
    b: &mut Builder,
    m: &ModelSpec,
    cfg: &StepConfig,
    shapes: &LinearShapes,
    seq: u64,
) {
    let nu = b.policy;
    let t = &m.transformer;
    let rows = b.batch * seq;
    // Between the tensor-parallel regions (norms, modulation, dropout, residual adds) each GPU
    // handles 1/sp of the tokens under sequence parallelism.
    let (bf, tf, d) = (b.batch as f64, rows as f64 / b.sp as f64, t.width as f64);
    let e = tf * d;
    // Weights of qkv, proj, fc1, fc2 (+ adaLN, the router and shared expert, this rank's
    // experts) and the biases the model has: autocast casts each tensor, one kernel each.
    weights_cast(
        b,
        n!("weights.cast"),
        cast_tensors(shapes.block_layers_on(cfg.expert_shards)),
    );
    if let Some(adaln) = &shapes.adaln {
        conditioning::modulation(b, n!("adaln.silu"), adaln, n!("adaln.chunk"), true);
    }
    let cond = if shapes.adaln.is_some() { bf * d } else { 0.0 };

    // Attention branch. The residual stream feeds both the norm and the residual add.
    grad_fork(b, n!("attn.fork"), e, nu.residual.bytes());
    let x = norm(b, n!("attn.norm"), t.norm, tf, d, nu.residual, 1);
    b.mark(Role::BlockInput);
    let x = match shapes.adaln {
        Some(_) => conditioning::modulate(b, n!("attn.modulate"), e, cond, x),
        None => x,
    };
    attention::forward(b, m, cfg, shapes, seq, x);
    if t.post_norm {
        // Its output is read by the residual add at the activation width (an approximation
        // where the norm widens it).
        norm(b, n!("attn.post_norm"), t.norm, tf, d, nu.activation, 1);
    }
    if t.dropout > 0.0 {
        let o = nu.activation.bytes();
        dropout(b, n!("attn.dropout_out"), e, o, OpClass::Elementwise, false);
    }
    residual(b, n!("attn.residual"), e, cond);
    b.mark(Role::Residual);

    // MLP branch. Its norm reads the residual sum, which compiled steps recompute rather than
    // keep (see `memory::activation_bytes`).
    grad_fork(b, n!("mlp.fork"), e, nu.residual.bytes());
    let x = norm(b, n!("mlp.norm"), t.norm, tf, d, nu.residual, 1);
    b.mark(Role::ResidualNorm);
    let x = match shapes.adaln {
        Some(_) => conditioning::modulate(b, n!("mlp.modulate"), e, cond, x),
        None => x,
    };
    if shapes.router.is_some() {
        moe::forward(b, m, cfg, shapes, rows, x);
    } else {
        mlp::forward(b, m, shapes, rows, x);
    }
    if t.post_norm {
        norm(b, n!("mlp.post_norm"), t.norm, tf, d, nu.activation, 1);
    }
    if t.dropout > 0.0 {
        let o = nu.activation.bytes();
        dropout(b, n!("mlp.dropout_out"), e, o, OpClass::Elementwise, false);
    }
    residual(b, n!("mlp.residual"), e, cond);
}
