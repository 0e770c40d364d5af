//! The checks of a model spec: every size within a bound that keeps the op graph's integer
//! products exact, and the combinations that make a model.

use super::{ModelKind, ModelSpec, PatchEmbed, PositionEmbed, RopeKind};
use crate::error::{Error, Result};

impl ModelSpec {
    /// Every size within its bound. The bounds are far beyond any model trained today and keep
    /// all of the op graph's integer products (parameter counts, rows x features) inside u64:
    /// the query and key/value widths are at most 2^20 like the model width, and the MLP hidden
    /// units of a block (all experts and the shared expert together) at most 2^24, so a block
    /// has at most 58 · 2^40 parameters, times 2^16 blocks is below 2^62.
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
            ("transformer.window", t.window, 30),
            ("embedding.pad_vocab_multiple", e.pad_vocab_multiple, 16),
        ];
        if let Some(v) = t.kv_heads {
            sizes.push(("transformer.kv_heads", v, 20));
        }
        if let Some(v) = t.head_dim {
            sizes.push(("transformer.head_dim", v, 20));
        }
        if let Some(moe) = &t.moe {
            sizes.extend([
                ("transformer.moe.experts", moe.experts, 16),
                ("transformer.moe.top_k", moe.top_k, 16),
                ("transformer.moe.shared_hidden", moe.shared_hidden, 24),
            ]);
        }
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
        // Products of bounded sizes, each bounded like the size it stands beside. Both factors
        // are below 2^20 and 2^24 here, so the products are exact.
        let q_width = t.heads * t.head_dim.unwrap_or(1);
        let kv_width = t.kv_heads.unwrap_or(0) * t.head_dim.unwrap_or(1);
        let hidden = t.moe.as_ref().map_or(t.mlp_hidden, |moe| {
            moe.experts * t.mlp_hidden + moe.shared_hidden
        });
        for (field, what, v, bits) in [
            ("transformer.head_dim", "heads x head_dim", q_width, 20),
            ("transformer.kv_heads", "kv_heads x head_dim", kv_width, 20),
            (
                "transformer.moe.experts",
                "experts x mlp_hidden + shared_hidden",
                hidden,
                24,
            ),
        ] {
            if v > 1u64 << bits {
                return Err(Error::spec(
                    file,
                    field,
                    format!(
                        "{what} = {v} is more than 2^{bits} = {} (the bound keeps every count of the model finite and exact)",
                        1u64 << bits
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn validate(&self, file: &str) -> Result<()> {
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
        if t.head_dim.is_none() && !t.width.is_multiple_of(t.heads) {
            return Err(Error::spec(
                file,
                "transformer.heads",
                format!(
                    "{} heads do not divide the width {} (give transformer.head_dim)",
                    t.heads, t.width
                ),
            ));
        }
        if t.head_dim == Some(0) {
            return Err(Error::spec(
                file,
                "transformer.head_dim",
                "must be a positive integer",
            ));
        }
        if let Some(kv) = t.kv_heads {
            if kv == 0 || !t.heads.is_multiple_of(kv) {
                return Err(Error::spec(
                    file,
                    "transformer.kv_heads",
                    format!(
                        "{kv} key/value heads: must be a positive divisor of the {} query heads",
                        t.heads
                    ),
                ));
            }
        }
        if t.window > 0 && !t.causal {
            return Err(Error::spec(
                file,
                "transformer.window",
                "a sliding window is modelled for causal attention only (set causal = true or window = 0)",
            ));
        }
        if self.embedding.pad_vocab_multiple == 0 {
            return Err(Error::spec(
                file,
                "embedding.pad_vocab_multiple",
                "must be a positive integer (1 = no padding)",
            ));
        }
        if let Some(moe) = &t.moe {
            if moe.experts == 0 {
                return Err(Error::spec(
                    file,
                    "transformer.moe.experts",
                    "must be a positive integer",
                ));
            }
            if moe.top_k == 0 || moe.top_k > moe.experts {
                return Err(Error::spec(
                    file,
                    "transformer.moe.top_k",
                    format!(
                        "{}: must be between 1 and the {} experts",
                        moe.top_k, moe.experts
                    ),
                ));
            }
            if !(moe.capacity_factor.is_finite() && (0.01..=64.0).contains(&moe.capacity_factor)) {
                return Err(Error::spec(
                    file,
                    "transformer.moe.capacity_factor",
                    format!(
                        "{} is not in [0.01, 64] (1 = dropless and balanced)",
                        moe.capacity_factor
                    ),
                ));
            }
            if moe.shared_gate && moe.shared_hidden == 0 {
                return Err(Error::spec(
                    file,
                    "transformer.moe.shared_gate",
                    "a shared-expert gate needs a shared expert (shared_hidden > 0)",
                ));
            }
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
