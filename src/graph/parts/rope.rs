//! Rotary position embedding of q and k (1-D or 2-D axial), forward and backward. Vector FLOPs
//! per element: 3.

use crate::graph::builder::{n, Builder, Bwd, Vector, FP32};
use crate::graph::Dtype;
use crate::units::{Bytes, Flops};

/// `t·cos + rotate_half(t)·sin` on q and k (`e` elements in both together, dtype `input`) with
/// fp32 tables (`table` elements each). Eager runs, per tensor, neg and stack (rotate_half), two
/// muls and an add; the fp32 tables promote the result to fp32 under autocast. Returns the
/// output's dtype.
pub(crate) fn rope(b: &mut Builder, e: f64, table: f64, input: Dtype) -> Dtype {
    let output = input.wider(b.policy.param);
    let (inb, outb) = (input.bytes(), output.bytes());
    let cast = f64::from(u8::from(input != output));
    // Eager, each of the two tensors reads both tables; fused, one kernel reads them once.
    let tables = 2.0 * 2.0 * table * FP32;
    b.vector(
        n!("attn.rope"),
        Vector::pointwise(Flops(3.0 * e), Bytes(e * inb), Bytes(e * outb))
            .side(Bytes(2.0 * table * FP32))
            .composite(
                10,
                Bytes(e * (3.5 * inb + 2.0 * outb) + tables),
                Bytes(e * (1.5 * inb + 3.0 * outb)),
            )
            // Backward per tensor (gradient g in the output dtype): g·sin, rotate_half's inverse
            // (neg of half, stack), g·cos, and the add of the two paths: five kernels reading 5.5
            // and writing 4.5 gradient-sized tensors. An input in another dtype casts each path's
            // gradient to it after its multiply (two more kernels), and neg, stack and add then
            // run in the input's dtype.
            .bwd(Bwd::Explicit {
                fuses: true,
                read: Bytes(e * (2.0 + 2.0 * cast) * outb + 3.5 * e * inb + tables),
                written: Bytes(2.0 * e * outb + (2.5 + 2.0 * cast) * e * inb),
                flops: Flops(4.0 * e),
                kernels: 2 * (5 + 2 * cast as u8),
            }),
    );
    output
}
