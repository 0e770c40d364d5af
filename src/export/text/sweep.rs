//! `roofline sweep --objective`: the best configurations that fit.

use crate::analysis::sweep::Best;
use crate::units::{human_duration, Seconds};
use std::fmt::Write;

/// An objective value in words with its unit.
fn value(v: f64, what: &str) -> String {
    match what {
        "training time, s" => human_duration(Seconds(v)),
        "seconds per sample" => format!("{:.1} us/sample", v * 1e6),
        "training cost, USD" if v >= 100.0 => format!("${v:.0}"),
        "training cost, USD" => format!("${v:.3}"),
        _ => format!("${:.2}/1M samples", v * 1e6),
    }
}

/// The best rows of a sweep, best first, with the objective's value and unit.
pub fn sweep_best(b: &Best, configurations: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "best by {} among the {} of {configurations} configurations that fit in memory:",
        b.objective, b.candidates
    );
    if b.rows.is_empty() {
        let _ = writeln!(
            s,
            "  none: no configuration fits (or, for cost, none has a price: give --price-per-gpu-hour)"
        );
        return s;
    }
    for (i, (v, what, r)) in b.rows.iter().enumerate() {
        let price = r
            .usd_per_gpu_hour
            .map_or_else(String::new, |p| format!(" at ${p:.2}/GPU-hour"));
        let _ = writeln!(
            s,
            "  {:>2}. {:>16}  {} on {} x {}{price}: batch {} x {} accumulation, {}, {}, {}, checkpointing {}, ZeRO-{}, tp {} pp {} cp {}; step {:.2} ms, MFU {:.1}%",
            i + 1,
            value(*v, what),
            r.model,
            r.gpus,
            r.gpu,
            r.batch_per_gpu,
            r.grad_accum,
            r.attention,
            r.mode,
            r.precision,
            r.checkpointing,
            r.zero,
            r.tp,
            r.pp,
            r.cp,
            r.step_time_s.unwrap_or(f64::NAN) * 1e3,
            r.mfu.unwrap_or(f64::NAN) * 100.0
        );
    }
    s
}
