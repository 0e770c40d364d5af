//! Hugging Face `config.json` files as model specs.
//!
//! A `config.json` describes the architecture (Hugging Face `transformers`' `PretrainedConfig`
//! of each `model_type`), not a training run: it has no sequence length, so the import takes
//! `max_position_embeddings` (GPT-2: `n_positions`) and a `--seq` overrides it. Every key is
//! either read, known to change nothing in a training step's cost (token ids, norm epsilons, the
//! RoPE base and scaling, initialization, storage dtype, library versions), or named in the
//! import's notes as not understood; a value the model cannot express (an unsupported
//! activation, dense layers between sparse ones) is an error naming the key.
//!
//! Defaults follow each `transformers` config class (e.g. `LlamaConfig.tie_word_embeddings`
//! false, `GemmaConfig` true; `Qwen2` and `Qwen2Moe` put biases on q, k and v only).

use super::model::{
    Conditioning, Embedding, MlpKind, ModelKind, ModelSpec, Moe, NormKind, PositionEmbed, RopeKind,
    Tokens, Transformer,
};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// The `model_type`s the importer reads.
pub const SUPPORTED: [&str; 8] = [
    "llama", "mistral", "qwen2", "gemma", "gemma2", "gpt2", "gpt_neox", "mixtral",
];

/// Also read: Qwen2-MoE (kept apart so the list above reads as the families).
const SUPPORTED_MOE: [&str; 1] = ["qwen2_moe"];

/// Keys that change nothing in the cost of a training step.
const NO_COST: &[&str] = &[
    "_name_or_path",
    "architectures",
    "model_type",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "torch_dtype",
    "transformers_version",
    "use_cache",
    "initializer_range",
    "rms_norm_eps",
    "layer_norm_eps",
    "layer_norm_epsilon",
    "rope_theta",
    "rope_scaling",
    "rotary_emb_base",
    "pretraining_tp",
    "router_aux_loss_coef",
    "router_jitter_noise",
    "output_router_logits",
    "cache_implementation",
    "bos_token",
    "eos_token",
    "summary_activation",
    "summary_first_dropout",
    "summary_proj_to_labels",
    "summary_type",
    "summary_use_proj",
    "scale_attn_weights",
];

/// A model read from a `config.json`, with what the import could not express.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The model.
    pub model: ModelSpec,
    /// Keys not understood and approximations made, one line each.
    pub notes: Vec<String>,
}

/// Reads the keys of one config object, remembering which were read.
struct Keys<'a> {
    map: &'a Map<String, Value>,
    file: &'a str,
    read: Vec<&'static str>,
}

impl<'a> Keys<'a> {
    fn int(&mut self, key: &'static str) -> Result<Option<u64>> {
        self.read.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                Error::spec(self.file, key, format!("{v} is not a non-negative integer"))
            }),
        }
    }

    fn need(&mut self, key: &'static str) -> Result<u64> {
        self.int(key)?
            .ok_or_else(|| Error::spec(self.file, key, "missing (needed for the architecture)"))
    }

    fn num(&mut self, key: &'static str) -> Result<Option<f64>> {
        self.read.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| Error::spec(self.file, key, format!("{v} is not a number"))),
        }
    }

    fn flag(&mut self, key: &'static str, default: bool) -> Result<bool> {
        self.read.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(Error::spec(
                self.file,
                key,
                format!("{v} is not true or false"),
            )),
        }
    }

    fn text(&mut self, key: &'static str) -> Result<Option<&'a str>> {
        self.read.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(Error::spec(self.file, key, format!("{v} is not a string"))),
        }
    }

    /// The activation: one of `allowed`, else an error naming the key.
    fn activation(&mut self, keys: &[&'static str], allowed: &[&str]) -> Result<()> {
        for &key in keys {
            if let Some(a) = self.text(key)? {
                if !allowed.contains(&a) {
                    return Err(Error::spec(
                        self.file,
                        key,
                        format!(
                            "`{a}` is not modelled for this model_type (expected {})",
                            allowed.join(" or ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Parses a `config.json`; `file` names it in errors, `name` becomes the model's name.
pub fn import(text: &str, file: &str, name: &str) -> Result<Imported> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::spec(
            file,
            "(json)",
            format!(
                "not valid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(map) = &value else {
        return Err(Error::spec(file, "(json)", "expected a JSON object"));
    };
    let mut k = Keys {
        map,
        file,
        read: Vec::new(),
    };
    let model_type = k.text("model_type")?.ok_or_else(|| {
        Error::spec(
            file,
            "model_type",
            "missing: a Hugging Face config.json names its model_type",
        )
    })?;
    let mut notes = Vec::new();
    let mut model = match model_type {
        "gpt2" => gpt2(&mut k)?,
        "gpt_neox" => gpt_neox(&mut k, &mut notes)?,
        "llama" | "mistral" | "qwen2" | "gemma" | "gemma2" | "mixtral" | "qwen2_moe" => {
            llama_like(&mut k, model_type, &mut notes)?
        }
        other => {
            let all: Vec<&str> = SUPPORTED.iter().chain(&SUPPORTED_MOE).copied().collect();
            return Err(Error::spec(
                file,
                "model_type",
                format!("`{other}` is not supported; supported: {}", all.join(", ")),
            ));
        }
    };
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|key| !k.read.contains(key) && !NO_COST.contains(key))
        .collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "not understood, left out of the model: {}",
            unknown.join(", ")
        ));
    }
    model.name = name.to_string();
    model.file = file.to_string();
    model.source = format!("Hugging Face config.json {file} (model_type {model_type})");
    model.description = describe(&model, model_type);
    model.notes = notes.clone();
    model.validate(file)?;
    Ok(Imported { model, notes })
}

/// One line on an imported model.
fn describe(m: &ModelSpec, model_type: &str) -> String {
    let t = &m.transformer;
    let moe = t.moe.as_ref().map_or(String::new(), |moe| {
        format!(", {} experts top-{}", moe.experts, moe.top_k)
    });
    format!(
        "{model_type} from config.json: width {}, {} layers, {} heads ({} key/value), MLP {}{moe}, vocabulary {}, sequence {} (max_position_embeddings; --seq overrides)",
        t.width,
        t.depth,
        t.heads,
        m.kv_heads(),
        t.mlp_hidden,
        m.embedding.vocab,
        m.tokens.text
    )
}

/// A language model with the given trunk and embedding, sequence `seq`.
/// A causal decoder of `depth` blocks: width, heads, MLP hidden size and dropout as given;
/// multi-head attention without a window, no adaLN or experts, biased MLP. Each architecture
/// overrides what differs.
fn decoder(width: u64, depth: u64, heads: u64, mlp_hidden: u64, dropout: f64) -> Transformer {
    Transformer {
        width,
        depth,
        heads,
        kv_heads: None,
        head_dim: None,
        window: 0,
        causal: true,
        norm: NormKind::Layernorm,
        qk_norm: false,
        post_norm: false,
        rope: RopeKind::None,
        qkv_bias: true,
        out_bias: true,
        mlp: MlpKind::Gelu,
        mlp_hidden,
        mlp_bias: true,
        conditioning: Conditioning::None,
        moe: None,
        dropout,
    }
}

/// A token embedding of `vocab` rows with `position` embeddings of `max_positions` rows.
fn text_embedding(
    vocab: u64,
    tied_head: bool,
    position: PositionEmbed,
    max_positions: u64,
) -> Embedding {
    Embedding {
        patch_embed: None,
        bottleneck: 0,
        position,
        max_positions,
        timestep_frequencies: 0,
        classes: 0,
        vocab,
        tied_head,
        pad_vocab_multiple: 1,
    }
}

fn language(transformer: Transformer, embedding: Embedding, seq: u64) -> ModelSpec {
    ModelSpec {
        name: String::new(),
        description: String::new(),
        source: String::new(),
        kind: ModelKind::Language,
        tokens: Tokens {
            condition: 0,
            target: 0,
            in_context: 0,
            in_context_from_block: 0,
            text: seq,
        },
        input: None,
        transformer,
        embedding,
        defaults: None,
        file: String::new(),
        notes: Vec::new(),
    }
}

/// The dropout of attention probabilities and residual branches, when the config has one.
fn dropout(k: &mut Keys, keys: &[&'static str]) -> Result<f64> {
    let mut p = 0.0f64;
    for key in keys {
        p = p.max(k.num(key)?.unwrap_or(0.0));
    }
    Ok(p)
}

/// Llama and the families that share its layout: pre-norm RMSNorm, RoPE, gated MLP.
fn llama_like(k: &mut Keys, model_type: &str, notes: &mut Vec<String>) -> Result<ModelSpec> {
    let width = k.need("hidden_size")?;
    let heads = k.need("num_attention_heads")?;
    let kv_heads = k.int("num_key_value_heads")?;
    let head_dim = k.int("head_dim")?;
    let depth = k.need("num_hidden_layers")?;
    let vocab = k.need("vocab_size")?;
    let seq = k.need("max_position_embeddings")?;
    let gemma = model_type.starts_with("gemma");
    let qwen = model_type.starts_with("qwen2");
    let (mlp, allowed): (MlpKind, &[&str]) = if gemma {
        (MlpKind::Geglu, &["gelu_pytorch_tanh", "gelu"])
    } else {
        (MlpKind::Swiglu, &["silu"])
    };
    k.activation(&["hidden_act", "hidden_activation"], allowed)?;
    let attention_bias = k.flag("attention_bias", false)?;
    let mlp_bias = k.flag("mlp_bias", false)?;
    let tied_head = k.flag("tie_word_embeddings", gemma)?;
    let mut window = 0;
    match model_type {
        "mistral" | "mixtral" => window = k.int("sliding_window")?.unwrap_or(0),
        "qwen2" | "qwen2_moe" => {
            let sliding = k.int("sliding_window")?;
            k.int("max_window_layers")?;
            if k.flag("use_sliding_window", false)? {
                window = sliding.unwrap_or(0);
                notes.push(format!(
                    "use_sliding_window: a window of {window} on every layer (Qwen2 applies it from max_window_layers on)"
                ));
            }
        }
        "gemma2" => {
            let w = k.int("sliding_window")?.unwrap_or(0);
            k.int("sliding_window_size")?;
            if w > 0 {
                notes.push(format!(
                    "sliding_window {w}: Gemma 2 alternates local and global layers; modelled as full attention in every layer (counts more attention work for sequences beyond {w})"
                ));
            }
            for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
                if k.num(key)?.is_some() {
                    notes.push(format!(
                        "{key}: the tanh soft-capping (one pointwise op) is not modelled"
                    ));
                }
            }
            k.num("query_pre_attn_scalar")?;
        }
        _ => {}
    }
    if gemma {
        notes.push(
            "gemma scales the embeddings by sqrt(hidden_size): one pointwise op, not modelled"
                .into(),
        );
    }
    let moe = match model_type {
        "mixtral" => Some(Moe {
            experts: k.need("num_local_experts")?,
            top_k: k.need("num_experts_per_tok")?,
            shared_hidden: 0,
            shared_gate: false,
            capacity_factor: 1.0,
        }),
        "qwen2_moe" => {
            if k.int("decoder_sparse_step")?.unwrap_or(1) != 1 {
                return Err(Error::spec(
                    k.file,
                    "decoder_sparse_step",
                    "only 1 (every layer sparse) is modelled",
                ));
            }
            k.read.push("mlp_only_layers");
            if k.map
                .get("mlp_only_layers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                return Err(Error::spec(
                    k.file,
                    "mlp_only_layers",
                    "dense layers among sparse ones are not modelled (the list must be empty)",
                ));
            }
            if !k.flag("norm_topk_prob", false)? {
                notes.push(
                    "norm_topk_prob false: the top-k weights are not renormalized (two small pointwise ops counted anyway)".into(),
                );
            }
            Some(Moe {
                experts: k.need("num_experts")?,
                top_k: k.need("num_experts_per_tok")?,
                shared_hidden: k.int("shared_expert_intermediate_size")?.unwrap_or(0),
                shared_gate: true,
                capacity_factor: 1.0,
            })
        }
        _ => None,
    };
    let hidden_key = if model_type == "qwen2_moe" {
        k.int("intermediate_size")?;
        "moe_intermediate_size"
    } else {
        "intermediate_size"
    };
    let mlp_hidden = k.need(hidden_key)?;
    let dropout = dropout(k, &["attention_dropout"])?;
    let transformer = Transformer {
        kv_heads: kv_heads.filter(|kv| *kv != heads),
        head_dim: head_dim.filter(|dh| heads.checked_mul(*dh) != Some(width)),
        window: if window >= seq { 0 } else { window },
        norm: NormKind::Rmsnorm,
        post_norm: model_type == "gemma2",
        rope: RopeKind::OneD,
        qkv_bias: attention_bias || qwen,
        out_bias: attention_bias,
        mlp,
        mlp_bias,
        moe,
        ..decoder(width, depth, heads, mlp_hidden, dropout)
    };
    let embedding = text_embedding(vocab, tied_head, PositionEmbed::None, 0);
    Ok(language(transformer, embedding, seq))
}

/// GPT-2: LayerNorm, learned positions, GELU MLP, biases everywhere, tied head.
fn gpt2(k: &mut Keys) -> Result<ModelSpec> {
    let width = k.need("n_embd")?;
    let depth = k.need("n_layer")?;
    let heads = k.need("n_head")?;
    let positions = k.need("n_positions")?;
    k.int("n_ctx")?;
    let vocab = k.need("vocab_size")?;
    let hidden = k.int("n_inner")?.unwrap_or(width.saturating_mul(4));
    k.activation(
        &["activation_function"],
        &["gelu_new", "gelu", "gelu_pytorch_tanh"],
    )?;
    let dropout = dropout(k, &["attn_pdrop", "resid_pdrop", "embd_pdrop"])?;
    for key in [
        "reorder_and_upcast_attn",
        "scale_attn_by_inverse_layer_idx",
        "task_specific_params",
    ] {
        k.read.push(key);
    }
    Ok(language(
        decoder(width, depth, heads, hidden, dropout),
        text_embedding(vocab, true, PositionEmbed::Learned, positions),
        positions,
    ))
}

/// GPT-NeoX (Pythia): LayerNorm, RoPE, GELU MLP, biases, untied head.
fn gpt_neox(k: &mut Keys, notes: &mut Vec<String>) -> Result<ModelSpec> {
    let width = k.need("hidden_size")?;
    let depth = k.need("num_hidden_layers")?;
    let heads = k.need("num_attention_heads")?;
    let hidden = k.need("intermediate_size")?;
    let vocab = k.need("vocab_size")?;
    let seq = k.need("max_position_embeddings")?;
    k.activation(&["hidden_act"], &["gelu", "gelu_new", "gelu_fast"])?;
    let tied = k.flag("tie_word_embeddings", false)?;
    let bias = k.flag("attention_bias", true)?;
    if let Some(p) = k.num("rotary_pct")? {
        if p < 1.0 {
            notes.push(format!(
                "rotary_pct {p}: RoPE rotates that share of each head; modelled on the whole head (a few pointwise FLOPs more)"
            ));
        }
    }
    if k.flag("use_parallel_residual", true)? {
        notes.push(
            "use_parallel_residual: attention and MLP read the same input; modelled as sequential branches (the same ops and kernels)".into(),
        );
    }
    let dropout = dropout(k, &["attention_dropout", "hidden_dropout"])?;
    Ok(language(
        Transformer {
            rope: RopeKind::OneD,
            qkv_bias: bias,
            out_bias: bias,
            ..decoder(width, depth, heads, hidden, dropout)
        },
        text_embedding(vocab, tied, PositionEmbed::None, 0),
        seq,
    ))
}
