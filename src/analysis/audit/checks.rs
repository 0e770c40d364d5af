//! The checks of an audit, one method per kind of claim.

use super::plan::{Plan, SlowdownKind};
use super::{Check, ClaimedRate, Reading, Verdict};
use crate::error::Result;
use crate::estimate::{Estimator, StepEstimate};
use crate::graph::param_count;
use crate::scenario::Scenario;
use crate::units::{binary_bytes, human_duration, si, ByteRate, Bytes, Seconds};

/// What the checks share.
pub(super) struct Context<'a> {
    pub plan: &'a Plan,
    pub s: &'a Scenario,
    pub base: &'a StepEstimate,
    /// Samples/s per GPU of the plan as stated, when it fits.
    pub plan_gpu: Option<f64>,
    /// Samples/s per GPU of the fastest way to run the plan that fits.
    pub best_gpu: Option<f64>,
    pub flops_per_sample: f64,
    pub checks: Vec<Check>,
}

impl Context<'_> {
    fn push(&mut self, topic: &'static str, claim: String, finding: String, verdict: Verdict) {
        self.checks.push(Check {
            topic,
            claim,
            finding,
            verdict,
        });
    }

    /// roofline's range of samples/s per GPU for the plan: as stated (when it fits) to its
    /// fastest way that fits; None when no way of running it fits in memory.
    fn model_range(&self) -> Option<(f64, f64)> {
        let best = self.best_gpu?;
        Some((self.plan_gpu.unwrap_or(best), best))
    }

    /// The range in words.
    fn range_text(&self) -> String {
        match (self.plan_gpu, self.best_gpu) {
            (_, None) => "no way of running the plan fits in memory, so no rate to compare".into(),
            (Some(p), Some(b)) => {
                format!("roofline: {p:.0} per GPU as planned, {b:.0} with the best alternative")
            }
            (None, Some(b)) => format!(
                "roofline: the plan as stated does not fit in memory; {b:.0} per GPU with the best alternative that fits"
            ),
        }
    }

    pub fn token_reading(&mut self, readings: &[Reading]) {
        let own: Vec<&Reading> = readings
            .iter()
            .take(self.plan.claims.tokens_per_sample.len())
            .collect();
        if own.is_empty() {
            return;
        }
        let m = &self.s.model;
        let model_tokens = readings[own.len()..]
            .iter()
            .map(|r| format!("{} {}", r.tokens_per_sample, r.name))
            .collect::<Vec<_>>()
            .join(", ");
        let matches = own.iter().any(|o| {
            readings[own.len()..]
                .iter()
                .any(|r| r.tokens_per_sample == o.tokens_per_sample)
        });
        let list = own
            .iter()
            .map(|r| r.tokens_per_sample.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        self.push(
            "what a token is",
            format!("{list} tokens per sample"),
            format!(
                "{} processes {model_tokens}; a token count converts to samples only at one of these",
                m.name
            ),
            if matches { Verdict::Holds } else { Verdict::Wrong },
        );
    }

    pub fn hardware(&mut self) {
        let h = &self.plan.claims.hardware;
        let g = &self.s.gpu;
        if let Some(tf) = h.bf16_tflops {
            let dense = g.peak_flops.bf16_tensor.value;
            let near = |x: f64| (tf * 1e12 / x - 1.0).abs() <= 0.1;
            let (finding, verdict) = if near(dense) {
                ("the dense peak".to_string(), Verdict::Holds)
            } else if near(2.0 * dense) {
                (
                    "the 2:4-sparse figure, twice the dense peak; dense training cannot use it"
                        .into(),
                    Verdict::Wrong,
                )
            } else {
                (
                    "neither the dense nor the sparse peak".into(),
                    Verdict::Wrong,
                )
            };
            self.push(
                "GPU bf16 peak",
                format!("{tf} TFLOP/s per {}", g.display_name),
                format!(
                    "dense bf16 peak {}FLOP/s ({}); the claim is {finding}",
                    si(dense),
                    g.peak_flops.bf16_tensor.source
                ),
                verdict,
            );
        }
        if let Some(gb) = h.memory_gb {
            let cap = g.memory.hbm_capacity.value;
            let gib = cap / (1u64 << 30) as f64;
            let holds = (gb / (cap / 1e9) - 1.0).abs() <= 0.03 || (gb / gib - 1.0).abs() <= 0.03;
            self.push(
                "GPU memory",
                format!("{gb} GB"),
                format!(
                    "{} ({:.2e} bytes; {})",
                    binary_bytes(Bytes(cap)),
                    cap,
                    g.memory.hbm_capacity.source
                ),
                if holds {
                    Verdict::Holds
                } else {
                    Verdict::Wrong
                },
            );
        }
        if let Some(t) = &h.memory_technology {
            let (finding, verdict) = match &g.memory.technology {
                Some(file) if file.eq_ignore_ascii_case(t) => (file.clone(), Verdict::Holds),
                Some(file) => (
                    format!("{file} ({})", g.memory.hbm_bandwidth.source),
                    Verdict::Wrong,
                ),
                None => (
                    "the GPU file names no memory technology".into(),
                    Verdict::Undecided,
                ),
            };
            self.push("GPU memory technology", t.clone(), finding, verdict);
        }
    }

    pub fn model(&mut self) {
        let p = param_count(&self.s.model);
        if let Some(claim) = self.plan.claims.params {
            let holds = (claim / p.total as f64 - 1.0).abs() <= 0.05;
            self.push(
                "parameters",
                si(claim),
                format!(
                    "{} trainable parameters, of which adaLN {} ({:.0}%)",
                    p.total,
                    p.per_block_adaln * self.s.model.transformer.depth,
                    100.0 * (p.per_block_adaln * self.s.model.transformer.depth) as f64
                        / p.total as f64
                ),
                if holds {
                    Verdict::Holds
                } else {
                    Verdict::Wrong
                },
            );
        }
        let m = &self.base.memory;
        self.push(
            "fits in memory",
            format!("batch {} per GPU", self.s.run.step.batch),
            format!(
                "{} of {} per GPU; the largest batch that fits is {}",
                binary_bytes(m.total_bytes),
                binary_bytes(self.s.machine.capacity),
                self.base.max_batch
            ),
            if self.base.fits {
                Verdict::Holds
            } else {
                Verdict::Wrong
            },
        );
    }

    pub fn batch(&mut self) {
        let Some(global) = self.plan.claims.global_batch else {
            return;
        };
        let r = &self.s.run;
        // In u128: each factor is within its limit, their product need not fit u64.
        let global = u128::from(global);
        // Samples per micro-step: the batch of each data-parallel replica (tp·pp·cp GPUs).
        let dp = r.replicas();
        let per_step = u128::from(r.step.batch) * u128::from(dp);
        let actual = per_step * u128::from(r.grad_accum);
        let finding = if actual == global {
            format!(
                "{} per replica x {dp} data-parallel replicas x {} accumulation = {actual}",
                r.step.batch, r.grad_accum
            )
        } else if global.is_multiple_of(per_step) {
            format!(
                "{} per replica x {dp} data-parallel replicas x {} accumulation = {actual}; {global} needs {} accumulation steps",
                r.step.batch,
                r.grad_accum,
                global / per_step
            )
        } else {
            format!(
                "{global} is not a multiple of {} per replica x {dp} data-parallel replicas = {per_step}",
                r.step.batch
            )
        };
        self.push(
            "global batch",
            global.to_string(),
            finding,
            if actual == global {
                Verdict::Holds
            } else {
                Verdict::Wrong
            },
        );
    }

    pub fn throughput(&mut self, readings: &[Reading], claimed: &[ClaimedRate]) {
        let g = self.s.run.fleet.gpus as f64;
        let range = self.model_range();
        let rate_verdict =
            |lo: f64, hi: f64| range.map_or(Verdict::Undecided, |r| Verdict::of_rate((lo, hi), r));
        let own = readings[0].tokens_per_sample;
        for c in claimed {
            let sps = c.per_reading[0].0;
            let arithmetic = c
                .times
                .iter()
                .map(|t| {
                    let off = (t.stated_s / t.implied_s - 1.0).abs() > 0.05;
                    format!(
                        "{} for {} tokens (the rate gives {}{})",
                        human_duration(Seconds(t.stated_s)),
                        si(t.tokens),
                        human_duration(Seconds(t.implied_s)),
                        if off { ", inconsistent" } else { "" }
                    )
                })
                .collect::<Vec<_>>();
            let consistent = c
                .times
                .iter()
                .all(|t| (t.stated_s / t.implied_s - 1.0).abs() <= 0.05);
            let mfu = c.per_reading[0].1;
            let verdict = if mfu > 1.0 || !consistent {
                Verdict::Wrong
            } else {
                rate_verdict(sps / g, sps / g)
            };
            self.push(
                "throughput",
                format!(
                    "{}tokens/s{}{}",
                    si(c.tokens_per_s),
                    if arithmetic.is_empty() { "" } else { ": " },
                    arithmetic.join("; ")
                ),
                format!(
                    "at {own} tokens per sample that is {sps:.0} samples/s ({:.0} per GPU, implied MFU {:.2}%); {}",
                    sps / g,
                    100.0 * mfu,
                    self.range_text()
                ),
                verdict,
            );
        }
        let v = &self.plan.claims.samples_per_s_per_gpu;
        if let (Some(lo), Some(hi)) = (v.first(), v.last()) {
            let verdict = rate_verdict(*lo, *hi);
            self.push(
                "samples/s per GPU",
                if lo == hi {
                    format!("{lo}")
                } else {
                    format!("{lo}-{hi}")
                },
                format!(
                    "{} ({}FLOP per sample)",
                    self.range_text(),
                    si(self.flops_per_sample)
                ),
                verdict,
            );
        }
    }

    pub fn analogy(&mut self, est: &mut Estimator) -> Result<()> {
        let Some(a) = &self.plan.claims.analogy else {
            return Ok(());
        };
        // The other model run as the plan runs its own, on one GPU's worth of each replica:
        // a model split that fits the plan's model need not fit the other, so it runs unsplit.
        let plan = &self.plan.run;
        let spec = crate::scenario::ScenarioSpec {
            model: a.model.clone(),
            seq: None,
            step: crate::graph::StepConfig {
                parallel: crate::graph::Parallelism::default(),
                expert_shards: 1,
                ..plan.step
            },
            global_batch: None,
            shard_group: None,
            ..plan.clone()
        };
        let other = spec.load()?;
        let e = est.estimate(&other.model, &other.machine, &other.run)?;
        let per_gpu = e.tokens_per_s / other.run.fleet.gpus as f64;
        let (Some(&lo), Some(&hi)) = (
            a.tokens_per_s_per_gpu.first(),
            a.tokens_per_s_per_gpu.last(),
        ) else {
            return Ok(());
        };
        let six_n = 6.0 * param_count(&other.model).total as f64;
        self.push(
            "the analogy",
            format!(
                "{} at {}{} tokens/s per GPU",
                other.model.name,
                lo,
                if hi != lo { format!("-{hi}") } else { String::new() }
            ),
            format!(
                "roofline: {} tokens/s per GPU for {} run as the plan runs its model{}; and it does not transfer: a {} sample costs {}FLOP, a {} token about {}FLOP (6N)",
                si(per_gpu),
                other.model.name,
                if e.fits { "" } else { " (which does not fit in memory)" },
                self.s.model.name,
                si(self.flops_per_sample),
                other.model.name,
                si(six_n)
            ),
            if e.fits {
                Verdict::of_rate((lo, hi), (per_gpu, per_gpu))
            } else {
                Verdict::Undecided
            },
        );
        Ok(())
    }

    pub fn slowdowns(&mut self) {
        // The loading need at the fastest rate that fits (else the plan's own rate).
        let best_gpu = self
            .best_gpu
            .unwrap_or(self.base.samples_per_s / self.s.run.fleet.gpus as f64);
        for sl in &self.plan.claims.slowdowns {
            match sl.kind {
                SlowdownKind::MultiStepPrediction => self.push(
                    "slowdown",
                    sl.words.clone(),
                    format!(
                        "training runs one denoising step per sample: one forward and one backward of the network ({}FLOP per sample, the figure above); many-step sampling is an inference cost",
                        si(self.flops_per_sample)
                    ),
                    Verdict::DoesNotApply,
                ),
                SlowdownKind::DataLoading => {
                    let bytes = input_bytes(self.s);
                    let need = best_gpu * bytes;
                    let (finding, verdict) = match &self.s.gpu.interconnect.host_bandwidth {
                        Some(h) => (
                            format!(
                                "{} per sample ({}) at {best_gpu:.0} samples/s per GPU needs {} per GPU, {:.2}% of the {} host link ({}); loading slows training only from {:.0}% of the link",
                                binary_bytes(Bytes(bytes)),
                                input_what(self.s),
                                ByteRate(need),
                                100.0 * need / h.value,
                                ByteRate(h.value),
                                h.source,
                                100.0 * LOADING_SHARE
                            ),
                            if need < LOADING_SHARE * h.value {
                                Verdict::DoesNotApply
                            } else {
                                Verdict::Holds
                            },
                        ),
                        None => (
                            format!(
                                "needs {} per GPU ({} per sample); the GPU file gives no host link to compare with",
                                ByteRate(need),
                                binary_bytes(Bytes(bytes))
                            ),
                            Verdict::Undecided,
                        ),
                    };
                    self.push("slowdown", sl.words.clone(), finding, verdict);
                }
            }
        }
    }
}

/// Input copies may take this share of the host link before they slow training: copies overlap
/// compute (pinned memory, asynchronous transfers), and the link also carries other traffic.
const LOADING_SHARE: f64 = 0.5;

/// Input bytes per sample moved to the GPU: vision models read their images as fp32 (an upper
/// bound: uint8 pixels would be a quarter), language models int64 token ids.
fn input_bytes(s: &Scenario) -> f64 {
    let m = &s.model;
    match &m.input {
        Some(i) => {
            let images = 1 + u64::from(m.tokens.condition > 0);
            (images * i.height * i.width * i.channels) as f64 * 4.0
        }
        None => m.tokens.text as f64 * 8.0,
    }
}

fn input_what(s: &Scenario) -> String {
    let m = &s.model;
    match &m.input {
        Some(i) => {
            let images = if m.tokens.condition > 0 {
                "2 images"
            } else {
                "1 image"
            };
            format!(
                "{images} of {}x{}x{} in fp32",
                i.height, i.width, i.channels
            )
        }
        None => format!("{} int64 token ids", m.tokens.text),
    }
}
