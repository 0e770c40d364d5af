//! Checks of the analysis layer: charts, sweeps, sensitivity, intervals and committed reports.

use roofline::analysis::summary::EstimateReport;
use roofline::analysis::sweep::{collect, parse_vary};
use roofline::cli::{parse_scenario, parse_scenario_spec};
use roofline::estimate::Estimator;
use roofline::plot::{render, Format};
use std::path::Path;

/// Minimal XML well-formedness check: balanced and properly nested tags, quoted attributes,
/// no raw `<` or bare `&` in text or attribute values, exactly one root element.
fn check_xml(s: &str) -> Result<(), String> {
    fn check_text(t: &str) -> Result<(), String> {
        let mut rest = t;
        while let Some(i) = rest.find('&') {
            let after = &rest[i + 1..];
            let end = after
                .find(';')
                .ok_or_else(|| format!("bare & in {:?}", &rest[i..rest.len().min(i + 20)]))?;
            let name = &after[..end];
            let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                || (name.starts_with('#')
                    && name.len() > 1
                    && name[1..]
                        .trim_start_matches('x')
                        .chars()
                        .all(|c| c.is_ascii_hexdigit()));
            if !ok {
                return Err(format!("bad entity &{name};"));
            }
            rest = &after[end + 1..];
        }
        Ok(())
    }
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {:?}", text.trim()));
        }
        check_text(text)?;
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("<?") {
            let end = r.find("?>").ok_or("unterminated <?")?;
            rest = &r[end + 2..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").ok_or("unterminated comment")?;
            rest = &r[end + 3..];
            continue;
        }
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .ok_or_else(|| format!("closing </{name}> without an open tag"))?;
            if open != name.trim() {
                return Err(format!("</{}> closes <{open}>", name.trim()));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_:.".contains(c))
        {
            return Err(format!("bad tag name {name:?}"));
        }
        let mut attrs = body[name.len()..].trim();
        while !attrs.is_empty() {
            let eq = attrs
                .find('=')
                .ok_or_else(|| format!("attribute without value in <{name} {attrs}>"))?;
            let q = attrs[eq + 1..].chars().next().ok_or("missing quote")?;
            if q != '"' && q != '\'' {
                return Err(format!("unquoted attribute in <{name}>"));
            }
            let val_start = eq + 2;
            let close = attrs[val_start..].find(q).ok_or("unterminated attribute")? + val_start;
            let value = &attrs[val_start..close];
            if value.contains('<') {
                return Err("< in attribute".into());
            }
            check_text(value)?;
            attrs = attrs[close + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name);
        }
    }
    if !rest.trim().is_empty() {
        return Err("text after the root".into());
    }
    if !stack.is_empty() {
        return Err(format!("unclosed tags: {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

#[test]
fn xml_checker_rejects_broken_documents() {
    assert!(check_xml("<svg a=\"1\"><g><text>x &amp; y</text></g></svg>").is_ok());
    assert!(check_xml("<svg><g></svg>").is_err());
    assert!(check_xml("<svg><text>a & b</text></svg>").is_err());
    assert!(check_xml("<svg a=1></svg>").is_err());
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn roofline_chart_svg_is_xml_and_png_has_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench.json");
    std::fs::write(
        &bench,
        r#"{"schema":"roofline-bench/1","results":[
            {"kernel":"gemm 8192^3 <bf16> & co","flops":1.1e12,"bytes":4.0e8,"time_s":1.4e-3,"correct":true},
            {"kernel":"copy","flops":1.0,"bytes":1.0e9,"time_s":3.0e-4,"correct":true},
            {"kernel":"broken","flops":1.0e9,"bytes":1.0e6,"time_s":1.0e-6,"correct":false}]}"#,
    )
    .unwrap();
    let s = parse_scenario(&["--attention", "flash2", "--mode", "compiled"]).unwrap();
    let measured = roofline::analysis::roofline::load_measured(&bench).unwrap();
    let chart = roofline::analysis::roofline::chart(&s, measured).unwrap();
    assert_eq!(chart.measured.len(), 2, "the failed kernel is left out");
    assert!(chart.points.len() > 20);
    assert!(chart.roofs.iter().any(|r| r.name == "bf16 tensor"));
    let text = String::from_utf8(render(&chart, Format::Svg, (1200, 800)).unwrap()).unwrap();
    check_xml(&text).unwrap();
    assert!(text.contains("gemm 8192^3 &lt;bf16&gt; &amp; co"));
    let png = render(&chart, Format::Png, (1200, 800)).unwrap();
    assert_eq!(png_size(&png), (1200, 800));
    let bad =
        roofline::plot::render_for(&chart, &dir.path().join("r.jpg"), (1200, 800)).unwrap_err();
    assert_eq!(bad.exit_code(), 2);
}

#[test]
fn other_charts_render() {
    let base = parse_scenario(&[]).unwrap();
    let r = roofline::analysis::flash::build(&base).unwrap();
    let chart = roofline::plot::flash::FlashChart::new(&r);
    check_xml(&String::from_utf8(render(&chart, Format::Svg, (1200, 800)).unwrap()).unwrap())
        .unwrap();
    assert_eq!(
        png_size(&render(&chart, Format::Png, (1200, 800)).unwrap()),
        (1200, 800)
    );
    let s = roofline::analysis::sensitivity::analyse(&base).unwrap();
    let t = render(
        &roofline::plot::tornado::Tornado::new(&s),
        Format::Svg,
        (1200, 800),
    )
    .unwrap();
    check_xml(&String::from_utf8(t).unwrap()).unwrap();
}

#[test]
fn sweep_has_one_row_per_configuration_and_matches_estimate() {
    let base = parse_scenario_spec(&[]).unwrap();
    let dims = vec![
        parse_vary("batch=8..64").unwrap(),
        parse_vary("seq=128,256,512").unwrap(),
        parse_vary("attention=naive,flash2,flash3").unwrap(),
        parse_vary("gpu=h200-sxm,b200").unwrap(),
    ];
    let r = collect(&base, &dims).unwrap();
    assert_eq!(r.configurations, 4 * 3 * 3 * 2);
    assert_eq!(r.rows.len(), 4 * 3 * 3 * 2);
    // seq 256 is no square patch grid for jit-b4; flash3 has no data for b200: error rows.
    let bad_seq = r.rows.iter().filter(|x| x.seq == Some(256)).count();
    assert!(r
        .rows
        .iter()
        .filter(|x| x.seq == Some(256))
        .all(|x| x.error.is_some() && x.step_time_s.is_none()));
    assert_eq!(bad_seq, 4 * 3 * 2);
    assert!(r
        .rows
        .iter()
        .any(|x| x.gpu == "b200" && x.attention == "flash3" && x.error.is_some()));
    // The same configuration gives the same numbers as `estimate --json`.
    let row = r
        .rows
        .iter()
        .find(|x| {
            x.batch_per_gpu == 32
                && x.seq == Some(512)
                && x.attention == "flash2"
                && x.gpu == "h200-sxm"
        })
        .unwrap();
    let s = parse_scenario(&["--batch", "32", "--seq", "512", "--attention", "flash2"]).unwrap();
    let e = EstimateReport::new(
        &s,
        &Estimator::new()
            .estimate(&s.model, &s.machine, &s.run)
            .unwrap(),
    );
    let json = serde_json::to_value(&e).unwrap();
    let rowv = serde_json::to_value(row).unwrap();
    for k in [
        "step_time_s",
        "forward_s",
        "backward_s",
        "samples_per_s",
        "tokens_per_s",
        "mfu",
        "hfu",
        "memory_per_gpu_bytes",
        "max_batch",
        "fits",
    ] {
        assert_eq!(rowv[k], json[k], "{k}");
    }
    assert_eq!(row.model, e.model);
    let mut csv = roofline::export::csv::sweep_header();
    for row in &r.rows {
        csv += &roofline::export::csv::sweep_row(row).unwrap();
    }
    assert_eq!(csv.lines().count(), 1 + r.rows.len());
}

#[test]
fn bad_vary_specs_are_clear_errors() {
    let e = parse_vary("btach=8..64").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("did you mean `batch`"), "{e}");
    assert!(parse_vary("batch")
        .unwrap_err()
        .to_string()
        .contains("NAME=SPEC"));
    assert!(parse_vary("batch=64..8").is_err());
    assert!(parse_vary("attention=naive..flash2").is_err());
    assert!(parse_vary("attention=flsh2")
        .unwrap_err()
        .to_string()
        .contains("flash2"));
    assert_eq!(
        parse_vary("seq=256..8192").unwrap().nums,
        vec![256, 512, 1024, 2048, 4096, 8192]
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args([
            "sweep",
            "--vary",
            "batch=8..16",
            "--metric",
            "mfuu",
            "--out",
            "/nonexistent/x.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `mfu`"));
}

fn peak_elasticity(args: &[&str]) -> f64 {
    let s = roofline::analysis::sensitivity::analyse(&parse_scenario(args).unwrap()).unwrap();
    let e = s
        .effects
        .iter()
        .find(|e| e.parameter.starts_with("peak_flops"))
        .unwrap();
    e.step_elasticity.unwrap()
}

#[test]
fn elasticity_to_peak_flops_is_between_minus_one_and_zero() {
    let planned = peak_elasticity(&[]);
    assert!((-1.0..=0.0).contains(&planned), "{planned}");
    // Nearly all compute-bound: a 7B GEMM-dominated model with fp32 GEMMs and fp32 (math SDPA)
    // attention on the vector units, CUDA graphs (no host dispatch), one GPU (no communication).
    let args = [
        "--model",
        "llama2-7b",
        "--precision",
        "fp32",
        "--mode",
        "graphs",
        "--gpus",
        "1",
        "--batch",
        "8",
        "--attention",
        "sdpa-math",
    ];
    let s = parse_scenario(&args).unwrap();
    let e = Estimator::new()
        .estimate(&s.model, &s.machine, &s.run)
        .unwrap();
    assert!(
        e.by_bound.compute.0 / e.step_time.0 > 0.95,
        "compute-bound share {}",
        e.by_bound.compute.0 / e.step_time.0
    );
    let cb = peak_elasticity(&args);
    assert!((cb + 1.0).abs() < 0.05, "{cb}");
}

#[test]
fn interval_brackets_the_estimate_and_is_reproducible() {
    let a = parse_scenario(&[]).unwrap();
    let i = roofline::analysis::uncertainty::step_interval(&a).unwrap();
    let [lo, hi] = i.step_time_interval_s;
    assert!(
        lo <= i.step_time_s && i.step_time_s <= hi && lo < hi,
        "{lo} {} {hi}",
        i.step_time_s
    );
    assert_eq!(
        roofline::analysis::uncertainty::step_interval(&a)
            .unwrap()
            .step_time_interval_s,
        [lo, hi]
    );
    assert!(roofline::export::text::interval(&i).contains("90%"));
}

#[test]
fn committed_reports_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
    for (name, text) in roofline::reports::markdown_files().unwrap() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == text,
            "reports/{name} is not what the current code generates; run `cargo run -- report --out reports` and commit"
        );
    }
}

#[test]
fn the_example_plan_runs_the_embedded_defaults() {
    let plan = roofline::analysis::audit::plan::Plan::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plans/jit-b4-8xh200.toml"),
    )
    .unwrap();
    assert_eq!(plan.run, roofline::scenario::ScenarioSpec::default());
}

#[test]
fn a_measured_host_time_is_compared_with_the_predicted_host_dispatch() {
    use roofline::validate::{validate, Measurements, H100_MEASUREMENTS};
    let (path, text) = H100_MEASUREMENTS;
    let mut doc: serde_json::Value = serde_json::from_str(text).unwrap();
    // configs[1] is jit-b4 batch 8, flash2, eager: give it a host time as measure.py writes it.
    assert_eq!(doc["configs"][1]["attention"], "flash2");
    doc["configs"][1]["host_step_time_s"] = serde_json::json!(0.0655);
    let m: Measurements = serde_json::from_value(doc.clone()).unwrap();
    m.check(path).unwrap();
    let v = validate(&m, path, "h100-sxm", None).unwrap();
    let (measured, predicted) = v.rows[1].host.unwrap();
    assert_eq!(measured, 0.0655);
    // Eager: one host dispatch per kernel, 10 us each in the h100-sxm file.
    let (_, kernels) = v.rows[1].kernels.unwrap();
    assert!(
        (predicted - kernels * 10e-6).abs() < 1e-9,
        "{predicted} {kernels}"
    );
    assert!(v.rows[0].host.is_none());
    let out = roofline::export::text::validation(&v);
    assert!(out.contains("host ms") && out.contains("65.50/"), "{out}");
    // A bad value is named.
    doc["configs"][1]["host_step_time_s"] = serde_json::json!(-1.0);
    let bad: Measurements = serde_json::from_value(doc).unwrap();
    let err = bad.check(path).unwrap_err().to_string();
    assert!(
        err.contains("host_step_time_s") && err.contains("-1"),
        "{err}"
    );
}
