//! The op graph against PyTorch's own counts (tests/reference/fixtures, made by
//! tests/reference/count.py with torch.utils.flop_counter.FlopCounterMode and
//! torch.autograd.graph.saved_tensors_hooks; see tests/reference/README.md for the command and
//! torch version). Matmul FLOPs must agree within 0.5%, saved activation bytes within 10%. The
//! eager program (kernels launched and bytes moved per phase) is checked against the ATen ops
//! PyTorch dispatches for the same step (see `check_dispatch`).
//!
//! What differs by construction:
//! - FlopCounterMode does not halve causal attention; flash kernels skip the masked half, and so
//!   does roofline, so for causal flash runs the skipped half is added back before comparing.
//! - The counts ran with CPU semantics (FakeTensorMode on CPU, CPU autocast); the flash2 run used
//!   PyTorch's CPU flash kernel, whose saved tensors match the CUDA kernel's in size.
//! - roofline's saved bytes model the eager CUDA path (fp32 q and k after RoPE under autocast,
//!   composite RMSNorm); parameters and autocast's weight copies are excluded on both sides.

use roofline::graph::{
    build_step, eager_softmax_passes, AttentionImpl, Op, OpKind, Phase, Precision, StepConfig,
};
use roofline::spec::load_model;
use serde_json::Value;

fn fixture(model: &str) -> Value {
    let path = format!(
        "{}/tests/reference/fixtures/{model}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A fixture run's attention implementation and precision, or None when roofline has no
/// equivalent: CUDA FlashAttention has no fp32 kernel, so roofline rejects that combination
/// (the CPU counting run had one, PyTorch's CPU flash kernel).
fn comparable(run: &Value) -> Option<(AttentionImpl, Precision)> {
    let attention: AttentionImpl = run["attention"].as_str().unwrap().parse().unwrap();
    let precision = match run["precision"].as_str().unwrap() {
        "fp32" => Precision::Fp32,
        "bf16-autocast" => Precision::Bf16,
        other => panic!("unknown precision {other}"),
    };
    (attention != AttentionImpl::Flash2 || precision != Precision::Fp32)
        .then_some((attention, precision))
}

fn check(model: &str) {
    let f = fixture(model);
    let m = load_model(model).unwrap();
    let batch = f["batch"].as_u64().unwrap();
    assert_eq!(
        f["parameters"]["trainable"].as_u64().unwrap(),
        roofline::graph::param_count(&m).total
    );
    let mut checked = 0;
    for run in f["runs"].as_array().unwrap() {
        let Some((attention, precision)) = comparable(run) else {
            continue;
        };
        let cfg = StepConfig {
            batch,
            attention,
            precision,
            ..StepConfig::default()
        };
        let mut ops = Vec::new();
        build_step(&m, &cfg, &mut ops).unwrap();
        let matmul = |phase: Phase| -> f64 {
            ops.iter()
                .filter(|o| o.phase == phase && !o.recompute)
                .filter(|o| o.kind.is_matmul())
                .map(|o| o.total_flops().0)
                .sum()
        };
        let flash_fwd: f64 = ops
            .iter()
            .filter(|o| {
                o.phase == Phase::Forward
                    && matches!(o.kind, OpKind::Attention { causal: true, .. })
            })
            .map(|o| o.total_flops().0)
            .sum();
        // Causal flash: roofline counts the executed half; FlopCounterMode the whole square.
        let (fwd, bwd) = (
            matmul(Phase::Forward) + flash_fwd,
            matmul(Phase::Backward) + 2.5 * flash_fwd,
        );
        let label = format!("{model} {attention} {precision}");
        let ref_fwd = run["flops_forward"]["total"].as_f64().unwrap();
        let ref_bwd = run["flops_backward"]["total"].as_f64().unwrap();
        assert!(
            (fwd / ref_fwd - 1.0).abs() < 0.005,
            "{label}: forward {fwd:e} vs PyTorch {ref_fwd:e}"
        );
        assert!(
            (bwd / ref_bwd - 1.0).abs() < 0.005,
            "{label}: backward {bwd:e} vs PyTorch {ref_bwd:e}"
        );
        let saved: f64 = ops
            .iter()
            .filter(|o| o.phase == Phase::Forward)
            .map(|o| o.saved.0 * o.layer.count() as f64)
            .sum();
        let ref_saved = run["saved_for_backward"]["activation_bytes"]
            .as_f64()
            .unwrap();
        assert!(
            (saved / ref_saved - 1.0).abs() < 0.10,
            "{label}: saved {saved:e} vs PyTorch {ref_saved:e}"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 5,
        "{model}: expected naive and sdpa-math in fp32 and bf16, flash2 in bf16"
    );
}

#[test]
fn jit_b4_matches_pytorch_counts() {
    check("jit-b4");
}

#[test]
fn gpt2_matches_pytorch_counts() {
    check("gpt2-124m");
}

/// CUDA kernels that one CPU-semantics ATen op of the fixture's dispatch count becomes, beyond
/// the first, per phase (PyTorch 2.x CUDA sources):
/// - FlashAttention-2's backward runs three kernels (dot(dO, O), the dQ/dK/dV loop, the dQ
///   conversion) where the CPU flash op is one; with grouped-query attention it writes dK and dV
///   per query head and sums each group (two more kernels, reading 2·Eq and writing 2·Ekv
///   elements beyond the CPU kernel's 2·Ekv; Dao-AILab/flash-attention
///   csrc/flash_attn/flash_api.cpp, `mha_bwd`), where the CPU kernel writes kv heads directly;
/// - CUDA's LayerNorm backward with an affine transform runs the input-gradient kernel and the
///   gamma/beta reduction apart, and the second kernel reads x, dy and the row statistics again
///   (the one extra entry in bytes; the fp32 residual stream makes x and dy 4 bytes each);
/// - a convolution's backward runs data gradient, weight gradient and bias gradient as separate
///   kernels where the CPU op is one: the bottleneck patch embedding's second convolution (input
///   gradient and bias) is three, a single patch convolution with a bias (no input gradient)
///   two, once per embedded image;
/// - slicing the target tokens out of the sequence: backward fills zeros and copies (two kernels,
///   one CPU op);
/// - CUDA's softmax reads a long row more than once (aten/src/ATen/native/cuda/SoftMax.cu;
///   `roofline::graph::eager_softmax_passes`): the log-softmax of the loss reads its input
///   three times and its gradient twice over a vocabulary-long row; the attention softmax's
///   backward first multiplies the gradient by the output into a temporary (one more kernel,
///   reading 2 and writing 1 score tensor) and reads it twice past 1024 keys; its forward reads
///   a row three times past what a block's shared memory holds.
fn cuda_extra(
    m: &roofline::spec::ModelSpec,
    attention: AttentionImpl,
    batch: u64,
    ops: &[Op],
) -> CudaExtra {
    use roofline::spec::model::{NormKind, PatchEmbed};
    let depth = m.transformer.depth as f64;
    let grouped = m.kv_heads() < m.transformer.heads;
    let flash = attention == AttentionImpl::Flash2;
    let flash_bwd = if flash {
        (2.0 + 2.0 * f64::from(u8::from(grouped))) * depth
    } else {
        0.0
    };
    let gqa_bytes = if flash && grouped {
        // bf16 dK and dV: written per query head (2·Eq instead of 2·Ekv), read back and summed
        // into 2·Ekv.
        let tokens = (batch * m.seq_at_block(0)) as f64;
        let (eq, ekv) = (tokens * m.q_width() as f64, tokens * m.kv_width() as f64);
        depth * 2.0 * (2.0 * (eq - ekv) + 2.0 * eq + 2.0 * ekv)
    } else {
        0.0
    };
    let (ln_bwd, ln_bytes) = if m.transformer.norm == NormKind::Layernorm {
        let norms = 2.0 * depth + 1.0;
        let rows = (batch * m.seq_at_block(0)) as f64;
        let width = m.transformer.width as f64;
        (norms, norms * rows * (8.0 * width + 8.0))
    } else {
        (0.0, 0.0)
    };
    let images = 1.0 + f64::from(u8::from(m.tokens.condition > 0));
    let conv_bwd = match (&m.input, m.embedding.patch_embed) {
        (None, _) => 0.0,
        (Some(_), Some(PatchEmbed::Bottleneck)) => 2.0 * images,
        (Some(_), _) => images,
    };
    let slice_bwd = f64::from(u8::from(m.tokens.condition > 0));
    // The loss's log-softmax over fp32 rows of the vocabulary.
    let (mut loss_fwd, mut loss_bwd) = (0.0, 0.0);
    if m.tokens.text > 0 {
        let logits = (batch * m.tokens.text * m.padded_vocab()) as f64;
        let (input, grad) = eager_softmax_passes(m.padded_vocab(), 4.0);
        (loss_fwd, loss_bwd) = ((input - 1.0) * 4.0 * logits, (grad - 1.0) * 4.0 * logits);
    }
    // The attention softmax of naive and sdpa-math: its forward op writes one score tensor.
    let (mut softmax_kernels, mut softmax_fwd, mut softmax_bytes) = (0.0, 0.0, 0.0);
    if matches!(attention, AttentionImpl::Naive | AttentionImpl::SdpaMath) {
        let seq = m.seq_at_block(0);
        let scores = ops
            .iter()
            .find(|o| o.name == "attn.softmax" && o.phase == Phase::Forward)
            .map(|o| o.bytes_written.0)
            .unwrap();
        let el = scores / (batch * m.transformer.heads * seq * seq) as f64;
        let (input, grad) = eager_softmax_passes(seq, el);
        softmax_fwd = depth * (input - 1.0) * scores;
        softmax_kernels = depth;
        softmax_bytes = depth * (2.0 + grad) * scores;
    }
    CudaExtra {
        forward_bytes: loss_fwd + softmax_fwd,
        backward_kernels: flash_bwd + ln_bwd + conv_bwd + slice_bwd + softmax_kernels,
        backward_bytes: ln_bytes + gqa_bytes + loss_bwd + softmax_bytes,
    }
}

/// What the CUDA path adds to the CPU dispatch count, per step.
struct CudaExtra {
    forward_bytes: f64,
    backward_kernels: f64,
    backward_bytes: f64,
}

/// Eager kernels and bytes moved per phase against the ATen ops PyTorch dispatches for the same
/// step (the fixture's `dispatch` section): matrix products one for one, all kernels within 1%
/// per phase (after the CUDA extras above), bytes within 2%.
fn check_dispatch(model: &str) {
    let f = fixture(model);
    let m = load_model(model).unwrap();
    let batch = f["dispatch_batch"].as_u64().unwrap();
    let runs = f["dispatch"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        6,
        "{model}: naive, sdpa-math and flash2 dispatch runs in fp32 and bf16-autocast"
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for run in runs {
        assert!(run.get("error").is_none(), "{model}: {run}");
        let Some((attention, precision)) = comparable(run) else {
            continue;
        };
        checked += 1;
        let cfg = StepConfig {
            batch,
            attention,
            precision,
            ..StepConfig::default()
        };
        let mut ops = Vec::new();
        build_step(&m, &cfg, &mut ops).unwrap();
        let extra = cuda_extra(&m, attention, batch, &ops);
        for (phase, key, extra_kernels, extra_bytes) in [
            (Phase::Forward, "forward", 0.0, extra.forward_bytes),
            (
                Phase::Backward,
                "backward",
                extra.backward_kernels,
                extra.backward_bytes,
            ),
        ] {
            let ours = ops.iter().filter(|o| o.phase == phase);
            let kernels: f64 = ours
                .clone()
                .map(|o| o.kernels as f64 * o.layer.count() as f64)
                .sum();
            let bytes: f64 = ours
                .map(|o| (o.total_bytes_read() + o.total_bytes_written()).0)
                .sum();
            let ref_kernels = run[key]["kernels"].as_f64().unwrap() + extra_kernels;
            let ref_bytes = run[key]["bytes"].as_f64().unwrap() + extra_bytes;
            let label = format!("{model} {attention} {precision} {key}");
            eprintln!(
                "{label}: kernels {kernels} vs {ref_kernels} ({:+.1}%), bytes {:.3e} vs {:.3e} ({:+.1}%)",
                100.0 * (kernels / ref_kernels - 1.0),
                bytes,
                ref_bytes,
                100.0 * (bytes / ref_bytes - 1.0)
            );
            // Matrix products one for one: addmm, mm, bmm and (forward) convolution launches.
            // A convolution's backward is one CPU op for several CUDA kernels (see
            // `cuda_extra`), so backward compares the linear layers and attention only.
            let gemm: u32 = ops
                .iter()
                .filter(|o| o.phase == phase)
                .filter(|o| o.kind.is_gemm())
                .filter(|o| phase == Phase::Forward || !o.name.starts_with("patch."))
                .map(|o| u32::from(o.kernels) * o.layer.count())
                .sum();
            let by_op = |name: &str| run[key]["by_op"][name].as_u64().unwrap_or(0) as u32;
            let ref_gemm = by_op("addmm") + by_op("mm") + by_op("bmm") + by_op("convolution");
            if gemm != ref_gemm {
                failures.push(format!(
                    "{label}: {gemm} matrix products vs {ref_gemm} dispatched"
                ));
            }
            if (kernels / ref_kernels - 1.0).abs() >= 0.01 {
                failures.push(format!(
                    "{label}: {kernels} kernels vs {ref_kernels} dispatched"
                ));
            }
            if (bytes / ref_bytes - 1.0).abs() >= 0.02 {
                failures.push(format!(
                    "{label}: {bytes:e} bytes vs {ref_bytes:e} dispatched"
                ));
            }
        }
    }
    assert_eq!(checked, 5, "{model}: five comparable runs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn jit_b4_eager_kernels_match_pytorch_dispatch() {
    check_dispatch("jit-b4");
}

#[test]
fn gpt2_eager_kernels_match_pytorch_dispatch() {
    check_dispatch("gpt2-124m");
}

#[test]
fn llama3_gqa_matches_pytorch_counts() {
    check("llama3-8b");
}

#[test]
fn mixtral_moe_matches_pytorch_counts() {
    check("mixtral-8x7b");
}

#[test]
fn llama3_gqa_eager_kernels_match_pytorch_dispatch() {
    check_dispatch("llama3-8b");
}

#[test]
fn mixtral_moe_eager_kernels_match_pytorch_dispatch() {
    check_dispatch("mixtral-8x7b");
}

/// What a block keeps for backward when the blocks are compiled, against PyTorch's own
/// accounting of torch.compile's partitioner (tests/reference/fixtures/compiled-saved.json, made
/// by tests/reference/compiled_saved.py: AOTAutograd with Inductor's decompositions and min-cut
/// partitioner, run on a CPU under bf16 autocast): within 8% per block, compiled and eager.
#[test]
fn compiled_blocks_keep_what_the_partitioner_keeps() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/fixtures/compiled-saved.json"
    );
    let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for run in f["runs"].as_array().unwrap() {
        let name = run["model"].as_str().unwrap();
        let attention: AttentionImpl = run["attention"].as_str().unwrap().parse().unwrap();
        let m = load_model(name).unwrap();
        let cfg = StepConfig {
            batch: run["batch"].as_u64().unwrap(),
            attention,
            ..StepConfig::default()
        };
        let mut ops = Vec::new();
        build_step(&m, &cfg, &mut ops).unwrap();
        let blocks: Vec<_> = ops
            .iter()
            .filter(|o| matches!(o.layer, roofline::graph::Layer::Blocks { .. }))
            .cloned()
            .collect();
        let depth = m.transformer.depth as f64;
        let per_block = |fused| {
            roofline::memory::activation_bytes(&blocks, roofline::graph::Checkpointing::None, fused)
                .0
                / depth
        };
        let torch = run["compiled"]["activation_bytes"].as_f64().unwrap();
        let ours = per_block(true);
        assert!(
            (ours / torch - 1.0).abs() < 0.08,
            "{name} {attention}: compiled block keeps {ours:e} B, PyTorch {torch:e} B"
        );
        assert!(ours < per_block(false), "{name} {attention}");
        // The same runs eager, counted the same way: the CPU stand-in agrees with roofline's
        // eager accounting too (within 6% today), so the compiled comparison is like for like.
        let eager = run["eager"]["activation_bytes"].as_f64().unwrap();
        assert!(
            (per_block(false) / eager - 1.0).abs() < 0.08,
            "{name} {attention}: eager block keeps {:e} B, PyTorch {eager:e} B",
            per_block(false)
        );
    }
}
