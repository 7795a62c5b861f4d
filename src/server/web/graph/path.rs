//! One series' line or area, as graphite-web's `drawLines` draws it:
//! nulls break the line (or are bridged in connected mode), stacked series
//! are filled down to zero, drawAsInfinite points are full-height lines.

use super::axis::YAxis;
use super::canvas::{Canvas, Path, Stroke};
use super::color;
use super::line::{Graph, Line};
use super::options::{unquote_plus, LineMode, Options};

/// One series' path (graphite-web's `drawLines` for it).
pub(super) fn draw_line<C: Canvas>(
    g: &mut Graph<C>,
    l: &Line,
    axis: &YAxis,
    o: &Options,
    mode: LineMode,
    start_all: i64,
) {
    let area = g.area;
    let name = unquote_plus(&l.s.name);
    g.c.group(Some(&name));
    let mut color = l.color;
    if l.invisible {
        color = color.with_alpha(0.0);
    } else if !color::has_alpha(&l.color_name) {
        // An RRGGBBAA colour's own alpha wins over alpha() and areaAlpha.
        color = color.with_alpha(l.alpha.filter(|a| *a != 0.0).unwrap_or(1.0));
    }
    let stroke = Stroke {
        color,
        width: l.width.unwrap_or(o.line_width),
        dash: l.dashed.map(|d| vec![d, d]).unwrap_or_default(),
    };
    let zero = axis
        .coord(0.0, area.ymin, area.ymax)
        .filter(|z| *z != 0.0)
        .unwrap_or(area.ymax);
    let fill = |g: &mut Graph<C>, path: &mut Path, x: f64, start_x: f64| {
        if path.is_empty() {
            *path = Path::new();
            return;
        }
        let start_x = if start_x == 0.0 { area.xmin } else { start_x };
        path.line_to(x, zero);
        path.line_to(start_x, zero);
        path.close();
        g.c.fill(path, color);
        *path = Path::new();
    };
    let vpp = l.s.values_per_point.max(1) as f64;
    let missing = (l.s.start - start_all) as f64 / l.s.step.max(1) as f64;
    let x0 = area.xmin + l.x_step * (missing / vpp) + o.line_width / 2.0;
    let (mut x, mut y) = (x0, area.ymin);
    let mut start_x = x0;
    let mut nulls = 0usize;
    let mut path = Path::new();
    let mut current = false;
    let to = |path: &mut Path, current: &mut bool, x: f64, y: f64, moving: bool| {
        if moving || !*current {
            path.move_to(x, y);
        } else {
            path.line_to(x, y);
        }
        *current = true;
    };
    for (i, v) in l.s.view().iter().enumerate() {
        let mut v = v.filter(|x| !x.is_nan());
        if v.is_none() && o.draw_null_as_zero {
            v = Some(0.0);
        }
        let coord = v.and_then(|x| axis.coord(x, area.ymin, area.ymax));
        let (Some(value), Some(cy)) = (v, coord) else {
            if nulls == 0 && current {
                to(&mut path, &mut current, x, y, false);
            }
            if l.stacked {
                fill(g, &mut path, x, start_x);
                current = false;
            }
            x += l.x_step;
            nulls += 1;
            continue;
        };
        y = cy.max(0.0);
        if l.infinite && value > 0.0 {
            // Stroked with what the path holds so far, as cairo's stroke
            // takes the whole current path; the line starts anew after it.
            path.move_to(x, area.ymax);
            path.line_to(x, area.ymin);
            g.c.stroke(&path, &stroke);
            path = Path::new();
            current = false;
            x += l.x_step;
            continue;
        }
        if nulls > 0 {
            start_x = x;
        }
        match mode {
            LineMode::Staircase => {
                to(&mut path, &mut current, x, y, nulls > 0);
                x += l.x_step;
                to(&mut path, &mut current, x, y, false);
            }
            LineMode::Slope => {
                to(&mut path, &mut current, x, y, nulls > 0);
                x += l.x_step;
            }
            LineMode::Connected => {
                let over = o.connected_limit.is_some_and(|limit| nulls as i64 > limit);
                to(&mut path, &mut current, x, y, over || nulls == i);
                x += l.x_step;
            }
        }
        nulls = 0;
    }
    if l.stacked {
        let end_x = if mode == LineMode::Staircase {
            x
        } else {
            x - l.x_step
        };
        fill(g, &mut path, end_x, start_x);
    } else if !path.is_empty() {
        g.c.stroke(&path, &stroke);
    }
}
