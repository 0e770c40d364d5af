//! JSON output.

use crate::analysis::summary::EstimateReport;
use crate::analysis::uncertainty::Interval;
use crate::error::{Error, Result};
use crate::graph::{param_count, phase_totals, Op, Phase, StepConfig};
use crate::spec::ModelSpec;
use serde::Serialize;

/// Pretty JSON of any report; non-finite numbers are an error, never silent output.
pub fn to_string<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(&to_value(v)?)
        .map_err(|e| Error::Internal(format!("cannot serialize output: {e}")))
}

/// Any report as a JSON value, checked as [`to_string`] checks it: what `--json` prints and the
/// Python package returns.
pub fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    let value = serde_json::to_value(v)
        .map_err(|e| Error::Internal(format!("cannot serialize output: {e}")))?;
    if has_non_finite(&value) {
        return Err(Error::Internal("a non-finite number in the output".into()));
    }
    Ok(value)
}

fn has_non_finite(v: &serde_json::Value) -> bool {
    match v {
        // serde_json turns NaN and infinities into null; a null where a number belongs is caught
        // by the callers' tests, and numbers that exist are finite by construction.
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|x| !x.is_finite()),
        serde_json::Value::Array(a) => a.iter().any(has_non_finite),
        serde_json::Value::Object(o) => o.values().any(has_non_finite),
        _ => false,
    }
}

/// One op row of `roofline ops --json`. `flops`, `bytes_read` and `bytes_written` are totals
/// over the `repeat` layers the row stands for; `*_per_layer` give one layer.
#[derive(Debug, Serialize)]
pub struct OpRow<'a> {
    /// Op name.
    pub name: &'a str,
    /// Layers, e.g. "blocks 0-11", "embed", "head", "model".
    pub layer: String,
    /// How many layers the row stands for.
    pub repeat: u32,
    /// "forward" | "backward" | "optimizer".
    pub phase: Phase,
    /// Op kind.
    pub kind: &'static str,
    /// Shape for GEMMs and attention.
    pub shape: Option<crate::graph::OpKind>,
    /// Op class.
    pub class: &'static str,
    /// Execution unit.
    pub unit: crate::graph::Unit,
    /// Arithmetic dtype.
    pub dtype: crate::graph::Dtype,
    /// Executed FLOPs (all repeats).
    pub flops: f64,
    /// Model FLOPs (all repeats).
    pub model_flops: f64,
    /// HBM bytes read, unfused (all repeats).
    pub bytes_read: f64,
    /// HBM bytes written, unfused (all repeats).
    pub bytes_written: f64,
    /// FLOPs of one layer.
    pub flops_per_layer: f64,
    /// Arithmetic intensity, FLOP/byte.
    pub intensity: f64,
    /// Activation bytes saved for backward (all repeats).
    pub saved_bytes: f64,
    /// Recomputation for checkpointing.
    pub recompute: bool,
}

/// `roofline ops --json`.
pub fn ops(model: &ModelSpec, step: &StepConfig, ops: &[Op]) -> Result<serde_json::Value> {
    #[derive(Serialize)]
    struct Out<'a> {
        model: &'a str,
        batch: u64,
        attention: String,
        precision: String,
        checkpointing: String,
        causal_attention_flops_halved: bool,
        params: u64,
        forward_flops: f64,
        backward_flops: f64,
        optimizer_flops: f64,
        forward_model_flops: f64,
        backward_model_flops: f64,
        forward_bytes: f64,
        backward_bytes: f64,
        optimizer_bytes: f64,
        ops: Vec<OpRow<'a>>,
    }
    let f = phase_totals(ops, Phase::Forward);
    let b = phase_totals(ops, Phase::Backward);
    let o = phase_totals(ops, Phase::Optimizer);
    let rows = ops
        .iter()
        .map(|op| {
            let c = op.layer.count() as f64;
            OpRow {
                name: op.name,
                layer: op.layer.to_string(),
                repeat: op.layer.count(),
                phase: op.phase,
                kind: op.kind.name(),
                shape: op.kind.is_matmul().then_some(op.kind),
                class: op.class.name(),
                unit: op.unit,
                dtype: op.dtype,
                flops: op.flops.0 * c,
                model_flops: op.model_flops.0 * c,
                bytes_read: op.bytes_read.0 * c,
                bytes_written: op.bytes_written.0 * c,
                flops_per_layer: op.flops.0,
                intensity: if op.bytes_read.0 + op.bytes_written.0 > 0.0 {
                    op.intensity()
                } else {
                    0.0
                },
                saved_bytes: op.saved.0 * c,
                recompute: op.recompute,
            }
        })
        .collect();
    to_value(&Out {
        model: &model.name,
        batch: step.batch,
        attention: step.attention.to_string(),
        precision: step.precision.to_string(),
        checkpointing: step.checkpointing.to_string(),
        causal_attention_flops_halved: model.transformer.causal,
        params: param_count(model).total,
        forward_flops: f.flops.0,
        backward_flops: b.flops.0,
        optimizer_flops: o.flops.0,
        forward_model_flops: f.model_flops.0,
        backward_model_flops: b.model_flops.0,
        forward_bytes: (f.bytes_read + f.bytes_written).0,
        backward_bytes: (b.bytes_read + b.bytes_written).0,
        optimizer_bytes: (o.bytes_read + o.bytes_written).0,
        ops: rows,
    })
}

/// The estimate's JSON with `step_time_interval_s` (and how it was computed) added.
pub fn estimate_with_interval(
    report: &EstimateReport,
    interval: &Interval,
) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(report)
        .map_err(|e| Error::Internal(format!("cannot serialize output: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "step_time_interval_s".into(),
            serde_json::json!(interval.step_time_interval_s),
        );
        o.insert(
            "step_time_interval".into(),
            serde_json::json!({
                "coverage": interval.coverage,
                "samples": interval.samples,
                "seed": interval.seed,
                "method": "Monte Carlo: every value with a range in the GPU/calibration file drawn uniformly and independently within it; 5th-95th percentile",
                "sampled": interval.sampled,
            }),
        );
        o.insert(
            "step_time_interval_with_model_error_s".into(),
            serde_json::json!(interval.step_time_interval_with_model_error_s),
        );
        o.insert(
            "model_error".into(),
            serde_json::json!(interval.model_error),
        );
        o.insert(
            "model_error_method".into(),
            serde_json::json!("heuristic, not a 90% interval: the 5th-95th percentile interval of the GPU/calibration ranges widened by the model's mean absolute validation error, low x (1 - e), high x (1 + e); train_time_interval_s and cost_interval_usd are widened the same way"),
        );
        if let Some(t) = interval.train_time_interval_s {
            o.insert("train_time_interval_s".into(), serde_json::json!(t));
        }
        if let Some(c) = interval.cost_interval_usd {
            o.insert("cost_interval_usd".into(), serde_json::json!(c));
            o.insert(
                "price_range_usd_per_gpu_hour".into(),
                serde_json::json!(interval.price_range_usd_per_gpu_hour),
            );
        }
    }
    to_value(&v)
}

/// The start of a streamed sweep: `{"vary": ..., "configurations": N, "rows": [`; rows follow
/// one per line ([`sweep_row`]) and [`sweep_end`] closes it.
pub fn sweep_start(vary: &[(String, Vec<String>)], configurations: usize) -> Result<String> {
    let vary = serde_json::to_string(vary)
        .map_err(|e| Error::Internal(format!("cannot serialize output: {e}")))?;
    Ok(format!(
        "{{\n  \"vary\": {vary},\n  \"configurations\": {configurations},\n  \"rows\": [\n"
    ))
}

/// One row of a streamed sweep (`first`: no separating comma before it).
pub fn sweep_row(row: &crate::analysis::sweep::Row, first: bool) -> Result<String> {
    let value = serde_json::to_value(row)
        .map_err(|e| Error::Internal(format!("cannot serialize output: {e}")))?;
    if has_non_finite(&value) {
        return Err(Error::Internal("a non-finite number in the output".into()));
    }
    Ok(format!("{}    {value}", if first { "" } else { ",\n" }))
}

/// The end of a streamed sweep.
pub fn sweep_end() -> &'static str {
    "\n  ]\n}\n"
}
