//! The legend under the plot, as graphite-web lays it out: one row of
//! columns as wide as the longest name allows, or (with a right axis and
//! room for it) the right axis's entries from the right edge.

use super::canvas::{Align, Canvas, Color, Path, Stroke, Valign};
use super::line::{Graph, Line};
use super::options::{unquote_plus, Options};

impl<C: Canvas> Graph<'_, C> {
    /// The legend under the plot: (name, colour, on the right axis).
    pub(super) fn legend(&mut self, entries: &[(String, Color, bool)], two_axes: bool) {
        if entries.is_empty() {
            return;
        }
        self.c.group(Some("legend"));
        let size = self.o.font_size;
        let e = self.extents(size);
        let padding = 5.0;
        let longest = entries
            .iter()
            .map(|e| &e.0)
            .fold("", |best, n| {
                if n.chars().count() >= best.chars().count() {
                    n
                } else {
                    best
                }
            })
            .to_string();
        let w = f64::from(self.o.width);
        let both = format!("{longest} {longest}");
        let right_side_labels =
            self.width(&both, size) + 2.0 * ((e.height - 1.0) + padding) + 50.0 < w;
        let box_size = e.height - 1.0;
        let line_height = e.height + 1.0;
        let label_width = self.width(&longest, size) + 2.0 * (box_size + padding);
        let dark = Color::rgb(111, 111, 111);
        // One entry: its colour's square at `square_x` with a dark outline,
        // its name anchored at `text_x`.
        let entry =
            |g: &mut Self, name: &str, c: Color, square_x: f64, text_x: f64, y: f64, align| {
                g.c.fill_rect(square_x, y, box_size, box_size, c);
                let mut p = Path::new();
                p.move_to(square_x + 0.5, y + 0.5);
                p.line_to(square_x + box_size, y + 0.5);
                p.line_to(square_x + box_size, y + box_size);
                p.line_to(square_x + 0.5, y + box_size);
                p.close();
                let outline = Stroke {
                    color: dark,
                    width: 1.0,
                    dash: Vec::new(),
                };
                g.c.stroke(&p, &outline);
                g.text(name, text_x, y, size, align, Valign::Top, 0.0);
            };
        if two_axes && right_side_labels {
            let columns = (((w - self.area.xmin) / label_width).floor().max(1.0) / 2.0)
                .floor()
                .max(1.0);
            let right = entries.iter().filter(|e| e.2).count() as f64;
            let lines = (entries.len() as f64 - right).max(right);
            let height = (lines / columns).max(1.0) * line_height + padding;
            self.area.ymax -= height;
            let (mut x, mut y) = (self.area.xmin, self.area.ymax + 10.0);
            let home_right = self.area.xmax - self.area.xmin;
            let (mut x_right, mut y_right) = (home_right, y);
            let (mut n, mut n_right) = (0usize, 0usize);
            for (name, c, second) in entries {
                if *second {
                    entry(
                        self,
                        name,
                        *c,
                        x_right - padding,
                        x_right - box_size,
                        y_right,
                        Align::Right,
                    );
                    x_right -= label_width;
                    n_right += 1;
                    if n_right as f64 % columns == 0.0 {
                        x_right = home_right;
                        y_right += line_height;
                    }
                } else {
                    entry(self, name, *c, x, x + box_size + padding, y, Align::Left);
                    x += label_width;
                    n += 1;
                    if n as f64 % columns == 0.0 {
                        x = self.area.xmin;
                        y += line_height;
                    }
                }
            }
            return;
        }
        let columns = (w / label_width).floor().max(1.0);
        let lines = (entries.len() as f64 / columns).ceil();
        self.area.ymax -= lines * line_height + padding;
        let (mut x, mut y) = (self.area.xmin, self.area.ymax + 2.0 * padding);
        for (i, (name, c, second)) in entries.iter().enumerate() {
            if *second {
                entry(
                    self,
                    name,
                    *c,
                    x + label_width + padding,
                    x + label_width,
                    y,
                    Align::Right,
                );
            } else {
                entry(self, name, *c, x, x + box_size + padding, y, Align::Left);
            }
            x += label_width;
            if (i + 1) as f64 % columns == 0.0 {
                x = self.area.xmin;
                y += line_height;
            }
        }
    }
}

/// `legendValue`/`cactiStyle` rename series before drawing; the legend
/// shows the names, URL-unquoted once more as graphite-web does.
pub(super) fn legend_entries(lines: &[Line], o: &Options) -> Vec<(String, Color, bool)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for l in lines {
        if l.s.name.is_empty() {
            continue;
        }
        if o.hide_null_from_legend && l.s.values.iter().all(Option::is_none) {
            continue;
        }
        let name = unquote_plus(&l.s.name);
        if o.unique_legend && !seen.insert(name.clone()) {
            continue;
        }
        out.push((name, l.color, l.second));
    }
    out
}
