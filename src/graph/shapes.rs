//! The linear layers of a model, one table: their input and output features, bias and whether
//! backward needs their input gradient. Parameter counts ([`super::params`]), autocast's weight
//! casts and the emitters of the model parts all read it, so a layer's shape is stated once
//! (and a parallel dimension that splits layers will divide it here).

use super::builder::{n, Names};
use crate::spec::model::{Conditioning, ModelKind, PatchEmbed};
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
    /// Copies of the layer with their own weights: the experts of a mixture of experts, stored
    /// stacked as one tensor per weight (a grouped GEMM's operand); 1 for a plain layer.
    pub copies: u64,
}

impl Linear {
    const fn new(names: &'static Names, k: u64, n: u64, bias: bool) -> Self {
        Linear {
            names,
            k,
            n,
            bias,
            input_grad: true,
            copies: 1,
        }
    }

    /// `copies` experts of this shape, stacked.
    const fn experts(mut self, copies: u64) -> Self {
        self.copies = copies;
        self
    }

    /// The copies one GPU holds when the experts are spread over `shards` GPUs.
    pub fn local(mut self, shards: u64) -> Self {
        self.copies /= shards.max(1);
        self
    }

    /// A layer reading data, whose input needs no gradient.
    const fn first(mut self) -> Self {
        self.input_grad = false;
        self
    }

    /// Elements of the weight matrices (all copies).
    pub fn weights(&self) -> u64 {
        self.copies * self.k * self.n
    }

    /// Trainable parameters: weights and biases (all copies).
    pub fn params(&self) -> u64 {
        self.weights() + if self.bias { self.copies * self.n } else { 0 }
    }

    /// Tensors autocast casts: the (stacked) weight, and the bias when there is one.
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
    /// Per block: `Linear(d, (h + 2·kv)·dh)` to q, k, v.
    pub qkv: Linear,
    /// Per block: attention output projection `Linear(h·dh, d)`.
    pub proj: Linear,
    /// Per block: MLP up projection (gate and value together for gated MLPs); one copy per
    /// expert under a mixture of experts.
    pub fc1: Linear,
    /// Per block: MLP down projection (one copy per expert).
    pub fc2: Linear,
    /// Per block: the router `Linear(d, experts)` of a mixture of experts.
    pub router: Option<Linear>,
    /// Per block: the shared expert's up projection.
    pub shared_fc1: Option<Linear>,
    /// Per block: the shared expert's down projection.
    pub shared_fc2: Option<Linear>,
    /// Per block: the shared expert's gate `Linear(d, 1)`.
    pub shared_gate: Option<Linear>,
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
        let gated = |hidden: u64| if t.mlp.gated() { 2 * hidden } else { hidden };
        let up = gated(t.mlp_hidden);
        let experts = t.moe.as_ref().map_or(1, |moe| moe.experts);
        let shared = t.moe.as_ref().map_or(0, |moe| moe.shared_hidden);
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
            ModelKind::Language => Linear::new(n!("lm_head"), d, m.padded_vocab(), false),
        };
        LinearShapes {
            patch,
            patch_proj,
            t_fc1: timestep
                .then(|| Linear::new(n!("t_embed.fc1"), e.timestep_frequencies, d, true).first()),
            t_fc2: timestep.then(|| Linear::new(n!("t_embed.fc2"), d, d, true)),
            adaln: adaln.then(|| Linear::new(n!("adaln.linear"), d, 6 * d, true)),
            qkv: Linear::new(
                n!("attn.qkv"),
                d,
                m.q_width() + 2 * m.kv_width(),
                t.qkv_bias,
            ),
            proj: Linear::new(n!("attn.proj"), m.q_width(), d, t.out_bias),
            fc1: Linear::new(n!("mlp.fc1"), d, up, t.mlp_bias).experts(experts),
            fc2: Linear::new(n!("mlp.fc2"), t.mlp_hidden, d, t.mlp_bias).experts(experts),
            router: t
                .moe
                .as_ref()
                .map(|moe| Linear::new(n!("moe.router"), d, moe.experts, false)),
            shared_fc1: (shared > 0)
                .then(|| Linear::new(n!("moe.shared.fc1"), d, gated(shared), t.mlp_bias)),
            shared_fc2: (shared > 0)
                .then(|| Linear::new(n!("moe.shared.fc2"), shared, d, t.mlp_bias)),
            shared_gate: t
                .moe
                .as_ref()
                .filter(|moe| moe.shared_gate)
                .map(|_| Linear::new(n!("moe.shared.gate"), d, 1, false)),
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

    /// One block's layers (every expert).
    pub fn block_layers(&self) -> impl Iterator<Item = Linear> + '_ {
        self.block_layers_on(1)
    }

    /// One block's layers as one GPU holds them when the experts are spread over
    /// `expert_shards` GPUs.
    pub fn block_layers_on(&self, expert_shards: u64) -> impl Iterator<Item = Linear> + '_ {
        [
            Some(self.qkv),
            Some(self.proj),
            Some(self.fc1.local(expert_shards)),
            Some(self.fc2.local(expert_shards)),
            self.adaln,
            self.router,
            self.shared_fc1,
            self.shared_fc2,
            self.shared_gate,
        ]
        .into_iter()
        .flatten()
    }

    /// The head's layers (the output projection even when tied: it runs as a GEMM).
    pub fn head_layers(&self) -> impl Iterator<Item = &Linear> {
        std::iter::once(&self.head).chain(self.final_adaln.iter())
    }
}

/// What autocast casts of `layers` each forward: (tensors, elements), one kernel per tensor.
pub(crate) fn cast_tensors<L: std::borrow::Borrow<Linear>>(
    layers: impl Iterator<Item = L>,
) -> (u8, u64) {
    layers.fold((0, 0), |(t, p), l| {
        let l = l.borrow();
        (t + l.tensors(), p + l.params())
    })
}
