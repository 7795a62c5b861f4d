//! The PNG's text drawn glyph by glyph from scan-converted glyphs kept
//! per thread: a graph's labels and legend repeat a few dozen glyphs at
//! the same sub-pixel offsets, graph after graph, and converting each
//! string's outline anew was a tenth of a graph's time.
//!
//! Glyphs are scan-converted as tiny-skia fills a path without
//! anti-aliasing (cairo's PNG text, as graphite-web sets its font
//! options), each at its origin's offset within its pixel, so the pixels
//! are those of the whole string's fill; except where two glyphs of a
//! translucent colour overlap (painted twice), and where the image's
//! right edge cuts a glyph (tiny-skia's clipping of a whole outline may
//! fill one pixel more in the last column).

use std::cell::RefCell;
use std::collections::HashMap;

use tiny_skia::{FillRule, Mask, PathBuilder, Transform};

use super::font::{self, Pen, Style};
use super::pixel::Ink;

/// A glyph's pixels: `width` wide, from (`left`, `top`) relative to the
/// pixel its origin falls in; a byte each, 0 or 255.
struct Glyph {
    left: i32,
    top: i32,
    width: usize,
    mask: Vec<u8>,
}

/// A glyph at a size and style, and its origin's offset in its pixel (the
/// bits of two f32 in 0..1).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    id: u16,
    bold: bool,
    italic: bool,
    size: u64,
    fx: u32,
    fy: u32,
}

/// Text larger than this (pixels per em) is not kept: its glyphs would
/// be large, and such text is rare.
const MAX_SIZE: f64 = 100.0;

/// The glyphs kept per thread, in bytes of their pixels: beyond it the
/// cache starts again empty.
const MAX_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Cache {
    glyphs: HashMap<Key, Option<Glyph>>,
    bytes: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Where a string goes: its baseline's left end at (`x`, `y`) on an
/// image of `width` x `height` premultiplied RGBA8 pixels.
pub struct At {
    pub x: f64,
    pub y: f64,
    pub width: u32,
    pub height: u32,
}

/// Draws `text` in `ink` onto `data`; false (nothing drawn) when the size
/// is not one that is kept, for the caller to fill the outline itself.
pub fn draw(
    data: &mut [u8],
    at: &At,
    text: &str,
    size: f64,
    style: Style,
    hinted: bool,
    ink: &Ink,
) -> bool {
    if !(size > 0.0 && size <= MAX_SIZE) {
        return false;
    }
    CACHE.with(|c| {
        let Ok(mut cache) = c.try_borrow_mut() else {
            return false;
        };
        for (id, dx) in font::glyphs(text, size, style, hinted) {
            let (ox, oy) = (at.x + dx, at.y);
            if !(ox.abs() < 1e9 && oy.abs() < 1e9) {
                continue;
            }
            let (ix, iy) = (ox.floor(), oy.floor());
            let (fx, fy) = ((ox - ix) as f32, (oy - iy) as f32);
            let key = Key {
                id,
                bold: style.bold,
                italic: style.italic,
                size: size.to_bits(),
                fx: fx.to_bits(),
                fy: fy.to_bits(),
            };
            if !cache.glyphs.contains_key(&key) {
                let g = scan(id, size, style, fx, fy);
                let bytes = g.as_ref().map_or(0, |g| g.mask.len()) + 64;
                if cache.bytes + bytes > MAX_BYTES {
                    cache.glyphs.clear();
                    cache.bytes = 0;
                }
                cache.bytes += bytes;
                cache.glyphs.insert(key, g);
            }
            if let Some(Some(g)) = cache.glyphs.get(&key) {
                paint(data, at, g, ix as i64, iy as i64, ink);
            }
        }
        true
    })
}

/// Scan-converts glyph `id` with its origin at (`fx`, `fy`); None when it
/// has no outline (a space).
fn scan(id: u16, size: f64, style: Style, fx: f32, fy: f32) -> Option<Glyph> {
    let mut b = Builder(PathBuilder::new());
    font::glyph_outline(id, 0.0, size, style, &mut b);
    let path = b.0.finish()?;
    let r = path.bounds();
    // A pixel of margin each side: a pixel is filled when its centre is
    // inside, so nothing beyond the bounds' pixels is.
    let left = (r.left() + fx).floor() as i32 - 1;
    let top = (r.top() + fy).floor() as i32 - 1;
    let right = (r.right() + fx).ceil() as i32 + 1;
    let bottom = (r.bottom() + fy).ceil() as i32 + 1;
    let (w, h) = (
        u32::try_from(right - left).ok()?,
        u32::try_from(bottom - top).ok()?,
    );
    let mut mask = Mask::new(w, h)?;
    let shift = Transform::from_translate(fx - left as f32, fy - top as f32);
    mask.fill_path(&path, FillRule::Winding, false, shift);
    Some(Glyph {
        left,
        top,
        width: w as usize,
        mask: mask.data().to_vec(),
    })
}

/// Paints glyph `g` whose origin falls in pixel (`ix`, `iy`).
fn paint(data: &mut [u8], at: &At, g: &Glyph, ix: i64, iy: i64, ink: &Ink) {
    let (width, height) = (i64::from(at.width), i64::from(at.height));
    let (pixels, _) = data.as_chunks_mut::<4>();
    for (row, line) in g.mask.chunks(g.width.max(1)).enumerate() {
        let y = iy + i64::from(g.top) + row as i64;
        if !(0..height).contains(&y) {
            continue;
        }
        for (col, m) in line.iter().enumerate() {
            let x = ix + i64::from(g.left) + col as i64;
            if *m == 0 || !(0..width).contains(&x) {
                continue;
            }
            if let Some(px) = pixels.get_mut((y * width + x) as usize) {
                ink.blend(px, u32::from(*m));
            }
        }
    }
}

/// A tiny-skia path built from the font's outlines.
pub struct Builder(pub PathBuilder);

impl Pen for Builder {
    fn move_to(&mut self, x: f64, y: f64) {
        self.0.move_to(x as f32, y as f32);
    }
    fn line_to(&mut self, x: f64, y: f64) {
        self.0.line_to(x as f32, y as f32);
    }
    fn quad_to(&mut self, x1: f64, y1: f64, x: f64, y: f64) {
        self.0.quad_to(x1 as f32, y1 as f32, x as f32, y as f32);
    }
    fn curve_to(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, x: f64, y: f64) {
        self.0.cubic_to(
            x1 as f32, y1 as f32, x2 as f32, y2 as f32, x as f32, y as f32,
        );
    }
    fn close(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_skia::{Paint, Pixmap};

    /// `text` at (x, y) in opaque `rgba` glyph by glyph, and as one fill
    /// of the whole string's outline. (Where the image's right edge cuts a
    /// glyph, tiny-skia's clipping of the outline may fill a pixel more in
    /// the last column: the test's strings end inside.)
    fn both(text: &str, x: f64, y: f64, size: f64, rgba: [u8; 4]) -> (Pixmap, Pixmap) {
        let mut kept = Pixmap::new(300, 40).expect("pixmap");
        let at = At {
            x,
            y,
            width: 300,
            height: 40,
        };
        let style = Style::default();
        assert!(draw(
            kept.data_mut(),
            &at,
            text,
            size,
            style,
            true,
            &Ink::new(rgba)
        ));
        let mut filled = Pixmap::new(300, 40).expect("pixmap");
        let mut b = Builder(PathBuilder::new());
        font::outline(text, size, style, true, &mut b);
        let path = b.0.finish().expect("outline");
        let mut paint = Paint::default();
        paint.set_color_rgba8(rgba[0], rgba[1], rgba[2], rgba[3]);
        paint.anti_alias = false;
        let at = Transform::from_translate(x as f32, y as f32);
        filled.fill_path(&path, &paint, FillRule::Winding, at, None);
        (kept, filled)
    }

    #[test]
    fn glyph_by_glyph_is_the_whole_strings_fill() {
        for (x, y) in [
            (3.0, 20.0),
            (3.5, 20.25),
            (10.3, 30.7),
            (-4.6, 9.5),
            (100.2, 38.0),
        ] {
            for size in [8.0, 10.0, 11.32] {
                let (kept, filled) = both("servers.h0 12:00 Wg%", x, y, size, [0, 0, 0, 255]);
                assert!(
                    filled.data().iter().any(|b| *b != 0),
                    "{x},{y} {size}: drawn"
                );
                let differ = kept
                    .data()
                    .chunks(4)
                    .zip(filled.data().chunks(4))
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, (a, b))| (i % 300, i / 300, a[3], b[3]))
                    .collect::<Vec<_>>();
                assert!(differ.is_empty(), "{x},{y} at {size}: {differ:?}");
            }
        }
        // Again, from the glyphs now kept, in another colour.
        let (kept, filled) = both("servers.h0 12:00 Wg%", 3.5, 20.25, 10.0, [200, 30, 90, 255]);
        assert_eq!(kept.data(), filled.data());
    }

    #[test]
    fn sizes_beyond_the_kept_and_spaces_draw_nothing_here() {
        let mut p = Pixmap::new(10, 10).expect("pixmap");
        let at = At {
            x: 0.0,
            y: 8.0,
            width: 10,
            height: 10,
        };
        let ink = Ink::new([0, 0, 0, 255]);
        let style = Style::default();
        assert!(!draw(p.data_mut(), &at, "x", 500.0, style, true, &ink));
        assert!(!draw(p.data_mut(), &at, "x", f64::NAN, style, true, &ink));
        assert!(draw(p.data_mut(), &at, "   ", 10.0, style, true, &ink));
        assert!(p.data().iter().all(|b| *b == 0));
    }
}
