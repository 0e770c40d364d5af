//! Published training runs: each run's settings from a file (`validation/published/*.toml`),
//! its step time predicted, compared with what its authors measured. A calibration path in the
//! file is relative to the file. Files of runs by others are the model's independent test; the
//! one exception, Korthikanti et al. 2022 Table 5, carries a single fitted constant (its
//! calibration file says which, and its leave-one-out error).

use crate::error::{Error, Result};
use crate::estimate::Estimator;
use crate::scenario::{ScenarioSpec, ScenarioTable};
use crate::spec::toml_error::{toml_error_field, toml_error_problem};
use crate::time::Mechanisms;
use serde::{Deserialize, Serialize};

/// Korthikanti et al. 2022, Table 5 (path, contents), embedded for the reports and tests.
pub const KORTHIKANTI_TABLE5: (&str, &str) = (
    "validation/published/korthikanti-2022-table5.toml",
    include_str!("../../validation/published/korthikanti-2022-table5.toml"),
);

/// Published end-to-end training runs of others (path, contents), embedded for the reports and
/// tests: the runs an ML engineer plans (one node of 8 GPUs, FSDP, eager), predicted with no
/// calibration. They are the model's independent test: no constant of roofline is fitted to
/// them.
pub const END_TO_END: &[(&str, &str)] = &[(
    "validation/published/llm-foundry-mpt-fsdp.toml",
    include_str!("../../validation/published/llm-foundry-mpt-fsdp.toml"),
)];

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
                Some(toml::Value::Float(x)) if x.is_finite() && (1e-6..=1e9).contains(&x) => x,
                Some(toml::Value::Integer(x)) if (1..=1_000_000_000).contains(&x) => x as f64,
                other => {
                    return Err(Error::spec(
                        file,
                        format!("{at}.measured_step_s"),
                        format!(
                            "must be between 1e-6 and 1e9 seconds (given {})",
                            other.map_or("nothing".to_string(), |v| v.to_string())
                        ),
                    ))
                }
            };
            let table: ScenarioTable = toml::Value::Table(t)
                .try_into()
                .map_err(|e: toml::de::Error| Error::spec(file, &at, e.message().to_string()))?;
            let mut scenario = table.apply(&defaults, file, &at)?;
            // Paths in the file are relative to the file.
            let dir = std::path::Path::new(file)
                .parent()
                .unwrap_or(std::path::Path::new(""));
            if let Some(c) = &scenario.calibration {
                if c.is_relative() {
                    scenario.calibration = Some(normalize(&dir.join(c)));
                }
            }
            if let Some(n) = &scenario.network {
                let is_path = n.ends_with(".toml") || n.contains('/');
                if is_path && std::path::Path::new(n).is_relative() {
                    scenario.network = Some(normalize(&dir.join(n)).to_string_lossy().into_owned());
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

    /// The embedded files of published end-to-end runs, [`END_TO_END`] (paths relative to the
    /// repository).
    pub fn end_to_end() -> Result<Vec<Self>> {
        END_TO_END
            .iter()
            .map(|(path, text)| Self::from_toml(text, path))
            .collect()
    }
}

/// `a/b/../c` as `a/c`, without looking at the file system.
fn normalize(p: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match (c, out.last()) {
            (Component::CurDir, _) => {}
            (Component::ParentDir, Some(Component::Normal(_))) => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    out.iter().map(|c| c.as_os_str()).collect()
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
    let fabric = match &s.network {
        Some(n) => format!("--network {n}"),
        None => format!(
            "--gpus-per-node {} --inter-node-gbps {}",
            s.gpus_per_node, s.inter_node_gbps
        ),
    };
    let mut out = format!(
        "--model {} --gpu {} --gpus {} {fabric} --tp {} --pp {}",
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
    if s.step.loss != crate::graph::LossImpl::Torch {
        out += &format!(" --loss {}", s.step.loss);
    }
    if s.tp_overlap {
        out += " --tp-overlap";
    }
    if s.nvls {
        out += " --nvls";
    }
    if let Some(g) = s.shard_group {
        out += &format!(" --shard-group {g}");
    }
    if let Some(q) = s.seq {
        out += &format!(" --seq {q}");
    }
    if s.step.expert_shards > 1 {
        out += &format!(" --ep {}", s.step.expert_shards);
    }
    if s.step.ema > 0 {
        out += &format!(" --ema {}", s.step.ema);
    }
    if s.workspace_gib != ScenarioSpec::default().workspace_gib {
        out += &format!(" --workspace-gib {}", s.workspace_gib);
    }
    if let Some(c) = &s.calibration {
        out += &format!(" --calibration {}", c.display());
    }
    out
}

/// Predicts every run of `runs`.
pub fn validate(runs: &PublishedRuns) -> Result<PublishedValidation> {
    validate_with(runs, Mechanisms::ALL)
}

/// [`validate`] with only the model mechanisms `mechanisms` on (the fidelity report's
/// ablations).
pub fn validate_with(runs: &PublishedRuns, mechanisms: Mechanisms) -> Result<PublishedValidation> {
    let mut est = Estimator::new();
    let mut rows = Vec::with_capacity(runs.runs.len());
    for r in &runs.runs {
        let mut s = r
            .scenario
            .load()
            .map_err(|e| Error::Invalid(format!("{}: run `{}`: {e}", runs.file, r.name)))?;
        s.machine.mechanisms = mechanisms;
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

/// The fit of one constant, the GEMM ceiling (the achievable fraction of the dense 16-bit
/// tensor peak), to a file of runs: step-time errors over a grid, the best value by least
/// squares on log(predicted / measured), and leave-one-out errors (fit on the other runs,
/// predict the one left out).
#[derive(Debug, Clone, Serialize)]
pub struct CeilingFit {
    /// (ceiling, step-time error of each run).
    pub grid: Vec<(f64, Vec<f64>)>,
    /// The best ceiling over all runs.
    pub best: f64,
    /// Errors of the runs at the best ceiling.
    pub errors: Vec<f64>,
    /// For each run: the ceiling fitted without it and its error there.
    pub leave_one_out: Vec<(f64, f64)>,
}

impl CeilingFit {
    /// Mean and largest absolute error in sample.
    pub fn in_sample(&self) -> (f64, f64) {
        mean_max(self.errors.iter().copied())
    }

    /// Mean and largest absolute leave-one-out error.
    pub fn out_of_sample(&self) -> (f64, f64) {
        mean_max(self.leave_one_out.iter().map(|x| x.1))
    }
}

/// Mean absolute error of the fit's grid row nearest to `ceiling`.
pub fn mean_abs_at(fit: &CeilingFit, ceiling: f64) -> f64 {
    fit.grid
        .iter()
        .min_by(|a, b| (a.0 - ceiling).abs().total_cmp(&(b.0 - ceiling).abs()))
        .map_or(f64::NAN, |(_, e)| mean_max(e.iter().copied()).0)
}

fn mean_max(e: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = e.clone().count().max(1) as f64;
    (
        e.clone().map(f64::abs).sum::<f64>() / n,
        e.map(f64::abs).fold(0.0, f64::max),
    )
}

/// Fits the GEMM ceiling of the runs' GPU over `grid` (every run's calibration file is set
/// aside; every other figure is the GPU file's).
pub fn fit_ceiling(runs: &PublishedRuns, grid: &[f64]) -> Result<CeilingFit> {
    let mut scenarios = Vec::with_capacity(runs.runs.len());
    for r in &runs.runs {
        let spec = ScenarioSpec {
            calibration: None,
            ..r.scenario.clone()
        };
        scenarios.push((spec.load()?, r.measured_step_s));
    }
    let mut est = Estimator::new();
    let mut rows = Vec::with_capacity(grid.len());
    for &x in grid {
        let mut errors = Vec::with_capacity(scenarios.len());
        for (s, measured) in &scenarios {
            let mut mach = s.machine;
            mach.frac_bf16 = x;
            let e = est.estimate(&s.model, &mach, &s.run)?;
            errors.push(e.step_time.0 / measured - 1.0);
        }
        rows.push((x, errors));
    }
    let loss = |errors: &[f64], skip: Option<usize>| -> f64 {
        errors
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, e)| (1.0 + e).ln().powi(2))
            .sum()
    };
    let argmin = |skip: Option<usize>| -> usize {
        (0..rows.len())
            .min_by(|&a, &b| loss(&rows[a].1, skip).total_cmp(&loss(&rows[b].1, skip)))
            .unwrap_or(0)
    };
    if rows.is_empty() {
        return Err(Error::Invalid(
            "the fit needs a grid of at least one value".into(),
        ));
    }
    let best = argmin(None);
    let leave_one_out = (0..scenarios.len())
        .map(|i| {
            let j = argmin(Some(i));
            (rows[j].0, rows[j].1[i])
        })
        .collect();
    Ok(CeilingFit {
        best: rows[best].0,
        errors: rows[best].1.clone(),
        grid: rows,
        leave_one_out,
    })
}

/// Activations per GPU of a published run's model and split under one recompute setting:
/// roofline's (first pipeline stage, eager PyTorch keeping every saved tensor) and Korthikanti
/// et al.'s formula for the blocks.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationRow {
    /// Model.
    pub model: String,
    /// Split and recompute, in words.
    pub setting: String,
    /// roofline's activation bytes per GPU (embeddings and head included).
    pub roofline_bytes: f64,
    /// The formula's bytes for the blocks of the first stage.
    pub formula_bytes: f64,
}

/// Korthikanti et al. 2022 (arXiv 2205.05198) section 4: activation bytes per transformer layer
/// of a GPT at sequence `s`, micro-batch `b`, width `h`, `a` heads, tensor parallel `t`:
/// sbh(10 + 24/t + 5as/(ht)); with sequence parallelism sbh/t·(34 + 5as/h); selective recompute
/// drops the 5as/h term; full recompute keeps the layer input, 2sbh (2sbh/t sharded).
pub fn korthikanti_layer_bytes(
    (s, b, h, a): (f64, f64, f64, f64),
    t: f64,
    sp: bool,
    checkpointing: crate::graph::Checkpointing,
) -> f64 {
    use crate::graph::Checkpointing;
    let sbh = s * b * h;
    let scores = 5.0 * a * s / (h * t);
    match (checkpointing, sp) {
        (Checkpointing::Full, false) => 2.0 * sbh,
        (Checkpointing::Full, true) => 2.0 * sbh / t,
        (Checkpointing::Selective, false) => sbh * (10.0 + 24.0 / t),
        (Checkpointing::Selective, true) => sbh * 34.0 / t,
        (Checkpointing::None, false) => sbh * (10.0 + 24.0 / t + scores),
        (Checkpointing::None, true) => sbh * (34.0 / t + scores),
    }
}

/// Activation memory per GPU for each model of `runs` (the split of its first run) under no,
/// selective and full recompute, with and without sequence parallelism.
pub fn activation_table(runs: &PublishedRuns) -> Result<Vec<ActivationRow>> {
    use crate::graph::{Checkpointing, ExecMode};
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut est = Estimator::new();
    for r in &runs.runs {
        if seen.contains(&r.scenario.model.as_str()) {
            continue;
        }
        seen.push(&r.scenario.model);
        for (ckpt, sp) in [
            (Checkpointing::None, false),
            (Checkpointing::None, true),
            (Checkpointing::Selective, false),
            (Checkpointing::Selective, true),
            (Checkpointing::Full, false),
        ] {
            let mut spec = r.scenario.clone();
            spec.step.checkpointing = ckpt;
            spec.step.parallel.sp = sp;
            spec.mode = ExecMode::Eager;
            let s = spec.load()?;
            let e = est.estimate(&s.model, &s.machine, &s.run)?;
            let p = s.run.step.parallel;
            let t = &s.model.transformer;
            let dims = (
                s.model.max_seq() as f64,
                s.run.step.batch as f64,
                t.width as f64,
                t.heads as f64,
            );
            let layer = korthikanti_layer_bytes(dims, p.tp as f64, sp, ckpt);
            let layers = (t.depth / p.pp) as f64;
            let flight = if p.pp > 1 {
                crate::memory::in_flight(p.pp, p.vpp, s.run.grad_accum)
            } else {
                1.0
            };
            // Full recompute also holds one layer's activations while recomputing it.
            let recomputed = if ckpt == Checkpointing::Full {
                korthikanti_layer_bytes(dims, p.tp as f64, sp, Checkpointing::None)
            } else {
                0.0
            };
            out.push(ActivationRow {
                model: s.model.name.clone(),
                setting: format!(
                    "t={} p={}{}, micro-batch {}, {} recompute{}",
                    p.tp,
                    p.pp,
                    if p.vpp > 1 {
                        format!(" v={}", p.vpp)
                    } else {
                        String::new()
                    },
                    s.run.step.batch,
                    ckpt,
                    if sp { ", sequence parallel" } else { "" }
                ),
                roofline_bytes: e.memory.activations_bytes.0,
                formula_bytes: layer * layers * flight + recomputed,
            });
        }
    }
    Ok(out)
}
