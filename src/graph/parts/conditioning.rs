//! Diffusion conditioning: the timestep embedding (sinusoidal features, `Linear(f, d)`, SiLU,
//! `Linear(d, d)`), the class embedding added to it, and adaLN: per block the modulation linear
//! on SiLU(c) and `x·(1 + scale) + shift` after each norm. Vector FLOPs per element: SiLU 4,
//! modulate 2, add 1.

use super::super::shapes::{Linear, LinearShapes};
use crate::graph::builder::{n, Builder, Bwd, Names, Vector, FP32, INDEX};
use crate::graph::{Dtype, OpKind};
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// The conditioning vector c = timestep embedding + class embedding (one row per sample).
pub(crate) fn forward(b: &mut Builder, m: &ModelSpec, shapes: &LinearShapes) {
    let o = b.policy.activation.bytes();
    let e = &m.embedding;
    let batch = b.batch as f64;
    let d = m.transformer.width as f64;
    if let (Some(fc1), Some(fc2)) = (&shapes.t_fc1, &shapes.t_fc2) {
        let f = e.timestep_frequencies as f64;
        // Sinusoidal features: the frequency table (arange, mul, div, exp), t·freqs, cos, sin
        // and their concatenation: eight small kernels.
        let half = f / 2.0;
        b.vector(
            n!("t_embed.freq"),
            Vector::pointwise(
                Flops(4.0 * batch * f),
                Bytes(batch * FP32),
                Bytes(batch * f * FP32),
            )
            .composite(
                8,
                Bytes(half * FP32 * 4.0 + batch * FP32 + 4.0 * batch * half * FP32),
                Bytes(half * FP32 * 4.0 + 5.0 * batch * half * FP32),
            )
            .bwd(Bwd::None),
        );
        b.linear(fc1, b.batch, Dtype::Fp32);
        let x = batch * d;
        b.vector(
            n!("t_embed.silu"),
            Vector::pointwise(Flops(4.0 * x), Bytes(x * o), Bytes(x * o)).saved(Bytes(x * o)),
        );
        b.linear(fc2, b.batch, b.policy.activation);
    }
    if e.classes > 0 {
        let x = batch * d;
        b.vector(
            n!("y_embed.lookup"),
            Vector::new(
                OpKind::Embedding,
                crate::graph::OpClass::Elementwise,
                Flops::ZERO,
                Bytes(x * FP32),
                Bytes(x * FP32),
            )
            .side(Bytes(batch * INDEX))
            .weights()
            .bwd(Bwd::Explicit {
                fuses: false,
                kernels: 1,
                read: Bytes(x * FP32 + batch * INDEX),
                written: Bytes(e.classes as f64 * d * FP32),
                flops: Flops(x),
            }),
        );
        b.vector(
            n!("cond.add"),
            Vector::pointwise(Flops(x), Bytes(x * FP32), Bytes(x * FP32))
                .side(Bytes(x * o))
                // The gradient passes to both terms; the timestep embedding's copy is cast to
                // its dtype when that is not fp32.
                .bwd(if b.policy.activation != Dtype::Fp32 {
                    Bwd::Explicit {
                        fuses: false,
                        kernels: 1,
                        read: Bytes(x * FP32),
                        written: Bytes(x * o),
                        flops: Flops::ZERO,
                    }
                } else {
                    Bwd::None
                }),
        );
    }
}

/// adaLN's `Linear(d, chunks·d)` on SiLU(c): one row per sample (M = batch), the conditioning
/// vector c in fp32; its SiLU keeps its input for backward. With `accumulates`, c's gradient
/// from this layer is added to the gradient from the layers after it.
pub(crate) fn modulation(
    b: &mut Builder,
    silu: &'static Names,
    linear: &Linear,
    chunk: &'static Names,
    accumulates: bool,
) {
    let width = linear.k;
    let chunks = linear.n / width;
    let x = b.batch as f64 * width as f64;
    let acc = f64::from(u8::from(accumulates));
    b.vector(
        silu,
        Vector::pointwise(Flops(4.0 * x), Bytes(x * FP32), Bytes(x * FP32))
            .saved(Bytes(x * FP32))
            // silu's backward, then (in every block; the final layer's gradient arrives first)
            // the add that accumulates c's gradient over the layers that read c.
            .bwd(Bwd::Explicit {
                fuses: true,
                read: Bytes((2.0 + 2.0 * acc) * x * FP32),
                written: Bytes((1.0 + acc) * x * FP32),
                flops: Flops((4.0 + acc) * x),
                kernels: 1 + u8::from(accumulates),
            }),
    );
    b.linear(linear, b.batch, Dtype::Fp32);
    // The output is chunked into views (shift, scale, gate...); backward concatenates their
    // gradients: one kernel.
    let out = Bytes(chunks as f64 * x * b.policy.activation.bytes());
    b.vector(chunk, Vector::backward_only(1, out, out, Flops::ZERO));
}

/// adaLN modulation `x·(1 + scale) + shift` over E elements of dtype `x`, with per-sample scale
/// and shift (`cond` elements each, in the activation dtype). Eager runs three kernels
/// (1 + scale, mul, add); backward keeps x. Returns the output's dtype (x's).
pub(crate) fn modulate(
    b: &mut Builder,
    names: &'static Names,
    e: f64,
    cond: f64,
    x: Dtype,
) -> Dtype {
    let o = b.policy.activation.bytes();
    let xb = x.bytes();
    let cast = x != b.policy.activation;
    let c = f64::from(u8::from(cast));
    b.vector(
        names,
        Vector::pointwise(Flops(2.0 * e), Bytes(e * xb), Bytes(e * xb))
            .side(Bytes(2.0 * cond * o))
            .saved(Bytes(e * xb))
            .composite(
                3,
                Bytes(2.0 * e * xb + 3.0 * cond * o),
                Bytes(2.0 * e * xb + cond * o),
            )
            // Backward (gradient g in x's dtype): d shift = Σ g (sum over tokens), d scale =
            // Σ g·x (mul, sum), dx = g·(1 + scale) (mul), and the two sums cast to the
            // activation dtype when x's differs: four or six kernels.
            .bwd(Bwd::Explicit {
                fuses: true,
                read: Bytes(e * 5.0 * xb + cond * o + c * 2.0 * cond * xb),
                written: Bytes(e * 2.0 * xb + 2.0 * cond * xb + c * 2.0 * cond * o),
                flops: Flops(4.0 * e),
                kernels: 4 + 2 * u8::from(cast),
            }),
    );
    x
}
