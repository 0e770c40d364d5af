//! The embedded models and GPUs, one row each.

use crate::error::Result;
use crate::graph::param_count;
use crate::spec::{self, GpuSpec};

/// One embedded model.
#[derive(Debug, Clone)]
pub struct ModelRow {
    /// Name on the command line.
    pub name: &'static str,
    /// Trainable parameters.
    pub params: u64,
    /// Parameters one token uses (fewer than `params` for a mixture of experts).
    pub active: u64,
    /// Longest sequence.
    pub seq: u64,
    /// One line for people.
    pub description: String,
}

/// Every embedded model.
pub fn models() -> Result<Vec<ModelRow>> {
    spec::MODELS
        .iter()
        .map(|(name, _)| {
            let m = spec::load_model(name)?;
            let p = param_count(&m);
            Ok(ModelRow {
                name,
                params: p.total,
                active: p.active,
                seq: m.max_seq(),
                description: m.description,
            })
        })
        .collect()
}

/// Every embedded GPU: (name on the command line, spec).
pub fn gpus() -> Result<Vec<(&'static str, GpuSpec)>> {
    spec::GPUS
        .iter()
        .map(|(name, _)| Ok((*name, spec::load_gpu(name)?)))
        .collect()
}
