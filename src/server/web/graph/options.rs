//! The graph options of a render URL, read as graphite-web reads them:
//! `true`/`false` in any case, `default` or an empty value as not given,
//! and a clear error naming the option for a value that cannot be read.

use super::axis::{Max, Settings, Units};
use super::color::{self, Template};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineMode {
    Slope,
    Staircase,
    Connected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AreaMode {
    None,
    First,
    All,
    Stacked,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub width: u32,
    pub height: u32,
    pub margin: f64,
    pub background: String,
    pub foreground: String,
    pub major_grid: String,
    pub minor_grid: String,
    pub colors: Vec<String>,
    pub font_size: f64,
    pub font_bold: bool,
    pub font_italic: bool,
    pub title: String,
    pub vtitle: String,
    pub vtitle_right: String,
    pub line_mode: LineMode,
    pub line_width: f64,
    pub area_mode: AreaMode,
    pub area_alpha: Option<f64>,
    /// None: hidden when there are more than 10 series.
    pub hide_legend: Option<bool>,
    pub hide_axes: bool,
    pub hide_grid: bool,
    pub hide_x_axis: bool,
    pub hide_y_axis: bool,
    pub graph_only: bool,
    pub unique_legend: bool,
    pub hide_null_from_legend: bool,
    /// The Y axis (one axis), or the left one (two axes).
    pub y: Settings,
    /// With two axes (a `secondYAxis` series), `yMinLeft`... and
    /// `yMinRight`...; the plain ones are then not read.
    pub y_left: Settings,
    pub y_right: Settings,
    pub minor_y: u32,
    pub draw_null_as_zero: bool,
    /// Nulls a connected line bridges (None: any number; negative: none).
    pub connected_limit: Option<i64>,
    pub min_x_step: f64,
    pub x_format: Option<String>,
}

/// A value as graphite-web passes it on: None for a missing, empty or
/// `default` one.
fn given<'a>(get: &impl Fn(&str) -> Option<&'a str>, key: &str) -> Option<&'a str> {
    get(key).filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("default"))
}

fn bad(key: &str, v: &str, want: &str) -> String {
    format!("Invalid value for {key}: {v:?} ({want})")
}

fn number<'a>(get: &impl Fn(&str) -> Option<&'a str>, key: &str) -> Result<Option<f64>, String> {
    match given(get, key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| bad(key, v, "a number")),
    }
}

/// An on/off option as Python's truth of graphite-web's value: `false`
/// and numbers equal to 0 are off, any other text is on.
fn flag<'a>(get: &impl Fn(&str) -> Option<&'a str>, key: &str) -> Result<Option<bool>, String> {
    Ok(given(get, key).map(|v| {
        if v.eq_ignore_ascii_case("false") {
            false
        } else {
            !v.trim().parse::<f64>().is_ok_and(|n| n == 0.0)
        }
    }))
}

/// `+` as a space and `%xx` decoded: graphite-web unquotes titles, colour
/// lists and legend names once more after the URL's own decoding.
pub fn unquote_plus(s: &str) -> String {
    let spaced = s.replace('+', " ");
    form_urlencoded::parse(format!("x={}", spaced.replace('&', "%26")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or(spaced)
}

fn axis_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    suffix: &str,
    common: &Settings,
) -> Result<Settings, String> {
    let key = |k: &str| format!("{k}{suffix}");
    let mut s = common.clone();
    s.min = number(get, &key("yMin"))?;
    if s.min.is_none() && suffix.is_empty() {
        s.min = number(get, "min")?;
    }
    let max = given(get, &key("yMax")).or_else(|| {
        if suffix.is_empty() {
            given(get, "max")
        } else {
            None
        }
    });
    s.max = match max {
        None => None,
        Some("max") => Some(Max::Extremum),
        Some(v) => Some(Max::Value(
            v.trim()
                .parse()
                .map_err(|_| bad(&key("yMax"), v, "a number or max"))?,
        )),
    };
    s.limit = number(get, &key("yLimit"))?;
    s.step = number(get, &key("yStep"))?;
    Ok(s)
}

impl Options {
    /// The options of one request; `get` gives a parameter's value.
    pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Options, String> {
        let t: Template = color::template(given(&get, "template").unwrap_or("default"));
        let size = |key: &str, default: u32| -> Result<u32, String> {
            match number(&get, key)? {
                None => Ok(default),
                Some(v) if v >= 1.0 && v <= f64::from(u32::MAX) => Ok(v as u32),
                Some(v) => Err(bad(key, &v.to_string(), "a positive number of pixels")),
            }
        };
        let text = |key: &str| given(&get, key).map(unquote_plus).unwrap_or_default();
        let line_mode = match given(&get, "lineMode") {
            None | Some("slope") => LineMode::Slope,
            Some("staircase") => LineMode::Staircase,
            Some("connected") => LineMode::Connected,
            Some(v) => return Err(bad("lineMode", v, "slope, staircase or connected")),
        };
        let area_mode = match given(&get, "areaMode") {
            None | Some("none") => AreaMode::None,
            Some("first") => AreaMode::First,
            Some("all") => AreaMode::All,
            Some("stacked") => AreaMode::Stacked,
            Some(v) => return Err(bad("areaMode", v, "none, first, all or stacked")),
        };
        let colors = match given(&get, "colorList") {
            Some(v) => unquote_plus(v).split(',').map(String::from).collect(),
            None => t.line_colors.clone(),
        };
        for c in &colors {
            color::parse(c).map_err(|e| format!("colorList: {e}"))?;
        }
        let colour = |key: &str, default: &str| -> Result<String, String> {
            let v = given(&get, key).map_or_else(|| default.to_string(), unquote_plus);
            color::parse(&v).map_err(|e| format!("{key}: {e}"))?;
            Ok(v)
        };
        let divisors = match given(&get, "yDivisors") {
            None => vec![4, 5, 6],
            Some(v) => {
                let d: Result<Vec<u32>, _> =
                    v.split(',').map(|x| x.trim().parse::<u32>()).collect();
                match d {
                    Ok(d) if !d.is_empty() && d.iter().all(|x| *x >= 1) => d,
                    _ => return Err(bad("yDivisors", v, "whole numbers of at least 1")),
                }
            }
        };
        let log_base = match given(&get, "logBase") {
            None => None,
            Some("e") => Some(std::f64::consts::E),
            Some(v) => {
                let b: f64 = v.parse().map_err(|_| bad("logBase", v, "a number or e"))?;
                if b < 1.0 {
                    None
                } else if b == 1.0 {
                    return Err(bad("logBase", v, "a base above 1"));
                } else {
                    Some(b)
                }
            }
        };
        let common = Settings {
            divisors,
            units: given(&get, "yUnitSystem").map_or(Units::Si, Units::parse),
            log_base,
            ..Settings::default()
        };
        let y = axis_settings(&get, "", &common)?;
        let y_left = axis_settings(&get, "Left", &common)?;
        let y_right = axis_settings(&get, "Right", &common)?;
        let line_width = match number(&get, "lineWidth")? {
            Some(w) => w,
            None => number(&get, "thickness")?.unwrap_or(1.2),
        };
        if !(0.0..=1000.0).contains(&line_width) {
            return Err(bad("lineWidth", &line_width.to_string(), "0 to 1000"));
        }
        let margin = number(&get, "margin")?.unwrap_or(10.0).trunc();
        if !margin.is_finite() || margin > 100_000.0 {
            return Err(bad("margin", &margin.to_string(), "a number of pixels"));
        }
        match given(&get, "pieMode") {
            None | Some("maximum" | "minimum" | "average") => {}
            Some(v) => return Err(bad("pieMode", v, "maximum, minimum or average")),
        }
        let font_size = number(&get, "fontSize")?.unwrap_or(t.font_size).trunc();
        if !(1.0..=1000.0).contains(&font_size) {
            return Err(bad("fontSize", &font_size.to_string(), "1 to 1000"));
        }
        // graphite-web: a false value is no areaAlpha, true is 1.0, and
        // text that is not a number 0.5.
        let area_alpha = match given(&get, "areaAlpha") {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("false") => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(1.0),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(0.0) => None,
                Ok(a) if a.is_nan() => return Err(bad("areaAlpha", v, "a number")),
                Ok(a) => Some(a.clamp(0.0, 1.0)),
                Err(_) => Some(0.5),
            },
        };
        let x_format = given(&get, "xFormat").map(String::from);
        if let Some(f) = &x_format {
            use chrono::format::{Item, StrftimeItems};
            if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
                return Err(bad("xFormat", f, "a strftime format such as %H:%M"));
            }
        }
        let mut o = Options {
            width: size("width", 330)?,
            height: size("height", 250)?,
            margin: if margin < 0.0 { 10.0 } else { margin },
            background: colour("bgcolor", &t.background)?,
            foreground: colour("fgcolor", &t.foreground)?,
            major_grid: colour("majorGridLineColor", &t.major_line)?,
            minor_grid: colour("minorGridLineColor", &t.minor_line)?,
            colors,
            font_size,
            font_bold: flag(&get, "fontBold")?.unwrap_or(t.font_bold),
            font_italic: flag(&get, "fontItalic")?.unwrap_or(t.font_italic),
            title: text("title"),
            vtitle: text("vtitle"),
            vtitle_right: text("vtitleRight"),
            line_mode,
            line_width,
            area_mode,
            area_alpha,
            hide_legend: flag(&get, "hideLegend")?,
            hide_axes: flag(&get, "hideAxes")?.unwrap_or(false),
            hide_grid: flag(&get, "hideGrid")?.unwrap_or(false),
            hide_x_axis: flag(&get, "hideXAxis")?.unwrap_or(false),
            hide_y_axis: flag(&get, "hideYAxis")?.unwrap_or(false),
            graph_only: flag(&get, "graphOnly")?.unwrap_or(false),
            unique_legend: flag(&get, "uniqueLegend")?.unwrap_or(false),
            hide_null_from_legend: flag(&get, "hideNullFromLegend")?.unwrap_or(false),
            y,
            y_left,
            y_right,
            minor_y: number(&get, "minorY")?.map_or(1, |v| v.clamp(0.0, 100.0) as u32),
            draw_null_as_zero: flag(&get, "drawNullAsZero")?.unwrap_or(false),
            connected_limit: number(&get, "connectedLimit")?
                .filter(|v| !v.is_nan())
                .map(|v| v.clamp(-1.0, 1e15) as i64),
            min_x_step: number(&get, "minXStep")?.unwrap_or(1.0).max(0.01),
            x_format,
        };
        if o.graph_only {
            o.hide_legend = Some(true);
            o.hide_grid = true;
            o.hide_axes = true;
            o.hide_x_axis = false;
            o.hide_y_axis = false;
            o.title.clear();
            o.vtitle.clear();
            o.margin = 0.0;
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<Options, String> {
        Options::parse(|k| q.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
    }

    #[test]
    fn defaults_as_graphite_web() {
        let o = parse(&[]).expect("defaults");
        assert_eq!((o.width, o.height, o.margin), (330, 250, 10.0));
        assert_eq!(
            (o.background.as_str(), o.foreground.as_str()),
            ("white", "black")
        );
        assert_eq!(o.colors[0], "blue");
        assert_eq!(o.line_width, 1.2);
        assert_eq!(o.hide_legend, None);
        assert_eq!(o.y.divisors, [4, 5, 6]);
    }

    #[test]
    fn values_and_errors() {
        let o = parse(&[
            ("width", "600"),
            ("title", "a+b%2Fc"),
            ("hideLegend", "TRUE"),
            ("yMax", "max"),
            ("yMin", "default"),
            ("colorList", "red,00ff00"),
            ("template", "solarized-dark"),
            ("logBase", "e"),
        ])
        .expect("options");
        assert_eq!(o.width, 600);
        assert_eq!(o.title, "a b/c");
        assert_eq!(o.hide_legend, Some(true));
        assert_eq!(o.y.max, Some(Max::Extremum));
        assert_eq!(o.y.min, None);
        assert_eq!(o.colors, ["red", "00ff00"]);
        assert_eq!(o.background, "#002b36");
        assert_eq!(o.y.log_base, Some(std::f64::consts::E));
        for (k, v) in [
            ("width", "wide"),
            ("width", "0"),
            ("lineMode", "zigzag"),
            ("areaMode", "some"),
            ("bgcolor", "nope"),
            ("colorList", "red, blue"),
            ("xFormat", "%Q"),
            ("pieMode", "most"),
            ("yDivisors", "0"),
            ("logBase", "1"),
        ] {
            let e = parse(&[(k, v)]).expect_err(k);
            assert!(e.contains(k) || e.contains("olor"), "{e}");
        }
        // On/off values as Python's truth: text is on, 0 and false off.
        let f = parse(&[
            ("hideAxes", "yes"),
            ("hideGrid", "0"),
            ("hideLegend", "false"),
        ])
        .expect("flags");
        assert!(f.hide_axes && !f.hide_grid && f.hide_legend == Some(false));
        // Two axes read yMinLeft..., one axis yMin...: both kept.
        let y = parse(&[("yMin", "1"), ("yMinLeft", "2"), ("thickness", "3")]).expect("y");
        assert_eq!(
            (y.y.min, y.y_left.min, y.line_width),
            (Some(1.0), Some(2.0), 3.0)
        );
        let g = parse(&[("graphOnly", "true"), ("title", "x")]).expect("graphOnly");
        assert!(g.hide_axes && g.title.is_empty() && g.margin == 0.0);
    }
}
