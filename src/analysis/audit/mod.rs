//! `roofline audit`: every figure a training plan claims, checked against the model.
//!
//! The plan ([`plan::Plan`]) states a run and what it expects of it. Each claim becomes a
//! [`Check`]: the claim, what roofline finds, and a verdict. Throughput claims in "tokens" are
//! read every way a token can be read (the plan's own tokens per sample, the model's target patch
//! tokens, its sequence tokens): each reading turns a tokens/s figure into samples/s, and hence
//! into an implied MFU = samples/s × model FLOPs per sample / (GPUs × dense peak). A claimed
//! rate within a factor [`AGREEMENT`] of roofline's estimate of the plan holds; one further off is
//! too pessimistic or too optimistic.

mod checks;
pub mod plan;

use crate::error::Result;
use crate::estimate::{Estimator, StepEstimate};
use crate::scenario::Scenario;
use crate::spec::model::ModelKind;
use checks::Context;
use plan::Plan;
use serde::Serialize;

/// A claimed rate agrees with roofline's when within this factor either way.
pub const AGREEMENT: f64 = 1.3;

/// What roofline concludes about one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The claim agrees with the model.
    Holds,
    /// The claim contradicts a spec value or is impossible.
    Wrong,
    /// The plan expects less than the model predicts (it leaves the GPUs idle).
    TooPessimistic,
    /// The plan expects more than the model predicts.
    TooOptimistic,
    /// The concern does not apply to training as planned.
    DoesNotApply,
    /// Nothing in the spec files decides it.
    Undecided,
}

impl Verdict {
    /// In words.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::Wrong => "wrong",
            Verdict::TooPessimistic => "too pessimistic",
            Verdict::TooOptimistic => "too optimistic",
            Verdict::DoesNotApply => "does not apply",
            Verdict::Undecided => "undecided",
        }
    }

    /// The verdict on a claimed rate `[lo, hi]` against roofline's `[low, high]` (the plan as
    /// stated, the best way to run it): it holds when the ranges meet within [`AGREEMENT`].
    fn of_rate((lo, hi): (f64, f64), (low, high): (f64, f64)) -> Self {
        if hi * AGREEMENT < low {
            Verdict::TooPessimistic
        } else if lo > high * AGREEMENT {
            Verdict::TooOptimistic
        } else {
            Verdict::Holds
        }
    }
}

/// One claim of the plan, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What the claim is about.
    pub topic: &'static str,
    /// The claim as the plan states it.
    pub claim: String,
    /// What roofline finds.
    pub finding: String,
    /// The conclusion.
    pub verdict: Verdict,
}

/// A reading of "token": name and tokens per sample.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    /// What a token is in this reading.
    pub name: String,
    /// Tokens per sample.
    pub tokens_per_sample: f64,
}

/// A claimed training time beside the one its own throughput implies.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimedTime {
    /// Dataset in the plan's tokens.
    pub tokens: f64,
    /// The stated time.
    pub stated_s: f64,
    /// Tokens / claimed tokens per second.
    pub implied_s: f64,
}

/// One claimed throughput, under every reading.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimedRate {
    /// Claimed tokens per second (fleet).
    pub tokens_per_s: f64,
    /// The times stated with it.
    pub times: Vec<ClaimedTime>,
    /// Per reading: (samples per second, implied MFU).
    pub per_reading: Vec<(f64, f64)>,
}

/// roofline's estimate of one way to run the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Configuration {
    /// The plan's label for it.
    pub label: String,
    /// Step time.
    pub step_time_s: f64,
    /// Samples per second, fleet.
    pub samples_per_s: f64,
    /// MFU.
    pub mfu: f64,
    /// The largest part of the step: (name, share of the step).
    pub largest: (&'static str, f64),
    /// The roof binding most op time: (name, share of op time).
    pub bound: (&'static str, f64),
    /// Memory per GPU.
    pub memory_bytes: f64,
    /// Whether it fits.
    pub fits: bool,
}

/// One H100 measurement of the plan's model.
#[derive(Debug, Clone, Serialize)]
pub struct MeasuredRow {
    /// Batch.
    pub batch: f64,
    /// Attention implementation.
    pub attention: String,
    /// Execution mode.
    pub mode: String,
    /// Median step time.
    pub step_time_s: f64,
    /// Samples per second per GPU.
    pub samples_per_s_per_gpu: f64,
    /// Measured samples/s over the plan's fastest claim per GPU.
    pub vs_plan: Option<f64>,
}

/// What one GPU measured with the plan's model (the committed measurements).
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// The measurement file.
    pub file: String,
    /// The device.
    pub device: String,
    /// When.
    pub date: String,
    /// The plan's fastest claim in samples/s per GPU, in its own reading of "token".
    pub plan_samples_per_s_per_gpu: Option<f64>,
    /// Its configurations of the plan's model.
    pub rows: Vec<MeasuredRow>,
}

/// Training time of one configuration under one reading of "token".
#[derive(Debug, Clone, Serialize)]
pub struct TrainingRow {
    /// The configuration's label.
    pub configuration: String,
    /// Index into [`Audit::readings`].
    pub reading: usize,
    /// Tokens per second of the fleet in this reading.
    pub tokens_per_s: f64,
    /// Time for each dataset of [`Audit::datasets_tokens`].
    pub times_s: Vec<f64>,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// The plan file.
    pub plan_file: String,
    /// The plan's name.
    pub plan: String,
    /// One line on it.
    pub title: String,
    /// Where it comes from.
    pub source: String,
    /// The planned run in words.
    pub configuration: String,
    /// Model FLOPs per sample (matmuls, forward and backward).
    pub model_flops_per_sample: f64,
    /// Dense peak of the precision's GEMM dtype per GPU.
    pub peak_flops: f64,
    /// GPUs of the plan.
    pub gpus: u64,
    /// Every claim checked.
    pub checks: Vec<Check>,
    /// Readings of "token".
    pub readings: Vec<Reading>,
    /// The plan's claimed rates under each reading.
    pub claimed: Vec<ClaimedRate>,
    /// The plan as run, then its alternatives.
    pub configurations: Vec<Configuration>,
    /// Dataset sizes in the plan's tokens.
    pub datasets_tokens: Vec<f64>,
    /// Training time of every configuration under every reading.
    pub training: Vec<TrainingRow>,
    /// What one GPU measured with this model, when the repository has it.
    pub measured: Option<Measured>,
    /// The assumptions behind the plan's estimate.
    pub assumptions: Vec<String>,
}

fn configuration(label: &str, e: &StepEstimate) -> Configuration {
    let (slot, t) = e.breakdown.largest();
    let (bound, bt) = e
        .by_bound
        .entries()
        .into_iter()
        .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
        .expect("three roofs");
    Configuration {
        label: label.to_string(),
        step_time_s: e.step_time.0,
        samples_per_s: e.samples_per_s,
        mfu: e.mfu,
        largest: (slot, t.0 / e.step_time.0),
        bound: (bound, bt.0 / e.by_bound.total().0),
        memory_bytes: e.memory.total_bytes.0,
        fits: e.fits,
    }
}

/// The readings of "token": the plan's own, then the model's.
fn readings(plan: &Plan, s: &Scenario) -> Vec<Reading> {
    let mut v: Vec<Reading> = plan
        .claims
        .tokens_per_sample
        .iter()
        .map(|t| Reading {
            name: "the plan's token".to_string(),
            tokens_per_sample: *t,
        })
        .collect();
    if s.model.kind == ModelKind::Vision {
        v.push(Reading {
            name: "target patch tokens per image".into(),
            tokens_per_sample: s.model.tokens.target as f64,
        });
    }
    v.push(Reading {
        name: "sequence tokens per sample".into(),
        tokens_per_sample: s.model.tokens_per_sample() as f64,
    });
    v
}

/// Audits `plan`.
pub fn audit(plan: &Plan) -> Result<Audit> {
    let s = plan.run.load()?;
    let mut est = Estimator::new();
    let base = est.estimate(&s.model, &s.machine, &s.run)?;
    let mut estimates = vec![("the plan as stated".to_string(), base)];
    let mut fleet_gpus = vec![s.run.fleet.gpus];
    for (label, spec) in &plan.alternatives {
        let a = spec.load()?;
        estimates.push((label.clone(), est.estimate(&a.model, &a.machine, &a.run)?));
        fleet_gpus.push(a.run.fleet.gpus);
    }
    let gpus = s.run.fleet.gpus;
    // Per-GPU rates: alternatives may run on a different number of GPUs.
    let per_gpu = |spec_gpus: u64, e: &StepEstimate| e.samples_per_s / spec_gpus as f64;
    let plan_gpu = base.fits.then(|| per_gpu(gpus, &base));
    let best_gpu = fleet_gpus
        .iter()
        .zip(&estimates)
        .filter(|(_, (_, e))| e.fits)
        .map(|(g, (_, e))| per_gpu(*g, e))
        .reduce(f64::max);
    // Model FLOPs of the whole fleet per sample (model_flops is per GPU).
    let flops_per_sample = base.model_flops.0 * gpus as f64 / base.samples_per_step;
    let peak = base.mfu_peak.0;
    let readings = readings(plan, &s);
    let implied_mfu = |sps: f64| sps * flops_per_sample / (gpus as f64 * peak);
    let claimed = plan
        .claims
        .throughput
        .iter()
        .map(|c| ClaimedRate {
            tokens_per_s: c.tokens_per_s,
            times: c
                .times
                .iter()
                .filter_map(|t| {
                    t.seconds().map(|stated_s| ClaimedTime {
                        tokens: t.tokens,
                        stated_s,
                        implied_s: t.tokens / c.tokens_per_s,
                    })
                })
                .collect(),
            per_reading: readings
                .iter()
                .map(|r| {
                    let sps = c.tokens_per_s / r.tokens_per_sample;
                    (sps, implied_mfu(sps))
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    let mut ctx = Context {
        plan,
        s: &s,
        base: &base,
        plan_gpu,
        best_gpu,
        flops_per_sample,
        checks: Vec::new(),
    };
    ctx.token_reading(&readings);
    ctx.hardware();
    ctx.model();
    ctx.batch();
    ctx.throughput(&readings, &claimed);
    ctx.analogy(&mut est)?;
    ctx.slowdowns();
    let checks = ctx.checks;
    let mut training = Vec::new();
    for (label, e) in &estimates {
        for (i, r) in readings.iter().enumerate() {
            let tps = e.samples_per_s * r.tokens_per_sample;
            training.push(TrainingRow {
                configuration: label.clone(),
                reading: i,
                tokens_per_s: tps,
                times_s: plan
                    .claims
                    .datasets_tokens
                    .iter()
                    .map(|d| d / tps)
                    .collect(),
            });
        }
    }
    // The plan's fastest claim per GPU, in its own reading.
    let fastest_claim = claimed
        .iter()
        .map(|c| c.per_reading[0].0 / gpus as f64)
        .reduce(f64::max);
    Ok(Audit {
        plan_file: plan.file.clone(),
        plan: plan.name.clone(),
        title: plan.title.clone(),
        source: plan.source.clone(),
        configuration: format!(
            "{} ({}), batch {} per GPU x {} accumulation, {} x {}, {}, attention {}, {} mode, ZeRO-{}",
            s.model.name,
            s.model.description,
            s.run.step.batch,
            s.run.grad_accum,
            gpus,
            s.gpu.display_name,
            s.run.step.precision,
            s.run.step.attention,
            s.run.mode,
            s.run.zero
        ),
        model_flops_per_sample: flops_per_sample,
        peak_flops: peak,
        gpus,
        checks,
        readings,
        claimed,
        configurations: estimates
            .iter()
            .map(|(label, e)| configuration(label, e))
            .collect(),
        datasets_tokens: plan.claims.datasets_tokens.clone(),
        training,
        measured: measured(&s.model.name, fastest_claim)?,
        assumptions: super::summary::assumptions(&s),
    })
}

/// The committed H100 measurements of `model`, if any.
fn measured(model: &str, plan_per_gpu: Option<f64>) -> Result<Option<Measured>> {
    let (path, text) = crate::validate::H100_MEASUREMENTS;
    let m: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| crate::error::Error::spec(path, "(json)", e.to_string()))?;
    let rows: Vec<MeasuredRow> = m["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["model"].as_str() == Some(model))
        .filter_map(|c| {
            let (step, batch) = (c["step_time_s"].as_f64()?, c["batch"].as_f64()?);
            Some(MeasuredRow {
                batch,
                attention: c["attention"].as_str().unwrap_or("").to_string(),
                mode: c["mode"].as_str().unwrap_or("").to_string(),
                step_time_s: step,
                samples_per_s_per_gpu: batch / step,
                vs_plan: plan_per_gpu.map(|p| batch / step / p),
            })
        })
        .collect();
    Ok((!rows.is_empty()).then(|| Measured {
        file: path.to_string(),
        device: m["device"]["name"].as_str().unwrap_or("GPU").to_string(),
        date: m["date"].as_str().unwrap_or("").to_string(),
        plan_samples_per_s_per_gpu: plan_per_gpu,
        rows,
    }))
}
