//! graphite-web's Combine group: series merged into fewer series.

use super::{
    agg_func, agg_key, input, normalize, path_expressions, rows, Args, Context, Result, Value,
};
use crate::server::web::grammar::{Call, Node};
use crate::server::web::series::{tags_of, Series, Tags};

pub const NAMES: &[&str] = &[
    "aggregate",
    "aggregateWithWildcards",
    "applyByNode",
    "asPercent",
    "averageSeries",
    "averageSeriesWithWildcards",
    "avg",
    "countSeries",
    "diffSeries",
    "divideSeries",
    "divideSeriesLists",
    "group",
    "groupByNode",
    "groupByNodes",
    "groupByTags",
    "maxSeries",
    "minSeries",
    "multiplySeries",
    "rangeOfSeries",
    "stddevSeries",
    "sum",
    "sumSeries",
    "sumSeriesWithWildcards",
];

pub fn lookup(name: &str) -> Option<super::Function> {
    Some(match name {
        "sumSeries" | "sum" => |a, c, _| series_of(a, c, "sum"),
        "averageSeries" | "avg" => |a, c, _| series_of(a, c, "average"),
        "maxSeries" => |a, c, _| series_of(a, c, "max"),
        "minSeries" => |a, c, _| series_of(a, c, "min"),
        "diffSeries" => |a, c, _| series_of(a, c, "diff"),
        "stddevSeries" => |a, c, _| series_of(a, c, "stddev"),
        "rangeOfSeries" => |a, c, _| series_of(a, c, "rangeOf"),
        "multiplySeries" => multiply_series,
        "countSeries" => count_series,
        "aggregate" => aggregate_fn,
        "group" => |a, _, _| Ok(Value::List(a.rest_series(0)?.concat())),
        "groupByNode" => group_by_node,
        "groupByNodes" => group_by_nodes,
        "aggregateWithWildcards" => aggregate_with_wildcards,
        "sumSeriesWithWildcards" => |a, c, call| with_wildcards(a, c, call, "sum"),
        "averageSeriesWithWildcards" => |a, c, call| with_wildcards(a, c, call, "average"),
        "divideSeries" => divide_series,
        "divideSeriesLists" => divide_series_lists,
        "asPercent" => as_percent,
        "applyByNode" => apply_by_node,
        "groupByTags" => group_by_tags,
        _ => return None,
    })
}

fn series_of(args: &mut Args, ctx: &Context, func: &str) -> Result<Value> {
    let lists = args.rest_series(0)?;
    aggregate(ctx, lists, func, None).map(Value::List)
}

fn multiply_series(args: &mut Args, ctx: &Context, _: &Call) -> Result<Value> {
    let lists = args.rest_series(0)?;
    if lists.len() == 1 && lists[0].len() == 1 {
        return Ok(Value::List(lists.into_iter().flatten().collect()));
    }
    aggregate(ctx, lists, "multiply", None).map(Value::List)
}

fn aggregate_fn(args: &mut Args, ctx: &Context, _: &Call) -> Result<Value> {
    let list = args.series(0, "seriesList")?;
    let func = args.string(1, "func")?;
    let xff = args.opt_number(2, "xFilesFactor")?.map(|n| n.0);
    aggregate(ctx, vec![list], &func, xff).map(Value::List)
}

/// graphite-web's `aggregate`: one series from many, row by row.
pub fn aggregate(
    ctx: &Context,
    lists: Vec<Vec<Series>>,
    func: &str,
    xff: Option<f64>,
) -> Result<Vec<Series>> {
    let short = func.strip_suffix("Series").unwrap_or(func);
    let Some(f) = agg_func(short) else {
        return input(format!("Unsupported aggregation function: {func}"));
    };
    let Some((all, start, end, step)) = normalize(lists) else {
        return Ok(Vec::new());
    };
    let xff = xff.unwrap_or(ctx.xff);
    let name = format!("{short}Series({})", path_expressions(&all));
    let cols: Vec<std::borrow::Cow<[Option<f64>]>> = all.iter().map(Series::view).collect();
    let values = match Fold::new(short) {
        Some(mut fold) => {
            for col in &cols {
                fold.add(col.iter().copied());
            }
            fold.values(xff)
        }
        None => {
            // Row by row through one buffer (`zip_longest` of the consolidated values).
            let n = cols.iter().map(|c| c.len()).max().unwrap_or(0);
            let mut row = Vec::with_capacity(cols.len());
            (0..n)
                .map(|i| {
                    row.clear();
                    row.extend(cols.iter().map(|c| c.get(i).copied().flatten()));
                    if xff_ok(&row, xff) {
                        f(&row)
                    } else {
                        None
                    }
                })
                .collect()
        }
    };
    let mut tags: Tags = all[0].tags.clone();
    for s in &all[1..] {
        tags.retain(|k, v| s.tags.get(k) == Some(v));
    }
    Ok(vec![aggregated(
        name, short, tags, start, end, step, values, xff,
    )])
}

/// The series `aggregate` gives, named and tagged as graphite-web tags it.
#[allow(clippy::too_many_arguments)]
fn aggregated(
    name: String,
    short: &str,
    mut tags: Tags,
    start: i64,
    end: i64,
    step: i64,
    values: Vec<Option<f64>>,
    xff: f64,
) -> Series {
    tags.entry("name".into()).or_insert_with(|| name.clone());
    tags.insert("aggregatedBy".into(), short.to_string());
    let mut out = Series::new(name, start, end, step, values, xff);
    out.tags = tags;
    out
}

/// sum, average, count, min and max accumulated series by series (each
/// read front to back, not row by row across all of them), the values of
/// each row taken in the same order as graphite-web takes them, so the
/// results are the same to the bit.
pub struct Fold {
    kind: FoldKind,
    acc: Vec<f64>,
    known: Vec<u32>,
    width: usize,
}

#[derive(Clone, Copy)]
enum FoldKind {
    Sum,
    Average,
    Count,
    Min,
    Max,
}

impl Fold {
    /// None for the functions that need a whole row at once.
    pub fn new(func: &str) -> Option<Fold> {
        let kind = match func {
            "sum" | "total" => FoldKind::Sum,
            "average" | "avg" => FoldKind::Average,
            "count" => FoldKind::Count,
            "min" => FoldKind::Min,
            "max" => FoldKind::Max,
            _ => return None,
        };
        Some(Fold {
            kind,
            acc: Vec::new(),
            known: Vec::new(),
            width: 0,
        })
    }

    /// One more series' (consolidated) values.
    pub fn add(&mut self, values: impl ExactSizeIterator<Item = Option<f64>>) {
        use crate::server::web::series::{py_max, py_min};
        if values.len() > self.acc.len() {
            self.acc.resize(values.len(), 0.0);
            self.known.resize(values.len(), 0);
        }
        self.width += 1;
        match self.kind {
            // Python's sum starts from 0: 0.0 + the first value.
            FoldKind::Sum | FoldKind::Average | FoldKind::Count => {
                self.fold(values, true, |a, b| a + b)
            }
            FoldKind::Min => self.fold(values, false, py_min),
            FoldKind::Max => self.fold(values, false, py_max),
        }
    }

    /// `add` for the values of a file read undecoded.
    pub fn add_slots(&mut self, slots: &crate::whisper::Slots) {
        use crate::server::web::series::{py_max, py_min};
        if slots.len() > self.acc.len() {
            self.acc.resize(slots.len(), 0.0);
            self.known.resize(slots.len(), 0);
        }
        self.width += 1;
        match self.kind {
            FoldKind::Sum | FoldKind::Average | FoldKind::Count => {
                let n = slots.len();
                slots.add_into(&mut self.acc[..n], &mut self.known[..n])
            }
            FoldKind::Min => self.fold_slots(slots, py_min),
            FoldKind::Max => self.fold_slots(slots, py_max),
        }
    }

    /// min and max over slots: a row's first known value, then `f`.
    fn fold_slots(&mut self, slots: &crate::whisper::Slots, f: impl Fn(f64, f64) -> f64) {
        let (acc, known) = (&mut self.acc[..slots.len()], &mut self.known[..slots.len()]);
        slots.each_known(|i, v| {
            let (a, k) = (&mut acc[i], &mut known[i]);
            *a = if *k > 0 { f(*a, v) } else { v };
            *k += 1;
        });
    }

    fn fold(
        &mut self,
        values: impl Iterator<Item = Option<f64>>,
        from_zero: bool,
        f: impl Fn(f64, f64) -> f64,
    ) {
        for ((a, k), v) in self.acc.iter_mut().zip(self.known.iter_mut()).zip(values) {
            if let Some(v) = v {
                *a = if *k > 0 || from_zero { f(*a, v) } else { v };
                *k += 1;
            }
        }
    }

    /// Each row's result: None where too few values were known.
    pub fn values(self, xff: f64) -> Vec<Option<f64>> {
        let width = self.width as f64;
        let kind = self.kind;
        self.acc
            .into_iter()
            .zip(self.known)
            .map(|(a, k)| {
                if k == 0 || (k as f64) / width < xff {
                    return None;
                }
                match kind {
                    FoldKind::Average => Some(a / k as f64),
                    FoldKind::Count => Some(k as f64),
                    _ => Some(a),
                }
            })
            .collect()
    }
}

/// `sumSeries(a.*.b, ...)` and its kin (average, min, max) over plain
/// paths, folded as the source reads the files (`Source::fold`): the
/// series `aggregate` would give, without holding every input series.
/// None when the call has another shape or the source cannot fold; it is
/// then evaluated as any other call.
pub fn folded(call: &Call, ctx: &Context) -> Result<Option<Value>> {
    let short = match call.name.as_str() {
        "sumSeries" | "sum" => "sum",
        "averageSeries" | "avg" => "average",
        "maxSeries" => "max",
        "minSeries" => "min",
        _ => return Ok(None),
    };
    if call.args.is_empty() || !call.kwargs.is_empty() {
        return Ok(None);
    }
    let mut patterns = Vec::with_capacity(call.args.len());
    for a in &call.args {
        match a {
            Node::Path(p) => patterns.push(p.as_str()),
            _ => return Ok(None),
        }
    }
    let Some(mut stream) = Stream::new(short) else {
        return Ok(None);
    };
    if !ctx.source.fold(&patterns, ctx, &mut stream)? {
        return Ok(None);
    }
    Ok(Some(Value::List(stream.finish(ctx.xff))))
}

/// One series' values as a source has them.
pub enum Input<'a> {
    Values(&'a [Option<f64>]),
    /// A file's slots, decoded as they are folded.
    Slots(&'a crate::whisper::Slots),
}

/// What `aggregate` needs of its input series, gathered one series at a
/// time: their folded values, shared tags and path expressions.
pub struct Stream {
    short: &'static str,
    fold: Fold,
    /// start, end and step of the first series; every other must match.
    shape: Option<(i64, i64, i64)>,
    tags: Tags,
    expressions: Vec<String>,
}

impl Stream {
    fn new(short: &'static str) -> Option<Stream> {
        Some(Stream {
            short,
            fold: Fold::new(short)?,
            shape: None,
            tags: Tags::new(),
            expressions: Vec::new(),
        })
    }

    /// One series read (named `name`, from `path_expression`). False when
    /// its start, end or step differs from the series before: `aggregate`
    /// would then consolidate them to a common step first, which the
    /// caller does by evaluating the call as usual.
    pub fn add(
        &mut self,
        name: &str,
        path_expression: &str,
        (start, end, step): (i64, i64, i64),
        values: Input,
    ) -> bool {
        match self.shape {
            None => {
                self.shape = Some((start, end, step));
                self.tags = tags_of(name);
            }
            Some(shape) if shape != (start, end, step) => return false,
            Some(_) => {
                if !self.tags.is_empty() {
                    let theirs = tags_of(name);
                    self.tags.retain(|k, v| theirs.get(k) == Some(v));
                }
            }
        }
        if !self.expressions.iter().any(|e| e == path_expression) {
            self.expressions.push(path_expression.to_string());
        }
        match values {
            Input::Values(v) => self.fold.add(v.iter().copied()),
            Input::Slots(slots) => self.fold.add_slots(slots),
        }
        true
    }

    fn finish(self, xff: f64) -> Vec<Series> {
        let Some((start, end, step)) = self.shape else {
            return Vec::new();
        };
        let name = format!("{}Series({})", self.short, self.expressions.join(","));
        let values = self.fold.values(xff);
        vec![aggregated(
            name, self.short, self.tags, start, end, step, values, xff,
        )]
    }
}

/// graphite-web's `xffValues`.
pub fn xff_ok(row: &[Option<f64>], xff: f64) -> bool {
    let known = row.iter().filter(|v| v.is_some()).count();
    known > 0 && !row.is_empty() && known as f64 / row.len() as f64 >= xff
}

fn count_series(args: &mut Args, ctx: &Context, _: &Call) -> Result<Value> {
    let lists = args.rest_series(0)?;
    if lists.is_empty() {
        let mut s = super::transform::constant_line(ctx, 0.0, true);
        s.path_expression = "countSeries()".into();
        return Ok(Value::List(vec![s]));
    }
    let Some((all, start, end, step)) = normalize(lists) else {
        return Ok(Value::List(Vec::new()));
    };
    let name = format!("countSeries({})", path_expressions(&all));
    let values = rows(&all).iter().map(|r| Some(r.len() as f64)).collect();
    Ok(Value::List(vec![Series::new(
        name, start, end, step, values, ctx.xff,
    )]))
}

/// Groups series by key in first-seen order.
fn group_by<F: Fn(&Series) -> String>(list: Vec<Series>, key: F) -> Vec<(String, Vec<Series>)> {
    let mut groups: Vec<(String, Vec<Series>)> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for s in list {
        let k = key(&s);
        match at.get(&k) {
            Some(&i) => groups[i].1.push(s),
            None => {
                at.insert(k.clone(), groups.len());
                groups.push((k, vec![s]));
            }
        }
    }
    groups
}

fn group_by_node(args: &mut Args, ctx: &Context, call: &Call) -> Result<Value> {
    let list = args.series(0, "seriesList")?;
    let node = match args.take(1, "nodeNum") {
        Some(Value::Int(n)) => super::NodeKey::Index(n),
        Some(Value::Str(s)) => super::NodeKey::Tag(s),
        _ => return input("groupByNode: nodeNum must be a number or a tag"),
    };
    let callback = args
        .opt_string(2, "callback")?
        .unwrap_or_else(|| "average".into());
    grouped(ctx, call, list, &[node], &callback)
}

fn group_by_nodes(args: &mut Args, ctx: &Context, call: &Call) -> Result<Value> {
    let list = args.series(0, "seriesList")?;
    let callback = args.string(1, "callback")?;
    let nodes = args.rest_nodes(2)?;
    grouped(ctx, call, list, &nodes, &callback)
}

fn grouped(
    ctx: &Context,
    call: &Call,
    list: Vec<Series>,
    nodes: &[super::NodeKey],
    callback: &str,
) -> Result<Value> {
    let mut out = Vec::new();
    for (key, members) in group_by(list, |s| agg_key(s, nodes)) {
        let mut one = match callback_series(ctx, call, callback, members)? {
            Some(s) => s,
            None => continue,
        };
        one.name = key;
        out.push(one);
    }
    Ok(Value::List(out))
}

/// A group's one series, by a series function's name or an aggregation.
fn callback_series(
    ctx: &Context,
    call: &Call,
    callback: &str,
    members: Vec<Series>,
) -> Result<Option<Series>> {
    let as_function = super::lookup(callback).filter(|_| callback != "sum" && callback != "avg");
    let got = match as_function {
        Some(f) => {
            let mut a = Args {
                func: callback,
                pos: vec![Some(Value::List(members))],
                kw: Vec::new(),
            };
            match f(&mut a, ctx, call)? {
                Value::List(l) => l,
                _ => Vec::new(),
            }
        }
        None => aggregate(ctx, vec![members], callback, None)?,
    };
    Ok(got.into_iter().next())
}

fn aggregate_with_wildcards(args: &mut Args, ctx: &Context, call: &Call) -> Result<Value> {
    let list = args.series(0, "seriesList")?;
    let func = args.string(1, "func")?;
    let positions = ints(args.rest_nodes(2)?);
    wildcards(ctx, call, list, &func, &positions)
}

fn with_wildcards(args: &mut Args, ctx: &Context, call: &Call, func: &str) -> Result<Value> {
    let list = args.series(0, "seriesList")?;
    let positions = ints(args.rest_nodes(1)?);
    wildcards(ctx, call, list, func, &positions)
}

fn ints(nodes: Vec<super::NodeKey>) -> Vec<i64> {
    nodes
        .into_iter()
        .filter_map(|n| match n {
            super::NodeKey::Index(i) => Some(i),
            super::NodeKey::Tag(_) => None,
        })
        .collect()
}

fn wildcards(
    ctx: &Context,
    _: &Call,
    list: Vec<Series>,
    func: &str,
    positions: &[i64],
) -> Result<Value> {
    let key = |s: &Series| {
        s.name
            .split('.')
            .enumerate()
            .filter(|(i, _)| !positions.contains(&(*i as i64)))
            .map(|(_, p)| p)
            .collect::<Vec<_>>()
            .join(".")
    };
    let mut out = Vec::new();
    for (k, members) in group_by(list, key) {
        if let Some(mut one) = aggregate(ctx, vec![members], func, None)?
            .into_iter()
            .next()
        {
            one.name = k;
            out.push(one);
        }
    }
    Ok(Value::List(out))
}

/// Two series on their common step (graphite-web's inline normalise in
/// `divideSeries`).
fn pair(a: &Series, b: &Series) -> (Series, Series, i64, i64, i64) {
    let (mut a, mut b) = (a.clone(), b.clone());
    let step = super::lcm(a.step, b.step);
    a.values_per_point = (step / a.step.max(1)).max(1) as usize;
    b.values_per_point = (step / b.step.max(1)).max(1) as usize;
    let start = a.start.min(b.start);
    let mut end = a.end.max(b.end);
    end -= (end - start).rem_euclid(step.max(1));
    (a, b, start, end, step)
}

fn zip_div(a: &Series, b: &Series, percent: bool) -> Vec<Option<f64>> {
    rows(&[a.clone(), b.clone()])
        .iter()
        .map(|r| {
            let q = match (r[0], r[1]) {
                (Some(x), Some(y)) if y != 0.0 => Some(x / y),
                _ => None,
            };
            if percent {
                q.map(|q| q * 100.0)
            } else {
                q
            }
        })
        .collect()
}

fn divide_series(args: &mut Args, ctx: &Context, _: &Call) -> Result<Value> {
    let dividends = args.series(0, "dividendSeriesList")?;
    let divisors = args.series(1, "divisorSeries")?;
    if divisors.is_empty() {
        let out = dividends
            .into_iter()
            .map(|mut s| {
                s.rename(format!("divideSeries({},MISSING)", s.name));
                s.values.iter_mut().for_each(|v| *v = None);
                s
            })
            .collect();
        return Ok(Value::List(out));
    }
    if divisors.len() > 1 {
        return input(format!(
            "divideSeries second argument must reference exactly 1 series (got {})",
            divisors.len()
        ));
    }
    Ok(Value::List(
        dividends
            .iter()
            .map(|d| quotient(d, &divisors[0], ctx))
            .collect(),
    ))
}

/// `divideSeries(a,b)`: a over b on their common step.
fn quotient(a: &Series, b: &Series, ctx: &Context) -> Series {
    let (x, y, start, end, step) = pair(a, b);
    let name = format!("divideSeries({},{})", a.name, b.name);
    Series::new(name, start, end, step, zip_div(&x, &y, false), ctx.xff)
}

fn divide_series_lists(args: &mut Args, ctx: &Context, _: &Call) -> Result<Value> {
    let dividends = args.series(0, "dividendSeriesList")?;
    let divisors = args.series(1, "divisorSeriesList")?;
    if dividends.len() != divisors.len() {
        return input("dividendSeriesList and divisorSeriesList argument must have equal length");
    }
    Ok(Value::List(
        dividends
            .iter()
            .zip(&divisors)
            .map(|(d, v)| quotient(d, v, ctx))
            .collect(),
    ))
}

fn sum_rows(list: &[Series]) -> Vec<Option<f64>> {
    rows(list)
        .iter()
        .map(|r| super::calculate::sum(r))
        .collect()
}

fn as_percent(args: &mut Args, ctx: &Context, _: &Call) -> Result<Value> {
    let mut list = args.series(0, "seriesList")?;
    let total = args.take(1, "total");
    let nodes = args.rest_nodes(2)?;
    if !nodes.is_empty() {
        return input("asPercent: grouping by nodes is not supported yet");
    }
    if let Some((all, _, _, _)) = normalize(vec![list.clone()]) {
        list = all;
    }
    let xff = ctx.xff;
    let (totals, text): (Vec<Option<f64>>, String) = match total {
        None | Some(Value::None) => (sum_rows(&list), format!("sumSeries({})", path_expressions(&list))),
        Some(Value::List(t)) if t.len() == list.len() && t.len() != 1 => {
            let mut a = list.clone();
            let mut b = t;
            a.sort_by(|x, y| x.name.cmp(&y.name));
            b.sort_by(|x, y| x.name.cmp(&y.name));
            let out = a
                .iter()
                .zip(&b)
                .map(|(s1, s2)| {
                    let (x, y, start, end, step) = pair(s1, s2);
                    let name = format!("asPercent({},{})", s1.name, s2.name);
                    Series::new(name, start, end, step, zip_div(&x, &y, true), xff)
                })
                .collect();
            return Ok(Value::List(out));
        }
        Some(Value::List(t)) if t.len() == 1 => {
            let mut both = list.clone();
            both.extend(t);
            let (all, _, _, _) = normalize(vec![both]).ok_or_else(|| super::RenderError::Input("asPercent: no series".into()))?;
            let total = all[all.len() - 1].clone();
            list = all[..all.len() - 1].to_vec();
            (total.points(), total.name.clone())
        }
        Some(Value::List(_)) => {
            return input("asPercent second argument must be missing, a single digit, reference exactly 1 series or reference the same number of series as the first argument")
        }
        Some(Value::Int(n)) => (vec![Some(n as f64); list.first().map_or(0, Series::len)], n.to_string()),
        Some(Value::Float(f)) => (
            vec![Some(f); list.first().map_or(0, Series::len)],
            crate::server::web::pyfmt::repr(f),
        ),
        Some(_) => return input("asPercent: total must be a number or a series list"),
    };
    let out = list
        .iter()
        .map(|s| {
            let pts = s.points();
            let n = pts.len().max(totals.len());
            let values = (0..n)
                .map(|i| {
                    match (
                        pts.get(i).copied().flatten(),
                        totals.get(i).copied().flatten(),
                    ) {
                        (Some(v), Some(t)) if t != 0.0 => Some(v / t * 100.0),
                        _ => None,
                    }
                })
                .collect();
            let name = format!(
                "asPercent({},{})",
                s.name,
                if text.is_empty() {
                    &s.path_expression
                } else {
                    &text
                }
            );
            let mut r = Series::new(name, s.start, s.end, s.step, values, xff);
            r.tags = tags_of(&r.name);
            r
        })
        .collect();
    Ok(Value::List(out))
}

/// graphite-web's `applyByNode`: a template target (`%` for each prefix)
/// evaluated once per distinct prefix, prefixes in sorted order.
fn apply_by_node(args: &mut Args, ctx: &Context, _: &Call) -> Result<Value> {
    let list = args.series(0, "seriesList")?;
    let node = args.int(1, "nodeNum")?;
    let template = args.string(2, "templateFunction")?;
    let new_name = args.opt_string(3, "newName")?;
    let mut prefixes: Vec<String> = list
        .iter()
        .map(|s| {
            let parts: Vec<&str> = s.name.split('.').collect();
            let end = ((node + 1).max(0) as usize).min(parts.len());
            parts[..end].join(".")
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let Some(last) = list.last() else {
        return Ok(Value::List(Vec::new()));
    };
    let mut out = Vec::new();
    for prefix in prefixes {
        let target = template.replace('%', &prefix);
        let parsed =
            crate::server::web::grammar::parse(&target).map_err(super::RenderError::Input)?;
        for mut s in super::evaluate_target(&parsed, ctx)? {
            if let Some(n) = &new_name {
                s.name = n.replace('%', &prefix);
            }
            s.path_expression = prefix.clone();
            s.start = last.start;
            s.end = last.end;
            out.push(s);
        }
    }
    Ok(Value::List(out))
}

/// graphite-web's `groupByTags`: series grouped by the values of `tags`,
/// each group one series named `name;tag=value;...`.
fn group_by_tags(args: &mut Args, ctx: &Context, call: &Call) -> Result<Value> {
    let list = args.series(0, "seriesList")?;
    let callback = args.string(1, "callback")?;
    let tags: Vec<String> = args
        .rest_nodes(2)?
        .into_iter()
        .map(|k| match k {
            super::NodeKey::Tag(t) => t,
            super::NodeKey::Index(i) => i.to_string(),
        })
        .collect();
    if tags.is_empty() {
        return input("groupByTags(): no tags specified");
    }
    let by_name = tags.iter().any(|t| t == "name");
    let name = if by_name {
        None
    } else {
        let names: std::collections::BTreeSet<&str> = list
            .iter()
            .filter_map(|s| s.tags.get("name").map(String::as_str))
            .collect();
        Some(if names.len() == 1 {
            names.into_iter().next().unwrap_or("").to_string()
        } else {
            callback.clone()
        })
    };
    let key = |s: &Series| {
        let head = name
            .clone()
            .unwrap_or_else(|| s.tags.get("name").cloned().unwrap_or_default());
        let mut pairs: Vec<String> = tags
            .iter()
            .filter(|t| *t != "name")
            .map(|t| format!("{t}={}", s.tags.get(t).map(String::as_str).unwrap_or("")))
            .collect();
        pairs.sort();
        std::iter::once(head)
            .chain(pairs)
            .collect::<Vec<_>>()
            .join(";")
    };
    let mut out = Vec::new();
    for (k, members) in group_by(list, key) {
        if let Some(mut one) = callback_series(ctx, call, &callback, members)? {
            one.name = k.clone();
            one.path_expression = k.clone();
            one.tags = tags_of(&k);
            out.push(one);
        }
    }
    Ok(Value::List(out))
}
