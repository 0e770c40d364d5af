//! Charts, one file per kind: the roofline chart of a step's ops ([`roofline`]), sweep line
//! charts ([`sweep`]), sensitivity tornado charts ([`tornado`]) and the FlashAttention report
//! chart ([`flash`]).
//!
//! Drawn with plotters into bytes ([`render`]); [`crate::files`] writes them. The format follows
//! the file extension: `.svg` (vector) or `.png` (bitmap). A PNG is the SVG rasterized by resvg,
//! whose text engine shapes the labels. Text is set in DejaVu Sans embedded in the binary
//! (assets/DejaVuSans.ttf, Bitstream Vera license, see assets/LICENSE-DejaVuSans.txt): plotters
//! measures labels with it (registered once with `plotters::style::register_font`) and resvg
//! draws them with it, so no system font configuration is needed.

pub mod flash;
pub mod roofline;
pub mod sweep;
pub mod tornado;

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// The embedded font.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Default chart size in pixels (readable as a 1200x800 PNG).
pub const SIZE: (u32, u32) = (1200, 800);

/// Result of drawing on a backend.
pub type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A chart that can be drawn on any plotters backend.
pub trait Figure {
    /// Draws the whole chart on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Registers the embedded font under plotters' `sans-serif` family (idempotent).
pub fn register_font() {
    REGISTER.call_once(|| {
        // The embedded bytes are a valid TrueType font; a failure here would be a build defect,
        // and drawing then reports the missing font as an error instead of panicking.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Output format chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics.
    Svg,
    /// Portable network graphics.
    Png,
}

impl Format {
    /// The format of `path` from its extension; an error for anything but .svg and .png.
    pub fn of(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(Error::Invalid(format!(
                "chart file {} must end in .svg or .png (the extension picks the format)",
                path.display()
            ))),
        }
    }
}

/// Draws `fig` at `size` pixels as a file of `format`: SVG text or PNG bytes.
pub fn render(fig: &impl Figure, format: Format, size: (u32, u32)) -> Result<Vec<u8>> {
    register_font();
    let fail = |e: String| Error::Internal(format!("cannot draw the chart: {e}"));
    match format {
        Format::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
                fig.draw(&root).map_err(|e| fail(e.to_string()))?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            Ok(text.into_bytes())
        }
        Format::Png => {
            let svg = render(fig, Format::Svg, size)?;
            rasterize(&svg, size).map_err(fail)
        }
    }
}

/// The font database of PNG rendering: only the embedded font, which is every generic family,
/// so that a PNG looks the same on every machine.
fn font_db() -> std::sync::Arc<resvg::usvg::fontdb::Database> {
    static DB: std::sync::OnceLock<std::sync::Arc<resvg::usvg::fontdb::Database>> =
        std::sync::OnceLock::new();
    DB.get_or_init(|| {
        let mut db = resvg::usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        let family = db
            .faces()
            .next()
            .and_then(|f| f.families.first().map(|(name, _)| name.clone()))
            .unwrap_or_else(|| "DejaVu Sans".to_string());
        db.set_sans_serif_family(family.clone());
        db.set_serif_family(family.clone());
        db.set_monospace_family(family);
        std::sync::Arc::new(db)
    })
    .clone()
}

/// An SVG drawn by [`render`] as PNG bytes (8-bit RGB on white), rasterized by resvg: text is
/// shaped by rustybuzz with the embedded font's metrics and kerning, so full stops sit on the
/// baseline and letters are evenly spaced (plotters' own bitmap text path did neither).
fn rasterize(svg: &[u8], size: (u32, u32)) -> std::result::Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let opt = usvg::Options {
        fontdb: font_db(),
        font_family: "DejaVu Sans".to_string(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_data(svg, &opt).map_err(|e| e.to_string())?;
    let (w, h) = size;
    let mut pixmap =
        tiny_skia::Pixmap::new(w, h).ok_or_else(|| format!("no {w}x{h} pixel buffer"))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    let sx = w as f32 / tree.size().width();
    let sy = h as f32 / tree.size().height();
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(sx, sy),
        &mut pixmap.as_mut(),
    );
    // Opaque after the white fill, so premultiplied RGBA is plain RGBA.
    let rgb: Vec<u8> = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut wr| wr.write_image_data(&rgb))
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// [`render`] in the format `path`'s extension names: the bytes of the file to write there.
pub fn render_for(fig: &impl Figure, path: &Path, size: (u32, u32)) -> Result<Vec<u8>> {
    render(fig, Format::of(path)?, size)
}

/// Colour of an op class (colour-blind-safe Okabe-Ito palette).
pub fn class_color(c: crate::graph::OpClass) -> RGBColor {
    use crate::graph::OpClass;
    match c {
        OpClass::Gemm => RGBColor(0, 114, 178),
        OpClass::Attention => RGBColor(213, 94, 0),
        OpClass::Normalization => RGBColor(0, 158, 115),
        OpClass::Elementwise => RGBColor(204, 121, 167),
        OpClass::Optimizer => RGBColor(230, 159, 0),
    }
}

/// A palette for line series (Okabe-Ito, then greys).
pub fn series_color(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(120, 120, 120),
        RGBColor(0, 0, 0),
    ];
    P[i % P.len()]
}

/// Formats a number with an SI prefix and three significant digits at most, trailing zeros
/// dropped (e.g. 1T, 782T, 4.3T, 64, 0.5).
pub fn si_label(v: f64) -> String {
    const P: [(f64, &str); 6] = [
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ];
    let (scale, prefix) = P
        .iter()
        .find(|(s, _)| v.abs() >= *s)
        .copied()
        .unwrap_or((1.0, ""));
    let x = v / scale;
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{x:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{prefix}")
}

/// Powers of ten (or of two when `base2`) spanning `[lo, hi]`: tick positions of a log axis.
pub fn log_ticks(lo: f64, hi: f64, base2: bool) -> Vec<f64> {
    let b: f64 = if base2 { 2.0 } else { 10.0 };
    let mut v = Vec::new();
    if !(lo > 0.0 && hi >= lo) {
        return v;
    }
    let mut e = lo.log(b).floor() as i32;
    loop {
        let x = b.powi(e);
        if x > hi * (1.0 + 1e-9) {
            break;
        }
        if x >= lo * (1.0 - 1e-9) {
            v.push(x);
        }
        e += 1;
    }
    v
}

/// Marker shapes of the charts.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Circle of radius r.
    Circle,
    /// Square of half-side r.
    Square,
    /// Triangle pointing up, r above and 2r/3 below the centre.
    Triangle,
    /// Diamond of half-diagonal r.
    Diamond,
}

/// Draws marker `shape` of size `r` at `at`, filled with `fill`, outlined with `edge`.
pub fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    shape: Shape,
    at: (i32, i32),
    r: i32,
    fill: ShapeStyle,
    edge: ShapeStyle,
) -> DrawResult<DB> {
    let (x, y) = at;
    let pts = match shape {
        Shape::Circle => {
            area.draw(&Circle::new(at, r, fill))?;
            return area.draw(&Circle::new(at, r, edge));
        }
        Shape::Square => vec![
            (x - r, y - r),
            (x + r, y - r),
            (x + r, y + r),
            (x - r, y + r),
        ],
        Shape::Triangle => vec![(x, y - r), (x + r, y + r * 2 / 3), (x - r, y + r * 2 / 3)],
        Shape::Diamond => vec![(x, y - r), (x + r, y), (x, y + r), (x - r, y)],
    };
    area.draw(&Polygon::new(pts.clone(), fill))?;
    let mut closed = pts;
    closed.push(closed[0]);
    area.draw(&PathElement::new(closed, edge))
}
