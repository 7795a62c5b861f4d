//! PNG: the graph drawn into a pixmap, anti-aliased as cairo's image
//! surface: solid lines and areas by exact pixel coverage (`coverage`),
//! dashed lines, rectangles and text (from the built-in font's outlines)
//! with tiny-skia.

use tiny_skia::{
    FillRule, LineCap, LineJoin, Mask, Paint, PathBuilder, Pixmap, Rect, Shader, StrokeDash,
    Transform,
};

use super::canvas::{self, Canvas, Color, Path, Seg, Text};
use super::coverage::{self, Coverage, Region};
use super::font;
use super::glyphs::{self, Builder};
use super::pixel::Ink;
use super::pngfile;

pub struct Raster {
    pixmap: Pixmap,
    clip: Option<Clip>,
    /// Solid strokes and fills, drawn by area coverage.
    cov: Coverage,
}

/// The clip: its rectangle, and the mask that tiny-skia's drawings need,
/// made the first time one reaches across the rectangle's edge (a graph's
/// solid lines, drawn by coverage, need only the rectangle, and the mask
/// is a pass over every pixel of the image).
struct Clip {
    rect: Rect,
    mask: Option<Mask>,
}

/// Pixel buffers larger than this (a graph above about 2 megapixels) are
/// let go after the graph instead of kept for the next one.
const KEEP_BYTES: usize = 8 << 20;

thread_local! {
    /// The pixels of this thread's graph before: a fresh megabyte costs
    /// its page faults on every graph otherwise.
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Raster {
    /// None when the size is zero or too large to allocate.
    pub fn new(width: u32, height: u32) -> Option<Raster> {
        let size = tiny_skia::IntSize::from_wh(width, height)?;
        let len = usize::try_from(u64::from(width) * u64::from(height) * 4).ok()?;
        let mut data = SPARE.with(|s| s.take());
        data.clear();
        data.try_reserve_exact(len).ok()?;
        data.resize(len, 0);
        Some(Raster {
            pixmap: Pixmap::from_vec(data, size)?,
            clip: None,
            cov: Coverage::take(),
        })
    }

    /// Fills or strokes `path` by area coverage in `color`, inside the clip.
    /// `pad`: how far what is drawn may reach beyond the path's points.
    fn cover(&mut self, path: &Path, color: Color, pad: f64, draw: impl FnOnce(&mut Coverage)) {
        let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for s in &path.segs {
            if let Seg::Move(x, y) | Seg::Line(x, y) = *s {
                b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
            }
        }
        let bounds = [b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad];
        let clip = self
            .clip
            .as_ref()
            .map(|c| [c.rect.x(), c.rect.y(), c.rect.width(), c.rect.height()]);
        let (w, h) = (self.pixmap.width(), self.pixmap.height());
        let Some(region) = Region::new(w, h, clip, bounds) else {
            return;
        };
        self.cov.begin(region);
        draw(&mut self.cov);
        if self.cov.end(color.rgba8()) > coverage::MAX_EDGES {
            self.flush();
        }
    }

    /// Paints the solid strokes and fills that wait (they are painted
    /// together, band by band): before anything else draws, and before
    /// the pixels are read.
    fn flush(&mut self) {
        if self.cov.pending() {
            let w = self.pixmap.width();
            self.cov.composite(self.pixmap.data_mut(), w);
        }
    }

    /// The pixels drawn so far.
    #[cfg(test)]
    pub fn pixmap(&mut self) -> &Pixmap {
        self.flush();
        &self.pixmap
    }

    /// The PNG file of what was drawn.
    pub fn png(&mut self) -> Result<Vec<u8>, String> {
        self.flush();
        pngfile::encode(&self.pixmap)
    }
}

/// The clip mask of an image `size` (width, height), unless what is drawn
/// (its `bounds` grown by `pad`; None: anywhere) lies inside the clip
/// anyway: masking costs a pass over each pixel.
fn mask_for(
    clip: &mut Option<Clip>,
    size: (u32, u32),
    bounds: Option<Rect>,
    pad: f32,
) -> Option<&Mask> {
    let c = clip.as_mut()?;
    let r = c.rect;
    if let Some(b) = bounds {
        if b.left() - pad >= r.left()
            && b.top() - pad >= r.top()
            && b.right() + pad <= r.right()
            && b.bottom() + pad <= r.bottom()
        {
            return None;
        }
    }
    if c.mask.is_none() {
        let mut m = Mask::new(size.0, size.1)?;
        m.fill_path(
            &PathBuilder::from_rect(r),
            FillRule::Winding,
            true,
            Transform::identity(),
        );
        c.mask = Some(m);
    }
    c.mask.as_ref()
}

fn paint(c: Color) -> Paint<'static> {
    let [r, g, b, a] = c.rgba8();
    Paint {
        shader: Shader::SolidColor(tiny_skia::Color::from_rgba8(r, g, b, a)),
        anti_alias: true,
        ..Paint::default()
    }
}

fn skia_path(p: &Path) -> Option<tiny_skia::Path> {
    let mut b = PathBuilder::new();
    for s in &p.segs {
        match *s {
            Seg::Move(x, y) => b.move_to(x as f32, y as f32),
            Seg::Line(x, y) => b.line_to(x as f32, y as f32),
            Seg::Close => b.close(),
        }
    }
    b.finish()
}

impl Drop for Raster {
    fn drop(&mut self) {
        std::mem::take(&mut self.cov).give();
        // (A 1x1 pixmap in its place: four bytes.)
        if let Some(small) = Pixmap::new(1, 1) {
            let pixels = std::mem::replace(&mut self.pixmap, small).take();
            if pixels.capacity() <= KEEP_BYTES {
                SPARE.with(|s| s.set(pixels));
            }
        }
    }
}

impl Canvas for Raster {
    fn fill_rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Color) {
        self.flush();
        if let Some(r) = Rect::from_xywh(x as f32, y as f32, w as f32, h as f32) {
            let size = (self.pixmap.width(), self.pixmap.height());
            let mask = mask_for(&mut self.clip, size, Some(r), 0.0);
            self.pixmap
                .fill_rect(r, &paint(color), Transform::identity(), mask);
        }
    }

    fn stroke(&mut self, path: &Path, s: &canvas::Stroke) {
        // cairo draws nothing at width 0 (tiny-skia would draw a hairline).
        if s.width <= 0.0 || s.width.is_nan() {
            return;
        }
        let solid = !(s.dash.len() >= 2 && s.dash.iter().all(|d| *d >= 0.0));
        if solid {
            // A miter reaches at most its limit times half the width out.
            let pad = s.width * 5.0 + 2.0;
            self.cover(path, s.color, pad, |c| c.stroke(path, s.width));
            return;
        }
        // Dashed lines: tiny-skia's dasher and stroker.
        self.flush();
        let mut d: Vec<f32> = s.dash.iter().map(|v| *v as f32).collect();
        if d.len() % 2 == 1 {
            d.extend(d.clone());
        }
        // graphite-web's dash offset.
        let dash = StrokeDash::new(d, 1.0);
        let stroke = tiny_skia::Stroke {
            width: s.width.max(0.0) as f32,
            line_cap: LineCap::Butt,
            line_join: LineJoin::Miter,
            // cairo's default, which graphite-web keeps.
            miter_limit: 10.0,
            dash,
        };
        if let Some(p) = skia_path(path) {
            let pad = stroke.width * 5.0 + 2.0;
            let size = (self.pixmap.width(), self.pixmap.height());
            let mask = mask_for(&mut self.clip, size, Some(p.bounds()), pad);
            self.pixmap
                .stroke_path(&p, &paint(s.color), &stroke, Transform::identity(), mask);
        }
    }

    fn fill(&mut self, path: &Path, color: Color) {
        self.cover(path, color, 1.0, |c| c.fill(path));
    }

    fn text(&mut self, t: &Text) {
        self.flush();
        let (dx, dy) = t.offset();
        if self.clip.is_none() && t.rotate == 0.0 {
            // Glyph by glyph from those kept (as the fill below, unclipped).
            let at = glyphs::At {
                x: t.x + dx,
                y: t.y + dy,
                width: self.pixmap.width(),
                height: self.pixmap.height(),
            };
            let ink = Ink::new(t.color.rgba8());
            let data = self.pixmap.data_mut();
            if glyphs::draw(data, &at, t.text, t.size, t.style, t.hinted, &ink) {
                return;
            }
        }
        let mut b = Builder(PathBuilder::new());
        font::outline(t.text, t.size, t.style, t.hinted, &mut b);
        let Some(p) = b.0.finish() else {
            return;
        };
        let transform = Transform::from_translate(t.x as f32, t.y as f32)
            .pre_rotate(t.rotate as f32)
            .pre_translate(dx as f32, dy as f32);
        // Text without anti-aliasing, as graphite-web sets cairo's font options.
        let mut paint = paint(t.color);
        paint.anti_alias = false;
        let size = (self.pixmap.width(), self.pixmap.height());
        let mask = mask_for(&mut self.clip, size, None, 0.0);
        self.pixmap
            .fill_path(&p, &paint, FillRule::Winding, transform, mask);
    }

    fn clip(&mut self, rect: Option<[f64; 4]>) {
        self.clip = rect.and_then(|[x, y, w, h]| {
            let rect = Rect::from_xywh(x as f32, y as f32, w as f32, h as f32)?;
            Some(Clip { rect, mask: None })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::web::graph::canvas::{Align, Valign};
    use crate::server::web::graph::font::Style;

    fn at(r: &mut Raster, x: u32, y: u32) -> [u8; 4] {
        let p = r.pixmap().pixel(x, y).expect("inside");
        let c = p.demultiply();
        [c.red(), c.green(), c.blue(), c.alpha()]
    }

    #[test]
    fn draws_where_told() {
        let mut r = Raster::new(40, 30).expect("pixmap");
        let white = Color::rgb(255, 255, 255);
        let red = Color::rgb(255, 0, 0);
        r.fill_rect(0.0, 0.0, 40.0, 30.0, Color::rgb(0, 0, 0));
        let mut p = Path::new();
        p.move_to(0.0, 10.5);
        p.line_to(40.0, 10.5);
        r.stroke(
            &p,
            &canvas::Stroke {
                color: red,
                width: 1.0,
                dash: vec![],
            },
        );
        assert_eq!(at(&mut r, 20, 10), [255, 0, 0, 255]);
        assert_eq!(at(&mut r, 20, 12), [0, 0, 0, 255]);
        r.text(&Text {
            text: "X",
            x: 30.0,
            y: 29.0,
            size: 12.0,
            style: Style::default(),
            color: white,
            align: Align::Center,
            valign: Valign::Baseline,
            rotate: 0.0,
            hinted: true,
        });
        // The X's middle is lit; left of it nothing is.
        let lit = (18..28).any(|y| at(&mut r, 30, y)[0] > 128);
        assert!(lit);
        assert_eq!(at(&mut r, 5, 25), [0, 0, 0, 255]);
        let png = r.png().expect("png");
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn a_drawing_of_many_edges_is_painted_at_once_and_order_kept() {
        let mut r = Raster::new(200, 100).expect("pixmap");
        let stroke = |color| canvas::Stroke {
            color,
            width: 1.0,
            dash: vec![],
        };
        // A zigzag of 100 000 segments: more edges than are kept waiting.
        let mut zig = Path::new();
        zig.move_to(0.0, 10.0);
        for i in 1..=100_000 {
            let y = if i % 2 == 0 { 10.0 } else { 90.0 };
            zig.line_to(f64::from(i) * 0.001, y);
        }
        let mut flat = Path::new();
        flat.move_to(0.0, 50.5);
        flat.line_to(200.0, 50.5);
        r.stroke(&flat, &stroke(Color::rgb(0, 0, 255)));
        assert!(r.cov.pending());
        r.stroke(&zig, &stroke(Color::rgb(255, 0, 0)));
        // Painted then and there, the blue line first: red lies over it.
        assert!(!r.cov.pending());
        assert_eq!(at(&mut r, 50, 50), [255, 0, 0, 255]);
        assert_eq!(at(&mut r, 150, 50), [0, 0, 255, 255]);
    }
}
