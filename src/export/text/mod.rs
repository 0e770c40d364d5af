//! Plain-text tables for the terminal.

use crate::analysis::catalog::ModelRow;
use crate::analysis::sensitivity::Sensitivity;
use crate::analysis::summary::{EstimateReport, MemoryReport, OpTimeRow};
use crate::analysis::uncertainty::Interval;
use crate::graph::{param_count, phase_totals, ExecMode, Op, Phase, StepConfig};
use crate::spec::{GpuSpec, ModelSpec};
use crate::units::{binary_bytes, human_duration, si, Bytes, Seconds};
use std::fmt::Write;

mod parallel;
mod sweep;
mod validation;
pub use parallel::{published_validation, search};
pub use sweep::sweep_best;
pub use validation::validation;
pub(crate) use validation::validation_table;

/// `roofline models`.
pub fn models(rows: &[ModelRow]) -> String {
    let mut s = String::new();
    let width = rows.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "{:<width$} {:>9} {:>9} {:>6}  description",
        "model", "params", "active", "seq"
    );
    for m in rows {
        let _ = writeln!(
            s,
            "{:<width$} {:>9} {:>9} {:>6}  {}",
            m.name,
            si(m.params as f64),
            si(m.active as f64),
            m.seq,
            m.description
        );
    }
    s
}

/// `roofline gpus`.
pub fn gpus(rows: &[(&str, GpuSpec)]) -> String {
    let mut s = String::new();
    for (name, g) in rows {
        let price = g.price.as_ref().map_or_else(
            || "no price".to_string(),
            |p| {
                format!(
                    "${:.2}/GPU-h {} {}",
                    p.usd_per_gpu_hour.value, p.provider, p.date
                )
            },
        );
        let _ = writeln!(
            s,
            "{name:<14} bf16 {:>9}FLOP/s  HBM {:>9}B/s  {:>10}  {:>3} SMs  {:<32} {}",
            si(g.peak_flops.bf16_tensor.value),
            si(g.memory.hbm_bandwidth.value),
            binary_bytes(Bytes(g.memory.hbm_capacity.value)),
            g.compute.sm_count.value,
            g.display_name,
            price
        );
    }
    let _ = writeln!(
        s,
        "prices: on-demand list prices per GPU-hour; compare GPUs of the same provider and date (see each file's [price] for the range of other offers)"
    );
    s
}

/// `roofline ops` table.
pub fn ops(model: &ModelSpec, step: &StepConfig, ops: &[Op]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: batch {} per GPU, attention {}, precision {}, checkpointing {}; {} trainable parameters",
        model.name,
        step.batch,
        step.attention,
        step.precision,
        step.checkpointing,
        param_count(model).total
    );
    let _ = writeln!(
        s,
        "FLOPs and bytes are totals over the layers a row stands for; AI = FLOP/byte (unfused)."
    );
    let _ = writeln!(
        s,
        "{:<9} {:<28} {:<12} {:<13} {:>11} {:>11} {:>11} {:>8}",
        "phase", "op", "layer", "kind", "FLOP", "read", "written", "AI"
    );
    for op in ops {
        let _ = writeln!(
            s,
            "{:<9} {:<28} {:<12} {:<13} {:>11} {:>11} {:>11} {:>8.1}",
            format!("{:?}", op.phase).to_lowercase(),
            op.name,
            op.layer.to_string(),
            op.kind.name(),
            si(op.total_flops().0),
            format!("{}B", si(op.total_bytes_read().0)),
            format!("{}B", si(op.total_bytes_written().0)),
            if (op.bytes_read + op.bytes_written).0 > 0.0 {
                op.intensity()
            } else {
                0.0
            }
        );
    }
    let _ = writeln!(s);
    for phase in [Phase::Forward, Phase::Backward, Phase::Optimizer] {
        let t = phase_totals(ops, phase);
        let _ = writeln!(
            s,
            "total {:<9} {:>11}FLOP (model {:>9}FLOP)  {:>10}B read  {:>10}B written",
            format!("{phase:?}").to_lowercase(),
            si(t.flops.0),
            si(t.model_flops.0),
            si(t.bytes_read.0),
            si(t.bytes_written.0)
        );
    }
    if model.transformer.causal {
        let _ = writeln!(s, "causal attention: model FLOPs count half of the score FLOPs; naive kernels execute all of them.");
    }
    s
}

/// `roofline memory`.
pub fn memory(r: &MemoryReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} on {}: batch {} per GPU, attention {}, {}, {} mode, checkpointing {}, ZeRO-{}",
        r.model, r.gpu, r.batch, r.attention, r.precision, r.mode, r.checkpointing, r.zero
    );
    for n in &r.setting_notes {
        let _ = writeln!(s, "  ({n})");
    }
    let m = &r.memory;
    let copies = if r.zero >= 3 {
        "gathered weights + their shard copies"
    } else {
        "autocast weight copies"
    };
    let rows = [
        ("weights", m.weights_bytes),
        ("gradients (fp32)", m.gradients_bytes),
        ("AdamW states (+ fp32 master, bf16-pure)", m.optimizer_bytes),
        ("EMA copies", m.ema_bytes),
        (copies, m.weight_copies_bytes),
        ("activations kept for backward", m.activations_bytes),
        ("largest backward transient", m.transient_bytes),
        ("workspace + fragmentation (assumption)", m.workspace_bytes),
    ];
    for (name, v) in rows {
        let _ = writeln!(s, "  {name:<40} {:>12}", binary_bytes(v));
    }
    let _ = writeln!(
        s,
        "  {:<40} {:>12}  of {} ({})",
        "total per GPU",
        binary_bytes(m.total_bytes),
        binary_bytes(r.capacity_bytes),
        fit_words(r.fits, r.headroom_bytes, r.tight)
    );
    let _ = writeln!(s, "  largest batch per GPU that fits: {}", r.max_batch);
    s
}

/// "fits, 12.3 GiB headroom", a TIGHT warning under the margin, or "DOES NOT FIT".
pub(crate) fn fit_words(fits: bool, headroom: f64, tight: bool) -> String {
    if !fits {
        return "DOES NOT FIT".into();
    }
    let h = binary_bytes(Bytes(headroom));
    if tight {
        format!(
            "fits with only {h} headroom: TIGHT, under the {:.0}% margin for allocator fragmentation, NCCL buffers and other allocations; expect out-of-memory errors",
            crate::analysis::summary::TIGHT_HEADROOM * 100.0
        )
    } else {
        format!("fits, {h} headroom")
    }
}

/// `roofline estimate` (human-readable).
pub fn estimate(r: &EstimateReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "roofline estimate: {} ({})",
        r.model, r.model_description
    );
    let _ = writeln!(
        s,
        "  {} x {} ({} per node), batch {} per GPU x {} accumulation, {}, attention {}, {} mode, checkpointing {}, ZeRO-{}",
        r.gpus,
        r.gpu_display_name,
        r.gpus_per_node,
        r.batch_per_gpu,
        r.grad_accum,
        r.precision,
        r.attention,
        r.mode,
        r.checkpointing,
        r.zero
    );
    if let Some(l) = &r.parallel {
        let p = &l.split;
        let _ = writeln!(
            s,
            "  layout: tensor parallel {}{}, pipeline {} stage(s){}, context parallel {}, {} data-parallel replica(s)",
            p.tp,
            if p.sp { " + sequence parallel" } else { "" },
            p.pp,
            if p.vpp > 1 {
                format!(" x {} chunks", p.vpp)
            } else {
                String::new()
            },
            p.cp,
            l.dp
        );
    }
    match r.active_params {
        Some(a) => {
            let _ = writeln!(
                s,
                "  {} trainable parameters, {} active per token (mixture of experts{})",
                r.params,
                a,
                r.ep.filter(|ep| *ep > 1)
                    .map_or(String::new(), |ep| format!(", experts over {ep} ranks"))
            );
        }
        None => {
            let _ = writeln!(s, "  {} trainable parameters", r.params);
        }
    }
    if !r.fits {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "DOES NOT FIT: {} of {} per GPU; largest batch per GPU that fits: {}. The times below are what the plan would take if it fit.",
            binary_bytes(r.memory_per_gpu_bytes),
            binary_bytes(r.memory_capacity_bytes),
            r.max_batch
        );
        if r.fixes_to_fit.is_empty() {
            let _ = writeln!(
                s,
                "  no recomputation, ZeRO stage or smaller batch makes it fit: use more GPUs (--tp, --pp, --gpus) or a GPU with more memory"
            );
        }
        for f in &r.fixes_to_fit {
            let _ = writeln!(
                s,
                "  fits with {}: step {}, {} per GPU",
                f.change,
                human_duration(Seconds(f.step_time_s)),
                binary_bytes(Bytes(f.memory_per_gpu_bytes))
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "step time          {:>12}   (forward {}, backward {} per micro-step; optimizer {} per step)",
        human_duration(r.step_time_s),
        human_duration(r.forward_s),
        human_duration(r.backward_s),
        human_duration(r.optimizer_s)
    );
    for (k, v) in &r.breakdown {
        let _ = writeln!(
            s,
            "  {k:<16} {:>12}   {:>5.1}%",
            human_duration(Seconds(*v)),
            100.0 * v / r.step_time_s.0
        );
    }
    let _ = writeln!(
        s,
        "  op time by bound: compute {}, memory {}, launch {}; {:.0} kernels/step, host dispatch {}",
        human_duration(Seconds(r.by_bound["compute"])),
        human_duration(Seconds(r.by_bound["memory"])),
        human_duration(Seconds(r.by_bound["launch"])),
        r.kernels_per_step,
        human_duration(r.host_dispatch_s)
    );
    if r.gpus > 1 {
        let _ = writeln!(
            s,
            "  communication: {} per step, {} exposed",
            human_duration(r.comm_total_s),
            human_duration(r.comm_exposed_s)
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "throughput         {:.1} samples/s ({:.1} per GPU){}",
        r.samples_per_s,
        r.samples_per_s_per_gpu,
        if r.fits {
            ""
        } else {
            "  (hypothetical: does not fit)"
        }
    );
    if let Some(i) = r.images_per_s {
        let _ = writeln!(s, "                   {i:.1} images/s");
    }
    let _ = writeln!(
        s,
        "                   {}tokens/s ({}tokens/s per GPU) at {} tokens per sample",
        si(r.tokens_per_s),
        si(r.tokens_per_s_per_gpu),
        r.tokens_per_sample
    );
    if let Some(p) = r.target_patch_tokens_per_s {
        let _ = writeln!(s, "                   {}target patch tokens/s", si(p));
    }
    let _ = writeln!(
        s,
        "MFU                {:.1}%  (HFU {:.1}%; model {}FLOP per GPU-step over {}FLOP/s dense peak)",
        r.mfu * 100.0,
        r.hfu * 100.0,
        si(r.model_flops_per_gpu_step.0),
        si(r.mfu_peak_flops.0)
    );
    let _ = writeln!(
        s,
        "memory per GPU     {} of {} ({}); largest batch that fits: {}",
        binary_bytes(r.memory_per_gpu_bytes),
        binary_bytes(r.memory_capacity_bytes),
        fit_words(r.fits, r.memory_headroom_bytes, r.memory_tight),
        r.max_batch
    );
    if let (Some(d), Some(t)) = (&r.dataset, r.train_time_s) {
        let _ = writeln!(s);
        match d.tokens_per_sample {
            Some(tps) => {
                let _ = writeln!(
                    s,
                    "dataset            {} tokens / {} tokens per sample = {} samples, x {} epochs",
                    si(d.given),
                    tps,
                    si(d.given / tps),
                    d.epochs
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "dataset            {} samples x {} epochs",
                    si(d.given),
                    d.epochs
                );
            }
        }
        let _ = writeln!(
            s,
            "training time      {}  ({} optimizer steps)",
            human_duration(t),
            d.steps
        );
        if let Some(h) = r.gpu_hours {
            let _ = writeln!(s, "GPU-hours          {h:.0}");
        }
        if let (Some(c), Some(p)) = (r.cost, r.price_per_gpu_hour) {
            let _ = writeln!(
                s,
                "cost               ${c:.0} at ${p:.2}/GPU-hour ({})",
                r.price_source.as_deref().unwrap_or("")
            );
        }
    }
    if !r.findings.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "findings (each saving from an estimate with the fix):");
        for f in &r.findings {
            let _ = writeln!(s, "  - {}", f.message);
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "assumptions:");
    for a in &r.assumptions {
        let _ = writeln!(s, "  - {a}");
    }
    s
}

/// Per-op times and bounds (`estimate --ops`).
pub fn op_times(rows: &[OpTimeRow], mode: ExecMode) -> String {
    let mut s = String::new();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<9} {:<28} {:<12} {:>10} {:>10} {:>10} {:>8}  {:<7} {:>6}",
        "phase", "op", "layer", "time", "compute", "memory", "kernels", "bound", "margin"
    );
    for OpTimeRow { op, time: t } in rows {
        let c = op.layer.count() as f64;
        let _ = writeln!(
            s,
            "{:<9} {:<28} {:<12} {:>10} {:>10} {:>10} {:>8} {:<7} {:>6.1}x",
            format!("{:?}", op.phase).to_lowercase(),
            op.name,
            op.layer.to_string(),
            human_duration(t.time * c),
            human_duration(t.compute * c),
            human_duration(t.memory * c),
            t.kernels * c,
            format!("{:?}", t.bound).to_lowercase(),
            t.margin
        );
    }
    if mode != ExecMode::Eager {
        let _ = writeln!(s, "(fused chains: members report their share of the fused kernel's traffic and launch no kernel)");
    }
    s
}

/// `roofline calibrate`: fitted values and residuals.
pub fn calibration(fit: &crate::calibrate::Fit) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "HBM achievable fraction   {:.3}", fit.hbm_fraction);
    let _ = writeln!(
        s,
        "streaming kernel latency  {}",
        human_duration(Seconds(fit.kernel_latency_s))
    );
    if let (Some(a), Some(k0)) = (fit.bf16_fraction, fit.gemm_k0) {
        let _ = writeln!(s, "bf16 GEMM fraction (a)    {a:.3}");
        let _ = writeln!(s, "GEMM small-K constant k0  {k0:.1}");
        if let Some(t) = fit.gemm_latency_s {
            let _ = writeln!(
                s,
                "GEMM call latency         {}",
                human_duration(Seconds(t))
            );
        }
    }
    if let Some(f) = fit.fp32_fraction {
        let _ = writeln!(s, "fp32 vector fraction      {f:.3}");
    }
    if let Some(f) = fit.eager_fraction {
        let _ = writeln!(s, "eager pointwise fraction  {f:.3}");
    }
    if let Some(t) = fit.host_dispatch_s {
        let _ = writeln!(
            s,
            "host time per eager kernel {}",
            human_duration(Seconds(t))
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<14} {:<40} {:>12} {:>12} {:>8}",
        "kernel", "shape", "measured", "predicted", "error"
    );
    for r in &fit.residuals {
        let _ = writeln!(
            s,
            "{:<14} {:<40} {:>12} {:>12} {:>7.1}%",
            r.kernel,
            r.shape,
            human_duration(Seconds(r.measured_s)),
            human_duration(Seconds(r.predicted_s)),
            100.0 * r.relative_error
        );
    }
    s
}

/// The sensitivity table as plain text: a warning first when the baseline does not fit, then
/// what the user chooses and what is uncertain (hardware figures) in two tables, negligible rows
/// left out and counted.
pub fn sensitivity(s: &Sensitivity) -> String {
    use crate::analysis::sensitivity::{Kind, NEGLIGIBLE};
    let mut o = String::new();
    if let Some(w) = &s.warning {
        let _ = writeln!(o, "WARNING: {w}");
    }
    let _ = writeln!(
        o,
        "sensitivity of {} on {} ({})",
        s.model, s.gpu, s.configuration
    );
    let _ = writeln!(
        o,
        "baseline step {:.3} ms, {:.3} us per sample; {}",
        s.step_time_s * 1e3,
        s.per_sample_s * 1e6,
        s.method
    );
    for (kind, title) in [
        (
            Kind::Choice,
            "What you choose (each alternative alone; the others as in the baseline)",
        ),
        (
            Kind::Uncertain,
            "What is uncertain (hardware figures over their ranges)",
        ),
    ] {
        let rows: Vec<_> = s.effects.iter().filter(|e| e.kind == kind).collect();
        let shown: Vec<_> = rows.iter().filter(|e| !e.negligible()).collect();
        let _ = writeln!(o);
        let _ = writeln!(o, "{title}:");
        let _ = writeln!(
            o,
            "{:<56} {:>11} {:>24} {:>17} {:>17} {:>8}  range",
            "", "baseline", "low .. high", "step time %", "train time %", "elast."
        );
        for e in &shown {
            let _ = writeln!(
                o,
                "{:<56} {:>11} {:>24} {:>+8.1} {:>+8.1} {:>+8.1} {:>+8.1} {:>8}  {}",
                e.label,
                e.baseline,
                format!("{} .. {}", e.low, e.high),
                e.step_change_low * 100.0,
                e.step_change_high * 100.0,
                e.train_change_low * 100.0,
                e.train_change_high * 100.0,
                e.step_elasticity
                    .map_or(String::new(), |x| format!("{x:+.3}")),
                e.range_source
            );
        }
        let hidden: Vec<&str> = rows
            .iter()
            .filter(|e| e.negligible())
            .map(|e| e.parameter.as_str())
            .collect();
        if !hidden.is_empty() {
            let _ = writeln!(
                o,
                "({} more change the times by less than {:.1}%: {})",
                hidden.len(),
                NEGLIGIBLE * 100.0,
                hidden.join(", ")
            );
        }
    }
    o
}

/// One line, e.g. "step 41.0 ms (36.2-47.3 ms, 90%) ...".
pub fn interval(i: &Interval) -> String {
    let mut s = format!(
        "step {} ({} - {}, {:.0}%): Monte Carlo over the {} values with a range in the GPU/calibration file, \
         each uniform and independent within its range; {} samples, fixed seed {:#x}",
        human_duration(Seconds(i.step_time_s)),
        human_duration(Seconds(i.step_time_interval_s[0])),
        human_duration(Seconds(i.step_time_interval_s[1])),
        i.coverage * 100.0,
        i.sampled.len(),
        i.samples,
        i.seed
    );
    let [lo, hi] = i.step_time_interval_with_model_error_s;
    let _ = write!(
        s,
        "\nwith the model's own error (a heuristic, not a 90% interval): step {} - {} (widened by {:.1}%, the {})",
        human_duration(Seconds(lo)),
        human_duration(Seconds(hi)),
        100.0 * i.model_error.fraction,
        i.model_error.basis
    );
    if let Some([lo, hi]) = i.train_time_interval_s {
        let _ = write!(
            s,
            "\ntraining time {} - {} (the step interval with the model's error times the optimizer steps)",
            human_duration(Seconds(lo)),
            human_duration(Seconds(hi))
        );
    }
    if let (Some([lo, hi]), Some([plo, phi])) =
        (i.cost_interval_usd, i.price_range_usd_per_gpu_hour)
    {
        let _ = write!(
            s,
            "\ntraining cost ${lo:.0} - ${hi:.0} ({:.0}% of the samples of training time x GPUs x a price drawn uniformly within ${plo:.2} - ${phi:.2} per GPU-hour, widened by the model's error)",
            i.coverage * 100.0
        );
    }
    s
}
