//! Findings: each names a fixable loss and its saving, which equals the step time of the plan
//! minus that of the plan with the fix, both estimated.

use roofline::analysis::findings::findings;
use roofline::cli::parse_scenario;
use roofline::estimate::Estimator;

fn scenario(args: &[&str]) -> roofline::scenario::Scenario {
    parse_scenario(args).unwrap()
}

#[test]
fn a_misaligned_vocabulary_is_found_and_its_padding_priced() {
    // Eager with the naive attention (not the model file's nanoGPT defaults), to find those too.
    let s = scenario(&[
        "--model",
        "gpt2-124m",
        "--gpu",
        "h100-sxm",
        "--batch",
        "16",
        "--attention",
        "naive",
        "--mode",
        "eager",
    ]);
    let mut est = Estimator::new();
    let base = est.estimate(&s.model, &s.machine, &s.run).unwrap();
    let f = findings(&s, &base, &mut Estimator::new());
    let vocab = f
        .iter()
        .find(|f| f.kind == "misaligned_gemm")
        .expect("gpt2's vocabulary 50257 is not a multiple of 8");
    assert!(vocab.message.contains("50304"), "{}", vocab.message);
    let mut padded = s.model.clone();
    padded.embedding.pad_vocab_multiple = 64;
    let fixed = est.estimate(&padded, &s.machine, &s.run).unwrap();
    assert_eq!(vocab.saving_s, (base.step_time - fixed.step_time).0);
    assert!(vocab.saving_s > 0.0);
    // Unfused attention and eager execution are found too, each with its own saving.
    let kinds: Vec<&str> = f.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&"unfused_attention"), "{kinds:?}");
    assert!(
        kinds.contains(&"eager_execution") || kinds.contains(&"host_bound"),
        "{kinds:?}"
    );
}

#[test]
fn a_plan_with_nothing_to_fix_has_no_findings() {
    let s = scenario(&[
        "--model",
        "llama3-8b",
        "--gpu",
        "h100-sxm",
        "--gpus",
        "1",
        "--batch",
        "1",
        "--attention",
        "flash2",
        "--mode",
        "graphs",
        "--checkpointing",
        "full",
    ]);
    let mut est = Estimator::new();
    let base = est.estimate(&s.model, &s.machine, &s.run).unwrap();
    let f = findings(&s, &base, &mut est);
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn exposed_communication_is_priced_per_sample() {
    let s = scenario(&[
        "--model",
        "llama3-8b",
        "--gpus",
        "256",
        "--batch",
        "1",
        "--attention",
        "flash2",
        "--mode",
        "compiled",
        "--checkpointing",
        "full",
        "--inter-node-gbps",
        "100",
    ]);
    let mut est = Estimator::new();
    let base = est.estimate(&s.model, &s.machine, &s.run).unwrap();
    let f = findings(&s, &base, &mut Estimator::new());
    let comm = f
        .iter()
        .find(|f| f.kind == "exposed_communication")
        .expect("slow inter-node links expose the all-reduce");
    let mut run = s.run;
    run.grad_accum *= 4;
    let four = est.estimate(&s.model, &s.machine, &run).unwrap();
    assert!((comm.saving_s - (base.step_time.0 - four.step_time.0 / 4.0)).abs() < 1e-12);
}

#[test]
fn a_first_generation_fused_kernel_is_found_and_the_newer_one_priced() {
    // llm-foundry's MPT defaults run its Triton attention (flash1); FlashAttention-2 is faster.
    let s = scenario(&[
        "--model",
        "mpt-125m",
        "--gpu",
        "a100-sxm-80gb",
        "--batch",
        "8",
    ]);
    assert_eq!(s.run.step.attention.name(), "flash1");
    let mut est = Estimator::new();
    let base = est.estimate(&s.model, &s.machine, &s.run).unwrap();
    let f = findings(&s, &base, &mut Estimator::new());
    let old = f
        .iter()
        .find(|f| f.kind == "old_fused_attention")
        .expect("flash1 where flash2 runs");
    assert!(
        old.message.contains("--attention flash2"),
        "{}",
        old.message
    );
    let fixed = est
        .estimate(
            &s.model,
            &s.machine,
            &s.run_with_attention(roofline::graph::AttentionImpl::Flash2),
        )
        .unwrap();
    assert_eq!(old.saving_s, (base.step_time - fixed.step_time).0);
    assert!(old.saving_s > 0.0);
    assert!(!f.iter().any(|f| f.kind == "unfused_attention"));
}
