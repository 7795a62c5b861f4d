//! The time series of a render: graphite-web's `TimeSeries`, with its
//! lazy consolidation (`valuesPerPoint`, `consolidateBy`, xFilesFactor).

use std::collections::BTreeMap;

pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub values: Vec<Option<f64>>,
    pub tags: Tags,
    pub path_expression: String,
    /// `average`, `sum`, `min`, `max`, `first`, `last`, `avg_zero`.
    pub consolidation: String,
    pub values_per_point: usize,
    pub xff: f64,
    /// Graph options set by functions (`color`, `stacked`...), kept for drawing.
    pub options: BTreeMap<String, String>,
}

/// The tags graphite-web reads from a name: `path;k=v;...` gives the
/// pairs and `name=path`; any other name (and a function-wrapped one)
/// gives `name` only.
pub fn tags_of(name: &str) -> Tags {
    let mut tags = Tags::new();
    let wrapped = {
        let b = name.as_bytes();
        let letters = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
        letters > 0 && b.get(letters) == Some(&b'(') && b.len() > letters + 2 && b.ends_with(b")")
    };
    if !wrapped && name.contains(';') {
        let mut parts = name.split(';');
        let metric = parts.next().unwrap_or("");
        let mut ok = true;
        for seg in parts {
            match seg.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    tags.insert(k.to_string(), v.to_string());
                }
                _ => ok = false,
            }
        }
        if ok {
            tags.insert("name".into(), metric.to_string());
            return tags;
        }
        tags.clear();
    }
    tags.insert("name".into(), name.to_string());
    tags
}

impl Series {
    pub fn new(
        name: String,
        start: i64,
        end: i64,
        step: i64,
        values: Vec<Option<f64>>,
        xff: f64,
    ) -> Self {
        let tags = tags_of(&name);
        Series {
            path_expression: name.clone(),
            name,
            start,
            end,
            step,
            values,
            tags,
            consolidation: "average".into(),
            values_per_point: 1,
            xff,
            options: BTreeMap::new(),
        }
    }

    /// A new series from this one's settings (graphite-web's `copy`):
    /// consolidation function, tags and xFilesFactor kept.
    pub fn derive(&self, name: String, values: Vec<Option<f64>>) -> Self {
        Series {
            path_expression: name.clone(),
            name,
            values,
            values_per_point: 1,
            options: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// Renames, keeping the tags (graphite-web's `series.name = ...`).
    pub fn rename(&mut self, name: String) {
        self.path_expression = name.clone();
        self.name = name;
    }

    /// The values as iterated in graphite-web: consolidated by
    /// `values_per_point` when above 1.
    pub fn points(&self) -> Vec<Option<f64>> {
        if self.values_per_point <= 1 {
            return self.values.clone();
        }
        let f = Func::of(&self.consolidation);
        self.values
            .chunks(self.values_per_point)
            .map(|chunk| consolidate_by(f, chunk, self.values_per_point, self.xff))
            .collect()
    }

    /// The values as iterated, borrowed when there is nothing to
    /// consolidate (the common case: no copy of a day of points).
    pub fn view(&self) -> std::borrow::Cow<'_, [Option<f64>]> {
        if self.values_per_point <= 1 {
            std::borrow::Cow::Borrowed(&self.values)
        } else {
            std::borrow::Cow::Owned(self.points())
        }
    }

    /// Consolidated length.
    pub fn len(&self) -> usize {
        self.values.len().div_ceil(self.values_per_point.max(1))
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(value, timestamp)` pairs as graphite-web's `datapoints()`.
    pub fn datapoints(&self) -> Vec<(Option<f64>, i64)> {
        let step = self.step * self.values_per_point.max(1) as i64;
        let points = self.view();
        let mut out = Vec::with_capacity(points.len());
        let mut t = self.start;
        for &v in points.iter() {
            if t > self.end {
                break;
            }
            out.push((v, t));
            t += step.max(1);
        }
        out
    }
}

/// A consolidation function, its name matched once per series rather
/// than once per point.
#[derive(Clone, Copy, PartialEq)]
enum Func {
    Average,
    AvgZero,
    Sum,
    Max,
    Min,
    First,
    Last,
}

impl Func {
    /// graphite-web's names; anything else averages, as there.
    fn of(name: &str) -> Func {
        match name {
            "avg_zero" => Func::AvgZero,
            "sum" => Func::Sum,
            "max" => Func::Max,
            "min" => Func::Min,
            "first" => Func::First,
            "last" => Func::Last,
            _ => Func::Average,
        }
    }
}

/// One consolidated point of `chunk` (of `per_point` slots at most).
pub fn consolidate(func: &str, chunk: &[Option<f64>], per_point: usize, xff: f64) -> Option<f64> {
    consolidate_by(Func::of(func), chunk, per_point, xff)
}

/// `consolidate` in one pass and without a copy of the chunk: a graph
/// consolidates every series once per pixel column, several times over.
fn consolidate_by(func: Func, chunk: &[Option<f64>], per_point: usize, xff: f64) -> Option<f64> {
    // (The sum starts as `Iterator::sum` does, so results do not move.)
    let (mut sum, mut used, mut non_null) = (-0.0f64, 0usize, 0usize);
    let (mut max, mut min) = (f64::NEG_INFINITY, f64::INFINITY);
    let (mut first, mut last) = (None, None);
    for v in chunk {
        let x = match v {
            Some(x) => {
                non_null += 1;
                *x
            }
            None if func == Func::AvgZero => 0.0,
            None => continue,
        };
        sum += x;
        used += 1;
        max = py_max(max, x);
        min = py_min(min, x);
        first.get_or_insert(x);
        last = Some(x);
    }
    if non_null == 0 || (non_null as f64 / per_point as f64) < xff {
        return None;
    }
    match func {
        Func::Sum => Some(sum),
        Func::Max => Some(max),
        Func::Min => Some(min),
        Func::First => first,
        Func::Last => last,
        Func::Average | Func::AvgZero => Some(sum / used as f64),
    }
}

/// Python's `max` over two floats (the first wins ties and NaN).
pub fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

pub fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_from_names() {
        assert_eq!(tags_of("a.b").get("name").map(String::as_str), Some("a.b"));
        let t = tags_of("cpu;host=a;dc=x");
        assert_eq!(t.get("name").map(String::as_str), Some("cpu"));
        assert_eq!(t.get("host").map(String::as_str), Some("a"));
        assert_eq!(tags_of("sumSeries(a;b=c)").len(), 1);
        assert_eq!(
            tags_of("a;=b").get("name").map(String::as_str),
            Some("a;=b")
        );
    }

    #[test]
    fn consolidation_as_graphite_web() {
        let mut s = Series::new(
            "a".into(),
            60,
            360,
            60,
            vec![Some(1.0), None, Some(3.0), None, None],
            0.0,
        );
        s.values_per_point = 2;
        assert_eq!(s.points(), vec![Some(1.0), Some(3.0), None]);
        assert_eq!(
            s.datapoints(),
            vec![(Some(1.0), 60), (Some(3.0), 180), (None, 300)]
        );
        s.consolidation = "sum".into();
        s.xff = 0.6;
        assert_eq!(s.points(), vec![None, None, None]);
        assert_eq!(
            consolidate("avg_zero", &[Some(4.0), None], 2, 0.0),
            Some(2.0)
        );
        let chunk = [None, Some(2.0), Some(-1.0), Some(5.0), None];
        for (func, want) in [
            ("average", 2.0),
            ("avg_zero", 1.2),
            ("sum", 6.0),
            ("max", 5.0),
            ("min", -1.0),
            ("first", 2.0),
            ("last", 5.0),
        ] {
            assert_eq!(consolidate(func, &chunk, 5, 0.5), Some(want), "{func}");
        }
        assert_eq!(consolidate("max", &chunk, 5, 0.7), None);
        assert_eq!(consolidate("sum", &[None, None], 2, 0.0), None);
    }
}
