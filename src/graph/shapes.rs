//! The linear layers of a model, one table: their input and output features, bias and whether
//! backward needs their input gradient. Parameter counts ([`super::params`]), autocast's weight
//! casts and the emitters of the model parts all read it, so a layer's shape is stated once
//! (and a parallel dimension that splits layers will divide it here).

use super::builder::{n, Names};
use crate::spec::model::{Conditioning, MlpKind, ModelKind, PatchEmbed};
use crate::spec::ModelSpec;

/// One linear layer `y = x·W (+ b)`, W of K x N.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear {
    /// Op names.
    pub names: &'static Names,
    /// Input features K.
    pub k: u64,
    /// Output features N.
    pub n: u64,
    /// Has a bias of N.
    pub bias: bool,
    /// Backward computes the gradient of the input (false where the input is data).
    pub input_grad: bool,
}

impl Linear {
    const fn new(names: &'static Names, k: u64, n: u64, bias: bool) -> Self {
        Linear {
            names,
            k,
            n,
            bias,
            input_grad: true,
        }
    }

    /// A layer reading data, whose input needs no gradient.
    const fn first(mut self) -> Self {
        self.input_grad = false;
        self
    }

    /// Elements of the weight matrix.
    pub fn weights(&self) -> u64 {
        self.k * self.n
    }

    /// Trainable parameters: weight and bias.
    pub fn params(&self) -> u64 {
        self.weights() + if self.bias { self.n } else { 0 }
    }

    /// Tensors autocast casts: the weight, and the bias when there is one.
    pub fn tensors(&self) -> u8 {
        1 + u8::from(self.bias)
    }
}

/// Every linear layer of a model, by where it sits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinearShapes {
    /// Patch embedding (a strided convolution as a GEMM): `C·p·p -> d`, or to the bottleneck.
    pub patch: Option<Linear>,
    /// Bottleneck projection `b -> d` of JiT's patch embedding.
    pub patch_proj: Option<Linear>,
    /// Timestep MLP `Linear(f, d)`.
    pub t_fc1: Option<Linear>,
    /// Timestep MLP `Linear(d, d)`.
    pub t_fc2: Option<Linear>,
    /// Per block: adaLN `Linear(d, 6d)` on the conditioning vector.
    pub adaln: Option<Linear>,
    /// Per block: `Linear(d, 3d)` to q, k, v.
    pub qkv: Linear,
    /// Per block: attention output projection.
    pub proj: Linear,
    /// Per block: MLP up projection (gate and value together for SwiGLU).
    pub fc1: Linear,
    /// Per block: MLP down projection.
    pub fc2: Linear,
    /// Final layer's adaLN `Linear(d, 2d)`.
    pub final_adaln: Option<Linear>,
    /// Output head: pixels of a patch (vision) or the vocabulary (language).
    pub head: Linear,
    /// The head's weight is the token embedding table (no parameters of its own).
    pub head_tied: bool,
}

impl LinearShapes {
    /// The table of `m`.
    pub fn of(m: &ModelSpec) -> Self {
        let t = &m.transformer;
        let e = &m.embedding;
        let d = t.width;
        let adaln = t.conditioning == Conditioning::AdalnZero;
        let up = match t.mlp {
            MlpKind::Swiglu => 2 * t.mlp_hidden,
            MlpKind::Gelu => t.mlp_hidden,
        };
        let (patch, patch_proj) = match &m.input {
            Some(inp) => {
                let pin = inp.channels * inp.patch * inp.patch;
                match e.patch_embed {
                    Some(PatchEmbed::Bottleneck) => (
                        Some(Linear::new(n!("patch.conv"), pin, e.bottleneck, false).first()),
                        Some(Linear::new(n!("patch.proj"), e.bottleneck, d, true)),
                    ),
                    _ => (
                        Some(Linear::new(n!("patch.conv"), pin, d, true).first()),
                        None,
                    ),
                }
            }
            None => (None, None),
        };
        let timestep = e.timestep_frequencies > 0;
        let head = match m.kind {
            ModelKind::Vision => {
                let inp = m
                    .input
                    .as_ref()
                    .expect("validated: vision models have [input]");
                let out = inp.patch * inp.patch * inp.out_channels;
                Linear::new(n!("final.linear"), d, out, true)
            }
            ModelKind::Language => Linear::new(n!("lm_head"), d, e.vocab, false),
        };
        LinearShapes {
            patch,
            patch_proj,
            t_fc1: timestep
                .then(|| Linear::new(n!("t_embed.fc1"), e.timestep_frequencies, d, true).first()),
            t_fc2: timestep.then(|| Linear::new(n!("t_embed.fc2"), d, d, true)),
            adaln: adaln.then(|| Linear::new(n!("adaln.linear"), d, 6 * d, true)),
            qkv: Linear::new(n!("attn.qkv"), d, 3 * d, t.qkv_bias),
            proj: Linear::new(n!("attn.proj"), d, d, t.out_bias),
            fc1: Linear::new(n!("mlp.fc1"), d, up, t.mlp_bias),
            fc2: Linear::new(n!("mlp.fc2"), t.mlp_hidden, d, t.mlp_bias),
            final_adaln: adaln.then(|| Linear::new(n!("final.adaln.linear"), d, 2 * d, true)),
            head,
            head_tied: m.kind == ModelKind::Language && e.tied_head,
        }
    }

    /// The patch embedding's layers.
    pub fn patch_layers(&self) -> impl Iterator<Item = &Linear> {
        [&self.patch, &self.patch_proj].into_iter().flatten()
    }

    /// The embedding's layers: patch embedding and timestep MLP.
    pub fn embed_layers(&self) -> impl Iterator<Item = &Linear> {
        [&self.patch, &self.patch_proj, &self.t_fc1, &self.t_fc2]
            .into_iter()
            .flatten()
    }

    /// One block's layers.
    pub fn block_layers(&self) -> impl Iterator<Item = &Linear> {
        [&self.qkv, &self.proj, &self.fc1, &self.fc2]
            .into_iter()
            .chain(self.adaln.iter())
    }

    /// The head's layers (the output projection even when tied: it runs as a GEMM).
    pub fn head_layers(&self) -> impl Iterator<Item = &Linear> {
        std::iter::once(&self.head).chain(self.final_adaln.iter())
    }
}

/// What autocast casts of `layers` each forward: (tensors, elements), one kernel per tensor.
pub(crate) fn cast_tensors<'a>(layers: impl Iterator<Item = &'a Linear>) -> (u8, u64) {
    layers.fold((0, 0), |(t, p), l| (t + l.tensors(), p + l.params()))
}
