//! Properties of the roofline time model.

use approx::assert_relative_eq;
use roofline::estimate::{Estimator, RunConfig, StepEstimate};
use roofline::graph::{
    AttentionImpl, Chain, Dtype, ExecMode, Layer, Op, OpClass, OpKind, Phase, Role, StepConfig,
    TokenDim, Unit,
};
use roofline::spec::{load_gpu, load_model};
use roofline::time::{op_time, Bound, Machine};
use roofline::units::{Bytes, Flops};

fn machine(gpu: &str) -> Machine {
    Machine::new(&load_gpu(gpu).unwrap(), None)
}

fn bare_op(kind: OpKind, unit: Unit, dtype: Dtype, flops: f64, read: f64, written: f64) -> Op {
    Op {
        name: "test",
        layer: Layer::Model,
        phase: Phase::Forward,
        kind,
        class: OpClass::Gemm,
        unit,
        dtype,
        flops: Flops(flops),
        model_flops: Flops(flops),
        bytes_read: Bytes(read),
        bytes_written: Bytes(written),
        fused_read: Bytes(read),
        fused_written: Bytes(written),
        chained_read: Bytes(0.0),
        kernels: 1,
        chain: Chain::Alone,
        saved: Bytes(0.0),
        attention_core: false,
        recompute: false,
        weight_sized: false,
        role: Role::Plain,
    }
}

#[test]
fn a_large_gemm_approaches_the_achievable_peak() {
    let m = machine("h100-sxm");
    let n = 16384u64;
    let flops = 2.0 * (n * n * n) as f64;
    let bytes = 3.0 * (n * n) as f64 * 2.0;
    let op = bare_op(
        OpKind::Gemm {
            m: n,
            n,
            k: n,
            token_dim: TokenDim::M,
        },
        Unit::Tensor,
        Dtype::Bf16,
        flops,
        bytes,
        0.0,
    );
    let t = op_time(&m, &op, ExecMode::Graphs, AttentionImpl::Flash2).unwrap();
    assert_eq!(t.bound, Bound::Compute);
    let achieved = flops / t.time.0;
    let ceiling = m.peak_bf16.0 * m.frac_bf16;
    assert!(
        achieved < ceiling && achieved > 0.97 * ceiling,
        "{achieved:e} vs {ceiling:e}"
    );
}

#[test]
fn a_copy_approaches_the_achievable_bandwidth() {
    let m = machine("h200-sxm");
    let bytes = 4e9;
    let op = bare_op(
        OpKind::Elementwise,
        Unit::Vector,
        Dtype::Fp32,
        0.0,
        bytes,
        bytes,
    );
    let t = op_time(&m, &op, ExecMode::Graphs, AttentionImpl::Flash2).unwrap();
    assert_eq!(t.bound, Bound::Memory);
    let achieved = 2.0 * bytes / t.time.0;
    assert_relative_eq!(achieved, m.hbm.0 * m.frac_hbm, max_relative = 0.01);
}

#[test]
fn small_ops_are_launch_bound_in_eager_mode() {
    let m = machine("h200-sxm");
    let op = bare_op(
        OpKind::Elementwise,
        Unit::Vector,
        Dtype::Fp32,
        1e3,
        4e3,
        4e3,
    );
    assert_eq!(
        op_time(&m, &op, ExecMode::Eager, AttentionImpl::Flash2)
            .unwrap()
            .bound,
        Bound::Launch
    );
    assert_ne!(
        op_time(&m, &op, ExecMode::Graphs, AttentionImpl::Flash2)
            .unwrap()
            .bound,
        Bound::Launch
    );
}

#[test]
fn wave_quantization_penalizes_a_partial_wave() {
    let m = machine("h100-sxm");
    // 132 tiles of 128x256 fill one wave exactly; 133 need two (the best other tile shapes do
    // no better than 2/3).
    let full = m.gemm_shape_efficiency(1, 128 * 12, 256 * 11, 4096);
    let spill = m.gemm_shape_efficiency(1, 128 * 7 * 19, 256, 4096);
    assert!(full > 0.9 && spill < 0.7 * full, "{full} {spill}");
}

#[test]
fn split_k_fills_the_machine_for_weight_gradients() {
    let m = machine("h100-sxm");
    // dW of a 128 x 768 weight over 32768 tokens: 6 output tiles, K long enough to split.
    let split = m.gemm_shape_efficiency(1, 128, 768, 32768);
    assert!(split > 0.8, "{split}");
    assert_eq!(
        roofline::time::efficiency::split_k(6.0, 32768.0, 132.0),
        22.0
    );
    assert_eq!(
        roofline::time::efficiency::split_k(200.0, 32768.0, 132.0),
        1.0
    );
}

#[test]
fn adaln_gemm_is_memory_bound() {
    // adaLN at batch 64: M = 64 rows, a 768 x 4608 weight read for 64 rows of output.
    let m = machine("h100-sxm");
    let flops = 2.0 * 64.0 * 4608.0 * 768.0;
    let bytes = 2.0 * (64.0 * 768.0 + 768.0 * 4608.0 + 64.0 * 4608.0);
    let op = bare_op(
        OpKind::Gemm {
            m: 64,
            n: 4608,
            k: 768,
            token_dim: TokenDim::M,
        },
        Unit::Tensor,
        Dtype::Bf16,
        flops,
        bytes,
        0.0,
    );
    assert_eq!(
        op_time(&m, &op, ExecMode::Graphs, AttentionImpl::Flash2)
            .unwrap()
            .bound,
        Bound::Memory
    );
}

#[test]
fn misaligned_gemms_hit_the_alignment_ceiling() {
    let m = machine("h100-sxm");
    let lm_head = |n, padding| {
        m.gemm_rate(
            Unit::Tensor,
            Dtype::Bf16,
            1,
            (8192, n, 768),
            Some(TokenDim::M),
            padding,
        )
    };
    let (aligned, odd) = (lm_head(50304, false), lm_head(50257, false));
    // Token rows are no leading dimension: an odd count of them keeps the aligned kernels.
    let odd_rows = m.gemm_rate(
        Unit::Tensor,
        Dtype::Bf16,
        1,
        (8191, 50304, 768),
        Some(TokenDim::M),
        false,
    );
    assert!(
        odd_rows.0 > 0.9 * aligned.0,
        "{} vs {}",
        odd_rows.0,
        aligned.0
    );
    // A batched GEMM's dimensions are all leading dimensions.
    let odd_seq = m.gemm_rate(Unit::Tensor, Dtype::Bf16, 96, (1001, 1001, 64), None, false);
    let ceiling = m.frac_misaligned * m.peak_bf16.0 * (1.0 + 1e-12);
    assert!(odd_seq.0 <= ceiling);
    assert!(odd.0 <= ceiling);
    assert!(aligned.0 > 4.0 * odd.0);
    // The H100 file states its measured ceiling; a GPU file without one gets that figure.
    assert_eq!(m.frac_misaligned, 0.124);
    assert_eq!(
        machine("l40s").frac_misaligned,
        roofline::time::efficiency::MISALIGNED_CEILING
    );
    // torch.compile pads 50257 to 50264: the padded GEMM's rate times the real share of its
    // FLOPs, far above the alignment-1 ceiling and just under the aligned shape's rate.
    let padded = lm_head(50257, true);
    let padded_shape = lm_head(50264, false);
    assert!((padded.0 / padded_shape.0 - 50257.0 / 50264.0).abs() < 1e-12);
    assert!(padded.0 > 4.0 * odd.0);
    // Padding changes nothing for an aligned GEMM.
    assert_eq!(lm_head(50304, true), aligned);
}

fn estimate(run: &RunConfig, model: &str, gpu: &str) -> StepEstimate {
    let m = load_model(model).unwrap();
    Estimator::new().estimate(&m, &machine(gpu), run).unwrap()
}

#[test]
fn doubling_the_batch_never_lowers_step_time() {
    for attention in [AttentionImpl::Naive, AttentionImpl::Flash2] {
        for mode in [ExecMode::Eager, ExecMode::Compiled, ExecMode::Graphs] {
            let mut prev = 0.0;
            let mut b = 1;
            while b <= 1024 {
                let run = RunConfig {
                    step: StepConfig {
                        batch: b,
                        attention,
                        ..StepConfig::default()
                    },
                    mode,
                    ..RunConfig::default()
                };
                let t = estimate(&run, "jit-b4", "h200-sxm").step_time.0;
                assert!(t >= prev, "{attention} {mode} batch {b}: {t} < {prev}");
                prev = t;
                b *= 2;
            }
        }
    }
}

#[test]
fn the_default_run_is_sane() {
    let e = estimate(&RunConfig::default(), "jit-b4", "h200-sxm");
    assert!(e.mfu > 0.0 && e.mfu < 1.0);
    assert!(e.hfu >= e.mfu && e.hfu < 1.0);
    assert!(e.fits);
    let sum: f64 = e.breakdown.entries().iter().map(|s| s.1 .0).sum();
    assert_relative_eq!(sum, e.step_time.0, max_relative = 0.01);
    assert_relative_eq!(
        e.samples_per_s,
        64.0 * 8.0 / e.step_time.0,
        max_relative = 1e-12
    );
    assert_relative_eq!(
        e.tokens_per_s,
        e.samples_per_s * 512.0,
        max_relative = 1e-12
    );
}

#[test]
fn fusion_and_graphs_only_help() {
    for attention in [
        AttentionImpl::Naive,
        AttentionImpl::SdpaMath,
        AttentionImpl::Flash2,
        AttentionImpl::Flash3,
    ] {
        let t = |mode| {
            let run = RunConfig {
                step: StepConfig {
                    attention,
                    ..StepConfig::default()
                },
                mode,
                ..RunConfig::default()
            };
            estimate(&run, "jit-b4", "h100-sxm").step_time.0
        };
        assert!(t(ExecMode::Compiled) <= t(ExecMode::Eager));
        assert!(t(ExecMode::Graphs) <= t(ExecMode::Compiled));
    }
}

#[test]
fn flash_attention_is_faster_than_naive_at_the_planned_shape() {
    let t = |attention| {
        let run = RunConfig {
            step: StepConfig {
                attention,
                ..StepConfig::default()
            },
            ..RunConfig::default()
        };
        estimate(&run, "jit-b4", "h200-sxm")
    };
    let naive = t(AttentionImpl::Naive);
    let flash = t(AttentionImpl::Flash2);
    assert!(flash.step_time < naive.step_time);
    assert!(flash.memory.activations_bytes < naive.memory.activations_bytes);
    // Model FLOPs do not depend on the implementation.
    assert_relative_eq!(
        flash.model_flops.0,
        naive.model_flops.0,
        max_relative = 1e-12
    );
}

#[test]
fn more_gpus_add_communication_and_more_nodes_add_more() {
    let run = |gpus| RunConfig {
        fleet: roofline::time::Fleet {
            gpus,
            ..Default::default()
        },
        ..RunConfig::default()
    };
    let one = estimate(&run(1), "llama2-7b", "h100-sxm");
    let eight = estimate(&run(8), "llama2-7b", "h100-sxm");
    let sixteen = estimate(&run(16), "llama2-7b", "h100-sxm");
    assert_eq!(one.comm_total.0, 0.0);
    assert!(eight.comm_total.0 > 0.0);
    assert!(sixteen.comm_total > eight.comm_total);
    // Fleet throughput grows with the fleet, per-GPU throughput does not.
    assert!(eight.samples_per_s > one.samples_per_s);
    assert!(eight.samples_per_s / 8.0 <= one.samples_per_s * (1.0 + 1e-12));
}

#[test]
fn grad_accumulation_amortizes_the_optimizer() {
    let base = RunConfig {
        step: StepConfig {
            batch: 8,
            ..StepConfig::default()
        },
        ..RunConfig::default()
    };
    let one = estimate(&base, "jit-b4", "h200-sxm");
    let four = estimate(
        &RunConfig {
            grad_accum: 4,
            ..base
        },
        "jit-b4",
        "h200-sxm",
    );
    assert_relative_eq!(four.samples_per_step, 4.0 * one.samples_per_step);
    assert!(four.samples_per_s >= one.samples_per_s);
    assert_eq!(four.memory.activations_bytes, one.memory.activations_bytes);
}

#[test]
fn compiled_cross_entropy_is_one_fused_pass_and_keeps_16_bit_logits() {
    use roofline::graph::{build_step, Checkpointing, Phase, StepConfig};
    let model = load_model("gpt2-124m").unwrap();
    let step = StepConfig {
        batch: 16,
        ..StepConfig::default()
    };
    let mut ops = Vec::new();
    build_step(&model, &step, &mut ops).unwrap();
    let rows = 16.0 * 1024.0;
    let logits = rows * 50257.0;
    let loss = |phase: Phase| {
        ops.iter()
            .find(|o| o.name.starts_with("loss.cross_entropy") && o.phase == phase)
            .unwrap()
    };
    let (fwd, bwd) = (loss(Phase::Forward), loss(Phase::Backward));
    // Eager: 22 bytes per logit or more over forward and backward; compiled: the 16-bit logits
    // read twice forward and once backward, the gradient written once, plus a few bytes per row.
    let eager = fwd.bytes_read.0 + fwd.bytes_written.0 + bwd.bytes_read.0 + bwd.bytes_written.0;
    let fused = fwd.fused_read.0 + fwd.fused_written.0 + bwd.fused_read.0 + bwd.fused_written.0;
    assert!(eager / logits >= 22.0, "{}", eager / logits);
    assert_relative_eq!(
        fused,
        8.0 * logits + rows * (8.0 + 8.0 + 8.0 + 4.0),
        max_relative = 1e-12
    );
    // What the loss keeps for backward: fp32 log-probabilities eager, 16-bit logits and one
    // fp32 log-sum-exp per row compiled.
    let only_loss: Vec<_> = ops
        .iter()
        .filter(|o| o.name.starts_with("loss.cross_entropy"))
        .cloned()
        .collect();
    let kept = |fused| roofline::memory::activation_bytes(&only_loss, Checkpointing::None, fused).0;
    assert_relative_eq!(kept(false), 4.0 * logits, max_relative = 1e-12);
    assert_relative_eq!(kept(true), 2.0 * logits + 4.0 * rows, max_relative = 1e-12);
    // The whole step: compiled is faster and smaller than eager by at least the loss's share.
    let m = machine("h100-sxm");
    let run = |mode| RunConfig {
        step,
        mode,
        ..RunConfig::default()
    };
    let mut est = Estimator::new();
    let eager = est.estimate(&model, &m, &run(ExecMode::Eager)).unwrap();
    let compiled = est.estimate(&model, &m, &run(ExecMode::Compiled)).unwrap();
    assert!(compiled.memory.total_bytes.0 < eager.memory.total_bytes.0 - 2.0 * logits);
    assert!(compiled.step_time.0 < eager.step_time.0);
}

#[test]
fn without_its_table_fused_attention_stops_growing_at_its_published_best() {
    use roofline::graph::AttentionImpl::{Flash2, Flash3};
    // The law of the [attention] section, as used for GPUs without an attention table (these
    // three GPU files have one: tests/attention_table.rs).
    let law = |gpu: &str| {
        let mut m = machine(gpu);
        m.mechanisms.attention_table = false;
        m
    };
    let rate = |gpu: &str, which, seq, bwd| {
        let m = law(gpu);
        m.flash_rate(which, seq, 64, bwd, false).unwrap().0 / m.peak_bf16.0
    };
    // Longer sequences run faster up to the cap, never past it.
    for (gpu, which, cap) in [
        ("a100-sxm-80gb", Flash2, 0.73),
        ("h100-sxm", Flash2, 0.35),
        ("h100-sxm", Flash3, 0.75),
        ("h200-sxm", Flash3, 0.75),
    ] {
        for bwd in [false, true] {
            let mut last = 0.0;
            for seq in [512, 1024, 2048, 4096, 8192, 32768, 131072] {
                let r = rate(gpu, which, seq, bwd);
                assert!(r >= last && r <= cap + 1e-12, "{gpu} {which} {seq}: {r}");
                last = r;
            }
        }
    }
    // At 32k tokens the A100's FA2 no longer reaches 82% of the peak, causal or not (the A100
    // file has no causal factor, so causal ran at the non-causal rate: 0.551 x 1.5 = 0.83).
    let a100 = law("a100-sxm-80gb");
    for causal in [false, true] {
        let r = a100.flash_rate(Flash2, 32768, 64, false, causal).unwrap().0 / a100.peak_bf16.0;
        assert!((r - 0.73).abs() < 1e-12, "{r}");
    }
    assert!(rate("h100-sxm", Flash2, 32768, false) > rate("h100-sxm", Flash2, 512, false));
}

#[test]
fn a_fused_cross_entropy_kernel_reads_the_logits_once_each_way_in_every_mode() {
    use roofline::graph::{build_step, Checkpointing, LossImpl, Phase, StepConfig};
    let model = load_model("gpt2-124m").unwrap();
    let step = |loss| StepConfig {
        batch: 16,
        loss,
        ..StepConfig::default()
    };
    let rows = 16.0 * 1024.0;
    let logits = rows * 50257.0;
    let mut ops = Vec::new();
    build_step(&model, &step(LossImpl::Fused), &mut ops).unwrap();
    let loss: Vec<_> = ops
        .iter()
        .filter(|o| o.name.starts_with("loss.cross_entropy"))
        .cloned()
        .collect();
    assert_eq!(loss.len(), 2);
    // bf16 logits read forward, read and their gradient written backward, in both modes; one
    // kernel each way; targets, losses and log-sum-exps per row.
    for o in &loss {
        assert_eq!(o.kernels, 1, "{}", o.name);
        assert_eq!(o.bytes_read, o.fused_read);
        assert_eq!(o.bytes_written, o.fused_written);
    }
    let bytes: f64 = loss
        .iter()
        .map(|o| o.bytes_read.0 + o.bytes_written.0)
        .sum();
    assert_relative_eq!(
        bytes,
        6.0 * logits + rows * (8.0 + 8.0 + 8.0 + 4.0),
        max_relative = 1e-12
    );
    let fwd: Vec<_> = loss
        .iter()
        .filter(|o| o.phase == Phase::Forward)
        .cloned()
        .collect();
    for fused in [false, true] {
        let kept = roofline::memory::activation_bytes(&fwd, Checkpointing::None, fused).0;
        assert_relative_eq!(kept, 2.0 * logits + 4.0 * rows, max_relative = 1e-12);
    }
    // The eager step with the kernel is faster and smaller than with F.cross_entropy; compiled,
    // it saves Inductor's second read of the logits.
    let m = machine("h100-sxm");
    let mut est = Estimator::new();
    let mut at = |loss, mode| {
        let run = RunConfig {
            step: step(loss),
            mode,
            ..RunConfig::default()
        };
        let e = est.estimate(&model, &m, &run).unwrap();
        (e.step_time.0, e.memory.total_bytes.0)
    };
    let (torch, fused) = (
        at(LossImpl::Torch, ExecMode::Eager),
        at(LossImpl::Fused, ExecMode::Eager),
    );
    assert!(fused.0 < torch.0 && fused.1 < torch.1 - 2.0 * logits);
    let (torch, fused) = (
        at(LossImpl::Torch, ExecMode::Compiled),
        at(LossImpl::Fused, ExecMode::Compiled),
    );
    assert!(fused.0 < torch.0 && fused.1 == torch.1);
}

#[test]
fn a_chunked_classifier_and_loss_keeps_nothing_logits_sized() {
    use roofline::graph::{build_step, Checkpointing, LossImpl, Phase, StepConfig};
    let model = load_model("llama3-8b").unwrap();
    let step = |loss| StepConfig {
        batch: 1,
        attention: roofline::graph::AttentionImpl::Flash2,
        loss,
        ..StepConfig::default()
    };
    let rows = 8192.0;
    let logits = rows * 128256.0;
    let kept = |loss| {
        let mut ops = Vec::new();
        build_step(&model, &step(loss), &mut ops).unwrap();
        let only: Vec<_> = ops
            .iter()
            .filter(|o| o.name.starts_with("loss.cross_entropy") && o.phase == Phase::Forward)
            .cloned()
            .collect();
        roofline::memory::activation_bytes(&only, Checkpointing::None, false).0
    };
    // The fused kernel keeps the 16-bit logits; the chunked one a few bytes per row.
    assert_relative_eq!(
        kept(LossImpl::Fused),
        2.0 * logits + 4.0 * rows,
        max_relative = 1e-12
    );
    assert_relative_eq!(
        kept(LossImpl::FusedLinear),
        4.0 * rows,
        max_relative = 1e-12
    );
    // The whole step: smaller by at least the logits, no slower.
    let m = machine("h100-sxm");
    let mut est = Estimator::new();
    let mut at = |loss| {
        let run = RunConfig {
            step: step(loss),
            ..RunConfig::default()
        };
        let e = est.estimate(&model, &m, &run).unwrap();
        (e.step_time.0, e.memory.total_bytes.0)
    };
    let (fused, chunked) = (at(LossImpl::Fused), at(LossImpl::FusedLinear));
    assert!(chunked.1 < fused.1 - 2.0 * logits, "{chunked:?} {fused:?}");
    assert!(chunked.0 <= fused.0 * 1.001, "{chunked:?} {fused:?}");
}
