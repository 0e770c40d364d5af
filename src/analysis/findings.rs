//! Findings: where the planned step loses time for a reason the user can fix, each with the
//! saving the fix buys. Every saving comes from estimating the step again with the fix applied
//! (so it includes every knock-on effect the model knows), never from a rule of thumb. A finding
//! is reported when its fix saves at least [`MIN_SAVING`] of the step.

use crate::estimate::{Estimator, RunConfig, StepEstimate};
use crate::graph::{AttentionImpl, ExecMode, PrecisionPolicy};
use crate::scenario::Scenario;
use crate::spec::ModelSpec;
use crate::time::{attention_available, efficiency::alignment};
use crate::units::Seconds;
use serde::Serialize;

/// Smallest saving worth a finding, as a share of the step.
pub const MIN_SAVING: f64 = 0.01;

/// A rounding that keeps GEMM dimensions on cuBLAS's fast paths whatever the dtype (nanoGPT pads
/// GPT-2's vocabulary 50257 to 50304, a multiple of 64; Megatron-LM to a multiple of 128).
const PAD: u64 = 64;

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What kind: `misaligned_gemm`, `unfused_attention`, `old_fused_attention`, `host_bound`,
    /// `eager_execution`, `exposed_communication`.
    pub kind: &'static str,
    /// What is wrong and how to fix it, in words.
    pub message: String,
    /// Seconds per optimizer step the fix saves (for the same samples per step).
    pub saving_s: f64,
}

/// The findings of scenario `s`, whose estimate is `base`.
pub fn findings(s: &Scenario, base: &StepEstimate, est: &mut Estimator) -> Vec<Finding> {
    let mut v = Vec::new();
    let step = base.step_time;
    let push = |v: &mut Vec<Finding>, kind, saving: Seconds, message: String| {
        if saving.0 >= MIN_SAVING * step.0 {
            v.push(Finding {
                kind,
                message: format!(
                    "{message}: saves {} per step ({:.1}%)",
                    saving,
                    100.0 * saving.0 / step.0
                ),
                saving_s: saving.0,
            });
        }
    };
    // The step time with a fix applied; None where the fixed step cannot be estimated.
    let mut again = |model: &ModelSpec, run: &RunConfig| -> Option<Seconds> {
        est.estimate(model, &s.machine, run)
            .ok()
            .map(|e| e.step_time)
    };

    // A vocabulary or an MLP width that is not a multiple of the GEMM dtype's alignment.
    let align = alignment(PrecisionPolicy::of(s.run.step.precision).gemm);
    let m = &s.model;
    let vocab = m.padded_vocab();
    if vocab > 0 && !vocab.is_multiple_of(align) {
        let mut padded = m.clone();
        padded.embedding.pad_vocab_multiple = PAD;
        if let Some(fixed) = again(&padded, &s.run) {
            let saving = step - fixed;
            push(
                &mut v,
                "misaligned_gemm",
                saving,
                format!(
                    "vocabulary {vocab} is not a multiple of {align}, so the LM head's GEMMs run on slow unaligned kernels; padding it to {} (pad_vocab_multiple = {PAD} in the model spec; the extra rows are never targets)",
                    padded.padded_vocab()
                ),
            );
        }
    }
    let hidden = m.transformer.mlp_hidden;
    if !hidden.is_multiple_of(align) {
        let mut padded = m.clone();
        padded.transformer.mlp_hidden = hidden.div_ceil(PAD) * PAD;
        if let Some(fixed) = again(&padded, &s.run) {
            let saving = step - fixed;
            push(
                &mut v,
                "misaligned_gemm",
                saving,
                format!(
                    "MLP hidden size {hidden} is not a multiple of {align}, so the MLP's GEMMs run on slow unaligned kernels; {} (an architecture change)",
                    padded.transformer.mlp_hidden
                ),
            );
        }
    }

    // Attention that is not fused, or fused by a first-generation kernel, where a newer fused
    // kernel would run.
    let precision = s.run.step.precision;
    let current = s.run.step.attention;
    if !current.is_fused() || current == AttentionImpl::Flash1 {
        let fused = [AttentionImpl::Flash3, AttentionImpl::Flash2]
            .into_iter()
            .find(|a| attention_available(&s.machine, *a, precision));
        if let Some(a) = fused {
            if let Some(fixed) = again(m, &s.run_with_attention(a)) {
                let saving = step - fixed;
                let kind = if current.is_fused() {
                    "old_fused_attention"
                } else {
                    "unfused_attention"
                };
                push(
                    &mut v,
                    kind,
                    saving,
                    format!(
                        "attention ({current}) takes {:.0}% of the step at sequence {}; --attention {a}",
                        100.0 * base.breakdown.attention.0 / step.0,
                        m.max_seq()
                    ),
                );
            }
        }
    }

    // Eager execution: a kernel per framework op, each launched from the host; host-bound when
    // the host dispatches slower than the GPU runs.
    if s.run.mode == ExecMode::Eager && base.breakdown.launch_overhead.0 > MIN_SAVING * step.0 {
        let best = [ExecMode::Compiled, ExecMode::Graphs]
            .into_iter()
            .filter_map(|mode| {
                let run = RunConfig { mode, ..s.run };
                again(m, &run).map(|fixed| (mode, step - fixed))
            })
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0));
        let k = s.run.grad_accum as f64;
        let gpu = (base.forward + base.backward) * k + base.optimizer;
        let (kind, why) = if base.host > gpu {
            (
                "host_bound",
                format!(
                    "the host dispatches {:.0} eager kernels in {} per step, longer than the GPU's {}: the GPU idles",
                    base.kernels, base.host, gpu
                ),
            )
        } else {
            (
                "eager_execution",
                format!(
                    "eager PyTorch runs {:.0} kernels per step ({} of launch gaps and host dispatch) and moves every pointwise op's tensors through HBM",
                    base.kernels, base.breakdown.launch_overhead
                ),
            )
        };
        if let Some((mode, saving)) = best {
            push(
                &mut v,
                kind,
                saving,
                format!(
                    "{why}; --mode {mode} (torch.compile{})",
                    if mode == ExecMode::Graphs {
                        " with CUDA graphs"
                    } else {
                        ""
                    }
                ),
            );
        }
    }

    // Gradient communication the backward does not hide: more micro-steps per all-reduce.
    let gradients = base.comm_exposed - base.comm_model_parallel;
    if gradients.0 > MIN_SAVING * step.0 {
        let k = s.run.grad_accum;
        let run = RunConfig {
            grad_accum: k * 4,
            global_batch: None,
            ..s.run
        };
        if let Some(fixed) = again(m, &run) {
            // For the same samples: a quarter of the four times longer step.
            let saving = step - fixed * 0.25;
            push(
                &mut v,
                "exposed_communication",
                saving,
                format!(
                    "{} of gradient communication per step is not hidden by the backward; --grad-accum {} reduces gradients once per 4x the samples (a 4x larger global batch, a change to the training recipe), counted per {} samples",
                    gradients,
                    k * 4,
                    base.samples_per_step
                ),
            );
        }
    }
    v
}

/// A change that makes a plan that does not fit in memory fit, with what the changed plan
/// costs: found by estimating the plan again with the change.
#[derive(Debug, Clone, Serialize)]
pub struct FitFix {
    /// The change, as flags.
    pub change: String,
    /// Step time of the changed plan.
    pub step_time_s: f64,
    /// Seconds per sample of the changed plan (comparable when the change alters the batch).
    pub seconds_per_sample: f64,
    /// Memory per GPU of the changed plan.
    pub memory_per_gpu_bytes: f64,
}

/// Changes that make scenario `s` fit when its estimate `base` does not: recomputation, a
/// higher ZeRO stage (with data-parallel ranks to shard over), both, or the largest micro-batch
/// that fits; the ones that fit, cheapest per sample first. Empty when `base` fits.
pub fn fixes_to_fit(s: &Scenario, base: &StepEstimate, est: &mut Estimator) -> Vec<FitFix> {
    use crate::graph::Checkpointing;
    if base.fits {
        return Vec::new();
    }
    let run = &s.run;
    let shards = run.zero_shards().unwrap_or(1);
    let mut tries: Vec<(String, RunConfig)> = Vec::new();
    let ckpts = [Checkpointing::Selective, Checkpointing::Full]
        .into_iter()
        .filter(|c| *c as u8 > run.step.checkpointing as u8);
    for c in ckpts.clone() {
        let mut r = *run;
        r.step.checkpointing = c;
        tries.push((format!("--checkpointing {c}"), r));
    }
    if shards > 1 {
        for zero in (run.zero + 1)..=3 {
            let mut r = *run;
            r.zero = zero;
            tries.push((format!("--zero {zero}"), r));
            for c in ckpts.clone() {
                let mut rc = r;
                rc.step.checkpointing = c;
                tries.push((format!("--zero {zero} --checkpointing {c}"), rc));
            }
        }
    }
    let mut fixes = Vec::new();
    let mut fix = |change: String, e: &StepEstimate| {
        fixes.push(FitFix {
            change,
            step_time_s: e.step_time.0,
            seconds_per_sample: e.step_time.0 / e.samples_per_step,
            memory_per_gpu_bytes: e.memory.total_bytes.0,
        })
    };
    // Each change as is, and, where it still does not fit, with the largest batch that fits.
    tries.insert(0, (String::new(), *run));
    for (change, r) in tries {
        let Ok(e) = est.estimate(&s.model, &s.machine, &r) else {
            continue;
        };
        if e.fits {
            fix(change, &e);
        } else if e.max_batch >= 1 {
            let smaller = RunConfig {
                step: crate::graph::StepConfig {
                    batch: e.max_batch,
                    ..r.step
                },
                global_batch: None,
                ..r
            };
            if let Ok(e2) = est.estimate(&s.model, &s.machine, &smaller) {
                if e2.fits {
                    let sep = if change.is_empty() { "" } else { " " };
                    fix(
                        format!(
                            "{change}{sep}--batch {} (fewer samples per step)",
                            e.max_batch
                        ),
                        &e2,
                    );
                }
            }
        }
    }
    fixes.sort_by(|a, b| a.seconds_per_sample.total_cmp(&b.seconds_per_sample));
    fixes.truncate(3);
    fixes
}
