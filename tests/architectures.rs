//! Today's architectures against their closed forms: exact parameter counts of the zoo against
//! published figures, and grouped-query attention, sliding windows and mixtures of experts
//! changing FLOPs, bytes and memory exactly as the formulas say.

use roofline::graph::{build_step, param_count, AttentionImpl, Op, OpKind, Phase, StepConfig};
use roofline::memory::{footprint, MemoryConfig};
use roofline::spec::{load_model, ModelSpec};

fn ops_for(m: &ModelSpec, cfg: &StepConfig) -> Vec<Op> {
    let mut ops = Vec::new();
    build_step(m, cfg, &mut ops).unwrap();
    ops
}

/// Sum of `v` over the forward ops named `name`, times the layers each stands for.
fn total(ops: &[Op], name: &str, v: impl Fn(&Op) -> f64) -> f64 {
    ops.iter()
        .filter(|o| o.phase == Phase::Forward && o.name == name)
        .map(|o| v(o) * o.layer.count() as f64)
        .sum()
}

#[test]
fn zoo_parameter_counts_match_published_figures() {
    // Exact totals as the Hugging Face Hub reports them (safetensors metadata of each
    // repository's weights): meta-llama/Meta-Llama-3-8B, -70B, Llama-3.1-405B,
    // mistralai/Mistral-7B-v0.1, mistralai/Mixtral-8x7B-v0.1, Qwen/Qwen2.5-7B, -72B.
    for (name, published) in [
        ("llama3-8b", 8_030_261_248u64),
        ("llama3-70b", 70_553_706_496),
        ("llama3.1-405b", 405_853_388_800),
        ("mistral-7b", 7_241_732_096),
        ("mixtral-8x7b", 46_702_792_704),
        ("qwen2.5-7b", 7_615_616_512),
        ("qwen2.5-72b", 72_706_203_648),
    ] {
        let p = param_count(&load_model(name).unwrap());
        assert_eq!(p.total, published, "{name}");
    }
    // Mixtral's active parameters: 2 of 8 experts per token ("13B active", Jiang et al. 2024).
    let mixtral = param_count(&load_model("mixtral-8x7b").unwrap());
    assert_eq!(mixtral.active, 12_879_925_248);
    assert_eq!(mixtral.total - mixtral.experts / 8 * 6, mixtral.active);
    // Dense models use every parameter.
    let llama = param_count(&load_model("llama3-8b").unwrap());
    assert_eq!(llama.active, llama.total);
    // The GPT models of Korthikanti et al. 2022, Table 3 (vocabulary 51200, sequence 2048):
    // GPT-3 "175B" within 0.5%; MT-NLG 529.6 B and the 1T model 1008.0 B as Narayanan et al.
    // 2021 (arXiv 2104.04473, Table 1) count them.
    for (name, published, tolerance) in [
        ("gpt3-175b", 175e9, 0.005),
        ("mt-nlg-530b", 529.6e9, 0.0005),
        ("megatron-1t", 1008.0e9, 0.0005),
        ("megatron-22b", 22e9, 0.01),
    ] {
        let p = param_count(&load_model(name).unwrap()).total as f64;
        assert!(
            (p / published - 1.0).abs() < tolerance,
            "{name}: {p} vs {published}"
        );
    }
    // The MPT models of llm-foundry's benchmarks, exactly as the NumParams column of
    // mosaicml/llm-foundry scripts/train/benchmarking/README.md gives them at sequence 2048
    // (biases, learned positions, vocabulary 50368, tied embeddings).
    for (name, published) in [
        ("mpt-125m", 125_311_488u64),
        ("mpt-350m", 355_985_408),
        ("mpt-760m", 760_470_528),
        ("mpt-1b", 1_315_950_592),
        ("mpt-3b", 2_651_837_440),
        ("mpt-7b", 6_658_859_008),
        ("mpt-13b", 12_853_954_560),
        ("mpt-30b", 29_975_214_080),
    ] {
        let p = param_count(&load_model(name).unwrap());
        assert_eq!(p.total, published, "{name}");
    }
}

/// The same model with multi-head attention (kv = h).
fn with_kv(m: &ModelSpec, kv: u64) -> ModelSpec {
    let mut m = m.clone();
    m.transformer.kv_heads = Some(kv);
    m
}

#[test]
fn grouped_query_attention_changes_flops_bytes_and_memory_as_the_formulas_say() {
    let gqa = load_model("llama3-8b").unwrap();
    let mha = with_kv(&gqa, gqa.transformer.heads);
    let (b, s) = (2u64, gqa.tokens.text);
    let t = &gqa.transformer;
    let (d, h, kv, dh, depth) = (t.width, t.heads, 8u64, gqa.head_dim(), t.depth);
    let tokens = (b * s) as f64;
    // Parameters: the qkv projection shrinks by d·2·(h - kv)·dh per block.
    let saved_params = depth * d * 2 * (h - kv) * dh;
    assert_eq!(
        param_count(&mha).total - param_count(&gqa).total,
        saved_params
    );
    let cfg = StepConfig {
        batch: b,
        attention: AttentionImpl::Flash2,
        ..StepConfig::default()
    };
    let (og, om) = (ops_for(&gqa, &cfg), ops_for(&mha, &cfg));
    // The qkv GEMM: 2·T·d·(h + 2·kv)·dh FLOPs per block.
    let qkv = total(&og, "attn.qkv", |o| o.flops.0);
    assert_eq!(
        qkv,
        depth as f64 * 2.0 * tokens * d as f64 * ((h + 2 * kv) * dh) as f64
    );
    // Fused attention: the same FLOPs (4·B·s²·h·dh, half for causal); it reads q, k, v:
    // (Eq + 2·Ekv) bf16 elements, and keeps q, k, v, o and the fp32 log-sum-exp.
    let flash = |ops: &[Op], f: &dyn Fn(&Op) -> f64| total(ops, "attn.flash", f);
    assert_eq!(flash(&og, &|o| o.flops.0), flash(&om, &|o| o.flops.0));
    assert_eq!(
        flash(&og, &|o| o.flops.0),
        depth as f64 * 4.0 * tokens * s as f64 * (h * dh) as f64 * 0.5
    );
    let (eq, ekv) = (tokens * (h * dh) as f64, tokens * (kv * dh) as f64);
    let lse = tokens * h as f64 * 4.0;
    assert_eq!(
        flash(&og, &|o| o.bytes_read.0),
        depth as f64 * (eq + 2.0 * ekv) * 2.0
    );
    assert_eq!(
        flash(&og, &|o| o.saved.0),
        depth as f64 * ((2.0 * eq + 2.0 * ekv) * 2.0 + lse)
    );
    // Activation memory: only what attention keeps of k and v shrinks, 2·(Eq - Ekv) bf16
    // elements per block (with multi-head attention k and v are Eq elements each).
    let mc = MemoryConfig::default();
    let mem_g = footprint(&gqa, &cfg, &og, &mc);
    let mem_m = footprint(&mha, &cfg, &om, &mc);
    assert_eq!(
        mem_m.activations_bytes.0 - mem_g.activations_bytes.0,
        depth as f64 * 2.0 * (eq - ekv) * 2.0
    );
    // Every parameter-sized buffer shrinks by the parameters saved (16 B each under autocast,
    // plus the bf16 copy of the GEMM weights).
    assert_eq!(
        mem_m.persistent_bytes().0 - mem_g.persistent_bytes().0,
        saved_params as f64 * (16.0 + 2.0)
    );
}

#[test]
fn a_sliding_window_attends_to_the_window_only() {
    let m = load_model("mistral-7b").unwrap();
    let (s, w) = (m.tokens.text as f64, m.transformer.window as f64);
    assert!(w < s);
    let cfg = StepConfig {
        batch: 1,
        attention: AttentionImpl::Flash2,
        ..StepConfig::default()
    };
    let ops = ops_for(&m, &cfg);
    let depth = m.transformer.depth as f64;
    let q_width = m.q_width() as f64;
    // Pairs per head: s·w - w²/2 (each query sees itself and the w - 1 tokens before it).
    let pairs = s * w - 0.5 * w * w;
    assert_eq!(
        total(&ops, "attn.flash", |o| o.flops.0),
        depth * 4.0 * pairs * q_width
    );
    // Without the window the causal half: s²/2.
    let mut full = m.clone();
    full.transformer.window = 0;
    let full_ops = ops_for(&full, &cfg);
    assert_eq!(
        total(&full_ops, "attn.flash", |o| o.flops.0),
        depth * 4.0 * 0.5 * s * s * q_width
    );
    // Unfused attention computes every score and masks; model FLOPs count the window only.
    let naive = StepConfig {
        attention: AttentionImpl::Naive,
        ..cfg
    };
    let n_ops = ops_for(&m, &naive);
    let scores = total(&n_ops, "attn.scores", |o| o.flops.0);
    let model = total(&n_ops, "attn.scores", |o| o.model_flops.0);
    assert_eq!(scores, depth * 2.0 * s * s * q_width);
    assert!((model / scores - pairs / (s * s)).abs() < 1e-12);
    // The window reaches the fused kernel's shape (the time model rates it at its length).
    let window = n_ops
        .iter()
        .chain(&ops)
        .find_map(|o| match o.kind {
            OpKind::Attention { window, .. } => Some(window),
            _ => None,
        })
        .unwrap();
    assert_eq!(u64::from(window), w as u64);
}

#[test]
fn experts_compute_the_routed_tokens_and_hold_all_weights() {
    let m = load_model("mixtral-8x7b").unwrap();
    let t = &m.transformer;
    let moe = t.moe.as_ref().unwrap();
    let (b, s) = (1u64, 4096u64);
    let m = m.with_sequence(s).unwrap();
    let tokens = (b * s) as f64;
    let (d, f, e, k) = (
        t.width as f64,
        t.mlp_hidden as f64,
        moe.experts as f64,
        moe.top_k as f64,
    );
    let depth = t.depth as f64;
    let cfg = StepConfig {
        batch: b,
        attention: AttentionImpl::Flash2,
        ..StepConfig::default()
    };
    let ops = ops_for(&m, &cfg);
    // Expert GEMMs: the T·k routed rows through d -> 2f -> d (SwiGLU), 6·T·k·d·f FLOPs per
    // block forward; all 8 experts' weights are read.
    let up = total(&ops, "mlp.fc1", |o| o.flops.0);
    let down = total(&ops, "mlp.fc2", |o| o.flops.0);
    assert_eq!(up + down, depth * 2.0 * tokens * k * d * 3.0 * f);
    let weights_read = total(&ops, "mlp.fc1", |o| o.bytes_read.0) - depth * tokens * k * d * 2.0;
    assert_eq!(weights_read, depth * e * d * 2.0 * f * 2.0);
    // The router: 2·T·d·E.
    assert_eq!(
        total(&ops, "moe.router", |o| o.flops.0),
        depth * 2.0 * tokens * d * e
    );
    // A capacity factor of 1.25 pads each expert's rows: executed FLOPs grow by 1.25, model
    // FLOPs do not.
    let mut padded = m.clone();
    padded.transformer.moe.as_mut().unwrap().capacity_factor = 1.25;
    let p_ops = ops_for(&padded, &cfg);
    let fwd = |ops: &[Op], f: &dyn Fn(&Op) -> f64| total(ops, "mlp.fc1", f);
    assert!((fwd(&p_ops, &|o| o.flops.0) / up - 1.25).abs() < 1e-3);
    assert!((fwd(&p_ops, &|o| o.model_flops.0) / up - 1.0).abs() < 1e-3);
    // Expert parallelism over 4 ranks: each holds 2 experts and computes 4x their balanced rows:
    // the same FLOPs, a quarter of the expert weights read.
    let ep = StepConfig {
        expert_shards: 4,
        ..cfg
    };
    let ep_ops = ops_for(&m, &ep);
    assert_eq!(total(&ep_ops, "mlp.fc1", |o| o.flops.0), up);
    let ep_weights = total(&ep_ops, "mlp.fc1", |o| o.bytes_read.0) - depth * tokens * k * d * 2.0;
    assert_eq!(ep_weights, weights_read / 4.0);
}

#[test]
fn expert_parallelism_spreads_the_experts_and_pays_all_to_alls() {
    use roofline::estimate::{Estimator, RunConfig};
    use roofline::graph::all_to_all_bytes;
    use roofline::spec::load_gpu;
    use roofline::time::comm::all_to_all_time;
    use roofline::time::{Fleet, Machine};
    use roofline::units::Bytes;
    let m = load_model("mixtral-8x7b")
        .unwrap()
        .with_sequence(4096)
        .unwrap();
    let mach = Machine::new(&load_gpu("h200-sxm").unwrap(), None);
    let run = |ep: u64| RunConfig {
        step: StepConfig {
            batch: 1,
            attention: AttentionImpl::Flash2,
            expert_shards: ep,
            ..StepConfig::default()
        },
        fleet: Fleet {
            gpus: 16,
            ..Fleet::default()
        },
        ..RunConfig::default()
    };
    let mut est = Estimator::new();
    let (one, eight) = (
        est.estimate(&m, &mach, &run(1)).unwrap(),
        est.estimate(&m, &mach, &run(8)).unwrap(),
    );
    // Memory: each rank holds 1/8 of the experts: weights, gradients and AdamW states (16 B per
    // parameter under autocast) and the bf16 copies of their GEMM weights shrink by 7/8.
    let p = param_count(&m);
    let persistent = |e: &roofline::estimate::StepEstimate| e.memory.persistent_bytes().0;
    let expected =
        p.experts as f64 * 7.0 / 8.0 * 16.0 + p.expert_gemm_weights as f64 * 7.0 / 8.0 * 2.0;
    assert!((persistent(&one) - persistent(&eight) - expected).abs() < 1.0);
    // Communication: four all-to-alls per layer per micro-step, each T·k·d bf16 rows, over 8
    // ranks of one node; the gradient all-reduce moves only the experts this rank holds.
    let tokens = 4096;
    let a2a = all_to_all_time(
        &run(8).fleet,
        &mach,
        Bytes(all_to_all_bytes(&m, tokens, roofline::graph::Dtype::Bf16)),
        8,
    );
    let layers = m.transformer.depth as f64;
    assert!(eight.comm_total.0 > 4.0 * layers * a2a.0);
    assert_eq!(
        all_to_all_bytes(&m, tokens, roofline::graph::Dtype::Bf16),
        4096.0 * 2.0 * 4096.0 * 2.0
    );
    // The same FLOPs either way.
    assert_eq!(one.model_flops, eight.model_flops);
    // Not a divisor of the experts, or a dense model: rejected.
    assert!(est.estimate(&m, &mach, &run(3)).is_err());
    assert!(est
        .estimate(&load_model("llama3-8b").unwrap(), &mach, &run(2))
        .is_err());
}
