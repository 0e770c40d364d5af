//! What each modelled mechanism ([`crate::time::MECHANISMS`]) does to the model's error on every
//! validation set the project has: the step-time errors with every mechanism on (the model as
//! it ships), with each one turned off alone (the model before that mechanism), and with all of
//! them off. reports/fidelity.md renders it ([`crate::reports`]).
//!
//! Error of a run: predicted / measured − 1 of the step time; a set's summary is the mean and
//! the largest absolute error over its runs, and how many runs (which all really ran) the model
//! says do not fit in the GPU's memory.

use crate::analysis::published::{self, PublishedRuns};
use crate::error::{Error, Result};
use crate::time::{Mechanisms, MECHANISMS};
use crate::validate::{self, Measurements};
use serde::Serialize;

/// A run's step time changes "noticeably" when a switch moves it by more than this fraction.
pub const CHANGED: f64 = 0.001;

/// One validation set: where its runs come from and how to reproduce it.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationSet {
    /// Short name.
    pub name: String,
    /// The data and its provenance.
    pub source: String,
    /// The command that prints its comparison.
    pub command: String,
    /// Whether a constant of the model was fitted to it (then it is no independent test).
    pub fitted: String,
    /// What the reader must know about its measurements, where anything.
    pub caveat: Option<String>,
}

/// The errors of one set under one choice of mechanisms.
#[derive(Debug, Clone, Serialize)]
pub struct SetError {
    /// Per run: (name, predicted / measured − 1).
    pub errors: Vec<(String, f64)>,
    /// Mean absolute error.
    pub mean_abs: f64,
    /// Largest absolute error, and its run.
    pub max_abs: (f64, String),
    /// Runs predicted not to fit in memory (each really ran); `None` where the set does not say.
    pub not_fitting: Option<usize>,
}

impl SetError {
    fn new(errors: Vec<(String, f64)>, not_fitting: Option<usize>) -> Result<Self> {
        if errors.is_empty() {
            return Err(Error::Invalid("a validation set without runs".into()));
        }
        let mean_abs = errors.iter().map(|(_, e)| e.abs()).sum::<f64>() / errors.len() as f64;
        let max_abs = errors
            .iter()
            .map(|(n, e)| (e.abs(), n.clone()))
            .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a });
        Ok(SetError {
            errors,
            mean_abs,
            max_abs,
            not_fitting,
        })
    }

    /// The runs whose error differs from `before`'s by more than [`CHANGED`] of the measured
    /// step, and the mean of those differences (this error minus `before`'s; 0 when none).
    pub fn changed_from(&self, before: &SetError) -> (usize, f64) {
        let shifts: Vec<f64> = self
            .errors
            .iter()
            .zip(&before.errors)
            .map(|((_, a), (_, b))| a - b)
            .filter(|d| d.abs() > CHANGED)
            .collect();
        let n = shifts.len();
        (n, shifts.iter().sum::<f64>() / n.max(1) as f64)
    }
}

/// One mechanism's effect: each set's errors with it off (everything else on).
#[derive(Debug, Clone, Serialize)]
pub struct MechanismEffect {
    /// Its name.
    pub name: &'static str,
    /// What it models.
    pub what: &'static str,
    /// Where the behaviour is documented.
    pub source: &'static str,
    /// Per set (in [`Fidelity::sets`] order), the errors without it.
    pub without: Vec<SetError>,
}

/// Every set under every choice.
#[derive(Debug, Clone, Serialize)]
pub struct Fidelity {
    /// The validation sets.
    pub sets: Vec<ValidationSet>,
    /// Per set, the errors of the model as it ships.
    pub all_on: Vec<SetError>,
    /// Per set, the errors with every mechanism off.
    pub all_off: Vec<SetError>,
    /// Per mechanism.
    pub mechanisms: Vec<MechanismEffect>,
}

/// A validation set and the function that predicts it under a choice of mechanisms.
type Predict<'a> = Box<dyn Fn(Mechanisms) -> Result<SetError> + 'a>;

/// The H100 profile's set: every measured configuration against the GPU file (uncalibrated).
fn measured_set<'a>(
    m: &'a Measurements,
    file: &'a str,
    gpu: &'a str,
) -> (ValidationSet, Predict<'a>) {
    let device = m.device.get("name").and_then(|v| v.as_str());
    let set = ValidationSet {
        name: format!("{gpu} steps {}", m.date.get(..10).unwrap_or(&m.date)),
        source: format!(
            "{file}: training steps measured by this project on {} (`{}`)",
            device.unwrap_or("an unnamed device"),
            m.command
        ),
        command: format!("roofline validate {file}"),
        fitted: "two constants of the GPU file (`achievable.eager_elementwise`, \
                 `achievable.misaligned_gemm`) were read off kernel timings of this profile, and \
                 a third, `attention.causal_factor`, is used only with the attention table off; \
                 its `[gemm_table]` is the same day's cuBLAS bench of the same GEMM shapes"
            .into(),
        caveat: cupti_caveat(m, file, gpu),
    };
    let predict = move |mech| {
        let v = validate::validate_with(m, file, gpu, None, mech)?;
        let errors = v.rows.iter().map(|r| (r.config.clone(), r.error)).collect();
        SetError::new(errors, None)
    };
    (set, Box::new(predict))
}

/// The runs of a measured set that were host-bound while timed with CUPTI still attached from
/// an earlier profile (their host time likely includes some of the profiler's), with the model
/// as it ships' error over the others.
fn cupti_caveat(m: &Measurements, file: &str, gpu: &str) -> Option<String> {
    let v = validate::validate(m, file, gpu, None).ok()?;
    let (mape, max, n) = v.without_cupti_host_bound()?;
    let runs = v.host_bound_with_cupti_attached();
    Some(format!(
        "{} {} host-bound and timed after an earlier profile in the same process had left CUPTI \
         attached, which is reported to slow the host's CUDA calls (pytorch/pytorch issue \
         #144455), so their host time likely includes some of the profiler's \
         (reports/validation.md); over the other {n} runs the mean / max error is {:.1}% / \
         {:.1}%",
        runs.join(" and "),
        if runs.len() == 1 { "was" } else { "were" },
        100.0 * mape,
        100.0 * max
    ))
}

/// A file of published runs, predicted as the file says (with its calibration, if any).
fn published_set<'a>(runs: &'a PublishedRuns, fitted: &str) -> (ValidationSet, Predict<'a>) {
    let set = ValidationSet {
        name: runs.name.clone(),
        source: format!("{}. {}", runs.title, runs.source),
        command: format!("roofline validate --published {}", runs.file),
        fitted: fitted.to_string(),
        caveat: None,
    };
    let predict = move |mech| {
        let v = published::validate_with(runs, mech)?;
        let not_fitting = v.rows.iter().filter(|r| !r.fits).count();
        let errors = v.rows.iter().map(|r| (r.name.clone(), r.error)).collect();
        SetError::new(errors, Some(not_fitting))
    };
    (set, Box::new(predict))
}

/// The fidelity analysis over the project's validation sets: the H100 profile (`measured`, read
/// from `file`, predicted with the GPU file `gpu`) and each published file with what was fitted
/// to it.
pub fn fidelity(
    measured: &[(&Measurements, &str, &str)],
    published: &[(&PublishedRuns, &str)],
) -> Result<Fidelity> {
    let mut sets = Vec::new();
    let mut predicts: Vec<Predict> = Vec::new();
    for (m, file, gpu) in measured {
        let (s, p) = measured_set(m, file, gpu);
        sets.push(s);
        predicts.push(p);
    }
    for (runs, fitted) in published {
        let (s, p) = published_set(runs, fitted);
        sets.push(s);
        predicts.push(p);
    }
    let under = |mech: Mechanisms| predicts.iter().map(|p| p(mech)).collect::<Result<Vec<_>>>();
    let mechanisms = MECHANISMS
        .iter()
        .map(|m| {
            let mut mech = Mechanisms::ALL;
            (m.off)(&mut mech);
            Ok(MechanismEffect {
                name: m.name,
                what: m.what,
                source: m.source,
                without: under(mech)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Fidelity {
        all_on: under(Mechanisms::ALL)?,
        all_off: under(Mechanisms::NONE)?,
        sets,
        mechanisms,
    })
}
