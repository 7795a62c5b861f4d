//! SVG: the same drawing as PNG written as SVG elements, text as `<text>`
//! in the built-in font's family (so it stays text: searchable, and
//! small), each series' drawing in a `<g>` named after it.

use std::fmt::Write;

use super::canvas::{Canvas, Color, Path, Seg, Stroke, Text};

pub struct Svg {
    width: u32,
    height: u32,
    body: String,
    open_group: bool,
    clip: Option<String>,
    clips: usize,
}

/// A number as short as it stays exact to a hundredth of a pixel.
fn n(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    if r == r.trunc() && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

fn color(c: Color) -> String {
    let [r, g, b, _] = c.rgba8();
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn opacity(name: &str, c: Color) -> String {
    if c.a < 1.0 {
        format!(" {name}=\"{}\"", n(c.a))
    } else {
        String::new()
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn d(path: &Path) -> String {
    let mut out = String::new();
    for s in &path.segs {
        match *s {
            Seg::Move(x, y) => {
                let _ = write!(out, "M{} {}", n(x), n(y));
            }
            Seg::Line(x, y) => {
                let _ = write!(out, "L{} {}", n(x), n(y));
            }
            Seg::Close => out.push('Z'),
        }
    }
    out
}

impl Svg {
    pub fn new(width: u32, height: u32) -> Svg {
        Svg {
            width,
            height,
            body: String::new(),
            open_group: false,
            clip: None,
            clips: 0,
        }
    }

    /// The document, with graphite-web's `metadata` script block after the
    /// drawing (what its SVG consumers read).
    pub fn finish(mut self, metadata: &str) -> String {
        self.group(None);
        // A name holding "]]>" must not end the CDATA section early.
        let metadata = metadata.replace("]]>", "]]]]><![CDATA[>");
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}px\" height=\"{h}px\" \
             viewBox=\"0 0 {w} {h}\" version=\"1.1\">\n\
             <g class=\"graphite\">\n{body}</g>\n\
             <script>\n  <![CDATA[\n    metadata = {metadata}\n  ]]>\n</script>\n</svg>",
            w = self.width,
            h = self.height,
            body = self.body,
        )
    }
}

impl Canvas for Svg {
    fn keeps_metadata(&self) -> bool {
        true
    }

    fn fill_rect(&mut self, x: f64, y: f64, w: f64, h: f64, c: Color) {
        let _ = writeln!(
            self.body,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}/>",
            n(x),
            n(y),
            n(w),
            n(h),
            color(c),
            opacity("fill-opacity", c)
        );
    }

    fn stroke(&mut self, path: &Path, s: &Stroke) {
        if path.is_empty() || s.width <= 0.0 || s.width.is_nan() {
            return;
        }
        let dash = if s.dash.is_empty() {
            String::new()
        } else {
            let d: Vec<String> = s.dash.iter().map(|v| n(*v)).collect();
            format!(
                " stroke-dasharray=\"{}\" stroke-dashoffset=\"1\"",
                d.join(",")
            )
        };
        let _ = writeln!(
            self.body,
            "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}{}/>",
            d(path),
            color(s.color),
            n(s.width),
            opacity("stroke-opacity", s.color),
            dash
        );
    }

    fn fill(&mut self, path: &Path, c: Color) {
        if path.is_empty() {
            return;
        }
        let _ = writeln!(
            self.body,
            "<path d=\"{}\" fill=\"{}\"{} stroke=\"none\"/>",
            d(path),
            color(c),
            opacity("fill-opacity", c)
        );
    }

    fn text(&mut self, t: &Text) {
        let (dx, dy) = t.offset();
        let rotate = if t.rotate == 0.0 {
            String::new()
        } else {
            format!(
                " transform=\"rotate({} {} {})\"",
                n(t.rotate),
                n(t.x),
                n(t.y)
            )
        };
        let weight = if t.style.bold {
            " font-weight=\"bold\""
        } else {
            ""
        };
        let slant = if t.style.italic {
            " font-style=\"italic\""
        } else {
            ""
        };
        let _ = writeln!(
            self.body,
            "<text x=\"{}\" y=\"{}\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"{}\"{weight}{slant} \
             fill=\"{}\"{}{rotate} xml:space=\"preserve\">{}</text>",
            n(t.x + dx),
            n(t.y + dy),
            n(t.size),
            color(t.color),
            opacity("fill-opacity", t.color),
            escape(t.text)
        );
    }

    fn group(&mut self, name: Option<&str>) {
        if self.open_group {
            self.body.push_str("</g>\n");
            self.open_group = false;
        }
        if let Some(name) = name {
            let clip = self
                .clip
                .as_ref()
                .map(|id| format!(" clip-path=\"url(#{id})\""))
                .unwrap_or_default();
            let _ = writeln!(self.body, "<g class=\"{}\"{clip}>", escape(name));
            self.open_group = true;
        }
    }

    /// Cuts the groups opened from now on.
    fn clip(&mut self, rect: Option<[f64; 4]>) {
        self.clip = rect.map(|[x, y, w, h]| {
            self.clips += 1;
            let id = format!("clip{}", self.clips);
            let _ = writeln!(
                self.body,
                "<clipPath id=\"{id}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath>",
                n(x),
                n(y),
                n(w),
                n(h)
            );
            id
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::web::graph::canvas::{Align, Valign};
    use crate::server::web::graph::font::Style;

    #[test]
    fn a_small_document() {
        let mut s = Svg::new(100, 50);
        s.fill_rect(0.0, 0.0, 100.0, 50.0, Color::rgb(255, 255, 255));
        s.group(Some("series a<b"));
        let mut p = Path::new();
        p.move_to(0.0, 1.0);
        p.line_to(10.333, 20.0);
        s.stroke(
            &p,
            &Stroke {
                color: Color::rgb(255, 0, 0).with_alpha(0.5),
                width: 1.2,
                dash: vec![5.0],
            },
        );
        s.text(&Text {
            text: "a & b",
            x: 50.0,
            y: 25.0,
            size: 10.0,
            style: Style::default(),
            color: Color::rgb(0, 0, 0),
            align: Align::Left,
            valign: Valign::Baseline,
            rotate: 270.0,
            hinted: false,
        });
        let doc = s.finish("{}");
        assert!(doc.contains("width=\"100px\" height=\"50px\""), "{doc}");
        assert!(doc.contains("<g class=\"series a&lt;b\">"), "{doc}");
        assert!(doc.contains("d=\"M0 1L10.33 20\""), "{doc}");
        assert!(
            doc.contains("stroke-opacity=\"0.5\" stroke-dasharray=\"5\""),
            "{doc}"
        );
        assert!(doc.contains(">a &amp; b</text>"), "{doc}");
        assert!(doc.contains("rotate(270 50 25)"), "{doc}");
        assert!(
            doc.ends_with("metadata = {}\n  ]]>\n</script>\n</svg>"),
            "{doc}"
        );
        assert_eq!(doc.matches("<g").count(), doc.matches("</g>").count());
    }
}
