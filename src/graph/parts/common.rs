//! Ops every part uses: autocast's weight casts, a tensor read by two ops (its gradients added),
//! the residual add and dropout. Vector FLOPs per element: gated residual 2, dropout 2.

use crate::graph::builder::{Builder, Bwd, Names, Vector};
use crate::graph::OpClass;
use crate::units::{Bytes, Flops};

/// Autocast's low-precision copy of `params` GEMM weights and biases made once per forward, one
/// cast kernel per tensor (`kernels`): reads fp32, writes the weight-copy dtype; backward casts
/// the gradients back to fp32. Emits nothing without autocast.
pub(crate) fn weights_cast(b: &mut Builder, names: &'static Names, (kernels, params): (u8, u64)) {
    let Some(copy) = b.policy.weight_copy else {
        return;
    };
    let params = params as f64;
    let read = Bytes(params * b.policy.param.bytes());
    let written = Bytes(params * copy.bytes());
    b.vector(
        names,
        Vector::pointwise(Flops::ZERO, read, written)
            .composite(kernels, read, written)
            .alone()
            .weights()
            .bwd(Bwd::Cast),
    );
}

/// A tensor of `n` elements of `el` bytes read by two ops: no forward kernel, and a backward
/// kernel that adds the two gradients (autograd's accumulation): reads 2·n, writes n.
pub(crate) fn grad_fork(b: &mut Builder, names: &'static Names, n: f64, el: f64) {
    b.vector(
        names,
        Vector::backward_only(1, Bytes(2.0 * n * el), Bytes(n * el), Flops(n)),
    );
}

/// `x = x + gate · y` (or `x + y` without adaLN; `gate` = B·d elements, 0 without): reads x
/// (E residual) and y (E activations), writes x. Eager runs mul and add. Backward: the residual
/// gradient passes through; the add casts it to the dtype of `gate · y` when that differs (reads
/// E residual, writes E activations), then `dy = dx · gate` (a multiply) and
/// `d gate = Σ dx · y` (a multiply and a sum over tokens), all in y's dtype: three or four
/// kernels; without a gate only the cast.
pub(crate) fn residual(b: &mut Builder, names: &'static Names, e: f64, gate: f64) {
    let nu = b.policy;
    let (o, r) = (nu.activation.bytes(), nu.residual.bytes());
    let v = Vector::pointwise(Flops(2.0 * e), Bytes(e * r), Bytes(e * r))
        .side(Bytes(e * o + gate * o))
        .keep();
    let cast = nu.residual != nu.activation;
    let (cast_read, cast_written) = if cast { (e * r, e * o) } else { (0.0, 0.0) };
    let v = if gate > 0.0 {
        v.saved(Bytes(e * o + gate * o))
            .composite(2, Bytes(e * (2.0 * o + r) + gate * o), Bytes(e * (o + r)))
            .bwd(Bwd::Explicit {
                fuses: true,
                read: Bytes(cast_read + 4.0 * e * o + gate * o),
                written: Bytes(cast_written + 2.0 * e * o + gate * o),
                flops: Flops(3.0 * e),
                kernels: 3 + u8::from(cast),
            })
    } else if cast {
        v.bwd(Bwd::Explicit {
            fuses: false,
            kernels: 1,
            read: Bytes(cast_read),
            written: Bytes(cast_written),
            flops: Flops::ZERO,
        })
    } else {
        v.bwd(Bwd::None)
    };
    b.vector(names, v);
}

/// Dropout over `n` elements of `el` bytes: writes the output and a 1-byte mask, keeps the mask.
/// Backward reads the gradient and the mask, writes the gradient.
pub(crate) fn dropout(
    b: &mut Builder,
    names: &'static Names,
    n: f64,
    el: f64,
    class: OpClass,
    core: bool,
) {
    let v = Vector::new(
        crate::graph::OpKind::Elementwise,
        class,
        Flops(2.0 * n),
        Bytes(n * el),
        Bytes(n * (el + 1.0)),
    )
    .saved(Bytes(n))
    .bwd(Bwd::Explicit {
        fuses: false,
        kernels: 1,
        read: Bytes(n * (el + 1.0)),
        written: Bytes(n * el),
        flops: Flops(n),
    });
    b.vector(names, if core { v.core() } else { v });
}

/// Passes PyTorch's eager CUDA softmax / log-softmax makes over a row of `row` elements of `el`
/// bytes, input and output of the same dtype: (reads of the input forward, reads of the output
/// gradient backward). The output (forward) and the saved output (backward) are read or written
/// once. Source: PyTorch aten/src/ATen/native/cuda/SoftMax.cu as of the 2.x releases measured
/// here (2.11), `host_softmax` and `dispatch_host_softmax_backward`:
/// - forward, rows of at most 2048 elements and 8 KiB run the persistent warp softmax, rows of
///   at most 9216 (fewer than 10 elements per thread of a 1024-thread block) the register
///   kernel `cunn_SoftMaxForwardReg`, and longer rows that fit in a block's 48 KiB of shared
///   memory (less the per-warp reduction scratch, 32 × 4 B) with a length divisible by the
///   16-byte vector `cunn_SoftMaxForwardSmem`: one read each. Other rows go to
///   `cunn_SoftMaxForward`, which reads the input three times: the row maximum, the sum of
///   exponentials, then the output pass;
/// - backward, rows of at most 1024 elements and 4 KiB run the persistent kernel, longer rows
///   that fit in shared memory `cunn_SoftMaxBackwardSmem`, which caches the gradient: one read
///   each. Other rows go to `cunn_SoftMaxBackward`, which reads the gradient twice: its sum,
///   then the gradient pass.
///
/// A language model's vocabulary (tens of thousands of fp32 logits) takes the three-pass
/// forward and two-pass backward.
pub fn eager_softmax_passes(row: u64, el: f64) -> (f64, f64) {
    const SHARED_MEMORY_PER_BLOCK: f64 = 48.0 * 1024.0;
    const REDUCTION_SCRATCH: f64 = 32.0 * 4.0;
    let bytes = row as f64 * el;
    let vector = (16.0 / el).max(1.0) as u64;
    let shared = bytes < SHARED_MEMORY_PER_BLOCK - REDUCTION_SCRATCH && row.is_multiple_of(vector);
    let forward = if (row <= 2048 && bytes <= 8192.0) || row.div_ceil(1024) < 10 || shared {
        1.0
    } else {
        3.0
    };
    let backward = if (row <= 1024 && bytes <= 4096.0) || shared {
        1.0
    } else {
        2.0
    };
    (forward, backward)
}
