//! PNG: the graph drawn into a pixmap with tiny-skia (anti-aliased, as
//! cairo's image surface), text filled from the built-in font's outlines.

use tiny_skia::{
    FillRule, LineCap, LineJoin, Mask, Paint, PathBuilder, Pixmap, Rect, Shader, StrokeDash,
    Transform,
};

use super::canvas::{self, Canvas, Color, Path, Seg, Text};
use super::font::{self, Pen};

pub struct Raster {
    pub pixmap: Pixmap,
    clip: Option<Mask>,
}

impl Raster {
    /// None when the size is zero or too large to allocate.
    pub fn new(width: u32, height: u32) -> Option<Raster> {
        Some(Raster {
            pixmap: Pixmap::new(width, height)?,
            clip: None,
        })
    }

    pub fn png(&self) -> Result<Vec<u8>, String> {
        self.pixmap.encode_png().map_err(|e| e.to_string())
    }
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

/// Glyph outlines into a tiny-skia path.
struct Builder(PathBuilder);

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

impl Canvas for Raster {
    fn fill_rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Color) {
        if let Some(r) = Rect::from_xywh(x as f32, y as f32, w as f32, h as f32) {
            self.pixmap
                .fill_rect(r, &paint(color), Transform::identity(), self.clip.as_ref());
        }
    }

    fn stroke(&mut self, path: &Path, s: &canvas::Stroke) {
        // cairo draws nothing at width 0 (tiny-skia would draw a hairline).
        if s.width <= 0.0 || s.width.is_nan() {
            return;
        }
        let Some(p) = skia_path(path) else {
            return;
        };
        let dash = if s.dash.len() >= 2 && s.dash.iter().all(|d| *d >= 0.0) {
            let mut d: Vec<f32> = s.dash.iter().map(|v| *v as f32).collect();
            if d.len() % 2 == 1 {
                d.extend(d.clone());
            }
            // graphite-web's dash offset.
            StrokeDash::new(d, 1.0)
        } else {
            None
        };
        let stroke = tiny_skia::Stroke {
            width: s.width.max(0.0) as f32,
            line_cap: LineCap::Butt,
            line_join: LineJoin::Miter,
            dash,
            ..tiny_skia::Stroke::default()
        };
        self.pixmap.stroke_path(
            &p,
            &paint(s.color),
            &stroke,
            Transform::identity(),
            self.clip.as_ref(),
        );
    }

    fn fill(&mut self, path: &Path, color: Color) {
        if let Some(p) = skia_path(path) {
            self.pixmap.fill_path(
                &p,
                &paint(color),
                FillRule::Winding,
                Transform::identity(),
                self.clip.as_ref(),
            );
        }
    }

    fn text(&mut self, t: &Text) {
        let mut b = Builder(PathBuilder::new());
        font::outline(t.text, t.size, t.style, t.hinted, &mut b);
        let Some(p) = b.0.finish() else {
            return;
        };
        let (dx, dy) = t.offset();
        let transform = Transform::from_translate(t.x as f32, t.y as f32)
            .pre_rotate(t.rotate as f32)
            .pre_translate(dx as f32, dy as f32);
        // Text without anti-aliasing, as graphite-web sets cairo's font options.
        let mut paint = paint(t.color);
        paint.anti_alias = false;
        self.pixmap
            .fill_path(&p, &paint, FillRule::Winding, transform, self.clip.as_ref());
    }

    fn clip(&mut self, rect: Option<[f64; 4]>) {
        self.clip = rect.and_then(|[x, y, w, h]| {
            let r = Rect::from_xywh(x as f32, y as f32, w as f32, h as f32)?;
            let mut m = Mask::new(self.pixmap.width(), self.pixmap.height())?;
            m.fill_path(
                &PathBuilder::from_rect(r),
                FillRule::Winding,
                true,
                Transform::identity(),
            );
            Some(m)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::web::graph::canvas::{Align, Valign};
    use crate::server::web::graph::font::Style;

    fn at(r: &Raster, x: u32, y: u32) -> [u8; 4] {
        let p = r.pixmap.pixel(x, y).expect("inside");
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
        assert_eq!(at(&r, 20, 10), [255, 0, 0, 255]);
        assert_eq!(at(&r, 20, 12), [0, 0, 0, 255]);
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
        let lit = (18..28).any(|y| at(&r, 30, y)[0] > 128);
        assert!(lit);
        assert_eq!(at(&r, 5, 25), [0, 0, 0, 255]);
        let png = r.png().expect("png");
        assert_eq!(&png[1..4], b"PNG");
    }
}
