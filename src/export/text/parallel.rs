//! Text tables of large runs: `roofline search` rankings and `roofline validate --published`.

use crate::analysis::published::PublishedValidation;
use crate::units::{binary_bytes, human_duration, si, Bytes, Seconds};
use std::fmt::Write;

/// `roofline validate --published`: predicted vs measured step time of published runs, as text
/// or (`markdown`) Markdown.
pub fn published_validation(v: &PublishedValidation, markdown: bool) -> String {
    let mut s = String::new();
    let (h, sep) = if markdown { ("# ", "|") } else { ("", " ") };
    let _ = writeln!(s, "{h}{}\n", v.title);
    let _ = writeln!(s, "Source: {}\n", v.source);
    let _ = writeln!(s, "Runs: {}\n", v.file);
    let head = [
        "run",
        "measured",
        "predicted",
        "error",
        "MFU",
        "bubble",
        "comm",
        "memory/GPU",
    ];
    if markdown {
        let _ = writeln!(s, "| {} |", head.join(" | "));
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        let _ = writeln!(
            s,
            "{:<52} {:>9} {:>10} {:>7} {:>6} {:>7} {:>6} {:>11}",
            head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]
        );
    }
    for r in &v.rows {
        let cells = [
            format!("{:.2} s", r.measured_step_s),
            format!("{:.2} s", r.predicted_step_s),
            format!("{:+.1}%", 100.0 * r.error),
            format!("{:.1}%", 100.0 * r.mfu),
            format!("{:.1}%", 100.0 * r.bubble_share),
            format!("{:.1}%", 100.0 * r.communication_share),
            format!(
                "{}{}",
                binary_bytes(Bytes(r.memory_bytes)),
                if r.fits { "" } else { " (does not fit)" }
            ),
        ];
        if markdown {
            let _ = writeln!(s, "| {} {sep} {} |", r.name, cells.join(" | "));
        } else {
            let _ = writeln!(
                s,
                "{:<52} {:>9} {:>10} {:>7} {:>6} {:>7} {:>6} {:>11}",
                r.name, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
            );
        }
    }
    let _ = writeln!(
        s,
        "\nMean absolute error {:.1}%, largest {:.1}% over {} runs (error = predicted / measured - 1; MFU counts the graph's model FLOPs, causal attention at half).",
        100.0 * v.mean_abs_error,
        100.0 * v.max_abs_error,
        v.rows.len()
    );
    let _ = writeln!(
        s,
        "\nEach run's settings as roofline flags, and the source's words:\n"
    );
    for r in &v.rows {
        let bullet = if markdown { "- " } else { "  " };
        let _ = writeln!(s, "{bullet}{}: `{}`; \"{}\"", r.name, r.settings, r.quote);
    }
    s
}

/// `roofline search`: the ranked executions, best first.
pub fn search(r: &crate::analysis::search::SearchResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "roofline search: {} on {} x {}, global batch {}, ranked by {}\n{} executions in the space; {} estimated, {} skipped by the compute bound, {} estimated did not fit in memory, {} could not run\n",
        r.model,
        r.gpus,
        r.gpu,
        r.global_batch,
        r.objective,
        r.candidates,
        r.evaluated,
        r.pruned,
        r.out_of_memory,
        r.invalid
    );
    let _ = writeln!(
        s,
        "{:>4} {:>4} {:>3} {:>4} {:>4} {:>3} {:>5} {:>5} {:>6} {:<10} {:>4} {:>10} {:>6} {:>12} {:>11} {:>6} {:>7} {:>10}",
        "rank", "tp", "sp", "pp", "vpp", "cp", "dp", "batch", "accum", "recompute", "zero",
        "step", "MFU", "tokens/s", "memory/GPU", "comm", "bubble", "USD/step"
    );
    for (i, row) in r.rows.iter().enumerate() {
        let c = &row.candidate;
        let p = &c.parallel;
        let _ = writeln!(
            s,
            "{:>4} {:>4} {:>3} {:>4} {:>4} {:>3} {:>5} {:>5} {:>6} {:<10} {:>4} {:>10} {:>5.1}% {:>12} {:>11} {:>5.1}% {:>6.1}% {:>10}",
            i + 1,
            p.tp,
            if p.sp { "yes" } else { "no" },
            p.pp,
            p.vpp,
            p.cp,
            c.dp,
            c.batch,
            c.grad_accum,
            c.checkpointing.to_string(),
            c.zero,
            human_duration(Seconds(row.step_time_s)),
            100.0 * row.mfu,
            si(row.tokens_per_s),
            binary_bytes(Bytes(row.memory_per_gpu_bytes)),
            100.0 * row.communication_share,
            100.0 * row.bubble_share,
            row.cost_per_step_usd.map_or("n/a".to_string(), |x| if x < 1.0 {
                format!("{x:.2e}")
            } else {
                format!("{x:.2}")
            })
        );
    }
    let _ = writeln!(
        s,
        "\nPlacement: tensor-parallel ranks first, then context-parallel, pipeline stages and data-parallel replicas, filling nodes in that order{}; `roofline estimate` with the row's flags gives the full breakdown.",
        if r.tensor_parallel_crosses_nodes {
            " (a tensor- or context-parallel group larger than a node communicates over the inter-node network)"
        } else {
            ""
        }
    );
    s
}
