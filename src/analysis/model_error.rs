//! The model's own error, from the validation sets the repository commits: what an interval
//! must add to the spread of the hardware figures to say how far a prediction may be off.
//!
//! - One node: the mean absolute step-time error over the measured H100 training steps
//!   (reports/measurements/2026-11-27-h100-sxm, uncalibrated, as `reports/validation.md`), over
//!   the configurations of the scenario's execution mode (eager; compiled and CUDA graphs
//!   together) when the profile has at least [`MIN_CONFIGURATIONS`] of them, else over all.
//! - Beyond one node or with model parallelism: the larger of that and the mean absolute error
//!   over Korthikanti et al. 2022 Table 5 (validation/published/korthikanti-2022-table5.toml) at
//!   the GPU file's own GEMM ceiling, that is without the ceiling fitted to the table.

use super::published::{fit_ceiling, PublishedRuns};
use crate::error::{Error, Result};
use crate::graph::ExecMode;
use crate::scenario::Scenario;
use crate::validate::{validate, Measurements, H100_MEASUREMENTS};
use serde::Serialize;

/// Fewest configurations of one execution mode whose error stands for that mode.
pub const MIN_CONFIGURATIONS: usize = 5;

/// The model's error for a scenario, and what it is measured on.
#[derive(Debug, Clone, Serialize)]
pub struct ModelError {
    /// Mean absolute relative step-time error (0.084 = 8.4%).
    pub fraction: f64,
    /// The validation set and the configurations it was averaged over, in words.
    pub basis: String,
}

/// The error of the model on its validation sets for a scenario like `s` (see the module docs).
pub fn model_error(s: &Scenario) -> Result<ModelError> {
    let (path, text) = H100_MEASUREMENTS;
    let m: Measurements =
        serde_json::from_str(text).map_err(|e| Error::spec(path, "(json)", e.to_string()))?;
    let v = validate(&m, path, "h100-sxm", None)?;
    let eager = s.run.mode == ExecMode::Eager;
    let same_mode: Vec<f64> = v
        .rows
        .iter()
        .filter(|r| r.config.ends_with(" eager") == eager)
        .map(|r| r.error.abs())
        .collect();
    let mode = if eager {
        "eager"
    } else {
        "compiled or CUDA graphs"
    };
    let (errors, which): (Vec<f64>, String) = if same_mode.len() >= MIN_CONFIGURATIONS {
        (same_mode, format!("its {mode} configurations"))
    } else {
        (
            v.rows.iter().map(|r| r.error.abs()).collect(),
            format!("all of them (only {} are {mode})", same_mode.len()),
        )
    };
    let n = errors.len().max(1);
    let single = errors.iter().sum::<f64>() / n as f64;
    let mut e = ModelError {
        fraction: single,
        basis: format!(
            "mean absolute step-time error {:.1}% over {path} ({} single-GPU training steps on an H100, uncalibrated), {which}",
            100.0 * single,
            n
        ),
    };
    let p = s.run.step.parallel;
    let multi = s.run.fleet.gpus > s.run.fleet.gpus_per_node || p.tp > 1 || p.pp > 1 || p.cp > 1;
    if multi {
        let runs = PublishedRuns::korthikanti_table5()?;
        let gpu = crate::spec::load_gpu("a100-sxm-80gb")?;
        let fit = fit_ceiling(&runs, &[gpu.achievable.bf16_tensor.value])?;
        let (table5, _) = fit.in_sample();
        if table5 > e.fraction {
            e = ModelError {
                fraction: table5,
                basis: format!(
                    "mean absolute step-time error {:.1}% over Korthikanti et al. 2022 Table 5 ({} runs of 22B-1T models on up to 512 A100s, validation/published/korthikanti-2022-table5.toml) at the GPU file's own GEMM ceiling, not the one fitted to the table; larger than the single-GPU {:.1}%",
                    100.0 * table5,
                    runs.runs.len(),
                    100.0 * single
                ),
            };
        }
    }
    Ok(e)
}
