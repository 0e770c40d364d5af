//! Checks of the charts themselves: PNG text rendering, label placement, axis ticks, the
//! memory-capacity line, the tornado's split and the sweep chart's limits.

use plotters::coord::Shift;
use plotters::prelude::*;
use roofline::plot::{render, DrawResult, Figure, Format};

/// A white canvas with one line of text at (10, 10).
struct Label(&'static str, u32);

impl Figure for Label {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            self.0,
            (10, 10),
            ("sans-serif", self.1 as f64).into_font(),
        ))
    }
}

/// The PNG decoded to grey levels (0 black, 255 white), row-major, with its width.
fn grey(png_bytes: &[u8]) -> (Vec<u8>, usize) {
    let mut dec = png::Decoder::new(png_bytes).read_info().unwrap();
    let mut buf = vec![0; dec.output_buffer_size()];
    let info = dec.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let px: Vec<u8> = buf[..info.buffer_size()]
        .chunks_exact(ch)
        .map(|p| ((p[0] as u32 + p[1] as u32 + p[2] as u32) / 3) as u8)
        .collect();
    (px, info.width as usize)
}

/// Glyphs of a rendered line: runs of columns holding dark pixels, each as (first column,
/// last column, top row, bottom row) of its dark pixels.
fn glyphs(px: &[u8], w: usize) -> Vec<(usize, usize, usize, usize)> {
    let h = px.len() / w;
    let dark = |x: usize, y: usize| px[y * w + x] < 200;
    let mut out: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut open = false;
    for x in 0..w {
        let rows: Vec<usize> = (0..h).filter(|&y| dark(x, y)).collect();
        match (rows.is_empty(), open) {
            (false, false) => {
                out.push((x, x, rows[0], *rows.last().unwrap()));
                open = true;
            }
            (false, true) => {
                let g = out.last_mut().unwrap();
                g.1 = x;
                g.2 = g.2.min(rows[0]);
                g.3 = g.3.max(*rows.last().unwrap());
            }
            (true, _) => open = false,
        }
    }
    out
}

#[test]
fn png_full_stop_sits_on_the_baseline() {
    // Digits sit on the baseline; the full stop's dark pixels must reach the same bottom row
    // (plotters' own bitmap text drew it a pixel or more higher, "9·5%", or merged it into the
    // next glyph).
    for (text, dot) in [("203.37", 3), ("9.5%", 1)] {
        for size in [13, 14, 16, 20] {
            let (px, w) = grey(&render(&Label(text, size), Format::Png, (200, 50)).unwrap());
            let g = glyphs(&px, w);
            assert_eq!(
                g.len(),
                text.chars().count(),
                "{text:?} at {size} px: every character a separate glyph: {g:?}"
            );
            let (digit, stop) = (g[0], g[dot]);
            assert!(
                stop.3 >= digit.3,
                "{text:?} at {size} px: the full stop ends at row {} above the baseline row {}",
                stop.3,
                digit.3
            );
            assert!(
                stop.2 > (digit.2 + digit.3) / 2,
                "{text:?} at {size} px: the full stop starts at row {}, in the upper half",
                stop.2
            );
        }
    }
}

#[test]
fn png_letters_are_evenly_spaced() {
    // "tim e", "b wd": the same pair repeated must advance by the same width (sub-pixel
    // positioning leaves one pixel of rounding) and no two letters may touch.
    for size in [13, 16, 22] {
        let text = "memememememe";
        let (px, w) = grey(&render(&Label(text, size), Format::Png, (400, 60)).unwrap());
        let g = glyphs(&px, w);
        assert_eq!(g.len(), text.len(), "separate glyphs at {size} px: {g:?}");
        let starts: Vec<usize> = g.iter().step_by(2).map(|x| x.0).collect();
        let steps: Vec<usize> = starts.windows(2).map(|p| p[1] - p[0]).collect();
        let (lo, hi) = (steps.iter().min().unwrap(), steps.iter().max().unwrap());
        assert!(hi - lo <= 1, "uneven advances {steps:?} at {size} px");
    }
}

/// The text of every `<text>` element of an SVG, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

fn flash(args: &[&str]) -> roofline::analysis::flash::FlashReport {
    roofline::analysis::flash::build(&roofline::cli::parse_scenario(args).unwrap()).unwrap()
}

#[test]
fn flash_speedups_only_where_both_fit() {
    // jit-b4 at batch 64: naive needs ~335 GiB per GPU from 2048 tokens on, more than an H200.
    let r = flash(&["--seq", "2048"]);
    let naive_at = |seq: u64| {
        r.rows
            .iter()
            .find(|x| x.seq == seq && x.attention == "naive")
            .unwrap()
            .clone()
    };
    let mut unfit_baselines = 0;
    for row in r.rows.iter().chain(&r.headline) {
        if row.error.is_some() {
            continue;
        }
        let naive = naive_at(row.seq);
        let both = row.fits == Some(true) && naive.fits == Some(true);
        assert_eq!(row.speedup_vs_naive.is_some(), both, "{row:?}");
        assert_eq!(row.speedup_note.is_some(), !both, "{row:?}");
        if naive.fits == Some(false) {
            unfit_baselines += 1;
            assert!(row.speedup_note.as_deref().unwrap().contains("fit"));
        }
        assert_eq!(
            row.fits,
            Some(row.memory_bytes.unwrap() <= r.capacity_bytes),
            "{row:?}"
        );
    }
    assert!(unfit_baselines >= 5, "naive does not fit at 2048 and above");
    let md = roofline::export::markdown::flash_report(&r, None);
    assert!(md.contains("n/a (naive does not fit)"), "{md}");
    assert!(md.contains("**does not fit**"));
    assert!(
        !md.contains("| 2.39x |"),
        "the speedup against a baseline that does not fit"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["headline"][3]["speedup_vs_naive"],
        serde_json::Value::Null
    );
    assert_eq!(json["headline"][0]["fits"], false);
}

#[test]
fn flash_report_where_nothing_fits_gives_no_speedup() {
    // llama3-70b on one H200 at batch 64: not one sample fits, whatever the attention.
    let r = flash(&["--model", "llama3-70b", "--gpus", "1"]);
    let evaluated: Vec<_> = r.rows.iter().filter(|x| x.error.is_none()).collect();
    assert!(!evaluated.is_empty());
    for row in evaluated {
        assert_eq!(row.max_batch, Some(0), "{row:?}");
        assert_eq!(row.fits, Some(false));
        assert_eq!(row.speedup_vs_naive, None, "{row:?}");
    }
}

#[test]
fn flash_chart_shows_the_memory_capacity_on_round_ticks() {
    let r = flash(&["--seq", "2048"]);
    let chart = roofline::plot::flash::FlashChart::new(&r);
    assert!(!chart.title.contains("@seq"), "{}", chart.title);
    assert!(chart.title.contains("128-8192"), "{}", chart.title);
    let svg = String::from_utf8(render(&chart, Format::Svg, (1200, 800)).unwrap()).unwrap();
    let texts = svg_texts(&svg);
    let capacity = roofline::units::binary_bytes(roofline::units::Bytes(r.capacity_bytes));
    assert!(
        texts.iter().any(|t| *t == format!("GPU memory {capacity}")),
        "{texts:?}"
    );
    // Every memory tick is a power of two of MiB, GiB or TiB: no 9.31 GiB.
    let ticks: Vec<&String> = texts
        .iter()
        .filter(|t| t.ends_with("iB") && !t.starts_with("GPU"))
        .collect();
    assert!(ticks.len() >= 4, "{texts:?}");
    for t in ticks {
        let n: u64 = t.split(' ').next().unwrap().parse().unwrap_or(3);
        assert!(n.is_power_of_two(), "memory tick {t}");
    }
    // The legend names every implementation once, outside the panels, with the hollow marker.
    for a in ["naive", "sdpa-math", "unfused", "flash2", "flash3"] {
        assert_eq!(texts.iter().filter(|t| *t == a).count(), 1, "{a}");
    }
    assert!(texts.iter().any(|t| t.starts_with("hollow: does not fit")));
}

fn sensitivity(args: &[&str]) -> roofline::analysis::sensitivity::Sensitivity {
    roofline::analysis::sensitivity::analyse(&roofline::cli::parse_scenario(args).unwrap()).unwrap()
}

#[test]
fn tornado_separates_choices_from_uncertain_figures_in_words() {
    use roofline::analysis::sensitivity::Kind;
    let s = sensitivity(&[]);
    assert!(s.fits && s.warning.is_none());
    let t = roofline::plot::tornado::Tornado::new(&s);
    let choices: Vec<&str> = t.choices.iter().map(|b| b.label.as_str()).collect();
    for c in [
        "attention implementation",
        "execution mode",
        "batch per GPU",
        "sequence length",
    ] {
        assert!(
            choices.iter().any(|l| l.starts_with(c)),
            "{c} in {choices:?}"
        );
    }
    // Every effect is one kind or the other, and the choices are exactly the four settings.
    let n_choice = s.effects.iter().filter(|e| e.kind == Kind::Choice).count();
    assert_eq!(n_choice, 4);
    assert!(t
        .uncertain
        .iter()
        .any(|b| b.label == "HBM bandwidth 3.84–5.76 TB/s"));
    // No raw field names, no scientific notation, no negligible rows.
    for b in t.choices.iter().chain(&t.uncertain) {
        assert!(
            !b.label.contains("memory.") && !b.label.contains("achievable."),
            "{b:?}"
        );
        assert!(!b.label.contains("e12") && !b.low.0.contains("e-"), "{b:?}");
        assert!(
            b.low.1.abs().max(b.high.1.abs()) >= roofline::analysis::sensitivity::NEGLIGIBLE,
            "negligible row drawn: {b:?}"
        );
    }
    let zero = s.effects.iter().filter(|e| e.negligible()).count();
    assert!(zero > 5, "the planned run has many figures without effect");
    assert!(t.left_out >= zero);
    let svg = String::from_utf8(render(&t, Format::Svg, (1200, 800)).unwrap()).unwrap();
    let texts = svg_texts(&svg);
    assert!(texts.iter().any(|x| x.starts_with("What you choose")));
    assert!(texts.iter().any(|x| x.starts_with("What is uncertain")));
    assert!(
        texts.iter().any(|x| x == "HBM bandwidth 3.84–5.76 TB/s"),
        "{texts:?}"
    );
    assert!(!texts
        .iter()
        .any(|x| x.contains("l2_bytes") || x.contains("e12")));
    // The text output has the same split and leaves the zero rows out by name.
    let text = roofline::export::text::sensitivity(&s);
    let (choose, uncertain) = text.split_once("What is uncertain").unwrap();
    assert!(choose.contains("What you choose") && choose.contains("attention implementation"));
    assert!(!choose.contains("HBM bandwidth") && uncertain.contains("HBM bandwidth"));
    assert!(uncertain.contains("change the times by less than 0.1%"));
}

#[test]
fn sensitivity_warns_when_the_baseline_does_not_fit() {
    let s = sensitivity(&["--seq", "2048"]);
    assert!(!s.fits);
    assert!(s.memory_per_gpu_bytes > s.capacity_bytes);
    let w = s.warning.clone().unwrap();
    assert!(w.contains("does not fit"), "{w}");
    assert!(
        roofline::export::text::sensitivity(&s).starts_with("WARNING: the baseline does not fit")
    );
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["fits"], false);
    assert!(json["warning"].as_str().unwrap().contains("does not fit"));
    let t = roofline::plot::tornado::Tornado::new(&s);
    let svg = String::from_utf8(render(&t, Format::Svg, (1200, 800)).unwrap()).unwrap();
    assert!(svg_texts(&svg)
        .iter()
        .any(|x| x.starts_with("Warning: the baseline does not fit")));
}

fn sweep_chart(
    base: &[&str],
    vary: &[&str],
    metric: &str,
) -> (
    roofline::plot::sweep::SweepChart,
    Vec<roofline::analysis::sweep::Row>,
) {
    use roofline::analysis::sweep::{collect, parse_vary};
    let spec = roofline::cli::parse_scenario_spec(base).unwrap();
    let dims: Vec<_> = vary.iter().map(|v| parse_vary(v).unwrap()).collect();
    let r = collect(&spec, &dims).unwrap();
    let values: Vec<Option<f64>> = r.rows.iter().map(|x| x.metric(metric)).collect();
    let fits: Vec<Option<bool>> = r.rows.iter().map(|x| x.fits).collect();
    let chart =
        roofline::plot::sweep::SweepChart::new(&r.vary, &values, &fits, metric, &spec).unwrap();
    (chart, r.rows)
}

#[test]
fn sweep_chart_marks_what_does_not_fit_and_titles_only_what_is_fixed() {
    let (chart, rows) = sweep_chart(
        &[],
        &[
            "batch=64..1024",
            "attention=naive,flash2",
            "gpu=h100-sxm,h200-sxm",
        ],
        "step_time_s",
    );
    assert!(chart.warning.is_none());
    assert_eq!(chart.lines.len(), 4);
    let unfit = rows.iter().filter(|r| r.fits == Some(false)).count();
    assert!(unfit > 0, "naive at batch 1024 does not fit");
    let hollow: usize = chart
        .lines
        .iter()
        .map(|l| l.1.iter().filter(|p| p.0.is_some() && !p.1).count())
        .sum();
    assert_eq!(hollow, unfit);
    // The GPU varies: the title names neither it nor any other varied setting.
    assert!(!chart.title.contains("h200-sxm") && !chart.title.contains("batch 64"));
    assert!(chart.title.starts_with("step time") && chart.title.contains("jit-b4"));
    let svg = String::from_utf8(render(&chart, Format::Svg, (1200, 800)).unwrap()).unwrap();
    let texts = svg_texts(&svg);
    assert!(texts.iter().any(|t| t.starts_with("hollow: does not fit")));
    assert!(
        !texts.iter().any(|t| t == "step_time_s"),
        "y label in words"
    );
    assert!(texts.iter().any(|t| t == "step time (optimizer step)"));
    // Hollow markers: white-filled circles of radius 5, one per point that does not fit
    // (line style 0) plus the legend's.
    let white = svg.matches(r##"r="5" opacity="1" fill="#FFFFFF""##).count();
    let hollow_circles: usize = chart
        .lines
        .iter()
        .enumerate()
        .filter(|(i, _)| i % chart.per_colour % 3 == 0)
        .map(|(_, l)| l.1.iter().filter(|p| p.0.is_some() && !p.1).count())
        .sum();
    assert_eq!(white, hollow_circles + 1);
}

#[test]
fn sweep_chart_with_too_many_lines_draws_the_best_and_says_what_to_reduce() {
    use roofline::plot::sweep::MAX_LINES;
    let (chart, rows) = sweep_chart(
        &[],
        &[
            "batch=16..256",
            "attention=naive,sdpa-math,unfused,flash2,flash3",
            "mode=eager,compiled,graphs",
        ],
        "step_time_s",
    );
    let per_x = 5 * 3;
    assert!(per_x > MAX_LINES);
    assert_eq!(chart.lines.len(), 1, "aggregated to the best per x");
    let w = chart.warning.clone().unwrap();
    assert!(
        w.contains("attention (5 values)") && w.contains("mode (3 values)"),
        "{w}"
    );
    // The best per x is the lowest step time among the configurations that fit.
    for (i, (best, _)) in chart.lines[0].1.iter().enumerate() {
        let fitting = rows[i * per_x..(i + 1) * per_x]
            .iter()
            .filter(|r| r.fits == Some(true))
            .filter_map(|r| r.step_time_s)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(best.unwrap_or(f64::INFINITY), fitting);
    }
    let band = chart.band.as_ref().unwrap();
    assert!(band.iter().flatten().all(|(lo, hi)| lo <= hi));
    render(&chart, Format::Png, (1200, 800)).unwrap();
}

#[test]
fn sweep_plot_warns_on_stderr_when_it_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, svg) = (dir.path().join("s.csv"), dir.path().join("s.svg"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args([
            "sweep",
            "--vary",
            "batch=16..64",
            "--vary",
            "attention=naive,sdpa-math,unfused,flash2,flash3",
            "--vary",
            "mode=eager,compiled,graphs",
            "--out",
            csv.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: 15 lines are more than a chart can show"),
        "{err}"
    );
    assert!(err.contains("vary fewer values of attention (5 values), mode (3 values)"));
    let texts = svg_texts(&std::fs::read_to_string(&svg).unwrap());
    assert!(texts
        .iter()
        .any(|t| t.starts_with("15 configurations per x")));
}

/// Every label of a roofline layout is inside the plot and touches no other label, no marker
/// and no roof line; returns the label texts.
fn check_roofline_layout(chart: &roofline::analysis::roofline::RooflineChart) -> Vec<String> {
    let l = chart.layout((1200, 800)).unwrap();
    let b = l.bounds.unwrap();
    for (i, p) in l.labels.iter().enumerate() {
        assert!(p.rect.inside(&b), "{:?} outside the plot", p.text);
        for q in &l.labels[..i] {
            assert!(
                !p.rect.overlaps(&q.rect),
                "{:?} overlaps {:?}",
                p.text,
                q.text
            );
        }
        for m in &l.markers {
            assert!(!p.rect.overlaps(m), "{:?} covers a marker at {m:?}", p.text);
        }
        for s in &l.segments {
            assert!(
                !p.rect.crosses(s.0, s.1),
                "{:?} crosses a roof line",
                p.text
            );
        }
    }
    assert!(l.markers.len() >= chart.points.len());
    assert_eq!(l.segments.len(), 2 + 2 * chart.roofs.len());
    l.labels.iter().map(|p| p.text.clone()).collect()
}

#[test]
fn roofline_labels_do_not_collide_and_name_every_roof() {
    for gpu in ["h200-sxm", "h100-sxm"] {
        let s = roofline::cli::parse_scenario(&["--gpu", gpu]).unwrap();
        let chart = roofline::analysis::roofline::chart(&s, Vec::new()).unwrap();
        let texts = check_roofline_layout(&chart);
        for r in &chart.roofs {
            assert!(
                texts
                    .iter()
                    .any(|t| t.starts_with(&format!("{}: peak", r.name)) && t.contains("ridge")),
                "{gpu}: no label for the {} roof: {texts:?}",
                r.name
            );
        }
        assert!(texts.iter().any(|t| t.starts_with("HBM ")), "{texts:?}");
        // The costliest op is named; no op under the threshold is.
        let top = chart
            .points
            .iter()
            .max_by(|a, b| a.share.total_cmp(&b.share))
            .unwrap();
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with(&format!("{} ", top.name))),
            "{texts:?}"
        );
        for p in &chart.points {
            if p.share < roofline::plot::roofline::MIN_LABEL_SHARE {
                assert!(!texts.iter().any(|t| t.starts_with(&format!("{} ", p.name))));
            }
        }
    }
}

#[test]
fn roofline_measured_kernels_are_named_by_shape_not_by_crowded_labels() {
    let bench = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/reports/measurements/2026-11-27-h100-sxm/bench.json"
    );
    let measured =
        roofline::analysis::roofline::load_measured(std::path::Path::new(bench)).unwrap();
    let s = roofline::cli::parse_scenario(&["--gpu", "h100-sxm"]).unwrap();
    let chart = roofline::analysis::roofline::chart(&s, measured).unwrap();
    assert!(chart.measured.len() > 100);
    let texts = check_roofline_layout(&chart);
    assert!(
        !texts.iter().any(|t| t.starts_with("measured ")),
        "{texts:?}"
    );
    let names = chart.measured_names();
    let svg = String::from_utf8(render(&chart, Format::Svg, (1200, 800)).unwrap()).unwrap();
    let svg_text = svg_texts(&svg);
    let shapes = roofline::plot::roofline::MEASURED_SHAPES;
    for n in names.iter().take(shapes) {
        assert!(svg_text.iter().any(|t| t == n), "legend lacks {n}");
    }
    if names.len() > shapes {
        let other = format!("{} other kernels", names.len() - shapes);
        assert!(svg_text.contains(&other), "{svg_text:?}");
    }
    // The three GEMM kernels with 33 sizes each come first.
    assert!(names[..3].iter().all(|n| n.contains("gemm")), "{names:?}");
}
