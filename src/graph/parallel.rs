//! Model parallelism: how one replica of the model is split over GPUs (Megatron-LM; Shoeybi et
//! al. 2019, arXiv 1909.08053; Narayanan et al. 2021, arXiv 2104.04473; Korthikanti et al. 2022,
//! arXiv 2205.05198), and the model one GPU computes.
//!
//! - Tensor parallelism over `tp` GPUs: attention heads and MLP hidden units split (column-
//!   parallel qkv and up projection, row-parallel output and down projection), the vocabulary
//!   split in the embedding table and the LM head; norms, row-parallel biases, position tables
//!   and adaLN layers replicated. One GPU therefore computes the model with h/tp heads,
//!   kv/tp key/value heads, f/tp hidden units and V/tp vocabulary rows ([`Parallelism::local`]).
//! - Sequence parallelism (`sp`, with tp > 1): the ops between the tensor-parallel regions
//!   (norms, dropout, residual adds, modulation) run on 1/tp of the tokens, and the inputs kept
//!   for the qkv and up projections' weight gradients are kept sharded (re-gathered in backward).
//! - Context parallelism over `cp` GPUs: every GPU holds s/cp tokens of each sequence; attention
//!   sees all s keys through a ring exchange of K and V (fused attention only, as in Megatron-LM's
//!   and Transformer Engine's implementation).
//! - Pipeline parallelism over `pp` stages, each holding depth/pp consecutive blocks (`vpp`
//!   chunks of depth/(pp·vpp) each with the interleaved schedule); the first stage also holds
//!   the embeddings, the last the head and loss.
//!
//! The collectives these imply are timed in [`crate::time::comm`]; the pipeline schedule in
//! [`crate::estimate`].

use crate::error::{Error, Result};
use crate::spec::model::ModelKind;
use crate::spec::ModelSpec;
use serde::Serialize;

/// How one model replica is split over GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parallelism {
    /// Tensor-parallel GPUs.
    pub tp: u64,
    /// Sequence parallelism with the tensor parallelism.
    pub sp: bool,
    /// Pipeline stages.
    pub pp: u64,
    /// Model chunks per pipeline stage (interleaved 1F1B; 1 = plain 1F1B).
    pub vpp: u64,
    /// Context-parallel GPUs.
    pub cp: u64,
}

impl Default for Parallelism {
    fn default() -> Self {
        Parallelism {
            tp: 1,
            sp: false,
            pp: 1,
            vpp: 1,
            cp: 1,
        }
    }
}

impl Parallelism {
    /// GPUs one replica spans: tp·pp·cp.
    pub fn replica_gpus(&self) -> u64 {
        self.tp * self.pp * self.cp
    }

    /// Tokens of the tensor-parallel regions' edges one GPU handles per token it holds: 1/tp with
    /// sequence parallelism, else 1.
    pub fn sequence_shards(&self) -> u64 {
        if self.sp {
            self.tp
        } else {
            1
        }
    }

    /// Blocks one pipeline stage holds.
    pub fn stage_blocks(&self, depth: u64) -> u64 {
        depth / self.pp.max(1)
    }

    /// Checks the split against `m` and a fused or unfused attention; errors name the flag.
    pub fn check(&self, m: &ModelSpec, fused_attention: bool) -> Result<()> {
        let t = &m.transformer;
        for (flag, v) in [
            ("--tp", self.tp),
            ("--pp", self.pp),
            ("--vpp", self.vpp),
            ("--cp", self.cp),
        ] {
            if v == 0 || v > 1 << 16 {
                return Err(Error::Invalid(format!(
                    "{flag} {v} must be between 1 and 65536"
                )));
            }
        }
        let bad = |msg: String| Err(Error::Invalid(msg));
        if self.sp && self.tp == 1 {
            return bad(
                "--sp shards along the tensor-parallel group: it needs --tp 2 or more".into(),
            );
        }
        let divides = |what: &str, n: u64, by: u64, flag: &str| -> Result<()> {
            if n.is_multiple_of(by) {
                Ok(())
            } else {
                bad(format!(
                    "{flag} {by} must divide {what} ({n}) of {}",
                    m.name
                ))
            }
        };
        if self.sp {
            // Megatron-LM splits the sequence evenly over the tensor-parallel ranks.
            divides("the sequence", m.max_seq(), self.tp, "--sp with --tp")?;
        }
        if self.tp > 1 {
            divides("the attention heads", t.heads, self.tp, "--tp")?;
            divides("the key/value heads", m.kv_heads(), self.tp, "--tp")?;
            divides("the MLP hidden size", t.mlp_hidden, self.tp, "--tp")?;
            if let Some(moe) = &t.moe {
                divides(
                    "the shared expert's hidden size",
                    moe.shared_hidden,
                    self.tp,
                    "--tp",
                )?;
            }
            if m.kind == ModelKind::Language && !m.padded_vocab().is_multiple_of(self.tp) {
                return bad(format!(
                    "--tp {} must divide the vocabulary ({}) of {}: pad it (pad_vocab_multiple in the model spec, e.g. {})",
                    self.tp,
                    m.padded_vocab(),
                    m.name,
                    128 * self.tp
                ));
            }
        }
        if self.pp > 1 || self.vpp > 1 {
            let chunks = self.pp * self.vpp;
            if !t.depth.is_multiple_of(chunks) {
                return bad(format!(
                    "--pp {} x --vpp {} must divide the {} blocks of {}",
                    self.pp, self.vpp, t.depth, m.name
                ));
            }
            if self.vpp > 1 && self.pp == 1 {
                return bad("--vpp interleaves pipeline stages: it needs --pp 2 or more".into());
            }
            if m.tokens.in_context > 0 && m.tokens.in_context_from_block > 0 {
                return bad(format!(
                    "pipeline parallelism is modelled for models whose blocks all see one sequence; {} adds in-context tokens from block {}",
                    m.name, m.tokens.in_context_from_block
                ));
            }
        }
        if self.cp > 1 {
            if m.kind != ModelKind::Language {
                return bad(
                    "--cp splits the text sequence: it is modelled for language models".into(),
                );
            }
            if !fused_attention {
                return bad(
                    "--cp runs ring attention on fused kernels: use --attention flash1, flash2 or flash3"
                        .into(),
                );
            }
            // Load-balanced causal ring attention gives each rank two chunks of s/(2·cp).
            if !m.tokens.text.is_multiple_of(2 * self.cp) {
                return bad(format!(
                    "--cp {} splits the sequence into 2 x {} chunks: {} must divide the sequence ({}) of {}",
                    self.cp,
                    self.cp,
                    2 * self.cp,
                    m.tokens.text,
                    m.name
                ));
            }
        }
        Ok(())
    }

    /// The model one GPU computes: heads, key/value heads, MLP (and shared-expert) hidden units
    /// and vocabulary divided by tp; the sequence divided by cp. Its parameter count is what the
    /// GPU holds of the blocks, embeddings and head (before pipeline stages split the blocks).
    pub fn local(&self, m: &ModelSpec) -> ModelSpec {
        let mut l = m.clone();
        self.local_into(m, &mut l);
        l
    }

    /// [`Parallelism::local`] written into `out`, a model with `m`'s names: only the sizes are
    /// set, so nothing is allocated.
    pub fn local_into(&self, m: &ModelSpec, out: &mut ModelSpec) {
        out.tokens.clone_from(&m.tokens);
        out.transformer.clone_from(&m.transformer);
        out.embedding.clone_from(&m.embedding);
        if self.tp == 1 && self.cp == 1 {
            return;
        }
        let tp = self.tp;
        let t = &mut out.transformer;
        t.head_dim = Some(m.head_dim());
        t.kv_heads = Some(m.kv_heads() / tp);
        t.heads /= tp;
        t.mlp_hidden /= tp;
        if let Some(moe) = &mut t.moe {
            moe.shared_hidden /= tp;
        }
        if m.kind == ModelKind::Language {
            out.embedding.vocab = m.padded_vocab() / tp;
            out.embedding.pad_vocab_multiple = 1;
            out.tokens.text = m.tokens.text / self.cp;
        }
    }
}
