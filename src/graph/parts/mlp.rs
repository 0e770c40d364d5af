//! The MLP branch of a block, forward and backward: up projection, activation, down projection.
//! Vector FLOPs per element of the hidden layer: SwiGLU 5, GELU 8.

use crate::graph::builder::{n, Builder, Bwd, Vector};
use crate::graph::shapes::LinearShapes;
use crate::graph::Dtype;
use crate::spec::model::MlpKind;
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// The MLP over `rows` token rows, input `x` (after the norm and modulation).
pub(crate) fn forward(b: &mut Builder, m: &ModelSpec, shapes: &LinearShapes, rows: u64, x: Dtype) {
    let act = b.policy.activation;
    b.linear(&shapes.fc1, rows, x);
    let hid = rows as f64 * m.transformer.mlp_hidden as f64;
    let o = act.bytes();
    match m.transformer.mlp {
        // silu(x1) * x2: eager runs silu (reads x1, writes s) and mul (reads s, x2, writes y);
        // backward needs x1, x2 and s.
        MlpKind::Swiglu => b.vector(
            n!("mlp.swiglu"),
            Vector::pointwise(Flops(5.0 * hid), Bytes(2.0 * hid * o), Bytes(hid * o))
                .saved(Bytes(3.0 * hid * o))
                .composite(2, Bytes(3.0 * hid * o), Bytes(2.0 * hid * o))
                // Backward: dx2 = d·s, ds = d·x2, dx1 = silu'(x1)·ds, and the cat of dx1 and dx2
                // that undoes the chunk of the fused w12 output: four kernels.
                .bwd(Bwd::Explicit {
                    fuses: true,
                    read: Bytes(8.0 * hid * o),
                    written: Bytes(5.0 * hid * o),
                    flops: Flops(10.0 * hid),
                    kernels: 4,
                }),
        ),
        MlpKind::Gelu => b.vector(
            n!("mlp.gelu"),
            Vector::pointwise(Flops(8.0 * hid), Bytes(hid * o), Bytes(hid * o))
                .saved(Bytes(hid * o)),
        ),
    }
    b.linear(&shapes.fc2, rows, act);
}
