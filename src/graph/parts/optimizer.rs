//! The optimizer step: AdamW over the parameters this rank owns, and the EMA copies, after the
//! loss scaler's unscaling for 16-bit gradients. FLOPs per parameter: AdamW 14, EMA 3, unscaling
//! and the inf check 2.

use crate::graph::builder::{library_op, n, Builder, Meta, FP32};
use crate::graph::{Dtype, Layer, Op, OpClass, OpKind, ParamCount, Phase, StepConfig, Unit};
use crate::units::{Bytes, Flops};

/// AdamW and the EMA updates of one optimizer step.
pub(crate) fn step(b: &mut Builder, params: &ParamCount, cfg: &StepConfig) {
    // Under ZeRO-1 and up each rank updates its shard of the parameters; with expert
    // parallelism, of the routed experts those it holds.
    let p = params.resident(cfg.optimizer_shards, cfg.expert_shards);
    // Low-precision parameters (bf16-pure) are written back from the fp32 master copy too.
    let extra = if b.policy.param == Dtype::Fp32 {
        0.0
    } else {
        b.policy.param.bytes()
    };
    b.layer = Layer::Model;
    // AdamW with fp32 states: reads parameter (master), gradient, m, v (16 B), writes
    // parameter, m, v (12 B).
    let adam = Op {
        model_flops: Flops::ZERO,
        ..library_op(
            "optimizer.adamw",
            Layer::Model,
            Phase::Optimizer,
            OpKind::Optimizer,
            OpClass::Optimizer,
            Unit::Vector,
            Dtype::Fp32,
            Flops(14.0 * p),
            Bytes(4.0 * FP32 * p),
            Bytes((3.0 * FP32 + extra) * p),
        )
    };
    if b.policy.gradient != Dtype::Fp32 {
        // Loss scaling (fp16, Megatron-LM's Float16 optimizer): the 16-bit gradients are copied
        // into fp32 main gradients (reads 2 B, writes 4 B per parameter), then unscaled in place
        // with the inf/nan check fused (reads and writes 4 B): two multi-tensor kernels.
        let g = b.policy.gradient.bytes();
        b.push(
            Op {
                name: "optimizer.loss_scale",
                flops: Flops(2.0 * p),
                bytes_read: Bytes((g + FP32) * p),
                bytes_written: Bytes(2.0 * FP32 * p),
                fused_read: Bytes((g + FP32) * p),
                fused_written: Bytes(2.0 * FP32 * p),
                kernels: 2,
                ..adam
            },
            Meta::none(n!("optimizer.loss_scale")),
        );
    }
    b.push(adam, Meta::none(n!("optimizer.adamw")));
    if cfg.ema > 0 {
        // Each EMA copy: ema = decay * ema + (1 - decay) * param: reads ema and param (8 B),
        // writes ema (4 B); one fused kernel per copy.
        let n = cfg.ema as f64 * params.resident(cfg.param_shards, cfg.expert_shards);
        let ema = Op {
            name: "optimizer.ema",
            flops: Flops(3.0 * n),
            bytes_read: Bytes(2.0 * FP32 * n),
            bytes_written: Bytes(FP32 * n),
            fused_read: Bytes(2.0 * FP32 * n),
            fused_written: Bytes(FP32 * n),
            kernels: cfg.ema.min(u8::MAX as u32) as u8,
            ..adam
        };
        b.push(ema, Meta::none(n!("optimizer.ema")));
    }
}
