//! The command line turned into the library's inputs, once. The checks that only concern flags
//! (one option that needs another) live here; every other check is in
//! [`crate::scenario::ScenarioSpec::load`], which plan files and the reports go through too.

use super::args::{MemoryArgs, ScenarioArgs, StepArgs};
use crate::error::{Error, Result};
use crate::graph::{Parallelism, StepConfig};
use crate::scenario::{defaults, Dataset, DatasetSize, Scenario, ScenarioSpec, Unset};
use crate::spec::{self, ModelSpec};

impl StepArgs {
    /// The step settings, with roofline's own defaults for those not given (a scenario replaces
    /// them with the model file's: see [`StepArgs::unset`]).
    pub fn step_config(&self) -> StepConfig {
        StepConfig {
            batch: self.batch.unwrap_or(defaults::BATCH),
            attention: self.attention.unwrap_or(defaults::ATTENTION),
            precision: self.precision.unwrap_or(defaults::PRECISION),
            checkpointing: self.checkpointing,
            loss: self.loss,
            ema: self.ema,
            expert_shards: self.ep,
            parallel: Parallelism {
                tp: self.tp,
                sp: self.sp,
                pp: self.pp,
                vpp: self.vpp,
                cp: self.cp,
            },
            ..StepConfig::default()
        }
    }

    /// The settings not given, with the execution mode (`None` = not given).
    pub fn unset(&self, mode: Option<crate::graph::ExecMode>) -> Unset {
        Unset {
            batch: self.batch.is_none(),
            attention: self.attention.is_none(),
            precision: self.precision.is_none(),
            mode: mode.is_none(),
        }
    }

    /// The step settings of `roofline ops` (no scenario): the model file's `[defaults]` for
    /// those not given, else roofline's own.
    pub fn step_config_for(&self, model: &ModelSpec) -> Result<StepConfig> {
        let mut step = self.step_config();
        let mut mode = defaults::MODE;
        let unset = self.unset(Some(mode));
        crate::scenario::ModelStep::of(model)?.fill(unset, &mut step, &mut mode);
        // Say where the settings not given came from, as `estimate` does among its assumptions.
        for line in crate::scenario::describe_defaults(model, unset, &step, mode) {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "note: {line}");
        }
        Ok(step)
    }

    /// The model with the sequence override applied.
    pub fn model(&self) -> Result<ModelSpec> {
        let model = spec::load_model(&self.model)?;
        match self.seq {
            Some(s) => model.with_sequence(s),
            None => Ok(model),
        }
    }
}

impl ScenarioArgs {
    /// The scenario these options ask for, by name.
    pub fn spec(&self) -> Result<ScenarioSpec> {
        let dataset = match (self.train_samples, self.train_tokens) {
            (Some(n), _) => Some(DatasetSize::Samples(n)),
            (None, Some(tokens)) => Some(DatasetSize::Tokens {
                tokens,
                tokens_per_sample: self.tokens_per_sample,
            }),
            (None, None) => None,
        };
        if self.tokens_per_sample.is_some() && self.train_tokens.is_none() {
            return Err(Error::Invalid(
                "--tokens-per-sample needs --train-tokens".into(),
            ));
        }
        if self.epochs.is_some() && dataset.is_none() {
            return Err(Error::Invalid(
                "--epochs needs --train-samples or --train-tokens".into(),
            ));
        }
        Ok(ScenarioSpec {
            model: self.step.model.clone(),
            seq: self.step.seq,
            gpu: self.gpu.clone(),
            calibration: self.calibration.clone(),
            step: self.step.step_config(),
            mode: self.mode.unwrap_or(defaults::MODE),
            gpus: self.gpus,
            gpus_per_node: self.gpus_per_node,
            inter_node_gbps: self.inter_node_gbps,
            network: self.network.clone(),
            zero: if self.fsdp { 3 } else { self.zero },
            grad_accum: self.grad_accum,
            global_batch: self.global_batch,
            shard_group: self.shard_group,
            tp_overlap: self.tp_overlap,
            nvls: self.nvls,
            workspace_gib: self.workspace_gib,
            dataset: dataset.map(|size| Dataset {
                size,
                epochs: self.epochs.unwrap_or(1.0),
            }),
            price_per_gpu_hour: self.price_per_gpu_hour,
            unset: self.step.unset(self.mode),
        })
    }

    /// The loaded, checked scenario.
    pub fn scenario(&self) -> Result<Scenario> {
        self.spec()?.load()
    }
}

impl MemoryArgs {
    /// The scenario of `roofline memory`: the step on `gpus` GPUs of one kind with a ZeRO stage.
    pub fn spec(&self) -> Result<ScenarioSpec> {
        Ok(ScenarioSpec {
            model: self.step.model.clone(),
            seq: self.step.seq,
            gpu: self.gpu.clone(),
            step: self.step.step_config(),
            mode: self.mode.unwrap_or(defaults::MODE),
            gpus: self.gpus,
            zero: self.zero,
            unset: self.step.unset(self.mode),
            workspace_gib: self.workspace_gib,
            ..ScenarioSpec::default()
        })
    }
}

/// A scenario from `roofline estimate` options given as words, e.g. `["--gpu", "b200"]`: for
/// tests and examples that state scenarios the way a user types them.
pub fn parse_scenario(args: &[&str]) -> Result<Scenario> {
    parse_scenario_spec(args)?.load()
}

/// [`parse_scenario`] without loading: the scenario by name.
pub fn parse_scenario_spec(args: &[&str]) -> Result<ScenarioSpec> {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        s: ScenarioArgs,
    }
    let argv = std::iter::once("roofline-estimate").chain(args.iter().copied());
    Wrap::try_parse_from(argv)
        .map_err(|e| Error::Invalid(format!("bad estimate options {args:?}: {e}")))?
        .s
        .spec()
}
