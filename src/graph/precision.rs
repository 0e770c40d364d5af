//! One precision policy: which dtype, and so how many bytes, each class of tensor has under a
//! [`Precision`]: GEMM arithmetic and operands, activations, the residual stream, parameters as
//! the forward reads them, autocast's per-forward weight copies, gradients, optimizer states and
//! what the collectives move. Every byte count of the op graph, the memory footprint and the
//! communication model asks this policy; nothing else matches on a precision.
//!
//! PyTorch autocast (`bf16`, and `fp8` in the style of Transformer Engine) keeps fp32 parameters,
//! gradients and AdamW states and casts each GEMM weight to the operand dtype once per forward;
//! `bf16-pure` (Megatron-LM style) keeps bf16 parameters and activations, residual stream
//! included, with fp32 master weights inside the optimizer; `fp32` runs GEMMs on the vector units
//! (PyTorch's default `allow_tf32 = False`), `tf32` on the tensor cores from fp32 storage.

use super::{Dtype, Precision, Unit};

/// The dtypes of a step's tensors under one precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrecisionPolicy {
    /// Arithmetic of the GEMMs (the MFU peak is this dtype's dense peak on `gemm_unit`).
    pub gemm: Dtype,
    /// Where the GEMMs run.
    pub gemm_unit: Unit,
    /// GEMM operands as stored (tf32 GEMMs read fp32).
    pub operand: Dtype,
    /// GEMM outputs and activations.
    pub activation: Dtype,
    /// The residual stream between blocks.
    pub residual: Dtype,
    /// Parameters as the forward reads them (norm weights, tables) and as stored.
    pub param: Dtype,
    /// Autocast's low-precision copy of every GEMM weight, made once per forward.
    pub weight_copy: Option<Dtype>,
    /// Gradients (accumulated and reduced in fp32, except fp16's, which Megatron-LM keeps and
    /// reduces in fp16 unless told otherwise).
    pub gradient: Dtype,
}

/// AdamW's two moment estimates, fp32 each.
const ADAM_MOMENTS: f64 = 2.0 * 4.0;

impl PrecisionPolicy {
    /// The policy of `p` (see the module docs).
    pub const fn of(p: Precision) -> Self {
        use Dtype::*;
        let autocast = PrecisionPolicy {
            gemm: Bf16,
            gemm_unit: Unit::Tensor,
            operand: Bf16,
            activation: Bf16,
            residual: Fp32,
            param: Fp32,
            weight_copy: Some(Bf16),
            gradient: Fp32,
        };
        match p {
            Precision::Bf16 => autocast,
            Precision::Bf16Pure => PrecisionPolicy {
                residual: Bf16,
                param: Bf16,
                weight_copy: None,
                ..autocast
            },
            Precision::Fp8 => PrecisionPolicy {
                gemm: Fp8,
                operand: Fp8,
                weight_copy: Some(Fp8),
                ..autocast
            },
            Precision::Tf32 => PrecisionPolicy {
                gemm: Tf32,
                operand: Fp32,
                activation: Fp32,
                weight_copy: None,
                ..autocast
            },
            Precision::Fp16 => PrecisionPolicy {
                gemm: Fp16,
                operand: Fp16,
                activation: Fp16,
                residual: Fp16,
                param: Fp16,
                weight_copy: None,
                gradient: Fp16,
                ..autocast
            },
            Precision::Fp32 => PrecisionPolicy {
                gemm: Fp32,
                gemm_unit: Unit::Vector,
                operand: Fp32,
                activation: Fp32,
                weight_copy: None,
                ..autocast
            },
        }
    }

    /// Arithmetic dtype of 16-bit batched GEMMs and fused attention: fp8 runs attention in bf16.
    pub fn attention_gemm(&self) -> Dtype {
        match self.gemm {
            Dtype::Fp8 => Dtype::Bf16,
            d => d,
        }
    }

    /// Whether fused (Flash) attention kernels exist for these activations: they need 16-bit
    /// inputs (PyTorch's SDPA falls back to the math backend for fp32).
    pub fn has_fused_attention(&self) -> bool {
        self.activation != Dtype::Fp32
    }

    /// Bytes per parameter of the weights as stored.
    pub fn weight_bytes(&self) -> f64 {
        self.param.bytes()
    }

    /// Bytes per parameter of the gradients.
    pub fn gradient_bytes(&self) -> f64 {
        self.gradient.bytes()
    }

    /// Bytes per parameter of the optimizer state: AdamW's fp32 moments, plus fp32 master
    /// weights when the parameters themselves are not fp32.
    pub fn optimizer_bytes(&self) -> f64 {
        ADAM_MOMENTS + self.master_weight_bytes()
    }

    /// fp32 master weights kept beside low-precision parameters (0 when the parameters are fp32).
    pub fn master_weight_bytes(&self) -> f64 {
        if self.param == Dtype::Fp32 {
            0.0
        } else {
            Dtype::Fp32.bytes()
        }
    }

    /// Bytes per GEMM weight of autocast's per-forward copy (0 without autocast).
    pub fn weight_copy_bytes(&self) -> f64 {
        self.weight_copy.map_or(0.0, Dtype::bytes)
    }

    /// Bytes per parameter that ZeRO's parameter all-gathers move: the compute dtype.
    pub fn gather_bytes(&self) -> f64 {
        self.operand.bytes()
    }

    /// One line on what the precision keeps in which dtype, for the printed assumptions.
    pub fn describe(p: Precision) -> &'static str {
        match p {
            Precision::Bf16 => "PyTorch autocast: fp32 weights, gradients and AdamW states (16 B/param), bf16 GEMMs, fp32 residual stream",
            Precision::Bf16Pure => "bf16 weights and activations (residual stream too), fp32 master weights, gradients and AdamW states (18 B/param)",
            Precision::Fp32 => "fp32 everywhere, GEMMs on the fp32 vector units (allow_tf32 = False)",
            Precision::Tf32 => "fp32 storage, GEMMs on tf32 tensor cores",
            Precision::Fp8 => "fp8 GEMM operands, bf16 outputs, otherwise as bf16 autocast",
            Precision::Fp16 => "fp16 weights, activations and gradients, fp32 master weights and AdamW states (16 B/param), dynamic loss scaling (Megatron-LM --fp16)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistent_bytes_per_parameter() {
        let total = |p| {
            let q = PrecisionPolicy::of(p);
            q.weight_bytes() + q.gradient_bytes() + q.optimizer_bytes()
        };
        assert_eq!(total(Precision::Bf16), 16.0);
        assert_eq!(total(Precision::Bf16Pure), 18.0);
        assert_eq!(total(Precision::Fp16), 16.0);
        assert_eq!(total(Precision::Fp32), 16.0);
        assert_eq!(PrecisionPolicy::of(Precision::Fp8).weight_copy_bytes(), 1.0);
        assert!(!PrecisionPolicy::of(Precision::Tf32).has_fused_attention());
    }
}
