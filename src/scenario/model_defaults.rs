//! A model file's `[defaults]` (how its reference code runs a step) for the settings the user
//! left out, and which of roofline's own defaults were used where the file says nothing.

use super::defaults;
use crate::error::{Error, Result};
use crate::graph::{AttentionImpl, ExecMode, Precision, StepConfig};
use crate::spec::ModelSpec;

/// The step settings the user did not give: the model file's `[defaults]` fill them, else
/// roofline's own ([`defaults`]). The command line, Python and a plan file's `[run]` set them
/// for what they leave out; published-run files and library callers that build a
/// [`super::ScenarioSpec`] themselves leave them all false (every setting as stated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unset {
    /// Samples per GPU per micro-step.
    pub batch: bool,
    /// Attention implementation.
    pub attention: bool,
    /// Precision.
    pub precision: bool,
    /// Execution mode.
    pub mode: bool,
}

impl Unset {
    /// Every setting left out.
    pub const ALL: Unset = Unset {
        batch: true,
        attention: true,
        precision: true,
        mode: true,
    };

    /// Whether any setting is left out.
    pub fn any(&self) -> bool {
        self.batch || self.attention || self.precision || self.mode
    }
}

/// The settings a model file's `[defaults]` gives, parsed (errors name the file and field).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModelStep {
    /// Samples per GPU per micro-step.
    pub batch: Option<u64>,
    /// Attention implementation.
    pub attention: Option<AttentionImpl>,
    /// Precision.
    pub precision: Option<Precision>,
    /// Execution mode.
    pub mode: Option<ExecMode>,
}

impl ModelStep {
    /// The parsed `[defaults]` of `model` (all `None` when it has none).
    pub fn of(model: &ModelSpec) -> Result<Self> {
        let Some(d) = &model.defaults else {
            return Ok(Self::default());
        };
        fn parse<T: std::str::FromStr<Err = Error>>(
            v: &Option<String>,
            file: &str,
            field: &str,
        ) -> Result<Option<T>> {
            v.as_deref()
                .map(|s| {
                    s.parse()
                        .map_err(|e: Error| Error::spec(file, field, e.to_string()))
                })
                .transpose()
        }
        let file = &model.file;
        if d.batch == Some(0) {
            return Err(Error::spec(file, "defaults.batch", "must be positive"));
        }
        Ok(ModelStep {
            batch: d.batch,
            attention: parse(&d.attention, file, "defaults.attention")?,
            precision: parse(&d.precision, file, "defaults.precision")?,
            mode: parse(&d.mode, file, "defaults.mode")?,
        })
    }

    /// Sets the `unset` settings of `step` and `mode` to this model's, or roofline's own where
    /// the model gives none (allocation-free: sweeps call it per configuration).
    pub fn fill(&self, unset: Unset, step: &mut StepConfig, mode: &mut ExecMode) {
        if unset.batch {
            step.batch = self.batch.unwrap_or(defaults::BATCH);
        }
        if unset.attention {
            step.attention = self.attention.unwrap_or(defaults::ATTENTION);
        }
        if unset.precision {
            step.precision = self.precision.unwrap_or(defaults::PRECISION);
        }
        if unset.mode {
            *mode = self.mode.unwrap_or(defaults::MODE);
        }
    }
}

/// Where the defaulted settings came from, in words: one line for those from the model file
/// (with its source) and one for roofline's own; empty when the user gave every setting.
pub fn describe(model: &ModelSpec, unset: Unset, step: &StepConfig, mode: ExecMode) -> Vec<String> {
    let given = ModelStep::of(model).unwrap_or_default();
    let mut from_model = Vec::new();
    let mut own = Vec::new();
    let mut sort = |is_unset: bool, from_file: bool, text: String| {
        if is_unset {
            if from_file {
                from_model.push(text);
            } else {
                own.push(text);
            }
        }
    };
    sort(unset.mode, given.mode.is_some(), format!("mode {mode}"));
    sort(
        unset.attention,
        given.attention.is_some(),
        format!("attention {}", step.attention),
    );
    sort(
        unset.precision,
        given.precision.is_some(),
        format!("precision {}", step.precision),
    );
    sort(
        unset.batch,
        given.batch.is_some(),
        format!("batch {}", step.batch),
    );
    let mut v = Vec::new();
    if !from_model.is_empty() {
        let source = model.defaults.as_ref().map_or("", |d| d.source.as_str());
        // Embedded specs are the repository's models/NAME.toml.
        let file = match model.file.strip_prefix("embedded:") {
            Some(name) => format!("models/{name}.toml"),
            None => model.file.clone(),
        };
        v.push(format!(
            "not given, from the model file's [defaults] ({file}): {} (source: {source})",
            from_model.join(", ")
        ));
    }
    if !own.is_empty() {
        v.push(format!(
            "not given, roofline's own defaults ({} has no [defaults] for them): {}",
            model.name,
            own.join(", ")
        ));
    }
    v
}
