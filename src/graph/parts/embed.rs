//! The input side, forward and backward: the noise mix of flow matching, the patch embedding of
//! both images (condition and noisy target), position embeddings, the conditioning vector
//! ([`super::conditioning`]), token embeddings of language models and in-context tokens.
//! Vector FLOPs per element: noise mix 3, position add 1, lookups 0 (their backward 1).

use super::common::weights_cast;
use super::conditioning;
use crate::graph::builder::{n, Builder, Bwd, Vector, FP32, INDEX};
use crate::graph::shapes::{cast_tensors, LinearShapes};
use crate::graph::{Dtype, OpClass, OpKind};
use crate::spec::model::{ModelKind, PositionEmbed};
use crate::spec::ModelSpec;
use crate::units::{Bytes, Flops};

/// The embeddings of one step.
pub(crate) fn forward(b: &mut Builder, m: &ModelSpec, shapes: &LinearShapes) {
    let nu = b.policy;
    let batch = b.batch as f64;
    let d = m.transformer.width as f64;
    weights_cast(
        b,
        n!("embed.weights_cast"),
        cast_tensors(shapes.embed_layers()),
    );
    match m.kind {
        ModelKind::Vision => vision(b, m, shapes),
        ModelKind::Language => language(b, m),
    }
    if m.tokens.in_context > 0 {
        let ic = m.tokens.in_context as f64 * batch;
        let before = batch * (m.tokens.condition + m.tokens.target + m.tokens.text) as f64 * d;
        let after = before + ic * d;
        let r = nu.residual.bytes();
        b.vector(
            n!("in_context.concat"),
            Vector::pointwise(Flops(ic * d), Bytes(before * r), Bytes(after * r))
                .side(Bytes(ic * d * FP32 * 2.0))
                .alone(),
        );
    }
}

/// Patch embedding of the condition image and the noisy target, then the conditioning vector.
fn vision(b: &mut Builder, m: &ModelSpec, shapes: &LinearShapes) {
    let nu = b.policy;
    let (o, r) = (nu.activation.bytes(), nu.residual.bytes());
    let d = m.transformer.width as f64;
    let inp = m.input.as_ref().expect("validated");
    let rows = b.batch * m.patch_tokens();
    let pin = inp.channels * inp.patch * inp.patch;
    // In f64: at the bounds the product exceeds u64 (exact below 2^53 either way).
    let target_pixels = (b.batch * m.tokens.target) as f64 * pin as f64;
    if m.embedding.timestep_frequencies > 0 {
        // Diffusion / flow matching noises the target batch each step,
        // z = t·x + (1 − t)·ε in fp32: mul, rsub (1 − t per sample), mul, add.
        b.vector(
            n!("noise.mix"),
            Vector::pointwise(
                Flops(3.0 * target_pixels),
                Bytes(2.0 * target_pixels * FP32),
                Bytes(target_pixels * FP32),
            )
            .composite(
                4,
                Bytes(4.0 * target_pixels * FP32),
                Bytes(3.0 * target_pixels * FP32),
            )
            .alone()
            .bwd(Bwd::None),
        );
    }
    // The condition image and the noisy target are embedded one after the other (two launches
    // of each embedding op, same FLOPs and bytes) and their tokens concatenated.
    let images = 1 + u8::from(m.tokens.condition > 0);
    let first = b.ops.len();
    let mut src = Dtype::Fp32;
    for l in shapes.patch_layers() {
        b.linear(l, rows, src);
        src = nu.activation;
    }
    let e = rows as f64 * d;
    if m.embedding.position != PositionEmbed::None {
        let table = m.patch_tokens() as f64 * d * FP32;
        b.vector(
            n!("pos.add"),
            Vector::pointwise(Flops(e), Bytes(e * o), Bytes(e * r))
                .side(Bytes(table))
                // The table is frozen; the gradient passes to the patch embedding, cast to its
                // dtype when that differs from the residual stream's.
                .bwd(if nu.activation != nu.residual {
                    Bwd::Explicit {
                        fuses: false,
                        read: Bytes(e * r),
                        written: Bytes(e * o),
                        flops: Flops::ZERO,
                        kernels: 1,
                    }
                } else {
                    Bwd::None
                }),
        );
    }
    b.repeat_launches(first, images);
    if images > 1 {
        // The patch embedding's (autocast) weights serve both images: backward adds the two
        // gradients of each weight and bias tensor.
        let (tensors, params) = cast_tensors(shapes.patch_layers());
        let params = params as f64;
        let grads = params * nu.operand.bytes();
        b.vector(
            n!("patch.weights_shared"),
            Vector::backward_only(tensors, Bytes(2.0 * grads), Bytes(grads), Flops(params))
                .weights(),
        );
        b.vector(
            n!("patch.concat"),
            Vector::pointwise(Flops::ZERO, Bytes(e * r), Bytes(e * r))
                .alone()
                .bwd(Bwd::None),
        );
    }
    conditioning::forward(b, m, shapes);
}

/// Token (and learned position) embeddings of a language model.
fn language(b: &mut Builder, m: &ModelSpec) {
    let d = m.transformer.width as f64;
    let rows = b.batch * m.tokens.text;
    let e = rows as f64 * d;
    let v = m.padded_vocab() as f64;
    let tied = u8::from(m.embedding.tied_head);
    b.vector(
        n!("tok_embed.lookup"),
        Vector::new(
            OpKind::Embedding,
            OpClass::Elementwise,
            Flops::ZERO,
            Bytes(e * FP32),
            Bytes(e * FP32),
        )
        .side(Bytes(rows as f64 * INDEX))
        .weights()
        // A dense fp32 gradient of the table; a head tied to the table adds its weight gradient
        // to it (one more kernel over the table).
        .bwd(Bwd::Explicit {
            fuses: false,
            kernels: 1 + tied,
            read: Bytes(e * FP32 + rows as f64 * INDEX + f64::from(tied) * 2.0 * v * d * FP32),
            written: Bytes((1.0 + f64::from(tied)) * v * d * FP32),
            flops: Flops(e),
        }),
    );
    if m.embedding.position == PositionEmbed::Learned {
        let s = m.tokens.text as f64;
        b.vector(
            n!("pos_embed.add"),
            Vector::new(
                OpKind::Embedding,
                OpClass::Elementwise,
                Flops(e),
                Bytes(e * FP32),
                Bytes(e * FP32),
            )
            .side(Bytes(s * d * FP32))
            .weights()
            .bwd(Bwd::Explicit {
                fuses: false,
                kernels: 1,
                read: Bytes(e * FP32),
                written: Bytes(s * d * FP32),
                flops: Flops(e),
            }),
        );
    }
}
