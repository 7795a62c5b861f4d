//! The font graphs are drawn with: DejaVu Sans, built into the binary (the
//! face fontconfig gives cairo for graphite-web's default "Sans" on Debian),
//! so no system fonts are needed. Metrics are cairo's toy text API's:
//! advances without kerning, extents from the face's horizontal header.

use std::sync::OnceLock;

use ttf_parser::{Face, GlyphId, OutlineBuilder};

/// Bold and italic, as `fontBold` and `fontItalic` ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub bold: bool,
    pub italic: bool,
}

fn face(style: Style) -> Option<&'static Face<'static>> {
    static FACES: OnceLock<[Option<Face<'static>>; 4]> = OnceLock::new();
    let faces = FACES.get_or_init(|| {
        [
            Face::parse(dejavu::sans::regular(), 0).ok(),
            Face::parse(dejavu::sans::bold(), 0).ok(),
            Face::parse(dejavu::sans::oblique(), 0).ok(),
            Face::parse(dejavu::sans::bold_oblique(), 0).ok(),
        ]
    });
    faces[usize::from(style.bold) + 2 * usize::from(style.italic)].as_ref()
}

/// cairo's `font_extents` at `size` pixels: ascent, descent (positive,
/// below the baseline) and the line height. `hinted`: as cairo's image
/// surface (PNG) gives them, whole pixels (ascent and descent rounded up,
/// the height rounded, as FreeType does); unhinted as its SVG surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extents {
    pub ascent: f64,
    pub descent: f64,
    pub height: f64,
}

pub fn extents(size: f64, style: Style, hinted: bool) -> Extents {
    let Some(f) = face(style) else {
        return Extents {
            ascent: size,
            descent: 0.0,
            height: size,
        };
    };
    let em = f64::from(f.units_per_em().max(1));
    let ascent = f64::from(f.ascender()) / em * size;
    let descent = -f64::from(f.descender()) / em * size;
    let height = ascent + descent + f64::from(f.line_gap()) / em * size;
    if hinted {
        Extents {
            ascent: ascent.ceil(),
            descent: descent.ceil(),
            height: height.round(),
        }
    } else {
        Extents {
            ascent,
            descent,
            height,
        }
    }
}

fn glyph(f: &Face, c: char) -> GlyphId {
    f.glyph_index(c).unwrap_or(GlyphId(0))
}

/// One glyph's advance in pixels (whole pixels when `hinted`).
fn advance(f: &Face, g: GlyphId, scale: f64, hinted: bool) -> f64 {
    let a = f64::from(f.glyph_hor_advance(g).unwrap_or(0)) * scale;
    if hinted {
        a.round()
    } else {
        a
    }
}

/// The text's advance width at `size` pixels.
pub fn width(text: &str, size: f64, style: Style, hinted: bool) -> f64 {
    let Some(f) = face(style) else {
        return text.chars().count() as f64 * size * 0.6;
    };
    let scale = size / f64::from(f.units_per_em().max(1));
    text.chars()
        .map(|c| advance(f, glyph(f, c), scale, hinted))
        .sum()
}

/// The glyphs' outlines, laid out from the origin along the baseline (y
/// grows downwards), in pixels: for a rasteriser to fill.
pub fn outline(text: &str, size: f64, style: Style, hinted: bool, to: &mut impl Pen) {
    for (g, dx) in glyphs(text, size, style, hinted) {
        glyph_outline(g, dx, size, style, to);
    }
}

/// The glyphs of `text` (by their ids in the font) and where each one's
/// origin lies along the baseline, as `outline` lays them out.
pub fn glyphs(text: &str, size: f64, style: Style, hinted: bool) -> Vec<(u16, f64)> {
    let Some(f) = face(style) else {
        return Vec::new();
    };
    let scale = size / f64::from(f.units_per_em().max(1));
    let mut x = 0.0;
    text.chars()
        .map(|c| {
            let g = glyph(f, c);
            let at = (g.0, x);
            x += advance(f, g, scale, hinted);
            at
        })
        .collect()
}

/// One glyph's outline with its origin at (`dx`, 0).
pub fn glyph_outline(id: u16, dx: f64, size: f64, style: Style, to: &mut impl Pen) {
    let Some(f) = face(style) else {
        return;
    };
    let scale = size / f64::from(f.units_per_em().max(1));
    f.outline_glyph(GlyphId(id), &mut Placed { pen: to, dx, scale });
}

/// Where outlines go (a rasteriser's path builder).
pub trait Pen {
    fn move_to(&mut self, x: f64, y: f64);
    fn line_to(&mut self, x: f64, y: f64);
    fn quad_to(&mut self, x1: f64, y1: f64, x: f64, y: f64);
    fn curve_to(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, x: f64, y: f64);
    fn close(&mut self);
}

/// Font units to pixels, the glyph moved to its place, y flipped.
struct Placed<'a, P: Pen> {
    pen: &'a mut P,
    dx: f64,
    scale: f64,
}

impl<P: Pen> Placed<'_, P> {
    fn at(&self, x: f32, y: f32) -> (f64, f64) {
        (
            self.dx + f64::from(x) * self.scale,
            -f64::from(y) * self.scale,
        )
    }
}

impl<P: Pen> OutlineBuilder for Placed<'_, P> {
    fn move_to(&mut self, x: f32, y: f32) {
        let (x, y) = self.at(x, y);
        self.pen.move_to(x, y);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        let (x, y) = self.at(x, y);
        self.pen.line_to(x, y);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let (x1, y1) = self.at(x1, y1);
        let (x, y) = self.at(x, y);
        self.pen.quad_to(x1, y1, x, y);
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let (x1, y1) = self.at(x1, y1);
        let (x2, y2) = self.at(x2, y2);
        let (x, y) = self.at(x, y);
        self.pen.curve_to(x1, y1, x2, y2, x, y);
    }
    fn close(&mut self) {
        self.pen.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Bounds {
        min_y: f64,
        max_y: f64,
        max_x: f64,
        moves: usize,
    }

    impl Pen for Bounds {
        fn move_to(&mut self, x: f64, y: f64) {
            self.moves += 1;
            self.line_to(x, y);
        }
        fn line_to(&mut self, x: f64, y: f64) {
            self.min_y = self.min_y.min(y);
            self.max_y = self.max_y.max(y);
            self.max_x = self.max_x.max(x);
        }
        fn quad_to(&mut self, _: f64, _: f64, x: f64, y: f64) {
            self.line_to(x, y);
        }
        fn curve_to(&mut self, _: f64, _: f64, _: f64, _: f64, x: f64, y: f64) {
            self.line_to(x, y);
        }
        fn close(&mut self) {}
    }

    #[test]
    fn metrics_are_dejavu_sans() {
        let e = extents(10.0, Style::default(), false);
        // DejaVu Sans: ascender 1901, descender -483 in 2048 units.
        assert!((e.ascent - 9.282).abs() < 0.01, "{e:?}");
        assert!((e.descent - 2.358).abs() < 0.01, "{e:?}");
        // cairo's hinted metrics for the same (measured from cairo 1.16).
        let h = |size| {
            let e = extents(size, Style::default(), true);
            (e.ascent, e.descent, e.height)
        };
        assert_eq!(h(10.0), (10.0, 3.0, 12.0));
        assert_eq!(h(11.32), (11.0, 3.0, 13.0));
        assert_eq!(h(12.0), (12.0, 3.0, 14.0));
        for (text, px) in [("0 ", 9.0), ("1.00 ", 24.0), ("12:00", 27.0)] {
            assert_eq!(width(text, 10.0, Style::default(), true), px, "{text}");
        }
        assert!((width("12:00", 10.0, Style::default(), false) - 28.818).abs() < 0.01);
        let bold = Style {
            bold: true,
            italic: false,
        };
        assert!(width("Hello", 10.0, bold, false) > width("Hello", 10.0, Style::default(), false));
        assert_eq!(width("", 10.0, Style::default(), false), 0.0);
    }

    #[test]
    fn outlines_sit_on_the_baseline_and_advance() {
        let mut b = Bounds::default();
        outline("Hx", 20.0, Style::default(), false, &mut b);
        assert!(b.moves >= 2, "one contour per glyph at least");
        // Capitals rise above the baseline (negative y), nothing much below.
        assert!(b.min_y < -12.0 && b.max_y <= 0.5, "{} {}", b.min_y, b.max_y);
        let w = width("Hx", 20.0, Style::default(), false);
        assert!(b.max_x > w * 0.6 && b.max_x <= w, "{} {w}", b.max_x);
    }
}
