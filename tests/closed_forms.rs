//! The op graph against closed forms derived by hand, and parameter counts against published
//! figures.

use approx::assert_relative_eq;
use roofline::graph::{
    build_step, param_count, AttentionImpl, Checkpointing, Layer, Op, OpClass, OpKind, Phase,
    StepConfig, TokenDim,
};
use roofline::spec::load_model;

fn step(batch: u64, attention: AttentionImpl) -> StepConfig {
    StepConfig {
        batch,
        attention,
        ..StepConfig::default()
    }
}

fn ops_for(model: &str, cfg: &StepConfig) -> Vec<Op> {
    let m = load_model(model).unwrap();
    let mut ops = Vec::new();
    build_step(&m, cfg, &mut ops).unwrap();
    ops
}

fn sum(ops: &[Op], f: impl Fn(&Op) -> bool, v: impl Fn(&Op) -> f64) -> f64 {
    ops.iter()
        .filter(|o| f(o))
        .map(|o| v(o) * o.layer.count() as f64)
        .sum()
}

fn is_matmul(o: &Op) -> bool {
    o.kind.is_matmul()
}

#[test]
fn parameter_counts_match_published_figures() {
    // GPT-2 small with tied embeddings: exactly 124,439,808 (Hugging Face `gpt2`).
    assert_eq!(
        param_count(&load_model("gpt2-124m").unwrap()).total,
        124_439_808
    );
    // Llama 2 7B: 6,738,415,616 (meta-llama/Llama-2-7b-hf, num_parameters()).
    assert_eq!(
        param_count(&load_model("llama2-7b").unwrap()).total,
        6_738_415_616
    );
    // DiT-XL/2: "675M" (Peebles & Xie, Table 1).
    let dit = param_count(&load_model("dit-xl2").unwrap()).total as f64;
    assert!((dit / 675e6 - 1.0).abs() < 0.005, "dit-xl2 {dit}");
    // JiT-B/16: about 131M, of which adaLN about a third (arXiv 2511.13720; LTH14/JiT model_jit.py).
    let jit = param_count(&load_model("jit-b16").unwrap());
    assert!(
        (jit.total as f64 / 131e6 - 1.0).abs() < 0.01,
        "jit-b16 {}",
        jit.total
    );
    let adaln = (jit.per_block_adaln * 12) as f64 / jit.total as f64;
    assert!((0.30..0.36).contains(&adaln), "adaLN share {adaln}");
}

/// GPT-2 forward, batch B, sequence s = 1024, width d, L layers, vocabulary V:
/// linear layers 2·B·s·(12·L·d² + V·d) (qkv 3d², proj d², MLP 8d² per layer; LM head V·d);
/// attention QKᵀ and PV 4·B·s²·d·L executed by a naive kernel, half of it counted as model FLOPs
/// (causal).
#[test]
fn gpt2_flops_match_hand_derivation() {
    let (b, s, d, l, v) = (2.0, 1024.0, 768.0, 12.0, 50257.0);
    for attention in [
        AttentionImpl::Naive,
        AttentionImpl::SdpaMath,
        AttentionImpl::Flash2,
    ] {
        let ops = ops_for("gpt2-124m", &step(2, attention));
        let gemm = sum(
            &ops,
            |o| o.phase == Phase::Forward && o.class == OpClass::Gemm,
            |o| o.flops.0,
        );
        assert_relative_eq!(
            gemm,
            2.0 * b * s * (12.0 * l * d * d + v * d),
            max_relative = 1e-12
        );
        let attn_model = sum(
            &ops,
            |o| o.phase == Phase::Forward && o.class == OpClass::Attention && is_matmul(o),
            |o| o.model_flops.0,
        );
        assert_relative_eq!(
            attn_model,
            0.5 * 4.0 * b * s * s * d * l,
            max_relative = 1e-12
        );
        // Training model FLOPs: 3x forward for every matmul, i.e. PaLM's 6N + 12·L·H·Q·T per token
        // with N the matmul weights and the attention term halved for causal masking.
        let n_mm = 12.0 * l * d * d + v * d;
        let tokens = b * s;
        let total_mm = sum(
            &ops,
            |o| o.phase != Phase::Optimizer && is_matmul(o),
            |o| o.model_flops.0,
        );
        assert_relative_eq!(
            total_mm,
            6.0 * n_mm * tokens + 0.5 * 12.0 * l * d * s * tokens,
            max_relative = 1e-12
        );
    }
}

#[test]
fn llama2_flops_match_palm_formula() {
    // Llama 2 7B: matmul weights per layer 4d² + 3·d·f, LM head V·d (untied), no biases.
    let (b, s, d, f, l, v) = (1.0, 4096.0, 4096.0, 11008.0, 32.0, 32000.0);
    let ops = ops_for("llama2-7b", &step(1, AttentionImpl::Flash2));
    let n_mm = l * (4.0 * d * d + 3.0 * d * f) + v * d;
    let tokens = b * s;
    let total_mm = sum(
        &ops,
        |o| o.phase != Phase::Optimizer && is_matmul(o),
        |o| o.model_flops.0,
    );
    assert_relative_eq!(
        total_mm,
        6.0 * n_mm * tokens + 6.0 * l * d * s * tokens,
        max_relative = 1e-12
    );
    // FlashAttention executes 2.5x its forward in backward (recompute included).
    let fwd = sum(&ops, |o| o.name == "attn.flash", |o| o.flops.0);
    let bwd = sum(&ops, |o| o.name == "attn.flash.bwd", |o| o.flops.0);
    assert_relative_eq!(bwd, 2.5 * fwd, max_relative = 1e-12);
    assert_relative_eq!(fwd, 0.5 * 4.0 * b * s * s * d * l, max_relative = 1e-12);
}

#[test]
fn backward_matmuls_are_twice_forward_without_recompute() {
    for model in ["jit-b4", "jit-b16", "dit-xl2", "gpt2-124m"] {
        let ops = ops_for(model, &step(4, AttentionImpl::Naive));
        let f = sum(
            &ops,
            |o| o.phase == Phase::Forward && is_matmul(o),
            |o| o.flops.0,
        );
        let b = sum(
            &ops,
            |o| o.phase == Phase::Backward && is_matmul(o),
            |o| o.flops.0,
        );
        // Layers whose input needs no gradient (the image, the timestep features) have no
        // data-grad GEMM.
        let no_dgrad = |o: &Op| {
            o.phase == Phase::Forward && (o.name == "patch.conv" || o.name == "t_embed.fc1")
        };
        let first = sum(&ops, no_dgrad, |o| o.flops.0);
        assert_relative_eq!(b, 2.0 * f - first, max_relative = 1e-12);
    }
}

#[test]
fn full_checkpointing_recomputes_the_forward_of_every_block() {
    let base = ops_for("jit-b4", &step(8, AttentionImpl::Flash2));
    let full = ops_for(
        "jit-b4",
        &StepConfig {
            checkpointing: Checkpointing::Full,
            ..step(8, AttentionImpl::Flash2)
        },
    );
    let in_blocks = |o: &Op| {
        matches!(o.layer, Layer::Blocks { .. })
            && o.phase == Phase::Forward
            && o.name != "weights.cast"
    };
    let block_fwd = sum(&base, in_blocks, |o| o.flops.0);
    let recompute = sum(&full, |o| o.recompute, |o| o.flops.0);
    assert_relative_eq!(recompute, block_fwd, max_relative = 1e-12);
    // Recomputation is executed (HFU) but not model work (MFU).
    assert_eq!(sum(&full, |o| o.recompute, |o| o.model_flops.0), 0.0);
}

#[test]
fn the_planned_workload_has_the_expected_shapes() {
    let ops = ops_for("jit-b4", &step(64, AttentionImpl::Naive));
    let find = |name: &str| {
        ops.iter()
            .find(|o| o.name == name && o.phase == Phase::Forward)
            .unwrap()
            .kind
    };
    // 64 samples x 512 tokens = 32768 rows; adaLN has one row per sample.
    assert_eq!(
        find("attn.qkv"),
        OpKind::Gemm {
            m: 32768,
            n: 2304,
            k: 768,
            token_dim: TokenDim::M,
        }
    );
    assert_eq!(
        find("mlp.fc1"),
        OpKind::Gemm {
            m: 32768,
            n: 4096,
            k: 768,
            token_dim: TokenDim::M,
        }
    );
    assert_eq!(
        find("mlp.fc2"),
        OpKind::Gemm {
            m: 32768,
            n: 768,
            k: 2048,
            token_dim: TokenDim::M,
        }
    );
    assert_eq!(
        find("adaln.linear"),
        OpKind::Gemm {
            m: 64,
            n: 4608,
            k: 768,
            token_dim: TokenDim::M,
        }
    );
    assert_eq!(
        find("attn.scores"),
        OpKind::BatchedGemm {
            batch: 64 * 12,
            m: 512,
            n: 512,
            k: 64
        }
    );
    // The fp32 scores of one layer: 64 x 12 x 512 x 512 x 4 bytes = 805 MB written.
    let scores = ops.iter().find(|o| o.name == "attn.scores").unwrap();
    assert_relative_eq!(scores.bytes_written.0, 64.0 * 12.0 * 512.0 * 512.0 * 4.0);
}

#[test]
fn in_context_tokens_join_at_their_block() {
    let m = load_model("jit-b16").unwrap();
    assert_eq!(m.seq_at_block(3), 256);
    assert_eq!(m.seq_at_block(4), 288);
    let ops = ops_for("jit-b16", &step(2, AttentionImpl::Flash2));
    let layers: Vec<_> = ops
        .iter()
        .filter(|o| o.name == "attn.qkv" && o.phase == Phase::Forward)
        .map(|o| (o.layer, o.kind))
        .collect();
    assert_eq!(
        layers,
        vec![
            (
                Layer::Blocks { first: 0, count: 4 },
                OpKind::Gemm {
                    m: 512,
                    n: 2304,
                    k: 768,
                    token_dim: TokenDim::M,
                }
            ),
            (
                Layer::Blocks { first: 4, count: 8 },
                OpKind::Gemm {
                    m: 576,
                    n: 2304,
                    k: 768,
                    token_dim: TokenDim::M,
                }
            ),
        ]
    );
}

#[test]
fn flash_never_moves_more_bytes_than_naive() {
    for model in ["jit-b4", "gpt2-124m", "dit-xl2"] {
        let bytes = |a| {
            let ops = ops_for(model, &step(8, a));
            sum(
                &ops,
                |o| o.class == OpClass::Attention,
                |o| (o.bytes_read + o.bytes_written).0,
            )
        };
        let naive = bytes(AttentionImpl::Naive);
        for a in [
            AttentionImpl::SdpaMath,
            AttentionImpl::Flash2,
            AttentionImpl::Flash3,
        ] {
            assert!(bytes(a) <= naive, "{model} {a}: {} > {naive}", bytes(a));
        }
        assert!(bytes(AttentionImpl::Flash2) < bytes(AttentionImpl::SdpaMath));
    }
}

#[test]
fn evaluation_cost_does_not_grow_with_depth() {
    let m = load_model("llama2-7b").unwrap();
    let mut deep = m.clone();
    deep.transformer.depth = 320;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    build_step(&m, &step(1, AttentionImpl::Flash2), &mut a).unwrap();
    build_step(&deep, &step(1, AttentionImpl::Flash2), &mut b).unwrap();
    assert_eq!(a.len(), b.len());
    let f = |ops: &[Op]| {
        sum(
            ops,
            |o| matches!(o.layer, Layer::Blocks { .. }),
            |o| o.flops.0,
        )
    };
    assert_relative_eq!(f(&b), 10.0 * f(&a), max_relative = 1e-12);
}

#[test]
fn huge_sizes_do_not_overflow() {
    let mut m = load_model("llama2-7b").unwrap();
    m.tokens.text = 1 << 20;
    let mut ops = Vec::new();
    build_step(&m, &step(1_000_000, AttentionImpl::Flash2), &mut ops).unwrap();
    for o in &ops {
        assert!(
            o.flops.0.is_finite() && o.bytes_read.0.is_finite() && o.bytes_written.0.is_finite(),
            "{}",
            o.name
        );
    }
}

#[test]
fn eager_softmax_passes_follow_pytorchs_kernels_by_row_length() {
    // PyTorch's eager log-softmax over GPT-2's 50257 fp32 logits per row (too long for shared
    // memory) reads them three times forward and its gradient twice backward
    // (aten/src/ATen/native/cuda/SoftMax.cu): 22 B per 16-bit logit forward (the upcast reads 2
    // and writes 4, log-softmax reads 3 x 4 and writes 4) and 26 B backward (the zero fill of
    // nll_loss's gradient 4, log-softmax's backward reads 2 x 4 of gradient and 4 of output and
    // writes 4, the cast back reads 4 and writes 2), plus a few bytes per row.
    let ops = ops_for("gpt2-124m", &step(4, AttentionImpl::Flash2));
    let (rows, logits) = (4.0 * 1024.0, 4.0 * 1024.0 * 50257.0);
    let loss = |phase| {
        ops.iter()
            .find(|o| o.name.starts_with("loss.cross_entropy") && o.phase == phase)
            .unwrap()
    };
    let per_logit = |o: &Op| (o.bytes_read.0 + o.bytes_written.0) / logits;
    let (fwd, bwd) = (loss(Phase::Forward), loss(Phase::Backward));
    assert!((per_logit(fwd) - 22.0).abs() < 32.0 * rows / logits);
    assert!((per_logit(bwd) - 26.0).abs() < 32.0 * rows / logits);
    // The rule by row length, from the dispatch in SoftMax.cu (PyTorch 2.11): persistent kernels
    // up to 2048 elements and 8 KiB forward (1024 and 4 KiB backward), the register kernel up to
    // 9216 forward, shared memory below 48 KiB with a length divisible by the 16-byte vector,
    // else three reads forward and two of the gradient backward.
    use roofline::graph::eager_softmax_passes as passes;
    for (row, el, want) in [
        (1024, 4.0, (1.0, 1.0)),
        (2048, 4.0, (1.0, 1.0)),
        (4096, 4.0, (1.0, 1.0)),
        (9216, 4.0, (1.0, 1.0)),
        (9217, 4.0, (3.0, 2.0)),
        (12000, 4.0, (1.0, 1.0)),
        (12500, 4.0, (3.0, 2.0)),
        (32000, 4.0, (3.0, 2.0)),
        (50257, 4.0, (3.0, 2.0)),
        (24000, 2.0, (1.0, 1.0)),
        (32000, 2.0, (3.0, 2.0)),
    ] {
        assert_eq!(passes(row, el), want, "row {row} of {el} B");
    }
    // The attention softmax, per score tensor (B h s^2 elements): forward one read and one
    // write until a row no longer fits a block; backward, the temporary grad * output (an op of
    // its own: reads 2, writes 1), then the backward kernel (reads the temporary and the output,
    // writes 1), the temporary read twice past the shared-memory limit.
    let softmax_of = |attention, seq: u64, name: &str| {
        let mut m = load_model("gpt2-124m").unwrap();
        m.tokens.text = seq;
        let mut ops = Vec::new();
        build_step(&m, &step(1, attention), &mut ops).unwrap();
        let Some(o) = ops.iter().find(|o| o.name == name) else {
            return (0, 0.0, 0.0);
        };
        let el = if attention == AttentionImpl::Unfused {
            2.0
        } else {
            4.0
        };
        let scores = 12.0 * (seq * seq) as f64 * el;
        (
            o.kernels,
            o.bytes_read.0 / scores,
            o.bytes_written.0 / scores,
        )
    };
    let naive = |seq, name| softmax_of(AttentionImpl::Naive, seq, name);
    let product = "attn.softmax_grad_product";
    assert_eq!(naive(1024, "attn.softmax"), (1, 1.0, 1.0));
    assert_eq!(naive(1024, product), (1, 2.0, 1.0));
    assert_eq!(naive(1024, "attn.softmax.bwd"), (1, 2.0, 1.0));
    assert_eq!(naive(2048, "attn.softmax.bwd"), (1, 2.0, 1.0));
    assert_eq!(naive(16384, "attn.softmax"), (1, 3.0, 1.0));
    assert_eq!(naive(16384, "attn.softmax.bwd"), (1, 3.0, 1.0));
    // Megatron-LM's fused softmax (`unfused`, 16-bit scores) is one kernel and one pass each
    // way up to 4096 keys; beyond, PyTorch's softmax on the scores upcast to fp32.
    let megatron = |seq, name| softmax_of(AttentionImpl::Unfused, seq, name);
    assert_eq!(megatron(4096, "attn.softmax.bwd"), (1, 2.0, 1.0));
    assert_eq!(megatron(4096, product), (0, 0.0, 0.0));
    assert_eq!(megatron(8192, "attn.softmax.bwd"), (1, 2.0, 1.0));
    assert_eq!(megatron(8192, product), (1, 2.0, 1.0));
    assert_eq!(megatron(16384, "attn.softmax.bwd"), (1, 3.0, 1.0));
    // Compiled, Inductor writes the softmax backward: the product moves nothing and, a chain
    // member, launches nothing.
    let mut ops = Vec::new();
    build_step(
        &load_model("gpt2-124m").unwrap(),
        &step(1, AttentionImpl::Naive),
        &mut ops,
    )
    .unwrap();
    let p = ops.iter().find(|o| o.name == product).unwrap();
    assert_eq!((p.fused_read.0, p.fused_written.0), (0.0, 0.0));
    assert_eq!(p.chain, roofline::graph::Chain::Member);
}
