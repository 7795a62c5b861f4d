//! graphite-web's SVG `metadata`: the frame and every drawn series, for
//! the scripts that read graphite-web's SVGs.

use super::axis::YAxis;
use super::line::{Area, Line};
use super::options::Options;

/// graphite-web's SVG `metadata`: the frame, and every drawn series.
pub(super) fn metadata(
    o: &Options,
    lines: &[Line],
    area: &Area,
    start: i64,
    end: i64,
    y: Option<&YAxis>,
) -> String {
    use serde_json::{json, Map, Value};
    let num = |v: f64| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
    let series: Vec<Value> = lines
        .iter()
        .filter(|l| !l.stacked)
        .map(|l| {
            let options: Map<String, Value> =
                l.s.options
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
            json!({
                "name": l.s.name,
                "start": l.s.start,
                "end": l.s.end,
                "step": l.s.step,
                "valuesPerPoint": l.s.values_per_point,
                "color": l.color_name,
                "data": l.s.values.iter().map(|v| v.map_or(Value::Null, num)).collect::<Vec<_>>(),
                "options": options,
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("x".into(), json!({"start": start, "end": end}));
    m.insert("options".into(), json!({"lineWidth": num(o.line_width)}));
    m.insert(
        "font".into(),
        json!({"name": "Sans", "size": o.font_size as i64, "bold": o.font_bold, "italic": o.font_italic}),
    );
    m.insert(
        "area".into(),
        json!({"xmin": num(area.xmin), "xmax": num(area.xmax), "ymin": num(area.ymin), "ymax": num(area.ymax)}),
    );
    m.insert("series".into(), Value::Array(series));
    if let Some(a) = y {
        m.insert(
            "y".into(),
            json!({
                "top": num(a.top),
                "bottom": num(a.bottom),
                "step": a.step.map_or(Value::Null, num),
                "labels": a.labels.iter().map(|l| l.1.clone()).collect::<Vec<_>>(),
                "labelValues": a.labels.iter().map(|l| num(l.0)).collect::<Vec<_>>(),
            }),
        );
    }
    Value::Object(m).to_string()
}
