//! The model parts, each emitting its forward ops and owning its backward rules: a new attention
//! variant or MLP kind is one enum arm and one file here.
//!
//! Symbols in the formulas: B batch, s sequence of the block, T = B·s rows, d width, h heads,
//! dh head dim, kv key/value heads, f MLP hidden, E = T·d elements of one activation, Eq = T·h·dh
//! and Ekv = T·kv·dh the elements of the queries and of the keys (or values), S = B·h·s²
//! attention scores.
//! Byte sizes come from the step's [`crate::graph::PrecisionPolicy`]: `o` activations (and GEMM
//! outputs), `r` the residual stream, `p` parameters as the forward reads them. Vector FLOPs per
//! element are stated in each part's module docs; a cast counts 0.

pub(crate) mod attention;
pub(crate) mod block;
pub(crate) mod common;
pub(crate) mod conditioning;
pub(crate) mod embed;
pub(crate) mod flash;
pub(crate) mod head;
pub(crate) mod mlp;
pub mod moe;
pub(crate) mod norm;
pub(crate) mod optimizer;
pub(crate) mod rope;
