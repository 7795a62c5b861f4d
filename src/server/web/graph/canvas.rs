//! What a graph is drawn with: the few operations graphite-web's cairo
//! calls need (rectangles, stroked and filled paths, text), each output
//! format one implementation (`raster` for PNG, `svg` for SVG).

use super::font::Style;

/// A colour with alpha, each channel 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Color {
    pub r: f64,
    pub g: f64,
    pub b: f64,
    pub a: f64,
}

impl Color {
    pub const fn rgb(r: u8, g: u8, b: u8) -> Color {
        Color {
            r: r as f64 / 255.0,
            g: g as f64 / 255.0,
            b: b as f64 / 255.0,
            a: 1.0,
        }
    }

    pub fn with_alpha(self, a: f64) -> Color {
        Color {
            a: a.clamp(0.0, 1.0),
            ..self
        }
    }

    /// 8-bit channels, rounded.
    pub fn rgba8(&self) -> [u8; 4] {
        let c = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        [c(self.r), c(self.g), c(self.b), c(self.a)]
    }
}

/// A coordinate a rasteriser can take: a value far off the image (such as
/// an infinite one) is kept far off, not dropped with its whole path.
fn finite(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-1e6, 1e6)
    }
}

/// A path: subpaths of straight segments (all a graph needs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Path {
    pub segs: Vec<Seg>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seg {
    Move(f64, f64),
    Line(f64, f64),
    Close,
}

impl Path {
    pub fn new() -> Path {
        Path::default()
    }
    pub fn move_to(&mut self, x: f64, y: f64) {
        self.segs.push(Seg::Move(finite(x), finite(y)));
    }
    pub fn line_to(&mut self, x: f64, y: f64) {
        self.segs.push(Seg::Line(finite(x), finite(y)));
    }
    pub fn close(&mut self) {
        self.segs.push(Seg::Close);
    }
    pub fn is_empty(&self) -> bool {
        !self.segs.iter().any(|s| matches!(s, Seg::Line(..)))
    }
}

/// How a path's outline is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Stroke {
    pub color: Color,
    pub width: f64,
    /// On and off lengths; empty for a solid line.
    pub dash: Vec<f64>,
}

/// Where a text's anchor point is on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valign {
    Top,
    Middle,
    Baseline,
}

/// One text: drawn with its anchor at (`x`, `y`), then turned by
/// `rotate` degrees (clockwise, as cairo's) about that point.
#[derive(Debug, Clone, PartialEq)]
pub struct Text<'a> {
    pub text: &'a str,
    pub x: f64,
    pub y: f64,
    pub size: f64,
    pub style: Style,
    pub color: Color,
    pub align: Align,
    pub valign: Valign,
    pub rotate: f64,
    /// Whole-pixel font metrics, as cairo's PNG text.
    pub hinted: bool,
}

impl Text<'_> {
    /// The baseline's left end before the rotation, relative to the anchor.
    pub fn offset(&self) -> (f64, f64) {
        let w = super::font::width(self.text, self.size, self.style, self.hinted);
        let e = super::font::extents(self.size, self.style, self.hinted);
        let dx = match self.align {
            Align::Left => 0.0,
            Align::Center => -w / 2.0,
            Align::Right => -w,
        };
        let dy = match self.valign {
            Valign::Top => e.ascent,
            Valign::Middle => e.height / 2.0 - e.descent,
            Valign::Baseline => 0.0,
        };
        (dx, dy)
    }
}

pub trait Canvas {
    fn fill_rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Color);
    fn stroke(&mut self, path: &Path, stroke: &Stroke);
    fn fill(&mut self, path: &Path, color: Color);
    fn text(&mut self, text: &Text);
    /// Starts and ends a group of drawing for one series (SVG keeps it as
    /// an element with the series' name; a raster has nothing to keep).
    fn group(&mut self, _name: Option<&str>) {}
    /// What is drawn from now on is cut to the rectangle `[x, y, w, h]`
    /// (None: nothing is cut).
    fn clip(&mut self, rect: Option<[f64; 4]>);
    /// Whether the drawing keeps a record of what was drawn (SVG's
    /// metadata block); a raster has no place for it.
    fn keeps_metadata(&self) -> bool {
        false
    }
}
