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
