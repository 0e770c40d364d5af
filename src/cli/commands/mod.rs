//! One function per command: options -> scenario -> analysis -> rendered output. Files are
//! written through [`crate::files`], whole or not at all; text goes to stdout, notes to stderr.

use super::args::*;
use crate::analysis::{self, summary::EstimateReport};
use crate::error::{Error, Result};
use crate::estimate::Estimator;
use crate::export::{csv, json, markdown, text};
use crate::files;
use crate::plot::{self, render_for, SIZE};
use crate::spec;
use std::io::IsTerminal;
use std::path::Path;

/// Writes `text` to stdout, naming stdout when that fails.
pub(super) fn out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|_| o.flush())
        .map_err(|e| Error::io(Path::new("<stdout>"), e))
}

/// Prints a JSON value as `--json` does: pretty, one trailing newline.
fn print_json(v: &serde_json::Value) -> Result<()> {
    out(&format!("{}\n", json::to_string(v)?))
}

/// A note to stderr; a closed stderr is no reason to stop.
macro_rules! note {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod sweep;
pub use sweep::sweep;

/// `roofline models`: the embedded models, or a config.json imported as a TOML spec.
pub fn models(a: &ModelsArgs) -> Result<()> {
    let Some(path) = &a.import else {
        if a.json {
            print_json(&models_json()?)?;
        } else {
            out(&text::models(&analysis::catalog::models()?))?;
        }
        return Ok(());
    };
    let model = spec::load_model(&path.display().to_string())?;
    let toml = model.to_toml()?;
    match &a.out {
        Some(o) => {
            files::write(o, toml.as_bytes())?;
            for n in &model.notes {
                note!("note: {n}");
            }
            note!("wrote {}", o.display());
        }
        None => out(&toml)?,
    }
    Ok(())
}

/// `roofline models --json`.
pub fn models_json() -> Result<serde_json::Value> {
    json::to_value(&analysis::catalog::models()?)
}

/// `roofline gpus --json`.
pub fn gpus_json() -> Result<serde_json::Value> {
    json::to_value(&analysis::catalog::gpu_rows()?)
}

/// `roofline gpus`.
pub fn gpus(a: &GpusArgs) -> Result<()> {
    if a.json {
        print_json(&gpus_json()?)?;
    } else {
        out(&text::gpus(&analysis::catalog::gpus()?))?;
    }
    Ok(())
}

/// What the import of a config.json could not express, on stderr (estimate lists it among its
/// assumptions).
fn import_notes(m: &crate::spec::ModelSpec) {
    for n in &m.notes {
        note!("note: {}: {n}", m.name);
    }
}

/// `roofline ops`.
pub fn ops(a: &OpsArgs) -> Result<()> {
    if a.json {
        return print_json(&ops_json(a)?);
    }
    let model = a.step.model()?;
    import_notes(&model);
    let step = a.step.step_config_for(&model)?;
    let mut ops = Vec::new();
    crate::graph::build_step(&model, &step, &mut ops)?;
    out(&text::ops(&model, &step, &ops))
}

/// `roofline ops --json`.
pub fn ops_json(a: &OpsArgs) -> Result<serde_json::Value> {
    let model = a.step.model()?;
    import_notes(&model);
    let step = a.step.step_config_for(&model)?;
    let mut ops = Vec::new();
    crate::graph::build_step(&model, &step, &mut ops)?;
    json::ops(&model, &step, &ops)
}

/// The memory report of `roofline memory`.
fn memory_report(a: &MemoryArgs) -> Result<analysis::summary::MemoryReport> {
    let s = a.spec()?.load()?;
    import_notes(&s.model);
    let mut ops = Vec::new();
    crate::graph::build_step(&s.model, &s.run.step, &mut ops)?;
    analysis::summary::MemoryReport::new(&s, &ops)
}

/// `roofline memory`.
pub fn memory(a: &MemoryArgs) -> Result<()> {
    if a.json {
        print_json(&memory_json(a)?)
    } else {
        out(&text::memory(&memory_report(a)?))
    }
}

/// `roofline memory --json`.
pub fn memory_json(a: &MemoryArgs) -> Result<serde_json::Value> {
    json::to_value(&memory_report(a)?)
}

/// What `roofline estimate` computes: the scenario, the estimator that ran it (its ops), the
/// report and, with `--interval`, the step-time interval.
struct EstimateRun {
    scenario: crate::scenario::Scenario,
    estimator: Estimator,
    report: EstimateReport,
    interval: Option<analysis::uncertainty::Interval>,
}

fn estimate_run(a: &EstimateArgs) -> Result<EstimateRun> {
    let s = a.scenario.scenario()?;
    let mut est = Estimator::new();
    let e = est.estimate(&s.model, &s.machine, &s.run)?;
    let mut report = EstimateReport::new(&s, &e);
    // On an estimator of their own: `--ops` below lists the ops of the plan as stated.
    report.findings = analysis::findings::findings(&s, &e, &mut Estimator::new());
    report.fixes_to_fit = analysis::findings::fixes_to_fit(&s, &e, &mut Estimator::new());
    let interval = if a.interval {
        Some(analysis::uncertainty::step_interval(&s)?)
    } else {
        None
    };
    Ok(EstimateRun {
        scenario: s,
        estimator: est,
        report,
        interval,
    })
}

impl EstimateRun {
    /// `roofline estimate --json` of this run.
    fn json(&self) -> Result<serde_json::Value> {
        match &self.interval {
            Some(i) => json::estimate_with_interval(&self.report, i),
            None => json::to_value(&self.report),
        }
    }
}

/// `roofline estimate --json`.
pub fn estimate_json(a: &EstimateArgs) -> Result<serde_json::Value> {
    estimate_run(a)?.json()
}

/// `roofline estimate`.
pub fn estimate(a: &EstimateArgs) -> Result<()> {
    let run = estimate_run(a)?;
    let EstimateRun {
        scenario: s,
        estimator: est,
        report,
        interval,
    } = &run;
    if a.json {
        print_json(&run.json()?)?;
    } else if a.markdown {
        out(&markdown::estimate(report))?;
    } else {
        out(&text::estimate(report))?;
    }
    if let (Some(i), false) = (interval, a.json) {
        out(&format!("\n{}\n", text::interval(i)))?;
    }
    if a.ops {
        let rows = analysis::summary::op_times(s, est.ops())?;
        out(&text::op_times(&rows, s.run.mode))?;
    }
    Ok(())
}

/// `roofline search`.
pub fn search(a: &SearchArgs) -> Result<()> {
    let r = search_result(a)?;
    if a.json {
        print_json(&json::to_value(&r)?)
    } else if a.csv {
        out(&csv::search(&r))
    } else {
        out(&text::search(&r))
    }
}

/// `roofline search --json`.
pub fn search_json(a: &SearchArgs) -> Result<serde_json::Value> {
    json::to_value(&search_result(a)?)
}

/// The ranked executions of `roofline search`.
fn search_result(a: &SearchArgs) -> Result<analysis::search::SearchResult> {
    let global_batch = a.scenario.global_batch.ok_or_else(|| {
        Error::Invalid("search needs --global-batch (samples per optimizer step)".into())
    })?;
    let st = &a.scenario.step;
    let fixed = [
        ("--tp", st.tp != 1),
        ("--sp", st.sp),
        ("--pp", st.pp != 1),
        ("--vpp", st.vpp != 1),
        ("--cp", st.cp != 1),
        ("--zero", a.scenario.zero != 0),
        ("--fsdp", a.scenario.fsdp),
        ("--shard-group", a.scenario.shard_group.is_some()),
        ("--grad-accum", a.scenario.grad_accum != 1),
    ];
    if let Some((flag, _)) = fixed.iter().find(|f| f.1) {
        return Err(Error::Invalid(format!(
            "search does not take {flag}: it chooses tp, sp, pp, vpp, cp, the ZeRO stage (sharding over every replica), micro-batch and accumulation itself; drop {flag}, and bound the space with --max-tp, --max-pp, --max-vpp or --max-cp"
        )));
    }
    let spec = crate::scenario::ScenarioSpec {
        // The searched settings start from one GPU's split; each candidate sets its own.
        global_batch: None,
        grad_accum: 1,
        step: crate::graph::StepConfig {
            parallel: crate::graph::Parallelism::default(),
            ..a.scenario.step.step_config()
        },
        ..a.scenario.spec()?
    };
    let s = spec.load()?;
    let space = analysis::search::SearchSpace {
        global_batch,
        max_tp: a.max_tp,
        max_pp: a.max_pp,
        max_vpp: a.max_vpp,
        max_cp: a.max_cp,
        top: usize::try_from(a.top).unwrap_or(usize::MAX).min(10_000),
        objective: a.objective,
        prune: true,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let b =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} executions, eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        // Drawn only when the search takes longer than a moment.
        b.enable_steady_tick(std::time::Duration::from_millis(500));
        b
    });
    let progress = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let r = analysis::search::search(&s, &space, &progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(r)
}

/// `roofline sensitivity`.
pub fn sensitivity(a: &SensitivityArgs) -> Result<()> {
    if let Some(p) = &a.out {
        plot::Format::of(p)?;
    }
    let s = analysis::sensitivity::analyse(&a.scenario.scenario()?)?;
    if let (true, Some(w)) = (a.json, &s.warning) {
        note!("warning: {w}");
    }
    if a.json {
        print_json(&json::to_value(&s)?)?;
    } else {
        out(&text::sensitivity(&s))?;
    }
    if let Some(p) = &a.out {
        let chart = plot::tornado::Tornado::new(&s);
        files::write(p, &render_for(&chart, p, SIZE)?)?;
        note!("wrote {}", p.display());
    }
    Ok(())
}

/// `roofline flash-report`: the Markdown table and its chart (SVG, and PNG beside it).
pub fn flash_report(a: &FlashArgs) -> Result<()> {
    let r = analysis::flash::build(&a.scenario.scenario()?)?;
    let stem = analysis::flash::stem(&r);
    let svg = a.out_dir.join(format!("{stem}.svg"));
    let png = a.out_dir.join(format!("{stem}.png"));
    let md = a.out_dir.join(format!("{stem}.md"));
    let chart = plot::flash::FlashChart::new(&r);
    files::write_all(&[
        (svg.clone(), render_for(&chart, &svg, SIZE)?),
        (png.clone(), render_for(&chart, &png, SIZE)?),
        (
            md.clone(),
            markdown::flash_report(&r, Some(&format!("{stem}.svg"))).into_bytes(),
        ),
    ])?;
    note!(
        "wrote {} and its chart {} (and .png)",
        md.display(),
        svg.display()
    );
    Ok(())
}

/// `roofline plot`.
pub fn plot(a: &PlotArgs) -> Result<()> {
    match &a.kind {
        PlotKind::Roofline(r) => {
            let s = r.scenario.scenario()?;
            let measured = match &r.measured {
                Some(p) => analysis::roofline::load_measured(p)?,
                None => Vec::new(),
            };
            let chart = analysis::roofline::chart(&s, measured)?;
            files::write(&r.out, &render_for(&chart, &r.out, SIZE)?)?;
            note!("wrote {}", r.out.display());
            Ok(())
        }
    }
}

/// `roofline report`.
pub fn report(a: &ReportArgs) -> Result<()> {
    let out = crate::reports::files(&a.out)?;
    files::write_all(&out)?;
    for (p, _) in &out {
        note!("wrote {}", p.display());
    }
    Ok(())
}

/// `roofline audit`.
pub fn audit(a: &AuditArgs) -> Result<()> {
    let plan = analysis::audit::plan::Plan::load(&a.plan)?;
    let r = analysis::audit::audit(&plan)?;
    if a.json {
        out(&format!("{}\n", json::to_string(&r)?))?;
        return Ok(());
    }
    let md = markdown::audit(&r);
    match &a.out {
        Some(out) => {
            files::write(out, md.as_bytes())?;
            note!("wrote {}", out.display());
        }
        None => out(&md)?,
    }
    Ok(())
}

/// Reads and parses a JSON input file, naming the file in errors.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::spec(path.display().to_string(), "(json)", format!("{what}: {e}")))
}

/// `roofline validate`.
pub fn validate(a: &ValidateArgs) -> Result<()> {
    if let Some(path) = &a.published {
        let runs = crate::analysis::published::PublishedRuns::load(path)?;
        let v = crate::analysis::published::validate(&runs)?;
        if a.json {
            out(&format!("{}\n", json::to_string(&v)?))?;
        } else {
            out(&text::published_validation(&v, a.markdown))?;
        }
        return Ok(());
    }
    let measurements = a.measurements.as_ref().ok_or_else(|| {
        Error::Invalid("validate needs a measurements file or --published FILE".into())
    })?;
    let m: crate::validate::Measurements =
        read_json(measurements, "not a roofline-validation/1 file")?;
    let device = m.device.get("name").and_then(|v| v.as_str()).unwrap_or("");
    let gpu = gpu_name(a.gpu.as_deref(), device)?;
    let cal = a
        .calibration
        .as_deref()
        .map(crate::time::Calibration::load)
        .transpose()?;
    let label = measurements.display().to_string();
    let v = crate::validate::validate(&m, &label, &gpu, cal.as_ref())?;
    if a.json {
        out(&format!("{}\n", json::to_string(&v)?))?;
    } else if a.markdown {
        out(&markdown::validation(&v))?;
    } else {
        out(&text::validation(&v))?;
    }
    Ok(())
}

/// The GPU spec to use: `given`, else the one the driver-reported `device` name maps to.
fn gpu_name(given: Option<&str>, device: &str) -> Result<String> {
    match given {
        Some(g) => Ok(g.to_string()),
        None => spec::gpu_for_device(device)
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot tell the GPU spec of device `{device}`: pass --gpu"
                ))
            }),
    }
}

/// `roofline calibrate`.
pub fn calibrate(a: &CalibrateArgs) -> Result<()> {
    let report: crate::gpu::BenchReport = read_json(&a.from, "not a roofline-bench/1 report")?;
    let gpu = spec::load_gpu(&gpu_name(a.gpu.as_deref(), &report.device.name)?)?;
    if let Some(path) = &a.gemm_table {
        write_gemm_table(&report, &gpu, &a.from.display().to_string(), path)?;
    }
    let Some(out_path) = &a.out else {
        return Ok(());
    };
    let mut fit = crate::calibrate::fit(&report, &gpu)?;
    if let Some(path) = &a.torch {
        let baseline: serde_json::Value = read_json(path, "invalid JSON")?;
        crate::calibrate::add_torch_baseline(&mut fit, &baseline, &gpu)?;
    }
    if let Some(path) = &a.validation {
        let steps: serde_json::Value = read_json(path, "invalid JSON")?;
        match crate::calibrate::host_dispatch_from_steps(&steps) {
            Some((t, n)) => {
                fit.host_dispatch_s = Some(t);
                fit.host_dispatch_source = format!(
                    "median of host time per step (host_step_time_s where measured, else the step time) / kernels per step over the {n} host-bound eager configurations (GPU busy < {:.0}% of the step) of {}, timed without CUPTI attached from an earlier profile",
                    100.0 * crate::calibrate::HOST_BOUND_GPU_SHARE,
                    path.display()
                );
            }
            None => note!(
                "note: {} has no host-bound eager configuration timed without CUPTI attached \
                 from an earlier profile; host dispatch not calibrated",
                path.display()
            ),
        }
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    for d in &fit.dropped {
        note!("note: left out of the fit: {d}");
    }
    let from = a.from.display().to_string();
    let cal = crate::calibrate::calibration(&fit, &report, &gpu, &command, &from)?;
    let toml = toml::to_string(&cal)
        .map_err(|e| Error::Internal(format!("cannot write calibration: {e}")))?;
    let header = format!(
        "# Calibration of {} from `roofline bench` measurements (generated by `roofline calibrate`).\n\
         # Use with `roofline estimate --calibration {}`.\n\n",
        gpu.name,
        out_path.display()
    );
    files::write(out_path, (header + &toml).as_bytes())?;
    out(&text::calibration(&fit))?;
    note!("wrote {}", out_path.display());
    Ok(())
}

/// Writes the `[gemm_table]` of `gpu` from a bench report (`from` names it in the sources) to
/// `path`, with the left-out measurements as comments.
fn write_gemm_table(
    report: &crate::gpu::BenchReport,
    gpu: &spec::GpuSpec,
    from: &str,
    path: &Path,
) -> Result<()> {
    let (table, dropped) = crate::calibrate::gemm_table(report, gpu, from)?;
    let mut text = format!(
        "# Measured GEMM throughput of {} (generated by `roofline calibrate --gemm-table` from {from}).\n\
         # Paste into the GPU file (models/hardware/{}.toml), replacing any [gemm_table].\n",
        gpu.name, gpu.name
    );
    for d in &dropped {
        text += &format!("# left out: {d}\n");
    }
    text += &table.to_toml();
    files::write(path, text.as_bytes())?;
    note!(
        "wrote {} ({} points, {} left out)",
        path.display(),
        table.points.len(),
        dropped.len()
    );
    Ok(())
}

/// `roofline bench`.
pub fn bench(a: &BenchArgs) -> Result<()> {
    use crate::gpu;
    let suites = gpu::Suite::parse_list(&a.suite).map_err(Error::Invalid)?;
    let mut gemm_shapes: Vec<gpu::GemmShape> = Vec::new();
    for entry in &a.shapes {
        // MODEL:BATCH, or a model alone at --batch (a path may hold colons of its own).
        let (model, batch) = match entry.rsplit_once(':') {
            Some((m, b)) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
                let batch = crate::units::parse_count_u64(b)
                    .map_err(|e| Error::Invalid(format!("--shapes {entry}: batch `{b}`: {e}")))?;
                (m, batch)
            }
            _ => (entry.as_str(), a.batch),
        };
        for s in gpu::model_gemm_shapes(&spec::load_model(model)?, batch)? {
            if !gemm_shapes
                .iter()
                .any(|t| (t.m, t.n, t.k) == (s.m, s.n, s.k))
            {
                gemm_shapes.push(s);
            }
        }
    }
    let peaks = match &a.gpu {
        Some(g) => {
            let g = spec::load_gpu(g)?;
            Some(gpu::Peaks {
                bf16_tensor_flops: g.peak_flops.bf16_tensor.value,
                fp32_vector_flops: g.peak_flops.fp32_vector.value,
                hbm_bytes_per_s: g.memory.hbm_bandwidth.value,
            })
        }
        None => None,
    };
    if a.reps == 0 {
        return Err(Error::Invalid("--reps must be positive".into()));
    }
    let opts = gpu::BenchOptions {
        suites,
        gemm_shapes,
        reps: a.reps,
        out: a.out.clone(),
        peaks,
    };
    let report = gpu::run(&opts).map_err(|e| Error::Gpu(e.to_string()))?;
    out(&gpu::format_table(&report))?;
    if let Some(out) = &a.out {
        files::write(out, report.to_json().as_bytes())?;
        note!("wrote {}", out.display());
    }
    if let Some(path) = &a.gemm_table {
        let g = spec::load_gpu(&gpu_name(a.gpu.as_deref(), &report.device.name)?)?;
        let from = a
            .out
            .as_ref()
            .map_or("this run of roofline bench".to_string(), |p| {
                p.display().to_string()
            });
        write_gemm_table(&report, &g, &from, path)?;
    }
    Ok(())
}

/// The lower-case extension of `p`.
fn extension(p: &Path) -> Option<String> {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}
