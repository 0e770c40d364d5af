//! Transformer architecture specs (models/*.toml).
//!
//! A model is data: block structure, token composition, embeddings and head. The op graph
//! (`crate::graph`) turns any spec into ops; there is no code path per model.

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
}

/// MLP kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlpKind {
    /// `w2(silu(w1 x) * w3 x)`: the up projection has 2 x hidden outputs (gate and value).
    Swiglu,
    /// `fc2(gelu(fc1 x))`.
    Gelu,
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
    /// Attention heads h; head dim = d / h.
    pub heads: u64,
    /// Causal (decoder) attention.
    #[serde(default)]
    pub causal: bool,
    /// Normalization kind.
    pub norm: NormKind,
    /// RMSNorm on q and k per head.
    #[serde(default)]
    pub qk_norm: bool,
    /// Rotary embedding.
    pub rope: RopeKind,
    /// Bias on the qkv projection.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub out_bias: bool,
    /// MLP kind.
    pub mlp: MlpKind,
    /// MLP hidden size (per branch for SwiGLU).
    pub mlp_hidden: u64,
    /// Biases in the MLP linears.
    pub mlp_bias: bool,
    /// Conditioning.
    pub conditioning: Conditioning,
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
}

impl ModelSpec {
    /// Parses and validates a spec; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self> {
        let spec: ModelSpec = toml::from_str(text)
            .map_err(|e| Error::spec(file, toml_error_field(&e, text), toml_error_problem(&e)))?;
        spec.validate(file)?;
        Ok(spec)
    }

    /// Head dimension d / h.
    pub fn head_dim(&self) -> u64 {
        self.transformer.width / self.transformer.heads
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

    /// Every size within its bound. The bounds are far beyond any model trained today and keep
    /// all of the op graph's integer products (parameter counts, rows x features) inside u64:
    /// a block has at most 58 · 2^40 parameters, times 2^16 blocks is below 2^62.
    fn check_sizes(&self, file: &str) -> Result<()> {
        let t = &self.transformer;
        let e = &self.embedding;
        let k = &self.tokens;
        let mut sizes: Vec<(&str, u64, u32)> = vec![
            ("transformer.width", t.width, 20),
            ("transformer.depth", t.depth, 16),
            ("transformer.heads", t.heads, 20),
            ("transformer.mlp_hidden", t.mlp_hidden, 24),
            ("embedding.bottleneck", e.bottleneck, 20),
            ("embedding.max_positions", e.max_positions, 30),
            ("embedding.timestep_frequencies", e.timestep_frequencies, 20),
            ("embedding.classes", e.classes, 32),
            ("embedding.vocab", e.vocab, 30),
            ("tokens.condition", k.condition, 26),
            ("tokens.target", k.target, 26),
            ("tokens.in_context", k.in_context, 26),
            ("tokens.in_context_from_block", k.in_context_from_block, 16),
            ("tokens.text", k.text, 26),
        ];
        if let Some(i) = &self.input {
            sizes.extend([
                ("input.height", i.height, 20),
                ("input.width", i.width, 20),
                ("input.channels", i.channels, 16),
                ("input.patch", i.patch, 10),
                ("input.out_channels", i.out_channels, 16),
            ]);
        }
        for (field, v, bits) in sizes {
            if v > 1u64 << bits {
                return Err(Error::spec(
                    file,
                    field,
                    format!(
                        "{v} is more than 2^{bits} = {} (the bound keeps every count of the model finite and exact)",
                        1u64 << bits
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate(&self, file: &str) -> Result<()> {
        let t = &self.transformer;
        let positive = [
            ("transformer.width", t.width),
            ("transformer.depth", t.depth),
            ("transformer.heads", t.heads),
            ("transformer.mlp_hidden", t.mlp_hidden),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::spec(file, field, "must be a positive integer"));
            }
        }
        self.check_sizes(file)?;
        if !(0.0..1.0).contains(&t.dropout) {
            return Err(Error::spec(
                file,
                "transformer.dropout",
                format!("{} is not a probability in [0, 1)", t.dropout),
            ));
        }
        if !t.width.is_multiple_of(t.heads) {
            return Err(Error::spec(
                file,
                "transformer.heads",
                format!("{} heads do not divide the width {}", t.heads, t.width),
            ));
        }
        if self.tokens.in_context > 0 && self.tokens.in_context_from_block >= t.depth {
            return Err(Error::spec(
                file,
                "tokens.in_context_from_block",
                format!(
                    "block {} is past the last block ({})",
                    self.tokens.in_context_from_block,
                    t.depth - 1
                ),
            ));
        }
        match self.kind {
            ModelKind::Vision => {
                let Some(inp) = &self.input else {
                    return Err(Error::spec(
                        file,
                        "input",
                        "vision models need an [input] table",
                    ));
                };
                for (field, v) in [
                    ("input.height", inp.height),
                    ("input.width", inp.width),
                    ("input.channels", inp.channels),
                    ("input.patch", inp.patch),
                    ("input.out_channels", inp.out_channels),
                ] {
                    if v == 0 {
                        return Err(Error::spec(file, field, "must be a positive integer"));
                    }
                }
                if inp.height % inp.patch != 0 || inp.width % inp.patch != 0 {
                    return Err(Error::spec(
                        file,
                        "input.patch",
                        "patch size must divide height and width",
                    ));
                }
                if self.tokens.target != self.image_tokens() {
                    return Err(Error::spec(
                        file,
                        "tokens.target",
                        format!(
                            "{} target tokens, but the image has ({}/{})*({}/{}) = {} patches",
                            self.tokens.target,
                            inp.height,
                            inp.patch,
                            inp.width,
                            inp.patch,
                            self.image_tokens()
                        ),
                    ));
                }
                if self.tokens.condition != 0 && self.tokens.condition != self.tokens.target {
                    return Err(Error::spec(
                        file,
                        "tokens.condition",
                        "condition tokens are the patches of a conditioning image of the target's size: 0 or equal to tokens.target",
                    ));
                }
                if self.embedding.patch_embed.is_none() {
                    return Err(Error::spec(
                        file,
                        "embedding.patch_embed",
                        "vision models need a patch embedding",
                    ));
                }
                if self.embedding.patch_embed == Some(PatchEmbed::Bottleneck)
                    && self.embedding.bottleneck == 0
                {
                    return Err(Error::spec(
                        file,
                        "embedding.bottleneck",
                        "a bottleneck patch embedding needs a positive width",
                    ));
                }
                if self.tokens.text != 0 {
                    return Err(Error::spec(
                        file,
                        "tokens.text",
                        "vision models have no text tokens",
                    ));
                }
            }
            ModelKind::Language => {
                if self.tokens.text == 0 {
                    return Err(Error::spec(
                        file,
                        "tokens.text",
                        "language models need a positive sequence length",
                    ));
                }
                if self.embedding.vocab == 0 {
                    return Err(Error::spec(
                        file,
                        "embedding.vocab",
                        "language models need a positive vocabulary",
                    ));
                }
                if self.tokens.target != 0 || self.tokens.condition != 0 {
                    return Err(Error::spec(
                        file,
                        "tokens.target",
                        "language models use tokens.text only",
                    ));
                }
            }
        }
        if self.embedding.position == PositionEmbed::Learned
            && self.embedding.max_positions < self.max_seq()
        {
            return Err(Error::spec(
                file,
                "embedding.max_positions",
                format!(
                    "learned table of {} rows is shorter than the sequence {}",
                    self.embedding.max_positions,
                    self.max_seq()
                ),
            ));
        }
        if t.rope != RopeKind::None && !self.head_dim().is_multiple_of(4) {
            return Err(Error::spec(
                file,
                "transformer.rope",
                "RoPE needs a head dimension divisible by 4",
            ));
        }
        Ok(())
    }
}
