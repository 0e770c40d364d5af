//! `roofline validate`'s table: predicted against measured training steps, per configuration,
//! op class, peak memory, kernel count and host time.

use crate::validate::Validation;
use std::fmt::Write;

/// `roofline validate`: predicted vs measured, per configuration and op class.
pub fn validation(v: &Validation) -> String {
    validation_table(v, false)
}

/// The validation table as text or (`markdown`) Markdown.
pub(crate) fn validation_table(v: &Validation, markdown: bool) -> String {
    let mut s = String::new();
    let ms = |x: f64| format!("{:.2}", x * 1e3);
    let pct = |p: f64, m: f64| {
        if m > 0.0 {
            format!("{:+.0}%", 100.0 * (p / m - 1.0))
        } else {
            "n/a".into()
        }
    };
    if v.example {
        let _ = writeln!(
            s,
            "NOTE: the input is the synthetic EXAMPLE file, not a measurement.\n"
        );
    }
    let _ = writeln!(
        s,
        "device: {} (predicted with the {} spec, one GPU)\n",
        v.device, v.gpu
    );
    let sep = if markdown { " | " } else { "  " };
    let head = [
        "config",
        "measured ms",
        "predicted ms",
        "error",
        "gemm",
        "attention",
        "norm",
        "elementwise",
        "optimizer",
        "peak mem",
        "kernels",
        "host ms",
        "GPU busy",
    ];
    if markdown {
        let _ = writeln!(s, "| {} |", head.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    } else {
        let _ = writeln!(s, "{}", head.join(sep));
    }
    for r in &v.rows {
        let cls = |k: &str| {
            let (m, p) = r.classes[k];
            format!("{}/{} ({})", ms(m), ms(p), pct(p, m))
        };
        let mem = r.memory.map_or("n/a".to_string(), |(m, p)| {
            format!(
                "{:.1}/{:.1} GiB ({})",
                m / 1073741824.0,
                p / 1073741824.0,
                pct(p, m)
            )
        });
        let cells = [
            r.config.clone(),
            ms(r.measured_s),
            ms(r.predicted_s),
            format!("{:+.1}%", 100.0 * r.error),
            cls("gemm"),
            cls("attention"),
            cls("normalization"),
            cls("elementwise"),
            cls("optimizer"),
            mem,
            r.kernels.map_or("n/a".to_string(), |(m, p)| {
                format!("{m:.0}/{p:.0} ({})", pct(p, m))
            }),
            r.host.map_or("n/a".to_string(), |(m, p)| {
                format!("{}/{} ({})", ms(m), ms(p), pct(p, m))
            }),
            r.gpu_busy.map_or("n/a".to_string(), |(m, p)| {
                let bound = if r.host_bound() { " host-bound" } else { "" };
                format!("{:.0}%/{:.0}%{bound}", 100.0 * m, 100.0 * p)
            }),
        ];
        if markdown {
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        } else {
            let _ = writeln!(s, "{}", cells.join(sep));
        }
    }
    let _ = writeln!(
        s,
        "\nclass cells: measured/predicted GPU ms per step (error); kernels: profiled/predicted \
         per step (the profile also counts memsets of split reductions and cuBLAS split-K \
         reductions, which roofline does not launch); host ms: a step issued onto an idle GPU, \
         timed until it returns (measured where the file has it; the host time when the step is \
         host-bound, an upper bound that includes GPU time when the launch queue fills) / \
         predicted host dispatch; GPU busy: the share of the step the GPU runs kernels, measured \
         (profiled kernel time over the step) / predicted, host-bound below {:.0}% measured",
        100.0 * crate::calibrate::HOST_BOUND_GPU_SHARE
    );
    let _ = writeln!(
        s,
        "step time: mean absolute error {:.1}%, max {:.1}% over {} configurations",
        100.0 * v.mape,
        100.0 * v.max_error,
        v.rows.len()
    );
    let host_bound = v.host_bound();
    if !host_bound.is_empty() {
        let _ = writeln!(
            s,
            "host-bound as measured ({}): the GPU idled waiting for the host, so their error is \
             the host dispatch model's (launch.host_dispatch_s), not the GPU's (host ms, where \
             measured, gives the host's own time)",
            host_bound.join(", ")
        );
    }
    let attached = v.host_bound_with_cupti_attached();
    if !attached.is_empty() {
        let _ = writeln!(
            s,
            "timed with CUPTI attached ({}): an earlier profile in the same process left it \
             attached (Kineto detaches it only with TEARDOWN_CUPTI=1), which is reported to \
             slow the host's CUDA calls after the profile (pytorch/pytorch issue #144455; PR \
             #146604: training 10-20% slower), so these host-bound steps likely include some of \
             the profiler's cost; validation/measure.py detaches it unless TEARDOWN_CUPTI=0, \
             and its --retime-after-profile measures the difference",
            attached.join(", ")
        );
        if let Some((mape, max, n)) = v.without_cupti_host_bound() {
            let _ = writeln!(
                s,
                "step time over the other {n} configurations: mean absolute error {:.1}%, max \
                 {:.1}% (the figures above, over all, are the validation's)",
                100.0 * mape,
                100.0 * max
            );
        }
    }
    for r in &v.rows {
        let Some((after, teardown)) = r.after_profile else {
            continue;
        };
        let _ = writeln!(
            s,
            "timed again right after its profile ({}): {} {:.2} ms (before it {:.2} ms{}, \
             {:+.1}%)",
            if teardown {
                "CUPTI detached"
            } else {
                "CUPTI left attached"
            },
            r.config,
            after * 1e3,
            r.measured_s * 1e3,
            if r.cupti_attached {
                ", itself timed with CUPTI attached from an earlier profile"
            } else {
                ""
            },
            100.0 * (after / r.measured_s - 1.0)
        );
    }
    for r in &v.rows {
        let Some(again) = r.repeat_s else {
            continue;
        };
        let _ = writeln!(
            s,
            "measured again at the end of the run: {} {:.2} ms (first {:.2} ms, {:+.1}%; error \
             against the repeat {:+.1}%)",
            r.config,
            again * 1e3,
            r.measured_s * 1e3,
            100.0 * (again / r.measured_s - 1.0),
            100.0 * (r.predicted_s / again - 1.0)
        );
    }
    for k in &v.skipped {
        let _ = writeln!(s, "skipped: {k}");
    }
    s
}
