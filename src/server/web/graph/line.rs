//! graphite-web's line graph, laid out as its `LineGraph` lays it out:
//! title, vertical titles and legend take their room first, then the X
//! labels', then the Y labels' (which moves the plot and so consolidates
//! the points again), then grid, labels and the series are drawn.

use chrono::TimeZone;
use chrono_tz::Tz;

use super::axis::{self, YAxis};
use super::canvas::{Align, Canvas, Color, Path, Stroke, Text, Valign};
use super::color;
use super::font::{self, Style};
use super::options::{AreaMode, LineMode, Options};
use crate::server::web::series::Series;

/// The plot's rectangle in pixels (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub xmin: f64,
    pub xmax: f64,
    pub ymin: f64,
    pub ymax: f64,
}

/// One series as drawn.
pub(super) struct Line {
    pub(super) s: Series,
    pub(super) color_name: String,
    pub(super) color: Color,
    pub(super) x_step: f64,
    pub(super) stacked: bool,
    pub(super) second: bool,
    pub(super) infinite: bool,
    pub(super) invisible: bool,
    pub(super) width: Option<f64>,
    pub(super) dashed: Option<f64>,
    pub(super) alpha: Option<f64>,
}

impl Line {
    fn flag(s: &Series, key: &str) -> bool {
        s.options
            .get(key)
            .is_some_and(|v| v != "false" && v != "0" && !v.is_empty())
    }

    fn number(s: &Series, key: &str) -> Option<f64> {
        s.options.get(key).and_then(|v| v.parse().ok())
    }
}

/// What was drawn, for SVG's `metadata` block.
pub struct Drawn {
    pub metadata: String,
}

pub(super) struct Graph<'a, C: Canvas> {
    pub(super) c: &'a mut C,
    pub(super) o: &'a Options,
    pub(super) hinted: bool,
    pub(super) area: Area,
    pub(super) style: Style,
    pub(super) fg: Color,
}

impl<C: Canvas> Graph<'_, C> {
    pub(super) fn extents(&self, size: f64) -> font::Extents {
        font::extents(size, self.style, self.hinted)
    }

    pub(super) fn width(&self, text: &str, size: f64) -> f64 {
        font::width(text, size, self.style, self.hinted)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn text(
        &mut self,
        text: &str,
        x: f64,
        y: f64,
        size: f64,
        align: Align,
        valign: Valign,
        rotate: f64,
    ) {
        self.text_in(text, x, y, size, align, valign, rotate, self.fg);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn text_in(
        &mut self,
        text: &str,
        x: f64,
        y: f64,
        size: f64,
        align: Align,
        valign: Valign,
        rotate: f64,
        color: Color,
    ) {
        self.c.text(&Text {
            text,
            x,
            y,
            size,
            style: self.style,
            color,
            align,
            valign,
            rotate,
            hinted: self.hinted,
        });
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), width: f64, color: Color) {
        let mut p = Path::new();
        p.move_to(x1, y1);
        p.line_to(x2, y2);
        self.c.stroke(
            &p,
            &Stroke {
                color,
                width,
                dash: Vec::new(),
            },
        );
    }

    fn title_size(&self) -> f64 {
        self.o.font_size + self.o.font_size.ln().floor()
    }

    fn titles(&mut self, two_axes: bool) {
        let size = self.title_size();
        let lh = self.extents(size).height;
        let w = f64::from(self.o.width);
        let h = f64::from(self.o.height);
        if !self.o.title.is_empty() {
            self.c.group(Some("title"));
            let mut y = self.area.ymin;
            for line in self.o.title.clone().split('\n') {
                self.text(line, w / 2.0, y, size, Align::Center, Valign::Top, 0.0);
                y += lh;
            }
            self.area.ymin = y + self.o.margin;
        }
        if !self.o.vtitle.is_empty() {
            self.c.group(Some("vtitle"));
            let mut x = self.area.xmin + lh;
            for line in self.o.vtitle.clone().split('\n') {
                self.text(
                    line,
                    x,
                    h / 2.0,
                    size,
                    Align::Center,
                    Valign::Baseline,
                    270.0,
                );
                x += lh;
            }
            self.area.xmin = x + self.o.margin + lh;
        }
        if two_axes && !self.o.vtitle_right.is_empty() {
            self.c.group(Some("vtitleRight"));
            let mut x = self.area.xmax - lh;
            for line in self.o.vtitle_right.clone().split('\n') {
                self.text(
                    line,
                    x,
                    h / 2.0,
                    size,
                    Align::Center,
                    Valign::Baseline,
                    90.0,
                );
                x -= lh;
            }
            self.area.xmax = x - self.o.margin - lh;
        }
    }
}

/// graphite-web's `dataLimits`: the smallest and largest values drawn (the
/// largest of the stacked sums when stacking), 0 and 1 when there are none.
fn data_limits(lines: &[&Line], null_as_zero: bool, stacked: bool) -> (f64, f64) {
    let finite: Vec<&&Line> = lines.iter().filter(|l| !l.infinite).collect();
    let missing = lines.iter().any(|l| l.s.values.iter().any(Option::is_none));
    let usable = |v: &Option<f64>| v.filter(|x| x.is_finite());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for l in &finite {
        for v in l.s.view().iter().filter_map(usable) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if lo == f64::INFINITY {
        return (0.0, 1.0);
    }
    if lo > 0.0 && null_as_zero && missing {
        lo = 0.0;
    }
    if stacked {
        let len = finite.iter().map(|l| l.s.values.len()).min().unwrap_or(0);
        hi = (0..len)
            .map(|i| {
                finite
                    .iter()
                    .filter_map(|l| usable(&l.s.values[i]))
                    .sum::<f64>()
            })
            .fold(f64::NEG_INFINITY, f64::max);
    }
    if hi < 0.0 && null_as_zero && missing {
        hi = 0.0;
    }
    (lo, hi)
}

/// graphite-web's `consolidateDataPoints`: points per pixel for each series.
fn consolidate(lines: &mut [Line], area: &Area, line_width: f64, time_range: f64, min_x_step: f64) {
    let pixels = area.xmax - area.xmin - (line_width + 1.0);
    for l in lines.iter_mut() {
        let n = time_range / l.s.step.max(1) as f64;
        let best = if n > 0.0 { pixels / n } else { pixels };
        if best < min_x_step {
            let drawable = (pixels / min_x_step).floor().max(1.0);
            let per_pixel = (n / drawable).ceil().max(1.0);
            l.s.values_per_point = per_pixel as usize;
            l.x_step = pixels * per_pixel / n;
        } else {
            l.x_step = best;
        }
    }
}

/// Draws `series` on `c`. `hinted`: whole-pixel font metrics (PNG).
pub fn draw<C: Canvas>(
    c: &mut C,
    series: Vec<Series>,
    o: &Options,
    tz: Tz,
    hinted: bool,
) -> Result<Drawn, String> {
    let (w, h) = (f64::from(o.width), f64::from(o.height));
    let style = Style {
        bold: o.font_bold,
        italic: o.font_italic,
    };
    let fg = color::parse(&o.foreground)?;
    let bg = color::parse(&o.background)?;
    c.fill_rect(0.0, 0.0, w, h, bg);
    let mut g = Graph {
        c,
        o,
        hinted,
        area: Area {
            xmin: o.margin + 10.0,
            xmax: w - o.margin,
            ymin: o.margin,
            ymax: h - o.margin,
        },
        style,
        fg,
    };
    if o.graph_only {
        g.area = Area {
            xmin: 0.0,
            xmax: w,
            ymin: 0.0,
            ymax: h,
        };
    }
    let start = series.iter().map(|s| s.start).min();
    let end = series.iter().map(|s| s.end).max();
    let (Some(start_all), Some(end_all)) = (start, end) else {
        return Ok(no_data(&mut g));
    };
    if end_all - start_all == 0 {
        return Ok(no_data(&mut g));
    }

    // Colours in series order, skipping series that have their own.
    let mut palette = o.colors.iter().cycle();
    let mut lines = Vec::with_capacity(series.len());
    for s in series {
        let color_name = match s.options.get("color") {
            Some(c) => c.clone(),
            None => palette.next().cloned().unwrap_or_else(|| "black".into()),
        };
        let color = color::parse(&color_name)?;
        lines.push(Line {
            stacked: Line::flag(&s, "stacked"),
            second: Line::flag(&s, "secondYAxis"),
            infinite: Line::flag(&s, "drawAsInfinite"),
            invisible: Line::flag(&s, "invisible"),
            width: Line::number(&s, "lineWidth"),
            dashed: Line::number(&s, "dashed"),
            alpha: Line::number(&s, "alpha"),
            color_name,
            color,
            x_step: 1.0,
            s,
        });
    }
    let two_axes = lines.iter().any(|l| l.second);
    let mut line_mode = o.line_mode;
    if line_mode == LineMode::Slope && lines.iter().any(|l| l.s.values.len() == 1) {
        line_mode = LineMode::Staircase;
    }

    g.titles(two_axes);
    let hide_legend = o.hide_legend.unwrap_or(lines.len() > 10);
    if !hide_legend {
        let entries = super::legend::legend_entries(&lines, o);
        g.legend(&entries, two_axes);
    }
    let ascent = g.extents(o.font_size).ascent;
    if !o.hide_axes && !o.hide_x_axis {
        g.area.ymax -= 2.0 * ascent;
    }
    let end_time = lines
        .iter()
        .map(|l| {
            if line_mode == LineMode::Staircase {
                l.s.end
            } else {
                l.s.end - l.s.step
            }
        })
        .max()
        .unwrap_or(end_all);
    let time_range = (end_time - start_all) as f64;

    // The Y axes, and the room their labels take, until the plot stays put.
    let labels = !o.hide_axes;
    let stacked_mode = o.area_mode == AreaMode::Stacked;
    let mut axes;
    let mut rounds = 0;
    loop {
        consolidate(&mut lines, &g.area, o.line_width, time_range, o.min_x_step);
        let left: Vec<&Line> = lines.iter().filter(|l| !two_axes || !l.second).collect();
        let (lo, hi) = data_limits(&left, o.draw_null_as_zero, stacked_mode);
        let settings = if two_axes { &o.y_left } else { &o.y };
        let left_axis = YAxis::new(lo, hi, settings, labels || two_axes)?;
        let right_axis = if two_axes {
            let right: Vec<&Line> = lines.iter().filter(|l| l.second).collect();
            let (lo, hi) = data_limits(&right, o.draw_null_as_zero, stacked_mode);
            Some(YAxis::new(lo, hi, &o.y_right, true)?)
        } else {
            None
        };
        let before = g.area;
        let wl = widest(&g, &left_axis);
        if let Some(r) = &right_axis {
            g.area.xmin = g.area.xmin.max(g.o.margin + 1.02 * wl);
            let x_max = w - 1.02 * widest(&g, r);
            if g.area.xmax >= x_max {
                g.area.xmax = x_max;
            }
        } else if !o.hide_y_axis {
            g.area.xmin = g.area.xmin.max(g.o.margin + 1.02 * wl);
        }
        axes = (left_axis, right_axis);
        rounds += 1;
        if g.area == before || rounds >= 10 {
            break;
        }
    }
    let (left_axis, right_axis) = axes;
    let area = g.area;
    let graph_width = area.xmax - area.xmin - (o.line_width + 1.0);
    let x_scale = if time_range > 0.0 {
        graph_width / time_range
    } else {
        0.0
    };
    let config = axis::x_config(
        if graph_width > 0.0 {
            time_range / graph_width
        } else {
            f64::INFINITY
        },
        end_time - start_all,
    );
    let start_dt = tz.timestamp_opt(start_all, 0).single();
    let end_dt = tz.timestamp_opt(end_time, 0).single();
    let x_of = |t: &chrono::DateTime<chrono::FixedOffset>| {
        area.xmin + (t.timestamp() - start_all) as f64 * x_scale
    };

    if !o.hide_axes {
        g.c.group(Some("axes"));
        let fg = g.fg;
        let y_of = |a: &YAxis, v: f64| a.coord(v, area.ymin, area.ymax).map(|y| y.max(0.0));
        if !o.hide_y_axis {
            let wl = widest(&g, &left_axis);
            for (v, text) in &left_axis.labels {
                if let Some(y) = y_of(&left_axis, *v) {
                    g.text_in(
                        text,
                        area.xmin - 0.02 * wl,
                        y,
                        o.font_size,
                        Align::Right,
                        Valign::Middle,
                        0.0,
                        fg,
                    );
                }
            }
            if let Some(r) = &right_axis {
                let wr = widest(&g, r);
                for (v, text) in &r.labels {
                    if let Some(y) = y_of(r, *v) {
                        g.text_in(
                            text,
                            area.xmax + 0.02 * wr + 3.0,
                            y,
                            o.font_size,
                            Align::Left,
                            Valign::Middle,
                            0.0,
                            fg,
                        );
                    }
                }
            }
        }
        if let (Some(s), Some(e)) = (start_dt, end_dt) {
            if !o.hide_x_axis {
                let format = o.x_format.as_deref().unwrap_or(config.format);
                for t in axis::x_times(s, e, config.label) {
                    let text = t.format(format).to_string();
                    g.text(
                        &text,
                        x_of(&t),
                        area.ymax + ascent,
                        o.font_size,
                        Align::Center,
                        Valign::Top,
                        0.0,
                    );
                }
            }
            if !o.hide_grid {
                g.c.group(Some("grid"));
                let major = color::parse(&o.major_grid)?;
                let minor = color::parse(&o.minor_grid)?;
                let values: Vec<f64> = left_axis.labels.iter().map(|l| l.0).collect();
                let top_limit = left_axis.top * left_axis.log_base.map_or(1.0, |b| b * b);
                for (i, v) in values.iter().enumerate() {
                    if let Some(y) = left_axis
                        .coord(*v, area.ymin, area.ymax)
                        .filter(|y| *y >= 0.0)
                    {
                        g.line((area.xmin, y), (area.xmax, y), 0.4, major);
                    }
                    if let (Some(next), true) = (values.get(i + 1), o.minor_y >= 1) {
                        let (lo, hi) = if v < next { (*v, *next) } else { (*next, *v) };
                        let d = (hi - lo) / f64::from(1 + o.minor_y);
                        // Lines closer than a pixel would only paint the gap
                        // over (and cost a stroke each): left out.
                        let rows = |v: f64| left_axis.coord(v, area.ymin, area.ymax);
                        if let (Some(a), Some(b)) = (rows(lo), rows(hi)) {
                            if (a - b).abs() / f64::from(1 + o.minor_y) < 1.0 {
                                continue;
                            }
                        }
                        for m in 1..=o.minor_y {
                            let value = lo + f64::from(m) * d;
                            if value >= top_limit {
                                continue;
                            }
                            if let Some(y) = left_axis
                                .coord(value, area.ymin, area.ymax)
                                .filter(|y| *y >= 0.0)
                            {
                                g.line((area.xmin, y), (area.xmax, y), 0.3, minor);
                            }
                        }
                    }
                }
                for (unit, width, color) in
                    [(config.minor, 0.25, minor), (config.major, 0.33, major)]
                {
                    for t in axis::x_times(s, e, unit) {
                        let x = x_of(&t);
                        if x < area.xmax {
                            g.line((x, area.ymax), (x, area.ymin), width, color);
                        }
                    }
                }
                let mut p = Path::new();
                p.move_to(area.xmax, area.ymax);
                p.line_to(area.xmax, area.ymin);
                p.move_to(area.xmin, area.ymax);
                p.line_to(area.xmin, area.ymin);
                g.c.stroke(
                    &p,
                    &Stroke {
                        color: major,
                        width: 0.5,
                        dash: Vec::new(),
                    },
                );
            }
        }
    }

    // Stacking and filling.
    if lines.iter().any(|l| l.stacked) {
        let (mut stacked, rest): (Vec<Line>, Vec<Line>) =
            lines.into_iter().partition(|l| l.stacked);
        stacked.extend(rest);
        lines = stacked;
    }
    match o.area_mode {
        AreaMode::Stacked if !two_axes => {
            let mut total: Vec<f64> = Vec::new();
            for l in lines.iter_mut().filter(|l| !l.infinite) {
                l.stacked = true;
                for (i, v) in l.s.values.iter_mut().enumerate() {
                    if total.len() <= i {
                        total.push(0.0);
                    }
                    if let Some(x) = v {
                        let original = *x;
                        *x += total[i];
                        total[i] += original;
                    }
                }
            }
        }
        AreaMode::First => {
            if let Some(l) = lines.first_mut() {
                l.stacked = true;
            }
        }
        AreaMode::All => {
            for l in lines.iter_mut().filter(|l| !l.infinite) {
                l.stacked = true;
            }
        }
        _ => {}
    }
    if let Some(alpha) = o.area_alpha {
        let mut outlines = Vec::new();
        for l in lines.iter_mut().filter(|l| l.stacked) {
            l.alpha = Some(alpha);
            let mut s = l.s.derive(l.s.name.clone(), l.s.points());
            s.step = l.s.step * l.s.values_per_point.max(1) as i64;
            s.values_per_point = 1;
            outlines.push(Line {
                s,
                color_name: l.color_name.clone(),
                color: l.color,
                x_step: l.x_step,
                stacked: false,
                second: l.second,
                infinite: false,
                invisible: false,
                width: None,
                dashed: None,
                alpha: None,
            });
        }
        lines.extend(outlines);
    }

    g.c.group(Some("lines"));
    // Lines and areas are cut to the plot, as graphite-web's.
    g.c.clip(Some([
        area.xmin,
        area.ymin,
        area.xmax - area.xmin,
        area.ymax - area.ymin,
    ]));
    // Stacked areas first, the last one first: each one drawn after covers
    // what the ones before it would have kept graphite-web from painting.
    let order: Vec<usize> = {
        let (stacked, rest): (Vec<usize>, Vec<usize>) =
            (0..lines.len()).partition(|i| lines[*i].stacked);
        stacked.into_iter().rev().chain(rest).collect()
    };
    for i in order {
        let l = &lines[i];
        let axis = match (&right_axis, l.second && two_axes) {
            (Some(r), true) => r,
            _ => &left_axis,
        };
        super::path::draw_line(&mut g, l, axis, o, line_mode, start_all);
    }
    g.c.group(None);
    g.c.clip(None);

    let y = if two_axes { None } else { Some(&left_axis) };
    let metadata = if g.c.keeps_metadata() {
        super::metadata::metadata(o, &lines, &area, start_all, end_time, y)
    } else {
        String::new()
    };
    Ok(Drawn { metadata })
}

/// The widest of an axis's labels.
fn widest<C: Canvas>(g: &Graph<C>, a: &YAxis) -> f64 {
    a.labels
        .iter()
        .map(|l| g.width(&l.1, g.o.font_size))
        .fold(0.0, f64::max)
}

fn no_data<C: Canvas>(g: &mut Graph<C>) -> Drawn {
    let (w, h) = (f64::from(g.o.width), f64::from(g.o.height));
    let size = (w * h).ln();
    g.text_in(
        "No Data",
        w / 2.0,
        h / 2.0,
        size,
        Align::Center,
        Valign::Top,
        0.0,
        Color::rgb(200, 0, 50),
    );
    Drawn {
        metadata: "{}".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canvas that keeps what was drawn.
    #[derive(Default)]
    struct Recorder {
        texts: Vec<(String, f64, f64)>,
        strokes: Vec<(Path, Stroke)>,
        fills: usize,
    }

    impl Canvas for Recorder {
        fn fill_rect(&mut self, _: f64, _: f64, _: f64, _: f64, _: Color) {}
        fn stroke(&mut self, path: &Path, stroke: &Stroke) {
            self.strokes.push((path.clone(), stroke.clone()));
        }
        fn fill(&mut self, _: &Path, _: Color) {
            self.fills += 1;
        }
        fn text(&mut self, t: &Text) {
            self.texts.push((t.text.to_string(), t.x, t.y));
        }
        fn clip(&mut self, _: Option<[f64; 4]>) {}
        fn keeps_metadata(&self) -> bool {
            true
        }
    }

    fn options(q: &[(&str, &str)]) -> Options {
        Options::parse(|k| q.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)).expect("options")
    }

    fn ramp(name: &str, n: usize) -> Series {
        let values = (0..n).map(|i| Some(i as f64)).collect();
        Series::new(name.into(), 0, 60 * n as i64, 60, values, 0.0)
    }

    fn draw_on(series: Vec<Series>, q: &[(&str, &str)]) -> (Recorder, Drawn) {
        let mut r = Recorder::default();
        let d = draw(&mut r, series, &options(q), chrono_tz::UTC, true).expect("drawn");
        (r, d)
    }

    #[test]
    fn layout_as_graphite_web() {
        let (r, d) = draw_on(vec![ramp("a.b", 101)], &[("title", "T")]);
        // The title centred at the top, the legend's name, the Y labels.
        assert!(r
            .texts
            .iter()
            .any(|(t, x, y)| t == "T" && *x == 165.0 && *y == 10.0));
        assert!(r.texts.iter().any(|(t, _, _)| t == "a.b"));
        assert!(r.texts.iter().any(|(t, _, _)| t == "100.0 "));
        let m: serde_json::Value = serde_json::from_str(&d.metadata).expect("json");
        // Title (10 + 14 + 10), legend (13 + 5) and X labels (2 x 10) taken.
        assert_eq!(m["area"]["ymin"], 34.0);
        assert_eq!(m["area"]["ymax"], 250.0 - 10.0 - 18.0 - 20.0);
        assert_eq!(m["y"]["labels"][0], "0 ");
        // The series is one stroke, the last stroke drawn.
        let (path, stroke) = r.strokes.last().expect("a line");
        assert_eq!(stroke.width, 1.2);
        assert_eq!(path.segs.len(), 101);
    }

    #[test]
    fn nulls_break_lines_and_stacks_fill() {
        let mut s = ramp("a", 20);
        s.values[10] = None;
        let (r, _) = draw_on(vec![s.clone()], &[("hideLegend", "true")]);
        let (path, _) = r.strokes.last().expect("a line");
        let moves = path
            .segs
            .iter()
            .filter(|s| matches!(s, crate::server::web::graph::canvas::Seg::Move(..)))
            .count();
        assert_eq!(moves, 2, "a new subpath after the gap");
        let (r, _) = draw_on(vec![s, ramp("b", 20)], &[("areaMode", "stacked")]);
        assert_eq!(r.fills, 3, "one area per unbroken run of each series");
    }

    #[test]
    fn infinite_lines_and_connected_limits() {
        let mut s = ramp("a", 5);
        s.values = vec![Some(0.0), Some(0.0), Some(1.0), Some(0.0), Some(0.0)];
        s.options.insert("drawAsInfinite".into(), "true".into());
        let (r, _) = draw_on(vec![s], &[("hideLegend", "true")]);
        // The points before the vertical line, stroked with it; the ones
        // after it a new path: no segment across.
        let last = &r.strokes.last().expect("strokes").0;
        assert_eq!(last.segs.len(), 2, "{last:?}");
        let mut s = ramp("a", 12);
        for v in &mut s.values[4..8] {
            *v = None;
        }
        let moves = |q: &[(&str, &str)]| {
            let (r, _) = draw_on(vec![s.clone()], q);
            let path = &r.strokes.last().expect("line").0;
            path.segs
                .iter()
                .filter(|s| matches!(s, crate::server::web::graph::canvas::Seg::Move(..)))
                .count()
        };
        assert_eq!(moves(&[("lineMode", "connected")]), 1, "the gap bridged");
        assert_eq!(
            moves(&[("lineMode", "connected"), ("connectedLimit", "3")]),
            2
        );
        assert_eq!(
            moves(&[("lineMode", "connected"), ("connectedLimit", "4")]),
            1
        );
    }

    #[test]
    fn no_data_and_limits() {
        let (r, d) = draw_on(Vec::new(), &[]);
        assert_eq!(r.texts.len(), 1);
        assert_eq!(r.texts[0].0, "No Data");
        assert_eq!(d.metadata, "{}");
        let mut r = Recorder::default();
        let bad = options(&[("yMin", "5"), ("yMax", "1")]);
        assert!(draw(&mut r, vec![ramp("a", 5)], &bad, chrono_tz::UTC, true).is_err());
        let lines = [Line {
            s: {
                let mut s = ramp("x", 3);
                s.values[1] = None;
                s
            },
            color_name: "blue".into(),
            color: Color::rgb(0, 0, 255),
            x_step: 1.0,
            stacked: false,
            second: false,
            infinite: false,
            invisible: false,
            width: None,
            dashed: None,
            alpha: None,
        }];
        let refs: Vec<&Line> = lines.iter().collect();
        assert_eq!(data_limits(&refs, false, false), (0.0, 2.0));
        assert_eq!(data_limits(&[], false, false), (0.0, 1.0));
    }
}
