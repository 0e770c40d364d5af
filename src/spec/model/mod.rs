//! Transformer architecture specs (models/*.toml).
//!
//! A model is data: block structure, token composition, embeddings and head. The op graph
//! (`crate::graph`) turns any spec into ops; there is no code path per model.

mod check;

use crate::error::{Error, Result};
use crate::spec::toml_error::{toml_error_field, toml_error_problem};
use serde::{Deserialize, Serialize};

/// What the network consumes and predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Images or latents cut into patches; the head predicts pixels of the target patches.
    Vision,
    /// Text tokens; the head predicts the next token over the vocabulary.
    Language,
}

/// Normalization layer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// RMSNorm with a learned scale (d parameters).
    Rmsnorm,
    /// LayerNorm with learned scale and bias (2d parameters).
    Layernorm,
    /// LayerNorm without affine parameters (DiT's `elementwise_affine=False`).
    LayernormNoAffine,
    /// LayerNorm with scale and bias run in the autocast dtype: the input, weight and bias cast
    /// down first (llm-foundry's `low_precision_layernorm`, `LPLayerNorm` in
    /// llmfoundry/models/layers/norm.py), so it keeps and returns 16-bit tensors.
    LayernormLowPrecision,
}

/// MLP kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlpKind {
    /// `w2(silu(w1 x) * w3 x)`: the up projection has 2 x hidden outputs (gate and value).
    Swiglu,
    /// `fc2(gelu(fc1 x))`.
    Gelu,
    /// `w2(gelu(w1 x) * w3 x)` (GeGLU, Gemma): the up projection has 2 x hidden outputs.
    Geglu,
}

impl MlpKind {
    /// Whether the up projection produces a gate and a value (2 x hidden outputs).
    pub fn gated(self) -> bool {
        matches!(self, MlpKind::Swiglu | MlpKind::Geglu)
    }
}

/// A mixture-of-experts MLP in every block (Shazeer et al. 2017; Switch, Fedus et al. 2021;
/// Mixtral, Jiang et al. 2024): a router `Linear(d, experts)` picks `top_k` experts per token,
/// each an MLP of the block's kind with `mlp_hidden` hidden units; an optional shared expert
/// runs on every token.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Moe {
    /// Routed experts per block.
    pub experts: u64,
    /// Experts each token is routed to.
    pub top_k: u64,
    /// Hidden size of an always-on shared expert MLP (0 = none; Qwen2-MoE, DeepSeekMoE).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shared_hidden: u64,
    /// A `Linear(d, 1)` sigmoid gate on the shared expert's output (Qwen2-MoE).
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared_gate: bool,
    /// Rows each expert computes, as a multiple of the balanced share tokens x top_k / experts
    /// (1 = dropless and balanced; above 1 the padding of a capacity-based dispatch).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub capacity_factor: f64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn one() -> f64 {
    1.0
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

fn one_u64() -> u64 {
    1
}

fn is_one_u64(v: &u64) -> bool {
    *v == 1
}

/// Rotary position embedding applied to q and k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RopeKind {
    /// No rotary embedding.
    None,
    /// 1-D RoPE over the token index.
    #[serde(rename = "1d")]
    OneD,
    /// 2-D axial RoPE over patch rows and columns.
    #[serde(rename = "2d")]
    TwoD,
}

/// How the conditioning vector enters the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conditioning {
    /// No conditioning vector.
    None,
    /// adaLN-Zero (DiT): per block `Linear(d, 6d)` on SiLU(c) gives shift/scale/gate for both
    /// branches; the final layer has `Linear(d, 2d)`.
    AdalnZero,
}

/// Patch embedding kind (vision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchEmbed {
    /// One strided convolution `C*p*p -> d` with bias (ViT, DiT).
    Linear,
    /// JiT's bottleneck: conv `C*p*p -> b` without bias, then conv 1x1 `b -> d` with bias.
    Bottleneck,
}

/// Absolute position embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PositionEmbed {
    /// None (RoPE only).
    None,
    /// Frozen sin-cos table (not trained).
    Fixed,
    /// Learned table of `max_positions x d` (GPT-2).
    Learned,
}

/// Tokens per sample, by role.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// Patch tokens of a conditioning image, processed by every block but not predicted.
    #[serde(default)]
    pub condition: u64,
    /// Patch tokens predicted by the head (vision).
    #[serde(default)]
    pub target: u64,
    /// In-context tokens (e.g. JiT's class tokens) prepended from block `in_context_from_block` on.
    #[serde(default)]
    pub in_context: u64,
    /// First block (0-based) that sees the in-context tokens.
    #[serde(default)]
    pub in_context_from_block: u64,
    /// Text tokens (language models): the sequence length.
    #[serde(default)]
    pub text: u64,
}

/// Input image or latent geometry (vision).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Height in pixels (or latent cells).
    pub height: u64,
    /// Width in pixels (or latent cells).
    pub width: u64,
    /// Input channels.
    pub channels: u64,
    /// Patch size p (p x p pixels per token).
    pub patch: u64,
    /// Channels predicted per pixel (DiT with learned sigma predicts 2C).
    pub out_channels: u64,
}

/// The transformer trunk.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Transformer {
    /// Model width d.
    pub width: u64,
    /// Number of blocks.
    pub depth: u64,
    /// Attention (query) heads h.
    pub heads: u64,
    /// Key/value heads (grouped-query attention, Ainslie et al. 2023; 1 = multi-query, Shazeer
    /// 2019); absent = `heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<u64>,
    /// Head dimension; absent = width / heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u64>,
    /// Causal sliding-window attention: each token attends to itself and the `window - 1`
    /// tokens before it (Mistral 7B; Beltagy et al. 2020); 0 = full attention.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub window: u64,
    /// Causal (decoder) attention.
    #[serde(default)]
    pub causal: bool,
    /// Normalization kind.
    pub norm: NormKind,
    /// RMSNorm on q and k per head.
    #[serde(default)]
    pub qk_norm: bool,
    /// A second norm on each branch's output before the residual add (Gemma 2's
    /// `post_attention_layernorm` and `post_feedforward_layernorm`): four norms per block.
    #[serde(default, skip_serializing_if = "is_false")]
    pub post_norm: bool,
    /// Rotary embedding.
    pub rope: RopeKind,
    /// Bias on the qkv projection.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub out_bias: bool,
    /// MLP kind.
    pub mlp: MlpKind,
    /// MLP hidden size (per branch for gated MLPs; per expert for a mixture of experts).
    pub mlp_hidden: u64,
    /// Biases in the MLP linears.
    pub mlp_bias: bool,
    /// Conditioning.
    pub conditioning: Conditioning,
    /// A mixture of experts in place of every block's MLP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<Moe>,
    /// Dropout probability on attention probabilities and on both branch outputs (0 = none).
    /// Each dropout keeps a 1-byte mask per element for backward.
    #[serde(default)]
    pub dropout: f64,
}

/// Embeddings and head.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Embedding {
    /// Patch embedding (vision only).
    pub patch_embed: Option<PatchEmbed>,
    /// Bottleneck width (for `patch_embed = "bottleneck"`).
    #[serde(default)]
    pub bottleneck: u64,
    /// Absolute position embedding.
    pub position: PositionEmbed,
    /// Rows of a learned position table.
    #[serde(default)]
    pub max_positions: u64,
    /// Sinusoidal frequencies fed to the timestep MLP `Linear(f, d) -> SiLU -> Linear(d, d)`;
    /// 0 = no timestep embedder.
    #[serde(default)]
    pub timestep_frequencies: u64,
    /// Rows of the class embedding table; 0 = none.
    #[serde(default)]
    pub classes: u64,
    /// Vocabulary size (language models).
    #[serde(default)]
    pub vocab: u64,
    /// The LM head shares the token embedding matrix.
    #[serde(default)]
    pub tied_head: bool,
    /// The vocabulary is padded up to a multiple of this (Megatron-LM's
    /// `make-vocab-size-divisible-by`, nanoGPT's 50304): the embedding table, the head and the
    /// loss run over the padded size; 1 = no padding.
    #[serde(default = "one_u64", skip_serializing_if = "is_one_u64")]
    pub pad_vocab_multiple: u64,
}

/// A model file's `[defaults]`: how its reference code runs a training step. Each applies only
/// where the user gives no value; the spellings are those of the command line, checked where
/// they are used ([`crate::scenario`]), which names this file and field when one is wrong.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDefaults {
    /// Samples per GPU per micro-step.
    pub batch: Option<u64>,
    /// Attention implementation (`--attention`).
    pub attention: Option<String>,
    /// Precision (`--precision`).
    pub precision: Option<String>,
    /// Execution mode (`--mode`).
    pub mode: Option<String>,
    /// Where these settings come from (the reference code, with file).
    pub source: String,
}

/// A whole model spec file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Short name used on the command line.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Where the architecture comes from.
    pub source: String,
    /// Vision or language.
    pub kind: ModelKind,
    /// Token composition.
    pub tokens: Tokens,
    /// Image geometry (vision).
    pub input: Option<Input>,
    /// The trunk.
    pub transformer: Transformer,
    /// Embeddings and head.
    pub embedding: Embedding,
    /// How the model's reference code runs a training step, for the settings a user leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<ModelDefaults>,
    /// The file (or embedded name) this spec was read from, for errors about it.
    #[serde(skip)]
    pub file: String,
    /// What an import could not express (keys not understood, approximations), one line each;
    /// empty for a TOML spec.
    #[serde(skip)]
    pub notes: Vec<String>,
}

impl ModelSpec {
    /// Parses and validates a spec; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self> {
        let mut spec: ModelSpec = toml::from_str(text)
            .map_err(|e| Error::spec(file, toml_error_field(&e, text), toml_error_problem(&e)))?;
        spec.validate(file)?;
        spec.file = file.to_string();
        Ok(spec)
    }

    /// The spec as a TOML file that [`ModelSpec::from_toml`] reads back, headed by its notes as
    /// comments.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string(self)
            .map_err(|e| Error::Internal(format!("model {} as TOML: {e}", self.name)))?;
        let notes: String = self
            .notes
            .iter()
            .map(|n| format!("# note: {n}\n"))
            .collect();
        Ok(notes + &body)
    }

    /// Head dimension: as given, else d / h.
    pub fn head_dim(&self) -> u64 {
        let t = &self.transformer;
        t.head_dim.unwrap_or(t.width / t.heads.max(1))
    }

    /// Key/value heads: as given, else the query heads.
    pub fn kv_heads(&self) -> u64 {
        self.transformer.kv_heads.unwrap_or(self.transformer.heads)
    }

    /// Width of the queries (and of the attention output): heads x head dimension.
    pub fn q_width(&self) -> u64 {
        self.transformer.heads * self.head_dim()
    }

    /// Width of the keys (and of the values): kv heads x head dimension.
    pub fn kv_width(&self) -> u64 {
        self.kv_heads() * self.head_dim()
    }

    /// The vocabulary after padding to `pad_vocab_multiple`.
    pub fn padded_vocab(&self) -> u64 {
        let e = &self.embedding;
        e.vocab.div_ceil(e.pad_vocab_multiple.max(1)) * e.pad_vocab_multiple.max(1)
    }

    /// Fraction of the s x s query-key pairs attention computes at sequence `seq` (what model
    /// FLOPs count): 1 without a mask; 1/2 causal (the convention of Narayanan et al. 2021 and
    /// FlashAttention's benchmarks); with a causal window w < s, (s·w - w²/2) / s².
    pub fn attended_fraction(&self, seq: u64) -> f64 {
        let t = &self.transformer;
        if !t.causal {
            return 1.0;
        }
        let (s, w) = (seq as f64, t.window as f64);
        if t.window == 0 || w >= s {
            0.5
        } else {
            (s * w - 0.5 * w * w) / (s * s)
        }
    }

    /// Patch tokens in one image, (H/p)(W/p); 0 for language models.
    pub fn image_tokens(&self) -> u64 {
        self.input
            .as_ref()
            .map_or(0, |i| (i.height / i.patch) * (i.width / i.patch))
    }

    /// Sequence length seen by block `i` (0-based).
    pub fn seq_at_block(&self, i: u64) -> u64 {
        let t = &self.tokens;
        let ic = if t.in_context > 0 && i >= t.in_context_from_block {
            t.in_context
        } else {
            0
        };
        t.condition + t.target + t.text + ic
    }

    /// Longest sequence any block sees.
    pub fn max_seq(&self) -> u64 {
        self.seq_at_block(self.transformer.depth.saturating_sub(1))
            .max(self.seq_at_block(0))
    }

    /// The model's own tokens per sample: the sequence length the trunk processes at its end
    /// (condition + target + in-context + text).
    pub fn tokens_per_sample(&self) -> u64 {
        self.max_seq()
    }

    /// Tokens embedded from input patches per sample (condition + target).
    pub fn patch_tokens(&self) -> u64 {
        self.tokens.condition + self.tokens.target
    }

    /// A copy whose longest sequence is `seq` tokens: text tokens for language models; for vision
    /// models the patch tokens beside the in-context tokens, split equally between condition and
    /// target when the spec has condition tokens. The image is resized so the patch grid matches
    /// (square, sqrt of the target tokens).
    pub fn with_sequence(&self, seq: u64) -> Result<Self> {
        let mut m = self.clone();
        match m.kind {
            ModelKind::Language => m.tokens.text = seq,
            ModelKind::Vision => {
                let patches = seq.checked_sub(m.tokens.in_context).filter(|p| *p > 0).ok_or_else(|| {
                    Error::Invalid(format!(
                        "sequence {seq} leaves no patch tokens beside the {} in-context tokens of {}",
                        m.tokens.in_context, m.name
                    ))
                })?;
                if m.tokens.condition > 0 && patches % 2 == 1 {
                    return Err(Error::Invalid(format!(
                        "sequence {seq} is odd, but {} splits its patch tokens equally between the condition and the target image",
                        m.name
                    )));
                }
                let target = if m.tokens.condition > 0 {
                    patches / 2
                } else {
                    patches
                };
                let side = (target as f64).sqrt().round() as u64;
                if side * side != target || side == 0 {
                    return Err(Error::Invalid(format!(
                        "sequence {seq} does not give a square patch grid for vision model {} \
                         (target tokens {target} must be a perfect square)",
                        m.name
                    )));
                }
                if m.tokens.condition > 0 {
                    m.tokens.condition = target;
                }
                m.tokens.target = target;
                if let Some(i) = m.input.as_mut() {
                    i.height = side * i.patch;
                    i.width = side * i.patch;
                }
            }
        }
        m.name = format!("{}@seq{seq}", self.name);
        m.description = format!("{} [sequence overridden to {seq} tokens]", self.description);
        m.validate(&m.name.clone())?;
        Ok(m)
    }
}
