//! Plan files (examples/plans/*.toml): a planned run and the figures a plan claims for it.
//!
//! ```toml
//! name = "..."; title = "..."; source = "where the plan comes from"
//! [run]                      # the planned run: any scenario setting of `roofline estimate`
//! [[alternatives]]           # other ways to run it, estimated beside it: `label` + settings
//! [claims]                   # every claim is optional
//! tokens_per_sample = [..]   # the plan's reading(s) of "token"
//! datasets_tokens = [..]     # dataset sizes in the plan's tokens
//! global_batch = N
//! params = N                 # the plan's parameter estimate
//! samples_per_s_per_gpu = [low, high]
//! analogy = { model = "...", tokens_per_s_per_gpu = [low, high] }
//! throughput = [{ tokens_per_s = R, times = [{ tokens = N, days = D } | { tokens = N, hours = H }] }]
//! slowdowns = [{ kind = "multi-step-prediction" | "data-loading", words = "as the plan says it" }]
//! [claims.hardware]          # bf16_tflops, memory_gb, memory_technology, per GPU
//! ```

use crate::error::{Error, Result};
use crate::scenario::{ScenarioSpec, ScenarioTable};
use crate::spec::toml_error::{toml_error_field, toml_error_problem};
use serde::{Deserialize, Serialize};

/// A training time the plan states for a dataset at one throughput.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeClaim {
    /// Dataset in the plan's tokens.
    pub tokens: f64,
    /// Stated time in days.
    pub days: Option<f64>,
    /// Stated time in hours.
    pub hours: Option<f64>,
}

impl TimeClaim {
    /// The stated time in seconds.
    pub fn seconds(&self) -> Option<f64> {
        self.days
            .map(|d| d * 86400.0)
            .or(self.hours.map(|h| h * 3600.0))
    }
}

/// One throughput scenario of the plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThroughputClaim {
    /// Tokens per second for the whole fleet, in the plan's tokens.
    pub tokens_per_s: f64,
    /// Training times stated with it.
    #[serde(default)]
    pub times: Vec<TimeClaim>,
}

/// An analogy the plan's estimate rests on: another model's throughput.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Analogy {
    /// The other model (a model name or TOML path).
    pub model: String,
    /// Its tokens per second per GPU as the plan states them: one value or `[low, high]`.
    pub tokens_per_s_per_gpu: Vec<f64>,
}

/// A kind of slowdown a plan names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlowdownKind {
    /// Diffusion sampling takes many denoising steps.
    MultiStepPrediction,
    /// Reading and moving input data.
    DataLoading,
}

/// A slowdown the plan expects.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Slowdown {
    /// What kind.
    pub kind: SlowdownKind,
    /// The plan's words.
    pub words: String,
}

/// Hardware figures the plan states per GPU.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareClaims {
    /// bf16 / fp16 tensor throughput, TFLOP/s.
    pub bf16_tflops: Option<f64>,
    /// Memory, GB as stated.
    pub memory_gb: Option<f64>,
    /// Memory technology (HBM3, HBM3e...).
    pub memory_technology: Option<String>,
}

/// Everything a plan claims; all optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The plan's reading(s) of "token": tokens per sample.
    #[serde(default)]
    pub tokens_per_sample: Vec<f64>,
    /// Dataset sizes in the plan's tokens.
    #[serde(default)]
    pub datasets_tokens: Vec<f64>,
    /// Samples per optimizer step across the fleet.
    pub global_batch: Option<u64>,
    /// Trainable parameters.
    pub params: Option<f64>,
    /// Samples per second per GPU: one value or `[low, high]`.
    #[serde(default)]
    pub samples_per_s_per_gpu: Vec<f64>,
    /// The analogy the estimate rests on.
    pub analogy: Option<Analogy>,
    /// Throughput scenarios with their training times.
    #[serde(default)]
    pub throughput: Vec<ThroughputClaim>,
    /// Slowdowns named.
    #[serde(default)]
    pub slowdowns: Vec<Slowdown>,
    /// Hardware figures.
    #[serde(default)]
    pub hardware: HardwareClaims,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    name: String,
    title: String,
    source: String,
    #[serde(default)]
    run: ScenarioTable,
    #[serde(default)]
    alternatives: Vec<toml::Table>,
    #[serde(default)]
    claims: Claims,
}

/// A loaded plan: the run, its alternatives, and the claims.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where it was read from (a path, or `embedded:NAME`).
    pub file: String,
    /// Short name.
    pub name: String,
    /// One line for people.
    pub title: String,
    /// Where the plan comes from.
    pub source: String,
    /// The planned run.
    pub run: ScenarioSpec,
    /// Other ways to run it: (label, scenario).
    pub alternatives: Vec<(String, ScenarioSpec)>,
    /// What it claims.
    pub claims: Claims,
}

impl Plan {
    /// Parses and checks a plan; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self> {
        let p: PlanFile = toml::from_str(text)
            .map_err(|e| Error::spec(file, toml_error_field(&e, text), toml_error_problem(&e)))?;
        // What [run] leaves out comes from the model file's [defaults], as on the command line.
        let base = ScenarioSpec {
            unset: crate::scenario::Unset::ALL,
            ..ScenarioSpec::default()
        };
        let run = p.run.apply(&base, file, "run")?;
        let mut alternatives = Vec::with_capacity(p.alternatives.len());
        for (i, t) in p.alternatives.into_iter().enumerate() {
            let at = format!("alternatives[{i}]");
            let mut t = t;
            let label = match t.remove("label") {
                Some(toml::Value::String(s)) => s,
                _ => {
                    return Err(Error::spec(
                        file,
                        format!("{at}.label"),
                        "each alternative needs a label (a string)",
                    ))
                }
            };
            let table: ScenarioTable = toml::Value::Table(t)
                .try_into()
                .map_err(|e: toml::de::Error| Error::spec(file, &at, e.message().to_string()))?;
            alternatives.push((label, table.apply(&run, file, &at)?));
        }
        check_claims(&p.claims, file)?;
        Ok(Plan {
            file: file.to_string(),
            name: p.name,
            title: p.title,
            source: p.source,
            run,
            alternatives,
            claims: p.claims,
        })
    }

    /// Reads a plan file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, &path.display().to_string())
    }
}

/// Every number a plan claims is positive and finite; ranges are one value or `[low, high]`.
fn check_claims(c: &Claims, file: &str) -> Result<()> {
    let bad = |field: &str, v: f64| {
        Error::spec(
            file,
            format!("claims.{field}"),
            format!("{v} must be a positive finite number"),
        )
    };
    let check = |field: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(bad(field, v))
        }
    };
    let range = |field: &str, v: &[f64]| -> Result<()> {
        if v.len() > 2 || (v.len() == 2 && v[0] > v[1]) {
            return Err(Error::spec(
                file,
                format!("claims.{field}"),
                "give one value or [low, high]",
            ));
        }
        v.iter().try_for_each(|x| check(field, *x))
    };
    c.tokens_per_sample
        .iter()
        .try_for_each(|v| check("tokens_per_sample", *v))?;
    c.datasets_tokens
        .iter()
        .try_for_each(|v| check("datasets_tokens", *v))?;
    range("samples_per_s_per_gpu", &c.samples_per_s_per_gpu)?;
    if let Some(a) = &c.analogy {
        range("analogy.tokens_per_s_per_gpu", &a.tokens_per_s_per_gpu)?;
    }
    if let Some(p) = c.params {
        check("params", p)?;
    }
    if c.global_batch == Some(0) {
        return Err(bad("global_batch", 0.0));
    }
    for t in &c.throughput {
        check("throughput.tokens_per_s", t.tokens_per_s)?;
        for time in &t.times {
            check("throughput.times.tokens", time.tokens)?;
            match (time.days, time.hours) {
                (Some(d), None) => check("throughput.times.days", d)?,
                (None, Some(h)) => check("throughput.times.hours", h)?,
                _ => {
                    return Err(Error::spec(
                        file,
                        "claims.throughput.times",
                        "each time gives either days or hours",
                    ))
                }
            }
        }
    }
    let h = &c.hardware;
    for (field, v) in [
        ("hardware.bf16_tflops", h.bf16_tflops),
        ("hardware.memory_gb", h.memory_gb),
    ] {
        if let Some(v) = v {
            check(field, v)?;
        }
    }
    Ok(())
}
