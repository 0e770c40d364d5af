//! Normalization layers, forward and backward. Vector FLOPs per element: RMSNorm 4, LayerNorm 7.
//!
//! LayerNorm is one native kernel that keeps its input and two fp32 statistics per row; under
//! autocast it runs (and outputs) in fp32. RMSNorm, which eager PyTorch runs as a composite as
//! written in JiT's and Llama's reference code (`x.float()`, `pow`, `mean`, `+ eps`, `rsqrt`,
//! `mul`, `type_as`, `* weight`), keeps the fp32 input, the normalized tensor and one fp32
//! statistic per row; its output takes the weight's dtype when that is wider (fp32 under
//! autocast).

use crate::graph::builder::{Builder, Bwd, Names, Vector, FP32};
use crate::graph::{Dtype, OpClass, OpKind};
use crate::spec::model::NormKind;
use crate::units::{Bytes, Flops};

/// A norm over `rows` rows of `width` (split into `tensors` separately normalized tensors, e.g.
/// q and k), input in `input`; returns the output's dtype.
pub(crate) fn norm(
    b: &mut Builder,
    names: &'static Names,
    kind: NormKind,
    rows: f64,
    width: f64,
    input: Dtype,
    tensors: u8,
) -> Dtype {
    let e = rows * width;
    let p = b.policy.param.bytes();
    let output = input.wider(b.policy.param);
    let (inb, outb) = (input.bytes(), output.bytes());
    match kind {
        NormKind::Rmsnorm => {
            let cast = input != Dtype::Fp32;
            let casts = if cast { 2 } else { 0 };
            let cast_bytes = if cast { e * (inb + FP32) } else { 0.0 };
            let read = 3.0 * e * FP32 + 3.0 * rows * FP32 + e * inb + width * p + cast_bytes;
            let written = 2.0 * e * FP32 + 3.0 * rows * FP32 + e * outb + cast_bytes;
            // Eager backward, as autograd runs the composite (per tensor, gradient g of the
            // output in the output dtype, fp32 statistics): the weight gradient (mul g·n, sum
            // over rows), g·weight, then through rsqrt/mean/pow: mul by x and sum over the row,
            // three kernels on the row statistics, the mean's broadcast (div), pow's derivative
            // (pow, mul, mul) and the add of x's two gradient paths: 14 kernels. Reading 14
            // tensors of E elements and writing 9 (fp32, but g and n at their own widths).
            // Casts: the gradient of n to n's dtype when the weight widened the output, and, for
            // an input that is not fp32, the backward of type_as and of x.float().
            let w = width * f64::from(tensors);
            let widened = output != input;
            let bwd_read = e * (3.0 * outb + inb)
                + w * p
                + 10.0 * e * FP32
                + 7.0 * rows * FP32
                + if widened { e * outb } else { 0.0 }
                + if cast { e * (inb + FP32) } else { 0.0 };
            let bwd_written = 2.0 * e * outb
                + w * p
                + 7.0 * e * FP32
                + 4.0 * rows * FP32
                + if widened { e * inb } else { 0.0 }
                + if cast { e * (inb + FP32) } else { 0.0 };
            let bwd_kernels = 14 + 2 * u8::from(cast) + u8::from(widened);
            b.vector(
                names,
                Vector::new(
                    OpKind::Normalization { composite: true },
                    OpClass::Normalization,
                    Flops(4.0 * e),
                    Bytes(e * inb),
                    Bytes(e * outb),
                )
                .saved(Bytes(e * FP32 + e * inb + rows * FP32))
                .composite((6 + casts) * tensors, Bytes(read), Bytes(written))
                .bwd(Bwd::Explicit {
                    fuses: true,
                    read: Bytes(bwd_read),
                    written: Bytes(bwd_written),
                    flops: Flops(8.0 * e),
                    kernels: bwd_kernels * tensors,
                }),
            );
        }
        NormKind::LayernormLowPrecision => {
            // LPLayerNorm: x (and the fp32 weight and bias) cast to the autocast dtype, then
            // F.layer_norm with autocast off: it keeps and returns 16-bit tensors. Eager, the
            // casts are kernels of their own (counted at the native kernel's rate); compiled,
            // they fuse into the norm. Backward: LayerNorm's, then x's gradient cast back.
            let low = b.policy.activation;
            let lb = low.bytes();
            let cast = input != low;
            let params_cast = b.policy.param != low;
            let cast_read = if cast { e * inb } else { 0.0 };
            let cast_written = if cast { e * lb } else { 0.0 };
            let params = 2.0 * width * p;
            let params_written = if params_cast { params * lb / p } else { 0.0 };
            let kernels = 1 + u8::from(cast) + 2 * u8::from(params_cast);
            b.vector(
                names,
                Vector::new(
                    OpKind::Normalization { composite: false },
                    OpClass::Normalization,
                    Flops(7.0 * e),
                    Bytes(e * inb),
                    Bytes(e * lb),
                )
                .saved(Bytes(e * lb + rows * 2.0 * FP32))
                .composite(
                    kernels * tensors,
                    Bytes(cast_read + e * lb + params),
                    Bytes(cast_written + e * lb + params_written),
                )
                .bwd(Bwd::Explicit {
                    fuses: true,
                    read: Bytes(2.0 * (2.0 * e * lb + rows * 2.0 * FP32) + cast_written),
                    written: Bytes(e * lb + 2.0 * width * FP32 + cast_read),
                    flops: Flops(14.0 * e),
                    kernels: (2 + u8::from(cast)) * tensors,
                }),
            );
            return low;
        }
        NormKind::Layernorm | NormKind::LayernormNoAffine => {
            let affine = f64::from(u8::from(kind == NormKind::Layernorm));
            let passes = 1.0 + affine;
            b.vector(
                names,
                Vector::new(
                    OpKind::Normalization { composite: false },
                    OpClass::Normalization,
                    Flops(7.0 * e),
                    Bytes(e * inb),
                    Bytes(e * outb),
                )
                .saved(Bytes(e * inb + rows * 2.0 * FP32))
                // CUDA's LayerNorm backward (PyTorch's layer_norm_kernel.cu): the input
                // gradient, and with an affine transform the gamma/beta reduction, each reading
                // x, dy and the row statistics (mean and rstd, fp32).
                .bwd(Bwd::Explicit {
                    fuses: true,
                    read: Bytes(
                        passes * (e * inb + e * outb + rows * 2.0 * FP32) + affine * width * p,
                    ),
                    written: Bytes(e * inb + affine * 2.0 * width * FP32),
                    flops: Flops(14.0 * e),
                    kernels: passes as u8,
                }),
            );
        }
    }
    output
}
