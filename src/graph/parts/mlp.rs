//! The MLP branch of a block, forward and backward: up projection, activation, down projection.
//! Vector FLOPs per element of the hidden layer: SwiGLU 5, GeGLU 9, GELU 8.

use crate::graph::builder::{n, Builder, Bwd, Names, Vector};
use crate::graph::shapes::{Linear, LinearShapes};
use crate::graph::Dtype;
use crate::spec::model::MlpKind;
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// The MLP over `rows` token rows, input `x` (after the norm and modulation).
pub(crate) fn forward(b: &mut Builder, m: &ModelSpec, shapes: &LinearShapes, rows: u64, x: Dtype) {
    branch(
        b,
        m.transformer.mlp,
        (&shapes.fc1, &shapes.fc2),
        rows,
        x,
        false,
    );
}

/// Up projection `up`, activation and down projection `down` over `rows` rows (per copy, for
/// experts), input in `x`; `shared` names the activation as a shared expert's.
pub(crate) fn branch(
    b: &mut Builder,
    kind: MlpKind,
    (up, down): (&Linear, &Linear),
    rows: u64,
    x: Dtype,
    shared: bool,
) {
    let act = b.policy.activation;
    b.linear(up, rows, x);
    if up.copies == 1 {
        b.shard_saved_input();
    }
    let hidden = (up.copies * rows) as f64 * down.k as f64;
    activation(b, kind, hidden, names(kind, shared));
    b.linear(down, rows, act);
}

/// The activation's op names: the block MLP's (or its experts') or a shared expert's.
fn names(kind: MlpKind, shared: bool) -> &'static Names {
    match (kind, shared) {
        (MlpKind::Swiglu, false) => n!("mlp.swiglu"),
        (MlpKind::Geglu, false) => n!("mlp.geglu"),
        (MlpKind::Gelu, false) => n!("mlp.gelu"),
        (MlpKind::Swiglu, true) => n!("moe.shared.swiglu"),
        (MlpKind::Geglu, true) => n!("moe.shared.geglu"),
        (MlpKind::Gelu, true) => n!("moe.shared.gelu"),
    }
}

/// The activation over `hidden` elements of the hidden layer (per branch for gated kinds).
fn activation(b: &mut Builder, kind: MlpKind, hid: f64, names: &'static Names) {
    let o = b.policy.activation.bytes();
    match kind {
        // act(x1) * x2: eager runs the activation (reads x1, writes a) and mul (reads a, x2,
        // writes y); backward needs x1, x2 and a. FLOPs per element: SiLU 4 or tanh-GELU 8,
        // and the product.
        MlpKind::Swiglu | MlpKind::Geglu => {
            let f = if kind == MlpKind::Swiglu { 5.0 } else { 9.0 };
            b.vector(
                names,
                Vector::pointwise(Flops(f * hid), Bytes(2.0 * hid * o), Bytes(hid * o))
                    .saved(Bytes(3.0 * hid * o))
                    .composite(2, Bytes(3.0 * hid * o), Bytes(2.0 * hid * o))
                    // Backward: dx2 = d·a, da = d·x2, dx1 = act'(x1)·da, and the cat of dx1 and
                    // dx2 that undoes the chunk of the fused up projection: four kernels.
                    .bwd(Bwd::Explicit {
                        fuses: true,
                        read: Bytes(8.0 * hid * o),
                        written: Bytes(5.0 * hid * o),
                        flops: Flops(2.0 * f * hid),
                        kernels: 4,
                    }),
            )
        }
        MlpKind::Gelu => b.vector(
            names,
            Vector::pointwise(Flops(8.0 * hid), Bytes(hid * o), Bytes(hid * o))
                .saved(Bytes(hid * o)),
        ),
    }
}
