//! Markdown output.

use super::EstimateReport;
use crate::units::{binary_bytes, human_duration, si, Bytes, Seconds};
use std::fmt::Write;

/// `roofline estimate --markdown`.
pub fn estimate(r: &EstimateReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## {} on {} x {}", r.model, r.gpus, r.gpu);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "batch {} per GPU x {} accumulation, {}, attention {}, {} mode, checkpointing {}, ZeRO-{}",
        r.batch_per_gpu, r.grad_accum, r.precision, r.attention, r.mode, r.checkpointing, r.zero
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| quantity | value |");
    let _ = writeln!(s, "|---|---|");
    let _ = writeln!(
        s,
        "| step time | {} |",
        human_duration(Seconds(r.step_time_s))
    );
    for (k, v) in &r.breakdown {
        let _ = writeln!(
            s,
            "| - {k} | {} ({:.1}%) |",
            human_duration(Seconds(*v)),
            100.0 * v / r.step_time_s
        );
    }
    let _ = writeln!(s, "| samples/s (fleet) | {:.1} |", r.samples_per_s);
    let _ = writeln!(
        s,
        "| tokens/s (fleet, {} per sample) | {} |",
        r.tokens_per_sample,
        si(r.tokens_per_s)
    );
    let _ = writeln!(s, "| MFU | {:.1}% |", r.mfu * 100.0);
    let _ = writeln!(s, "| HFU | {:.1}% |", r.hfu * 100.0);
    let _ = writeln!(
        s,
        "| memory per GPU | {} of {} ({}) |",
        binary_bytes(Bytes(r.memory_per_gpu_bytes)),
        binary_bytes(Bytes(r.memory_capacity_bytes)),
        if r.fits { "fits" } else { "does not fit" }
    );
    let _ = writeln!(s, "| largest batch that fits | {} |", r.max_batch);
    if let Some(t) = r.train_time_s {
        let _ = writeln!(s, "| training time | {} |", human_duration(Seconds(t)));
    }
    if let Some(c) = r.cost {
        let _ = writeln!(s, "| cost | ${c:.0} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Assumptions:");
    for a in &r.assumptions {
        let _ = writeln!(s, "- {a}");
    }
    s
}
