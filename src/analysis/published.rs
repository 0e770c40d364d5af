//! Published training runs: each run's settings from a file (`validation/published/*.toml`),
//! its step time predicted, compared with what its authors measured. A calibration path in the
//! file is relative to the file. Files of runs by others are the model's independent test; the
//! one exception, Korthikanti et al. 2022 Table 5, carries a single fitted constant (its
//! calibration file says which, and its leave-one-out error).

use crate::error::{Error, Result};
use crate::estimate::Estimator;
use crate::scenario::{ScenarioSpec, ScenarioTable};
use crate::spec::toml_error::{toml_error_field, toml_error_problem};
use serde::{Deserialize, Serialize};

/// Korthikanti et al. 2022, Table 5 (path, contents), embedded for the reports and tests.
pub const KORTHIKANTI_TABLE5: (&str, &str) = (
    "validation/published/korthikanti-2022-table5.toml",
    include_str!("../../validation/published/korthikanti-2022-table5.toml"),
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishedFile {
    name: String,
    title: String,
    source: String,
    #[serde(default)]
    defaults: ScenarioTable,
    run: Vec<toml::Table>,
}

/// One published run: what was measured and the scenario that says how it ran.
#[derive(Debug, Clone)]
pub struct PublishedRun {
    /// Short name.
    pub name: String,
    /// The words of the source that give the measurement.
    pub quote: String,
    /// Measured seconds per optimizer step.
    pub measured_step_s: f64,
    /// The run's settings.
    pub scenario: ScenarioSpec,
}

/// A file of published runs.
#[derive(Debug, Clone)]
pub struct PublishedRuns {
    /// Where it was read from.
    pub file: String,
    /// Short name.
    pub name: String,
    /// One line for people.
    pub title: String,
    /// The publication.
    pub source: String,
    /// The runs.
    pub runs: Vec<PublishedRun>,
}

impl PublishedRuns {
    /// Parses and checks a file; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self> {
        let p: PublishedFile = toml::from_str(text)
            .map_err(|e| Error::spec(file, toml_error_field(&e, text), toml_error_problem(&e)))?;
        let defaults = p
            .defaults
            .apply(&ScenarioSpec::default(), file, "defaults")?;
        if p.run.is_empty() {
            return Err(Error::spec(
                file,
                "run",
                "no [[run]] tables: give at least one",
            ));
        }
        let mut runs = Vec::with_capacity(p.run.len());
        for (i, mut t) in p.run.into_iter().enumerate() {
            let at = format!("run[{i}]");
            let mut text_field = |key: &str| match t.remove(key) {
                Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(s),
                _ => Err(Error::spec(
                    file,
                    format!("{at}.{key}"),
                    format!("each run needs a {key} (a non-empty string)"),
                )),
            };
            let name = text_field("name")?;
            let quote = text_field("quote")?;
            let measured_step_s = match t.remove("measured_step_s") {
                Some(toml::Value::Float(x)) if x.is_finite() && x > 0.0 => x,
                Some(toml::Value::Integer(x)) if x > 0 => x as f64,
                other => {
                    return Err(Error::spec(
                        file,
                        format!("{at}.measured_step_s"),
                        format!(
                            "must be a positive number of seconds (given {})",
                            other.map_or("nothing".to_string(), |v| v.to_string())
                        ),
                    ))
                }
            };
            let table: ScenarioTable = toml::Value::Table(t)
                .try_into()
                .map_err(|e: toml::de::Error| Error::spec(file, &at, e.message().to_string()))?;
            let mut scenario = table.apply(&defaults, file, &at)?;
            if let Some(c) = &scenario.calibration {
                if c.is_relative() {
                    let dir = std::path::Path::new(file)
                        .parent()
                        .unwrap_or(std::path::Path::new(""));
                    scenario.calibration = Some(dir.join(c));
                }
            }
            runs.push(PublishedRun {
                name,
                quote,
                measured_step_s,
                scenario,
            });
        }
        Ok(PublishedRuns {
            file: file.to_string(),
            name: p.name,
            title: p.title,
            source: p.source,
            runs,
        })
    }

    /// Reads a file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The embedded Korthikanti et al. 2022 Table 5 file (paths relative to the repository).
    pub fn korthikanti_table5() -> Result<Self> {
        Self::from_toml(KORTHIKANTI_TABLE5.1, KORTHIKANTI_TABLE5.0)
    }
}

/// One run predicted.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedRow {
    /// The run's name.
    pub name: String,
    /// The source's words.
    pub quote: String,
    /// The settings, as flags.
    pub settings: String,
    /// Measured seconds per step.
    pub measured_step_s: f64,
    /// Predicted seconds per step.
    pub predicted_step_s: f64,
    /// (predicted - measured) / measured.
    pub error: f64,
    /// Predicted MFU.
    pub mfu: f64,
    /// Predicted shares of the step: pipeline bubble, exposed communication.
    pub bubble_share: f64,
    /// Exposed communication's share of the predicted step.
    pub communication_share: f64,
    /// Predicted memory per GPU, bytes.
    pub memory_bytes: f64,
    /// Whether it fits in the GPU's memory.
    pub fits: bool,
}

/// Every run of a file predicted, with the error summary.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedValidation {
    /// The file.
    pub file: String,
    /// Its title.
    pub title: String,
    /// The publication.
    pub source: String,
    /// One row per run.
    pub rows: Vec<PublishedRow>,
    /// Mean absolute relative error of the step time.
    pub mean_abs_error: f64,
    /// Largest absolute relative error.
    pub max_abs_error: f64,
}

/// The settings of `s` that matter for a large run, as command-line flags.
fn settings(s: &ScenarioSpec, grad_accum: u64) -> String {
    let p = &s.step.parallel;
    let mut out = format!(
        "--model {} --gpu {} --gpus {} --tp {} --pp {}",
        s.model, s.gpu, s.gpus, p.tp, p.pp
    );
    if p.vpp > 1 {
        out += &format!(" --vpp {}", p.vpp);
    }
    if p.cp > 1 {
        out += &format!(" --cp {}", p.cp);
    }
    if p.sp {
        out += " --sp";
    }
    out += &format!(
        " --batch {} --grad-accum {grad_accum} --checkpointing {} --precision {} --attention {} --mode {}",
        s.step.batch, s.step.checkpointing, s.step.precision, s.step.attention, s.mode
    );
    if s.zero > 0 {
        out += &format!(" --zero {}", s.zero);
    }
    out
}

/// Predicts every run of `runs`.
pub fn validate(runs: &PublishedRuns) -> Result<PublishedValidation> {
    let mut est = Estimator::new();
    let mut rows = Vec::with_capacity(runs.runs.len());
    for r in &runs.runs {
        let s = r
            .scenario
            .load()
            .map_err(|e| Error::Invalid(format!("{}: run `{}`: {e}", runs.file, r.name)))?;
        let e = est.estimate(&s.model, &s.machine, &s.run)?;
        let step = e.step_time.0;
        rows.push(PublishedRow {
            name: r.name.clone(),
            quote: r.quote.clone(),
            settings: settings(&r.scenario, s.run.grad_accum),
            measured_step_s: r.measured_step_s,
            predicted_step_s: step,
            error: (step - r.measured_step_s) / r.measured_step_s,
            mfu: e.mfu,
            bubble_share: e.breakdown.pipeline_bubble.0 / step,
            communication_share: e.breakdown.communication.0 / step,
            memory_bytes: e.memory.total_bytes.0,
            fits: e.fits,
        });
    }
    let n = rows.len() as f64;
    let mean_abs_error = rows.iter().map(|r| r.error.abs()).sum::<f64>() / n;
    let max_abs_error = rows.iter().map(|r| r.error.abs()).fold(0.0, f64::max);
    Ok(PublishedValidation {
        file: runs.file.clone(),
        title: runs.title.clone(),
        source: runs.source.clone(),
        rows,
        mean_abs_error,
        max_abs_error,
    })
}
