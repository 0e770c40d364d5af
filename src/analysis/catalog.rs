//! The embedded models and GPUs, one row each.

use crate::error::Result;
use crate::graph::param_count;
use crate::spec::{self, GpuSpec};

/// One embedded model.
#[derive(Debug, Clone, serde::Serialize)]
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

/// One embedded GPU as `roofline gpus --json` lists it: name, aliases and the figures the
/// comparison needs (SI units).
#[derive(Debug, Clone, serde::Serialize)]
pub struct GpuRow {
    /// Name on the command line.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: Vec<String>,
    /// Marketing name.
    pub display_name: String,
    /// Dense bf16 tensor peak, FLOP/s.
    pub bf16_peak_flops: f64,
    /// HBM bandwidth, B/s.
    pub hbm_bandwidth: f64,
    /// HBM capacity, bytes.
    pub hbm_capacity_bytes: f64,
    /// Price per GPU-hour, USD, when the file has one.
    pub usd_per_gpu_hour: Option<f64>,
    /// `[low, high]` of the other offers, USD per GPU-hour.
    pub usd_per_gpu_hour_range: Option<[f64; 2]>,
    /// Who sells at that price, on what terms and when ("CoreWeave on-demand 2026-09-20").
    pub price_offer: Option<String>,
}

/// [`gpus`] as rows.
pub fn gpu_rows() -> Result<Vec<GpuRow>> {
    Ok(gpus()?
        .into_iter()
        .map(|(name, g)| GpuRow {
            name,
            aliases: g.aliases.clone(),
            display_name: g.display_name.clone(),
            bf16_peak_flops: g.peak_flops.bf16_tensor.value,
            hbm_bandwidth: g.memory.hbm_bandwidth.value,
            hbm_capacity_bytes: g.memory.hbm_capacity.value,
            usd_per_gpu_hour: g.price.as_ref().map(|p| p.usd_per_gpu_hour.value),
            usd_per_gpu_hour_range: g.price.as_ref().and_then(|p| p.usd_per_gpu_hour.range),
            price_offer: g
                .price
                .as_ref()
                .map(|p| format!("{} {} {}", p.provider, p.terms, p.date)),
        })
        .collect())
}
